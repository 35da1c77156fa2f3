"""Hand-built crawl frames for the analysis tests, so expected answers are computed independently."""

from __future__ import annotations

from datetime import datetime, timezone

from dreg_frames.crawl.frames import build_frames
from dreg_frames.crawl.records import ImageRecord, TagRecord

NOW = datetime(2026, 11, 27, tzinfo=timezone.utc)


def d(name: str) -> str:
    """A readable fake digest: d("base") -> sha256:<hex of name padded>."""
    return "sha256:" + name.encode().hex().ljust(64, "0")[:64]


def image(
    manifest: str,
    created: str | None,
    layers: list[tuple[str, int]],
    platform: str = "linux/amd64",
    config: str | None = None,
) -> ImageRecord:
    return ImageRecord(
        d(manifest),
        "application/vnd.oci.image.manifest.v1+json",
        platform,
        d(config or f"cfg-{manifest}"),
        created,
        tuple((d(n), s, "layer", ()) for n, s in layers),
        config_size=100,
        manifest_size=10,
    )


def tag(repository: str, name: str, top: str, *images: ImageRecord, index: bool = False) -> TagRecord:
    media = (
        "application/vnd.oci.image.index.v1+json" if index else "application/vnd.oci.image.manifest.v1+json"
    )
    return TagRecord(repository, name, d(top), media, images, 1 if index else 10)


def frames(*tags: TagRecord) -> dict[str, object]:
    return build_frames("test", list(tags), [], [], NOW)
