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
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from .analysis._frames import as_frame
from .analysis.referrers import tag_level_subjects
from .analysis.usage import reclaimable_each
from .client.artifacts import tag_schema_subject
from .client.errors import DregError, RepositoryNotFound, UnsupportedOperation
from .client.manifests import ImageIndex
from .client.mediatypes import INDEX_TYPES
from .client.reference import check_digest, check_name, check_tag
from .client.registry import Registry
from .client.repository import Repository

__all__ = ["AUDIT_COLUMNS", "AuditLogError", "candidate_pairs", "execute", "plan_delete", "plan_untag"]

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
    "action",
]
# Logs written before untag existed have no action column: appended to in their own layout.
_LEGACY_AUDIT = AUDIT_COLUMNS[:-1]
PLAN_COLUMNS = [
    "action",
    "repository",
    "digest",
    "tags",
    "n_tags",
    "kind",
    "referrer_of",
    "created",
    "size",
    "reclaimable_bytes",
    "warnings",
    "blocked",
    "untagged",
]
REFERRER_MODES = ("cascade", "keep", "block")


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


def plan_delete(
    frame: Any,
    digests: Any,
    *,
    registry: Registry | None = None,
    referrers: str = "cascade",
    allow_referrer_delete: bool = False,
) -> pd.DataFrame:
    """One row per (repository, digest) to delete, with everything that goes with it.

    ``frame``: a Crawl or its layers frame (images work too, without byte figures). ``digests``:
    digests, ``(repository, digest)`` pairs, or a frame with those columns (``stale`` output).
    Columns: ``action`` (``delete``), ``tags`` (every tag that disappears: the registry deletes all
    tags on a digest), ``kind``, ``referrer_of``, ``created``, ``size``, ``reclaimable_bytes`` (what
    GC frees if this row alone is deleted), ``warnings`` and ``blocked`` (True when a warning means
    :func:`execute` will not delete it: unknown to the crawl, a platform manifest of an index that
    stays, a signature of an image that stays). With ``registry``, also warns when the registry
    refuses deletes.

    Signatures, attestations, SBOMs and referrers tag-schema indexes follow their image:
    ``referrers="cascade"`` (the default) adds a row for each, right after its subject's, with
    ``referrer_of`` set (the manifests a tag-schema index lists too: they would be left untagged);
    ``"keep"`` leaves them, with a warning that they become orphans; ``"block"`` refuses to delete
    an image that has any. Deleting a referrer of an image that stays is blocked unless
    ``allow_referrer_delete=True``.

    Example::

        plan = plan_delete(result, stale(result.images), registry=registry)
        plan[["action", "repository", "digest", "tags", "kind", "referrer_of", "reclaimable_bytes"]]
    """
    if referrers not in REFERRER_MODES:
        raise ValueError(f"referrers must be one of {REFERRER_MODES}, got {referrers!r}")
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
    kinds = _tag_kinds(source)
    links = tag_level_subjects(source)
    requested = _pairs(digests, known)
    planned: list[tuple[str, str, str | None, bool]] = []  # (repository, digest, referrer_of, untagged)
    for repository, digest in requested:
        planned.append((repository, digest, None, False))
        if referrers == "cascade":
            planned.extend(_cascade(repository, digest, known, links))
    order = list(dict.fromkeys((r, d) for r, d, _, _ in planned))
    going = set(order)
    has_layers = "layer_digest" in source
    rows: list[dict[str, Any]] = []
    refusing: dict[str, bool | None] = {}
    first = {(r, d): (of, untagged) for r, d, of, untagged in reversed(planned)}
    for repository, digest in order:
        referrer_of, untagged = first[(repository, digest)]
        mine = known[(known["repository"] == repository) & (known["digest"] == digest)]
        warnings: list[str] = []
        blocked = False
        parents = known[
            (known["manifest_digest"] == digest)
            & (known["digest"] != digest)
            & (known["repository"] == repository)
        ]
        staying = parents[~parents["digest"].isin({d for r, d in going if r == repository})]
        if mine.empty and parents.empty:
            warnings.append("digest unknown to the crawl: its tags were never shown, so it is not deleted")
            blocked = True
        for parent_digest, group in staying.groupby("digest"):
            tags = ", ".join(sorted(group["tag"].unique()))
            warnings.append(
                f"a platform manifest of index {parent_digest} (tags {tags}), which stays: deleting it "
                "breaks that index"
            )
            blocked = True
        subject = links.get((repository, digest))
        if subject is not None and referrer_of is None and not allow_referrer_delete:
            holders = _holders(known, repository, subject) - {digest}
            if holders and not holders <= {d for r, d in going if r == repository}:
                named = ", ".join(sorted(known[known["digest"].isin(holders)]["tag"].unique()))
                warnings.append(
                    f"a {kinds.get((repository, digest), 'referrer')} of {subject} (tags {named}), which "
                    "stays: pass allow_referrer_delete=True to delete it anyway"
                )
                blocked = True
        dependants = _dependants(repository, digest, known, links)
        if dependants and referrers == "keep":
            warnings.append(
                f"{len(dependants)} signature/attestation/SBOM digests stay and become orphans: "
                + ", ".join(sorted(dependants))
            )
        if dependants and referrers == "block":
            warnings.append(
                f"has {len(dependants)} signatures/attestations/SBOMs ({', '.join(sorted(dependants))}): "
                "referrers='block' keeps the image"
            )
            blocked = True
        if registry is not None and repository:
            if repository not in refusing:
                refusing[repository] = registry.repository(repository).deletes_enabled()
            if refusing[repository] is False:
                warnings.append("the registry refuses deletes (storage.delete.enabled is false)")
                blocked = True
        size = None
        if has_layers and not (mine.empty and parents.empty):
            under = source[(source["repository"].astype(str) == repository)]
            mask = under["digest"].astype(str) == digest if not mine.empty else None
            if mask is None:
                mask = under["manifest_digest"].astype(str) == digest
            one = under[mask]
            one = one[one["tag"].astype(str) == str(one["tag"].iloc[0])]
            size = int(one.drop_duplicates(["manifest_digest", "layer_index"])["layer_size"].sum())
        rows.append(
            {
                "action": "delete",
                "repository": repository,
                "digest": digest,
                "tags": tuple(sorted(mine["tag"].unique())),
                "n_tags": mine["tag"].nunique(),
                "kind": kinds.get((repository, digest), "image" if untagged else None),
                "referrer_of": referrer_of,
                "created": mine["created"].max() if not mine.empty else pd.NaT,
                "size": size,
                "reclaimable_bytes": None,
                "warnings": tuple(warnings),
                "blocked": blocked,
                "untagged": untagged,
            }
        )
    plan = pd.DataFrame(rows, columns=PLAN_COLUMNS)
    if has_layers and len(plan):
        counted = (plan["n_tags"] > 0) | plan["untagged"]
        pairs = list(zip(plan.loc[counted, "repository"], plan.loc[counted, "digest"], strict=True))
        plan.loc[counted, "reclaimable_bytes"] = reclaimable_each(source, pairs)
    for column in ("size", "reclaimable_bytes"):
        plan[column] = pd.to_numeric(plan[column]).astype("Int64")
    plan["created"] = pd.to_datetime(plan["created"], utc=True)
    return plan


