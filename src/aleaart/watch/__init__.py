"""Render on fulfilment: follow EntropyFulfilled events and have each token's image stored moments later.

``cursor`` is the pure logic (confirmations, reorg ancestors, the adaptive log range), ``rpc`` reads blocks and
logs, ``journal`` keeps the cursor and the tokens seen in the service's database, and ``watcher`` runs the loop.
"""
