"""HTTP plumbing for one registry: session, TLS, timeouts, retries, limits, error mapping, pagination.

Every request goes through :meth:`Transport.request`: one deadline for all it does (see
:mod:`.deadline`), every body read with a cap on decoded bytes (:func:`.limits.read_body`), 401s
answered only when they come from the registry itself. Nothing above this module touches
``requests`` exceptions: they become :mod:`.errors` types here.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import requests
import urllib3
from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.util.retry import Retry

from . import deadline as _deadline
from .auth import AuthService, RegistryAuth
from .concurrency import Limiter
from .credentials import Credentials, docker_config_credentials
from .errors import (
    AuthenticationError,
    ContentTooLarge,
    DeadlineExceeded,
    DregError,
    PaginationError,
    RegistryError,
    TLSError,
    TransportError,
    error_from_response,
)
from .limits import MAX_MANIFEST_BYTES, BrokenBody, Limits, read_body, reason
from .readpool import ReadPool

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_MANIFEST_BYTES",
    "BoundedRetry",
    "Limits",
    "Transport",
    "default_retry",
    "normalise_url",
]

DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 60.0)
RETRY_STATUSES = frozenset({429, 502, 503, 504})
_DRAINED_BYTES = 64 * 1024


class BoundedRetry(Retry):
    """urllib3's Retry with two more bounds: a ``Retry-After`` longer than ``max_retry_after`` is
    cut to it, and no retry is made whose wait would end more than ``deadline`` seconds after the
    request started, or after the request's own deadline (:mod:`.deadline`).

    The clock starts with each request (not when the policy is made: one policy serves a registry
    object for hours). ``started`` pins it, for a policy used outside the client.
    """

    def __init__(
        self,
        *args: Any,
        max_retry_after: float = 30.0,
        deadline: float = 120.0,
        started: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_retry_after = max_retry_after
        self.deadline = deadline
        self.started = started

    def new(self, **kw: Any) -> BoundedRetry:
        kw.setdefault("max_retry_after", self.max_retry_after)
        kw.setdefault("deadline", self.deadline)
        # Outside a request's scope the first retry starts the clock of its chain.
        kw.setdefault("started", self.started if self.started is not None else self._start())
        fresh: BoundedRetry = super().new(**kw)
        return fresh

    def _start(self) -> float:
        scope = _deadline.current()
        return scope.started if scope is not None else time.monotonic()

    def get_retry_after(self, response: Any) -> float | None:
        wait = super().get_retry_after(response)
        return None if wait is None else min(wait, self.max_retry_after)

    def is_exhausted(self) -> bool:
        return super().is_exhausted() or self._too_late(0.0)

    def _too_late(self, wait: float) -> bool:
        now = time.monotonic()
        scope = _deadline.current()
        started = self.started if self.started is not None else (scope.started if scope else None)
        if started is not None and now + wait - started > self.deadline:
            return True
        return scope is not None and now + wait >= scope.at

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> BoundedRetry:
        fresh = super().increment(method, url, response, error, _pool, _stacktrace)
        assert isinstance(fresh, BoundedRetry)
        wait = (fresh.get_retry_after(response) if response is not None else None) or fresh.get_backoff_time()
        if fresh._too_late(wait):
            # Waiting would outlast the request's time: stop now, with the answer or error in hand.
            cause = error or ResponseError("no time left for another try within the deadline")
            raise MaxRetryError(_pool, url or "", cause) from cause
        if response is not None:
            # urllib3 reads the body of an answer it retries or redirects (undecoded, but whole) to
            # reuse the connection: a large or unknown length is dropped with the connection instead.
            length = str(response.headers.get("Content-Length") or "")
            if not (length.isdigit() and int(length) <= _DRAINED_BYTES):
                response.close()
        return fresh


def default_retry(
    total: int = 4,
    backoff: float = 0.25,
    max_backoff: float = 8.0,
    max_retry_after: float = 30.0,
    deadline: float = 120.0,
) -> Retry:
    """The retry policy: 429/502/503/504 and connection errors, with exponential backoff and jitter,
    honouring ``Retry-After`` (capped at ``max_retry_after``), at most ``total`` retries and none
    whose wait would end ``deadline`` seconds after the request started.

    Only idempotent reads (GET, HEAD) are retried on a status or a failed read; a connection that
    could not be made is retried for every method, since the server never saw the request.
    """
    return BoundedRetry(
        total=total,
        connect=total,
        read=total,
        status=total,
        other=0,
        allowed_methods=frozenset({"GET", "HEAD"}),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff,
        backoff_max=max_backoff,
        backoff_jitter=backoff,
        respect_retry_after_header=True,
        raise_on_status=False,
        max_retry_after=max_retry_after,
        deadline=deadline,
    )


def normalise_url(url: str, *, allow_insecure: bool = True) -> str:
    """Return the registry's ``.../v2/`` base URL for ``url``.

    Error messages never repeat a URL with credentials in it.

    >>> normalise_url("http://127.0.0.1:5000")
    'http://127.0.0.1:5000/v2/'
    >>> normalise_url("docker.io")
    'https://registry-1.docker.io/v2/'
    """
    if not isinstance(url, str) or not url:
        raise DregError(f"registry URL must be a non-empty string, got {type(url).__name__}")
    if "://" not in url:
        url = "https://" + url
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        has_userinfo = "@" in parts.netloc
    except ValueError:
        raise DregError("registry URL cannot be parsed (check the host and port)") from None
    if has_userinfo:
        raise DregError("put credentials in auth=, not in the registry URL")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise DregError(f"registry URL {url[:100]!r} contains whitespace or control characters")
    if parts.scheme not in ("http", "https") or not hostname:
        raise DregError(f"registry URL {url[:200]!r} must be http:// or https:// with a host")
    if parts.scheme == "http" and not allow_insecure:
        raise DregError(f"registry URL {url!r} is plain http; say allow_insecure=True if you mean it")
    path = parts.path.rstrip("/")
    if not path.endswith("/v2"):
        path += "/v2"
    netloc = parts.netloc
    if hostname in ("docker.io", "index.docker.io"):
        netloc = "registry-1.docker.io"  # where Docker Hub's registry API answers
    return f"{parts.scheme}://{netloc}{path}/"


class Transport:
    """One registry's HTTP session.

    ``verify`` is passed with every request rather than set on the session: requests lets
    ``REQUESTS_CA_BUNDLE`` override ``Session.verify``, which would silently ignore a CA the user named.
    With ``verify=True`` that variable still chooses the CA bundle, as it does for requests.

    ``limits`` bounds every request (:class:`~.limits.Limits`: deadline, body caps, pages).
    ``allow_http_realm=True`` lets credentials go to a token realm on another host over plain http
    (a lab setup); without it they go to another host only over https.
    """

    def __init__(
        self,
        url: str,
        *,
        auth: tuple[str, str] | Credentials | requests.auth.AuthBase | None = None,
        auth_service: AuthService | None = None,
        docker_config: bool = True,
        verify: bool | str = True,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        retry: Retry | int | None = None,
        pool_size: int = 32,
        session: requests.Session | None = None,
        limits: Limits | None = None,
        allow_http_realm: bool = False,
    ) -> None:
        self.base_url = normalise_url(url)
        if not isinstance(verify, (bool, str)):
            raise DregError(f"verify must be True, False or a CA bundle path, got {type(verify).__name__}")
        if isinstance(verify, str) and not os.path.exists(verify):
            # verify="false" or a typo must never end up meaning "do not verify"
            raise DregError(
                f"verify={verify!r}: no CA bundle there; pass verify=False to turn verification off"
            )
        if limits is not None and not isinstance(limits, Limits):
            raise DregError(f"limits must be a Limits(...), got {type(limits).__name__}")
        self.limits = limits or Limits()
        self.timeout = timeout
        own_session = session is None
        if session is None:
            session = requests.Session()
            # requests re-reads proxy, netrc and CA-bundle variables from os.environ on every request
            # (a fifth of the client's CPU in a crawl): read them once here instead.
            session.proxies.update(requests.utils.get_environ_proxies(self.base_url))
            session.trust_env = False
            if verify is True:
                verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self.verify = verify
        self.session = session
        if isinstance(auth, requests.auth.AuthBase):
            self.session.auth = auth  # the caller's own requests auth, used as given
            credentials: Credentials | None = None
        elif isinstance(auth, tuple):
            if len(auth) != 2 or not all(isinstance(part, str) for part in auth):
                raise DregError("auth must be a (user, password) pair of strings")
            credentials = Credentials(auth[0], auth[1])
        else:
            credentials = auth
        self.auth = RegistryAuth(
            credentials,
            auth_service=auth_service,
            verify=verify,
            timeout=timeout,
            # Docker's config is read only when the registry first asks for credentials.
            credentials_loader=(lambda: docker_config_credentials(self.base_url))
            if auth is None and docker_config
            else None,
            registry_url=self.base_url,
            limits=self.limits,
            allow_http_realm=allow_http_realm,
        )
        if isinstance(retry, int):
            retry = default_retry(total=retry)
        policy = retry if retry is not None else default_retry()
        adapter = _deadline.WatchedAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=policy)
        # Every request takes a slot first (see bounded): one limit for all threads using this registry.
        # A Retry-After pauses everyone, as long as the policy lets the request that saw it wait.
        self.limiter = Limiter(
            self.limits.concurrency,
            max_pause=float(getattr(policy, "max_retry_after", 30.0))
            if policy.respect_retry_after_header
            else 0.0,
        )
        # Reads skip requests' per-request overhead unless something only requests does is in play.
        self._reads: ReadPool | None = None
        if own_session and not session.proxies and not isinstance(auth, requests.auth.AuthBase):
            self._reads = ReadPool(
                verify=verify, timeout=timeout, retry=policy, pool_size=pool_size, limiter=self.limiter
            )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = "dreg-frames/0.1"
        self._origin = _origin(self.base_url)
        self._lock = threading.Lock()
        self.requests_made = 0

    def __repr__(self) -> str:
        return f"Transport({self.base_url!r})"

    @property
    def host(self) -> str:
        """``host[:port]`` of the registry, as Docker's config.json keys it."""
        return urlsplit(self.base_url).netloc

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` under ``/v2/`` (an absolute URL is checked to be ours)."""
        if _plain(path):
            return self.base_url + path  # what urljoin gives, without its cost
        absolute = urljoin(self.base_url, path)
        if _origin(absolute) != self._origin:
            raise TransportError(f"refusing to follow {absolute.split('?')[0]!r}: not on {self._origin}")
        return absolute

    def bounded(self, what: str) -> _Bounded:
        """Everything inside runs within one request deadline and one concurrency slot (shared with
        any enclosing call); a failure once the deadline has passed is a :class:`DeadlineExceeded`,
        whatever broke first. The deadline starts once the slot is had: waiting for the limiter is
        not the registry's time."""
        return _Bounded(self, what)

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str = "",
        ok: tuple[int, ...] = (200,),
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str | int] | None = None,
        data: Any = None,
        stream: bool = False,
        allow_redirects: bool = True,
        cap: int | None = None,
    ) -> requests.Response:
        """Send one request; return the response if its status is in ``ok``, else raise.

        A 401 from the registry is answered from its challenge (Basic credentials, or a bearer
        token for the scope) and the request sent again, once; a second 401 is an
        :class:`AuthenticationError`, or :class:`PermissionDenied` when the token lacks the rights.
        A 401 from anywhere else (a redirect's target) is never answered.

        Without ``stream`` the body is read here, at most ``cap`` decoded bytes (default
        ``limits.list_bytes``); with it, the caller reads it (the deadline ends when this returns).
        """
        url = self.url(path)
        with self.bounded(what or method):
            response = self._answered(method, url, what, ok, headers, params, data, allow_redirects)
            if method == "HEAD":
                response._content = b""
                response._content_consumed = True  # type: ignore[attr-defined]
                response.close()
            elif not stream:
                read_body(
                    response,
                    cap if cap is not None else self.limits.list_bytes,
                    what=what or method,
                    kind="an answer read whole (Limits.list_bytes)",
                )
            return response

    def _answered(
        self,
        method: str,
        url: str,
        what: str,
        ok: tuple[int, ...],
        headers: Mapping[str, str] | None,
        params: Mapping[str, str | int] | None,
        data: Any,
        allow_redirects: bool,
    ) -> requests.Response:
        relative = url[len(self.base_url) :] if url.startswith(self.base_url) else ""
        sent = dict(headers or {})
        header = self.auth.authorization(method, relative)
        if header:
            sent["Authorization"] = header
        start = data.tell() if hasattr(data, "tell") else None
        for attempt in (1, 2):
            response = self._send(method, url, sent, params, data, allow_redirects, what)
            if response.status_code in ok:
                return response
            if response.status_code != 401 or self.session.auth is not None:
                break
            self._read_error_body(response, what or method)
            if _origin(response.url) != self._origin:
                # A redirect led elsewhere (object storage, a CDN, an attacker): its challenge asks for
                # credentials the user gave to the registry only.
                raise AuthenticationError(
                    f"{what or method}: {_origin(response.url)}, where the registry redirected, answered "
                    "401; only the registry's own challenges are answered, so no credentials were sent",
                    status=401,
                    response=response,
                )
            try:
                sent["Authorization"] = self.auth.answer(
                    response, method, relative, attempt, sent.get("Authorization")
                )
            except DregError as exc:
                if what and not str(exc).startswith(what):
                    exc.args = (f"{what}: {exc}",)
                raise
            if start is not None:
                data.seek(start)
        self._read_error_body(response, what or method)
        raise error_from_response(response, what)

    def _read_error_body(self, response: requests.Response, what: str) -> None:
        # Only the error codes matter: keep the first bytes, drop the rest with the connection.
        if getattr(response, "_content", False) is False:
            try:
                read_body(response, self.limits.error_bytes, what=what, kind="error", keep_first=True)
            except BrokenBody:
                response._content = b""

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        params: Mapping[str, str | int] | None,
        data: Any,
        allow_redirects: bool,
        what: str,
    ) -> requests.Response:
        with self._lock:
            self.requests_made += 1
        if self._reads is not None and method in ("GET", "HEAD") and data is None and allow_redirects:
            return self._fast(method, url, headers, params, what)
        try:
            response = self.session.request(
                method,
                url,
                headers=dict(headers or {}),
                params=params,
                data=data,
                stream=True,  # bodies are read by read_body, capped, within the deadline
                timeout=self.timeout,
                verify=self.verify,
                allow_redirects=allow_redirects,
            )
            # (urllib3 retries inside requests unseen: the limiter hears the final answer only here)
            self.limiter.observe(response.status_code, response.headers)
            return response
        except requests.exceptions.SSLError as exc:
            raise self._tls_error(method, what, reason(exc)) from None
        except requests.exceptions.RetryError as exc:
            raise self._failing(method, url, what, reason(exc)) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise self._unreachable(method, what, reason(exc)) from None
        except (requests.exceptions.InvalidHeader, ValueError) as exc:
            raise _unsendable(method, what, exc) from None
        except requests.exceptions.RequestException as exc:
            raise TransportError(f"{what or method}: {url.split('?')[0]}: {reason(exc)}") from None

    # Both HTTP paths (requests, and urllib3 for reads) fail with the same words.
    def _tls_error(self, method: str, what: str, detail: object) -> TLSError:
        return TLSError(
            f"{what or method}: TLS verification failed for {self._origin} ({detail}); "
            "pass verify='/path/to/ca.pem' for a private CA"
        )

    def _failing(self, method: str, url: str, what: str, detail: object) -> TransportError:
        return TransportError(f"{what or method}: {url.split('?')[0]} kept failing: {detail}")

    def _unreachable(self, method: str, what: str, detail: object) -> TransportError:
        return TransportError(f"{what or method}: cannot reach {self._origin}: {detail}")

    def _fast(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        params: Mapping[str, str | int] | None,
        what: str,
    ) -> requests.Response:
        assert self._reads is not None
        if params:
            url += ("&" if "?" in url else "?") + urlencode({k: str(v) for k, v in params.items()})
        sent = {"User-Agent": str(self.session.headers.get("User-Agent", "dreg-frames"))}
        if headers:
            sent.update(headers)
        try:
            return self._reads.send(method, url, sent)
        except MaxRetryError as exc:
            cause = exc.reason
            if isinstance(cause, urllib3.exceptions.SSLError):
                raise self._tls_error(method, what, cause) from None
            if isinstance(cause, urllib3.exceptions.ResponseError):
                raise self._failing(method, url, what, cause) from None
            raise self._unreachable(method, what, reason(exc)) from None
        except urllib3.exceptions.SSLError as exc:
            raise self._tls_error(method, what, exc) from None
        except urllib3.exceptions.HTTPError as exc:
            raise TransportError(f"{what or method}: {url.split('?')[0]}: {reason(exc)}") from None
        except ValueError as exc:
            raise _unsendable(method, what, exc) from None

    def get_capped(
        self,
        path: str,
        *,
        what: str,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str | int] | None = None,
        cap: int = MAX_MANIFEST_BYTES,
        kind: str = "manifests and configs",
    ) -> tuple[bytes, requests.Response]:
        """GET ``path`` and read at most ``cap`` decoded bytes of body; more raises ContentTooLarge.

        A body cut short (reset, truncated) is fetched again, twice at most: these are small,
        idempotent reads, and urllib3 only retries failures before the answer starts. All of it
        runs within one request deadline.
        """
        url = self.url(path)
        with self.bounded(what):
            for attempt in range(3):
                # request(stream=True) without its own bound, which would only find this one
                response = self._answered("GET", url, what, (200,), headers, params, None, True)
                try:
                    return read_body(response, cap, what=what, kind=kind), response
                except BrokenBody as exc:
                    if attempt == 2:
                        raise TransportError(str(exc)) from None
        raise AssertionError("unreachable")

    def get_json(self, path: str, *, what: str, params: Mapping[str, str | int] | None = None) -> Any:
        body, response = self.get_capped(
            path, what=what, params=params, cap=self.limits.list_bytes, kind=_LIST_KIND
        )
        return _json(body, response, what)

    def paginate(self, path: str, key: str, *, what: str, page_size: int | None = 1000) -> Iterator[str]:
        """Yield every string of ``key`` across all pages, following ``Link: <...>; rel="next"``.

        If the registry refuses ``page_size`` (400 PAGINATION_NUMBER_INVALID) we fall back to its
        default. Each page is capped at ``limits.list_bytes`` and refetched when cut short; the
        list stops with :class:`ContentTooLarge` past ``limits.list_pages`` pages or
        ``limits.list_items`` entries.
        """
        params: dict[str, str | int] | None = {"n": page_size} if page_size else None
        try:
            body, response = self.get_capped(
                path, what=what, params=params, cap=self.limits.list_bytes, kind=_LIST_KIND
            )
        except PaginationError:
            if params is None:
                raise
            body, response = self.get_capped(path, what=what, cap=self.limits.list_bytes, kind=_LIST_KIND)
        seen: set[str] = set()
        items = 0
        while True:
            data = _json(body, response, what)
            values = data.get(key) if isinstance(data, dict) else None
            if values is None:
                values = []
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise RegistryError(
                    f"{what}: {key!r} is not a list of strings",
                    status=response.status_code,
                    response=response,
                )
            items += len(values)
            if items > self.limits.list_items:
                raise ContentTooLarge(
                    _redact(response.url),
                    self.limits.list_items,
                    kind=f"{what} (Limits.list_items)",
                    unit="entries",
                )
            yield from values
            link = response.links.get("next", {}).get("url")
            if not link:
                return
            next_url = urljoin(response.url, link)
            if next_url in seen:
                raise RegistryError(f"{what}: pagination loops at {_redact(next_url)}", response=response)
            seen.add(next_url)
            if len(seen) >= self.limits.list_pages:
                raise ContentTooLarge(
                    _redact(response.url),
                    self.limits.list_pages,
                    kind=f"{what} (Limits.list_pages)",
                    unit="pages",
                )
            body, response = self.get_capped(next_url, what=what, cap=self.limits.list_bytes, kind=_LIST_KIND)


class _Bounded:
    """:meth:`Transport.bounded` (a class: entered twice per request, a generator costs more)."""

    __slots__ = ("_deadline", "_scope", "_slot", "_transport", "_what")

    def __init__(self, transport: Transport, what: str) -> None:
        self._transport = transport
        self._what = what
        self._scope: _deadline.Scope | None = None
        self._slot = False

    def __enter__(self) -> _deadline.Deadline:
        outer = _deadline.current()
        if outer is not None:  # inside another call: its deadline and its slot
            self._deadline = outer
            return outer
        limiter = self._transport.limiter
        limiter.acquire()
        self._slot = True
        try:
            self._scope = _deadline.scope(self._transport.limits.deadline)
            self._deadline = self._scope.__enter__()
        except BaseException:
            self._slot = False
            limiter.release()
            raise
        return self._deadline

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        try:
            deadline = self._deadline
            transport = self._transport
            if exc is None:
                if deadline.expired:
                    # The watchdog shut the socket: headers cut short can parse as a whole (empty) answer.
                    raise deadline.exceeded(self._what, transport._origin)
            elif isinstance(exc, (DregError, BrokenBody)) and not isinstance(exc, DeadlineExceeded):
                if deadline.expired:
                    raise deadline.exceeded(self._what, transport._origin) from None
                if isinstance(exc, BrokenBody):
                    raise TransportError(str(exc)) from None
        finally:
            if self._scope is not None:
                self._scope.__exit__(None, None, None)
            if self._slot:
                self._transport.limiter.release()


_LIST_KIND = "a tags-list or catalog page (Limits.list_bytes)"
# A relative path under /v2/ that needs no resolving: a name (no scheme: no colon before the first
# slash), then tags, digests and a query; no empty or dot segments.
_PLAIN_PATH = re.compile(
    r"[A-Za-z0-9_][A-Za-z0-9\-._~@!$&'()*+,;=%]*"  # the first segment: no colon
    r"(?:/[A-Za-z0-9\-._~:@!$&'()*+,;=%]*)*"
    r"(?:\?[^#\s]*)?"
)


def _plain(path: str) -> bool:
    if not _PLAIN_PATH.fullmatch(path):
        return False
    segments = path.split("?", 1)[0].split("/")
    return "" not in segments[:-1] and "." not in segments and ".." not in segments


def _json(body: bytes, response: requests.Response, what: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise RegistryError(
            f"{what}: the registry's answer is not valid JSON", status=response.status_code, response=response
        ) from None


def _unsendable(method: str, what: str, exc: Exception) -> TransportError:
    # requests and http.client refuse a header value with CR/LF and repeat it in their message:
    # it may be a token or a password, so only its kind is said.
    return TransportError(
        f"{what or method}: the request could not be sent: a header value is invalid ({type(exc).__name__})"
    )


def _origin(url: str | None) -> str:
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}"


def _redact(url: str | None) -> str:
    return (url or "").split("?", 1)[0]
