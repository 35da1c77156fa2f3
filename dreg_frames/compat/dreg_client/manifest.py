"""dreg-client's manifest model, filled from what dreg-frames fetched, verified and parsed.

The classes keep dreg-client's names, fields and equality; the parsing is dreg-frames'
(:func:`dreg_frames.client.parse_manifest` and :func:`~dreg_frames.client.parse_config`), and only
the conversion to these shapes lives here.

>>> Platform.from_name("linux/arm/v7")
Platform(linux/arm/v7)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

import requests

from ...client import manifests as native
from ...client.errors import DregError, ManifestError, UnsupportedMediaType
from ...client.mediatypes import DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST

__all__ = [
    "DigestMixin",
    "ImageConfig",
    "ImageConfigRef",
    "ImageHistoryItem",
    "ImageLayerRef",
    "InvalidPlatformNameError",
    "LegacyManifest",
    "Manifest",
    "ManifestList",
    "ManifestParseOutput",
    "ManifestRef",
    "Platform",
    "UnusableImageConfigBlobPayloadError",
    "UnusableImageConfigBlobResponseError",
    "UnusableManifestPayloadError",
    "UnusableManifestResponseError",
    "image_config_from_bytes",
    "manifest_from_bytes",
    "manifest_from_native",
]


class InvalidPlatformNameError(DregError, ValueError):
    """A platform name that is not ``os/architecture[/variant]``."""


class DigestMixin:
    digest: str

    @property
    def short_digest(self) -> str:
        """The first 12 hex digits, as ``docker images`` shows them: ``1a067fa67b5b``."""
        return self.digest.partition(":")[2][:12]


class Platform(native.Platform):
    """A platform as dreg-client names it; also a :class:`dreg_frames.client.Platform`.

    Only ``os``, ``architecture`` and ``variant`` are filled (dreg-client compares platforms by name).
    """

    @property
    def name(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"Platform({self.name})"

    @classmethod
    def extract(cls, data: Mapping[str, Any], /) -> Platform:
        """From a JSON object with ``os``, ``architecture`` and optionally ``variant``."""
        return cls(os=data["os"], architecture=data["architecture"], variant=data.get("variant"))

    @classmethod
    def from_name(cls, name: str, /) -> Platform:
        """``Platform.from_name("linux/arm64")``; anything else raises InvalidPlatformNameError."""
        try:
            parsed = native.Platform.parse(name)
        except ValueError:
            raise InvalidPlatformNameError(f"Invalid platform name '{name}' supplied.") from None
        return cls(parsed.os, parsed.architecture, parsed.variant)

    @classmethod
    def from_names(cls, names: Iterable[str], /) -> AbstractSet[Platform]:
        return frozenset(cls.from_name(name) for name in names)

    @classmethod
    def from_native(cls, platform: native.Platform) -> Platform:
        return cls(platform.os, platform.architecture, platform.variant)


# An index child without a platform (an artifact, a signature) gets the name buildx gives its
# attestation manifests, rather than being dropped.
UNKNOWN_PLATFORM = Platform("unknown", "unknown")

_NOP = "/bin/sh -c #(nop)"
_BUILDKIT_MARK = "# buildkit"
_SHELLS = ("RUN /bin/sh -c", "/bin/sh -c")


@dataclass(frozen=True)
class ImageHistoryItem:
    """One entry of an image config's ``history``."""

    created_at: str
    created_by: str = field(repr=False)
    empty_layer: bool = field(compare=False)
    comment: str = field(compare=False, repr=False)

    @property
    def clean_created_by(self) -> str:
        """The Dockerfile instruction without the shell wrapping the builders add.

        >>> ImageHistoryItem("", "/bin/sh -c apt-get update # buildkit", False, "").clean_created_by
        'RUN apt-get update'
        """
        text = self.created_by.strip()
        if text.startswith(_NOP):
            text = text[len(_NOP) :].strip()
        if text.endswith(_BUILDKIT_MARK):
            text = text[: -len(_BUILDKIT_MARK)].strip()
        for shell in _SHELLS:
            if text.startswith(shell):
                return "RUN " + text[len(shell) :].strip()
        return text


@dataclass(frozen=True)
class ImageConfig(DigestMixin):
    """An image config blob: when and how the image was built, and for which platform."""

    digest: str
    content_length: int
    created_at: str = field(compare=False)
    config: Mapping[str, Any] = field(compare=False, repr=False)
    history: Sequence[ImageHistoryItem] = field(compare=False, repr=False)
    rootfs: Mapping[str, Any] = field(compare=False, repr=False)
    platform: Platform = field(compare=False)

    @property
    def platform_name(self) -> str:
        return self.platform.name

    @property
    def non_empty_history(self) -> Iterable[ImageHistoryItem]:
        return (item for item in self.history if not item.empty_layer)


@dataclass(frozen=True)
class ImageLayerRef(DigestMixin):
    digest: str
    content_type: str
    size: int


@dataclass(frozen=True)
class ImageConfigRef(DigestMixin):
    digest: str
    content_type: str
    size: int


@dataclass(frozen=True)
class Manifest(DigestMixin):
    """A single-platform image manifest (Docker schema2 or OCI)."""

    digest: str
    content_type: str
    content_length: int
    config: ImageConfigRef = field(compare=False, repr=False)
    layers: Sequence[ImageLayerRef] = field(compare=False, repr=False)

    @property
    def image_size(self) -> int:
        """The sum of the layer sizes (compressed, as stored)."""
        return sum(layer.size for layer in self.layers)


