"""Crawl history: each crawl kept as a dated partition of one Parquet dataset per frame, what
changed between two crawls, and stored bytes per repository over time. (The module is
``crawl_history`` so that ``dreg_frames.history`` stays the function below.)

Layout of a store (hive partitioning, readable by pyarrow, DuckDB and Dask as they are)::

    store/tags/snapshot=2026-11-27T101500.123456Z/part-0.parquet     (and images, layers, errors,
    store/usage/snapshot=.../part-0.parquet                            repositories: the crawl frames)
    store/_snapshots/2026-11-27T101500.123456Z.json                   (the crawl's meta: written last)

A snapshot exists once its ``_snapshots`` record does: a crawl interrupted while saving leaves
nothing a reader sees.

Example::

    crawl(registry, snapshot_store="history/")          # or result.save_snapshot("history/")
    d = diff(load_snapshot("history/", "2026-11-01"), load_snapshot("history/"))
    d.tags                                              # added / removed / moved tags
    history("history/")                                 # stored bytes per repository per snapshot
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from .analysis.usage import TOTAL, storage_usage
from .client.errors import DregError
from .crawl.frames import SCHEMAS, apply_schema
from .crawl.result import FRAMES, Crawl

__all__ = ["CrawlDiff", "diff", "history", "load_snapshot", "save_snapshot", "snapshots"]

_MARKERS = "_snapshots"
_ID_FORMAT = "%Y-%m-%dT%H%M%S.%fZ"
USAGE_COLUMNS = ["registry", "repository", "logical_bytes", "stored_bytes", "exclusive_bytes", "n_tags"]


def _snapshot_id(at: datetime | pd.Timestamp) -> str:
    ts = pd.Timestamp(at)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.strftime(_ID_FORMAT)


def _id_time(snapshot_id: str) -> pd.Timestamp:
    return pd.Timestamp(datetime.strptime(snapshot_id, _ID_FORMAT).replace(tzinfo=timezone.utc))


def _usage_rows(result: Crawl) -> pd.DataFrame:
    """Bytes per repository (every repository crawled, 0 when it holds nothing) and the total."""
    registry = str(result.meta.get("registry") or "")
    usage = storage_usage(result.layers)[
        ["repository", "logical_bytes", "stored_bytes", "exclusive_bytes", "n_tags"]
    ]
    usage = usage.assign(repository=usage["repository"].astype(str))
    names = sorted(
        set(result.repositories["repository"].astype(str)) | set(result.tags["repository"].astype(str))
    )
    present = set(usage["repository"])
    empty = pd.DataFrame({"repository": [n for n in names if n not in present]})
    out = pd.concat([usage, empty], ignore_index=True)
    # n_tags from the tags frame: a tag without images (all failed) still counts as held
    tag_counts = result.tags.groupby(result.tags["repository"].astype(str), observed=True).size()
    out["n_tags"] = out["repository"].map(tag_counts).fillna(0)
    out.loc[out["repository"] == TOTAL, "n_tags"] = len(result.tags)
    for column in ("logical_bytes", "stored_bytes", "exclusive_bytes", "n_tags"):
        out[column] = out[column].fillna(0).astype("int64")
    out.insert(0, "registry", registry)
    return out[USAGE_COLUMNS]


def save_snapshot(
    result: Crawl, store: str | os.PathLike[str], at: datetime | pd.Timestamp | None = None
) -> str:
    """Write ``result`` as one dated partition of each frame's dataset in ``store``; returns its id.

    ``at`` defaults to when the crawl finished (its ``meta``), else now."""
    root = Path(store)
    when = at or result.meta.get("finished") or datetime.now(timezone.utc)
    snapshot_id = _snapshot_id(pd.Timestamp(when))
    if (root / _MARKERS / f"{snapshot_id}.json").exists():
        raise DregError(f"{root} already holds a snapshot taken at {snapshot_id}")
    staging = root / f".tmp-{uuid.uuid4().hex}"
    frames = {**result.frames, "usage": _usage_rows(result)}
    try:
        for name, frame in frames.items():
            part = staging / name
            part.mkdir(parents=True)
            frame.to_parquet(part / "part-0.parquet", index=False)
        for name in frames:
            target = root / name / f"snapshot={snapshot_id}"
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():  # left by an earlier attempt that never wrote its record
                shutil.rmtree(target)
            os.replace(staging / name, target)
        markers = root / _MARKERS
        markers.mkdir(exist_ok=True)
        record = markers / f".{snapshot_id}.json.tmp"
        record.write_text(json.dumps({**result.meta, "snapshot": snapshot_id}, indent=2, default=str))
        os.replace(record, markers / f"{snapshot_id}.json")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return snapshot_id


def snapshots(store: str | os.PathLike[str]) -> pd.DataFrame:
    """The complete snapshots in ``store``, oldest first: ``snapshot`` (UTC), ``id``, ``registry``,
    ``url``."""
    markers = Path(store) / _MARKERS
    rows = []
    for path in sorted(markers.glob("*.json")) if markers.is_dir() else []:
        meta = json.loads(path.read_text())
        rows.append(
            {
                "snapshot": _id_time(path.stem),
                "id": path.stem,
                "registry": meta.get("registry"),
                "url": meta.get("url"),
            }
        )
    frame = pd.DataFrame(rows, columns=["snapshot", "id", "registry", "url"])
    frame["snapshot"] = pd.to_datetime(frame["snapshot"], utc=True)
    return frame.sort_values("snapshot").reset_index(drop=True)


def _pick(store: str | os.PathLike[str], at: str | datetime | pd.Timestamp | None) -> str:
    known = snapshots(store)
    if known.empty:
        raise DregError(f"{store} holds no snapshot (save one with crawl(..., snapshot_store=...))")
    if at is None:
        return str(known["id"].iloc[-1])
    if isinstance(at, str) and at in set(known["id"]):
        return at
    ts = pd.Timestamp(at)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    before = known[known["snapshot"] <= ts]
    if before.empty:
        raise DregError(f"{store} holds no snapshot at or before {ts}; the first is {known['id'].iloc[0]}")
    return str(before["id"].iloc[-1])


def load_snapshot(store: str | os.PathLike[str], at: str | datetime | pd.Timestamp | None = None) -> Crawl:
    """The crawl saved at ``at``: a snapshot id, or the latest snapshot at or before a time (default:
    the latest)."""
    root = Path(store)
    snapshot_id = _pick(store, at)
    frames = {}
    for name in FRAMES:
        frame = pd.read_parquet(root / name / f"snapshot={snapshot_id}" / "part-0.parquet")
        frames[name] = apply_schema(frame, name) if set(SCHEMAS[name]) <= set(frame.columns) else frame
    meta = json.loads((root / _MARKERS / f"{snapshot_id}.json").read_text())
    return Crawl(**frames, meta=meta)


def history(store: str | os.PathLike[str]) -> pd.DataFrame:
    """Bytes per repository in every snapshot: ``snapshot``, ``registry``, ``repository``,
    ``logical_bytes``, ``stored_bytes``, ``exclusive_bytes``, ``n_tags`` (the registry total is the
    row named ``(registry total)``). Reads only the small per-snapshot usage tables.

    Example::

        history("history/").pivot(index="snapshot", columns="repository", values="stored_bytes")
    """
    root = Path(store)
    known = snapshots(store)
    parts = []
    for snapshot_time, snapshot_id in zip(known["snapshot"], known["id"], strict=True):
        part = pd.read_parquet(root / "usage" / f"snapshot={snapshot_id}" / "part-0.parquet")
        parts.append(part.assign(snapshot=snapshot_time))
    columns = ["snapshot", *USAGE_COLUMNS]
    if not parts:
        return pd.DataFrame(columns=columns)
    out = pd.concat(parts, ignore_index=True)[columns]
    return out.sort_values(["snapshot", "repository"], kind="stable").reset_index(drop=True)


@dataclass
class CrawlDiff:
    """What changed from one crawl to another.

    ``tags``: one row per changed tag (``change`` added / removed / moved, ``repository``, ``tag``,
    ``old_digest``, ``new_digest``); ``repositories``: added / removed repositories; ``bytes``: stored
    bytes per repository before and after, and the ``growth`` (the registry total included)."""

    tags: pd.DataFrame
    repositories: pd.DataFrame
    bytes: pd.DataFrame
    old: dict[str, Any]
    new: dict[str, Any]

    def summary(self) -> str:
        counts = self.tags["change"].value_counts()
        repos = self.repositories["change"].value_counts()
        total = self.bytes[self.bytes["repository"] == TOTAL]
        growth = int(total["growth"].iloc[0]) if len(total) else 0
        return (
            f"tags: {counts.get('added', 0)} added, {counts.get('removed', 0)} removed, "
            f"{counts.get('moved', 0)} moved; repositories: {repos.get('added', 0)} added, "
            f"{repos.get('removed', 0)} removed; stored bytes {growth:+d}"
        )

    def __repr__(self) -> str:
        return f"CrawlDiff({self.old.get('finished')} -> {self.new.get('finished')}: {self.summary()})"


def diff(old: Crawl, new: Crawl) -> CrawlDiff:
    """Tags added, removed and moved to another digest, repositories added and removed, and stored
    bytes growth per repository, from ``old`` to ``new`` (two crawls of the same registry).

    Example::

        d = diff(load_snapshot("history/", "2026-11-01"), crawl(registry))
        d.tags[d.tags["change"] == "moved"]
    """
    keys = ["repository", "tag"]
    before = old.tags[[*keys, "digest"]].astype(str)
    after = new.tags[[*keys, "digest"]].astype(str)
    merged = before.merge(after, on=keys, how="outer", suffixes=("_old", "_new"), indicator=True)
    merged["change"] = merged["_merge"].map({"left_only": "removed", "right_only": "added", "both": "moved"})
    moved = (merged["_merge"] == "both") & (merged["digest_old"] != merged["digest_new"])
    changed = merged[(merged["_merge"] != "both") | moved]
    tags = changed.rename(columns={"digest_old": "old_digest", "digest_new": "new_digest"})[
        ["change", *keys, "old_digest", "new_digest"]
    ]
    tags = tags.astype(object).where(tags.notna(), None)
    tags = tags.sort_values(["repository", "tag", "change"], kind="stable").reset_index(drop=True)

    old_repos = set(old.repositories["repository"].astype(str)) | set(before["repository"])
    new_repos = set(new.repositories["repository"].astype(str)) | set(after["repository"])
    repositories = pd.DataFrame(
        [("added", r) for r in sorted(new_repos - old_repos)]
        + [("removed", r) for r in sorted(old_repos - new_repos)],
        columns=["change", "repository"],
    )

    old_usage = _usage_rows(old).set_index("repository")["stored_bytes"]
    new_usage = _usage_rows(new).set_index("repository")["stored_bytes"]
    sizes = pd.DataFrame({"old_bytes": old_usage, "new_bytes": new_usage}).fillna(0).astype("int64")
    sizes["growth"] = sizes["new_bytes"] - sizes["old_bytes"]
    sizes = sizes.rename_axis("repository").reset_index()
    sizes["_total"] = sizes["repository"] == TOTAL
    sizes = sizes.sort_values(
        ["_total", "growth", "repository"], ascending=[True, False, True], kind="stable"
    )
    sizes = sizes.drop(columns="_total").reset_index(drop=True)
    return CrawlDiff(tags, repositories, sizes, dict(old.meta), dict(new.meta))
