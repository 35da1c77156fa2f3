"""ipywidgets front ends for notebooks: the delete action, with a dry run and a confirmation step.

Example (in a notebook)::

    from dreg_frames.widgets import delete_widget
    delete_widget(registry, result, candidates=stale(result.images))
"""

from __future__ import annotations

import html
import os
from typing import Any

import ipywidgets as widgets
import pandas as pd

from .analysis._frames import as_frame, digest_table
from .client.registry import Registry
from .delete import candidate_pairs, execute, plan_delete

__all__ = ["DeleteWidget", "delete_widget"]


def _human(size: Any) -> str:
    if size is None or pd.isna(size):
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


class DeleteWidget(widgets.VBox):  # type: ignore[misc]
    """Pick a repository and a digest, see what goes with it, and delete it after a confirmation.

    The dry-run box starts ticked; the delete button only asks; the confirm button acts, on the
    digest shown, after re-checking its tags in the registry (see :func:`dreg_frames.delete.execute`).
    ``frame`` shows the candidates with a ``deleted`` column that the widget keeps up to date.
    """

    def __init__(
        self,
        registry: Registry,
        source: Any,
        candidates: pd.DataFrame | None = None,
        audit_log: str | os.PathLike[str] = "audit.csv",
    ) -> None:
        self.registry = registry
        self.source = source
        self.audit_log = audit_log
        images = as_frame(
            source, ["repository", "tag", "digest", "created"], "delete_widget", ("images", "layers")
        )
        table = digest_table(images)
        if candidates is not None:
            wanted = set(candidate_pairs(candidates))
            keys = list(zip(table["repository"], table["digest"], strict=True))
            table = table[[k in wanted for k in keys]]
        self.frame = table.reset_index(drop=True).assign(deleted=False)
        self._pending: pd.DataFrame | None = None

        self.repository = widgets.Dropdown(description="Repository", layout=widgets.Layout(width="60%"))
        self.digest = widgets.Dropdown(description="Digest", layout=widgets.Layout(width="90%"))
        self.details = widgets.HTML()
        self.dry_run = widgets.Checkbox(value=True, description="Dry run (change nothing, log only)")
        self.delete_button = widgets.Button(description="Delete…", button_style="danger", icon="trash")
        self.confirm_button = widgets.Button(description="Confirm delete", button_style="danger")
        self.cancel_button = widgets.Button(description="Cancel")
        self.confirm_box = widgets.HBox([self.confirm_button, self.cancel_button])
        self.confirm_box.layout.display = "none"
        self.output = widgets.Output()
        self.table_view = widgets.HTML()

        self.repository.observe(self._on_repository, names="value")
        self.digest.observe(self._on_digest, names="value")
        self.delete_button.on_click(self._on_delete)
        self.confirm_button.on_click(self._on_confirm)
        self.cancel_button.on_click(self._on_cancel)
        super().__init__(
            [
                self.repository,
                self.digest,
                self.details,
                widgets.HBox([self.dry_run, self.delete_button]),
                self.confirm_box,
                self.output,
                self.table_view,
            ]
        )
        repositories = sorted(self.frame["repository"].unique())
        self.repository.options = repositories
        # ipywidgets leaves the value unset when options are assigned: pick the first one ourselves.
        if repositories:
            self.repository.value = repositories[0]
        self._refresh_table()

    # -- messages --------------------------------------------------------------------------------
    def say(self, text: str) -> None:
        """Append a line to the widget's output area (works with and without a kernel)."""
        self.output.append_stdout(text.rstrip("\n") + "\n")

    @property
    def messages(self) -> str:
        return "".join(o.get("text", "") for o in self.output.outputs)

    # -- selection -------------------------------------------------------------------------------
    def _rows(self, repository: str | None) -> pd.DataFrame:
        return self.frame[(self.frame["repository"] == repository) & ~self.frame["deleted"]]

    def _on_repository(self, _: Any = None) -> None:
        rows = self._rows(self.repository.value).sort_values("created")
        options = [
            (f"{d[:19]}…  {', '.join(t) or '(untagged)'}  {c:%Y-%m-%d}" if not pd.isna(c) else d, d)
            for d, t, c in zip(rows["digest"], rows["tags"], rows["created"], strict=True)
        ]
        self.digest.options = options
        if options and self.digest.value != options[0][1]:
            self.digest.value = options[0][1]  # observed: shows its details
        else:
            self._on_digest()

    def _on_digest(self, _: Any = None) -> None:
        self._cancel_pending()
        if not self.digest.value:
            self.details.value = "<i>nothing to delete here</i>"
            return
        plan = plan_delete(self.source, [(self.repository.value, self.digest.value)])
        row = plan.iloc[0]
        created = f"{row['created']:%Y-%m-%d %H:%M UTC}" if not pd.isna(row["created"]) else "unknown"
        self.details.value = (
            f"<b>{html.escape(str(row['digest']))}</b><br>"
            f"tags that go with it: <b>{html.escape(', '.join(row['tags']) or '(none)')}</b><br>"
            f"created {created}; size {_human(row['size'])}; "
            f"garbage collection would free {_human(row['reclaimable_bytes'])}"
        )

    # -- actions ---------------------------------------------------------------------------------
    def _cancel_pending(self) -> None:
        self._pending = None
        self.confirm_box.layout.display = "none"

    def _on_delete(self, _: Any = None) -> None:
        if not self.digest.value:
            self.say("Pick a digest first.")
            return
        plan = plan_delete(self.source, [(self.repository.value, self.digest.value)], registry=self.registry)
        row = plan.iloc[0]
        if row["blocked"]:
            self.say(f"Not deleting {row['digest']}: " + "; ".join(row["warnings"]))
            self._cancel_pending()
            return
        self._pending = plan
        mode = "DRY RUN: nothing will change" if self.dry_run.value else "this deletes it from the registry"
        self.say(
            f"Confirm: delete {row['repository']}@{row['digest']} with tags {', '.join(row['tags'])} "
            f"({_human(row['reclaimable_bytes'])} freed by GC)? {mode}."
        )
        self.confirm_box.layout.display = "flex"

    def _on_confirm(self, _: Any = None) -> None:
        plan, self._pending = self._pending, None
        self.confirm_box.layout.display = "none"
        if plan is None:
            self.say("Nothing is waiting for confirmation.")
            return
        row = plan.iloc[0]
        if (row["repository"], row["digest"]) != (self.repository.value, self.digest.value):
            self.say("The selection changed since you asked; nothing deleted.")
            return
        done = execute(self.registry, plan, dry_run=bool(self.dry_run.value), audit_log=self.audit_log).iloc[
            0
        ]
        outcome, error = done["outcome"], done["error"]
        if outcome == "deleted":
            self.say(f"Deleted {row['repository']}@{row['digest']} (tags {', '.join(row['tags'])}).")
            mask = (self.frame["repository"] == row["repository"]) & (self.frame["digest"] == row["digest"])
            self.frame.loc[mask, "deleted"] = True
            self._refresh_table()
            self._on_repository()
        elif outcome == "dry run":
            self.say(
                f"Dry run: {row['repository']}@{row['digest']} would be deleted; logged to {self.audit_log}."
            )
        else:
            self.say(f"Not deleted ({outcome}): {error}")

    def _on_cancel(self, _: Any = None) -> None:
        self._cancel_pending()
        self.say("Cancelled; nothing deleted.")

    def _refresh_table(self) -> None:
        shown = self.frame.assign(tags=self.frame["tags"].map(", ".join))
        self.table_view.value = shown.to_html(index=False, max_rows=50, escape=True)


def delete_widget(
    registry: Registry,
    frame: Any,
    candidates: pd.DataFrame | None = None,
    audit_log: str | os.PathLike[str] = "audit.csv",
) -> DeleteWidget:
    """The delete action for a notebook: ``frame`` is a Crawl (or its images/layers), ``candidates``
    any frame with repository and digest columns (``stale``/``duplicates`` output) to choose from."""
    return DeleteWidget(registry, frame, candidates, audit_log)
