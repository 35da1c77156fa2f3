"""The one exception tree of dreg-frames.

Everything the toolkit raises on purpose derives from :class:`DregError`::

    DregError
    ├── InvalidReference        a name, tag or digest that breaks the grammar (also a ValueError)
    │   └── UnsupportedDigest     a digest algorithm whose content cannot be verified here
    ├── ManifestError           a manifest, index or config that cannot be parsed (also a ValueError)
    │   └── UnsupportedMediaType
    ├── DigestMismatch          content that does not hash to the digest it was served under
    ├── ContentTooLarge         a body, or a list's pages or entries, over its limit (never read whole)
    ├── TransportError          no HTTP answer at all: refused, reset, timed out
    │   ├── TLSError            certificate verification failed
    │   └── DeadlineExceeded    no complete answer within the per-request deadline
    └── RegistryError           the registry answered with an error status
        ├── BadRequest            400 (NAME_INVALID, DIGEST_INVALID, MANIFEST_INVALID, ...)
        │   └── PaginationError   400 PAGINATION_NUMBER_INVALID
        ├── AuthenticationError   401 UNAUTHORIZED: missing or wrong credentials
        ├── PermissionDenied      403 DENIED: credentials fine, action not allowed
        ├── NotFound              404
        │   ├── RepositoryNotFound  NAME_UNKNOWN
        │   ├── ManifestNotFound    MANIFEST_UNKNOWN (a tag or digest that is not there)
        │   └── BlobNotFound        BLOB_UNKNOWN
        ├── CatalogUnavailable    the registry does not offer /v2/_catalog (GHCR, Docker Hub, ...)
        ├── UnsupportedOperation  405 UNSUPPORTED, e.g. deletes disabled on the registry
        ├── TooManyRequests       429 TOOMANYREQUESTS
        └── ServerError           5xx

:class:`RegistryError` keeps the HTTP ``status``, the registry's error ``codes`` from its
``{"errors": [...]}`` body, and the ``response`` itself. Messages never contain credentials.
"""

from __future__ import annotations

import json
from typing import Any

import requests

__all__ = [
    "AuthenticationError",
    "BadRequest",
    "BlobNotFound",
    "CatalogUnavailable",
    "ContentTooLarge",
    "DeadlineExceeded",
    "DigestMismatch",
    "DregError",
    "InvalidReference",
    "ManifestError",
    "ManifestNotFound",
    "NotFound",
    "PaginationError",
    "PermissionDenied",
    "RegistryError",
    "RepositoryNotFound",
    "ServerError",
    "TLSError",
    "TooManyRequests",
    "TransportError",
    "UnsupportedDigest",
    "UnsupportedMediaType",
    "UnsupportedOperation",
    "error_from_response",
]


class DregError(Exception):
    """Base of every error dreg-frames raises on purpose."""

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of printing the whole stack: the error in one line and a hint.
        message, hint = describe(self)
        lines = [f"\x1b[1;31m{type(self).__name__}\x1b[0m: {message}"]
        if hint:
            lines.append(f"\x1b[1;33mhint\x1b[0m: {hint}")
        lines.append(
            "\x1b[2m(full traceback: import sys, traceback; traceback.print_exception(sys.last_value))\x1b[0m"
        )
        return lines


class InvalidReference(DregError, ValueError):
    """A repository name, tag or digest that does not match the distribution grammar.

    ``kind`` is ``"name"``, ``"tag"``, ``"digest"`` or ``"reference"``; ``value`` is what was given.
    """

    def __init__(self, kind: str, value: object, rule: str) -> None:
        self.kind = kind
        self.value = value
        self.rule = rule
        super().__init__(f"invalid {kind} {value!r}: {rule}")


class UnsupportedDigest(InvalidReference):
    """A digest whose algorithm this toolkit cannot verify (only sha256 and sha512): content under it
    is refused rather than accepted unverified."""


class ManifestError(DregError, ValueError):
    """A manifest, image index or image config whose content cannot be understood."""


class UnsupportedMediaType(ManifestError):
    """Content of a media type this toolkit does not parse."""

    def __init__(self, media_type: str | None, where: str = "") -> None:
        self.media_type = media_type
        suffix = f" ({where})" if where else ""
        super().__init__(f"unsupported media type {media_type!r}{suffix}")