@dataclass(frozen=True)
class ManifestRef(DigestMixin):
    """One entry of a manifest list: a platform's manifest."""

    digest: str
    content_type: str
    size: int
    platform: Platform

    @property
    def platform_name(self) -> str:
        return self.platform.name


@dataclass(frozen=True)
class ManifestList(DigestMixin):
    """A multi-platform image: Docker manifest list or OCI index."""

    digest: str
    content_type: str
    content_length: int
    manifests: AbstractSet[ManifestRef] = field(compare=False, repr=False)


@dataclass(frozen=True)
class LegacyManifest(DigestMixin):
    """A Docker schema1 manifest, kept as its JSON."""

    digest: str
    content_type: str
    content_length: int
    content: Mapping[str, Any] = field(compare=False, repr=False)


ManifestParseOutput = ManifestList | Manifest | LegacyManifest


class _UnusableResponse(ManifestError):
    # ``response`` is None: dreg-frames reads and checks the answer before the content gets here.
    def __init__(self, response: requests.Response | None, message: str) -> None:
        super().__init__(message)
        self.response = response


class _UnusablePayload(_UnusableResponse):
    def __init__(self, response: requests.Response | None, payload: Any, message: str) -> None:
        super().__init__(response, message)
        self.payload = payload


class UnusableManifestResponseError(_UnusableResponse):
    """A manifest of a type that is not an image manifest, list, index or schema1."""


class UnusableManifestPayloadError(_UnusablePayload):
    """A manifest body that cannot be parsed; ``payload`` is its JSON, or its bytes if not JSON."""


class UnusableImageConfigBlobResponseError(_UnusableResponse):
    """Kept for dreg-client's name; dreg-frames never needs the headers whose absence raised it."""


class UnusableImageConfigBlobPayloadError(_UnusablePayload):
    """An image config body that cannot be parsed; ``payload`` is its JSON, or its bytes if not JSON."""


def manifest_from_bytes(body: bytes, content_type: str, digest: str) -> ManifestParseOutput:
    """dreg-client's model of a manifest dreg-frames fetched and verified."""
    try:
        parsed = native.parse_manifest(body, content_type, digest)
    except UnsupportedMediaType as exc:
        raise UnusableManifestResponseError(None, "Unknown Content-Type header in response.") from exc
    except ManifestError as exc:
        raise UnusableManifestPayloadError(None, _payload(body), str(exc)) from exc
    return manifest_from_native(parsed)


def manifest_from_native(manifest: native.AnyManifest) -> ManifestParseOutput:
    """Convert dreg-frames' :class:`~dreg_frames.client.Manifest`, index or schema1 manifest."""
    length = len(manifest.raw)
    if isinstance(manifest, native.SchemaOneManifest):
        return LegacyManifest(manifest.digest, manifest.media_type, length, manifest.json)
    if isinstance(manifest, native.ImageIndex):
        refs = frozenset(
            ManifestRef(
                child.digest,
                child.media_type,
                child.size,
                Platform.from_native(child.platform) if child.platform is not None else UNKNOWN_PLATFORM,
            )
            for child in manifest.manifests
        )
        return ManifestList(manifest.digest, manifest.media_type, length, refs)
    config = ImageConfigRef(manifest.config.digest, manifest.config.media_type, manifest.config.size)
    layers = tuple(ImageLayerRef(layer.digest, layer.media_type, layer.size) for layer in manifest.layers)
    return Manifest(manifest.digest, manifest.media_type, length, config, layers)


def single_platform_list(manifest: Manifest, platform: Platform) -> ManifestList:
    """A one-entry manifest list for a single-platform image, so every image reads the same way.

    It carries the manifest's own digest and length: the digest the tag points at, not that of a
    list nobody stored.
    """
    list_type = OCI_INDEX if manifest.content_type == OCI_MANIFEST else DOCKER_MANIFEST_LIST
    ref = ManifestRef(manifest.digest, manifest.content_type, manifest.content_length, platform)
    return ManifestList(manifest.digest, list_type, manifest.content_length, frozenset({ref}))


def image_config_from_bytes(body: bytes, digest: str) -> ImageConfig:
    """dreg-client's model of an image config dreg-frames fetched and verified."""
    try:
        parsed = native.parse_config(body, digest)
    except ManifestError as exc:
        raise UnusableImageConfigBlobPayloadError(None, _payload(body), str(exc)) from exc
    data = parsed.json
    history = tuple(
        ImageHistoryItem(
            created_at=str(entry.get("created") or ""),
            created_by=str(entry.get("created_by") or ""),
            empty_layer=entry.get("empty_layer") is True,
            comment=str(entry.get("comment") or ""),
        )
        for entry in parsed.history
    )
    return ImageConfig(
        digest=parsed.digest,
        content_length=len(body),
        created_at=parsed.created_raw or "",
        # parse_config has checked both are objects when present
        config=data.get("config") or {},
        history=history,
        rootfs=data.get("rootfs") or {},
        platform=Platform(parsed.os, parsed.architecture, parsed.variant),
    )


def _payload(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body
