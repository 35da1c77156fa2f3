"""The storage report: CSV tables, PNG plots and a one-page HTML summary of a crawl.

Example::

    write_report(crawl(registry), "report/")     # report/index.html, report/*.csv, report/*.png
"""

from __future__ import annotations

import html
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from .analysis import duplicates, plot_age, plot_layer_sharing, plot_storage, reclaimable, stale
from .analysis.usage import TOTAL, storage_usage
from .crawl.result import Crawl

__all__ = ["human_bytes", "write_report"]


def human_bytes(size: Any) -> str:
    """``1536 -> '1.5 KiB'``; NA -> '?'."""
    if size is None or pd.isna(size):
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
h1 { margin-bottom: 0; } .sub { color: #666; margin-top: .2em; }
.cards { display: flex; gap: 1em; flex-wrap: wrap; margin: 1.5em 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: .8em 1.2em; min-width: 9em; }
.card b { display: block; font-size: 1.5em; }
table { border-collapse: collapse; margin: .5em 0 1.5em; font-size: .9em; }
th, td { border-bottom: 1px solid #eee; padding: .3em .8em; text-align: left; }
td.num, th.num { text-align: right; } img { max-width: 100%; border: 1px solid #eee; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 1em; } .warn { color: #a33; }
"""


def _table(frame: pd.DataFrame, numeric: tuple[str, ...] = ()) -> str:
    head = "".join(
        f'<th class="{"num" if c in numeric else ""}">{html.escape(str(c))}</th>' for c in frame.columns
    )
    body = []
    for row in frame.itertuples(index=False):
        cells = "".join(
            f'<td class="{"num" if c in numeric else ""}">{html.escape(str(v))}</td>'
            for c, v in zip(frame.columns, row, strict=True)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def write_report(
    result: Crawl,
    out: str | os.PathLike[str],
    *,
    now: datetime | None = None,
    older_than: str = "180D",
    keep_latest: int = 2,
) -> Path:
    """Write tables (CSV), plots (PNG) and ``index.html`` for ``result`` into ``out``.

    Returns the path of ``index.html``."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    now = now or datetime.now(timezone.utc)
    usage = storage_usage(result.layers)
    by_namespace = storage_usage(result.layers, by="namespace")
    candidates = stale(result.images, older_than=older_than, keep_latest=keep_latest, now=now)
    dupes = duplicates(result.layers)
    freed = reclaimable(result.layers, candidates) if len(candidates) else pd.DataFrame({"size": []})
    freed_bytes = int(freed["size"].sum())

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
    }
    for name, frame in tables.items():
        frame.to_csv(folder / f"{name}.csv", index=False)

    plots = {
        "storage.png": plot_storage(usage),
        "age.png": plot_age(result.images, now=now),
        "layer_sharing.png": plot_layer_sharing(result.layers),
    }
    for name, ax in plots.items():
        figure = cast(Figure, ax.figure)
        figure.savefig(folder / name, dpi=110)
        plt.close(figure)

    total = usage[usage["repository"] == TOTAL].iloc[0]
    cards = [
        ("repositories", f"{len(result.repositories)}"),
        ("tags", f"{len(result.tags)}"),
        ("stored (each blob once)", human_bytes(total["stored_bytes"])),
        ("logical (sum over tags)", human_bytes(total["logical_bytes"])),
        ("stale candidates", f"{len(candidates)}"),
        ("GC would free", human_bytes(freed_bytes)),
    ]
    top = usage[usage["repository"] != TOTAL].nlargest(10, "stored_bytes")
    top_view = pd.DataFrame(
        {
            "repository": top["repository"],
            "tags": top["n_tags"],
            "stored": top["stored_bytes"].map(human_bytes),
            "exclusive": top["exclusive_bytes"].map(human_bytes),
            "logical": top["logical_bytes"].map(human_bytes),
        }
    )
    stale_view = pd.DataFrame(
        {
            "repository": candidates["repository"],
            "tags": candidates["tags"].map(", ".join),
            "created": candidates["created"].dt.strftime("%Y-%m-%d"),
            "why": candidates["explain"],
        }
    ).head(25)
    dup_view = pd.DataFrame(
        {
            "kind": dupes["kind"],
            "references": dupes["references"].map(", ".join),
            "size": dupes["size"].map(human_bytes),
        }
    ).head(25)
    suspect = result.images[result.images["created_suspect"]]
    errors_html = (
        _table(result.errors[["repository", "tag", "stage", "error", "message"]].head(25))
        if len(result.errors)
        else "<p>None: every repository and tag was read.</p>"
    )
    cards_html = "".join(f"<div class='card'><b>{html.escape(v)}</b>{html.escape(k)}</div>" for k, v in cards)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Registry report</title>
<style>{_CSS}</style></head><body>
<h1>Registry report: {html.escape(str(result.meta.get("registry", "")))}</h1>
<p class="sub">crawled {html.escape(str(result.meta.get("finished", "")))[:19]} UTC;
stale means older than {html.escape(older_than)} and not among the {keep_latest} newest images
of its repository</p>
<div class="cards">{cards_html}</div>
<h2>Where the bytes are</h2>
<img src="storage.png" alt="storage per repository">
{_table(top_view, ("tags", "stored", "exclusive", "logical"))}
<div class="grid"><img src="age.png" alt="image age"><img src="layer_sharing.png" alt="layer sharing"></div>
<h2>Stale candidates ({len(candidates)}; garbage collection would free {human_bytes(freed_bytes)})</h2>
{_table(stale_view) if len(stale_view) else "<p>None.</p>"}
<h2>Duplicates ({len(dupes)})</h2>
{_table(dup_view, ("size",)) if len(dup_view) else "<p>None.</p>"}
<h2>Suspect dates ({suspect["manifest_digest"].nunique()} images)</h2>
<p>Images dated before 2013 (reproducible builds stamp 1970), in the future or undated are never
judged by age: {html.escape(", ".join(sorted(set(suspect["repository"].astype(str)))) or "none")}.</p>
<h2>Errors</h2>{errors_html}
<p class="sub">Tables: {", ".join(f'<a href="{n}.csv">{n}.csv</a>' for n in tables)}</p>
</body></html>"""
    index = folder / "index.html"
    index.write_text(page)
    return index
