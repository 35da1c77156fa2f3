"""Stale images: what a cleanup policy would select, per digest, with the reason."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from .in_use import in_use
from .policies import GitLabPolicy

__all__ = ["stale"]

KeepArg = str | os.PathLike[str] | pd.DataFrame | Mapping[str, Any] | Sequence[Any] | None


def _split_keep(keep: KeepArg) -> tuple[str | None, pd.DataFrame | None]:
    """``keep`` -> (a tag regex, in-use references): strings are regexes; paths, kubectl JSON and
    frames of references are images in use."""
    if keep is None:
        return None, None
    items = list(keep) if isinstance(keep, (list, tuple)) else [keep]
    patterns = [item for item in items if isinstance(item, str)]
    sources: list[Any] = [item for item in items if not isinstance(item, str)]
    regex = (
        "|".join(f"(?:{p})" for p in patterns) if len(patterns) > 1 else (patterns[0] if patterns else None)
    )
    return regex, in_use(sources) if sources else None


def stale(
    frame: Any,
    older_than: str | pd.Timedelta | int | None = "90D",
    keep_latest: int | None = 3,
    keep: KeepArg = None,
    delete: str | None = None,
    now: datetime | str | pd.Timestamp | None = None,
    *,
    keep_latest_tag: bool = True,
    include_kept: bool = False,
    not_pulled_for: str | pd.Timedelta | int | None = None,
    events: pd.DataFrame | None = None,
    recording_start: datetime | str | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Digests a cleanup would delete: older than ``older_than`` and not among the ``keep_latest``
    newest images of their repository, with no tag kept.

    ``keep`` / ``delete`` are regexes over whole tags (GitLab's ``name_regex_keep`` / ``name_regex``):
    a digest with a tag matching ``keep``, or a tag not matching ``delete``, is kept, and so is
    ``latest`` unless ``keep_latest_tag=False``. Deletion is per digest, so one kept tag keeps the
    digest. Suspect dates (the 1970 epoch, the future) are never treated as old.

    ``keep`` also takes images in use: a ``pathlib.Path`` to ``kubectl get pods -A -o json`` output
    or to a CSV keep-list, the parsed kubectl JSON, a DataFrame of references (see
    :func:`~dreg_frames.analysis.in_use.in_use`), or a list mixing these with regexes. Whatever they
    name is kept, and ``explain`` says by which pod.

    ``not_pulled_for`` keeps digests pulled (or pushed) within that time; it reads ``events``
    (:func:`~dreg_frames.events.load_events`) or the columns of ``Crawl.with_events``. A digest with
    no recorded pull is only called unpulled once the recording (``recording_start``, default the
    events' own) covers the whole window since its last push.

    Returns one row per candidate (``repository, digest, tags, created, reason, explain``);
    ``include_kept=True`` also returns the kept digests, with ``candidate`` False.

    Example::

        result.images.pipe(stale, older_than="180D", keep_latest=5, keep=r"v\\d+\\.\\d+\\.\\d+")
        stale(result.images, not_pulled_for="90D", events=load_events("events.db"), keep=Path("pods.json"))
    """
    regex, references = _split_keep(keep)
    policy = GitLabPolicy(
        keep_n=keep_latest,
        older_than=older_than,
        name_regex=delete or ".*",
        name_regex_keep=regex,
        keep_latest_tag=keep_latest_tag,
        not_pulled_for=not_pulled_for,
    )
    table = policy.evaluate(
        frame, now, events=events, recording_start=recording_start, in_use=references
    ).rename(columns={"rule": "reason"})
    if not include_kept:
        table = table[table["candidate"]].reset_index(drop=True)
    return table
