"""The websocket subscription against real websocket servers on real ports: a node that offers no
``eth_subscribe``, and one that drops the connection. (Notifications from a real node: tests/integration.)"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator

import pytest
from waiting import eventually
from websockets.sync.server import ServerConnection, serve

from aleaart.watch.subscription import Subscription, where

ADDRESS = "0x" + "00" * 20


@pytest.fixture
def node() -> Iterator[Callable[[Callable[[ServerConnection], None]], str]]:
    """Start a websocket server with this handler; gives its URL. Stopped at the end."""
    servers = []

    def start(handler: Callable[[ServerConnection], None]) -> str:
        server = serve(handler, "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"ws://127.0.0.1:{server.socket.getsockname()[1]}"

    yield start
    for server in servers:
        server.shutdown()


def subscribe(url: str, woken: list[int]) -> Subscription:
    subscription = Subscription(url, address=ADDRESS, confirmations=0, wake=lambda: woken.append(1), timeout=5)
    subscription.start()
    return subscription


def test_a_node_without_subscriptions_is_not_asked_again(node):
    asked = []

    def refuse(connection: ServerConnection) -> None:
        for message in connection:
            asked.append(json.loads(message)["method"])
            connection.send(json.dumps({"jsonrpc": "2.0", "id": json.loads(message)["id"],
                                        "error": {"code": -32601, "message": "method not found"}}))

    woken: list[int] = []
    subscription = subscribe(node(refuse), woken)
    try:
        assert eventually(lambda: subscription.state == "refused")
        assert subscription._thread is not None
        subscription._thread.join(10)
        assert not subscription._thread.is_alive() and woken == [] and set(asked) == {"eth_subscribe"}
    finally:
        subscription.stop()


def test_a_dropped_connection_is_made_again_and_wakes_the_watcher_each_time(node):
    connections = []

    def subscribe_then_drop(connection: ServerConnection) -> None:
        connections.append(connection)
        for _ in range(2):
            request = json.loads(connection.recv())
            connection.send(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": f"0x{request['id']}"}))
        # a head, then the connection ends: the watcher is woken on each (re)subscription, not by heads alone
        connection.send(json.dumps({"jsonrpc": "2.0", "method": "eth_subscription",
                                    "params": {"subscription": "0x1", "result": {"number": "0x10"}}}))

    woken: list[int] = []
    subscription = subscribe(node(subscribe_then_drop), woken)
    try:
        assert eventually(lambda: len(connections) >= 2 and len(woken) >= 2)
        assert subscription.state in ("live", "connecting")
    finally:
        subscription.stop()


def test_logs_name_the_endpoint_without_its_key():
    assert where("wss://user:secret@arb-mainnet.example.com/v2/KEY") == "wss://arb-mainnet.example.com"
