"""Audit spreadsheets: export candidates to CSV, read back the reviewer's decisions, check them.

The round trip an auditor does::

    export_candidates(stale(result.images), "review.csv")     # open in a spreadsheet, fill 'decision'
    decisions = read_decisions("review.csv")                 # typed, decisions checked
    checked = validate_decisions(registry, decisions)         # against the live registry
    plan = plan_delete(result, checked[checked["ok"] & (checked["decision"] == "delete")])
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .client.errors import DregError
from .client.reference import check_digest, check_name, check_tag
from .client.registry import Registry

__all__ = ["DECISIONS", "export_candidates", "read_decisions", "validate_decisions"]

DECISIONS = ("delete", "keep", "")
_COLUMNS = ["decision", "repository", "digest", "tags", "created", "reason", "explain"]


def export_candidates(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write candidates (``stale``, a policy's ``evaluate``, any frame with repository and digest) as a
    CSV for a spreadsheet: an empty ``decision`` column first, tags space-separated."""
    missing = [c for c in ("repository", "digest") if c not in frame.columns]
    if missing:
        raise ValueError(f"export_candidates needs columns {missing}")
    out = frame.copy()
    if "tags" in out:
        out["tags"] = out["tags"].map(lambda t: " ".join(t) if isinstance(t, (tuple, list)) else str(t))
    if "created" in out:
        out["created"] = pd.to_datetime(out["created"], utc=True).map(
            lambda t: t.isoformat() if not pd.isna(t) else ""
        )
    out.insert(0, "decision", "")
    columns = [c for c in _COLUMNS if c in out.columns] + [c for c in out.columns if c not in _COLUMNS]
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    out[columns].to_csv(target, index=False)
    return target


def read_decisions(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a reviewed CSV back: ``decision`` lower-cased and checked, tags as tuples, names and
    digests checked against the grammar. A bad row raises an error naming the row and the value."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("decision", "repository", "digest") if c not in frame.columns]
    if missing:
        raise DregError(f"{path}: missing columns {missing}; export with export_candidates first")
    frame["decision"] = frame["decision"].str.strip().str.lower()
    for number, row in enumerate(frame.to_dict("records"), start=2):  # row 1 is the header
        where = f"{path} row {number}"
        if row["decision"] not in DECISIONS:
            raise DregError(f"{where}: decision {row['decision']!r} is not one of 'delete', 'keep' or empty")
        try:
            check_name(row["repository"].strip())
            check_digest(row["digest"].strip())
            for tag in str(row.get("tags", "")).split():
                check_tag(tag)
        except ValueError as exc:
            raise DregError(f"{where}: {exc}") from None
    frame["repository"] = frame["repository"].str.strip()
    frame["digest"] = frame["digest"].str.strip()
    frame["tags"] = (
        frame["tags"].map(lambda t: tuple(sorted(str(t).split()))) if "tags" in frame else [()] * len(frame)
    )
    if "created" in frame:
        frame["created"] = pd.to_datetime(frame["created"].replace("", None), utc=True, format="ISO8601")
    return frame


def validate_decisions(registry: Registry, decisions: pd.DataFrame) -> pd.DataFrame:
    """Check each reviewed row against the live registry: the digest is still there and every tag the
    reviewer saw still points at it. Adds ``ok`` and ``problem``; rows marked ``keep`` or left empty
    are not looked up."""
    oks: list[bool] = []
    problems: list[str] = []
    for row in decisions.to_dict("records"):
        if row["decision"] != "delete":
            oks.append(True)
            problems.append("")
            continue
        repo = registry.repository(row["repository"])
        try:
            if repo.check_manifest(row["digest"]) is None:
                oks.append(False)
                problems.append("the digest is no longer in the registry")
                continue
            moved = [t for t in row["tags"] if repo.check_manifest(t) != row["digest"]]
        except DregError as exc:
            oks.append(False)
            problems.append(f"{type(exc).__name__}: {exc}")
            continue
        oks.append(not moved)
        problems.append(f"tags moved or gone since the review: {', '.join(moved)}" if moved else "")
    out = decisions.copy()
    out["ok"] = oks
    out["problem"] = problems
    return out
