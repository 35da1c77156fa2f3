"""The crawl store: one folder of Parquet parts per frame (``layers/part-00003.parquet``), written by
the workers, and ``_crawl.json`` written last by the driver (a store without it is unfinished).

A store is a local path or any fsspec URL every worker and the driver can reach (``s3://``,
``gcs://``, ``file://``, an NFS mount). Category columns are written as plain strings: each part has
its own categories, and strings read back the same whatever part a value came from.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from ..client.errors import DregError
from ..crawl.frames import apply_schema
from ..crawl.result import FRAMES, Crawl

if TYPE_CHECKING:
    import dask.dataframe as dd
    from fsspec import AbstractFileSystem

__all__ = ["DaskCrawl", "read_crawl"]

META = "_crawl.json"


def store_url(store: str | os.PathLike[str]) -> str:
    """The store as a URL every process reads the same way: a local path becomes absolute."""
    text = os.fspath(store)
    if "://" in text:
        return text.rstrip("/")
    return "file://" + os.path.abspath(text)


def filesystem(url: str) -> tuple[AbstractFileSystem, str]:
    from fsspec.core import url_to_fs

    fs, root = url_to_fs(url)
    return fs, root.rstrip("/")


def prepare(url: str, overwrite: bool) -> None:
    """Make sure ``url`` holds no earlier crawl (parts of two crawls must never mix)."""
    fs, root = filesystem(url)
    ours = [f"{root}/{name}" for name in FRAMES] + [f"{root}/{META}"]
    present = [path for path in ours if fs.exists(path)]
    if present and not overwrite:
        raise DregError(
            f"store {url} already holds a crawl ({', '.join(p.rsplit('/', 1)[-1] for p in present)}): "
            "pass overwrite=True or a new folder"
        )
    for path in present:
        fs.rm(path, recursive=True)
    fs.makedirs(root, exist_ok=True)


def _for_parquet(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.CategoricalDtype):
            out[column] = out[column].astype("string")
    return out


def write_part(url: str, name: str, frame: pd.DataFrame, part: int) -> str:
    """Write one frame's share as ``<name>/part-<part>.parquet``; the path written is returned."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fs, root = filesystem(url)
    fs.makedirs(f"{root}/{name}", exist_ok=True)
    path = f"{root}/{name}/part-{part:05d}.parquet"
    table = pa.Table.from_pandas(_for_parquet(frame), preserve_index=False)
    # A task that is run again (a worker lost) writes the same part over: the store stays whole.
    with fs.open(path, "wb") as out:
        pq.write_table(table, out)
    return path


def write_meta(url: str, meta: dict[str, Any]) -> None:
    fs, root = filesystem(url)
    with fs.open(f"{root}/{META}", "w") as out:
        out.write(json.dumps(meta, indent=2, default=str))


@dataclass
class DaskCrawl:
    """A crawl whose frames are dask DataFrames over a store of Parquet parts.

    The frames hold the columns of :class:`~dreg_frames.crawl.result.Crawl`; text columns are
    strings (``string[python]``) where a pandas crawl has categories. :meth:`compute` gives the
    pandas :class:`Crawl` with the contract's dtypes and order, equal to a local crawl's.

    Example::

        result = crawl(registry, engine="dask", client=client, store="s3://bucket/crawl-2026-11-27")
        storage_usage(result.layers)          # computed partition by partition on the cluster
        result.layers.npartitions, result.meta["requests"]
    """

    tags: dd.DataFrame
    images: dd.DataFrame
    layers: dd.DataFrame
    errors: dd.DataFrame
    repositories: dd.DataFrame
    referrers: dd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    store: str = ""

    # what the analysis functions look for to take their dask path
    dask_frames: ClassVar[bool] = True

    def __repr__(self) -> str:
        return (
            f"DaskCrawl(registry={self.meta.get('registry')!r}, store={self.store!r}, "
            f"repositories={self.meta.get('repositories')}, tags={self.meta.get('tags')}, "
            f"layers={self.layers.npartitions} partitions)"
        )

    @property
    def frames(self) -> dict[str, dd.DataFrame]:
        return {name: getattr(self, name) for name in FRAMES}

    def compute(self) -> Crawl:
        """The whole crawl as pandas frames, with the contract's dtypes and row order."""
        from dask.base import compute

        computed = compute(*self.frames.values())
        frames = {name: apply_schema(frame, name) for name, frame in zip(FRAMES, computed, strict=True)}
        return Crawl(**frames, meta=dict(self.meta))


def read_frame(url: str, name: str) -> dd.DataFrame:
    import dask.dataframe as dd

    # One partition per part (never a part split by row groups): each holds whole repositories,
    # which the storage and duplicate analyses rely on to work partition by partition.
    return dd.read_parquet(f"{url}/{name}", split_row_groups=False)


def read_crawl(store: str | os.PathLike[str]) -> DaskCrawl:
    """Open a finished crawl store as a :class:`DaskCrawl` (nothing is read until computed)."""
    url = store_url(store)
    fs, root = filesystem(url)
    if not fs.exists(f"{root}/{META}"):
        raise DregError(f"{url} is not a finished crawl store: {META} is missing")
    with fs.open(f"{root}/{META}", "r") as src:
        meta = json.loads(src.read())
    frames = {name: read_frame(url, name) for name in FRAMES}
    return DaskCrawl(**frames, meta=meta, store=url)
