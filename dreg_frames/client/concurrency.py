"""How many requests one registry gets at once: one shared limit, fixed or adaptive.

Every request of a :class:`~.http.Transport` takes a slot of its :class:`Limiter` first, so the limit
holds whatever the number of threads asking: a crawl runs a thread pool as large as the cap and the
limiter decides how many of them are talking to the registry.

Adaptive ("auto") is AIMD, as TCP does it. It starts at a few requests and grows while the
throughput per request in flight holds (by Little's law, one over the mean time a slot is held): a
registry across a network answers as fast with 32 requests in flight as with 4, so 32 do eight times
the work; a registry whose CPU is saturated answers each later as more are sent, and growth stops.
Before the first sign of trouble it doubles each round (a round is as many answers as the
limit); afterwards it tries a quarter more now and then and, once more brought nothing, a fifth
fewer, kept while they answer within the noise of as much (never below the start); after a 429, it
creeps up by one.
It backs off multiplicatively (to 70%) on 429 and 503, once per round trip (answers to requests
sent before the last backoff do not count again), and on rate-limit headers:
``RateLimit-Remaining`` (or ``X-RateLimit-Remaining``) under the limit brings the limit down to it,
and at 0 pauses everyone until ``RateLimit-Reset``. ``Retry-After`` on a 429 or 503 pauses
everyone, not only the request that saw it. It never goes above ``cap`` (``Limits(concurrency=...)``).

What happened is kept: :attr:`Limiter.events` (increases, backoffs, pauses, with their reasons), and
per crawl a :class:`Usage` summary (start, max, final, backoffs, pauses, most in flight).
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

__all__ = ["BACKOFF", "START", "Event", "Limiter", "Usage"]

START = 4
# A backoff keeps this share of the limit (TCP CUBIC's 0.7: 0.5 idles too much of a shared cap).
BACKOFF = 0.7
# A higher limit is kept when its capacity grew by at least this share of the proportional gain,
# and by at least _NOISE (or half the proportional gain, for a step too small for that): a 25%
# probe's quarter, 6%, is within what a saturated registry's capacity wanders between two rounds...
_GAIN = 0.25
_NOISE = 0.10
# ...else the limit goes back, and stays there this many rounds before trying again, twice as many
# after each further step in a row that brought nothing: on a saturated registry every trial is a
# coin toss on noise, and trying often lets luck ratchet the limit up (measured on loopback: 8 crept
# to 22 in 8 s, each step costing client CPU for no throughput).
_HOLD_ROUNDS = 4
_MAX_HOLD_ROUNDS = 64
_MIN_ROUND = 16
# Steps: doubling until the first sign of a limit (TCP's slow start), then by a quarter (smaller
# would be lost in the noise of a busy machine), or by one after a 429 (AIMD's additive increase).
_SLOW_START_GROWTH = 2.0
_PROBE_GROWTH = 1.25
# Pauses are capped (a Docker Hub window is hours); the retry policy deals with what is left.
MAX_PAUSE = 60.0
_EXHAUSTED_PAUSE = 1.0  # RateLimit-Remaining: 0 without a RateLimit-Reset


@dataclass(frozen=True)
class Event:
    """One change of the limit or pause: ``kind`` is increase, decrease, backoff, pause or mode."""

    at: float  # time.monotonic()
    kind: str
    limit: int
    reason: str


@dataclass
class Usage:
    """The concurrency one crawl used (``result.meta["concurrency"]``)."""

    mode: str
    cap: int
    start: int
    max: int
    final: int = 0
    backoffs: int = 0
    pauses: int = 0
    max_in_flight: int = 0
    paused_seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "cap": self.cap,
            "start": self.start,
            "max": self.max,
            "final": self.final,
            "backoffs": self.backoffs,
            "pauses": self.pauses,
            "paused_seconds": round(self.paused_seconds, 3),
            "max_in_flight": self.max_in_flight,
        }


class Limiter:
    """The slots of one registry. ``cap``: never more in flight; ``start``: where "auto" begins.

    Example::

        limiter = registry.client.limiter
        with limiter.session("auto") as usage:
            ...                      # requests from any number of threads
        usage.summary()              # {'mode': 'auto', 'start': 4, 'max': 32, ...}
    """

    def __init__(
        self,
        cap: int = 32,
        *,
        start: int = START,
        max_pause: float = MAX_PAUSE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise ValueError(f"the concurrency cap must be a whole number of at least 1, got {cap!r}")
        self.cap = cap
        self.start = max(1, min(start, cap))
        self.adaptive = True
        self.limit = self.start
        self.in_flight = 0
        self.paused_until = 0.0
        self.max_pause = max_pause
        self.events: deque[Event] = deque(maxlen=10_000)
        self._clock = clock
        # The hot paths take the plain lock (a Condition's own __enter__ is Python code) and
        # notify only when someone waits.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._waiting = 0
        self._local = threading.local()
        self._slow_start = True
        self._additive = False
        self._round_held: list[float] = []  # how long each slot of this round was held
        self._round_start = clock()
        self._settle = 0
        self._round_full = False
        self._trial: tuple[int, float] | None = None  # (limit before, its throughput) while trying more
        self._hold = 0
        self._hold_next = _HOLD_ROUNDS
        self._down_next = False  # the next trial after a hold goes down (the last one up failed)
        self._last_backoff = -math.inf
        self._usages: list[Usage] = []
        self._listeners: list[Callable[[int], None]] = []

    def __repr__(self) -> str:
        mode = "auto" if self.adaptive else "fixed"
        return f"Limiter({mode}, limit={self.limit}, cap={self.cap}, in_flight={self.in_flight})"

    # -- slots ---------------------------------------------------------------------------------------
    def acquire(self) -> float:
        """Wait for a slot (and for any pause to end); one per thread at a time. Returns when it
        was had (the clock's time), which :meth:`release` takes from the thread if not given."""
        with self._lock:
            while True:
                now = self._clock()
                if now < self.paused_until:
                    self._wait(self.paused_until - now)
                    continue
                if self.in_flight < self.limit:
                    break
                self._round_full = True  # the callers want more than the limit gives
                self._wait(None)
            self.in_flight += 1
            if self.in_flight >= self.limit:
                self._round_full = True
            for usage in self._usages:
                usage.max_in_flight = max(usage.max_in_flight, self.in_flight)
        self._local.started = now
        return now

    def release(self, started: float | None = None, *, completed: bool = True) -> None:
        """Give the slot back; ``completed`` counts it as an answer for the adaptation."""
        if started is None:
            started = getattr(self._local, "started", None)
        self._local.started = None
        with self._lock:
            self.in_flight -= 1
            if completed and self.adaptive and started is not None:
                now = self._clock()
                if self._settle:
                    # Answers to requests sent before the last change: the new limit is judged on
                    # the ones after.
                    self._settle -= 1
                    if not self._settle:
                        self._round_held.clear()
                        self._round_full, self._round_start = False, now
                else:
                    self._round_held.append(now - started)
                    if len(self._round_held) >= _MIN_ROUND and self._round_over(now):
                        self._adapt(now)
            if self._waiting:
                self._cond.notify()

    def _wait(self, timeout: float | None) -> None:
        """Wait for a slot or the end of a pause (the lock held)."""
        self._waiting += 1
        try:
            self._cond.wait(timeout)
        finally:
            self._waiting -= 1

    @contextmanager
    def slot(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()

    @contextmanager
    def idle(self) -> Iterator[None]:
        """Give this thread's slot back while it waits (a retry's backoff), and take one again after."""
        if getattr(self._local, "started", None) is None:
            yield  # no slot held here (a pool used on its own)
            return
        self.release(completed=False)
        try:
            yield
        finally:
            self.acquire()

    # -- what the registry says ----------------------------------------------------------------------
    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Every answer, retried ones included: 429/503 back off, rate-limit headers slow down.
        ``headers`` is case-insensitive, as requests gives them."""
        if (
            status != 429
            and status != 503
            and "ratelimit-remaining" not in headers
            and "x-ratelimit-remaining" not in headers
        ):
            return
        now = self._clock()
        with self._cond:
            if status in (429, 503):
                wait = _retry_after(headers.get("Retry-After"))
                if wait:
                    self._pause(now, wait, f"Retry-After: {wait:g} s on HTTP {status}")
                self._backoff(now, f"HTTP {status}")
            remaining = _leading_number(
                headers.get("RateLimit-Remaining") or headers.get("X-RateLimit-Remaining")
            )
            if remaining is None:
                return
            if remaining <= 0:
                reset = _reset_seconds(headers.get("RateLimit-Reset") or headers.get("X-RateLimit-Reset"))
                self._pause(now, _EXHAUSTED_PAUSE if reset is None else reset, "RateLimit-Remaining: 0")
                self._backoff(now, "RateLimit-Remaining: 0")
            elif self.adaptive and remaining < self.limit:
                self._slow_start, self._additive, self._trial = False, True, None
                for usage in self._usages:
                    usage.backoffs += 1
                self._set(max(1, int(remaining)), "backoff", f"RateLimit-Remaining: {remaining:g}")

    def subscribe(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(limit)`` whenever the limit grows (a pool waking threads it parked)."""
        with self._cond:
            self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[int], None]) -> None:
        with self._cond:
            self._listeners.remove(listener)

    # -- modes ---------------------------------------------------------------------------------------
    @contextmanager
    def session(self, workers: int | str = "auto") -> Iterator[Usage]:
        """Run with ``workers`` ("auto", or a fixed number, never above the cap) and collect what was
        used; the previous mode comes back afterwards."""
        with self._cond:
            previous = (self.adaptive, self.limit)
            if workers == "auto":
                if not self.adaptive:
                    self.limit, self._slow_start, self._trial, self._hold = self.start, True, None, 0
                    self._hold_next, self._down_next = _HOLD_ROUNDS, False
                    self._additive = False
                self.adaptive = True
                self._round_held, self._round_full, self._round_start = [], False, self._clock()
            else:
                assert isinstance(workers, int)
                self.adaptive = False
                self.limit = max(1, min(workers, self.cap))
            self._record(self._clock(), "mode", "auto" if self.adaptive else f"fixed {workers}")
            usage = Usage(
                mode="auto" if self.adaptive else "fixed",
                cap=self.cap,
                start=self.limit,
                max=self.limit,
            )
            self._usages.append(usage)
            self._cond.notify_all()
        try:
            yield usage
        finally:
            with self._cond:
                usage.final = self.limit
                self._usages.remove(usage)
                self.adaptive, self.limit = previous
                self._cond.notify_all()

    # -- inside the lock -----------------------------------------------------------------------------
    def _round_over(self, now: float) -> bool:
        # Long enough to tell a step's gain from noise: a round trip or so while growing fast, more after.
        count = len(self._round_held)
        if self._slow_start:
            return count >= max(self.limit, _MIN_ROUND) and now - self._round_start >= 0.05
        return count >= max(2 * self.limit, _MIN_ROUND) and now - self._round_start >= 0.2

    def _adapt(self, now: float) -> None:
        """End of a round: try another limit, or judge the one being tried by what it gave.

        What a limit gives is its capacity, ``limit / median time a slot is held`` (Little's law):
        the throughput it yields when the callers keep it busy, measured without being misled by
        rounds where they did not (between the phases of a crawl, at its end). Trials go both
        ways: up while more brings more, and down, once growth has stopped, while fewer lose
        nothing. Without the downward trials a limit reached while the registry had room (the
        quick tag lists at a crawl's start) stays when the manifests saturate it, every extra
        request in flight costing our CPU and the registry's queue for no throughput."""
        held = statistics.median(self._round_held)
        full = self._round_full
        self._round_held, self._round_full, self._round_start = [], False, now
        capacity = self.limit / max(held, 1e-6)  # answers per second the limit allows
        if not full:
            return  # the callers did not want more than the limit: nothing says more would help
        if self._trial is not None:
            before, before_capacity = self._trial
            self._trial = None
            if self.limit > before:
                # Latency-bound, capacity grows with the limit; saturated (the registry's CPU, ours,
                # a proxy's), every answer comes later and it stays flat. Keep the step if it
                # brought at least a quarter of the proportional gain: a stricter bar is lost in the
                # noise of a busy machine (measured through the 20 ms delay proxy, 0.4 undid good steps).
                proportional = self.limit / before - 1
                if capacity < before_capacity * (
                    1 + max(_GAIN * proportional, min(_NOISE, proportional / 2))
                ):
                    self._fruitless(down_next=True)
                    reason = f"{capacity:.0f}/s at {self.limit}, {before_capacity:.0f}/s at {before}: no gain"
                    self._set(before, "decrease", reason)
                    return
                self._hold_next = max(_HOLD_ROUNDS, self._hold_next // 2)
            else:
                # Fewer slots are kept unless they lost more than the noise (or a quarter of their
                # proportional share, were that more): latency-bound, a fifth fewer slots lose a
                # fifth of the answers; saturated, a loss within the noise is no loss.
                proportional = 1 - self.limit / before
                if capacity < before_capacity * (
                    1 - max(_GAIN * proportional, min(_NOISE, proportional / 2))
                ):
                    self._fruitless(down_next=False)
                    lost = f"{capacity:.0f}/s at {self.limit}, {before_capacity:.0f}/s at {before}"
                    self._set(before, "increase", f"{lost}: fewer lose answers")
                    return
                self._hold_next = max(_HOLD_ROUNDS, self._hold_next // 2)
                self._step_down(capacity, held)
                return
        elif self._hold:
            self._hold -= 1
            return
        elif self._slow_start and self.limit >= self.cap:
            self._slow_start = False  # grown to the cap: from now on, judged step by step
        elif not self._slow_start and not self._additive and (self._down_next or self.limit >= self.cap):
            self._step_down(capacity, held)
            return
        if self.limit < self.cap:
            if self._slow_start:
                grown = math.ceil(self.limit * _SLOW_START_GROWTH)
            elif self._additive:
                grown = self.limit + 1  # after a 429: creep up to where the registry said stop
            else:
                grown = math.ceil(self.limit * _PROBE_GROWTH)  # a step large enough to measure
            self._trial = (self.limit, capacity)
            reason = f"{capacity:.0f}/s at {self.limit} ({held * 1000:.1f} ms a request): trying more"
            self._set(min(self.cap, grown), "increase", reason)

    def _step_down(self, capacity: float, held: float) -> None:
        """Try a limit a step lower (never below where auto starts: only a 429 goes lower)."""
        lower = max(self.start, math.floor(self.limit / _PROBE_GROWTH))
        if lower >= self.limit:
            self._down_next = False
            return
        self._trial = (self.limit, capacity)
        reason = f"{capacity:.0f}/s at {self.limit} ({held * 1000:.1f} ms a request): trying fewer"
        self._set(lower, "decrease", reason)

    def _fruitless(self, *, down_next: bool) -> None:
        """A trial that brought nothing: stay a while, twice as long after each in a row, then
        try the other way."""
        self._slow_start = False
        self._hold = self._hold_next
        self._hold_next = min(2 * self._hold_next, _MAX_HOLD_ROUNDS)
        self._down_next = down_next

    def _backoff(self, now: float, reason: str) -> None:
        started = getattr(self._local, "started", None)
        if not self.adaptive or (started is not None and started <= self._last_backoff):
            return  # sent before the last backoff: that one already answered for it
        self._last_backoff = now
        self._slow_start = False
        self._additive = True
        self._trial = None
        self._round_held, self._round_full, self._round_start = [], False, now
        for usage in self._usages:
            usage.backoffs += 1
        self._set(max(1, int(self.limit * BACKOFF)), "backoff", reason)

    def _pause(self, now: float, seconds: float, reason: str) -> None:
        seconds = min(seconds, self.max_pause)
        if seconds <= 0:
            return
        until = now + seconds
        if until <= self.paused_until:
            return
        added = until - max(now, self.paused_until)
        self.paused_until = until
        for usage in self._usages:
            usage.pauses += 1
            usage.paused_seconds += added
        self._record(now, "pause", f"{reason} (everyone waits {seconds:g} s)")

    def _set(self, limit: int, kind: str, reason: str) -> None:
        grew = limit > self.limit
        self.limit = limit
        self._settle = self.in_flight  # answers to requests sent under the old limit
        self._round_held, self._round_full = [], False
        for usage in self._usages:
            usage.max = max(usage.max, limit)
        self._record(self._clock(), kind, reason)
        if grew:
            self._cond.notify_all()
            for listener in self._listeners:
                listener(limit)

    def _record(self, now: float, kind: str, reason: str) -> None:
        self.events.append(Event(now, kind, self.limit, reason))


def _leading_number(value: str | None) -> float | None:
    """``76;w=21600`` (Docker Hub) or ``76`` -> 76."""
    if not value:
        return None
    head = value.split(";", 1)[0].split(",", 1)[0].strip()
    try:
        number = float(head)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` (seconds or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    number = _leading_number(value)
    if number is not None:
        return number
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _reset_seconds(value: str | None) -> float | None:
    """``RateLimit-Reset``: seconds to wait, or (GitHub's ``X-RateLimit-Reset``) a Unix time."""
    number = _leading_number(value)
    if number is None:
        return None
    if number > 1e9:
        return max(0.0, number - time.time())
    return number
