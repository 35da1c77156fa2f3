"""GET and HEAD on keep-alive connections of our own: the hot path of a crawl.

requests and urllib3 together cost about 1 ms of CPU per request (0.55 ms preparing a request and
wrapping its answer in requests, 0.4 ms in urllib3's pools and ``http.client``); a crawl is tens of
thousands of small reads, and on a 2-core machine the client's CPU competes with the registry's. So
reads take this path when nothing requests-specific is in play (no proxy, no caller-supplied auth):
:class:`.connections.Connection` sends them and llhttp parses the answers, and the answer is still
a ``requests.Response``. Everything else still goes through requests.

What requests and urllib3 did for us is kept, the same way: the caller's
:class:`~urllib3.util.retry.Retry` policy decides every retry and its wait (``increment``,
``is_retry``, ``sleep``, with the counters urllib3 keeps: connect, read, status, redirect), timeouts,
TLS verification (``create_urllib3_context``, hostname checked), redirects with ``Authorization``
dropped when they lead to another host (``Retry.remove_headers_on_redirect``), idle connections
checked before reuse, and urllib3's exceptions for the caller to map.

A :class:`~.concurrency.Limiter` sees every answer, retried ones included (429, 503 and rate-limit
headers slow everyone down at once), and a request waiting out a retry gives its slot back meanwhile.
"""

from __future__ import annotations

import datetime
import os
import re
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import requests
from requests.structures import CaseInsensitiveDict
from requests.utils import DEFAULT_CA_BUNDLE_PATH, get_encoding_from_headers
from urllib3.exceptions import (
    LocationParseError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    SSLError,
    URLSchemeUnknown,
)
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util import create_urllib3_context, parse_url
from urllib3.util.retry import Retry

from .connections import Answer, Connection

if TYPE_CHECKING:
    from .concurrency import Limiter

__all__ = ["ReadPool"]

# A request target needing no percent-encoding (anything else is encoded as urllib3 would).
_PLAIN_TARGET = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_ORIGINS_KEPT = 256
# What urllib3 raises for a request that failed before an answer (Retry tells connect from read).
_FAILURES = (ProtocolError, Urllib3Timeout, NewConnectionError, SSLError)

_Origin = tuple[str, str, int, str]  # scheme, host, port, Host header


class ReadPool:
    """Connections to the registry (and where it redirects), reused across threads."""

    def __init__(
        self,
        *,
        verify: bool | str,
        timeout: float | tuple[float, float],
        retry: Retry,
        pool_size: int,
        limiter: Limiter | None = None,
    ) -> None:
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        self.retry = retry
        self.limiter = limiter
        self._connect_timeout = connect
        self._read_timeout = read
        self._verify = verify
        self._context: ssl.SSLContext | None = None  # made on the first https request
        self._maxsize = pool_size
        self._idle: dict[tuple[str, str, int], list[Connection]] = {}
        self._origins: dict[tuple[str, str], _Origin] = {}

    def send(self, method: str, url: str, headers: Mapping[str, str]) -> requests.Response:
        """Send a GET or HEAD, with the retries and redirects of the policy; the body is left unread
        (the caller reads it, capped). urllib3's exceptions are raised as they come (the caller maps
        them). The answer is a ``requests.Response``: ``.url`` absolute (the last redirect's target)
        and ``.request`` set, so error messages can name both."""
        retries = self.retry
        sent = headers
        limiter = self.limiter
        while True:
            scheme, host, port, host_header, target = self._split(url)
            connection = self._connection(scheme, host, port)
            try:
                connection.send(method, target, host_header, sent)
                answer = Answer(connection, method, url, self._put)
            except _FAILURES as exc:
                connection.close()
                retries = retries.increment(method, url, error=exc, _stacktrace=exc.__traceback__)
                self._wait(retries, None)
                continue
            except BaseException:
                connection.close()
                raise
            if limiter is not None:
                limiter.observe(answer.status, answer.headers)
            location = answer.get_redirect_location()
            if location:
                if answer.status == 303:
                    method = "GET"
                target_url = urljoin(url, str(location))
                if retries.remove_headers_on_redirect and self._split(target_url)[:3] != (scheme, host, port):
                    unsafe = retries.remove_headers_on_redirect
                    sent = {k: v for k, v in sent.items() if k.lower() not in unsafe}
                following = _again(retries, method, url, answer, retries.raise_on_redirect)
                if following is None:
                    return _response(answer, method, url, sent)
                retries, url = following, target_url
                continue
            if retries.is_retry(method, answer.status, bool(answer.headers.get("Retry-After"))):
                following = _again(retries, method, url, answer, retries.raise_on_status)
                if following is None:
                    return _response(answer, method, url, sent)
                retries = following
                self._wait(retries, answer)
                continue
            return _response(answer, method, url, sent)

    def _wait(self, retries: Retry, answer: Answer | None) -> None:
        """The policy's wait before a retry, with this request's concurrency slot given back."""
        if self.limiter is None:
            retries.sleep(answer)  # type: ignore[arg-type]
            return
        with self.limiter.idle():
            retries.sleep(answer)  # type: ignore[arg-type]

    def _split(self, url: str) -> tuple[str, str, int, str, str]:
        """scheme, host, port, Host header and request target of an absolute URL."""
        scheme, sep, rest = url.partition("://")
        if not sep:
            raise LocationParseError(url)
        slash = rest.find("/")
        netloc, target = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
        origin = self._origins.get((scheme, netloc))
        if origin is None:
            origin = self._origin(scheme, netloc, url)
        target = target.partition("#")[0]
        if not _PLAIN_TARGET.fullmatch(target):
            target = parse_url(url).request_uri  # percent-encoded as urllib3 does
        return (*origin, target)

    def _origin(self, scheme: str, netloc: str, url: str) -> _Origin:
        scheme = scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise URLSchemeUnknown(scheme)
        try:
            parts = urlsplit(f"{scheme}://{netloc}")
            host, port = parts.hostname, parts.port
        except ValueError:
            raise LocationParseError(url) from None
        if not host:
            raise LocationParseError(url)
        port = port or _DEFAULT_PORTS[scheme]
        shown = f"[{host}]" if ":" in host else host
        header = shown if port == _DEFAULT_PORTS[scheme] else f"{shown}:{port}"
        origin = (scheme, host, port, header)
        if len(self._origins) >= _ORIGINS_KEPT:
            self._origins.clear()  # a redirecting server cannot grow this without bound
        self._origins[(scheme, netloc)] = origin
        return origin

    def _connection(self, scheme: str, host: str, port: int) -> Connection:
        idle = self._idle.get((scheme, host, port))
        while idle:
            try:
                connection = idle.pop()
            except IndexError:  # another thread took the last one
                break
            if not connection.dropped():
                return connection
            connection.close()
        return Connection(
            scheme,
            host,
            port,
            context=self._tls() if scheme == "https" else None,
            connect_timeout=self._connect_timeout,
            read_timeout=self._read_timeout,
        )

    def _put(self, connection: Connection) -> None:
        idle = self._idle.setdefault((connection.scheme, connection.host, connection.port), [])
        if len(idle) < self._maxsize:
            idle.append(connection)
        else:
            connection.close()

    def _tls(self) -> ssl.SSLContext:
        if self._context is None:
            verify = self._verify
            required = ssl.CERT_NONE if verify is False else ssl.CERT_REQUIRED
            context = create_urllib3_context(cert_reqs=required)
            if verify is False:
                context.check_hostname = False
            else:
                path = verify if isinstance(verify, str) else DEFAULT_CA_BUNDLE_PATH
                if os.path.isdir(path):
                    context.load_verify_locations(capath=path)
                else:
                    context.load_verify_locations(cafile=path)
                context.check_hostname = True
                context.hostname_checks_common_name = False
            self._context = context
        return self._context

    def clear(self) -> None:
        """Close every idle connection."""
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()


