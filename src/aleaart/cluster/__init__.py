"""Many GPUs: the API hands jobs to `aleaart worker` processes through Celery, with Redis as the broker.

    wire.py      key names, queue names and messages (pure data)
    app.py       the Celery app both sides share, and the Redis client
    worker.py    `aleaart worker`: one loaded model, one job at a time, claims, results into Redis
    dispatch.py  CeleryQueue: the API's backend when ALEAART_BROKER_URL is set
"""
