"""Registry events as DataFrames: one row per event, and per digest when it was pushed and pulled.

Example::

    events = load_events("events.db", since="2026-11-01")
    activity = digest_activity(events)          # pushed, last_pulled, pulls_30d per (repository, digest)
    result.with_events(events).images[["repository", "tag", "last_pulled", "pulls_30d"]]
"""

from __future__ import annotations

import os
import zlib
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from ..client.mediatypes import INDEX_TYPES, MANIFEST_TYPES, SCHEMA1_TYPES
from .store import COLUMNS, INT_COLUMNS, NULL_INT, Chunk, EncodedColumn, EventStore, encode_columns

__all__ = [
    "ACTIVITY_COLUMNS",
    "CRAWLER_AGENT_PREFIX",
    "EVENT_COLUMNS",
    "activity_for",
    "digest_activity",
    "load_events",
    "recording_start",
]

# The toolkit's own requests (crawls, re-checks before a delete) carry this User-Agent prefix
# (client/http.py); their pulls are not anyone using an image.
CRAWLER_AGENT_PREFIX = "dreg-frames/"

# The stored columns in reading order, ``kind`` derived, ids only on request.
EVENT_COLUMNS = [
    "timestamp",
    "action",
    "kind",
    *(c for c in COLUMNS[COLUMNS.index("repository") :] if c != "request_id"),
    "received",
]
ACTIVITY_COLUMNS = [
    "pushed",
    "last_pushed",
    "first_pulled",
    "last_pulled",
    "pulls",
    "pulls_30d",
    "deleted",
]
_MANIFEST_TYPES = INDEX_TYPES | MANIFEST_TYPES | SCHEMA1_TYPES
_PULLS_WINDOW = pd.Timedelta(days=30)


def _ns(value: datetime | str | pd.Timestamp | None) -> int | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value)


def _open(store: str | os.PathLike[str] | EventStore) -> tuple[EventStore, bool]:
    if isinstance(store, EventStore):
        return store, False
    return EventStore(store, readonly=True), True


def recording_start(store: str | os.PathLike[str] | EventStore) -> pd.Timestamp:
    """When the store started recording (UTC): no event before it is known."""
    opened, own = _open(store)
    try:
        return pd.Timestamp(opened.recording_start, unit="ns", tz="UTC")
    finally:
        if own:
            opened.close()


def _code_type(categories: int) -> type[np.signedinteger[Any]]:
    """The integer type pandas keeps categorical codes in (so it never converts them again)."""
    for kind in (np.int8, np.int16, np.int32):
        if categories < np.iinfo(kind).max:
            return kind
    return np.int64


