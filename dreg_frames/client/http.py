"""HTTP plumbing for one registry: session, TLS, timeouts, retries, error mapping and pagination.

Nothing above this module touches ``requests`` exceptions: they become :mod:`.errors` types here.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .auth import AuthService, RegistryAuth
from .credentials import Credentials, docker_config_credentials
from .errors import (
    ContentTooLarge,
    DregError,
    PaginationError,
    RegistryError,
    TLSError,
    TransportError,
    error_from_response,
)
from .readpool import ReadPool

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_MANIFEST_BYTES",
    "BoundedRetry",
    "Transport",
    "default_retry",
    "normalise_url",
]

# Distribution refuses manifests over 4 MiB; anything larger is not a manifest we should hold in memory.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 60.0)
RETRY_STATUSES = frozenset({429, 502, 503, 504})


class BoundedRetry(Retry):
    """urllib3's Retry with two more bounds: a ``Retry-After`` longer than ``max_retry_after`` is
    cut to it, and no retry starts once ``deadline`` seconds have passed since the first attempt.

    (urllib3 would otherwise sleep for whatever a registry's ``Retry-After`` says, an hour included.)
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
        self.started = started if started is not None else time.monotonic()

    def new(self, **kw: Any) -> BoundedRetry:
        kw.setdefault("max_retry_after", self.max_retry_after)
        kw.setdefault("deadline", self.deadline)
        kw.setdefault("started", self.started)
        fresh: BoundedRetry = super().new(**kw)
        return fresh

    def get_retry_after(self, response: Any) -> float | None:
        wait = super().get_retry_after(response)
        return None if wait is None else min(wait, self.max_retry_after)

    def is_exhausted(self) -> bool:
        return super().is_exhausted() or time.monotonic() - self.started > self.deadline


def default_retry(
    total: int = 4,
    backoff: float = 0.25,
    max_backoff: float = 8.0,
    max_retry_after: float = 30.0,
    deadline: float = 120.0,
) -> Retry:
    """The retry policy: 429/502/503/504 and connection errors, with exponential backoff and jitter,
    honouring ``Retry-After`` (capped at ``max_retry_after``), at most ``total`` retries and no new
    retry after ``deadline`` seconds.

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

    >>> normalise_url("http://127.0.0.1:5000")
    'http://127.0.0.1:5000/v2/'
    >>> normalise_url("docker.io")
    'https://registry-1.docker.io/v2/'
    """
    if not isinstance(url, str) or not url:
        raise DregError(f"registry URL must be a non-empty string, got {url!r}")
    if "://" not in url:
        url = "https://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DregError(f"registry URL {url!r} must be http:// or https:// with a host")
    if parts.scheme == "http" and not allow_insecure:
        raise DregError(f"registry URL {url!r} is plain http; say allow_insecure=True if you mean it")
    if parts.username or parts.password:
        raise DregError("put credentials in auth=, not in the registry URL")
    path = parts.path.rstrip("/")
    if not path.endswith("/v2"):
        path += "/v2"
    netloc = parts.netloc
    if parts.hostname in ("docker.io", "index.docker.io"):
        netloc = "registry-1.docker.io"  # where Docker Hub's registry API answers
    return f"{parts.scheme}://{netloc}{path}/"


class Transport:
    """One registry's HTTP session.

    ``verify`` is passed with every request rather than set on the session: requests lets
    ``REQUESTS_CA_BUNDLE`` override ``Session.verify``, which would silently ignore a CA the user named.
    With ``verify=True`` that variable still chooses the CA bundle, as it does for requests.
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
    ) -> None:
        self.base_url = normalise_url(url)
        if not isinstance(verify, (bool, str)):
            raise DregError(f"verify must be True, False or a CA bundle path, got {type(verify).__name__}")
        if isinstance(verify, str) and not os.path.exists(verify):
            # verify="false" or a typo must never end up meaning "do not verify"
            raise DregError(
                f"verify={verify!r}: no CA bundle there; pass verify=False to turn verification off"
            )
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
        )
        if isinstance(retry, int):
            retry = default_retry(total=retry)
        policy = retry if retry is not None else default_retry()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=policy)
        # Reads skip requests' per-request overhead unless something only requests does is in play.
        self._reads: ReadPool | None = None
        if own_session and not session.proxies and not isinstance(auth, requests.auth.AuthBase):
            self._reads = ReadPool(verify=verify, timeout=timeout, retry=policy, pool_size=pool_size)
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
        absolute = urljoin(self.base_url, path)
        if _origin(absolute) != self._origin:
            raise TransportError(f"refusing to follow {absolute.split('?')[0]!r}: not on {self._origin}")
        return absolute

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
    ) -> requests.Response:
        """Send one request; return the response if its status is in ``ok``, else raise.

        A 401 is answered from its challenge (Basic credentials, or a bearer token for the scope)
        and the request sent again, once; a second 401 is an :class:`AuthenticationError`, or
        :class:`PermissionDenied` when the token lacks the rights.
        """
        url = self.url(path)
        relative = url[len(self.base_url) :] if url.startswith(self.base_url) else ""
        sent = dict(headers or {})
        header = self.auth.authorization(method, relative)
        if header:
            sent["Authorization"] = header
        start = data.tell() if hasattr(data, "tell") else None
        for attempt in (1, 2):
            response = self._send(method, url, sent, params, data, stream, allow_redirects, what)
            if response.status_code in ok:
                return response
            if response.status_code != 401 or self.session.auth is not None:
                break
            try:
                sent["Authorization"] = self.auth.answer(
                    response, method, relative, attempt, sent.get("Authorization")
                )
            except DregError as exc:
                response.close()
                if what and not str(exc).startswith(what):
                    exc.args = (f"{what}: {exc}",)
                raise
            response.close()
            if start is not None:
                data.seek(start)
        error = error_from_response(response, what)
        response.close()
        raise error

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        params: Mapping[str, str | int] | None,
        data: Any,
        stream: bool,
        allow_redirects: bool,
        what: str,
    ) -> requests.Response:
        with self._lock:
            self.requests_made += 1
        if self._reads is not None and method in ("GET", "HEAD") and data is None and allow_redirects:
            return self._fast(method, url, headers, params, stream, what)
        try:
            return self.session.request(
                method,
                url,
                headers=dict(headers or {}),
                params=params,
                data=data,
                stream=stream,
                timeout=self.timeout,
                verify=self.verify,
                allow_redirects=allow_redirects,
            )
        except requests.exceptions.SSLError as exc:
            raise self._tls_error(method, what, _reason(exc)) from None
        except requests.exceptions.RetryError as exc:
            raise self._failing(method, url, what, _reason(exc)) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise self._unreachable(method, what, _reason(exc)) from None
        except requests.exceptions.RequestException as exc:
            raise TransportError(f"{what or method}: {url.split('?')[0]}: {_reason(exc)}") from None

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
        stream: bool,
        what: str,
    ) -> requests.Response:
        assert self._reads is not None
        if params:
            url += ("&" if "?" in url else "?") + urlencode({k: str(v) for k, v in params.items()})
        sent = {
            "User-Agent": str(self.session.headers.get("User-Agent", "dreg-frames")),
            **dict(headers or {}),
        }
        try:
            return self._reads.send(method, url, sent, stream)
        except urllib3.exceptions.MaxRetryError as exc:
            reason = exc.reason
            if isinstance(reason, urllib3.exceptions.SSLError):
                raise self._tls_error(method, what, reason) from None
            if isinstance(reason, urllib3.exceptions.ResponseError):
                raise self._failing(method, url, what, reason) from None
            raise self._unreachable(method, what, _reason(exc)) from None
        except urllib3.exceptions.SSLError as exc:
            raise self._tls_error(method, what, exc) from None
        except urllib3.exceptions.HTTPError as exc:
            raise TransportError(f"{what or method}: {url.split('?')[0]}: {_reason(exc)}") from None

    def get_capped(
        self, path: str, *, what: str, headers: Mapping[str, str] | None = None, cap: int = MAX_MANIFEST_BYTES
    ) -> tuple[bytes, requests.Response]:
        """GET ``path`` and read at most ``cap`` bytes of body; a larger body raises ContentTooLarge.

        A body cut short (reset, truncated) is fetched again, twice at most: these are small,
        idempotent reads, and urllib3 only retries failures before the answer starts.
        """
        for attempt in range(3):
            try:
                return self._get_capped_once(path, what=what, headers=headers, cap=cap)
            except _BrokenBody as exc:
                if attempt == 2:
                    raise TransportError(str(exc)) from None
        raise AssertionError("unreachable")

    def _get_capped_once(
        self, path: str, *, what: str, headers: Mapping[str, str] | None, cap: int
    ) -> tuple[bytes, requests.Response]:
        response = self.request("GET", path, what=what, headers=headers, stream=True)
        try:
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > cap:
                raise ContentTooLarge(response.url.split("?")[0], cap, int(declared))
            chunks: list[bytes] = []
            total = 0
            for chunk in response.iter_content(65536):
                total += len(chunk)
                if total > cap:
                    raise ContentTooLarge(response.url.split("?")[0], cap)
                chunks.append(chunk)
            body = b"".join(chunks)
            if declared is not None and declared.isdigit() and int(declared) != len(body):
                raise _BrokenBody(f"{what}: body truncated ({len(body)} of {declared} bytes)")
            return body, response
        except requests.exceptions.RequestException as exc:
            raise _BrokenBody(f"{what}: reading the body failed: {_reason(exc)}") from None
        finally:
            response.close()

    def get_json(self, path: str, *, what: str, params: Mapping[str, str | int] | None = None) -> Any:
        response = self.request("GET", path, what=what, params=params)
        return _json(response, what)

    def paginate(self, path: str, key: str, *, what: str, page_size: int | None = 1000) -> Iterator[str]:
        """Yield every string of ``key`` across all pages, following ``Link: <...>; rel="next"``.

        If the registry refuses ``page_size`` (400 PAGINATION_NUMBER_INVALID) we fall back to its default.
        """
        params: dict[str, str | int] | None = {"n": page_size} if page_size else None
        try:
            response = self.request("GET", path, what=what, params=params)
        except PaginationError:
            if params is None:
                raise
            response = self.request("GET", path, what=what)
        seen: set[str] = set()
        while True:
            body = _json(response, what)
            values = body.get(key) if isinstance(body, dict) else None
            if values is None:
                values = []
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise RegistryError(
                    f"{what}: {key!r} is not a list of strings",
                    status=response.status_code,
                    response=response,
                )
            yield from values
            link = response.links.get("next", {}).get("url")
            if not link:
                return
            next_url = urljoin(response.url, link)
            if next_url in seen:
                raise RegistryError(f"{what}: pagination loops at {next_url}", response=response)
            seen.add(next_url)
            response = self.request("GET", next_url, what=what)


class _BrokenBody(Exception):
    """A body that broke off while being read (internal: becomes TransportError after retries)."""


def _json(response: requests.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise RegistryError(
            f"{what}: the registry's answer is not valid JSON", status=response.status_code, response=response
        ) from None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _reason(exc: BaseException) -> str:
    # requests nests urllib3's reason several levels deep; the innermost text is what users need.
    inner: BaseException = exc
    while inner.args and isinstance(inner.args[0], BaseException):
        inner = inner.args[0]
    reason = getattr(inner, "reason", None)
    return str(reason or inner)[:300]