class DigestMismatch(DregError):
    """Content whose sha256 differs from the digest it was requested by or served under."""

    def __init__(self, expected: str, actual: str, where: str = "") -> None:
        self.expected = expected
        self.actual = actual
        suffix = f" for {where}" if where else ""
        super().__init__(f"digest mismatch{suffix}: expected {expected}, content hashes to {actual}")


class ContentTooLarge(DregError):
    """A body over its cap (decoded bytes), or a paginated list over its page or entry bound;
    refused as soon as the limit is passed, never read whole.

    ``url`` (no query string), ``limit``, ``size`` (when the server declared it) and ``unit``.
    """

    def __init__(
        self,
        url: str,
        limit: int,
        size: int | None = None,
        *,
        kind: str = "manifests and configs",
        unit: str = "bytes",
    ) -> None:
        self.url = url
        self.limit = limit
        self.size = size
        self.unit = unit
        told = f"sent {size} {unit}" if size is not None else f"sent more than {limit} {unit}"
        super().__init__(f"{url} {told}: over the limit for {kind} ({limit} {unit})")


class TransportError(DregError):
    """The registry could not be reached or did not answer (refused, reset, timed out)."""


class TLSError(TransportError):
    """TLS certificate verification failed; pass ``verify="ca.pem"`` for a private CA."""


class DeadlineExceeded(TransportError):
    """No complete answer within the per-request deadline (``seconds``), retries included: a server
    trickling its headers or body, or a request that kept failing until the time was up."""

    def __init__(self, message: str, *, seconds: float | None = None) -> None:
        self.seconds = seconds
        super().__init__(message)


class RegistryError(DregError):
    """The registry answered with an error status.

    Attributes: ``status`` (HTTP status), ``codes`` (the registry's error codes, e.g.
    ``["MANIFEST_UNKNOWN"]``), ``errors`` (the full ``errors`` list) and ``response``.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        codes: tuple[str, ...] = (),
        errors: tuple[dict[str, Any], ...] = (),
        response: requests.Response | None = None,
    ) -> None:
        self.status = status
        self.codes = codes
        self.errors = errors
        self.response = response
        super().__init__(message)

    @property
    def code(self) -> str | None:
        """The first registry error code, if the registry sent one."""
        return self.codes[0] if self.codes else None


class BadRequest(RegistryError):
    """400: the registry rejected the request (invalid name, digest, manifest, ...)."""


class PaginationError(BadRequest):
    """400 PAGINATION_NUMBER_INVALID: the page size ``n`` is over the registry's limit."""


class AuthenticationError(RegistryError):
    """401: credentials are missing, wrong or expired."""


class PermissionDenied(RegistryError):
    """403 DENIED: authenticated, but the action is not allowed."""


class NotFound(RegistryError):
    """404: the repository, manifest or blob does not exist."""


class RepositoryNotFound(NotFound):
    """404 NAME_UNKNOWN: the repository is not known to the registry."""


class ManifestNotFound(NotFound):
    """404 MANIFEST_UNKNOWN: no manifest under that tag or digest."""


class BlobNotFound(NotFound):
    """404 BLOB_UNKNOWN: no blob with that digest in this repository."""


class CatalogUnavailable(RegistryError):
    """The registry does not serve ``/v2/_catalog``; name the repositories yourself."""


class UnsupportedOperation(RegistryError):
    """405 UNSUPPORTED: the registry refuses this operation (deletes disabled, by default)."""


class TooManyRequests(RegistryError):
    """429 TOOMANYREQUESTS: rate limited. ``retry_after`` holds the server's hint in seconds."""

    @property
    def retry_after(self) -> float | None:
        value = self.response.headers.get("Retry-After") if self.response is not None else None
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None


class ServerError(RegistryError):
    """5xx: the registry failed."""


_BY_CODE: dict[str, type[RegistryError]] = {
    "PAGINATION_NUMBER_INVALID": PaginationError,
    "UNAUTHORIZED": AuthenticationError,
    "DENIED": PermissionDenied,
    "NAME_UNKNOWN": RepositoryNotFound,
    "MANIFEST_UNKNOWN": ManifestNotFound,
    "BLOB_UNKNOWN": BlobNotFound,
    "UNSUPPORTED": UnsupportedOperation,
    "TOOMANYREQUESTS": TooManyRequests,
}

