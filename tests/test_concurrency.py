"""Adaptive concurrency: one limit per registry that every request goes through, growing while it
pays, backing off on 429/503 and rate-limit headers; crawls through a front end that answers 429
beyond N requests in flight lose nothing. No timing is asserted: the limiter runs on a fake clock
where it is judged on what it measured, and against the real registry only on what it did."""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest
from requests.structures import CaseInsensitiveDict

from dreg_frames import Crawl, LocalRegistry, Registry, crawl
from dreg_frames.client.concurrency import BACKOFF, START, Limiter
from dreg_frames.client.limits import Limits
from dreg_frames.crawl import Crawler
from dreg_frames.sample import seed_registry

from .fault_proxy import Exchange, FaultProxy, Reply
from .proxies import LimitProxy

H = CaseInsensitiveDict  # answers' headers, as requests gives them
FRAMES = ("repositories", "tags", "images", "layers", "errors", "referrers")


@pytest.fixture(scope="module")
def sample() -> Iterator[tuple[LocalRegistry, Crawl]]:
    with LocalRegistry() as server:
        seed_registry(Registry.build_with_manual_client(server.url))
        yield server, crawl(Registry.build_with_manual_client(server.url), workers=3, progress=False)


def _same(a: Crawl, b: Crawl) -> None:
    """Row for row, column for column; a crawl through a proxy names another host:port."""
    for name in FRAMES:
        left, right = getattr(a, name), getattr(b, name)
        if a.meta["registry"] != b.meta["registry"] and "registry" in left:
            left, right = left.drop(columns="registry"), right.drop(columns="registry")
        pd.testing.assert_frame_equal(left, right, obj=name)


# -- the limiter on a fake clock ------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _drive(limiter: Limiter, clock: Clock, latency: Callable[[int], float], rounds: int) -> list[int]:
    """``rounds`` times: as many requests as the limit allows sent at once, all answered after
    ``latency(limit)`` seconds. Returns the limit after each round."""
    seen = []
    for _ in range(rounds):
        limit = limiter.limit
        started = [limiter.acquire() for _ in range(limit)]
        clock.now += latency(limit)
        for at in started:
            limiter.release(at)
        seen.append(limiter.limit)
    return seen


def test_auto_grows_to_the_cap_while_latency_holds() -> None:
    """A registry across a network: each answer takes 50 ms however many are in flight."""
    clock = Clock()
    limiter = Limiter(32, clock=clock)
    with limiter.session("auto") as usage:
        limits = _drive(limiter, clock, lambda n: 0.05, 60)
    assert limits[0] == START and max(limits) == 32
    assert usage.summary()["max"] == 32 and usage.backoffs == 0
    # slow start doubles, as TCP's does: one step a round, never straight to the cap
    grown = [e.limit for e in limiter.events if e.kind == "increase" and "trying more" in e.reason]
    assert grown == [8, 16, 32]
    # At the cap it tries fewer now and then; here a fifth fewer lose a fifth of the answers, so
    # each trial is undone at once, and ever more rarely.
    fewer = [e for e in limiter.events if "trying fewer" in e.reason]
    undone = [e for e in limiter.events if "fewer lose answers" in e.reason]
    assert 1 <= len(fewer) <= 4 and len(undone) >= len(fewer) - 1
    assert all(e.limit == 32 for e in undone)
    at_cap = limits[limits.index(32) :]
    assert at_cap.count(32) >= 0.75 * len(at_cap)


def test_auto_stops_growing_when_answers_only_come_later() -> None:
    """A saturated registry: twice as many in flight, each answered twice as late (no gain)."""
    clock = Clock()
    limiter = Limiter(32, clock=clock)
    with limiter.session("auto") as usage:
        limits = _drive(limiter, clock, lambda n: 0.005 * n, 200)
    assert max(limits) <= 2 * START and limits[-1] <= 2 * START
    assert usage.max <= 2 * START
    assert any(e.kind == "decrease" and "no gain" in e.reason for e in limiter.events)


def test_auto_comes_back_down_when_more_in_flight_stops_paying() -> None:
    """A limit reached while the registry had room (a crawl's quick tag lists) is not kept once it
    saturates (the manifests): fewer in flight answer as much, so it steps down, never below START."""
    clock = Clock()
    limiter = Limiter(32, clock=clock)
    with limiter.session("auto") as usage:
        early = _drive(limiter, clock, lambda n: 0.05, 12)
        late = _drive(limiter, clock, lambda n: 0.005 * n, 300)
    assert max(early) == 32 and usage.max == 32
    assert any("trying fewer" in e.reason for e in limiter.events)
    assert min(late) >= START and late[-1] <= 2 * START
    # once down, it stays down: at most a trial's step above twice the start in the last 200 rounds
    assert max(late[-200:]) <= math.ceil(2 * START * 1.25)