def plan_untag(frame: Any, tags: Any, *, registry: Registry | None = None) -> pd.DataFrame:
    """Rows that remove single tags (``action="untag"``), leaving the digest and its other tags.

    ``tags``: ``(repository, tag)`` pairs, ``"repository:tag"`` strings, or a frame with
    ``repository`` and ``tag`` columns. ``reclaimable_bytes`` is 0 while other tags keep the digest;
    for its last tag, what GC with ``--delete-untagged`` would free. :func:`execute` re-checks that
    the tag still points at the planned digest, then untags (see :meth:`Repository.untag`).

    Example::

        execute(registry, plan_untag(result, [("team/app", "rc-1")]), dry_run=False)
    """
    source = as_frame(frame, ["repository", "tag", "digest", "created"], "plan_untag", ("layers", "images"))
    known = pd.DataFrame(
        {c: source[c].astype(str) for c in ("repository", "tag", "digest")}
    ).drop_duplicates()
    if isinstance(tags, pd.DataFrame):
        wanted = list(zip(tags["repository"].astype(str), tags["tag"].astype(str), strict=True))
    else:
        items = [tags] if isinstance(tags, str) else list(tags)
        wanted = [_repository_tag(i) for i in items]
    kinds = _tag_kinds(source)
    rows: list[dict[str, Any]] = []
    refusing: dict[str, bool | None] = {}
    for repository, tag in dict.fromkeys(wanted):
        check_name(repository)
        check_tag(tag)
        on = known[(known["repository"] == repository) & (known["tag"] == tag)]
        warnings: list[str] = []
        blocked = on.empty
        digest = str(on["digest"].iloc[0]) if not on.empty else ""
        if on.empty:
            warnings.append("tag unknown to the crawl: nothing reviewed, nothing untagged")
        others = known[
            (known["repository"] == repository) & (known["digest"] == digest) & (known["tag"] != tag)
        ]
        if registry is not None:
            if repository not in refusing:
                refusing[repository] = registry.repository(repository).deletes_enabled()
            if refusing[repository] is False:
                warnings.append("the registry refuses deletes (storage.delete.enabled is false)")
                blocked = True
        freed = 0
        if not on.empty and others.empty and "layer_digest" in source:
            freed = reclaimable_each(source, [(repository, digest)])[0]
        rows.append(
            {
                "action": "untag",
                "repository": repository,
                "digest": digest,
                "tags": (tag,),
                "n_tags": 1,
                "kind": kinds.get((repository, digest)),
                "referrer_of": None,
                "created": source.loc[on.index, "created"].max() if not on.empty else pd.NaT,
                "size": None,
                "reclaimable_bytes": freed,
                "warnings": tuple(warnings),
                "blocked": blocked,
                "untagged": False,
            }
        )
    plan = pd.DataFrame(rows, columns=PLAN_COLUMNS)
    for column in ("size", "reclaimable_bytes"):
        plan[column] = pd.to_numeric(plan[column]).astype("Int64")
    plan["created"] = pd.to_datetime(plan["created"], utc=True)
    return plan


