"""The cleanup widget for notebooks: a sortable, filterable table of delete candidates, a dry run,
one confirmation per batch, per-row outcomes and a live view of the audit log.

Example (in a notebook)::

    from dreg_frames.widgets import delete_widget
    cleanup = delete_widget(registry, result, candidates=stale(result.images))
    cleanup                       # tick rows, "Delete selected…", then confirm

Safety rules, each tested: the dry-run box starts ticked; a question is asked for exactly the rows
ticked and in the mode (dry run or real) of that moment, and changing the box or the selection
cancels it; the confirm button says what it will do; after a real delete the box is ticked again;
the registry's ``latest`` and each repository's newest image are flagged before anyone confirms.
Deleting goes through :func:`dreg_frames.delete.execute`, which re-checks every tag first.

The front end (``static/cleanup.js``, an anywidget module) keeps keyboard input inside the widget
(``data-lm-suppress-shortcuts``), so typing in it never triggers JupyterLab's notebook shortcuts.
"""

from __future__ import annotations

import html
import itertools
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets
import pandas as pd
import traitlets

from .analysis._frames import as_frame, digest_table
from .analysis.usage import reclaimable
from .client.registry import Registry
from .delete import AUDIT_COLUMNS, candidate_pairs, execute, plan_delete
from .display import human_bytes, tags_text

__all__ = ["CleanupWidget", "DeleteWidget", "audit_frame", "delete_widget"]

_STATIC = Path(__file__).parent / "static"
_LOG_LINES = 50  # the message log keeps this many lines: a long session must not grow the page
_AUDIT_ROWS = 30  # rows of the audit log the widget shows (newest first)
_tokens = itertools.count(1)


