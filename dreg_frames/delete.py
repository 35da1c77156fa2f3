"""Safe delete: plan what goes, re-check it right before deleting, and keep an append-only audit log.

The one action in the toolkit that destroys data. The Distribution registry deletes a manifest by
digest and every tag on it goes with it, so a plan lists every tag, and execution re-resolves the
repository's tags right before the DELETE: if any tag moved, or a tag the user did not see now
points at the digest, the row is skipped.

Example::

    plan = plan_delete(result, stale(result.images))
    execute(registry, plan)                       # dry run: only the audit log is written
    execute(registry, plan, dry_run=False, audit_log="audit.csv")
"""

from __future__ import annotations

import csv
import getpass
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from .analysis._frames import as_frame
from .analysis.usage import reclaimable_each
from .client.errors import DregError, UnsupportedOperation
from .client.reference import check_digest, check_name
from .client.registry import Registry

__all__ = ["AUDIT_COLUMNS", "AuditLogError", "candidate_pairs", "execute", "plan_delete"]

AUDIT_COLUMNS = [
    "time_utc",
    "user",
    "registry",
    "repository",
    "digest",
    "tags",
    "bytes",
    "dry_run",
    "outcome",
    "error",
]
PLAN_COLUMNS = [
    "repository",
    "digest",
    "tags",
    "n_tags",
    "created",
    "size",
    "reclaimable_bytes",
    "warnings",
    "blocked",
]


class AuditLogError(DregError):
    """The audit log cannot be appended to safely (not ours, or another header)."""