def _repository_tag(item: Any) -> tuple[str, str]:
    if isinstance(item, str):
        repository, _, tag = item.rpartition(":")
        return repository, tag
    return str(item[0]), str(item[1])


def _tag_kinds(source: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(repository, tagged digest) -> what it is, from the row of the digest's own manifest."""
    if "kind" not in source:
        return {}
    own = source[source["manifest_digest"].astype(str) == source["digest"].astype(str)]
    kinds = dict(
        zip(
            zip(own["repository"].astype(str), own["digest"].astype(str), strict=True),
            own["kind"].astype(str),
            strict=True,
        )
    )
    for repository, digest, media_type, tag in zip(
        source["repository"].astype(str),
        source["digest"].astype(str),
        source["media_type"].astype(str) if "media_type" in source else [""] * len(source),
        source["tag"].astype(str),
        strict=True,
    ):
        if media_type in INDEX_TYPES:
            kinds[(repository, digest)] = "referrers-index" if tag_schema_subject(tag) else "index"
    return kinds


def _holders(known: pd.DataFrame, repository: str, subject: str) -> set[str]:
    """Tagged digests of ``repository`` that are ``subject`` or hold it (an index of it)."""
    here = known[known["repository"] == repository]
    return set(here.loc[(here["digest"] == subject) | (here["manifest_digest"] == subject), "digest"])


def _dependants(
    repository: str, digest: str, known: pd.DataFrame, links: dict[tuple[str, str], str]
) -> set[str]:
    """Tagged digests whose subject is ``digest`` or a manifest under it."""
    here = known[(known["repository"] == repository) & (known["digest"] == digest)]
    members = {digest, *here["manifest_digest"]}
    return {d for (r, d), subject in links.items() if r == repository and subject in members and d != digest}


def _cascade(
    repository: str,
    digest: str,
    known: pd.DataFrame,
    links: dict[tuple[str, str], str],
    depth: int = 0,
) -> list[tuple[str, str, str | None, bool]]:
    """The rows deleting ``digest`` brings along: its referrers (recursively: the signature of its
    SBOM), each followed by the untagged manifests a tag-schema index of them lists."""
    out: list[tuple[str, str, str | None, bool]] = []
    if depth > 4:
        return out
    here = known[known["repository"] == repository]
    tagged = set(here["digest"])
    for referrer in sorted(_dependants(repository, digest, known, links)):
        out.append((repository, referrer, digest, False))
        listed = here[(here["digest"] == referrer) & (here["manifest_digest"] != referrer)]
        for child in sorted(set(listed["manifest_digest"]) - tagged):
            out.append((repository, child, referrer, True))
        out.extend(_cascade(repository, referrer, known, links, depth + 1))
    return out


def _open_audit(path: Path) -> list[str]:
    """Make sure ``path`` is an audit log we may append to (created with a header if new); returns
    its columns."""
    if path.is_dir():
        raise AuditLogError(f"audit log {path} is a directory; name a CSV file")
    try:
        if path.exists() and path.stat().st_size > 0:
            with path.open(newline="") as handle:
                header = next(csv.reader(handle), [])
            if header not in (AUDIT_COLUMNS, _LEGACY_AUDIT):
                raise AuditLogError(
                    f"{path} is not a dreg-frames audit log (header {header[:12]}); refusing to append"
                )
            return header
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", newline="") as handle:
            csv.writer(handle).writerow(AUDIT_COLUMNS)
        return list(AUDIT_COLUMNS)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise AuditLogError(f"audit log {path} cannot be used: {exc.__class__.__name__}: {exc}") from None


def _append(path: Path, row: dict[str, Any], columns: list[str] = AUDIT_COLUMNS) -> None:
    # One row, flushed and synced at once: the log is complete even if the process dies mid-plan.
    if "action" not in columns and row.get("action", "delete") != "delete":
        row = {**row, "outcome": f"{row['action']}: {row['outcome']}"}
    with path.open("a", newline="") as handle:
        csv.writer(handle).writerow([row[c] for c in columns])
        handle.flush()
        os.fsync(handle.fileno())


def _current_tags(
    registry: Registry, repository: str, digest: str
) -> tuple[dict[str, str | None], list[str]]:
    """Every tag of the repository resolved now (HEAD), and those pointing at ``digest``.

    Anything that stops the tags from being read raises: a re-check that did not run is no reason
    to delete (a tags list answering 500 is not an empty one)."""
    repo = registry.repository(repository)
    try:
        names = repo.tags()
    except RepositoryNotFound:
        names = []  # Distribution's answer once the last tag of a repository is gone
    resolved = {tag: repo.check_manifest(tag) for tag in names}
    return resolved, sorted(t for t, d in resolved.items() if d == digest)


class _Context:
    """What one :func:`execute` call learns once: content-addressed index children, and whether
    each repository accepts deletes."""

    def __init__(self) -> None:
        self.children: dict[str, frozenset[str]] = {}
        self.deletes: dict[str, bool | None] = {}

    def refuses(self, repo: Repository) -> bool:
        """Whether the registry refuses deletes in ``repo`` (asked once per repository)."""
        if repo.name not in self.deletes:
            self.deletes[repo.name] = repo.deletes_enabled()
        return self.deletes[repo.name] is False

    def child_digests(self, repo: Repository, digest: str) -> frozenset[str]:
        """Digests listed under ``digest`` if it is an index (nested indexes included), else none."""
        if digest not in self.children:
            found: set[str] = set()
            todo, seen = [digest], {digest}
            while todo and len(seen) <= 64:  # a hostile chain of indexes stays finite
                manifest = repo.get_manifest(todo.pop())
                if isinstance(manifest, ImageIndex):
                    for child in manifest.manifests:
                        found.add(child.digest)
                        if child.media_type in INDEX_TYPES and child.digest not in seen:
                            seen.add(child.digest)
                            todo.append(child.digest)
            self.children[digest] = frozenset(found)
        return self.children[digest]


def execute(
    registry: Registry,
    plan: pd.DataFrame,
    dry_run: bool = True,
    audit_log: str | os.PathLike[str] = "audit.csv",
    *,
    user: str | None = None,
) -> pd.DataFrame:
    """Carry out a plan from :func:`plan_delete`; every row is logged, whatever happens.

    For each row, against the live registry (the plan's ``blocked`` column can only add a refusal,
    never lift one): skip it if the plan shows no tag on the digest, if the registry refuses
    deletes, if the repository's tags cannot be re-read, if a planned tag now points elsewhere or a
    tag the plan did not list now points at the digest, or if the digest is a platform manifest of
    an index still tagged there. Then DELETE by digest (unless ``dry_run``, the default) and confirm
    the digest and its tags are gone. Returns the plan with ``outcome`` and ``error`` columns.

    The audit log gets one row per plan row; a row that sends a DELETE gets a ``deleting`` row
    first, written before the request goes out, so a delete is never missing from the log.
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
    columns = _open_audit(path)
    who = user or getpass.getuser()
    context = _Context()
    outcomes: list[str] = []
    errors: list[str] = []
    for row in plan.to_dict("records"):
        repository, digest = str(row["repository"]), str(row["digest"])
        planned = tuple(row["tags"])
        size = row.get("reclaimable_bytes")
        fields = {
            "user": who,
            "registry": registry.client.host,
            "repository": repository,
            "digest": digest,
            "tags": " ".join(planned),
            "bytes": "" if size is None or pd.isna(size) else int(size),
            "dry_run": dry_run,
            "action": str(row.get("action") or "delete"),
        }

        def log(outcome: str, error: str, fields: dict[str, Any] = fields) -> None:
            now = datetime.now(timezone.utc).isoformat(timespec="seconds")
            _append(path, {**fields, "time_utc": now, "outcome": outcome, "error": error}, columns)

        outcome, error = _one(registry, repository, digest, planned, row, dry_run, context, log)
        log(outcome, error)
        outcomes.append(outcome)
        errors.append(error)
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
    context: _Context,
    log: Callable[[str, str], None],
) -> tuple[str, str]:
    if row.get("blocked"):
        return "blocked", "; ".join(row.get("warnings") or ())
    if row.get("action", "delete") == "untag":
        return _untag(registry, repository, digest, planned, dry_run, context, log)
    if not planned and not row.get("untagged"):
        # plan_delete blocks every row without tags (unknown to the crawl, or an index's child);
        # only the manifests a cascaded tag-schema index listed are planned untagged on purpose,
        # and the re-check below still refuses them if a tag or a staying index names them.
        return "blocked", "the plan shows no tag on this digest: nothing reviewed, nothing deleted"
    try:
        check_name(repository)
        check_digest(digest)
        repo = registry.repository(repository)
        if context.refuses(repo):
            return "refused", "the registry refuses deletes (storage.delete.enabled is false)"
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
        for parent in sorted({d for d in resolved.values() if d is not None and d != digest}):
            if digest in context.child_digests(repo, parent):
                tags = ", ".join(sorted(t for t, d in resolved.items() if d == parent))
                return "skipped", (
                    f"a platform manifest of index {parent} (tags {tags}), which stays: deleting it "
                    "breaks that index"
                )
    except DregError as exc:
        return "skipped", f"the re-check could not run, so nothing was deleted: {type(exc).__name__}: {exc}"
    if dry_run:
        return "dry run", ""
    log("deleting", "about to send the DELETE; the next row for this digest says how it went")
    try:
        repo.delete_manifest(digest)
    except UnsupportedOperation as exc:
        return "refused", f"the registry refuses deletes ({exc.code or exc.status}): enable storage.delete"
    except DregError as exc:
        return "error", f"{type(exc).__name__}: {exc}"
    except BaseException:
        log("interrupted", "interrupted while the DELETE was in flight: check whether the digest is gone")
        raise
    try:
        if repo.check_manifest(digest) is not None:
            return "error", "the registry accepted the delete but still serves the digest"
        still = [t for t in now_on_digest if repo.check_manifest(t) == digest]
    except DregError as exc:
        return "error", f"the registry accepted the delete; checking it afterwards failed: {exc}"
    except BaseException:
        log("interrupted", "the registry accepted the delete; interrupted while checking it")
        raise
    if still:
        return "error", f"tags still resolve to the digest: {', '.join(still)}"
    return "deleted", ""


def _untag(
    registry: Registry,
    repository: str,
    digest: str,
    planned: tuple[str, ...],
    dry_run: bool,
    context: _Context,
    log: Callable[[str, str], None],
) -> tuple[str, str]:
    """One ``untag`` row: re-check the tag still names the planned digest, then remove the tag only."""
    if len(planned) != 1:
        return "blocked", "an untag row names exactly one tag"
    (tag,) = planned
    try:
        check_name(repository)
        check_tag(tag)
        repo = registry.repository(repository)
        if context.refuses(repo):
            # the fallback would leave the tag on a placeholder it cannot delete
            return "refused", "the registry refuses deletes (storage.delete.enabled is false)"
        now = repo.check_manifest(tag)
    except DregError as exc:
        return "skipped", f"the re-check could not run, so nothing was untagged: {type(exc).__name__}: {exc}"
    if now is None:
        return "already gone", ""
    if now != digest:
        return "skipped", f"tag moved since the plan: {tag} -> {now}"
    if dry_run:
        return "dry run", ""
    log("untagging", "about to remove the tag; the next row for it says how it went")
    try:
        how = repo.untag(tag)
        after = repo.check_manifest(tag)
    except DregError as exc:
        return "error", f"{type(exc).__name__}: {exc}"
    except BaseException:
        log("interrupted", "interrupted while untagging: check the tag")
        raise
    if after is not None:
        return "error", f"the tag still resolves to {after}"
    return "untagged", f"via {how}"
