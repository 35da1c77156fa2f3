"""Stale images: what a cleanup policy would select, per digest, with the reason."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from .policies import GitLabPolicy

__all__ = ["stale"]


def stale(
    frame: Any,
    older_than: str | pd.Timedelta | int | None = "90D",
    keep_latest: int | None = 3,
    keep: str | None = None,
    delete: str | None = None,
    now: datetime | str | pd.Timestamp | None = None,
    *,
    keep_latest_tag: bool = True,
    include_kept: bool = False,
) -> pd.DataFrame:
    """Digests a cleanup would delete: older than ``older_than`` and not among the ``keep_latest``
    newest images of their repository, with no tag kept.

    ``keep`` / ``delete`` are regexes over whole tags (GitLab's ``name_regex_keep`` / ``name_regex``):
    a digest with a tag matching ``keep``, or a tag not matching ``delete``, is kept, and so is
    ``latest`` unless ``keep_latest_tag=False``. Deletion is per digest, so one kept tag keeps the
    digest. Suspect dates (the 1970 epoch, the future) are never treated as old.

    Returns one row per candidate (``repository, digest, tags, created, reason, explain``);
    ``include_kept=True`` also returns the kept digests, with ``candidate`` False.

    Example::

        result.images.pipe(stale, older_than="180D", keep_latest=5, keep=r"v\\d+\\.\\d+\\.\\d+")
    """
    policy = GitLabPolicy(
        keep_n=keep_latest,
        older_than=older_than,
        name_regex=delete or ".*",
        name_regex_keep=keep,
        keep_latest_tag=keep_latest_tag,
    )
    table = policy.evaluate(frame, now).rename(columns={"rule": "reason"})
    if not include_kept:
        table = table[table["candidate"]].reset_index(drop=True)
    return table
