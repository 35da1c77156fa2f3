"""What a crawl finds, as plain records: the step between registry objects and DataFrames."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ErrorRecord", "ImageRecord", "LayerTuple", "ReferrerRecord", "RepositoryRecord", "TagRecord"]

# (layer_digest, layer_size or None, layer_media_type, urls): a tuple, since crawls hold millions of
# them. ``urls`` is non-empty for foreign / non-distributable layers, which the registry does not store.
LayerTuple = tuple[str, "int | None", str, tuple[str, ...]]


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
    os_version: str | None = None  # Windows: 10.0.17763.x (ltsc2019) vs 10.0.20348.x (ltsc2022)
    parent_digest: str | None = None  # the index listing this manifest (None: the tag names it)
    kind: str = "image"  # image, signature, attestation, sbom, helm-chart, artifact, index
    artifact_type: str | None = None
    config_media_type: str | None = None
    created_source: str | None = None  # where ``created`` came from: config, annotation
    subject_digest: str | None = None  # the image a signature / attestation / SBOM belongs to
    referrer_source: str | None = None  # how that link was found: subject, cosign-tag, tag-schema, ...
    annotations: str | None = None  # the manifest's annotations as JSON text (sorted keys)


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


@dataclass(frozen=True, slots=True)
class ReferrerRecord:
    """A referrer the registry's referrers API listed for a subject (it may have no tag at all)."""

    repository: str
    subject_digest: str
    digest: str
    media_type: str
    artifact_type: str | None
    size: int
    annotations: str | None  # JSON text, sorted keys
