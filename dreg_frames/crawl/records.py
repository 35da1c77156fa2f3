"""What a crawl finds, as plain records: the step between registry objects and DataFrames."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ErrorRecord", "ImageRecord", "LayerTuple", "RepositoryRecord", "TagRecord"]

# (layer_digest, layer_size or None, layer_media_type): a tuple, since crawls hold millions of them.
LayerTuple = tuple[str, "int | None", str]


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """One platform manifest as found under a tag."""

    manifest_digest: str
    manifest_media_type: str
    platform: str
    config_digest: str | None
    created: str | None  # RFC 3339 as the config has it, nanoseconds included
    layers: tuple[LayerTuple, ...]
    config_size: int | None = None
    manifest_size: int | None = None


@dataclass(frozen=True, slots=True)
class TagRecord:
    """A tag, the digest it points to, and the platform images under it."""

    repository: str
    tag: str
    digest: str
    media_type: str
    images: tuple[ImageRecord, ...]
    digest_size: int | None = None  # bytes of the manifest or index the tag points to


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """A failure the crawl recorded instead of raising."""

    repository: str
    tag: str | None
    stage: str  # catalog, tags, manifest, child, config
    error: str  # exception class name
    message: str
    status: int | None
    digest: str | None = None


@dataclass(frozen=True, slots=True)
class RepositoryRecord:
    repository: str
    n_tags: int
    state: str  # ok, empty (listed without tags), error
