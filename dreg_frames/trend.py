"""Trends over time: storage per repository across crawl snapshots, pushes and pulls per day, and
the HTML "trend" section of the report.

Example::

    plot_storage_history(history("history/"))
    plot_activity(load_events("events.db"))
    html = trend_section("history/", events="events.db", out_dir="report/")
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .analysis.plots import byte_unit
from .analysis.usage import TOTAL
from .crawl_history import diff, history, load_snapshot, snapshots

__all__ = ["plot_activity", "plot_storage_history", "trend_section"]

REST = "(rest)"


def _axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    _, new = plt.subplots(figsize=size, layout="constrained")
    return new


def storage_over_time(frame: pd.DataFrame, top: int = 8) -> pd.DataFrame:
    """``history()`` -> stored bytes, one column per repository (the ``top`` largest in the latest
    snapshot, the others summed as ``(rest)``), one row per snapshot."""
    repos = frame[frame["repository"] != TOTAL]
    if repos.empty:
        return pd.DataFrame()
    wide = repos.pivot_table(
        index="snapshot",
        columns="repository",
        values="stored_bytes",
        aggfunc="sum",
        fill_value=0,
        observed=True,
    ).astype("int64")
    latest = wide.iloc[-1].sort_values(ascending=False, kind="stable")
    keep = list(latest.index[:top])
    out = wide[keep].copy()
    rest = [c for c in wide.columns if c not in keep]
    if rest:
        out[REST] = wide[rest].sum(axis=1)
    return out


def plot_storage_history(frame: pd.DataFrame, ax: Axes | None = None, top: int = 8) -> Axes:
    """Stored bytes per repository over the snapshots of a history store (the ``top`` largest, the
    rest together), stacked. Takes :func:`dreg_frames.crawl_history.history` output."""
    wide = storage_over_time(frame, top)
    ax = _axes(ax, (8, 4))
    if wide.empty:
        ax.set_title("Storage over time (no snapshots)")
        return ax
    unit, factor = byte_unit(float(wide.sum(axis=1).max()))
    times = pd.DatetimeIndex(wide.index).tz_convert("UTC").tz_localize(None)
    if len(wide) == 1:
        ax.bar([str(t) for t in times], [wide.iloc[0].sum() / factor])
    else:
        ax.stackplot(times, *[wide[c].to_numpy() / factor for c in wide.columns], labels=list(wide.columns))
        ax.legend(loc="upper left", fontsize="small", ncol=2)
    ax.set_ylabel(f"stored ({unit})")
    ax.set_title("Storage over time per repository")
    ax.grid(axis="y", alpha=0.3)
    ax.figure.autofmt_xdate()
    return ax


def activity_per_day(events: pd.DataFrame, freq: str = "D") -> pd.DataFrame:
    """Manifest pushes and pulls per period (``freq``, default a day): columns ``push``, ``pull``."""
    manifests = events[(events["kind"] == "manifest") & events["action"].isin(["push", "pull"])]
    if manifests.empty:
        return pd.DataFrame(columns=["push", "pull"])
    days = manifests["timestamp"].dt.floor(freq)
    counts = manifests.groupby([days, manifests["action"].astype(str)]).size().unstack(fill_value=0)
    counts = counts.reindex(columns=["push", "pull"], fill_value=0)
    full = pd.date_range(counts.index.min(), counts.index.max(), freq=freq)
    return counts.reindex(full, fill_value=0)


def plot_activity(events: pd.DataFrame, ax: Axes | None = None, freq: str = "D") -> Axes:
    """Manifest pushes and pulls per day, from :func:`dreg_frames.events.load_events`."""
    counts = activity_per_day(events, freq)
    ax = _axes(ax, (8, 3.5))
    if counts.empty:
        ax.set_title("Pushes and pulls per day (no events)")
        return ax
    index = pd.DatetimeIndex(counts.index)
    times = index.tz_localize(None) if index.tz is not None else index
    ax.plot(times, counts["pull"], marker=".", label="pulls", color="#3182bd")
    ax.plot(times, counts["push"], marker=".", label="pushes", color="#e6550d")
    ax.set_ylabel("manifest events")
    ax.set_title("Pushes and pulls per day")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="upper left", fontsize="small")
    ax.grid(alpha=0.3)
    ax.figure.autofmt_xdate()
    return ax


def _image(ax: Axes, name: str, out_dir: Path | None) -> str:
    fig = ax.get_figure(root=True)
    assert isinstance(fig, Figure)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        fig.savefig(out_dir / name, dpi=110)
        src = name
    else:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
        src = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    plt.close(fig)
    return f'<img src="{html.escape(src)}" alt="{html.escape(name)}">'


def _rows(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def trend_section(
    store: str | os.PathLike[str],
    events: pd.DataFrame | str | os.PathLike[str] | None = None,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    top: int = 8,
) -> str:
    """The report's "Trend" section (an HTML fragment): storage over time from the snapshots in
    ``store``, what changed since the previous snapshot, and, with ``events`` (a frame or an event
    store path), pushes and pulls per day. Plots are written as PNGs into ``out_dir`` (referenced by
    file name) or, without it, embedded."""
    folder = Path(out_dir) if out_dir is not None else None
    parts = ['<section id="trend"><h2>Trend</h2>']
    known = snapshots(store)
    parts.append(f"<p>{len(known)} snapshots in {html.escape(str(store))}")
    if len(known):
        parts.append(
            f", {known['snapshot'].iloc[0]:%Y-%m-%d %H:%M} to {known['snapshot'].iloc[-1]:%Y-%m-%d %H:%M} UTC"
        )
    parts.append(".</p>")
    if len(known):
        ax = plot_storage_history(history(store), top=top)
        parts.append(_image(ax, "trend-storage.png", folder))
    if len(known) >= 2:
        change = diff(
            load_snapshot(store, str(known["id"].iloc[-2])), load_snapshot(store, str(known["id"].iloc[-1]))
        )
        parts.append(f"<h3>Since the previous snapshot</h3><p>{html.escape(change.summary())}</p>")
        growth = change.bytes[(change.bytes["growth"] != 0)].head(top)
        if len(growth):
            parts.append(_rows(growth))
        if len(change.tags):
            parts.append(_rows(change.tags.head(50).assign(old_digest=_short, new_digest=_short_new)))
    if events is not None:
        from .events.frames import load_events

        frame = events if isinstance(events, pd.DataFrame) else load_events(events)
        ax = plot_activity(frame)
        parts.append("<h3>Pushes and pulls</h3>")
        parts.append(_image(ax, "trend-activity.png", folder))
    parts.append("</section>")
    return "".join(parts)


def _short(frame: Any) -> pd.Series:
    return frame["old_digest"].map(lambda d: "" if d is None else str(d)[:19])


def _short_new(frame: Any) -> pd.Series:
    return frame["new_digest"].map(lambda d: "" if d is None else str(d)[:19])