def test_fewer_are_not_kept_when_they_lose_answers() -> None:
    """Latency-bound throughout (a registry across a network): trials of fewer are undone."""
    clock = Clock()
    limiter = Limiter(16, clock=clock)
    with limiter.session("auto"):
        limits = _drive(limiter, clock, lambda n: 0.02, 400)
    reasons = [e.reason for e in limiter.events if e.kind in ("increase", "decrease")][2:]
    # every trial of fewer undone at the next judgement, and each after a longer hold
    assert reasons and all("trying fewer" in r for r in reasons[::2])
    assert all("fewer lose answers" in r for r in reasons[1::2])
    below = [i for i, n in enumerate(limits) if n < 16 and i > limits.index(16)]
    assert len(below) <= 0.15 * len(limits) and min(limits[limits.index(16) :]) == 12
    gaps = [b - a for a, b in itertools.pairwise(below) if b - a > 1]
    assert gaps == sorted(gaps)


def test_trials_that_bring_nothing_come_ever_more_rarely() -> None:
    """On a saturated registry each step up is a toss on noise; trying every few rounds would let
    luck ratchet the limit up. Each fruitless trial in a row doubles the wait before the next."""
    clock = Clock()
    limiter = Limiter(32, clock=clock)
    with limiter.session("auto"):
        _drive(limiter, clock, lambda n: 0.005 * n, 600)
    trials = [e for e in limiter.events if e.kind == "increase"]
    failed = [e for e in limiter.events if e.kind == "decrease"]
    # holds of 4, 8, 16, 32 rounds: four trials here, where a fixed hold of 4 made ten
    assert 2 <= len(trials) <= 5 and len(failed) == len(trials)
    assert limiter.limit <= 2 * START


def test_a_fixed_session_never_adapts_and_restores_auto() -> None:
    clock = Clock()
    limiter = Limiter(16, clock=clock)
    with limiter.session(6) as usage:
        assert _drive(limiter, clock, lambda n: 0.05, 30) == [6] * 30
        limiter.observe(429, H({}))
        assert limiter.limit == 6  # a fixed count is the caller's choice; pauses still apply
    assert usage.summary() == {**usage.summary(), "mode": "fixed", "start": 6, "max": 6, "final": 6}
    assert limiter.adaptive and limiter.limit == START
    with limiter.session(64):
        assert limiter.limit == 16  # never above the cap


def test_429_and_503_back_off_once_per_round_trip() -> None:
    clock = Clock()
    limiter = Limiter(32, clock=clock)
    with limiter.session("auto") as usage:
        _drive(limiter, clock, lambda n: 0.05, 8)
        before = limiter.limit
        sent = [limiter.acquire() for _ in range(3)]  # all sent before the backoff
        limiter.observe(429, H({}))
        after = limiter.limit
        assert after == max(1, int(before * BACKOFF))
        limiter.observe(503, H({}))  # this thread's request was sent before the backoff too
        assert limiter.limit == after
        for at in sent:
            limiter.release(at)
        clock.now += 1
        limiter.acquire()  # a request sent after the backoff
        limiter.observe(503, H({}))
        assert limiter.limit == max(1, int(after * BACKOFF))
        limiter.release()
    assert usage.backoffs == 2
    assert [e.reason for e in limiter.events if e.kind == "backoff"] == ["HTTP 429", "HTTP 503"]


