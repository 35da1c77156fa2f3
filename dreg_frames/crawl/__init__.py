"""Registry -> records -> DataFrames.

Example::

    from dreg_frames import Registry, crawl
    result = crawl(Registry.build_with_manual_client("http://127.0.0.1:5000/v2/"))
    result.layers.head()
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

from .._lazy import lazy_getattr
from ..client.registry import Registry
from .cache import ContentCache
from .crawler import Crawler

if TYPE_CHECKING:
    from ..dask import DaskCrawl
    from .frames import build_frames, mark_suspect
    from .result import Crawl

__all__ = ["ContentCache", "Crawl", "Crawler", "build_frames", "crawl", "mark_suspect"]

# The frame half needs pandas; it loads when a crawl finishes (or a name is asked for), so that
# importing the crawl function, as ``dreg_frames`` does, stays light.
_LAZY = {"Crawl": ".result", "build_frames": ".frames", "mark_suspect": ".frames"}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


@overload
def crawl(
    registry: Registry,
    repositories: str | Sequence[str] | None = ...,
    *,
    workers: int | str = ...,
    progress: bool = ...,
    cache: str | os.PathLike[str] | None = ...,
    resolve: str = ...,
    snapshot_store: str | os.PathLike[str] | None = ...,
    referrers: bool = ...,
    engine: Literal["threads"] = ...,
) -> Crawl: ...
@overload
def crawl(
    registry: Any,
    repositories: str | Sequence[str] | None = ...,
    *,
    workers: int | str = ...,
    progress: bool = ...,
    resolve: str = ...,
    referrers: bool = ...,
    engine: Literal["dask"],
    client: Any = ...,
    store: str | os.PathLike[str],
    **options: Any,
) -> DaskCrawl: ...
def crawl(
    registry: Any,
    repositories: str | Sequence[str] | None = None,
    *,
    workers: int | str = "auto",
    progress: bool = True,
    cache: str | os.PathLike[str] | None = None,
    resolve: str = "auto",
    snapshot_store: str | os.PathLike[str] | None = None,
    referrers: bool = True,
    engine: str = "threads",
    client: Any = None,
    store: str | os.PathLike[str] | None = None,
    **options: Any,
) -> Crawl | DaskCrawl:
    """Walk the registry into tidy DataFrames.

    ``repositories``: None for every repository in the catalog, a list of names (for registries
    without a catalog, such as GHCR or Docker Hub), or a glob over the catalog (``"team1/*"``).
    ``workers``: "auto" (requests in flight adapt, up to ``Limits(concurrency=...)``; see
    :mod:`dreg_frames.client.concurrency`) or a fixed number; ``cache`` is a folder where manifests
    and configs are kept by digest, so a recrawl only HEADs each tag. ``resolve="head"`` resolves
    each tag with a HEAD and GETs each digest once ("auto": head when caching, else one GET per tag).
    ``snapshot_store`` adds the result to a history store (see :mod:`dreg_frames.crawl_history`).
    ``referrers`` asks the registry's referrers API for every manifest's referrers when it has one
    (one request finds out; Distribution 2.8 has none, and the crawl then links referrers through the
    tag schema, cosign tags, buildx indexes and ``subject`` fields it reads anyway).

    A repository or tag that fails becomes a row of ``result.errors``; the crawl goes on.

    Example::

        result = crawl(registry, "team1/*", workers=16, cache="~/.cache/dreg-frames")
        result.images[["repository", "tag", "platform", "size", "created"]]

    ``engine="dask"`` crawls on a Dask cluster (``client=``, default the current one) into a Parquet
    ``store`` and returns a :class:`~dreg_frames.dask.DaskCrawl` of dask DataFrames; ``options`` go
    to :func:`dreg_frames.dask.crawl` (``credentials``, ``max_requests``, ``tasks``, ``overwrite``).
    """
    if engine == "dask":
        if cache is not None or snapshot_store is not None:
            raise ValueError("crawl(engine='dask') takes no cache or snapshot_store")
        from ..dask.engine import crawl as dask_crawl

        if store is None:
            raise ValueError("crawl(engine='dask') needs store=: a folder or fsspec URL every worker reaches")
        return dask_crawl(
            registry,
            repositories,
            client=client,
            store=store,
            workers=workers,
            resolve=resolve,
            referrers=referrers,
            progress=progress,
            **options,
        )
    if engine != "threads" or client is not None or store is not None or options:
        unexpected = sorted(options) + [n for n, v in (("client", client), ("store", store)) if v is not None]
        raise ValueError(
            f"crawl: engine must be 'threads' or 'dask', got {engine!r}"
            if engine != "threads"
            else f"crawl: {', '.join(unexpected)} only apply to engine='dask'"
        )
    from .result import Crawl

    crawler = Crawler(
        registry,
        workers=workers,
        cache=ContentCache(cache) if cache is not None else None,
        resolve=resolve,
        progress=progress,
        referrers=referrers,
    )
    names = crawler.select(repositories)
    records = crawler.run(names)
    frames = records.frames()
    meta = {
        "registry": records.registry,
        "url": registry.url,
        "started": records.started.isoformat(),
        "finished": records.finished.isoformat() if records.finished else None,
        **records.stats,
    }
    result = Crawl(**frames, meta=meta)
    if snapshot_store is not None:
        result.meta["snapshot"] = result.save_snapshot(snapshot_store)
    return result
