"""The distribution grammar for repository names, tags and digests.

Every name, tag and digest is checked here before it is put into a URL, so a value such as
``"../x"``, ``"a%2fb"`` or ``"v1\\n"`` never reaches the registry.
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

from .errors import InvalidReference, UnsupportedDigest

__all__ = [
    "Reference",
    "check_digest",
    "check_name",
    "check_reference",
    "check_tag",
    "check_verifiable",
    "digest_of",
    "is_digest",
    "parse_reference",
    "sha256_digest",
]

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
# Known algorithms get their exact encoded form; the registry itself rejects anything else for them.
_ENCODED = {"sha256": re.compile(r"[a-f0-9]{64}"), "sha512": re.compile(r"[a-f0-9]{128}")}
# Nearly every digest a crawl checks (several per request) is sha256: one match settles it.
_SHA256_RE = re.compile(r"sha256:[a-f0-9]{64}")
_NAME_MAX = 255

NAME_RULE = (
    "lowercase components [a-z0-9] joined by '.', '_', '__' or '-', separated by '/', "
    f"at most {_NAME_MAX} characters"
)
TAG_RULE = "1 to 128 characters of [A-Za-z0-9_.-], not starting with '.' or '-'"
DIGEST_RULE = "algorithm:hex, e.g. sha256 followed by ':' and 64 lowercase hex digits"


def check_name(name: object) -> str:
    """Return ``name`` if it is a valid repository name, else raise :class:`InvalidReference`.

    >>> check_name("team1/app")
    'team1/app'
    """
    if not isinstance(name, str) or len(name) > _NAME_MAX or not _NAME_RE.fullmatch(name):
        raise InvalidReference("name", name, NAME_RULE)
    return name


def check_tag(tag: object) -> str:
    """Return ``tag`` if it is a valid tag, else raise :class:`InvalidReference`.

    >>> check_tag("v1.2.3")
    'v1.2.3'
    """
    if not isinstance(tag, str) or not _TAG_RE.fullmatch(tag):
        raise InvalidReference("tag", tag, TAG_RULE)
    return tag


def check_digest(digest: object) -> str:
    """Return ``digest`` if it is a valid digest, else raise :class:`InvalidReference`.

    >>> check_digest("sha256:" + "0" * 64)[:10]
    'sha256:000'
    """
    if isinstance(digest, str) and _SHA256_RE.fullmatch(digest):
        return digest
    if not isinstance(digest, str) or not _DIGEST_RE.fullmatch(digest):
        raise InvalidReference("digest", digest, DIGEST_RULE)
    algorithm, encoded = digest.split(":", 1)
    exact = _ENCODED.get(algorithm)
    if exact is not None and not exact.fullmatch(encoded):
        raise InvalidReference("digest", digest, DIGEST_RULE)
    return digest


def is_digest(reference: str) -> bool:
    """True when ``reference`` has the shape of a digest rather than a tag."""
    return ":" in reference


def check_reference(reference: object) -> str:
    """Return a tag or digest, checked against the grammar of whichever it looks like."""
    if isinstance(reference, str) and is_digest(reference):
        return check_digest(reference)
    if isinstance(reference, str):
        return check_tag(reference)
    raise InvalidReference("reference", reference, f"a tag ({TAG_RULE}) or a digest ({DIGEST_RULE})")


class Reference(NamedTuple):
    """A parsed ``name[:tag][@digest]`` (no registry host)."""

    name: str
    tag: str | None
    digest: str | None

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str) -> Reference:
    """Split ``"team/app:v1@sha256:..."`` into its checked parts.

    >>> parse_reference("team/app@sha256:" + "a" * 64).tag is None
    True
    """
    if not isinstance(text, str):
        raise InvalidReference("reference", text, "a string 'name[:tag][@digest]'")
    rest, at, digest = text.partition("@")
    name, tag = rest, None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        name, tag = rest[:colon], rest[colon + 1 :]
    return Reference(
        check_name(name),
        check_tag(tag) if tag is not None else None,
        check_digest(digest) if at else None,
    )


def sha256_digest(data: bytes) -> str:
    """The ``sha256:<hex>`` digest of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


# The algorithms of the OCI image spec's registered digests; content is only ever trusted after
# hashing it with the algorithm its digest names.
_HASHES = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}


def digest_of(data: bytes, like: str = "sha256") -> str:
    """The digest of ``data`` computed with the algorithm of ``like`` (a digest or an algorithm name).

    An algorithm that cannot be verified raises :class:`UnsupportedDigest`: content addressed by it
    is never accepted unverified.

    >>> digest_of(b"{}", "sha512:" + "0" * 128)[:15]
    'sha512:27c74670'
    """
    algorithm = _algorithm(like)
    return f"{algorithm}:{_HASHES[algorithm](data).hexdigest()}"


def check_verifiable(digest: object) -> str:
    """Return the algorithm of ``digest`` if it is a valid digest whose content can be verified
    here, else raise (:class:`UnsupportedDigest` for an algorithm we cannot hash): called before a
    request, so nothing is fetched that could only be accepted unverified.

    >>> check_verifiable("sha512:" + "0" * 128)
    'sha512'
    """
    return _algorithm(check_digest(digest))


def _algorithm(like: str) -> str:
    algorithm = like.split(":", 1)[0]
    if algorithm not in _HASHES:
        raise UnsupportedDigest(
            "digest", like, f"algorithm {algorithm!r} cannot be verified; supported: {', '.join(_HASHES)}"
        )
    return algorithm
