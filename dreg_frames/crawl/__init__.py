"""Registry -> records -> DataFrames.

Example::

    from dreg_frames import Registry, crawl
    result = crawl(Registry.build_with_manual_client("http://127.0.0.1:5000/v2/"))
    result.layers.head()
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._lazy import lazy_getattr
from ..client.registry import Registry
from .cache import ContentCache
from .crawler import Crawler

if TYPE_CHECKING:
    from .frames import build_frames, mark_suspect
    from .result import Crawl

__all__ = ["ContentCache", "Crawl", "Crawler", "build_frames", "crawl", "mark_suspect"]

# The frame half needs pandas; it loads when a crawl finishes (or a name is asked for), so that
# importing the crawl function, as ``dreg_frames`` does, stays light.
_LAZY = {"Crawl": ".result", "build_frames": ".frames", "mark_suspect": ".frames"}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


def crawl(
    registry: Registry,
    repositories: str | Sequence[str] | None = None,
    *,
    workers: int = 8,
    progress: bool = True,
    cache: str | os.PathLike[str] | None = None,
    resolve: str = "auto",
) -> Crawl:
    """Walk the registry into tidy DataFrames.

    ``repositories``: None for every repository in the catalog, a list of names (for registries
    without a catalog, such as GHCR or Docker Hub), or a glob over the catalog (``"team1/*"``).
    ``workers`` bounds concurrent requests; ``cache`` is a folder where manifests and configs are
    kept by digest, so a recrawl only HEADs each tag. ``resolve="head"`` resolves each tag with a
    HEAD and GETs each digest once ("auto": head when caching, else one GET per tag).

    A repository or tag that fails becomes a row of ``result.errors``; the crawl goes on.

    Example::

        result = crawl(registry, "team1/*", workers=16, cache="~/.cache/dreg-frames")
        result.images[["repository", "tag", "platform", "size", "created"]]
    """
    from .frames import build_frames
    from .result import Crawl

    crawler = Crawler(
        registry,
        workers=workers,
        cache=ContentCache(cache) if cache is not None else None,
        resolve=resolve,
        progress=progress,
    )
    names = crawler.select(repositories)
    records = crawler.run(names)
    frames = build_frames(
        records.registry, records.tags, records.errors, records.repositories, records.finished
    )
    meta = {
        "registry": records.registry,
        "url": registry.url,
        "started": records.started.isoformat(),
        "finished": records.finished.isoformat() if records.finished else None,
        **records.stats,
    }
    return Crawl(**frames, meta=meta)