_BY_STATUS: dict[int, type[RegistryError]] = {
    400: BadRequest,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    405: UnsupportedOperation,
    429: TooManyRequests,
}


def _parse_errors(response: requests.Response) -> tuple[dict[str, Any], ...]:
    # The body of an error may be anything (an HTML page from a proxy, truncated JSON): keep what parses.
    try:
        body = json.loads(response.content[:65536] or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):
        return ()
    if not isinstance(body, dict) or not isinstance(body.get("errors"), list):
        return ()
    return tuple(e for e in body["errors"] if isinstance(e, dict))


def error_from_response(response: requests.Response, what: str = "") -> RegistryError:
    """Build the most specific :class:`RegistryError` for an error ``response``."""
    errors = _parse_errors(response)
    codes = tuple(str(e.get("code", "")) for e in errors if e.get("code"))
    status = response.status_code
    cls: type[RegistryError] = RegistryError
    status_cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else None)
    code_cls = next((_BY_CODE[c] for c in codes if c in _BY_CODE), None)
    # A code refines the status class only when it agrees with it (a proxy's 404 page has no code).
    if code_cls is not None and (status_cls is None or issubclass(code_cls, status_cls)):
        cls = code_cls
    elif status_cls is not None:
        cls = status_cls
    messages = "; ".join(f"{e.get('code', '?')}: {e.get('message', '')}".rstrip(": ") for e in errors)
    method = response.request.method if response.request is not None else "?"
    url = _redact_url(response.url)
    head = f"{what}: " if what else ""
    text = f"{head}{method} {url} -> HTTP {status}"
    if messages:
        text += f" ({messages})"
    return cls(text, status=status, codes=codes, errors=errors, response=response)


def _redact_url(url: str) -> str:
    # Query strings of upload locations carry state tokens and, on some registries, signed credentials.
    return url.split("?", 1)[0]


def looks_like_registry(response: requests.Response | None) -> bool:
    """Whether an error answer came from a registry: its API-version header, or registry error codes.
    A web server that is not a registry (a wrong URL) has neither."""
    if response is None:
        return True  # nothing to judge by: do not claim otherwise
    if "Docker-Distribution-API-Version" in response.headers:
        return True
    return bool(_parse_errors(response))


# (class, hint in a notebook, hint on the command line); the first class that matches wins.
_HINTS: list[tuple[type[DregError], str, str]] = [
    (
        CatalogUnavailable,
        "this registry has no catalog: name the repositories, e.g. crawl(registry, ['team/app'])",
        "name the repositories with --repositories team/app other/app",
    ),
    (
        AuthenticationError,
        "pass auth=('user', 'password') to Registry.build_with_manual_client, or 'docker login' first",
        "pass --user NAME with the password in $DREG_PASSWORD, or 'docker login' first",
    ),
    (
        PermissionDenied,
        "these credentials may read but not do this; ask for more rights",
        "these credentials may read but not do this; ask for more rights",
    ),
    (
        TLSError,
        "pass verify='/path/to/ca.pem' for a private CA (or verify=False, if you must)",
        "pass --ca /path/to/ca.pem for a private CA (or --insecure, if you must)",
    ),
    (
        TransportError,
        "check the URL and that the registry is up and reachable from here",
        "check the URL and that the registry is up and reachable from here",
    ),
]


def describe(exc: DregError, *, cli: bool = False) -> tuple[str, str | None]:
    """The message and hint to show a person for ``exc`` (IPython and the command line use it).

    A catalog 404 from a server that is not a registry is said as such, with no catalog hint."""
    if isinstance(exc, CatalogUnavailable) and not looks_like_registry(exc.response):
        url = _redact_url(exc.response.url) if exc.response is not None else "the URL"
        return (
            f"{url} answered HTTP {exc.status} and is not a container registry "
            "(no Docker-Distribution-API-Version header, no registry error codes)",
            "check the registry URL: it is the registry's base, e.g. https://registry.example.com",
        )
    hint = next((c if cli else n for cls, n, c in _HINTS if isinstance(exc, cls)), None)
    return str(exc), hint