def test_rate_limit_headers_slow_everyone_down() -> None:
    clock = Clock()
    limiter = Limiter(32, clock=clock, max_pause=30)
    with limiter.session("auto") as usage:
        _drive(limiter, clock, lambda n: 0.05, 8)
        assert limiter.limit > 4
        limiter.observe(200, H({"RateLimit-Remaining": "3;w=21600"}))  # as Docker Hub sends it
        assert limiter.limit == 3
        limiter.observe(200, H({"ratelimit-remaining": "0", "ratelimit-reset": "12"}))
        assert limiter.paused_until == clock.now + 12
        limiter.observe(429, H({"Retry-After": "3600"}))  # capped at the longest wait the policy allows
        assert limiter.paused_until == clock.now + 30
        limiter.observe(200, H({"X-RateLimit-Remaining": "nonsense"}))  # unreadable: ignored
        limiter.observe(429, H({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))  # in the past: no pause
    reasons = [(e.kind, e.reason) for e in limiter.events]
    assert ("backoff", "RateLimit-Remaining: 3") in reasons
    assert any(k == "pause" and r.startswith("RateLimit-Remaining: 0") for k, r in reasons)
    assert any(k == "pause" and r.startswith("Retry-After: 3600 s on HTTP 429") for k, r in reasons)
    assert usage.pauses == 2 and usage.backoffs >= 1


def test_limits_validate_the_cap() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Limiter(0)
    with pytest.raises(Exception, match="whole number"):
        Limits(concurrency=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'auto' or a whole number"):
        Crawler(Registry.build_with_manual_client("http://127.0.0.1:9/"), workers="many")
    with pytest.raises(ValueError, match="at least 1"):
        Crawler(Registry.build_with_manual_client("http://127.0.0.1:9/"), workers=0)


# -- against the real registry ----------------------------------------------------------------------


def test_auto_equals_fixed_workers_row_for_row(sample: tuple[LocalRegistry, Crawl]) -> None:
    server, fixed = sample
    auto = crawl(Registry.build_with_manual_client(server.url), progress=False)
    assert auto.meta["workers"] == "auto" and fixed.meta["workers"] == 3
    assert auto.meta["concurrency"]["mode"] == "auto" and fixed.meta["concurrency"]["max"] == 3
    _same(auto, fixed)


def test_every_request_of_a_registry_shares_one_cap(sample: tuple[LocalRegistry, Crawl]) -> None:
    """Eight threads of the caller's own, a cap of 2: the front end never sees a third request."""
    server, _ = sample
    with LimitProxy(server.port or 0, 2, delay=0.01) as proxy:
        registry = Registry.build_with_manual_client(proxy.url(), limits=Limits(concurrency=2))
        names = registry.catalog()
        with ThreadPoolExecutor(8) as pool:
            listed = list(pool.map(lambda n: registry.repository(n).tags(), names * 3))
    assert all(listed) and proxy.rejected == 0 and proxy.peak <= 2


def test_a_crawl_through_a_429_front_end_backs_off_and_loses_nothing(
    sample: tuple[LocalRegistry, Crawl],
) -> None:
    """Answers 429 beyond 3 in flight: the crawl starts at 4, backs off, finishes whole."""
    server, direct = sample
    with LimitProxy(server.port or 0, 3, delay=0.02) as proxy:
        registry = Registry.build_with_manual_client(proxy.url())
        result = crawl(registry, progress=False)
    used = result.meta["concurrency"]
    assert result.errors.empty
    _same(result, direct)
    assert proxy.rejected > 0 and used["backoffs"] >= 1  # it did go over, and heard it
    assert used["start"] == START and used["max"] <= 2 * 3 and used["final"] <= 3 + 1
    backoffs = [e for e in registry.client.limiter.events if e.kind == "backoff"]
    assert backoffs and all(e.reason == "HTTP 429" for e in backoffs)


def test_rate_limit_answers_pause_the_whole_crawl(sample: tuple[LocalRegistry, Crawl]) -> None:
    """A Retry-After on one 429 and an exhausted RateLimit-Remaining on one answer pause every
    request; a low remaining count brings the limit down; nothing is lost."""
    server, direct = sample
    seen = {"tags": 0, "manifests": 0}
    lock = threading.Lock()

    def throttle(exchange: Exchange, forward: Callable[[], Reply]) -> Reply | None:
        kind = (
            "tags" if "/tags/list" in exchange.path else "manifests" if "/manifests/" in exchange.path else ""
        )
        if not kind or exchange.method != "GET":
            return None
        with lock:
            seen[kind] += 1
            n = seen[kind]
        if kind == "tags" and n == 1:
            return Reply(429, {"Retry-After": "1"}, b"{}")  # urllib3 reads whole seconds only
        if (n == 2 and kind == "tags") or (n == 1 and kind == "manifests"):
            reply = forward()
            if kind == "tags":  # as Docker Hub sends it
                reply.headers.update({"RateLimit-Limit": "100;w=21600", "RateLimit-Remaining": "1;w=21600"})
            else:  # (the manifests come once every tags list is in)
                reply.headers.update({"RateLimit-Remaining": "0", "RateLimit-Reset": "0.2"})
            return reply
        return None

    with FaultProxy(server.port or 0) as proxy:
        proxy.rules.append(throttle)
        registry = Registry.build_with_manual_client(proxy.url)
        result = crawl(registry, progress=False)
    _same(result, direct)
    events = [(e.kind, e.reason) for e in registry.client.limiter.events]
    assert ("backoff", "HTTP 429") in events
    assert any(k == "pause" and r.startswith("Retry-After: 1 s on HTTP 429") for k, r in events)
    assert ("backoff", "RateLimit-Remaining: 1") in events
    assert any(k == "pause" and r.startswith("RateLimit-Remaining: 0") for k, r in events)
    used = result.meta["concurrency"]
    assert used["pauses"] == 2 and used["paused_seconds"] > 0 and used["backoffs"] >= 2
