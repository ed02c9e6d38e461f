"""limits.py and tally.py: requests a minute as a token bucket, renders waiting at once and a day, and the 429s
they give; counted in this process and its journal, or in the Redis several API processes share."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from cluster_helpers import needs_redis
from waiting import eventually

from aleaart.api.auth import client_address
from aleaart.database import Database
from aleaart.errors import InvalidParams, QuotaExceeded, RateLimited
from aleaart.limits import Limiter, Limits, Rate
from aleaart.tally import CALLERS_KEPT, LocalTally, RedisTally


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def waiting():
    return {}  # name → renders the queue has of it


@pytest.fixture
def limiter(tmp_path, waiting):
    db = Database(tmp_path / "journal.db")
    yield Limiter(LocalTally(db, lambda name: waiting.get(name, 0), clock=Clock()))
    db.close()


@pytest.mark.parametrize(("text", "per_minute"), [("120/min", 120), ("2/s", 120), ("90/hour", 1.5),
                                                  (" 3 / minute ", 3)])
def test_rates_read_as_people_write_them(text, per_minute):
    assert Rate.parse(text).per_minute == pytest.approx(per_minute)


@pytest.mark.parametrize("text", ["120", "0/min", "-1/min", "5/fortnight", "many/min", ""])
def test_a_rate_that_is_not_one_is_refused(text):
    with pytest.raises(InvalidParams, match="a rate is"):
        Rate.parse(text)


def test_a_bucket_allows_a_minutes_worth_then_one_each_refill(limiter):
    rate = Rate.parse("3/min")
    for _ in range(3):
        limiter.request("frontend", rate)
    with pytest.raises(RateLimited) as refused:
        limiter.request("frontend", rate)
    assert refused.value.retry_after == 20 and refused.value.code == "rate_limited"
    assert refused.value.headers() == {"RateLimit-Policy": '"requests";q=3;w=60', "RateLimit": '"requests";r=0;t=20'}
    limiter.request("team-b", rate)  # each caller its own bucket
    limiter.tally.clock.now += 20
    limiter.request("frontend", rate)
    limiter.request("anyone", None)  # no rate: no limit


def test_renders_waiting_and_a_day_are_counted_and_a_day_survives_a_restart(limiter, waiting):
    limits = Limits(max_queued=2, renders_per_day=3)
    waiting["ci"] = 2
    with pytest.raises(QuotaExceeded, match="2 renders waiting") as full:
        limiter.render("ci", limits, "job-1")
    assert full.value.code == "quota_exceeded" and full.value.headers()["RateLimit-Policy"] == '"queued";q=2'
    waiting["ci"] = 0
    noon = 1_800_000_000.0  # 2027-01-15 08:00 UTC
    for n in range(2):
        limiter.render("ci", limits, f"job-{n}", now=noon)
    again = Limiter(LocalTally(limiter.tally.db))  # a restart: the day's count is the journal's
    again.render("ci", limits, "job-3", now=noon)
    with pytest.raises(QuotaExceeded, match="3 renders today") as spent:
        again.render("ci", limits, "job-4", now=noon)
    assert spent.value.retry_after == 16 * 3600  # until midnight UTC
    assert again.renders_today("ci", now=noon) == 3 and again.renders_today("ci", now=noon + 86400) == 0


def test_memory_for_callers_is_bounded(limiter):
    rate = Rate.parse("10/min")
    for n in range(CALLERS_KEPT + 500):
        limiter.request(f"@10.{n // 65536}.{n // 256 % 256}.{n % 256}", rate)
    assert len(limiter.tally._buckets) == CALLERS_KEPT


# The same limits in the Redis every API process shares (ALEAART_BROKER_URL)


@pytest.fixture
def shared(redis_server, client):
    """Two API processes' limiters on one redis-server."""
    clients = [redis_server.client(), redis_server.client()]
    yield [Limiter(RedisTally(c, waiting_seconds=3600)) for c in clients]
    for c in clients:
        c.close()


@needs_redis
def test_api_processes_share_a_keys_request_bucket(shared):
    first, second = shared
    rate = Rate.parse("2/min")  # one more every 30 s
    for limiter in (first, second):
        limiter.request("frontend", rate)
    for limiter in (first, second):
        with pytest.raises(RateLimited) as refused:
            limiter.request("frontend", rate)
        assert 20 <= refused.value.retry_after <= 30
    assert first.requests_left("frontend", rate) == 0 and second.requests_left("team-b", rate) == 2
    second.request("team-b", rate)  # each caller its own bucket


@needs_redis
def test_api_processes_share_a_keys_renders_waiting_and_a_day(shared, client):
    first, second = shared
    limits = Limits(max_queued=2, renders_per_day=3)
    first.render("ci", limits, "job-1")
    second.render("ci", limits, "job-2")
    with pytest.raises(QuotaExceeded, match="2 renders waiting"):
        first.render("ci", limits, "job-3")
    assert first.waiting("ci") == second.waiting("ci") == 2
    second.done("ci", "job-1")  # a render the other process admitted ended
    first.render("ci", limits, "job-3")
    with pytest.raises(QuotaExceeded, match="3 renders today") as spent:
        second.done("ci", "job-2")
        second.render("ci", limits, "job-4")
    assert spent.value.policy == "renders" and first.renders_today("ci") == second.renders_today("ci") == 3
    assert second.waiting("ci") == 1  # the refused render is not waiting either
    [day_count] = client.keys("aleaart:limits:renders:*")
    assert client.ttl("aleaart:limits:waiting:ci") > 0 and 0 < client.ttl(day_count) <= 2 * 86400


@needs_redis
def test_a_waiting_render_its_api_process_never_ended_is_forgotten(redis_server, client):
    limiter = Limiter(RedisTally(redis_server.client(), waiting_seconds=1))
    limiter.render("ci", Limits(max_queued=1), "lost")  # its process died before it ended
    assert limiter.waiting("ci") == 1
    assert eventually(lambda: limiter.waiting("ci") == 0, timeout=10)
    limiter.render("ci", Limits(max_queued=1), "next")


def request(peer: str, forwarded: str | None, trusted: list[str]) -> SimpleNamespace:
    import ipaddress

    headers = {"x-forwarded-for": forwarded} if forwarded is not None else {}
    state = SimpleNamespace(trusted_proxies=[ipaddress.ip_network(n) for n in trusted])
    return SimpleNamespace(client=SimpleNamespace(host=peer), headers=headers, app=SimpleNamespace(state=state))


@pytest.mark.parametrize(("peer", "forwarded", "trusted", "client"), [
    ("203.0.113.9", "1.2.3.4", [], "203.0.113.9"),  # no trusted proxy: the header is anyone's to write
    ("203.0.113.9", "1.2.3.4", ["10.0.0.0/8"], "203.0.113.9"),  # the peer is not a trusted proxy
    ("10.0.0.2", "198.51.100.7", ["10.0.0.0/8"], "198.51.100.7"),
    ("10.0.0.2", "6.6.6.6, 198.51.100.7, 10.0.0.3", ["10.0.0.0/8"], "198.51.100.7"),  # forged hops stay left
    ("10.0.0.2", None, ["10.0.0.0/8"], "10.0.0.2")])
def test_the_client_address_trusts_only_the_proxies_it_is_told_of(peer, forwarded, trusted, client):
    assert client_address(request(peer, forwarded, trusted)) == client
