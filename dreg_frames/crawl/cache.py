"""A content-addressed on-disk cache of manifests and configs.

Content under a digest never changes, so what is cached is valid forever; each file is checked
against its digest when read, and written atomically, so an interrupted crawl leaves no torn entry.

Beside the files, ``summaries-v1.json`` keeps what a complete crawl derived from each tagged digest
(its platform images, configs' dates and layers), so a recrawl that HEADs a tag to a known digest
reads nothing else. It is derived from verified content and rewritten after each crawl; it trusts
the cache folder as the files' digests cannot be re-checked without the files (delete it, or the
folder, to rebuild from the registry).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..client.reference import check_digest, digest_of
from .records import ImageRecord

__all__ = ["ContentCache"]

SUMMARIES = "summaries-v1.json"
_IMAGE_FIELDS = [f.name for f in fields(ImageRecord)]


def _image_from_json(row: list[Any]) -> ImageRecord:
    values = dict(zip(_IMAGE_FIELDS, row, strict=True))
    # JSON has lists where the records hold tuples (layers, their urls, annotations' items).
    values["layers"] = tuple((d, s, t, tuple(u)) for d, s, t, u in values["layers"])
    return ImageRecord(**values)


class ContentCache:
    """``cache.get("manifests", digest)`` -> ``(bytes, media_type)`` or None."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(os.path.expanduser(os.fspath(root)))
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"ContentCache({str(self.root)!r})"

    def _path(self, kind: str, digest: str) -> Path:
        algorithm, encoded = check_digest(digest).split(":", 1)
        return self.root / kind / algorithm / encoded

    def get(self, kind: str, digest: str) -> tuple[bytes, str] | None:
        path = self._path(kind, digest)
        try:
            body = path.read_bytes()
            media_type = path.with_suffix(".type").read_text() if kind == "manifests" else ""
        except OSError:
            self.misses += 1
            return None
        if digest_of(body, digest) != digest:
            # A corrupted file is a miss, never content under the wrong digest.
            self.misses += 1
            return None
        self.hits += 1
        return body, media_type

    def put(self, kind: str, digest: str, body: bytes, media_type: str = "") -> None:
        path = self._path(kind, digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "manifests":
            _atomic_write(path.with_suffix(".type"), media_type.encode())
        _atomic_write(path, body)

    def load_summaries(self) -> dict[str, tuple[str, tuple[ImageRecord, ...], int | None]]:
        """Top digest -> (media type, platform images, manifest size), from earlier complete crawls.

        A file written with other record fields (another version) is ignored and rebuilt.
        """
        try:
            data = json.loads((self.root / SUMMARIES).read_text())
        except (OSError, ValueError):
            return {}
        out: dict[str, tuple[str, tuple[ImageRecord, ...], int | None]] = {}
        try:
            if data.pop("_fields") != _IMAGE_FIELDS:
                return {}
            for digest, (media_type, images, size) in data.items():
                out[digest] = (media_type, tuple(_image_from_json(row) for row in images), size)
        except (KeyError, TypeError, ValueError, AttributeError):
            return {}
        return out

    def save_summaries(self, summaries: dict[str, tuple[str, tuple[ImageRecord, ...], int | None]]) -> None:
        data: dict[str, object] = {"_fields": _IMAGE_FIELDS}
        for digest, (media_type, images, size) in summaries.items():
            data[digest] = [media_type, [[getattr(i, f) for f in _IMAGE_FIELDS] for i in images], size]
        self.root.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.root / SUMMARIES, json.dumps(data, separators=(",", ":")).encode())

    def is_empty(self) -> bool:
        """True when no manifest has been cached yet (a first crawl gains nothing from HEADs)."""
        manifests = self.root / "manifests"
        return not manifests.is_dir() or not any(manifests.rglob("*.type"))

    def __contains__(self, key: tuple[str, str]) -> bool:
        return self._path(*key).exists()


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
