"""The endpoint a Distribution registry's ``notifications`` config points at.

Each POST carries an event envelope; it is answered 200 only once every event in it is committed
to the :class:`~dreg_frames.events.store.EventStore`. Anything else (store error, stopped in the
middle) leaves the registry without a 2xx, and the registry sends the same events again after its
backoff: ids already stored are skipped, so nothing is lost and nothing is counted twice.

Why not ``http.server``: Distribution 2.8 opens a new connection for every event and sends them
one at a time, so the receiver's cost per connection is the registry's delivery rate. Measured on
the project's 2-core machine, ``http.server`` (a thread per connection, headers parsed by the
``email`` package) cost about twice the CPU per event of an asyncio protocol with httptools' C
parser (the parser uvicorn uses), and fell behind a registry serving pulls flat out. No pandas:
this is a long-running service.

Example::

    with EventReceiver("events.db", port=5001) as receiver:   # http://127.0.0.1:5001/events
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import threading
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import cast

import httptools

from .store import EventStore, EventStoreError, InvalidEnvelope, parse_envelope

__all__ = ["DEFAULT_MAX_BODY", "EventReceiver", "ReceiverStats"]

log = logging.getLogger("dreg_frames.events")

# Distribution sends one event per request (about 1 KiB); an envelope of a few thousand fits.
DEFAULT_MAX_BODY = 4 * 1024 * 1024
# Distribution sends its request as soon as it connects: a connection silent this long is closed,
# so idle or slow clients cannot pile up.
_IDLE_TIMEOUT = 15.0
_MAX_HEADER_BYTES = 64 * 1024


class ReceiverStats:
    """Counters since start (read them for monitoring; updated under a lock)."""

    _NAMES = ("requests", "stored", "duplicates", "rejected", "failed")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self._NAMES, 0)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                self._counts[name] += value

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def _response(status: HTTPStatus, text: str = "", close: bool = False) -> bytes:
    body = text.encode()
    head = f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: text/plain\r\n"
    head += f"Content-Length: {len(body)}\r\n" + ("Connection: close\r\n" if close else "") + "\r\n"
    return head.encode("latin-1") + body


class _Connection(asyncio.Protocol):
    """One client connection: httptools parses, this decides and answers. Every callback runs on the
    receiver's event loop thread, so a request is handled whole before the next one starts."""

    def __init__(self, receiver: EventReceiver) -> None:
        self.receiver = receiver
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.header_bytes = 0
        self.body: list[bytes] = []
        self.body_size = 0
        self.refused: bytes | None = None  # an answer decided before the body arrived
        self.idle: asyncio.TimerHandle | None = None

    # -- connection --
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.receiver._connections.add(self)
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.receiver._connections.discard(self)
        if self.idle is not None:
            self.idle.cancel()

    def _arm_idle(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        loop = asyncio.get_running_loop()
        self.idle = loop.call_later(_IDLE_TIMEOUT, self.close)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self._arm_idle()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._send(_response(HTTPStatus.BAD_REQUEST, "upgrades are not served\n", close=True), close=True)
        except httptools.HttpParserError as exc:
            self._send(
                _response(HTTPStatus.BAD_REQUEST, f"bad HTTP request: {exc}\n", close=True), close=True
            )

    def _send(self, payload: bytes, close: bool = False) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(payload)
        if close:
            self.transport.close()

    # -- httptools callbacks --
    def on_message_begin(self) -> None:
        self.url, self.headers, self.header_bytes = b"", {}, 0
        self.body, self.body_size, self.refused = [], 0, None

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value)
        if self.header_bytes > _MAX_HEADER_BYTES:
            raise httptools.HttpParserError("headers too large")
        self.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        receiver = self.receiver
        method = self.parser.get_method()
        path = self.url.split(b"?", 1)[0].decode("latin-1")
        if method == b"POST":
            receiver.stats.add(requests=1)
            if path != receiver.path:
                self.refused = _response(
                    HTTPStatus.NOT_FOUND, f"events are received at {receiver.path}\n", True
                )
            elif receiver.token is not None and not hmac.compare_digest(
                self.headers.get(b"authorization", b""), f"Bearer {receiver.token}".encode()
            ):
                self.refused = _response(
                    HTTPStatus.UNAUTHORIZED, "missing or wrong Authorization header\n", True
                )
            else:
                length = self.headers.get(b"content-length")
                if length is not None and length.strip().isdigit() and int(length) > receiver.max_body:
                    self.refused = _response(
                        HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {receiver.max_body} bytes\n", True
                    )
            if self.refused is not None:
                self._reject(self.refused)
        elif method in (b"GET", b"HEAD"):
            found = path in ("/", "/healthz", receiver.path)
            text = (
                "".join(f"{k} {v}\n" for k, v in receiver.stats.as_dict().items()) if found else "not found\n"
            )
            self.refused = _response(HTTPStatus.OK if found else HTTPStatus.NOT_FOUND, text)
        else:
            self.refused = _response(HTTPStatus.METHOD_NOT_ALLOWED, "POST events, GET /healthz\n", True)

    def _reject(self, answer: bytes) -> None:
        # Answer now and close: the body (maybe huge) is never read.
        self.receiver.stats.add(rejected=1)
        log.warning("rejected a request: %s", answer.split(b"\r\n", 1)[0].decode("latin-1"))
        self._send(answer, close=True)

    def on_body(self, chunk: bytes) -> None:
        if self.refused is not None:
            return
        self.body_size += len(chunk)
        if self.body_size > self.receiver.max_body:  # chunked bodies carry no Content-Length
            self.refused = _response(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {self.receiver.max_body} bytes\n", True
            )
            self._reject(self.refused)
            return
        self.body.append(chunk)

    def on_message_complete(self) -> None:
        keep_alive = self.parser.should_keep_alive()
        if self.refused is not None:
            if self.parser.get_method() != b"POST":
                self._send(self.refused, close=not keep_alive or b"Connection: close" in self.refused)
            return
        self._send(self.receiver._store_body(b"".join(self.body)), close=not keep_alive)


