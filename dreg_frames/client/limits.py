"""What one registry answer may cost: bytes read, pages followed, time spent.

Every body the client reads goes through :func:`read_body` with a cap on *decoded* bytes (a gzip
bomb is stopped at the cap, not inflated first); every request runs within a deadline
(:mod:`.deadline`); every paginated list stops at a page and an entry bound; at most
``concurrency`` requests are in flight to the registry at once (:mod:`.concurrency`). The defaults
are below; ``Limits(...)`` passed as ``limits=`` to ``Registry.build_with_manual_client`` changes them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import requests
import urllib3

from . import deadline as _deadline
from .connections import Answer
from .errors import ContentTooLarge, DregError

__all__ = [
    "DEFAULT_DEADLINE",
    "MAX_CONCURRENCY",
    "MAX_ERROR_BYTES",
    "MAX_LIST_BYTES",
    "MAX_LIST_ITEMS",
    "MAX_LIST_PAGES",
    "MAX_MANIFEST_BYTES",
    "MAX_TOKEN_BYTES",
    "BrokenBody",
    "Limits",
    "read_body",
    "reason",
]

# Distribution refuses manifests over 4 MiB; anything larger is not a manifest we should hold in memory.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
# One tags-list or catalog page: 100,000 names of up to 128 characters, in JSON, fit.
MAX_LIST_BYTES = 16 * 1024 * 1024
# An error body is read for its error codes only; beyond this it is dropped, not an error.
MAX_ERROR_BYTES = 64 * 1024
# A token response is a JWT or two and a few fields.
MAX_TOKEN_BYTES = 256 * 1024
# Pages and entries of one paginated list (catalog or tags): 1000 pages of 1000 is a million.
MAX_LIST_PAGES = 10_000
MAX_LIST_ITEMS = 1_000_000
# Everything one request does: connecting, retries and their waits, redirects, a token fetch,
# reading the body. A socket timeout alone bounds each read, not a trickle of them.
DEFAULT_DEADLINE = 120.0
# Requests in flight to one registry at once, from all threads (workers="auto" grows up to it).
MAX_CONCURRENCY = 32

_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Limits:
    """The bounds every request of one registry obeys (see the module constants for the defaults).

    Example::

        Registry.build_with_manual_client(url, limits=Limits(deadline=30, list_pages=100))
    """

    deadline: float = DEFAULT_DEADLINE
    list_bytes: int = MAX_LIST_BYTES
    list_pages: int = MAX_LIST_PAGES
    list_items: int = MAX_LIST_ITEMS
    error_bytes: int = MAX_ERROR_BYTES
    token_bytes: int = MAX_TOKEN_BYTES
    concurrency: int = MAX_CONCURRENCY

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise DregError(f"Limits({item.name}=...) must be a positive number, got {value!r}")
        if not isinstance(self.concurrency, int):
            raise DregError(f"Limits(concurrency=...) must be a whole number, got {self.concurrency!r}")


class BrokenBody(Exception):
    """A body that broke off while being read (internal: a refetch, or a TransportError)."""


def read_body(
    response: requests.Response, cap: int, *, what: str, kind: str, keep_first: bool = False
) -> bytes:
    """The body of a streamed ``response``: at most ``cap`` decoded bytes, within the deadline.

    Over the cap: :class:`ContentTooLarge` (``kind`` names what the cap is for), or, with
    ``keep_first``, the first ``cap`` bytes (error bodies: only their codes matter). A body cut short
    raises :class:`BrokenBody`. The response is closed; its connection goes back to the pool only
    when the body was read to its end.
    """
    url = (response.url or "").split("?", 1)[0]
    declared = response.headers.get("Content-Length")
    encoded = response.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity")
    if not keep_first and declared is not None and declared.isdigit() and int(declared) > cap:
        response.close()
        raise ContentTooLarge(url, cap, int(declared), kind=kind)
    deadline = _deadline.current()
    raw = response.raw
    whole = raw.ready() if isinstance(raw, Answer) else None
    if whole is not None:
        # All in already and undecoded (most answers: one read brings headers and body).
        if len(whole) > cap and not keep_first:
            raise ContentTooLarge(url, cap, kind=kind)
        if deadline is not None:
            deadline.check(what)
        if declared is not None and declared.isdigit() and len(whole) < int(declared):
            raise BrokenBody(f"{what}: body truncated ({len(whole)} of {declared} bytes)")
        response._content_consumed = True  # type: ignore[attr-defined]
        response._content = whole[:cap]
        return response._content
    chunks: list[bytes] = []
    total = 0
    complete = False
    try:
        stream = raw.stream(_CHUNK, decode_content=True) if raw is not None else iter(())
        for chunk in stream:
            total += len(chunk)
            if total > cap:
                if not keep_first:
                    raise ContentTooLarge(url, cap, kind=kind)
                chunks.append(chunk[: cap - (total - len(chunk))])
                break
            chunks.append(chunk)
            if deadline is not None:
                deadline.check(what)
        else:
            complete = True
    except (urllib3.exceptions.HTTPError, requests.exceptions.RequestException, OSError) as exc:
        if deadline is not None and deadline.expired:
            raise deadline.exceeded(what) from None
        raise BrokenBody(f"{what}: reading the body failed: {reason(exc)}") from None
    finally:
        if complete:
            response._content_consumed = True  # type: ignore[attr-defined]
        response.close()
    if deadline is not None and deadline.expired:
        raise deadline.exceeded(what)  # what arrived before the socket was shut is not the answer
    body = b"".join(chunks)
    if complete and declared is not None and declared.isdigit():
        # Compared with the bytes on the wire: a gzip-encoded body decodes to more than it declared.
        received = raw.tell() if hasattr(raw, "tell") and encoded else len(body)
        if received < int(declared):
            raise BrokenBody(f"{what}: body truncated ({received} of {declared} bytes)")
    response._content = body
    return body


def reason(exc: BaseException) -> str:
    """The innermost, useful text of a requests or urllib3 exception."""
    # requests nests urllib3's reason several levels deep.
    inner: BaseException = exc
    while inner.args and isinstance(inner.args[0], BaseException):
        inner = inner.args[0]
    reason = getattr(inner, "reason", None)
    return str(reason or inner)[:300]
