"""The sample image set in ``data/sample-registry.json``, pushed into a registry for the demo and tests.

Layer bytes are made deterministically from the layer's name and platform, so every run of the
demo produces the same digests, and an amd64 base layer is the same blob in every image using it.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .client.errors import DregError
from .client.push import make_layer, push_image, push_multiarch
from .client.registry import Registry
from .sample_artifacts import seed_artifacts

__all__ = ["SeededImage", "data_path", "layer_bytes", "load_spec", "seed_registry"]

DEFAULT_PLATFORM = "linux/amd64"


def data_path(name: str) -> Path:
    """A file of the sample data: inside the installed package, else the source tree's ``data/``."""
    for base in (Path(__file__).parent / "data", Path(__file__).parent.parent / "data"):
        candidate = base / name
        if candidate.exists():
            return candidate
    raise DregError(f"sample data file {name!r} not found (looked in the package and the source tree)")


def load_spec(path: str | Path | None = None) -> dict[str, Any]:
    """The sample registry description (``data/sample-registry.json`` by default)."""
    source = Path(path) if path is not None else data_path("sample-registry.json")
    spec: dict[str, Any] = json.loads(source.read_text())
    for key in ("layers", "images"):
        if key not in spec:
            raise DregError(f"{source}: missing {key!r}")
    return spec


def layer_bytes(name: str, size: int, platform: str) -> bytes:
    """A gzip'd tar layer of about ``size`` bytes, the same for the same name and platform."""
    # Random bytes do not compress, so the pushed blob is about the size the spec asks for.
    payload = random.Random(f"{name}@{platform}").randbytes(size)
    return make_layer({f"{name}/content.bin": payload})


@dataclass(frozen=True)
class SeededImage:
    repository: str
    tags: tuple[str, ...]
    digest: str
    media_type: str
    platforms: tuple[str, ...]
    created: str


def seed_registry(registry: Registry, spec: dict[str, Any] | None = None) -> list[SeededImage]:
    """Push every image of ``spec`` (the sample set by default) and return what was pushed."""
    spec = spec if spec is not None else load_spec()
    sizes = {name: int(info["size"]) for name, info in spec["layers"].items()}
    cache: dict[tuple[str, str], bytes] = {}

    def layers_for(names: list[str], platform: str) -> list[bytes]:
        out = []
        for name in names:
            if name not in sizes:
                raise DregError(f"sample image uses undefined layer {name!r}")
            key = (name, platform)
            if key not in cache:
                cache[key] = layer_bytes(name, sizes[name], platform)
            out.append(cache[key])
        return out

    pushed = []
    for image in spec["images"]:
        repo = registry.repository(image["repository"])
        oci = image.get("format", "docker") == "oci"
        platforms = image.get("platforms")
        tags = image.get("tags", [])
        if platforms:
            index = push_multiarch(
                repo,
                {p: layers_for(image["layers"], p) for p in platforms},
                tags,
                created=image["created"],
                oci=oci,
            )
            digest, media_type, plats = index.digest, index.media_type, index.platforms
        else:
            manifest = push_image(
                repo, layers_for(image["layers"], DEFAULT_PLATFORM), tags, created=image["created"], oci=oci
            )
            digest, media_type, plats = manifest.digest, manifest.media_type, (DEFAULT_PLATFORM,)
        pushed.append(SeededImage(repo.name, tuple(tags), digest, media_type, tuple(plats), image["created"]))
    seed_artifacts(registry, spec.get("artifacts", []))
    return pushed