class EventReceiver:
    """An HTTP endpoint storing registry notification events in an :class:`EventStore`.

    ``token``: when set, requests must carry ``Authorization: Bearer <token>`` (set it in the
    registry's endpoint ``headers``); others get 401. Bodies over ``max_body`` bytes get 413, bodies
    that are not an event envelope 400; neither stores anything. ``port=0`` picks a free port.
    Every ``chunk_size`` events the hot table is packed into columnar chunks in the background.

    Example::

        receiver = EventReceiver("events.db", host="127.0.0.1", port=5001, token="s3cret").start()
        receiver.url        # 'http://127.0.0.1:5001/events': the registry's notifications endpoint
        receiver.stop()
    """

    def __init__(
        self,
        store: str | os.PathLike[str] | EventStore,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/events",
        token: str | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        fsync: bool = False,
        compact: bool = True,
    ) -> None:
        self.store = store if isinstance(store, EventStore) else EventStore(store, fsync=fsync)
        self._own_store = not isinstance(store, EventStore)
        self.host = host
        self.port = port
        self.path = path if path.startswith("/") else "/" + path
        self.token = token or None
        self.max_body = max_body
        self.stats = ReceiverStats()
        self.on_stored: Callable[[int], None] | None = None
        self._compact = compact
        self._connections: set[_Connection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._compactor: threading.Thread | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._since_check = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    def _store_body(self, body: bytes) -> bytes:
        try:
            rows = parse_envelope(body)
        except InvalidEnvelope as exc:
            self.stats.add(rejected=1)
            log.warning("rejected events: %s", exc)
            return _response(HTTPStatus.BAD_REQUEST, f"{exc}\n")
        try:
            new = self.store.add_rows(rows)
        except EventStoreError as exc:
            log.error("%s", exc)
            self.stats.add(failed=1)
            return _response(HTTPStatus.SERVICE_UNAVAILABLE, "cannot store events now; send again\n")
        except Exception:  # never crash the service on one request; the registry will retry
            log.exception("storing events failed")
            self.stats.add(failed=1)
            return _response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error; send again\n")
        self.stats.add(stored=new, duplicates=len(rows) - new)
        self._since_check += new
        if self._since_check >= 4096:  # a look at the hot table every few thousand events is plenty
            self._since_check = 0
            self._wake.set()
        if self.on_stored is not None:
            self.on_stored(new)
        return _response(HTTPStatus.OK)

    def start(self) -> EventReceiver:
        """Listen and serve on an event loop in a background thread; returns self."""
        self._stopping.clear()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = _new_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    loop.create_server(lambda: _Connection(self), self.host, self.port, reuse_address=True)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # the caller gets it from start()
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="dreg-events", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        if self._compact:
            self._compactor = threading.Thread(
                target=self._compact_loop, name="dreg-events-compact", daemon=True
            )
            self._compactor.start()
        log.info("receiving registry events at %s into %s", self.url, self.store.path)
        return self

    def serve_forever(self) -> None:
        """Run in the foreground until :meth:`request_stop` (from a signal handler) or Ctrl-C."""
        if self._thread is None:
            self.start()
        try:
            while not self._stopping.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.close()

    def request_stop(self) -> None:
        """Ask :meth:`serve_forever` to return (safe from a signal handler)."""
        self._stopping.set()

    def _compact_loop(self) -> None:
        # Its own connection: packing a chunk never holds up the requests being answered.
        store = EventStore(self.store.path, chunk_size=self.store.chunk_size)
        try:
            while not self._stopping.is_set():
                self._wake.wait(10.0)
                self._wake.clear()
                if store.hot_count() >= store.chunk_size:
                    try:
                        store.compact()
                    except EventStoreError as exc:
                        log.warning("compaction deferred: %s", exc)
        finally:
            store.close()

    def stop(self) -> None:
        """Stop listening and cut open connections; events not yet answered will be sent again."""
        self._stopping.set()
        self._wake.set()
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():

            def shut() -> None:
                if self._server is not None:
                    self._server.close()
                for connection in list(self._connections):
                    connection.close()
                loop.stop()

            # handlers run on the loop, so a request being stored finishes before shut() runs
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(shut)
            thread.join(timeout=10)
        self._loop = self._thread = self._server = None
        if self._compactor is not None:
            self._compactor.join(timeout=30)
            self._compactor = None

    def close(self) -> None:
        """Stop, and close the store if this receiver opened it."""
        self.stop()
        if self._own_store:
            self.store.close()

    def __enter__(self) -> EventReceiver:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EventReceiver({self.url!r}, store={str(Path(self.store.path))!r})"


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (about a third less CPU per connection), else asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop
