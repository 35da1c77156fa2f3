"""Readable frames for people: bytes as KiB/MiB/GiB, dates to the second, tags as ``a, b``, the
registry column (one value for a whole crawl) hidden, and an empty frame said in words.

Only the display changes: the frame keeps its raw numbers, so sorting and sums stay exact. The
formatting is a pandas ``Styler`` (which needs jinja2, a dependency of dreg-frames).

Example (in a notebook)::

    from dreg_frames.display import readable, enable
    readable(result.errors, empty="no errors")
    enable()          # from now on every DataFrame a cell shows is readable
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import pandas as pd
from pandas.io.formats.style import Styler

__all__ = [
    "Note",
    "byte_columns",
    "enable",
    "human_bytes",
    "human_duration",
    "readable",
    "readable_html",
    "tags_text",
]

# Columns that hold a number of bytes, by name: what the crawl, usage and plan frames call them.
_BYTE_NAMES = {"size", "bytes", "layer_size", "config_size", "manifest_size", "digest_size"}


def human_bytes(size: Any) -> str:
    """``1536 -> '1.5 KiB'``; NA -> '?'.

    >>> human_bytes(1536), human_bytes(3 * 1024**3), human_bytes(None)
    ('1.5 KiB', '3.0 GiB', '?')
    """
    if size is None or pd.isna(size):
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - the loop returns at TiB


def human_duration(value: Any) -> str:
    """A duration as people write it: ``'180D' -> '180 days'``, ``'12h' -> '12 hours'``.

    >>> human_duration("180D"), human_duration("1d"), human_duration("36h"), human_duration(None)
    ('180 days', '1 day', '36 hours', 'any age')
    """
    from .analysis._frames import to_timedelta

    delta = to_timedelta(value, "duration")
    if delta is None:
        return "any age"
    seconds = delta.total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}" + ("" if n == 1 else "s")
    return str(timedelta(seconds=seconds))


def tags_text(tags: Any) -> str:
    """``('a', 'b') -> 'a, b'``; an empty tuple -> '(untagged)'; anything else as text."""
    if isinstance(tags, (tuple, list)):
        return ", ".join(str(t) for t in tags) if tags else "(untagged)"
    return "" if tags is None or (not isinstance(tags, str) and pd.isna(tags)) else str(tags)


def byte_columns(frame: pd.DataFrame) -> list[str]:
    """The columns of ``frame`` that hold byte counts (``*_bytes``, ``size``, ``layer_size``, ...)."""
    return [
        c
        for c in frame.columns
        if isinstance(c, str)
        and (c.endswith("_bytes") or c in _BYTE_NAMES)
        and pd.api.types.is_numeric_dtype(frame[c])
    ]


class Note:
    """A line of text shown in place of an empty table (``no errors``)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        return f"<p><i>{html.escape(self.text)}</i></p>"


# Pages without JupyterLab's table CSS (Voila, exported HTML) still get readable spacing.
_TABLE_STYLE: list[Any] = [
    {"selector": "th, td", "props": "padding: 2px 10px; border-bottom: 1px solid #e5e5e5;"},
    {"selector": "caption", "props": "caption-side: top; text-align: left; color: #666;"},
]


def _date(value: Any) -> str:
    if value is None or pd.isna(value):
        return ""
    stamp = pd.Timestamp(value)
    # Midnight dates (most image dates in a sample are whole days) read better without a clock.
    if stamp.hour == stamp.minute == stamp.second == 0 and stamp.microsecond == 0 and stamp.nanosecond == 0:
        return f"{stamp:%Y-%m-%d}"
    return f"{stamp:%Y-%m-%d %H:%M:%S}"


def _sequence_columns(frame: pd.DataFrame) -> list[str]:
    out = []
    for column in frame.columns:
        if frame[column].dtype == object:
            sample = frame[column].dropna().head(20)
            if len(sample) and all(isinstance(v, (tuple, list)) for v in sample):
                out.append(column)
    return out


def readable(
    frame: pd.DataFrame,
    *,
    empty: str = "(none)",
    max_rows: int | None = 50,
    hide: Iterable[str] = (),
    caption: str | None = None,
) -> Styler | Note:
    """A Styler of ``frame`` that people can read; ``frame`` itself is not changed.

    Byte columns read ``1.5 MiB`` (right-aligned), dates ``2024-05-06 07:08:09`` (UTC, no
    nanoseconds), tuples ``a, b``; a ``registry`` column with one value is hidden and named in the
    caption, as are the columns in ``hide``. At most ``max_rows`` rows are rendered (the caption says
    so). An empty frame is shown as ``empty`` (e.g. ``"no errors"``).
    """
    if len(frame) == 0:
        return Note(empty)
    notes = [caption] if caption else []
    shown = frame if max_rows is None or len(frame) <= max_rows else frame.head(max_rows)
    if max_rows is not None and len(frame) > max_rows:
        notes.append(f"first {max_rows} of {len(frame)} rows")
    hidden = [c for c in hide if c in frame.columns]
    if "registry" in frame.columns and "registry" not in hidden and frame["registry"].nunique() <= 1:
        hidden.append("registry")
        notes.insert(0, f"registry {frame['registry'].iloc[0]}")
    formats: dict[Any, Any] = {}
    numbers = byte_columns(shown)
    for column in numbers:
        formats[column] = human_bytes
    for column in shown.columns:
        if isinstance(shown[column].dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(
            shown[column]
        ):
            formats[column] = _date
    for column in _sequence_columns(shown):
        formats[column] = tags_text
    styler = shown.style.format(formats, na_rep="")
    styler = styler.set_table_styles(_TABLE_STYLE)
    if numbers:
        styler = styler.set_properties(subset=numbers, **{"text-align": "right"})
    if hidden:
        styler = styler.hide(hidden, axis="columns")
    if isinstance(shown.index, pd.RangeIndex):
        styler = styler.hide(axis="index")
    if notes:
        styler = styler.set_caption("; ".join(notes))
    return styler


def readable_html(frame: pd.DataFrame, **options: Any) -> str:
    """:func:`readable` as an HTML string (for pages and ``ipywidgets.HTML``)."""
    shown = readable(frame, **options)
    return shown._repr_html_() if isinstance(shown, Note) else shown.to_html()


def _formatter(frame: pd.DataFrame) -> str:
    return readable_html(frame, empty="(empty)")


def enable() -> None:
    """Show every DataFrame in this IPython session through :func:`readable` (HTML output only;
    the frames and their plain-text repr are unchanged)."""
    try:
        from IPython.core.getipython import get_ipython
    except ImportError:  # pragma: no cover - no IPython, nothing to hook
        return
    # typed in IPython 9, untyped before: called through Any to be clean under both
    getter: Any = get_ipython
    shell: Any = getter()
    if shell is not None:
        shell.display_formatter.formatters["text/html"].for_type(pd.DataFrame, _formatter)