class _Column:
    """One column gathered across chunks: int64 parts, or code parts with the dictionary they index
    (the store-wide one, ``shared``, or a chunk's own fixed-width values)."""

    def __init__(self, name: str, shared: list[str] | None = None) -> None:
        self.name = name
        self.shared = shared
        self.ints: list[np.ndarray] = []
        self.codes: list[np.ndarray] = []
        self.values: list[np.ndarray | None] = []  # None: codes into ``shared``

    def add(self, column: EncodedColumn, keep: np.ndarray | None) -> None:
        if column.kind == "i64":
            array = np.frombuffer(column.data, dtype="<i8")
            self.ints.append(array if keep is None else array[keep])
            return
        codes = np.frombuffer(column.data, dtype=f"<i{column.width}")
        self.codes.append(codes if keep is None else codes[keep])
        if column.kind == "codes":
            self.values.append(None)
        else:
            assert column.dictionary is not None and column.kind.startswith("dict")
            width = int(column.kind[4:])
            self.values.append(np.frombuffer(zlib.decompress(column.dictionary), dtype=f"S{width}"))

    def int64(self) -> np.ndarray:
        return np.concatenate(self.ints) if self.ints else np.empty(0, dtype="int64")

    def categorical(self) -> pd.Categorical:
        """One categorical with the values in use as sorted categories; codes are remapped through
        lookup tables, never turned into a string per row."""
        if self.shared is not None:
            names, codes = self._from_shared(self.shared)
        else:
            names, codes = self._from_chunks()
        # keep the categories in use, sorted, as every frame of the toolkit has them
        # (codes + 1: null is -1; one add is cheaper than masking ten million codes)
        used = np.flatnonzero(np.bincount(codes + 1, minlength=len(names) + 1)[1:])
        kept = names[used]
        # fixed-width unicode sorts in C; an object array compares Python strings one by one
        order = np.argsort(kept.astype(str), kind="stable") if len(kept) else np.empty(0, dtype="int64")
        lut = np.full(len(names) + 1, -1, dtype=_code_type(len(used)))
        lut[used[order]] = np.arange(len(used))
        dtype = pd.CategoricalDtype(pd.Index(kept[order], dtype=object))
        return pd.Categorical.from_codes(lut[codes], dtype=dtype, validate=False)

    def _from_shared(self, shared: list[str]) -> tuple[np.ndarray, np.ndarray]:
        extra: dict[str, int] = {}
        lookup: dict[str, int] | None = None
        parts = []
        for codes, values in zip(self.codes, self.values, strict=True):
            if values is None:
                parts.append(codes)  # narrow as stored; concatenate widens to the widest part
                continue
            # the hot rows: their own values, most already in the store's dictionary
            if lookup is None:
                lookup = {v: i for i, v in enumerate(shared)}
            texts = np.char.decode(values, "utf-8").tolist()

            def code_of(text: str, known: dict[str, int] = lookup) -> int:
                found = known.get(text)
                return found if found is not None else extra.setdefault(text, len(shared) + len(extra))

            lut = np.array([*map(code_of, texts), -1], dtype="int64")
            parts.append(lut[codes])
        names = np.array([*shared, *extra], dtype=object)
        return names, np.concatenate(parts) if parts else np.empty(0, dtype="int64")

    def _from_chunks(self) -> tuple[np.ndarray, np.ndarray]:
        values = [v for v in self.values if v is not None]
        if not values:
            return np.empty(0, dtype=object), np.empty(0, dtype="int64")
        width = max(v.dtype.itemsize for v in values)
        uniques, inverse = np.unique(
            np.concatenate([v.astype(f"S{width}") for v in values]), return_inverse=True
        )
        parts, offset = [], 0
        for codes, chunk_values in zip(self.codes, values, strict=True):
            lut = np.append(inverse[offset : offset + len(chunk_values)].astype("int64"), -1)
            offset += len(chunk_values)
            parts.append(lut[codes])
        return np.char.decode(uniques, "utf-8").astype(object), np.concatenate(parts)


def _kinds(action: pd.Categorical, media: pd.Categorical, tag: pd.Categorical, digest: pd.Categorical) -> Any:
    """manifest / blob / tag (a tag delete) / unknown (a delete by digest of something never seen)."""
    media_names = media.categories.astype(str)
    is_manifest_type = np.fromiter(
        (m in _MANIFEST_TYPES or ".manifest." in m or ".index." in m for m in media_names),
        dtype=bool,
        count=len(media_names),
    )
    # per media type: 1 manifest, 2 blob; the last entry (code -1: no media type) 0 for now
    by_media = np.append(np.where(is_manifest_type, 1, 2), 0).astype("int8")
    media_codes = np.asarray(media.codes)
    kind = by_media[media_codes]
    # Only deletes come without a media type: few rows, decided one by one below. A tag delete
    # carries a tag and no digest; a delete by digest is a manifest's when the same digest shows up
    # with a manifest media type elsewhere (Distribution sends no type with deletes).
    untyped = np.flatnonzero(media_codes < 0)
    if len(untyped):
        digest_codes = np.asarray(digest.codes)
        tag_codes = np.asarray(tag.codes)
        known = np.zeros(len(digest.categories) + 1, dtype=bool)
        known[digest_codes[kind == 1]] = True
        known[-1] = False  # code -1: no digest
        codes_here = digest_codes[untyped]
        kind[untyped] = np.where(
            codes_here < 0, np.where(tag_codes[untyped] >= 0, 3, 0), np.where(known[codes_here], 1, 0)
        )
    labels = pd.Index(["unknown", "manifest", "blob", "tag"], dtype=object)
    return pd.Categorical.from_codes(kind, dtype=pd.CategoricalDtype(labels), validate=False)


