"""Typed manifests, image indexes and image configs, parsed from the exact bytes the registry sent.

>>> raw = b'{"schemaVersion":2,"config":{"digest":"sha256:' + b"a" * 64 + b'","size":2},"layers":[]}'
>>> m = parse_manifest(raw, "application/vnd.oci.image.manifest.v1+json")
>>> type(m).__name__, m.size
('Manifest', 0)
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .errors import ManifestError, UnsupportedMediaType
from .mediatypes import (
    DOCKER_SCHEMA1,
    DOCKER_SCHEMA1_SIGNED,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    SCHEMA1_TYPES,
)
from .reference import check_digest, sha256_digest

__all__ = [
    "AnyManifest",
    "BaseManifest",
    "Descriptor",
    "ImageConfig",
    "ImageIndex",
    "Manifest",
    "Platform",
    "SchemaOneManifest",
    "parse_config",
    "parse_manifest",
    "schema1_payload",
]


@dataclass(frozen=True)
class Platform:
    """The platform of an image: ``str(Platform("linux", "arm64", "v8")) == "linux/arm64/v8"``."""

    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None
    features: tuple[str, ...] = ()

    def __str__(self) -> str:
        parts = [self.os, self.architecture] + ([self.variant] if self.variant else [])
        return "/".join(parts)

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``Platform.parse("linux/arm64/v8")``."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"invalid platform {text!r}: expected os/architecture[/variant]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @classmethod
    def from_json(cls, data: object) -> Platform:
        obj = _obj(data, "platform")
        return cls(
            os=_str(obj, "os", "platform"),
            architecture=_str(obj, "architecture", "platform"),
            variant=_opt_str(obj, "variant", "platform"),
            os_version=_opt_str(obj, "os.version", "platform"),
            features=tuple(str(f) for f in _list(obj.get("os.features", []), "platform os.features")),
        )


# A 4 MiB manifest lists at most ~46,000 descriptors: at 2**47 each, their sum still fits in int64.
MAX_BLOB_SIZE = 1 << 47


@dataclass(frozen=True)
class Descriptor:
    """A content descriptor: what a manifest says about a blob or a child manifest."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    urls: tuple[str, ...] = ()
    artifact_type: str | None = None  # OCI 1.1: set on the descriptors a referrers list holds

    @classmethod
    def from_json(cls, data: object, where: str) -> Descriptor:
        obj = _obj(data, where)
        digest = _str(obj, "digest", where)
        try:
            check_digest(digest)
        except ValueError as exc:
            raise ManifestError(f"{where}: {exc}") from None
        size = obj.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestError(f"{where}: 'size' must be a non-negative integer, got {size!r}")
        if size > MAX_BLOB_SIZE:
            # A lie (no blob is this big), and the sum of a manifest's sizes would overflow int64.
            raise ManifestError(f"{where}: 'size' {size} is over the {MAX_BLOB_SIZE}-byte (128 TiB) bound")
        platform = obj.get("platform")
        # (the optional parts are read only when present: a manifest is mostly plain layers)
        return cls(
            media_type=_opt_str(obj, "mediaType", where) or "",
            digest=digest,
            size=size,
            platform=Platform.from_json(platform) if platform is not None else None,
            annotations=_annotations(obj, where),
            urls=tuple(str(u) for u in _list(obj["urls"], f"{where} urls")) if "urls" in obj else (),
            artifact_type=_opt_str(obj, "artifactType", where) if "artifactType" in obj else None,
        )


@dataclass(frozen=True)
class BaseManifest:
    """What every manifest kind has: its digest, media type and the exact bytes it was served as."""

    digest: str
    media_type: str
    raw: bytes = field(repr=False)

    @property
    def json(self) -> dict[str, Any]:
        """The manifest as parsed JSON."""
        loaded: dict[str, Any] = json.loads(self.raw)
        return loaded


