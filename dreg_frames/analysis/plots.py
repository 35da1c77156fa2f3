"""Plots for notebooks and reports: each takes ``ax=None`` and returns the Axes it drew on.

Example::

    ax = plot_storage(result.layers)
    ax.figure.savefig("storage.png")
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, MaxNLocator

from ._frames import as_frame, digest_table, now_utc
from .usage import TOTAL, blob_references, storage_usage

__all__ = ["byte_unit", "plot_age", "plot_layer_sharing", "plot_storage"]

_UNITS = [("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024), ("B", 1)]


def byte_unit(max_bytes: float) -> tuple[str, int]:
    """The largest binary unit that keeps ``max_bytes`` at 1 or more: ``("MiB", 1048576)``."""
    for name, factor in _UNITS:
        if max_bytes >= factor:
            return name, factor
    return "B", 1


def _axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    _, new = plt.subplots(figsize=size, layout="constrained")
    return new


def plot_storage(frame: Any, ax: Axes | None = None, top: int = 15) -> Axes:
    """Stored and exclusive bytes per repository (the ``top`` largest), as horizontal bars.

    Takes a crawl's layers (or the output of :func:`storage_usage`)."""
    usage = frame if isinstance(frame, pd.DataFrame) and "stored_bytes" in frame else storage_usage(frame)
    usage = usage[usage["repository"] != TOTAL].nlargest(top, "stored_bytes").iloc[::-1]
    ax = _axes(ax, (8, max(2.5, 0.35 * len(usage) + 1.2)))
    unit, factor = byte_unit(float(usage["stored_bytes"].max()) if len(usage) else 0)
    names = usage["repository"].astype(str)
    ax.barh(
        names,
        usage["stored_bytes"].astype(float) / factor,
        color="#9ecae1",
        label="stored (shared layers once)",
    )
    ax.barh(
        names,
        usage["exclusive_bytes"].astype(float) / factor,
        color="#3182bd",
        label="exclusive (freed if removed)",
    )
    ax.set_xlabel(f"size ({unit})")
    ax.set_title("Storage per repository")
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(axis="x", alpha=0.3)
    return ax


def plot_age(frame: Any, ax: Axes | None = None, now: datetime | str | pd.Timestamp | None = None) -> Axes:
    """Distribution of image ages (days since ``created``, one count per repository digest).

    Suspect dates (the 1970 epoch, the future) are left out and counted in the title."""
    images = as_frame(
        frame, ["repository", "tag", "digest", "created"], "plot_age", ("images", "tags", "layers")
    )
    table = digest_table(images)
    trusted = table[~table["created_suspect"]]
    ages = (now_utc(now) - trusted["created"]).dt.total_seconds() / 86400
    ax = _axes(ax, (8, 3.5))
    if len(ages):
        ax.hist(ages, bins=min(30, max(5, len(ages) // 2)), color="#3182bd", edgecolor="white")
    ax.set_xlabel("age (days since created)")
    ax.set_ylabel("images (digests)")
    suspect = int(table["created_suspect"].sum())
    title = "Image age"
    if suspect:
        title += f" ({suspect} with suspect dates not shown)"
    ax.set_title(title)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="y", alpha=0.3)
    return ax


def plot_layer_sharing(frame: Any, ax: Axes | None = None) -> Axes:
    """How many images use each layer: bytes of layers by number of images sharing them."""
    refs = blob_references(frame)
    layers = refs[refs["kind"] == "layer"]
    images_per_layer = layers.drop_duplicates(["blob", "digest"]).groupby("blob", observed=True).size()
    sizes = layers.drop_duplicates("blob").set_index("blob")["size"].astype("float64")
    by_count = sizes.groupby(images_per_layer.reindex(sizes.index)).sum().sort_index()
    ax = _axes(ax, (8, 3.5))
    unit, factor = byte_unit(float(by_count.max()) if len(by_count) else 0)
    ax.bar(by_count.index.astype(str), by_count.to_numpy() / factor, color="#31a354")
    ax.set_xlabel("images using the layer")
    ax.set_ylabel(f"layer bytes ({unit})")
    ax.set_title("Layer sharing (stored once, used by many)")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.grid(axis="y", alpha=0.3)
    return ax
