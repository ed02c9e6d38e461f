"""Webhooks: a job notifies a URL of its events (Replicate/Cog's ``webhook`` and ``webhook_events_filter``), and
the service notifies ALEAART_WEBHOOK_URL of its own (a token rendered by the chain watcher, a collection finished).

``events`` is the pure part (which events are due, throttling, backoff), ``targets`` refuses addresses a
webhook must not reach (SSRF), ``outbox`` keeps subscriptions and undelivered events in the service's database,
``delivery`` signs (Standard Webhooks) and sends them, and ``hub`` ties them to the jobs.
"""