@dataclass(frozen=True)
class Manifest(BaseManifest):
    """An image manifest (OCI or Docker schema2): one config and its layers.

    ``size`` is the sum of the layer sizes (what the image costs in storage, config aside).
    """

    config: Descriptor
    layers: tuple[Descriptor, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
    subject: Descriptor | None = None
    artifact_type: str | None = None  # OCI 1.1 ``artifactType``

    @property
    def size(self) -> int:
        return sum(layer.size for layer in self.layers)

    @property
    def total_size(self) -> int:
        """Layers, config and the manifest itself: every byte this image adds to a registry."""
        return self.size + self.config.size + len(self.raw)


@dataclass(frozen=True)
class ImageIndex(BaseManifest):
    """An OCI image index or Docker manifest list: one child manifest per platform."""

    manifests: tuple[Descriptor, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def platforms(self) -> tuple[str, ...]:
        return tuple(str(d.platform) for d in self.manifests if d.platform is not None)

    def child(self, platform: str | Platform) -> Descriptor:
        """The child descriptor for ``platform`` (``"linux/amd64"``); KeyError when absent."""
        wanted = str(platform)
        for descriptor in self.manifests:
            if descriptor.platform is not None and str(descriptor.platform) == wanted:
                return descriptor
        raise KeyError(f"no manifest for platform {wanted!r} in {self.digest}; have {list(self.platforms)}")


@dataclass(frozen=True)
class SchemaOneManifest(BaseManifest):
    """A legacy Docker schema1 manifest (read-only): layers are listed newest first, sizes unknown."""

    name: str = ""
    tag: str = ""
    architecture: str = ""
    fs_layers: tuple[str, ...] = ()
    history: tuple[dict[str, Any], ...] = ()

    @property
    def created(self) -> str | None:
        """``created`` of the newest history entry, as the raw RFC 3339 string."""
        return (
            str(self.history[0].get("created")) if self.history and self.history[0].get("created") else None
        )


AnyManifest = Manifest | ImageIndex | SchemaOneManifest


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an image config (``application/vnd.oci.image.config.v1+json``) admins ask about.

    ``created_raw`` keeps the RFC 3339 string with its full (nanosecond) precision; ``created`` is
    that time as an aware ``datetime`` (microseconds).
    """

    digest: str
    raw: bytes = field(repr=False)
    created_raw: str | None = None
    os: str = ""
    architecture: str = ""
    variant: str | None = None
    os_version: str | None = None
    history: tuple[dict[str, Any], ...] = ()
    diff_ids: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def platform(self) -> Platform:
        return Platform(self.os, self.architecture, self.variant)

    @property
    def created(self) -> datetime | None:
        """``created_raw`` as a UTC datetime; None when missing or unreadable."""
        if not self.created_raw:
            return None
        try:
            return parse_timestamp(self.created_raw)
        except ManifestError:
            return None

    @property
    def json(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.raw)
        return loaded


def parse_timestamp(text: str) -> datetime:
    """Parse RFC 3339 (with up to nanosecond fractions) to an aware UTC ``datetime``."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    date_part, dot, rest = value.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        # datetime keeps microseconds: drop the nanosecond tail rather than reject the value.
        value = f"{date_part}.{rest[: min(digits, 6)]}{rest[digits:]}"
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.astimezone(timezone.utc)
    except ValueError:
        raise ManifestError(f"invalid timestamp {text!r}: expected RFC 3339") from None
    except OverflowError:
        # year 1 east of UTC, or 9999-12-31 west of it: a time datetime cannot hold in UTC
        raise ManifestError(f"timestamp {text!r} is out of range in UTC") from None


def _get(obj: Mapping[str, Any], key: str, default: Any) -> Any:
    # "or default" would turn a wrong-typed falsy value ([] where {} belongs) into a valid one.
    value = obj.get(key)
    return default if value is None else value


def _load(raw: bytes, where: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{where} is not valid JSON: {exc}") from None
    except RecursionError:
        raise ManifestError(f"{where} is not valid JSON: nested too deeply") from None
    return _obj(data, where)


def _obj(data: object, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected a JSON object, got {type(data).__name__}")
    return data


def _list(data: object, where: str) -> list[Any]:
    if not isinstance(data, list):
        raise ManifestError(f"{where}: expected a JSON array, got {type(data).__name__}")
    return data


def _str(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ManifestError(f"{where}: {key!r} must be a string, got {value!r}")
    return value


def _opt_str(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise ManifestError(f"{where}: {key!r} must be a string, got {value!r}")
    return value


def _annotations(obj: Mapping[str, Any], where: str) -> dict[str, str]:
    annotations = obj.get("annotations")
    if annotations is None:  # (most manifests have none)
        return {}
    return {str(k): str(v) for k, v in _obj(annotations, f"{where} annotations").items()}


def _sniff_media_type(data: Mapping[str, Any], content_type: str | None) -> str:
    declared = data.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise ManifestError(f"'mediaType' must be a string, got {declared!r}")
    header = (content_type or "").split(";")[0].strip()
    if declared:
        return declared
    if header in INDEX_TYPES | MANIFEST_TYPES | SCHEMA1_TYPES:
        return header
    # OCI allows omitting mediaType; the shape then tells an index from a manifest.
    if data.get("schemaVersion") == 1:
        return DOCKER_SCHEMA1_SIGNED if "signatures" in data else DOCKER_SCHEMA1
    if "manifests" in data:
        return OCI_INDEX
    if "config" in data and "layers" in data:
        return OCI_MANIFEST
    raise UnsupportedMediaType(header or None, "manifest without a recognisable mediaType")


def parse_manifest(raw: bytes, content_type: str | None = None, digest: str | None = None) -> AnyManifest:
    """Parse manifest bytes into :class:`Manifest`, :class:`ImageIndex` or :class:`SchemaOneManifest`.

    ``digest`` defaults to the sha256 of ``raw``; any structural problem raises :class:`ManifestError`.
    """
    data = _load(raw, "manifest")
    media_type = _sniff_media_type(data, content_type)
    digest = digest or sha256_digest(raw)
    if media_type in INDEX_TYPES:
        children = _list(data.get("manifests"), "index 'manifests'")
        return ImageIndex(
            digest=digest,
            media_type=media_type,
            raw=raw,
            manifests=tuple(Descriptor.from_json(c, f"index manifests[{i}]") for i, c in enumerate(children)),
            annotations=_annotations(data, "index"),
        )
    if media_type in MANIFEST_TYPES:
        layers = _list(data.get("layers"), "manifest 'layers'")
        subject = data.get("subject")
        return Manifest(
            digest=digest,
            media_type=media_type,
            raw=raw,
            config=Descriptor.from_json(data.get("config"), "manifest config"),
            layers=tuple(Descriptor.from_json(d, f"manifest layers[{i}]") for i, d in enumerate(layers)),
            annotations=_annotations(data, "manifest"),
            subject=Descriptor.from_json(subject, "manifest subject") if subject is not None else None,
            artifact_type=_opt_str(data, "artifactType", "manifest"),
        )
    if media_type in SCHEMA1_TYPES:
        fs_layers = _list(data.get("fsLayers"), "schema1 'fsLayers'")
        history_raw = _list(data.get("history", []), "schema1 'history'")
        history = []
        for i, entry in enumerate(history_raw):
            compat = _obj(entry, f"schema1 history[{i}]").get("v1Compatibility", "{}")
            history.append(_load(str(compat).encode(), f"schema1 history[{i}] v1Compatibility"))
        return SchemaOneManifest(
            digest=digest,
            media_type=media_type,
            raw=raw,
            name=str(data.get("name", "")),
            tag=str(data.get("tag", "")),
            architecture=str(data.get("architecture", "")),
            fs_layers=tuple(
                _str(_obj(d, "schema1 fsLayer"), "blobSum", "schema1 fsLayer") for d in fs_layers
            ),
            history=tuple(history),
        )
    raise UnsupportedMediaType(media_type, "not a manifest or index")


def schema1_payload(raw: bytes) -> bytes:
    """The bytes a signed schema1 manifest is digested over: the JSON without its ``signatures``.

    libtrust's JWS keeps the payload's formatting in each signature's protected header:
    ``formatLength`` bytes of the original, then the base64url ``formatTail``. An unsigned schema1
    manifest is digested as it is.
    """
    data = _load(raw, "schema1 manifest")
    signatures = data.get("signatures")
    if not signatures:
        return raw
    try:
        protected = _list(signatures, "schema1 signatures")[0]["protected"]
        header = json.loads(base64.urlsafe_b64decode(protected + "=" * (-len(protected) % 4)))
        length = header["formatLength"]
        tail = header["formatTail"]
        if not isinstance(length, int) or not 0 <= length <= len(raw) or not isinstance(tail, str):
            raise ValueError("formatLength or formatTail out of range")
        return raw[:length] + base64.urlsafe_b64decode(tail + "=" * (-len(tail) % 4))
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ManifestError(f"schema1 manifest signature header unreadable: {exc}") from None


def parse_config(raw: bytes, digest: str | None = None) -> ImageConfig:
    """Parse image config bytes (OCI or Docker) into an :class:`ImageConfig`."""
    data = _load(raw, "image config")
    created = data.get("created")
    if created is not None and not isinstance(created, str):
        raise ManifestError(f"image config: 'created' must be a string, got {created!r}")
    # A date that does not parse is kept as text, never a reason to lose the config: cosign writes
    # year 1, builds stamp 9999, and the frames flag what they cannot read.
    rootfs = _obj(_get(data, "rootfs", {}), "image config rootfs")
    config_section = _obj(_get(data, "config", {}), "image config config")
    labels = _obj(_get(config_section, "Labels", {}), "image config labels")
    history = _list(_get(data, "history", []), "image config history")
    return ImageConfig(
        digest=digest or sha256_digest(raw),
        raw=raw,
        created_raw=created or None,
        os=_opt_str(data, "os", "image config") or "",
        architecture=_opt_str(data, "architecture", "image config") or "",
        variant=_opt_str(data, "variant", "image config"),
        os_version=_opt_str(data, "os.version", "image config"),
        history=tuple(_obj(h, "image config history entry") for h in history),
        diff_ids=tuple(str(d) for d in _list(_get(rootfs, "diff_ids", []), "image config diff_ids")),
        labels={str(k): str(v) for k, v in labels.items()},
    )
