"""A websocket subscription (``eth_subscribe``) to new heads and the contract's EntropyFulfilled logs that only
wakes the watcher. What the watcher renders is still read with ``eth_getLogs`` from its cursor, confirmed and
checked for reorganisations, so a missed or repeated notification costs at most a poll interval. A node that
does not offer subscriptions, or a connection that drops, leaves the watcher polling as it would without one.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection, connect

from aleaart.errors import ChainError
from aleaart.watch.cursor import PushedBlocks, backoff_seconds
from aleaart.watch.rpc import FULFILLED_TOPIC

log = logging.getLogger(__name__)

RETRY_CAP = 60.0
LISTEN_SECONDS = 1.0  # how long one receive waits before the thread looks whether it should stop
DROPPED = (OSError, TimeoutError, WebSocketException, KeyError, TypeError, ValueError)  # ValueError: bad JSON


class SubscriptionRefused(ChainError):
    """The node answered ``eth_subscribe`` with an error: it does not offer subscriptions."""


class Subscription:
    def __init__(self, url: str, *, address: str, confirmations: int, wake: Callable[[], None],
                 timeout: float) -> None:
        self.url = url
        self.address = address
        self.wake = wake
        self.timeout = timeout
        self.pushed = PushedBlocks(confirmations)
        self.state = "connecting"  # then "live"; "refused" when the node offers no subscriptions
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="chain-subscription", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                with connect(self.url, open_timeout=self.timeout, close_timeout=1) as connection:
                    kinds = self._subscribe(connection)
                    failures = 0
                    self._listen(connection, kinds)
            except SubscriptionRefused as refusal:
                self.state = "refused"
                log.warning("%s; the chain watcher polls only", refusal)
                return
            except DROPPED as error:
                self.state = "connecting"
                failures += 1
                wait = backoff_seconds(failures, base=1.0, cap=RETRY_CAP)
                log.warning("the websocket subscription at %s is down (%s); polling meanwhile, trying again in "
                            "%.0f s", where(self.url), error or type(error).__name__, wait)
                self._stop.wait(wait)

    def _subscribe(self, connection: ClientConnection) -> dict[str, str]:
        """Ask for both subscriptions; returns each subscription id's kind (``newHeads`` or ``logs``)."""
        asked = {1: ["newHeads"], 2: ["logs", {"address": self.address, "topics": [FULFILLED_TOPIC]}]}
        for request_id, params in asked.items():
            connection.send(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "eth_subscribe",
                                        "params": params}))
        kinds: dict[str, str] = {}
        deadline = time.monotonic() + self.timeout
        while len(kinds) < len(asked):
            message = json.loads(connection.recv(timeout=max(0.0, deadline - time.monotonic())))
            request_id = message.get("id")
            if request_id not in asked:
                continue  # a notification before both answers: the pass woken below reads it anyway
            if "error" in message:
                raise SubscriptionRefused(f"the node at {where(self.url)} refused eth_subscribe: "
                                          f"{str(message['error'].get('message'))[:200]}")
            kinds[message["result"]] = asked[request_id][0]
        return kinds

    def _listen(self, connection: ClientConnection, kinds: dict[str, str]) -> None:
        self.state = "live"
        log.info("the chain watcher is subscribed at %s: it reads as soon as a fulfilment is confirmed",
                 where(self.url))
        self.wake()  # what happened while there was no subscription is read now
        while not self._stop.is_set():
            try:
                message = json.loads(connection.recv(timeout=LISTEN_SECONDS))
            except TimeoutError:
                continue
            if self._due(kinds, message):
                self.wake()

    def _due(self, kinds: dict[str, str], message: dict[str, Any]) -> bool:
        params = message.get("params") or {}
        result = params.get("result") or {}
        kind = kinds.get(params.get("subscription"))
        if kind == "newHeads":
            return self.pushed.new_head(int(result["number"], 16))
        if kind == "logs":
            if result.get("removed"):
                return True  # a reorganisation took a fulfilment back: the pass checks the block hashes now
            return self.pushed.fulfilled_in(int(result["blockNumber"], 16))
        return False


def where(url: str) -> str:
    """The endpoint's scheme and host, for logs: a provider's key is often in the path or the user part."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
