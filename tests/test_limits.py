"""limits.py: requests a minute as a token bucket, renders waiting at once and a day, and the 429s they give."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from aleaart.api.auth import client_address
from aleaart.database import Database
from aleaart.errors import InvalidParams, QuotaExceeded, RateLimited
from aleaart.limits import CALLERS_KEPT, Limiter, Limits, Rate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def limiter(tmp_path):
    db = Database(tmp_path / "journal.db")
    yield Limiter(db, clock=Clock())
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
    limiter.clock.now += 20
    limiter.request("frontend", rate)
    limiter.request("anyone", None)  # no rate: no limit


def test_renders_waiting_and_a_day_are_counted_and_a_day_survives_a_restart(limiter, tmp_path):
    limits = Limits(max_queued=2, renders_per_day=3)
    with pytest.raises(QuotaExceeded, match="2 renders waiting") as full:
        limiter.render("ci", limits, waiting=2)
    assert full.value.code == "quota_exceeded" and full.value.headers()["RateLimit-Policy"] == '"queued";q=2'
    noon = 1_800_000_000.0  # 2027-01-15 08:00 UTC
    for _ in range(2):
        limiter.render("ci", limits, waiting=0, now=noon)
    again = Limiter(limiter.db)  # a restart: the day's count is the journal's
    again.render("ci", limits, waiting=0, now=noon)
    with pytest.raises(QuotaExceeded, match="3 renders today") as spent:
        again.render("ci", limits, waiting=0, now=noon)
    assert spent.value.retry_after == 16 * 3600  # until midnight UTC
    assert again.renders_today("ci", now=noon) == 3 and again.renders_today("ci", now=noon + 86400) == 0


def test_memory_for_callers_is_bounded(limiter):
    rate = Rate.parse("10/min")
    for n in range(CALLERS_KEPT + 500):
        limiter.request(f"@10.{n // 65536}.{n // 256 % 256}.{n % 256}", rate)
    assert len(limiter._buckets) == CALLERS_KEPT


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
