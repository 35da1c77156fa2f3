"""The result of a crawl: five tidy frames plus what the crawl was, saved and loaded as a folder."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ..client.errors import DregError
from .frames import SCHEMAS, _typed, apply_schema, empty_frame

__all__ = ["Crawl"]

FRAMES = ("tags", "images", "layers", "errors", "repositories", "referrers")
_ACTIVITY = ("pushed", "last_pushed", "first_pulled", "last_pulled", "pulls", "pulls_30d", "deleted")


@dataclass
class Crawl:
    """What :func:`crawl` returns.

    ``tags`` (one row per repository and tag), ``images`` (per platform manifest), ``layers`` (per
    layer: the tidy long frame), ``errors`` (per failure), ``repositories`` (per repository crawled),
    and ``meta`` (registry, times, request counts).

    Example::

        result = crawl(registry)
        result.layers.groupby("repository", observed=True)["layer_size"].sum()
        result.to_parquet("crawl-2026-11-27"); Crawl.load("crawl-2026-11-27")
    """

    tags: pd.DataFrame
    images: pd.DataFrame
    layers: pd.DataFrame
    errors: pd.DataFrame
    repositories: pd.DataFrame
    referrers: pd.DataFrame = field(default_factory=lambda: empty_frame("referrers"))
    meta: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"Crawl(registry={self.meta.get('registry')!r}, repositories={len(self.repositories)}, "
            f"tags={len(self.tags)}, images={len(self.images)}, layers={len(self.layers)}, "
            f"errors={len(self.errors)})"
        )

    @property
    def frames(self) -> dict[str, pd.DataFrame]:
        return {name: getattr(self, name) for name in FRAMES}

    def _save(self, directory: str | os.PathLike[str], fmt: str) -> Path:
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        for name, frame in self.frames.items():
            if fmt == "parquet":
                frame.to_parquet(out / f"{name}.parquet", index=False)
            else:
                csv = frame.copy()
                if "created" in csv:
                    # ISO 8601 with nanoseconds and an explicit offset: spreadsheets and pandas both read it.
                    csv["created"] = csv["created"].map(lambda t: t.isoformat() if not pd.isna(t) else "")
                csv.to_csv(out / f"{name}.csv", index=False)
        (out / "crawl.json").write_text(json.dumps({**self.meta, "format": fmt}, indent=2, default=str))
        return out

    def to_parquet(self, directory: str | os.PathLike[str]) -> Path:
        """Write one parquet file per frame and ``crawl.json`` into ``directory``."""
        return self._save(directory, "parquet")

    def to_csv(self, directory: str | os.PathLike[str]) -> Path:
        """Write one CSV per frame (for spreadsheets) and ``crawl.json`` into ``directory``."""
        return self._save(directory, "csv")

    def save_snapshot(self, store: str | os.PathLike[str], at: datetime | None = None) -> str:
        """Add this crawl to a history store as one dated partition; returns the snapshot id.

        See :mod:`dreg_frames.crawl_history` (``diff``, ``history``, ``load_snapshot``)."""
        from ..crawl_history import save_snapshot

        return save_snapshot(self, store, at)

    def with_events(self, events: pd.DataFrame, now: datetime | None = None) -> Crawl:
        """This crawl with push and pull history on ``tags`` and ``images``: ``pushed``,
        ``last_pushed``, ``first_pulled``, ``last_pulled``, ``pulls``, ``pulls_30d``, ``deleted``
        (per repository and digest; see :func:`dreg_frames.events.activity_for`).

        ``events`` is a frame from :func:`dreg_frames.events.load_events` (or its
        ``digest_activity``); its ``recording_start`` goes into ``meta`` and the frames' ``attrs``.

        Example::

            result.with_events(load_events("events.db")).images.sort_values("last_pulled")
        """
        from ..events.frames import activity_for, digest_activity

        activity = events if "last_pulled" in events.columns else digest_activity(events, now)
        start = events.attrs.get("recording_start")
        frames = dict(self.frames)
        for name in ("tags", "images"):
            frame = frames[name]
            # images carry manifest_digest, so pulls of a platform manifest count for its index
            extra = activity_for(frame.drop(columns=[c for c in _ACTIVITY if c in frame]), activity, now)
            joined = pd.concat([frame.drop(columns=[c for c in _ACTIVITY if c in frame]), extra], axis=1)
            joined.attrs["recording_start"] = start
            frames[name] = joined
        if "manifest_digest" in self.images.columns:
            # tags: first/last pull over the tag's platform manifests too, as images have them
            pulled = frames["images"].groupby(["repository", "tag"], observed=True)[
                ["first_pulled", "last_pulled"]
            ]
            per_tag = pulled.agg({"first_pulled": "min", "last_pulled": "max"})
            keyed = frames["tags"].set_index(["repository", "tag"])
            for column in ("first_pulled", "last_pulled"):
                keyed[column] = per_tag[column].reindex(keyed.index).fillna(keyed[column]).to_numpy()
            frames["tags"] = keyed.reset_index()[list(frames["tags"].columns)]
            frames["tags"].attrs["recording_start"] = start
        meta = {**self.meta, "recording_start": None if start is None else str(start)}
        return Crawl(**frames, meta=meta)

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Crawl:
        """Read a folder written by :meth:`to_parquet` or :meth:`to_csv`, dtypes restored."""
        src = Path(directory)
        meta_path = src / "crawl.json"
        if not meta_path.exists():
            raise DregError(f"{src} is not a saved crawl: crawl.json is missing")
        meta = json.loads(meta_path.read_text())
        fmt = meta.pop("format", "parquet")
        frames: dict[str, pd.DataFrame] = {}
        for name in FRAMES:
            path = src / f"{name}.{fmt}"
            if not path.exists() and name == "referrers":
                frames[name] = empty_frame(name)  # saved before crawls linked referrers
                continue
            if not path.exists():
                raise DregError(f"saved crawl {src} lacks {path.name}")
            if fmt == "parquet":
                frame = pd.read_parquet(path)
            else:
                frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
                frame = _from_csv(frame)
            frames[name] = apply_schema(frame, name) if set(SCHEMAS[name]) <= set(frame.columns) else frame
        return cls(**frames, meta=meta)


def _from_csv(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in ("created_suspect", "layer_foreign", "subject_found"):
        if column in out:
            out[column] = out[column].map({"True": True, "False": False})
    for column in ("layer_index", "n_layers", "n_images", "n_tags"):
        if column in out:
            out[column] = pd.to_numeric(out[column])
    for column in ("layer_size", "size", "status"):
        if column in out:
            out[column] = pd.to_numeric(out[column]).astype("Int64")
    return _typed(out)
