"""Build and push synthetic images: config + layers, single or multi-arch, Docker or OCI types.

Used by the demo and the tests, and handy for seeding a scratch registry::

    layer = make_layer({"etc/motd": b"hello"})
    push_image(registry.repository("team1/app"), [layer], tags=["v1"], created="2024-01-02T03:04:05Z")
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from .manifests import ImageIndex, Manifest, Platform, parse_manifest
from .mediatypes import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
)
from .reference import check_tag, sha256_digest
from .repository import Repository

__all__ = ["BuiltImage", "build_image", "make_layer", "push_image", "push_multiarch"]


def make_layer(files: Mapping[str, bytes]) -> bytes:
    """A reproducible gzip'd tar layer holding ``files`` (same input, same digest)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(files):
            info = tarfile.TarInfo(path)
            info.size = len(files[path])
            info.mtime = 0
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(files[path]))
    return gzip.compress(buffer.getvalue(), mtime=0)


@dataclass(frozen=True)
class BuiltImage:
    """An image manifest, its config and layers as bytes, ready to push."""

    manifest: bytes
    media_type: str
    config: bytes
    layers: tuple[bytes, ...]
    platform: Platform

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)


def _created_text(created: str | datetime | None) -> str | None:
    if created is None or isinstance(created, str):
        return created
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    return created.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def build_image(
    layers: Sequence[bytes],
    *,
    created: str | datetime | None = "2024-01-01T00:00:00Z",
    platform: str | Platform = "linux/amd64",
    oci: bool = False,
    labels: Mapping[str, str] | None = None,
) -> BuiltImage:
    """Make the config and manifest for ``layers`` (gzip'd tars, e.g. from :func:`make_layer`)."""
    plat = platform if isinstance(platform, Platform) else Platform.parse(platform)
    diff_ids = [
        sha256_digest(gzip.decompress(layer) if layer[:2] == b"\x1f\x8b" else layer) for layer in layers
    ]
    config: dict[str, object] = {
        "architecture": plat.architecture,
        "os": plat.os,
        "config": {"Labels": dict(labels or {})},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": f"synthetic layer {i}"} for i in range(len(layers))],
    }
    if plat.variant:
        config["variant"] = plat.variant
    created_text = _created_text(created)
    if created_text is not None:
        config["created"] = created_text
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    layer_type = OCI_LAYER if oci else DOCKER_LAYER
    media_type = OCI_MANIFEST if oci else DOCKER_MANIFEST
    manifest = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {
            "mediaType": OCI_CONFIG if oci else DOCKER_CONFIG,
            "digest": sha256_digest(config_bytes),
            "size": len(config_bytes),
        },
        "layers": [
            {"mediaType": layer_type, "digest": sha256_digest(layer), "size": len(layer)} for layer in layers
        ],
    }
    body = json.dumps(manifest, indent=3).encode()
    return BuiltImage(body, media_type, config_bytes, tuple(layers), plat)


def _push_built(repo: Repository, image: BuiltImage) -> None:
    for blob in (*image.layers, image.config):
        repo.push_blob(blob)
    repo.put_manifest(image.digest, image.manifest, image.media_type)


def push_image(
    repo: Repository,
    layers: Sequence[bytes],
    tags: Sequence[str] = (),
    *,
    created: str | datetime | None = "2024-01-01T00:00:00Z",
    platform: str | Platform = "linux/amd64",
    oci: bool = False,
    labels: Mapping[str, str] | None = None,
) -> Manifest:
    """Push a single-platform image and tag it; returns the pushed :class:`Manifest`."""
    for tag in tags:
        check_tag(tag)
    image = build_image(layers, created=created, platform=platform, oci=oci, labels=labels)
    _push_built(repo, image)
    for tag in tags:
        repo.put_manifest(tag, image.manifest, image.media_type)
    parsed = parse_manifest(image.manifest, image.media_type)
    assert isinstance(parsed, Manifest)
    return parsed


def push_multiarch(
    repo: Repository,
    images: Mapping[str, Sequence[bytes]],
    tags: Sequence[str] = (),
    *,
    created: str | datetime | None = "2024-01-01T00:00:00Z",
    oci: bool = False,
) -> ImageIndex:
    """Push one image per platform (``{"linux/amd64": [layer], "linux/arm64/v8": [layer]}``) and an
    index (OCI) or manifest list (Docker) over them; tag the index."""
    for tag in tags:
        check_tag(tag)
    children = []
    for platform, layers in images.items():
        image = build_image(layers, created=created, platform=platform, oci=oci)
        _push_built(repo, image)
        entry: dict[str, object] = {
            "mediaType": image.media_type,
            "digest": image.digest,
            "size": len(image.manifest),
            "platform": {"architecture": image.platform.architecture, "os": image.platform.os},
        }
        if image.platform.variant:
            entry["platform"] = {**entry["platform"], "variant": image.platform.variant}  # type: ignore[dict-item]
        children.append(entry)
    media_type = OCI_INDEX if oci else DOCKER_MANIFEST_LIST
    body = json.dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": children}, indent=3).encode()
    repo.put_manifest(sha256_digest(body), body, media_type)
    for tag in tags:
        repo.put_manifest(tag, body, media_type)
    parsed = parse_manifest(body, media_type)
    assert isinstance(parsed, ImageIndex)
    return parsed
