"""The embedded default: a local Distribution registry on 127.0.0.1 seeded with the sample images."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .client.registry import Registry
from .crawl import Crawl
from .crawl.result import Crawl as _Crawl
from .local_registry import LocalRegistry
from .sample import data_path, seed_registry

__all__ = ["load_sample", "start_demo_registry"]


def start_demo_registry(port: int | None = None) -> tuple[LocalRegistry, Registry]:
    """Start ``docker-registry`` on 127.0.0.1 and push the sample images; stop it with ``.cleanup()``.

    Example::

        server, registry = start_demo_registry()
        result = crawl(registry)
        server.cleanup()
    """
    server = LocalRegistry(port=port).start()
    try:
        registry = Registry.build_with_manual_client(server.url)
        seed_registry(registry)
    except BaseException:
        server.cleanup()
        raise
    return server, registry


def load_sample(path: str | os.PathLike[str] | None = None) -> Crawl:
    """The saved crawl of the sample registry (``data/sample-crawl``): frames with no registry at all."""
    return _Crawl.load(Path(path) if path is not None else data_path("sample-crawl"))


SAMPLE_REGISTRY = "sample"


def crawl_sample() -> Crawl:
    """Crawl a fresh demo registry, with the registry column named ``sample`` (not a port)."""
    from .crawl import crawl

    server, registry = start_demo_registry()
    try:
        result = crawl(registry, progress=False)
    finally:
        server.cleanup()
    for frame in result.frames.values():
        if "registry" in frame:
            frame["registry"] = pd.Categorical([SAMPLE_REGISTRY] * len(frame))
    result.meta.update(registry=SAMPLE_REGISTRY, url=None)
    return result


if __name__ == "__main__":
    # Regenerate data/sample-crawl after editing data/sample-registry.json:
    #   python -m dreg_frames.demo data/sample-crawl
    import sys

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "data/sample-crawl")
    print(crawl_sample().to_csv(target))