def load_events(
    store: str | os.PathLike[str] | EventStore,
    since: datetime | str | pd.Timestamp | None = None,
    until: datetime | str | pd.Timestamp | None = None,
    *,
    include_crawler: bool = False,
    ids: bool = False,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """The events of ``store`` (a path or an :class:`EventStore`), one row each, oldest first.

    Columns: ``timestamp`` (UTC, as the registry stamped it), ``action`` (push / pull / delete),
    ``kind`` (manifest / blob / tag / unknown), ``repository``, ``tag``, ``digest``, ``media_type``,
    ``size``, ``method`` (GET and HEAD are both pulls), ``actor``, ``user_agent``, ``source_addr``
    (the client's address), ``host``, ``instance`` (the registry instance), ``from_repository``
    (cross-repository mounts), ``received`` (when the receiver stored it); with ``ids=True`` also
    ``id`` and ``request_id``. ``since``/``until`` bound ``timestamp`` (``until`` excluded).

    Pulls made by dreg-frames itself (a crawl, a delete's re-check) are left out unless
    ``include_crawler=True``; its pushes and deletes are kept. ``columns`` loads only those.
    ``frame.attrs["recording_start"]`` says since when the store records (ISO 8601, UTC).

    Example::

        events = load_events("events.db", since="2026-11-01")
        events[events["action"] == "pull"].groupby("repository", observed=True).size()
    """
    wanted = [*EVENT_COLUMNS, *(["id", "request_id"] if ids else [])] if columns is None else list(columns)
    unknown = [c for c in wanted if c not in EVENT_COLUMNS and c not in ("id", "request_id")]
    if unknown:
        raise ValueError(
            f"load_events: unknown columns {unknown}; choose from {[*EVENT_COLUMNS, 'id', 'request_id']}"
        )
    need = set(wanted) | {"timestamp"}
    if "kind" in need:
        need |= {"action", "media_type", "tag", "digest"}
    if not include_crawler:
        need |= {"action", "user_agent"}
    stored = [c for c in COLUMNS if c in need]
    low, high = _ns(since), _ns(until)
    opened, own = _open(store)
    try:
        start_ns = opened.recording_start
        chunks, hot, dictionaries = opened.snapshot(low, high, stored)
    finally:
        if own:
            opened.close()
    gathered = {name: _Column(name, dictionaries.get(name)) for name in stored}
    if hot:
        hot_stamps = [row[1] for row in hot]
        encoded = {c.name: c for c in encode_columns(hot, stored)}
        chunks.append(Chunk(-1, len(hot), min(hot_stamps), max(hot_stamps), encoded))
    for chunk in chunks:
        keep = None
        if (low is not None and chunk.ts_min < low) or (high is not None and chunk.ts_max >= high):
            stamps_ns = np.frombuffer(chunk.columns["timestamp"].data, dtype="<i8")
            keep = np.ones(len(stamps_ns), dtype=bool)
            if low is not None:
                keep &= stamps_ns >= low
            if high is not None:
                keep &= stamps_ns < high
        for name, column in gathered.items():
            column.add(chunk.columns[name], keep)
    data: dict[str, Any] = {}
    for name in stored:
        column = gathered[name]
        if name in INT_COLUMNS:
            values = column.int64()
            if name == "size":
                data[name] = pd.arrays.IntegerArray(values, values == NULL_INT)
            else:
                data[name] = pd.DatetimeIndex(values.view("datetime64[ns]")).tz_localize("UTC")
        else:
            data[name] = column.categorical()
    if "kind" in need:
        data["kind"] = _kinds(data["action"], data["media_type"], data["tag"], data["digest"])
    frame = pd.DataFrame(data, copy=False)
    if not include_crawler and len(frame):
        agents = frame["user_agent"].cat.categories.astype(str)
        own_agent = np.asarray(agents.str.startswith(CRAWLER_AGENT_PREFIX), dtype=bool)
        codes = frame["user_agent"].cat.codes.to_numpy()
        crawler = np.zeros(len(frame), dtype=bool)
        crawler[codes >= 0] = own_agent[codes[codes >= 0]]
        crawler &= (frame["action"] == "pull").to_numpy()
        if crawler.any():
            frame = frame[~crawler]
    stamps = _i8(frame["timestamp"])
    if len(stamps) > 1 and (np.diff(stamps) < 0).any():
        # Several registries (or retries) interleave: order by the registry's time, stable.
        frame = frame.iloc[np.argsort(stamps, kind="stable")]
    frame = frame[[c for c in wanted if c in frame.columns]].reset_index(drop=True)
    # ISO text, not a Timestamp: attrs go into Parquet metadata as JSON
    frame.attrs["recording_start"] = pd.Timestamp(start_ns, unit="ns", tz="UTC").isoformat()
    return frame


def _i8(stamps: pd.Series) -> np.ndarray:
    """Nanoseconds since the epoch of a timestamp column (NaT: int64 min), no copy when tz-aware UTC."""
    if not isinstance(stamps.dtype, pd.DatetimeTZDtype):
        stamps = pd.to_datetime(stamps, utc=True)
    return np.asarray(stamps.array.asi8, dtype="int64")


def _group_key(frame: pd.DataFrame) -> tuple[np.ndarray, pd.Categorical, pd.Categorical]:
    repo = pd.Categorical(frame["repository"])
    digest = pd.Categorical(frame["digest"])
    key = np.asarray(repo.codes, dtype="int64") * (len(digest.categories) + 1) + np.asarray(digest.codes)
    return key, repo, digest


def digest_activity(
    events: pd.DataFrame | str | os.PathLike[str] | EventStore,
    now: datetime | str | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """One row per (repository, digest) that manifest events name: ``pushed`` (first push),
    ``last_pushed``, ``first_pulled``, ``last_pulled``, ``pulls`` (pull events: GET and HEAD),
    ``pulls_30d`` (in the 30 days before ``now``), ``deleted`` (last delete, NaT if none).

    Takes a frame from :func:`load_events`, or a store (then only the columns needed are read).
    ``attrs["recording_start"]`` is carried over.

    Example::

        digest_activity(load_events("events.db")).sort_values("last_pulled")
    """
    needed = ["timestamp", "action", "kind", "repository", "digest"]
    if not isinstance(events, pd.DataFrame):
        events = load_events(events, columns=needed)
    missing = [c for c in needed if c not in events.columns]
    if missing:
        raise ValueError(f"digest_activity needs a frame from load_events; this one lacks {missing}")
    now_ns = _ns(now) if now is not None else pd.Timestamp.now(tz="UTC").value
    manifest = events[(events["kind"] == "manifest").to_numpy() & events["digest"].notna().to_numpy()]
    key, repo, digest = _group_key(manifest)
    ts = _i8(manifest["timestamp"])
    action = manifest["action"]
    push, pull, delete = ((action == name).to_numpy(dtype=bool) for name in ("push", "pull", "delete"))
    big, small = np.iinfo("int64").max, np.iinfo("int64").min
    recent = pull & (ts >= now_ns - _PULLS_WINDOW.value)
    work = pd.DataFrame(
        {
            "key": key,
            "push_min": np.where(push, ts, big),
            "push_max": np.where(push, ts, small),
            "pull_min": np.where(pull, ts, big),
            "pull_max": np.where(pull, ts, small),
            "pulls": pull.astype("int64"),
            "pulls_30d": recent.astype("int64"),
            "deleted": np.where(delete, ts, small),
        }
    )
    grouped = work.groupby("key", sort=True).agg(
        push_min=("push_min", "min"),
        push_max=("push_max", "max"),
        pull_min=("pull_min", "min"),
        pull_max=("pull_max", "max"),
        pulls=("pulls", "sum"),
        pulls_30d=("pulls_30d", "sum"),
        deleted=("deleted", "max"),
    )
    keys = grouped.index.to_numpy()
    width = len(digest.categories) + 1
    out = pd.DataFrame(
        {
            "repository": pd.Categorical.from_codes(keys // width, dtype=repo.dtype, validate=False),
            "digest": pd.Categorical.from_codes(keys % width, dtype=digest.dtype, validate=False),
        }
    )

    def stamp(values: np.ndarray, missing: int) -> pd.DatetimeIndex:
        values = np.where(values == missing, np.iinfo("int64").min, values)  # NaT
        return pd.DatetimeIndex(values.view("datetime64[ns]")).tz_localize("UTC")

    out["pushed"] = stamp(grouped["push_min"].to_numpy(), big)
    out["last_pushed"] = stamp(grouped["push_max"].to_numpy(), small)
    out["first_pulled"] = stamp(grouped["pull_min"].to_numpy(), big)
    out["last_pulled"] = stamp(grouped["pull_max"].to_numpy(), small)
    out["pulls"] = grouped["pulls"].to_numpy()
    out["pulls_30d"] = grouped["pulls_30d"].to_numpy()
    out["deleted"] = stamp(grouped["deleted"].to_numpy(), small)
    out.attrs["recording_start"] = events.attrs.get("recording_start")
    return out


def activity_for(
    frame: pd.DataFrame,
    events: pd.DataFrame,
    now: datetime | str | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """:data:`ACTIVITY_COLUMNS` for each row of a crawl frame (tags, images or layers), keyed on its
    (repository, digest): push times and pull counts of that digest; first/last pull also over its
    platform manifests (a platform manifest pulled by digest is the image in use). No events: NaT, 0.

    ``events`` is a frame from :func:`load_events` or one from :func:`digest_activity`.
    """
    activity = events if "last_pulled" in events.columns else digest_activity(events, now)
    columns = ["repository", "digest"]
    own = activity.astype({"repository": object, "digest": object}).set_index(columns)
    rows = frame[columns].astype(object)
    out = own.reindex(pd.MultiIndex.from_frame(rows))[ACTIVITY_COLUMNS].reset_index(drop=True)
    if "manifest_digest" in frame.columns:
        # Children pulled by digest: the latest (and earliest) pull of any platform of the image.
        pairs = frame[["repository", "digest", "manifest_digest"]].astype(object).drop_duplicates()
        pairs = pairs[pairs["digest"] != pairs["manifest_digest"]]
        child = own.reindex(pd.MultiIndex.from_frame(pairs[["repository", "manifest_digest"]]))
        child.index = pd.MultiIndex.from_frame(pairs[columns])
        child = child.groupby(level=[0, 1]).agg(
            first_pulled=("first_pulled", "min"), last_pulled=("last_pulled", "max")
        )
        if len(child):
            found = child.reindex(pd.MultiIndex.from_frame(rows)).reset_index(drop=True)
            out["first_pulled"] = pd.concat([out["first_pulled"], found["first_pulled"]], axis=1).min(axis=1)
            out["last_pulled"] = pd.concat([out["last_pulled"], found["last_pulled"]], axis=1).max(axis=1)
    for column in ("pulls", "pulls_30d"):
        out[column] = out[column].fillna(0).astype("int64")
    for column in ("pushed", "last_pushed", "first_pulled", "last_pulled", "deleted"):
        out[column] = pd.to_datetime(out[column], utc=True)
    out.index = frame.index
    return out
