"""Input handling shared by the analysis helpers: a Crawl or one of its frames, checked."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["TagRows", "as_frame", "codes", "digest_index", "digest_table", "now_utc", "to_timedelta"]

_DAYS = re.compile(r"\s*(\d+(?:\.\d+)?)\s*[dD]\s*")


def as_frame(
    obj: Any, columns: list[str], what: str, prefer: tuple[str, ...] = ("layers", "images", "tags")
) -> pd.DataFrame:
    """The frame to analyse: ``obj`` itself, or the first frame of a Crawl that has ``columns``."""
    if isinstance(obj, pd.DataFrame):
        frame = obj
    elif hasattr(obj, "frames"):
        frames = obj.frames
        frame = next(
            (frames[name] for name in prefer if set(columns) <= set(frames[name].columns)), frames[prefer[0]]
        )
    else:
        raise TypeError(f"{what} takes a Crawl or a DataFrame, got {type(obj).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} needs columns {missing}; pass a crawl's layers/images frame or the Crawl")
    return frame


def now_utc(now: datetime | str | pd.Timestamp | None) -> pd.Timestamp:
    ts = pd.Timestamp(now) if now is not None else pd.Timestamp(datetime.now(timezone.utc))
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def to_timedelta(value: str | pd.Timedelta | int | None, what: str) -> pd.Timedelta | None:
    """``"90D"``, ``"90d"``, ``"12h"``, a Timedelta, or a number of days."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return pd.Timedelta(days=value)
    if isinstance(value, str) and (days := _DAYS.fullmatch(value)):
        # GitLab writes "90d"; pandas wants "D" for days.
        return pd.Timedelta(days=float(days.group(1)))
    try:
        return pd.Timedelta(value.strip() if isinstance(value, str) else value)
    except ValueError:
        raise ValueError(f"{what}: cannot read {value!r} as a duration (e.g. '90D', '12h', 30)") from None


def codes(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Category codes (int64, -1 for missing) and category names (an object array) of a column.

    pandas stores codes as int8 below 128 categories and int16 below 32768: every caller offsets,
    multiplies or combines codes, so they are widened here, once, before any arithmetic.
    """
    cat = series if isinstance(series.dtype, pd.CategoricalDtype) else series.astype("category")
    return cat.cat.codes.to_numpy().astype(np.int64), cat.cat.categories.to_numpy(dtype=object)


@dataclass(frozen=True)
class TagRows:
    """The (digest row, tag) pairs behind a digest table, for matching rules on tags vectorised:
    ``row[i]`` is the table row and ``code[i]`` the tag (an index into ``names``) of pair ``i``."""

    row: np.ndarray
    code: np.ndarray
    names: np.ndarray


def digest_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (repository, digest): its tags (sorted), newest trustworthy ``created``, suspect flag.

    ``created`` is the newest non-suspect date across the digest's platforms; a digest with no
    trustworthy date keeps its (suspect) date and ``created_suspect`` True.
    """
    return digest_index(frame)[0]


def digest_index(frame: pd.DataFrame) -> tuple[pd.DataFrame, TagRows]:
    """:func:`digest_table` and the tag pairs behind it."""
    repo, repo_names = codes(frame["repository"])
    digest, digest_names = codes(frame["digest"])
    tag, tag_names = codes(frame["tag"])
    created = frame["created"]
    if "created_suspect" in frame:
        suspect = frame["created_suspect"].to_numpy(dtype=bool)
    else:
        from ..crawl.frames import mark_suspect

        suspect = mark_suspect(created).to_numpy(dtype=bool)
    # .array, not .to_numpy(): tz-aware timestamps would become an object array of Timestamps
    work = pd.DataFrame({"repo": repo, "digest": digest, "tag": tag, "created": created.array})
    work["trusted"] = work["created"].where(~suspect)
    grouped = work.groupby(["repo", "digest"], sort=True)
    out = grouped.agg(created=("trusted", "max"), any_created=("created", "max"))
    # tags per digest without a Python call per group: sort, then cut at group boundaries
    pairs = work.drop_duplicates(["repo", "digest", "tag"])
    pairs = pairs.assign(name=tag_names[pairs["tag"].to_numpy()]).sort_values(["repo", "digest", "name"])
    keys = pairs["repo"].to_numpy().astype("int64") * (len(digest_names) + 1) + pairs["digest"].to_numpy()
    cuts = np.flatnonzero(np.diff(keys)) + 1
    names = pairs["name"].to_numpy()
    tag_lists = [tuple(chunk) for chunk in np.split(names, cuts)] if len(names) else []
    index = out.index
    table = pd.DataFrame(
        {
            "repository": repo_names[index.get_level_values("repo").to_numpy()],
            "digest": digest_names[index.get_level_values("digest").to_numpy()],
            "tags": tag_lists,
            "created": out["created"].fillna(out["any_created"]).array,
            "created_suspect": out["created"].isna().to_numpy(),
        }
    )
    table["created"] = pd.to_datetime(table["created"], utc=True)
    rows = np.repeat(np.arange(len(tag_lists)), [len(t) for t in tag_lists])
    return table, TagRows(rows, pairs["tag"].to_numpy(), tag_names)
