"""One keep-alive HTTP/1.1 connection for GET and HEAD, its answers parsed by httptools (llhttp).

A crawl is tens of thousands of small reads, and on a small machine the client's CPU competes with
the registry's. urllib3 costs about 0.4 ms of CPU per request (URL re-parsing and percent-encoding,
``http.client``'s header parsing through the ``email`` package, pool bookkeeping); this costs under
0.1 ms (measured on loopback, one thread). httptools is llhttp, the C parser of Node.js, already a
dependency for the events receiver: nothing here parses HTTP by hand. What urllib3 did for reads is
kept, by :mod:`.readpool`, which drives the same :class:`~urllib3.util.retry.Retry` policy; the
errors raised here are urllib3's own exception types, so everything above maps them as before.

What a hostile server cannot do here: make a header block over 256 KiB or 100 headers (the
header count of ``http.client``), inflate a compressed body faster than the reader asks for it (gzip and
deflate are decoded ``amt`` bytes at a time), or hold a read past the socket timeout; the request's
deadline (:mod:`.deadline`) shuts the socket down like any other.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import ssl
import warnings
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httptools
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import (
    ConnectTimeoutError,
    DecodeError,
    InsecureRequestWarning,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util.wait import wait_for_read

from . import deadline as _deadline

__all__ = ["Answer", "Connection", "Headers"]

# http.client's bounds are 100 headers of at most 64 KiB each; a whole header block of 256 KiB is
# more than any registry sends.
MAX_HEADER_BYTES = 256 * 1024
MAX_HEADERS = 100
_RECV = 64 * 1024
# A drained body (a redirect's, a retried error's) is read only this far; beyond, the connection goes.
_DRAIN_BYTES = 64 * 1024
_NO_BODY_STATUSES = frozenset({204, 304})
# Header values that would split the request, and names that are not HTTP tokens.
_BAD_VALUE = re.compile(r"[\r\n\x00]")
_BAD_NAME = re.compile(r"[^!#$%&'*+\-.^_`|~0-9A-Za-z]")
_POLL = getattr(select, "poll", None)  # not on Windows: urllib3's wait_for_read picks select there


# Header lines already checked, keyed by (name, value): a crawl sends the same few thousands of
# times (bounded, in case a caller varies them).
_checked: dict[tuple[str, str], tuple[str, str]] = {}
_CHECKED_MAX = 256


def _header_line(name: str, value: str) -> tuple[str, str]:
    """``(replaces, line)``: the line to send, and "host" or "accept-encoding" when it takes the
    place of the default one (else ""). A value with CR, LF or NUL, or a name that is not an HTTP
    token, is refused without repeating it (it may be a token)."""
    if _BAD_NAME.search(name) or _BAD_VALUE.search(value):
        raise ValueError("Invalid header name or value")
    lower = name.lower()
    line = (lower if lower in ("host", "accept-encoding") else "", f"{name}: {value}")
    if lower != "authorization":  # credentials are not kept in a module-wide table
        if len(_checked) >= _CHECKED_MAX:
            _checked.clear()
        _checked[name, value] = line
    return line


class Connection:
    """A socket to one origin, reused for answer after answer while the server keeps it open.

    ``sock`` and ``_dreg_raw_sock`` are what a request's deadline shuts down when it passes
    (:meth:`.deadline.Deadline.fire`); ``_dreg_deadline`` names the deadline using it now.
    """

    __slots__ = (
        "_connect_timeout",
        "_context",
        "_dreg_deadline",
        "_dreg_raw_sock",
        "_read_timeout",
        "host",
        "port",
        "scheme",
        "sock",
    )

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int,
        *,
        context: ssl.SSLContext | None,
        connect_timeout: float | None,
        read_timeout: float | None,
    ) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self._context = context
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self.sock: socket.socket | None = None
        self._dreg_raw_sock: socket.socket | None = None
        self._dreg_deadline: _deadline.Deadline | None = None

    def __repr__(self) -> str:
        return f"Connection({self.scheme}://{self.host}:{self.port})"

    def _watch(self) -> None:
        deadline = _deadline.current()
        if deadline is not None:
            deadline.attach(self)

    def open(self) -> None:
        """Connect (and shake hands, for https) within the connect timeout."""
        self._watch()
        try:
            raw = socket.create_connection((self.host, self.port), timeout=self._connect_timeout)
        except TimeoutError as exc:
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self._connect_timeout})"
            ) from exc
        except OSError as exc:
            # (urllib3's type names its own connection class; ours stands in for it, as in its messages)
            failed = f"Failed to establish a new connection: {exc}"
            raise NewConnectionError(self, failed) from exc  # type: ignore[arg-type]
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._dreg_raw_sock = raw
        sock = raw
        if self.scheme == "https":
            assert self._context is not None
            try:
                sock = self._context.wrap_socket(raw, server_hostname=self.host)
            except (ssl.SSLError, ssl.CertificateError) as exc:
                raw.close()
                raise SSLError(exc) from exc
            except TimeoutError as exc:
                raw.close()
                raise ReadTimeoutError(None, self.host, "TLS handshake timed out") from exc  # type: ignore[arg-type]
            except OSError as exc:
                raw.close()
                raise ProtocolError("Connection aborted.", exc) from exc
        sock.settimeout(self._read_timeout)
        self.sock = sock

    def dropped(self) -> bool:
        """An idle connection the server has closed (or sent something unasked on) is not reused:
        readable while idle means either (urllib3's check, one poll)."""
        sock = self.sock
        if sock is None:
            return True
        try:
            if _POLL is None:
                return wait_for_read(sock, timeout=0.0)
            poller = _POLL()  # what urllib3's wait_for_read does, without its dispatch per call
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True

    def send(self, method: str, target: str, host: str, headers: Mapping[str, str]) -> None:
        """Send a request without a body. A value with CR or LF is refused (``ValueError``, without
        repeating it: it may be a token) before anything is sent."""
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Accept-Encoding: identity"]
        for item in headers.items():
            line = _checked.get(item)
            if line is None:
                line = _header_line(*item)
            if line[0] == "":
                lines.append(line[1])
            else:
                lines[1 if line[0] == "host" else 2] = line[1]
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")  # non-latin-1: UnicodeEncodeError
        if self.sock is None:
            self.open()
        else:
            self._watch()
        if self._context is not None and self._context.verify_mode == ssl.CERT_NONE:
            # what urllib3 says of every request over TLS without verification
            warnings.warn(
                f"Unverified HTTPS request is being made to host '{self.host}'. Adding certificate "
                "verification is strongly advised. See: "
                "https://urllib3.readthedocs.io/en/latest/advanced-usage.html#tls-warnings",
                InsecureRequestWarning,
                stacklevel=2,
            )
        assert self.sock is not None
        try:
            self.sock.sendall(data)
        except TimeoutError as exc:
            raise ReadTimeoutError(None, target, "Write timed out.") from exc  # type: ignore[arg-type]
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may have answered and closed already: read what it said
        except OSError as exc:
            raise ProtocolError("Connection aborted.", exc) from exc

    def recv(self, url: str) -> bytes:
        assert self.sock is not None
        try:
            return self.sock.recv(_RECV)
        except TimeoutError as exc:
            raise ReadTimeoutError(
                None,  # type: ignore[arg-type]
                url,
                f"Read timed out. (read timeout={self._read_timeout})",
            ) from exc
        except ssl.SSLError as exc:
            raise SSLError(exc) from exc
        except OSError as exc:
            raise ProtocolError("Connection broken: " + repr(exc), exc) from exc

    def close(self) -> None:
        for sock in (self.sock, self._dreg_raw_sock):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
        self.sock = self._dreg_raw_sock = None


class _Events:
    """httptools' callbacks: the header block, body pieces, and where the message ends. (The
    header block's size is bounded by the reader, who stops feeding it past MAX_HEADER_BYTES.)"""

    __slots__ = ("begun", "body", "complete", "headers", "headers_done", "reason")

    def __init__(self) -> None:
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.body: deque[bytes] = deque()
        self.complete = False
        self.begun = 0

    def on_message_begin(self) -> None:
        self.begun += 1

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


class Headers(CaseInsensitiveDict[str]):
    """requests' case-insensitive headers, filled in one pass and looked up without the ``Mapping``
    detour (an answer's headers are read a dozen times on the way up)."""

    _store: dict[str, tuple[str, str]]  # requests' own attribute, which its methods read

    @classmethod
    def of(cls, store: dict[str, tuple[str, str]]) -> Headers:
        """Headers from ``{lower-case name: (name, value)}``, the store requests keeps."""
        headers = cls.__new__(cls)
        headers._store = store
        return headers

    def get(self, key: str, default: Any = None) -> Any:
        item = self._store.get(key.lower())
        return default if item is None else item[1]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._store


class Answer:
    """An answer whose body is read on demand. It quacks like urllib3's ``HTTPResponse`` where
    requests and urllib3's ``Retry`` look: ``status``, ``headers``, ``stream()``, ``read()``,
    ``tell()`` (bytes on the wire), ``get_redirect_location()``, ``drain_conn()``, ``close()``.

    ``release`` gets the connection back once the body has been read to its end on a connection
    the server keeps open; anything else closes it.
    """

    REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

    def __init__(
        self,
        connection: Connection,
        method: str,
        url: str,
        release: Callable[[Connection], None],
    ) -> None:
        self._connection: Connection | None = connection
        self._release = release
        self._url = url
        self._events = events = _Events()
        self._parser = httptools.HttpResponseParser(events)
        received = 0
        while not events.headers_done:
            head = self._feed(connection.recv(url))
            if head is None:
                connection.close()
                closed = ConnectionResetError("Remote end closed connection without response")
                raise ProtocolError("Connection aborted.", closed)
            received += len(head)
            if (not events.headers_done and received > MAX_HEADER_BYTES) or len(events.headers) > MAX_HEADERS:
                connection.close()
                raise ProtocolError(f"header block over {MAX_HEADER_BYTES} bytes or {MAX_HEADERS} headers")
        parser = self._parser
        self.status: int = parser.get_status_code()
        self.version = 11 if parser.get_http_version() == "1.1" else 10
        self.reason = events.reason.decode("latin-1")
        # Repeated headers are joined with ", ", as urllib3 and requests show them.
        store: dict[str, tuple[str, str]] = {}
        for raw_name, raw_value in events.headers:
            name = raw_name.decode("latin-1")
            lower = name.lower()
            value = raw_value.decode("latin-1")
            old = store.get(lower)
            store[lower] = (name, value) if old is None else (old[0], f"{old[1]}, {value}")
        self.headers = Headers.of(store)
        self.retries: object = None
        self._wire = 0
        # (llhttp's should_keep_alive() is only right inside its callbacks: the same rule, by hand)
        tokens = store["connection"][1].lower() if "connection" in store else ""
        self._keep = "close" not in tokens if self.version == 11 else "keep-alive" in tokens
        self._until_close = False
        if method == "HEAD" or self.status in _NO_BODY_STATUSES or 100 <= self.status < 200:
            # No body follows, whatever Content-Length says; bytes that came along are not this answer's.
            events.complete = True
            self._keep = self._keep and not events.body
            events.body.clear()
        elif "content-length" not in store and (
            "transfer-encoding" not in store or "chunked" not in store["transfer-encoding"][1].lower()
        ):
            self._until_close = True  # the body ends when the server closes the connection
            self._keep = False
        self._decoder = _decoder(store["content-encoding"][1]) if "content-encoding" in store else None
        if events.complete and not events.body:
            self._finish()

    def _feed(self, data: bytes) -> bytes | None:
        if not data:
            return None
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if not self._events.complete:
                if isinstance(exc.__context__, ProtocolError):  # raised by a callback (header bounds)
                    raise exc.__context__ from None
                raise ProtocolError("Connection broken: invalid HTTP answer", exc) from None
            self._keep = False  # something after the answer: the connection is not reused
        if self._events.begun > 1:
            self._keep = False
        return data

    def _finish(self) -> None:
        """The whole answer is in: hand the connection back (or close it)."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._keep:
            self._release(connection)
        else:
            connection.close()

    # -- the body ------------------------------------------------------------------------------------
    def _pieces(self) -> Iterator[bytes]:
        """The body as it arrives, undecoded."""
        events = self._events
        while True:
            while events.body:
                piece = events.body.popleft()
                self._wire += len(piece)
                yield piece
            if events.complete:
                self._finish()
                return
            connection = self._connection
            if connection is None:
                return  # closed before the end
            try:
                data = connection.recv(self._url)
            except Exception:
                self.close()
                raise
            if self._feed(data) is None:
                if self._until_close:
                    events.complete = True
                    continue
                self.close()
                raise ProtocolError(f"Connection broken: IncompleteRead({self._wire} bytes read)", self._wire)

    def stream(self, amt: int | None = 2**16, decode_content: bool | None = True) -> Iterator[bytes]:
        """The body in pieces of at most ``amt`` bytes, decoded (gzip, deflate) unless told not to."""
        amt = amt or 2**16
        decoder = self._decoder if decode_content is not False else None
        for piece in self._pieces():
            if decoder is not None:
                yield from decoder.feed(piece, amt)
            else:
                for start in range(0, len(piece), amt):
                    yield piece[start : start + amt]
        if decoder is not None:
            yield from decoder.finish()

    def read(self, amt: int | None = None, decode_content: bool | None = True) -> bytes:
        if amt is None:
            return b"".join(self.stream(None, decode_content))
        if not hasattr(self, "_reader"):
            self._reader = self.stream(amt, decode_content)
            self._leftover = b""
        out = [self._leftover]
        size = len(self._leftover)
        for piece in self._reader:
            out.append(piece)
            size += len(piece)
            if size >= amt:
                break
        data = b"".join(out)
        self._leftover = data[amt:]
        return data[:amt]

    def ready(self) -> bytes | None:
        """The whole body when it has all arrived already and needs no decoding (most registry
        answers: one read brings headers and body), read without streaming; else None."""
        events = self._events
        if not events.complete or self._decoder is not None:
            return None
        body = b"".join(events.body)
        events.body.clear()
        self._wire += len(body)
        self._finish()
        return body

    def tell(self) -> int:
        """Body bytes received on the wire (before decoding)."""
        return self._wire

    def get_redirect_location(self) -> str | bool | None:
        if self.status in self.REDIRECT_STATUSES:
            location: str | None = self.headers.get("location")
            return location
        return False

    def drain_conn(self) -> None:
        """Read and drop what is left of a small body (the connection is reused); a larger one
        goes with its connection."""
        if self._connection is None:
            return
        length = self.headers.get("content-length", "")
        if not (length.isdigit() and int(length) <= _DRAIN_BYTES):
            self.close()
            return
        try:
            for _ in self._pieces():
                pass
        except (ProtocolError, ReadTimeoutError, SSLError):
            self.close()

    def release_conn(self) -> None:
        self.close()

    def close(self) -> None:
        """Drop the connection unless the answer was read to its end (then it is back in the pool)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    @property
    def closed(self) -> bool:
        return self._connection is None


class _Inflate:
    """gzip (members one after another, as servers concatenate them) or deflate (zlib-wrapped, or raw
    as some servers send it), decoded at most ``amt`` bytes at a time: a bomb never inflates ahead
    of the reader, who stops at its cap. As urllib3 does, bytes that break a gzip member after the
    first are dropped (trailing garbage some servers add), and a broken first member is an error."""

    def __init__(self, mode: str) -> None:
        self._gzip = mode != "deflate"
        self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS if self._gzip else zlib.MAX_WBITS)
        self._first_try = not self._gzip
        self._later_member = False
        self._swallow = False

    def feed(self, data: bytes, amt: int) -> Iterator[bytes]:
        while data and not self._swallow:
            try:
                out = self._obj.decompress(data, amt)
            except zlib.error as exc:
                if self._first_try:
                    self._first_try = False
                    self._obj = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, no zlib header
                    continue
                if self._later_member:
                    self._swallow = True
                    return
                kind = "gzip" if self._gzip else "deflate"
                raise DecodeError(f"the body is not valid {kind}: {exc}") from None
            self._first_try = False
            if out:
                yield out
            data = self._obj.unconsumed_tail
            if not data and self._obj.eof:
                data = self._obj.unused_data
                if not self._gzip or not data:
                    return
                self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)  # the next gzip member
                self._later_member = True

    def finish(self) -> Iterator[bytes]:
        if not self._swallow:
            tail = self._obj.flush()
            if tail:
                yield tail


def _decoder(encoding: str) -> _Inflate | None:
    mode = encoding.strip().lower()
    if mode in ("gzip", "x-gzip"):
        return _Inflate("gzip")
    if mode == "deflate":
        return _Inflate("deflate")
    return None  # identity, or an encoding we never asked for: the bytes as they are (as urllib3 does)
