"""Registry authentication: Basic, and Bearer tokens fetched from the realm a 401 challenge names.

A request first goes out with what is cached for its scope (a token, or Basic credentials once the
registry asked for them). On a 401 the ``WWW-Authenticate`` challenge says what to do: ``Basic``
means send the credentials; ``Bearer realm=...,service=...,scope=...`` means fetch a token from the
realm (with Basic credentials or an identity token when we have them, anonymously otherwise), cache
it per scope until a little before ``expires_in`` runs out, and retry once. One lock per scope keeps
concurrent threads from all fetching the same token.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import requests
from requests.utils import parse_dict_header

from . import deadline as _deadline
from .credentials import Credentials
from .errors import AuthenticationError, DeadlineExceeded, PermissionDenied, TransportError
from .limits import BrokenBody, Limits, read_body

__all__ = ["AuthService", "Challenge", "RegistryAuth", "TokenAuthService", "parse_challenge", "scope_for"]

DEFAULT_EXPIRES = 60.0
_NAME = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*"
_REPO_PATH = re.compile(rf"^({_NAME})/(?:manifests|blobs|tags|referrers)/")
# A token goes into a header: visible ASCII only (a CR/LF would split the request).
_TOKEN = re.compile(r"[!-~]+")


@runtime_checkable
class AuthService(Protocol):
    """dreg-client's token service: ``request_token(scope) -> token``. Pass one as ``auth_service=``."""

    def request_token(self, scope: str) -> str: ...


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer"
    params: dict[str, str]
    raw: str = field(repr=False, default="")

    @property
    def error(self) -> str | None:
        return self.params.get("error")


def parse_challenge(header: str | None) -> Challenge | None:
    """``Bearer realm="...",service="...",scope="repository:x:pull,push"`` -> Challenge."""
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): (v or "") for k, v in parse_dict_header(rest).items()}  # type: ignore[no-untyped-call]
    return Challenge(scheme.lower(), params, header)


def scope_for(method: str, path: str) -> str | None:
    """The token scope a request needs, from its method and ``/v2/``-relative path."""
    if path.startswith("_catalog"):
        return "registry:catalog:*"
    match = _REPO_PATH.match(path)
    if not match:
        return None
    if method in ("GET", "HEAD"):
        actions = "pull"
    elif method == "DELETE":
        actions = "delete"
    else:
        actions = "pull,push"
    return f"repository:{match.group(1)}:{actions}"


@dataclass
class _Token:
    value: str
    expires_at: float


class TokenAuthService:
    """Fetches and caches bearer tokens from one realm (``AuthService`` protocol).

    Tokens are kept per scope until a little before they expire: 5 s early, or a tenth of the
    lifetime for tokens shorter than 50 s. The answer is read within ``limits`` (its deadline and
    ``token_bytes``); with credentials, a redirect is not followed (it could carry them elsewhere).
    """

    def __init__(
        self,
        realm: str,
        service: str | None,
        credentials: Credentials | None,
        *,
        session: requests.Session | None = None,
        verify: bool | str = True,
        timeout: float | tuple[float, float] = (5.0, 30.0),
        limits: Limits | None = None,
    ) -> None:
        self.realm = realm
        self.service = service
        self._credentials = credentials
        self._session = session or _watched_session()
        self._limits = limits or Limits()
        self._verify = verify
        self._timeout = timeout
        self._tokens: dict[str, _Token] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self.fetches = 0

    def __repr__(self) -> str:
        return f"TokenAuthService(realm={self.realm!r}, service={self.service!r})"

    def cached(self, scope: str) -> str | None:
        token = self._tokens.get(scope)
        if token is not None and time.monotonic() < token.expires_at:
            return token.value
        return None

    def forget(self, scope: str) -> None:
        self._tokens.pop(scope, None)

    def request_token(self, scope: str) -> str:
        hit = self.cached(scope)
        if hit is not None:
            return hit
        with self._lock:
            lock = self._locks.setdefault(scope, threading.Lock())
        with lock:  # one fetch per scope; the others wait and take its token
            hit = self.cached(scope)
            if hit is not None:
                return hit
            token = self._fetch(scope)
            self._tokens[scope] = token
            return token.value

    def _fetch(self, scope: str) -> _Token:
        with _deadline.scope(self._limits.deadline) as deadline:
            try:
                token = self._fetch_within(scope)
            except DeadlineExceeded:
                raise
            except (AuthenticationError, TransportError) as exc:
                if deadline.expired:
                    raise deadline.exceeded(f"token for {scope!r}", _redact(self.realm)) from None
                raise exc from None
            if deadline.expired:
                raise deadline.exceeded(f"token for {scope!r}", _redact(self.realm))
            return token

    def _fetch_within(self, scope: str) -> _Token:
        params: dict[str, str] = {"scope": scope} if scope else {}
        if self.service:
            params["service"] = self.service
        creds = self._credentials
        realm = _redact(self.realm)
        try:
            if creds is not None and creds.identity_token:
                # An identity token from `docker login` is an OAuth2 refresh token (POST form).
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": creds.identity_token,
                    "client_id": "dreg-frames",
                    **params,
                }
                response = self._session.post(
                    self.realm,
                    data=form,
                    verify=self._verify,
                    timeout=self._timeout,
                    stream=True,
                    allow_redirects=False,
                )
            else:
                if creds is not None and creds.username:
                    params["account"] = creds.username
                response = self._session.get(
                    self.realm,
                    params=params,
                    auth=creds.basic if creds else None,
                    verify=self._verify,
                    timeout=self._timeout,
                    stream=True,
                    allow_redirects=creds is None,
                )
        except (requests.exceptions.RequestException, ValueError) as exc:
            raise TransportError(f"token service {realm} unreachable: {type(exc).__name__}") from None
        with self._lock:
            self.fetches += 1
        who = f"user {creds.username!r}" if creds and creds.username else "anonymous access"
        status = response.status_code
        if status != 200:
            response.close()
        if 300 <= status < 400:
            raise AuthenticationError(
                f"token service {realm} redirected (HTTP {status}); with credentials, not followed",
                status=status,
                response=response,
            )
        if status in (401, 403):
            raise AuthenticationError(
                f"token service {realm} refused {who} for scope {scope!r} (HTTP {status})",
                status=status,
                response=response,
            )
        if status != 200:
            raise AuthenticationError(
                f"token service {realm} answered HTTP {status} for scope {scope!r}",
                status=status,
                response=response,
            )
        try:
            raw = read_body(
                response,
                self._limits.token_bytes,
                what=f"token from {realm}",
                kind="a token response (Limits.token_bytes)",
            )
        except BrokenBody as exc:
            raise TransportError(str(exc)) from None
        try:
            body: Any = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise AuthenticationError(f"token service {realm} sent no JSON", response=response) from None
        value = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(value, str) or not value:
            raise AuthenticationError(f"token service {realm} sent no token", response=response)
        if not _TOKEN.fullmatch(value):
            # Never repeated: it is a secret, and it could not be sent as a header anyway.
            raise AuthenticationError(
                f"token service {realm} sent a token with spaces or control characters; not used",
                response=response,
            )
        try:
            lifetime = float(body.get("expires_in") or DEFAULT_EXPIRES)
        except (TypeError, ValueError, OverflowError):
            lifetime = DEFAULT_EXPIRES
        if not 0 < lifetime < 366 * 86400:  # nan, negative, absurd: the documented default
            lifetime = DEFAULT_EXPIRES
        margin = min(5.0, lifetime / 10)
        return _Token(value, time.monotonic() + lifetime - margin)


def _watched_session() -> requests.Session:
    session = requests.Session()
    adapter = _deadline.WatchedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _redact(url: str) -> str:
    return url.split("?", 1)[0]


