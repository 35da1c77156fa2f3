"""Beyond one machine: crawl on a Dask cluster into a Parquet store, and analyse dask DataFrames.

Needs ``pip install 'dreg-frames[dask]'``. Importing this package loads nothing heavy; dask and
distributed load when a name below is first used.

Example::

    from distributed import Client
    from dreg_frames import crawl, storage_usage
    from dreg_frames.dask import EnvCredentials

    result = crawl(registry, engine="dask", client=Client("tcp://scheduler:8786"),
                   store="s3://audits/crawl", credentials=EnvCredentials("REG_USER", "REG_PASSWORD"))
    storage_usage(result.layers)    # the same answer as on the pandas crawl, partition by partition
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._lazy import lazy_getattr

if TYPE_CHECKING:
    from .analysis import duplicates, policy_frame, reclaimable, storage_usage
    from .engine import ClusterCap, crawl
    from .spec import Anonymous, ConnectionSpec, DockerConfig, EnvCredentials
    from .store import DaskCrawl, read_crawl

__all__ = [
    "Anonymous",
    "ClusterCap",
    "ConnectionSpec",
    "DaskCrawl",
    "DockerConfig",
    "EnvCredentials",
    "crawl",
    "duplicates",
    "is_dask",
    "policy_frame",
    "read_crawl",
    "reclaimable",
    "storage_usage",
]

_LAZY = {
    "Anonymous": ".spec",
    "ConnectionSpec": ".spec",
    "DockerConfig": ".spec",
    "EnvCredentials": ".spec",
    "ClusterCap": ".engine",
    "crawl": ".engine",
    "DaskCrawl": ".store",
    "read_crawl": ".store",
    "duplicates": ".analysis",
    "policy_frame": ".analysis",
    "reclaimable": ".analysis",
    "storage_usage": ".analysis",
}

__getattr__ = lazy_getattr(__name__, _LAZY, globals())


def is_dask(obj: Any) -> bool:
    """True for a dask DataFrame or a :class:`DaskCrawl`; never imports dask to find out."""
    if getattr(type(obj), "dask_frames", False):
        return True
    return any(cls.__module__.partition(".")[0] == "dask" for cls in type(obj).__mro__)
