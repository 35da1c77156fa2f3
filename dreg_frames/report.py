"""The storage report: one self-contained HTML page to send, with the CSV tables and PNG plots beside it.

``index.html`` embeds its plots, sorts its tables with a few lines of inline script, and prints
cleanly (no table or plot split across pages), so it can be mailed or attached on its own.

Example::

    write_report(crawl(registry), "report/")     # report/index.html, report/*.csv, report/*.png
"""

from __future__ import annotations

import base64
import html
import io
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from .analysis import duplicates, plot_age, plot_layer_sharing, plot_storage, reclaimable, stale
from .analysis.referrers import integrity, signed
from .analysis.usage import TOTAL, storage_usage
from .crawl.result import Crawl
from .display import human_bytes, human_duration, tags_text
from .trend import trend_section

__all__ = ["figure_html", "human_bytes", "write_report"]

_DPI = 100
_TOP = 10  # rows of each table in the page; the CSVs beside it hold them all

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 62em;
  padding: 0 1em; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0; font-size: 1.7em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
.sub { color: #555; margin-top: .3em; }
.summary { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px; padding: .8em 1.2em; }
.summary p { margin: .3em 0; font-size: 1.05em; }
.cards { display: flex; gap: .8em; flex-wrap: wrap; margin: 1em 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: .6em 1em; min-width: 8.5em; }
.card b { display: block; font-size: 1.4em; }
.card.alert { border-color: #b3261e; color: #b3261e; }
table { border-collapse: collapse; margin: .4em 0 1.2em; font-size: .9em; }
caption { text-align: left; color: #555; padding: .2em 0; caption-side: top; }
th, td { border-bottom: 1px solid #eee; padding: .3em .8em; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
th.sortable { cursor: pointer; user-select: none; } th.sortable::after { content: " \\2195"; color: #999; }
th[aria-sort=ascending]::after { content: " \\25B2"; color: #222; }
th[aria-sort=descending]::after { content: " \\25BC"; color: #222; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
th, td.num, td.date { white-space: nowrap; }
code { font-size: .85em; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
.warn { color: #b3261e; }
@media print {
  body { margin: 0; max-width: none; font-size: 10pt; }
  table, figure, .summary, .cards, tr { break-inside: avoid; page-break-inside: avoid; }
  thead { display: table-header-group; }
  h2 { break-after: avoid; page-break-after: avoid; }
  th.sortable::after { content: ""; }
  a { color: inherit; text-decoration: none; }
}
"""

# Click a header to sort by it (numbers by their raw value in data-value); click again to reverse.
_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.classList.add("sortable");
    th.tabIndex = 0;
    function sort() {
      var asc = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (o) { o.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col], y = b.cells[col];
        var vx = x.dataset.value !== undefined ? parseFloat(x.dataset.value) : x.textContent;
        var vy = y.dataset.value !== undefined ? parseFloat(y.dataset.value) : y.textContent;
        var numbers = typeof vx === "number" && typeof vy === "number";
        var d = numbers ? vx - vy : String(vx).localeCompare(String(vy));
        return asc ? d : -d;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    }
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); }
    });
  });
});
"""


@dataclass(frozen=True)
class _Column:
    """One column of a page table: ``kind`` "bytes" shows KiB/MiB and sorts by the raw number."""

    source: str
    title: str
    kind: str = "text"  # text | bytes | int | date | tags


def _cell(value: Any, kind: str) -> str:
    missing = value is None or (not isinstance(value, (tuple, list)) and pd.isna(value))
    if kind == "bytes":
        raw = "" if missing else f' data-value="{int(value)}"'
        return f'<td class="num"{raw}>{html.escape(human_bytes(value))}</td>'
    if kind == "int":
        number = "" if missing else str(int(value))
        return f'<td class="num" data-value="{number or 0}">{number}</td>'
    if kind == "date":
        return f"<td class='date'>{'unknown' if missing else f'{pd.Timestamp(value):%Y-%m-%d}'}</td>"
    if kind == "tags":
        return f"<td>{html.escape(tags_text(value))}</td>"
    return f"<td>{'' if missing else html.escape(str(value))}</td>"


def _table(frame: pd.DataFrame, columns: list[_Column], what: str, csv: str, top: int = _TOP) -> str:
    """A sortable table of the first ``top`` rows, captioned "top 10 of 13" when cut."""
    if frame.empty:
        return "<p>None.</p>"
    shown = frame.head(top)
    cut = (
        f"top {len(shown)} of {len(frame)} {what}; all in {csv}"
        if len(frame) > len(shown)
        else f"{len(frame)} {what}"
    )
    head = "".join(
        f'<th class="{"num" if c.kind in ("bytes", "int") else ""}" scope="col">{html.escape(c.title)}</th>'
        for c in columns
    )
    rows = "".join(
        "<tr>" + "".join(_cell(row[c.source], c.kind) for c in columns) + "</tr>"
        for _, row in shown.iterrows()
    )
    return (
        f'<table class="sortable"><caption>{html.escape(cut)}</caption><thead><tr>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def figure_html(ax: Any, alt: str, path: Path | None = None) -> str:
    """The plot on ``ax`` as an ``<img>`` with the PNG embedded, at the figure's own size (and the
    same PNG written to ``path``); the figure is closed."""
    figure = cast(Figure, ax.figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    plt.close(figure)
    data = buffer.getvalue()
    if path is not None:
        path.write_bytes(data)
    width, height = (round(x * _DPI) for x in figure.get_size_inches())
    encoded = base64.b64encode(data).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{encoded}" width="{width}" height="{height}" '
        f'alt="{html.escape(alt)}"></figure>'
    )


def write_report(
    result: Crawl,
    out: str | os.PathLike[str],
    *,
    now: datetime | None = None,
    older_than: str = "180D",
    keep_latest: int = 2,
    snapshot_store: str | os.PathLike[str] | None = None,
    events: pd.DataFrame | str | os.PathLike[str] | None = None,
) -> Path:
    """Write tables (CSV), plots (PNG) and the self-contained ``index.html`` for ``result`` into ``out``.

    With ``snapshot_store`` (see :mod:`dreg_frames.crawl_history`), the page gains a "Trend" section:
    storage over time, what changed since the previous snapshot, and, with ``events`` (a frame or an
    event store), pushes and pulls per day. Returns the path of ``index.html``."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    now = now or datetime.now(timezone.utc)
    usage = storage_usage(result.layers)
    by_namespace = storage_usage(result.layers, by="namespace")
    candidates = stale(result.images, older_than=older_than, keep_latest=keep_latest, now=now)
    dupes = duplicates(result.layers)
    freed = reclaimable(result.layers, candidates) if len(candidates) else pd.DataFrame({"size": []})
    freed_bytes = int(freed["size"].sum())
    by_kind = storage_usage(result.layers, by="kind")
    signatures = signed(result)
    findings = integrity(result)

    tables = {
        "tags": result.tags,
        "images": result.images,
        "storage_by_repository": usage,
        "storage_by_namespace": by_namespace,
        "stale_candidates": candidates.assign(tags=candidates["tags"].map(" ".join)),
        "duplicates": dupes.assign(
            digests=dupes["digests"].map(" ".join), references=dupes["references"].map(" ".join)
        ),
        "errors": result.errors,
        "storage_by_kind": by_kind,
        "referrers": result.referrers,
        "signed": signatures.assign(tags=signatures["tags"].map(" ".join)),
        "integrity": findings.assign(tags=findings["tags"].map(" ".join)),
    }
    for name, frame in tables.items():
        frame.to_csv(folder / f"{name}.csv", index=False)

    registry_name = str(result.meta.get("registry") or "registry")
    age = human_duration(older_than)
    total = usage[usage["repository"] == TOTAL].iloc[0]
    repos = usage[usage["repository"] != TOTAL].sort_values("stored_bytes", ascending=False)
    suspect = result.images[result.images["created_suspect"]]
    n_errors = len(result.errors)
    stored = human_bytes(total["stored_bytes"])
    share = f" ({freed_bytes / total['stored_bytes']:.0%} of what is stored)" if total["stored_bytes"] else ""
    summary = [
        f"<b>{html.escape(registry_name)}</b> stores <b>{stored}</b> in {len(result.repositories)} "
        f"repositories and {len(result.tags)} tags (summed over tags it would be "
        f"{human_bytes(total['logical_bytes'])}: shared layers are stored once).",
        f"The proposed cleanup deletes <b>{len(candidates)} stale digests</b> (older than {age}, keeping the "
        f"{keep_latest} newest images of each repository and every <code>latest</code>); garbage collection "
        f"would then free <b>{human_bytes(freed_bytes)}</b>{share}.",
        f"{len(dupes)} groups of duplicates; {suspect['manifest_digest'].nunique()} images with dates not "
        "trusted (never judged by age).",
        (
            f'<span class="warn"><b>{n_errors} errors</b>: some repositories or tags could not be read '
            "(see Errors below); the figures leave them out.</span>"
            if n_errors
            else "No errors: every repository and tag was read."
        ),
    ]
    cards = [
        ("stored (each blob once)", stored, False),
        ("cleanup frees", human_bytes(freed_bytes), False),
        ("stale digests", f"{len(candidates)}", False),
        ("errors", f"{n_errors}", n_errors > 0),
        ("repositories", f"{len(result.repositories)}", False),
        ("tags", f"{len(result.tags)}", False),
    ]
    cards_html = "".join(
        f"<div class='card{' alert' if alert else ''}'><b>{html.escape(v)}</b>{html.escape(k)}</div>"
        for k, v, alert in cards
    )
    stale_view = candidates.assign(age=(pd.Timestamp(now) - candidates["created"]).dt.days.astype("Int64"))
    errors_html = (
        _table(
            result.errors,
            [_Column(c, c) for c in ("repository", "tag", "stage", "error", "message")],
            "errors",
            "errors.csv",
            top=50,
        )
        if n_errors
        else "<p>None: every repository and tag was read.</p>"
    )
    crawled = str(result.meta.get("finished", ""))[:19].replace("T", " ")
    # embedded, like every other figure here: the page stays one file
    trend = trend_section(snapshot_store, events) if snapshot_store is not None else ""
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Registry report: {html.escape(registry_name)}</title>
<style>{_CSS}</style></head><body>
<h1>Registry report: {html.escape(registry_name)}</h1>
<p class="sub">crawled {html.escape(crawled)} UTC; report written {now:%Y-%m-%d %H:%M} UTC by dreg-frames</p>
<div class="summary">{"".join(f"<p>{line}</p>" for line in summary)}</div>
<div class="cards">{cards_html}</div>
<h2>Where the bytes are</h2>
{figure_html(plot_storage(usage), "storage per repository", folder / "storage.png")}
{
        _table(
            repos,
            [
                _Column("repository", "repository"),
                _Column("n_tags", "tags", "int"),
                _Column("stored_bytes", "stored", "bytes"),
                _Column("exclusive_bytes", "exclusive (freed if removed)", "bytes"),
                _Column("logical_bytes", "logical (sum over tags)", "bytes"),
            ],
            "repositories",
            "storage_by_repository.csv",
        )
    }
<h2>Image age and layer sharing</h2>
{figure_html(plot_age(result.images, now=now), "image age", folder / "age.png")}
{figure_html(plot_layer_sharing(result.layers), "layer sharing", folder / "layer_sharing.png")}
<h2>Stale candidates ({len(candidates)}; garbage collection would free {human_bytes(freed_bytes)})</h2>
<p>Older than {age}, and not among the {keep_latest} newest images of their repository.</p>
{
        _table(
            stale_view,
            [
                _Column("repository", "repository"),
                _Column("tags", "tags", "tags"),
                _Column("created", "created", "date"),
                _Column("age", "age (days)", "int"),
                _Column("explain", "why"),
            ],
            "stale digests",
            "stale_candidates.csv",
        )
    }
<h2>Duplicates ({len(dupes)})</h2>
{
        _table(
            dupes,
            [
                _Column("kind", "kind"),
                _Column("references", "references", "tags"),
                _Column("n_repositories", "repositories", "int"),
                _Column("size", "size", "bytes"),
            ],
            "duplicate groups",
            "duplicates.csv",
        )
    }
<h2>Supply chain: signatures, attestations, SBOMs</h2>
<p>{int(signatures["signed"].sum())} of {len(signatures)} images are signed;
{int((signatures["attestations"] > 0).sum())} have attestations and {int((signatures["sboms"] > 0).sum())}
an SBOM. Signatures and SBOMs follow their image: kept with it, deleted with it.</p>
{
        _table(
            by_kind[by_kind["kind"] != TOTAL],
            [
                _Column("kind", "kind"),
                _Column("n_tags", "tags", "int"),
                _Column("stored_bytes", "stored", "bytes"),
                _Column("exclusive_bytes", "exclusive", "bytes"),
            ],
            "kinds",
            "storage_by_kind.csv",
        )
    }
{
        _table(
            signatures[~signatures["signed"]],
            [_Column("repository", "repository"), _Column("tags", "unsigned image tags", "tags")],
            "unsigned images",
            "signed.csv",
        )
    }
<h2>Orphans and integrity ({len(findings)} findings)</h2>
<p>Orphaned signatures and SBOMs (their image is gone) are cleanup candidates; a
<code>gc-untagged-child</code> warns that <code>garbage-collect --delete-untagged</code> on
Distribution 2.8 would break a tagged multi-arch image: run plain <code>garbage-collect</code>.</p>
{
        _table(
            findings,
            [
                _Column("finding", "finding"),
                _Column("repository", "repository"),
                _Column("digest", "digest"),
                _Column("detail", "detail"),
            ],
            "findings",
            "integrity.csv",
        )
    }
{trend}
<h2>Suspect dates ({suspect["manifest_digest"].nunique()} images)</h2>
<p>Images dated before 2013 (reproducible builds stamp 1970), in the future or undated are never
judged by age: {html.escape(", ".join(sorted(set(suspect["repository"].astype(str)))) or "none")}.</p>
<h2>Errors ({n_errors})</h2>{errors_html}
<p class="sub">Every table in full, as CSV, in the report folder beside this page:
{", ".join(f"{n}.csv" for n in tables)}.</p>
<script>{_SCRIPT}</script>
</body></html>"""
    index = folder / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
