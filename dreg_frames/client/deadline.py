"""A total time bound per request, enforced on the sockets themselves.

A socket timeout bounds each read, not a request: a server that trickles its headers or body one
byte at a time never trips it. So every request runs inside a :func:`scope` with a
:class:`Deadline`; the connections it uses register with that deadline, and one watchdog thread shuts
their sockets down when it passes. The blocked read then ends, and the caller raises
:class:`~.errors.DeadlineExceeded`.

Scopes nest: a request made inside another (a token fetch answering a 401, a refetch of a body cut
short) shares the outer deadline, so the bound is on everything one call of the client does.
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
import time
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import PoolManager

from .errors import DeadlineExceeded

__all__ = ["Deadline", "Scope", "WatchedAdapter", "current", "scope", "watch_pools"]


class Deadline:
    """The end of one request's time: ``seconds`` after it started, everything included."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.monotonic()
        self.at = self.started + seconds
        self.expired = False
        self._connections: list[Any] = []
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def attach(self, connection: Any) -> None:
        """Register a connection this request is using; refuse to start once the time is up."""
        connection._dreg_deadline = self
        with self._lock:
            self._connections.append(connection)
        if self.expired:
            raise self.exceeded("a request")

    def check(self, what: str) -> None:
        if self.expired or time.monotonic() >= self.at:
            self.expired = True
            raise self.exceeded(what)

    def exceeded(self, what: str, where: str = "") -> DeadlineExceeded:
        place = f" from {where}" if where else ""
        return DeadlineExceeded(
            f"{what}: no complete answer{place} within {self.seconds:g} s "
            "(the per-request deadline, Limits(deadline=...))",
            seconds=self.seconds,
        )

    def fire(self) -> None:
        """Time is up: end every blocked read of this request by shutting its sockets down."""
        self.expired = True
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            if getattr(connection, "_dreg_deadline", None) is not self:
                continue  # back in the pool and taken by another request since
            for sock in (getattr(connection, "sock", None), getattr(connection, "_dreg_raw_sock", None)):
                if sock is not None:
                    # socket.socket's own shutdown: SSLSocket's would drop its TLS state under the
                    # thread still reading from it.
                    with contextlib.suppress(OSError, ValueError, TypeError):
                        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread that fires deadlines; only requests in flight are watched.

    While requests come, it wakes at least every ``_TICK`` seconds and sees new deadlines by
    itself: a request only wakes it when its deadline is due before that (waking a thread for each
    of a crawl's requests costs more CPU than the request's own parsing). Idle for ``_IDLE``
    seconds, it sleeps until told."""

    _TICK = 1.0
    _IDLE = 10.0

    def __init__(self) -> None:
        # add/remove take the plain lock (a Condition's own __enter__ is Python code, twice a request)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._active: set[Deadline] = set()
        self._wake_by = math.inf  # when the thread looks again by itself (inf: only when told)
        self._thread: threading.Thread | None = None

    def add(self, deadline: Deadline) -> None:
        with self._lock:
            self._active.add(deadline)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="dreg-deadlines", daemon=True)
                self._thread.start()
            if deadline.at < self._wake_by:
                self._wake_by = deadline.at
                self._cond.notify()

    def remove(self, deadline: Deadline) -> None:
        with self._lock:
            self._active.discard(deadline)

    def _run(self) -> None:
        idle_since: float | None = None
        with self._cond:
            while True:
                now = time.monotonic()
                for deadline in [d for d in self._active if d.at <= now]:
                    self._active.discard(deadline)
                    deadline.fire()
                if self._active:
                    idle_since = None
                    wake = min(min(d.at for d in self._active), now + self._TICK)
                else:
                    idle_since = now if idle_since is None else idle_since
                    wake = now + self._TICK if now - idle_since < self._IDLE else math.inf
                self._wake_by = wake
                self._cond.wait(None if wake == math.inf else max(wake - now, 0.001))


_WATCHDOG = _Watchdog()
_local = threading.local()


def current() -> Deadline | None:
    """The deadline of the request this thread is making, if any."""
    deadline: Deadline | None = getattr(_local, "deadline", None)
    return deadline


def scope(seconds: float) -> Scope:
    """Run a request within ``seconds``; inside another scope, share that one's deadline.

    Example::

        with scope(30) as deadline:
            ...  # requests made here end when deadline passes
    """
    return Scope(seconds)


class Scope:
    """The context :func:`scope` returns (a class: a crawl enters one per request)."""

    __slots__ = ("_deadline", "_seconds")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._deadline: Deadline | None = None

    def __enter__(self) -> Deadline:
        outer = current()
        if outer is not None:
            return outer
        deadline = self._deadline = Deadline(self._seconds)
        _WATCHDOG.add(deadline)
        _local.deadline = deadline
        return deadline

    def __exit__(self, *exc: object) -> None:
        deadline = self._deadline
        if deadline is not None:
            self._deadline = None
            _local.deadline = None
            _WATCHDOG.remove(deadline)


class _Watched:
    """Connection mixin: whatever request uses the connection registers it with its deadline."""

    def connect(self) -> None:
        deadline = current()
        if deadline is not None:
            deadline.attach(self)
        super().connect()  # type: ignore[misc]

    def _new_conn(self) -> socket.socket:
        # The TLS handshake runs on this socket before it becomes ``self.sock``.
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        self._dreg_raw_sock = sock
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        deadline = current()
        if deadline is not None:
            deadline.attach(self)
        super().request(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


def watch_pools(manager: PoolManager) -> PoolManager:
    """Make ``manager``'s connections obey the deadline of the request using them."""
    manager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
    return manager


class WatchedAdapter(HTTPAdapter):
    """requests' adapter with deadline-aware connections (``send`` is untouched, so libraries that
    mock it, such as ``responses``, still work)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        watch_pools(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> PoolManager:
        manager: PoolManager = super().proxy_manager_for(proxy, **kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS pools have connection classes of their own
            watch_pools(manager)
        return manager
