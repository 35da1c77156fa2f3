"""A dashboard for people who do not want to read code: one page, five tabs (storage, stale,
duplicates, cleanup, audit log), in a notebook or served as a web app by Voila.

Example (in a notebook)::

    from dreg_frames.dashboard import dashboard
    dashboard(registry)

From a shell (``pip install 'dreg-frames[dashboard]'``)::

    dreg-frames dashboard https://registry.example.com        # then open the address it prints
"""

from __future__ import annotations

import html
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import ipywidgets

from .analysis import duplicates, plot_age, plot_layer_sharing, plot_storage, reclaimable, stale
from .analysis.usage import TOTAL, storage_usage
from .client.errors import DregError, describe
from .client.registry import Registry
from .crawl import Crawl, crawl
from .display import human_bytes, human_duration, readable_html
from .report import figure_html
from .widgets import CleanupWidget

__all__ = ["TABS", "dashboard", "dashboard_from_env", "serve"]

TABS = ("Storage", "Stale", "Duplicates", "Cleanup", "Audit log")
ENV = "DREG_DASHBOARD"  # the served notebook reads its settings (JSON) from this variable


def dashboard(
    registry: Registry,
    result: Crawl | None = None,
    *,
    older_than: str = "180D",
    keep_latest: int = 2,
    audit_log: str | os.PathLike[str] = "audit.csv",
) -> ipywidgets.VBox:
    """The dashboard of ``registry`` (crawled now unless ``result`` is given): a heading and tabs."""
    result = result if result is not None else crawl(registry)
    usage = storage_usage(result.layers)
    candidates = stale(result.images, older_than=older_than, keep_latest=keep_latest)
    freed = int(reclaimable(result.layers, candidates)["size"].sum()) if len(candidates) else 0
    dupes = duplicates(result.layers)
    total = usage[usage["repository"] == TOTAL].iloc[0]
    cleanup = CleanupWidget(registry, result, candidates, audit_log)
    name = str(result.meta.get("registry") or registry.client.host)
    age = human_duration(older_than)
    heading = ipywidgets.HTML(
        f"<h2 style='margin:0'>Registry {html.escape(name)}</h2><p>"
        f"{len(result.repositories)} repositories, {len(result.tags)} tags; stores "
        f"<b>{human_bytes(total['stored_bytes'])}</b>. {len(candidates)} digests are older than {age} "
        f"(keeping the {keep_latest} newest per repository): deleting them frees "
        f"<b>{human_bytes(freed)}</b>. {len(result.errors)} errors.</p>"
    )
    storage = ipywidgets.HTML(
        figure_html(plot_storage(usage), "storage per repository")
        + readable_html(usage, max_rows=None)
        + figure_html(plot_layer_sharing(result.layers), "layer sharing")
        + (
            "<h4>Errors while crawling</h4>"
            + readable_html(result.errors[["repository", "tag", "stage", "message"]], empty="no errors")
        )
    )
    stale_view = ipywidgets.HTML(
        f"<p>Digests older than {age}, not among the {keep_latest} newest images of their repository"
        " (every <code>latest</code> kept). Delete them in the Cleanup tab.</p>"
        + readable_html(candidates[["repository", "tags", "created", "explain"]], empty="nothing is stale")
        + figure_html(plot_age(result.images), "image age")
    )
    dup_view = ipywidgets.HTML(
        readable_html(dupes[["kind", "references", "n_repositories", "size"]], empty="no duplicates")
    )
    tabs = ipywidgets.Tab(children=[storage, stale_view, dup_view, cleanup, cleanup.audit_view()])
    tabs.titles = TABS
    tabs.add_class("dreg-dashboard")
    return ipywidgets.VBox([heading, tabs])


def dashboard_from_env() -> ipywidgets.Widget:
    """The dashboard for the settings that :func:`serve` put in ``$DREG_DASHBOARD`` (or the error,
    in a line and a hint, when the registry cannot be crawled)."""
    settings: dict[str, Any] = json.loads(os.environ[ENV])
    auth = None
    if settings.get("user"):
        auth = (settings["user"], os.environ.get("DREG_PASSWORD", ""))
    verify: bool | str = settings.get("ca") or not settings.get("insecure", False)
    try:
        registry = Registry.build_with_manual_client(settings["url"], auth=auth, verify=verify)
        result = crawl(registry, settings.get("repositories") or None, progress=False)
    except DregError as exc:
        message, hint = describe(exc)
        return ipywidgets.HTML(
            f"<h2>Cannot read {html.escape(str(settings['url']))}</h2><p>{html.escape(message)}</p>"
            + (f"<p><b>hint:</b> {html.escape(hint)}</p>" if hint else "")
        )
    return dashboard(
        registry,
        result,
        older_than=settings.get("older_than", "180D"),
        keep_latest=int(settings.get("keep_latest", 2)),
        audit_log=settings["audit_log"],
    )


_NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "dashboard",
            "metadata": {},
            "outputs": [],
            "source": "from dreg_frames.dashboard import dashboard_from_env\n\ndashboard_from_env()",
        }
    ],
    "metadata": {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    },
    "nbformat": 4,
    "nbformat_minor": 5,
}


def serve(settings: dict[str, Any], port: int | None = None, *, open_browser: bool = False) -> int:
    """Serve the dashboard with Voila on 127.0.0.1 until Ctrl-C; returns Voila's exit code.

    Loopback only: the page can delete from the registry, so it is not offered to the network."""
    if importlib.util.find_spec("voila") is None:
        raise SystemExit(
            "the dashboard is served by Voila: pip install 'dreg-frames[dashboard]' (or pip install voila)"
        )
    settings = {**settings, "audit_log": str(Path(settings.get("audit_log", "audit.csv")).resolve())}
    with tempfile.TemporaryDirectory(prefix="dreg-dashboard-") as folder:
        notebook = Path(folder) / "dashboard.ipynb"
        notebook.write_text(json.dumps(_NOTEBOOK))
        command = [
            sys.executable,
            "-m",
            "voila",
            str(notebook),
            "--Voila.ip=127.0.0.1",
            f"--port={port or 8866}",
            "--strip_sources=True",
            "--show_tracebacks=False",
            "--no-browser" if not open_browser else "",
        ]
        env = {**os.environ, ENV: json.dumps(settings)}
        print(f"dashboard of {settings['url']} at http://127.0.0.1:{port or 8866}/ (Ctrl-C stops it)")
        process = subprocess.Popen([c for c in command if c], env=env, cwd=folder)
        # A SIGTERM to this command must stop Voila too (and its kernels), not orphan them.
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            return process.wait()
        except KeyboardInterrupt:
            # Jupyter servers ask "Shutdown this server?" on the first Ctrl-C: stop it without asking.
            process.terminate()
            process.wait(timeout=30)
            return 130
        finally:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