def candidate_pairs(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(repository, digest) pairs from a frame of candidates: any frame with ``repository`` and
    ``digest`` columns (``stale``, a policy's output, a reviewed CSV), or :func:`duplicates` output,
    whose ``digests`` are paired with the repositories of their ``references``."""
    if {"repository", "digest"} <= set(frame.columns):
        return list(zip(frame["repository"].astype(str), frame["digest"].astype(str), strict=True))
    if {"digests", "references"} <= set(frame.columns):
        pairs: list[tuple[str, str]] = []
        for digests, references in zip(frame["digests"], frame["references"], strict=True):
            repositories = sorted({str(ref).rsplit(":", 1)[0] for ref in references})
            pairs.extend((repository, str(digest)) for digest in digests for repository in repositories)
        return pairs
    raise ValueError("candidates need 'repository' and 'digest' columns (or duplicates() output)")


def _pairs(digests: Any, known: pd.DataFrame) -> list[tuple[str, str]]:
    if isinstance(digests, pd.DataFrame):
        items: list[Any] = list(candidate_pairs(digests))
    else:
        items = [digests] if isinstance(digests, str) else list(digests)
    pairs: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, str):
            where = known.loc[known["digest"] == item, "repository"].unique()
            if len(where) == 0:
                pairs.append(("", check_digest(item)))
            pairs.extend((str(r), item) for r in where)
        else:
            repository, digest = item
            pairs.append((check_name(str(repository)), check_digest(str(digest))))
    return list(dict.fromkeys(pairs))


def plan_delete(frame: Any, digests: Any, *, registry: Registry | None = None) -> pd.DataFrame:
    """One row per (repository, digest) to delete, with everything that goes with it.

    ``frame``: a Crawl or its layers frame (images work too, without byte figures). ``digests``:
    digests, ``(repository, digest)`` pairs, or a frame with those columns (``stale`` output).
    Columns: ``tags`` (every tag that disappears: the registry deletes all tags on a digest),
    ``created``, ``size``, ``reclaimable_bytes`` (what GC frees if this row alone is deleted),
    ``warnings`` and ``blocked`` (True when a warning means :func:`execute` will not delete it:
    unknown to the crawl, or a platform manifest of an index that stays). With ``registry``, also
    warns when the registry refuses deletes.
    """
    source = as_frame(
        frame,
        ["repository", "tag", "digest", "manifest_digest", "created"],
        "plan_delete",
        ("layers", "images"),
    )
    known = pd.DataFrame(
        {c: source[c].astype(str) for c in ("repository", "tag", "digest", "manifest_digest")}
    ).drop_duplicates()
    known["created"] = source["created"].loc[known.index]
    has_layers = "layer_digest" in source
    rows: list[dict[str, Any]] = []
    refusing: dict[str, bool | None] = {}
    for repository, digest in _pairs(digests, known):
        mine = known[(known["repository"] == repository) & (known["digest"] == digest)]
        warnings: list[str] = []
        blocked = False
        parents = known[
            (known["manifest_digest"] == digest)
            & (known["digest"] != digest)
            & (known["repository"] == repository)
        ]
        if mine.empty and parents.empty:
            warnings.append("digest unknown to the crawl: its tags were never shown, so it is not deleted")
            blocked = True
        for parent_digest, group in parents.groupby("digest"):
            tags = ", ".join(sorted(group["tag"].unique()))
            warnings.append(
                f"a platform manifest of index {parent_digest} (tags {tags}), which stays: deleting it "
                "breaks that index"
            )
            blocked = True
        if registry is not None and repository:
            if repository not in refusing:
                refusing[repository] = registry.repository(repository).deletes_enabled()
            if refusing[repository] is False:
                warnings.append("the registry refuses deletes (storage.delete.enabled is false)")
                blocked = True
        size = None
        if has_layers and not mine.empty:
            layers = source[
                (source["repository"].astype(str) == repository) & (source["digest"].astype(str) == digest)
            ]
            one = layers[layers["tag"].astype(str) == str(mine["tag"].iloc[0])]
            size = int(one.drop_duplicates(["manifest_digest", "layer_index"])["layer_size"].sum())
        rows.append(
            {
                "repository": repository,
                "digest": digest,
                "tags": tuple(sorted(mine["tag"].unique())),
                "n_tags": mine["tag"].nunique(),
                "created": mine["created"].max() if not mine.empty else pd.NaT,
                "size": size,
                "reclaimable_bytes": None,
                "warnings": tuple(warnings),
                "blocked": blocked,
            }
        )
    plan = pd.DataFrame(rows, columns=PLAN_COLUMNS)
    if has_layers and len(plan):
        known_rows = plan["n_tags"] > 0
        pairs = list(zip(plan.loc[known_rows, "repository"], plan.loc[known_rows, "digest"], strict=True))
        plan.loc[known_rows, "reclaimable_bytes"] = reclaimable_each(source, pairs)
    for column in ("size", "reclaimable_bytes"):
        plan[column] = pd.to_numeric(plan[column]).astype("Int64")
    plan["created"] = pd.to_datetime(plan["created"], utc=True)
    return plan


def _open_audit(path: Path) -> None:
    """Make sure ``path`` is an audit log we may append to (created with a header if new)."""
    if path.exists() and path.stat().st_size > 0:
        with path.open(newline="") as handle:
            header = next(csv.reader(handle), [])
        if header != AUDIT_COLUMNS:
            raise AuditLogError(
                f"{path} is not a dreg-frames audit log (header {header}); refusing to append"
            )
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as handle:
        csv.writer(handle).writerow(AUDIT_COLUMNS)


def _append(path: Path, row: dict[str, Any]) -> None:
    # One row, flushed and synced per digest: the log is complete even if the process dies mid-plan.
    with path.open("a", newline="") as handle:
        csv.writer(handle).writerow([row[c] for c in AUDIT_COLUMNS])
        handle.flush()
        os.fsync(handle.fileno())


def _current_tags(
    registry: Registry, repository: str, digest: str
) -> tuple[dict[str, str | None], list[str]]:
    """Every tag of the repository resolved now (HEAD), and those pointing at ``digest``."""
    repo = registry.repository(repository)
    try:
        names = repo.tags()
    except DregError:
        names = []
    resolved = {tag: repo.check_manifest(tag) for tag in names}
    return resolved, sorted(t for t, d in resolved.items() if d == digest)


def execute(
    registry: Registry,
    plan: pd.DataFrame,
    dry_run: bool = True,
    audit_log: str | os.PathLike[str] = "audit.csv",
    *,
    user: str | None = None,
) -> pd.DataFrame:
    """Carry out a plan from :func:`plan_delete`; one audit row per digest, whatever happens.

    For each row: re-resolve the repository's tags; skip the row if a planned tag now points
    elsewhere or a tag the plan did not list now points at the digest; DELETE by digest (unless
    ``dry_run``, the default); confirm the digest and its tags are gone. Returns the plan with
    ``outcome`` and ``error`` columns. Blocked rows are never deleted.
    """
    missing = [c for c in ("repository", "digest", "tags") if c not in plan.columns]
    if missing:
        raise ValueError(f"execute needs a plan from plan_delete; missing columns {missing}")
    if any(not isinstance(tags, (tuple, list)) for tags in plan["tags"]):
        # A plan read back from CSV has its tags as text: the user must see a fresh plan instead.
        raise ValueError(
            "execute needs the plan_delete frame itself (tags as tuples); plan again from a fresh crawl"
        )
    path = Path(audit_log)
    _open_audit(path)
    who = user or getpass.getuser()
    outcomes: list[str] = []
    errors: list[str] = []
    for row in plan.to_dict("records"):
        repository, digest = str(row["repository"]), str(row["digest"])
        planned = tuple(row["tags"])
        outcome, error = _one(registry, repository, digest, planned, row, dry_run)
        outcomes.append(outcome)
        errors.append(error)
        size = row.get("reclaimable_bytes")
        _append(
            path,
            {
                "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "user": who,
                "registry": registry.client.host,
                "repository": repository,
                "digest": digest,
                "tags": " ".join(planned),
                "bytes": "" if size is None or pd.isna(size) else int(size),
                "dry_run": dry_run,
                "outcome": outcome,
                "error": error,
            },
        )
    out = plan.copy()
    out["outcome"] = outcomes
    out["error"] = errors
    return out


def _one(
    registry: Registry,
    repository: str,
    digest: str,
    planned: tuple[str, ...],
    row: dict[Any, Any],
    dry_run: bool,
) -> tuple[str, str]:
    if row.get("blocked"):
        return "blocked", "; ".join(row.get("warnings") or ())
    try:
        check_name(repository)
        check_digest(digest)
        repo = registry.repository(repository)
        if repo.check_manifest(digest) is None:
            return "already gone", ""
        resolved, now_on_digest = _current_tags(registry, repository, digest)
        moved = [t for t in planned if resolved.get(t) not in (None, digest)]
        if moved:
            where = ", ".join(f"{t} -> {resolved[t]}" for t in moved)
            return "skipped", f"tag moved since the plan: {where}"
        unseen = [t for t in now_on_digest if t not in planned]
        if unseen:
            return "skipped", f"tags not in the plan now point at this digest: {', '.join(unseen)}"
        if dry_run:
            return "dry run", ""
        repo.delete_manifest(digest)
        if repo.check_manifest(digest) is not None:
            return "error", "the registry accepted the delete but still serves the digest"
        still = [t for t in now_on_digest if repo.check_manifest(t) == digest]
        if still:
            return "error", f"tags still resolve to the digest: {', '.join(still)}"
        return "deleted", ""
    except UnsupportedOperation as exc:
        return "refused", f"the registry refuses deletes ({exc.code or exc.status}): enable storage.delete"
    except DregError as exc:
        return "error", f"{type(exc).__name__}: {exc}"