def _again(retries: Retry, method: str, url: str, answer: Answer, raise_when_spent: bool) -> Retry | None:
    """The policy after ``answer`` (a redirect, or a status to retry), its body drained; None when
    the policy is spent and the answer stands (unless urllib3's ``raise_on_redirect`` or
    ``raise_on_status`` says to raise, as urllib3 does)."""
    try:
        following = retries.increment(method, url, response=answer)  # type: ignore[arg-type]
    except MaxRetryError:
        if raise_when_spent:
            answer.drain_conn()
            raise
        return None
    answer.drain_conn()
    return following


def _response(answer: Answer, method: str, url: str, sent: Mapping[str, str]) -> requests.Response:
    return _Response(answer, method, url, sent)


class _Response(requests.Response):
    """The ``requests.Response`` requests' adapter would build, less three things a read seldom
    touches, made when first asked for: the cookie jar (empty: registries set none worth keeping),
    ``.request``, the PreparedRequest (method, URL and the headers sent), and ``.encoding``."""

    def __init__(self, answer: Answer, method: str, url: str, sent: Mapping[str, str]) -> None:
        # requests.Response.__init__, attribute by attribute, without its eager cookie jar
        self._content = False  # type: ignore[assignment]
        self._content_consumed = False
        self._next = None
        self.status_code = answer.status
        self.headers = answer.headers
        self.raw = answer
        self.url = url
        self._encoding: str | bool | None = False  # False: not worked out yet
        self.history = []
        self.reason = answer.reason
        self.elapsed = _NO_TIME
        self._sent = (method, url, sent)
        self._request: requests.PreparedRequest | None = None
        self._cookies: requests.cookies.RequestsCookieJar | None = None

    @property
    def encoding(self) -> str | None:
        """The charset of the Content-Type, as requests gives it (read by ``.text``, seldom)."""
        if self._encoding is False:
            self._encoding = get_encoding_from_headers(self.headers)
        return self._encoding  # type: ignore[return-value]

    @encoding.setter
    def encoding(self, value: str | None) -> None:
        self._encoding = value

    @property
    def request(self) -> requests.PreparedRequest:
        if self._request is None:
            method, url, sent = self._sent
            request = requests.PreparedRequest()
            request.method = method
            request.url = url
            request.headers = CaseInsensitiveDict(sent)
            self._request = request
        return self._request

    @request.setter
    def request(self, value: requests.PreparedRequest) -> None:
        self._request = value

    @property
    def cookies(self) -> requests.cookies.RequestsCookieJar:
        if self._cookies is None:
            self._cookies = requests.cookies.cookiejar_from_dict({})  # type: ignore[no-untyped-call]
        return self._cookies

    @cookies.setter
    def cookies(self, value: requests.cookies.RequestsCookieJar) -> None:
        self._cookies = value


_NO_TIME = datetime.timedelta(0)