class RegistryAuth:
    """The authentication state of one registry: what to send, and how to answer a challenge."""

    def __init__(
        self,
        credentials: Credentials | None = None,
        *,
        auth_service: AuthService | None = None,
        session: requests.Session | None = None,
        verify: bool | str = True,
        timeout: float | tuple[float, float] = (5.0, 30.0),
        credentials_loader: Callable[[], Credentials | None] | None = None,
        registry_url: str | None = None,
        limits: Limits | None = None,
        allow_http_realm: bool = False,
    ) -> None:
        self._credentials = credentials
        self._registry = urlsplit(registry_url) if registry_url else None
        self._limits = limits or Limits()
        self._allow_http_realm = allow_http_realm
        self._loader = credentials_loader
        self.auth_service = auth_service
        self._session = session
        self._verify = verify
        self._timeout = timeout
        self._basic_wanted = False
        self._loading = threading.Lock()
        self._services: dict[tuple[str, str | None], TokenAuthService] = {}
        self._scopes: dict[str, TokenAuthService | AuthService] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RegistryAuth(credentials={self._credentials!r})"

    @property
    def credentials(self) -> Credentials | None:
        """The credentials in use: given, or looked up once in Docker's config when first needed.

        Concurrent first requests all wait for the one lookup (a thread that saw the loader gone
        before the credentials were set would otherwise answer the challenge as if there were none).
        """
        if self._loader is not None:
            with self._loading:
                if self._loader is not None:
                    self._credentials = self._loader()
                    self._loader = None
        return self._credentials

    def authorization(self, method: str, path: str) -> str | None:
        """The Authorization header to send up front, if we know one for this request's scope."""
        # (no scope known yet, as on an anonymous registry: nothing to work out per request)
        scope = scope_for(method, path) if self._scopes else None
        if scope is not None:
            service = self._scopes.get(scope)
            if service is not None:
                # Known scope: the cached token, or a new one fetched before it runs out, so an
                # expiring token costs no 401 round trip.
                return f"Bearer {service.request_token(scope)}"
        credentials = self._credentials
        if self._basic_wanted and credentials is not None and credentials.basic:
            return requests.auth._basic_auth_str(*credentials.basic)
        return None

    def answer(
        self, response: requests.Response, method: str, path: str, attempt: int, sent: str | None = None
    ) -> str:
        """The Authorization header that answers this 401, or raise a clear auth error.

        ``sent`` is the Authorization the refused request carried: only a token that was actually
        refused is dropped from the cache (another thread's fresh token is used as it is)."""
        challenge = parse_challenge(response.headers.get("WWW-Authenticate"))
        user = self.credentials.username if self.credentials else None
        if challenge is None:
            raise AuthenticationError(
                "the registry answered 401 without a WWW-Authenticate challenge",
                status=401,
                response=response,
            )
        if challenge.scheme == "basic":
            if self.credentials is None or self.credentials.basic is None:
                raise AuthenticationError(
                    "the registry wants a user name and password (Basic auth) and none were given: pass "
                    "auth=(user, password) or log in with docker login",
                    status=401,
                    response=response,
                )
            header = requests.auth._basic_auth_str(*self.credentials.basic)
            # Final only when these very credentials were refused: a request sent before another
            # thread learnt that the registry wants Basic auth carried none, and is simply answered.
            if sent == header:
                raise AuthenticationError(
                    f"the registry rejected the password of user {user!r}", status=401, response=response
                )
            self._basic_wanted = True
            return header
        if challenge.scheme != "bearer":
            raise AuthenticationError(
                f"unsupported auth scheme {challenge.scheme!r}", status=401, response=response
            )
        scope = challenge.params.get("scope") or scope_for(method, path) or ""
        service = self._service_for(challenge)
        if attempt > 1:
            # A fresh token and still 401: the token lacks the rights, or the credentials are wrong.
            who = f"user {user!r}" if user else "anonymous access"
            if self.auth_service is not None:
                who = f"the token service {self.auth_service!r}"
            if challenge.error == "insufficient_scope":
                raise PermissionDenied(
                    f"{who} may not do this: the token service granted less than {scope!r}",
                    status=401,
                    codes=("DENIED",),
                    response=response,
                )
            raise AuthenticationError(
                f"the registry rejected the token for {who}", status=401, response=response
            )
        if (
            isinstance(service, TokenAuthService)
            and sent is not None
            and sent == f"Bearer {service.cached(scope)}"
        ):
            service.forget(scope)
        with self._lock:
            self._scopes[scope] = service
            predicted = scope_for(method, path)
            if predicted and predicted != scope:
                self._scopes[predicted] = service
        return f"Bearer {service.request_token(scope)}"

    def _service_for(self, challenge: Challenge) -> TokenAuthService | AuthService:
        if self.auth_service is not None:
            return self.auth_service
        realm = challenge.params.get("realm")
        if not realm:
            raise AuthenticationError("the registry's Bearer challenge names no realm", status=401)
        key = (realm, challenge.params.get("service"))
        credentials = self.credentials
        with self._lock:
            service = self._services.get(key)
            if service is None:
                self._check_realm(realm, credentials)
                service = TokenAuthService(
                    realm,
                    key[1],
                    credentials,
                    session=self._session,
                    verify=self._verify,
                    timeout=self._timeout,
                    limits=self._limits,
                )
                self._services[key] = service
            return service

    def _check_realm(self, realm: str, credentials: Credentials | None) -> None:
        """Refuse a realm the user's credentials must not go to (anonymous tokens go anywhere).

        Never over plain http when the registry is https; to a host other than the registry's only
        over https, unless ``allow_http_realm`` (a lab)."""
        try:
            parts = urlsplit(realm)
            host = parts.hostname
        except ValueError:
            parts, host = urlsplit(""), None
        if parts.scheme not in ("http", "https") or not host:
            raise AuthenticationError(
                f"the registry's token realm {_redact(realm)[:200]!r} is not an http(s) URL", status=401
            )
        if credentials is None or self._registry is None or parts.scheme == "https":
            return
        origin = f"{parts.scheme}://{parts.netloc}"
        if self._registry.scheme == "https":
            raise AuthenticationError(
                f"the registry is https but names the plain-http token realm {origin}: credentials are "
                "never sent over plain http for an https registry",
                status=401,
            )
        if host != self._registry.hostname and not self._allow_http_realm:
            raise AuthenticationError(
                f"the registry names the token realm {origin}, another host over plain http: credentials "
                "go to another host only over https (allow_http_realm=True for a lab)",
                status=401,
            )

    @property
    def token_fetches(self) -> int:
        return sum(s.fetches for s in self._services.values())