def audit_frame(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The audit log as a frame (empty, with its columns, when there is no log yet)."""
    target = Path(path)
    if not target.exists() or target.stat().st_size == 0:
        return pd.DataFrame(columns=AUDIT_COLUMNS)
    return pd.read_csv(target, dtype=str, keep_default_na=False)


def _along(plan: pd.DataFrame) -> str:
    """ ", with 3 signatures/attestations/SBOMs going along" for the referrers a plan cascades to."""
    if "referrer_of" not in plan:
        return ""
    along = plan[plan["referrer_of"].notna()]
    if along.empty:
        return ""
    kinds = ", ".join(
        f"{n} {k}" for k, n in along["kind"].fillna("artifact").value_counts().sort_index().items()
    )
    return f" (with {len(along)} that belong to them: {kinds})"


def _key(repository: str, digest: str) -> str:
    return f"{repository}@{digest}"


@dataclass(frozen=True)
class _Question:
    """What the user was asked: these rows, in this mode. Confirming acts on exactly this."""

    token: str
    dry_run: bool
    keys: tuple[str, ...]
    plan: pd.DataFrame


class CleanupWidget(anywidget.AnyWidget):
    """Delete candidates chosen in a table, after one confirmation per batch.

    Python drives it as the browser does: tick rows (``selected``, keys ``repository@digest``, or
    :meth:`select`), :meth:`ask`, then :meth:`confirm` or :meth:`cancel`. ``frame`` holds the
    candidates with each row's ``outcome`` and ``deleted`` flag; ``messages`` the log.
    """

    _esm = _STATIC / "cleanup.js"
    _css = _STATIC / "cleanup.css"

    title = traitlets.Unicode("").tag(sync=True)
    rows = traitlets.List(traitlets.Dict()).tag(sync=True)
    selected = traitlets.List(traitlets.Unicode()).tag(sync=True)
    dry_run = traitlets.Bool(True).tag(sync=True)
    question = traitlets.Dict().tag(sync=True)
    log = traitlets.List(traitlets.Unicode()).tag(sync=True)
    audit = traitlets.List(traitlets.Dict()).tag(sync=True)
    audit_path = traitlets.Unicode("").tag(sync=True)
    busy = traitlets.Bool(False).tag(sync=True)

    def __init__(
        self,
        registry: Registry,
        source: Any,
        candidates: pd.DataFrame | None = None,
        audit_log: str | os.PathLike[str] = "audit.csv",
        *,
        now: datetime | None = None,
    ) -> None:
        super().__init__()
        self.registry = registry
        self.source = source
        self.audit_log = Path(audit_log)
        self._pending: _Question | None = None
        images = as_frame(
            source, ["repository", "tag", "digest", "created"], "delete_widget", ("images", "layers")
        )
        # Every digest the crawl saw, candidate or not: "newest image of its repository" needs them all.
        self._all = digest_table(images)
        table = self._all
        if candidates is not None:
            wanted = set(candidate_pairs(candidates))
            keys = list(zip(table["repository"], table["digest"], strict=True))
            table = table[[k in wanted for k in keys]]
        table = table.reset_index(drop=True)
        # one plan row per table row (sizes only): referrers are planned when a batch is asked
        plan = plan_delete(
            source, list(zip(table["repository"], table["digest"], strict=True)), referrers="keep"
        )
        self.frame = table.assign(
            size=plan["size"].to_numpy(),
            reclaimable_bytes=plan["reclaimable_bytes"].to_numpy(),
            outcome="",
            deleted=False,
        )
        self._now = pd.Timestamp(now or datetime.now(timezone.utc))
        host = getattr(getattr(registry, "client", None), "host", "") or ""
        self.title = f"Cleanup of {host}" if host else "Cleanup"
        self.audit_path = str(self.audit_log)
        self.observe(self._on_dry_run, names="dry_run")
        self.observe(self._on_selected, names="selected")
        self.on_msg(self._on_message)
        self._sync_rows()
        self._load_audit()

    # -- state shown in the front end ------------------------------------------------------------
    def _newest(self) -> set[str]:
        """Keys of each repository's newest remaining image (trustworthy dates only)."""
        deleted = set(self.frame.loc[self.frame["deleted"], "digest"].map(str))
        alive = self._all[~self._all["digest"].isin(deleted) & ~self._all["created_suspect"]]
        if alive.empty:
            return set()
        newest = alive.loc[alive.groupby("repository")["created"].idxmax()]
        return {_key(r, d) for r, d in zip(newest["repository"], newest["digest"], strict=True)}

    def _risks(self, key: str, tags: tuple[str, ...], newest: set[str]) -> list[str]:
        risks = []
        if "latest" in tags:
            risks.append("tagged latest: pulls of :latest will fail")
        if key in newest:
            risks.append("the newest image of its repository")
        return risks

    def _sync_rows(self) -> None:
        newest = self._newest()
        rows = []
        for row in self.frame.to_dict("records"):
            key = _key(str(row["repository"]), str(row["digest"]))
            created = row["created"]
            known = not pd.isna(created)
            age = int((self._now - created).days) if known else None
            rows.append(
                {
                    "key": key,
                    "repository": str(row["repository"]),
                    "digest": str(row["digest"]),
                    "tags": list(row["tags"]),
                    "created": f"{created:%Y-%m-%d}" if known else "unknown",
                    "suspect": bool(row["created_suspect"]),
                    "age": age,
                    "size": None if pd.isna(row["size"]) else int(row["size"]),
                    "size_text": human_bytes(row["size"]),
                    "frees": None if pd.isna(row["reclaimable_bytes"]) else int(row["reclaimable_bytes"]),
                    "frees_text": human_bytes(row["reclaimable_bytes"]),
                    "risks": [] if row["deleted"] else self._risks(key, tuple(row["tags"]), newest),
                    "outcome": str(row["outcome"]),
                    "deleted": bool(row["deleted"]),
                }
            )
        self.rows = rows

    def _load_audit(self) -> None:
        frame = audit_frame(self.audit_log).tail(_AUDIT_ROWS).iloc[::-1]
        # "2026-01-02T03:04:05+00:00" -> "2026-01-02 03:04:05": the column says it is UTC
        frame["time_utc"] = frame["time_utc"].str.replace("T", " ").str.replace("+00:00", "", regex=False)
        self.audit = frame.to_dict("records")

    def say(self, text: str) -> None:
        """Add a line to the message log (the newest ``_LOG_LINES`` are kept)."""
        self.log = [*self.log, text][-_LOG_LINES:]

    @property
    def messages(self) -> str:
        return "\n".join(self.log)

    # -- selection -------------------------------------------------------------------------------
    def select(self, items: Any) -> None:
        """Tick rows: ``repository@digest`` keys or ``(repository, digest)`` pairs."""
        keys = [item if isinstance(item, str) else _key(*item) for item in items]
        known = {r["key"] for r in self.rows if not r["deleted"]}
        unknown = [k for k in keys if k not in known]
        if unknown:
            raise ValueError(f"not a candidate in this widget: {', '.join(unknown)}")
        self.selected = keys

    def _on_selected(self, change: dict[str, Any]) -> None:
        if self._pending is not None and tuple(change["new"]) != self._pending.keys:
            self._drop_question("The selection changed: the question was withdrawn; nothing done.")

    def _on_dry_run(self, change: dict[str, Any]) -> None:
        if self._pending is not None and bool(change["new"]) != self._pending.dry_run:
            mode = "ticked" if change["new"] else "unticked"
            self._drop_question(f"Dry run {mode}: the question was withdrawn; nothing done. Ask again.")

    def _drop_question(self, why: str | None = None) -> None:
        self._pending = None
        self.question = {}
        if why:
            self.say(why)

    # -- actions ---------------------------------------------------------------------------------
    def ask(self) -> None:
        """Ask to delete the ticked rows, in the current mode; nothing happens until :meth:`confirm`."""
        self._drop_question()
        alive = {r["key"] for r in self.rows if not r["deleted"]}
        keys = tuple(k for k in self.selected if k in alive)
        if not keys:
            self.say("Tick at least one candidate first.")
            return
        pairs = [tuple(k.split("@", 1)) for k in keys]
        plan = plan_delete(self.source, pairs, registry=self.registry)
        blocked = plan[plan["blocked"]]
        for row in blocked.to_dict("records"):
            self._set_outcome(str(row["repository"]), str(row["digest"]), "blocked")
            self.say(f"Not deleting {row['repository']}@{row['digest']}: " + "; ".join(row["warnings"]))
        plan = plan[~plan["blocked"]].reset_index(drop=True)
        if plan.empty:
            self._sync_rows()
            return
        mode = bool(self.dry_run)
        token = f"q{next(_tokens)}"
        keys = tuple(_key(str(r), str(d)) for r, d in zip(plan["repository"], plan["digest"], strict=True))
        self._pending = _Question(token, mode, keys, plan)
        newest = self._newest()
        risks = [
            f"{key}: {risk}"
            for key, tags in zip(keys, plan["tags"], strict=True)
            for risk in self._risks(key, tuple(tags), newest)
        ]
        freed = self._frees(plan)
        tags = [f"{r}:{t}" for r, ts in zip(plan["repository"], plan["tags"], strict=True) for t in ts]
        self.question = {
            "token": token,
            "dry_run": mode,
            "n": len(plan),
            "tags": tags,
            "bytes": freed,
            "bytes_text": human_bytes(freed),
            "risks": risks,
            "confirm_label": "Confirm dry run" if mode else "Delete for real",
            "text": (
                f"{'DRY RUN, nothing will change: ' if mode else 'This deletes from the registry: '}"
                f"{len(plan)} digest{'s' if len(plan) != 1 else ''}, {len(tags)} tag"
                f"{'s' if len(tags) != 1 else ''} go{_along(plan)}; garbage collection would free "
                f"{human_bytes(freed)}."
            ),
        }
        self.say("Asked: " + self.question["text"])
        shown = {r["key"] for r in self.rows}
        chosen = [k for k in keys if k in shown]  # referrers going along are not rows of the table
        if self.selected != chosen:
            self.selected = chosen  # blocked rows dropped; observer sees the same keys as pending

    def _frees(self, plan: pd.DataFrame) -> int | None:
        try:
            freed = reclaimable(self.source, plan[["repository", "digest"]])
        except (TypeError, ValueError):
            return None  # images without layers: no byte figures
        return int(freed["size"].sum())

    def confirm(self, token: str | None = None, dry_run: bool | None = None) -> pd.DataFrame | None:
        """Carry out the question asked (in its mode); ``token``/``dry_run`` come from the front end
        and must match the question, or nothing happens. Returns :func:`execute`'s frame."""
        pending = self._pending
        self._drop_question()
        if pending is None:
            self.say("Nothing is waiting for confirmation.")
            return None
        if token is not None and token != pending.token:
            self.say("That question was replaced by another; nothing done.")
            return None
        if (dry_run is not None and bool(dry_run) != pending.dry_run) or bool(
            self.dry_run
        ) != pending.dry_run:
            self.say("The dry-run box does not match the question; nothing done. Ask again.")
            return None
        self.busy = True
        try:
            done = execute(self.registry, pending.plan, dry_run=pending.dry_run, audit_log=self.audit_log)
        finally:
            self.busy = False
        counts: dict[str, int] = {}
        for row in done.to_dict("records"):
            outcome, error = str(row["outcome"]), str(row["error"] or "")
            counts[outcome] = counts.get(outcome, 0) + 1
            self._set_outcome(str(row["repository"]), str(row["digest"]), outcome, outcome == "deleted")
            where = f"{row['repository']}@{row['digest']} ({tags_text(tuple(row['tags']))})"
            if outcome == "deleted":
                self.say(f"Deleted {where}.")
            elif outcome == "dry run":
                self.say(f"Dry run: {where} would be deleted; logged to {self.audit_log}.")
            else:
                self.say(f"Not deleted ({outcome}): {where}: {error}")
        self.say("Done: " + ", ".join(f"{n} {o}" for o, n in counts.items()) + ".")
        self._sync_rows()
        self._load_audit()
        if not pending.dry_run:
            self.selected = []
            self.dry_run = True  # a real delete is never the default for the next batch
            self.say("Dry run is ticked again.")
        return done

    def cancel(self) -> None:
        """Withdraw the question; nothing is done."""
        if self._pending is None:
            self.say("Nothing to cancel.")
            return
        self._drop_question("Cancelled; nothing deleted.")

    def _set_outcome(self, repository: str, digest: str, outcome: str, deleted: bool = False) -> None:
        mask = (self.frame["repository"].astype(str) == repository) & (
            self.frame["digest"].astype(str) == digest
        )
        self.frame.loc[mask, "outcome"] = outcome
        if deleted:
            self.frame.loc[mask, "deleted"] = True

    def _on_message(self, _: Any, content: dict[str, Any], buffers: Any = None) -> None:
        action = content.get("action")
        if action == "ask":
            self.ask()
        elif action == "confirm":
            self.confirm(token=content.get("token"), dry_run=content.get("dry_run"))
        elif action == "cancel":
            self.cancel()

    # -- outside the live widget ------------------------------------------------------------------
    def audit_view(self) -> ipywidgets.HTML:
        """The audit log as a table that refreshes after every action of this widget."""
        view = ipywidgets.HTML()

        def refresh(_: Any = None) -> None:
            frame = pd.DataFrame(self.audit, columns=AUDIT_COLUMNS)
            if frame.empty:
                view.value = f"<p><i>no audit entries yet in {html.escape(str(self.audit_log))}</i></p>"
            else:
                view.value = frame.to_html(index=False, escape=True, classes="dreg-audit")

        refresh()
        self.observe(refresh, names="audit")
        return view

    def _repr_html_fallback(self) -> str:
        shown = self.frame.assign(tags=self.frame["tags"].map(tags_text))[
            ["repository", "tags", "created", "size", "outcome"]
        ]
        shown = shown.assign(
            size=shown["size"].map(human_bytes), created=shown["created"].dt.strftime("%Y-%m-%d")
        )
        return (
            f"<p><b>{html.escape(self.title)}</b> (static view: run the notebook to use the widget)</p>"
            + shown.to_html(index=False, escape=True)
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        # Renderers without the widget (GitHub, nbconvert without state) show this table instead.
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is not None:
            data, metadata = bundle
            data["text/html"] = self._repr_html_fallback()
            return data, metadata
        return bundle


DeleteWidget = CleanupWidget  # the name this widget had before it took batches


def delete_widget(
    registry: Registry,
    frame: Any,
    candidates: pd.DataFrame | None = None,
    audit_log: str | os.PathLike[str] = "audit.csv",
) -> CleanupWidget:
    """The cleanup widget for a notebook: ``frame`` is a Crawl (or its images/layers), ``candidates``
    any frame with repository and digest columns (``stale``/``duplicates`` output) to choose from."""
    return CleanupWidget(registry, frame, candidates, audit_log)
