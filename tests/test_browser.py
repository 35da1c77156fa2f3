"""What only a browser shows: JupyterLab, the report and the dashboard in a real Chromium.

JupyterLab and the dashboard run on 127.0.0.1 (token, free port, temporary root and settings, so
nothing of the machine leaks in); Debian's chromium is driven by playwright (executable_path, no
browser download). Each step is photographed into a folder the tests print (``$DREG_SCREENSHOTS``
to choose it). Skipped when chromium or playwright is missing; CI installs both.
"""

from __future__ import annotations

import csv
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from dreg_frames import LocalRegistry, Registry, crawl
from dreg_frames.report import write_report
from dreg_frames.sample import seed_registry

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    """Poll until ``url`` answers at all, 200 or an HTTP error (or the server died)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer in {seconds} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Shots:
    """Numbered screenshots of each step, in one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.n = 0

    def __call__(self, page: Any, name: str, element: Any = None) -> Path:
        self.n += 1
        path = self.folder / f"{self.n:02d}-{name}.png"
        (element or page).screenshot(path=str(path))
        return path


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Shots:
    folder = Path(os.environ.get("DREG_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nbrowser screenshots: {folder}")
    return Shots(folder)


@pytest.fixture(scope="module")
def sample_registry() -> Iterator[LocalRegistry]:
    with LocalRegistry() as server:
        seed_registry(Registry.build_with_manual_client(server.url))
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """JupyterLab on 127.0.0.1 with its own root, settings, config and data folders."""
    base = tmp_path_factory.mktemp("lab")
    root, settings = base / "root", base / "settings"
    root.mkdir()
    # no news or update checks (no internet), and widget state saved with the notebook
    for plugin, values in {
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        "@jupyter-widgets/jupyterlab-manager/plugin": {"saveState": True},
        # start the notebook's own kernel without asking (the dialog shows when kernelspecs load late)
        "@jupyterlab/notebook-extension/tracker": {"autoStartDefaultKernel": True},
    }.items():
        target = settings / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",  # CI runs as root
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            f"--LabApp.user_settings_dir={settings}",
            f"--LabApp.workspaces_dir={base / 'workspaces'}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(base / "lab.log").open("wb"),
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/api/status?token={token}", process)
        yield {"url": f"http://127.0.0.1:{port}", "token": token, "root": root}
    finally:
        stop(process)


def _notebook_with(root: Path, registry_url: str) -> Path:
    book = nbformat.read(NOTEBOOKS / "04-cleanup-widget.ipynb", as_version=4)
    params = next(c for c in book.cells if "parameters" in c.metadata.get("tags", []))
    params.source += f"\nREGISTRY_URL = {registry_url!r}  # the test's registry"
    target = root / "04-cleanup-widget.ipynb"
    nbformat.write(book, target)
    return target


def _audit(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_cleanup_widget_in_jupyterlab(
    lab: dict[str, Any], browser: Any, sample_registry: LocalRegistry, shots: Shots
) -> None:
    notebook = _notebook_with(lab["root"], sample_registry.url)
    registry = Registry.build_with_manual_client(sample_registry.url)
    audit_log = lab["root"] / "audit.csv"
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    # JupyterLab sometimes asks which kernel to start although the notebook names one: take its choice
    page.add_locator_handler(page.get_by_role("button", name="Select Kernel"), lambda button: button.click())
    page.goto(f"{lab['url']}/lab/tree/{notebook.name}?token={lab['token']}")
    expect(page.locator(".jp-Notebook")).to_be_visible(timeout=60_000)
    idle = page.get_by_role("button", name=re.compile(r"Python 3 \(ipykernel\) \| Idle"))
    expect(idle).to_be_visible(timeout=60_000)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    widget = page.locator(".dreg-cleanup")
    try:
        expect(widget).to_be_visible(timeout=90_000)
    except AssertionError:
        shots(page, "widget-missing")  # the notebook as it is: a cell error shows here
        raise
    expect(widget.locator("tbody tr").first).to_be_visible()
    audit_cell = page.locator(".jp-Cell").last
    expect(audit_cell).to_contain_text("no audit entries yet", timeout=30_000)
    shots(page, "widget-opened", widget)

    # 1. keys typed in the widget stay there: arrows and "d d" in the dropdown move the selection,
    # never the notebook (no other cell selected, no cell deleted)
    cells = page.locator(".jp-Cell").count()
    active = page.locator(".jp-Cell.jp-mod-active").first.get_attribute("class")
    repo_select = widget.locator("select.dc-repo")
    repo_select.focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowUp")
    page.keyboard.type("dd")
    expect(repo_select).to_have_value(re.compile(r"^data/"))
    assert page.locator(".jp-Cell").count() == cells
    assert page.locator(".jp-Cell.jp-mod-active").first.get_attribute("class") == active
    assert widget.locator("input[type=text]").count() == 1  # the table is filtered to that repository
    shots(page, "typed-d-d-in-the-dropdown", widget)

    # 2. the dry-run race: asked in dry run, the box unticked and the stale confirm button clicked
    row = widget.locator("tbody tr").first
    key = row.get_attribute("data-row-key")
    assert key
    repository, digest = key.split("@", 1)
    row.locator("input.dc-pick").check()
    ask = widget.locator("button.dc-ask")
    expect(ask).to_have_text("Dry-run delete selected…")
    ask.click()
    confirm = widget.locator("button.dc-confirm")
    expect(confirm).to_have_text("Confirm dry run")
    expect(widget.locator(".dc-question")).to_contain_text("DRY RUN")
    shots(page, "dry-run-question", widget)
    page.evaluate(
        """() => {
            const root = document.querySelector('.dreg-cleanup');
            root.querySelector('input.dc-dry-run').click();   // untick while the question is open
            root.querySelector('button.dc-confirm').click();  // and confirm in the same instant
        }"""
    )
    log = widget.locator(".dc-log")
    expect(log).to_contain_text("withdrawn")
    expect(log).to_contain_text("Nothing is waiting")
    assert registry.repository(repository).check_manifest(digest) == digest
    assert all(r["dry_run"] == "True" for r in _audit(audit_log))
    shots(page, "dry-run-race-withdrawn", widget)

    # 3. a real delete: the button says so; afterwards the row is marked and dry run ticked again
    expect(widget.locator("input.dc-dry-run")).not_to_be_checked()
    expect(ask).to_have_text("Delete selected…")
    ask.click()
    expect(confirm).to_have_text("Delete for real")
    shots(page, "real-delete-question", widget)
    confirm.click()
    expect(log).to_contain_text("Deleted", timeout=30_000)
    expect(widget.locator(f'tr[data-row-key="{key}"]')).to_have_class(re.compile("dc-deleted"))
    expect(widget.locator("input.dc-dry-run")).to_be_checked()
    expect(widget.locator(".dc-audit")).to_contain_text("deleted")
    expect(audit_cell).to_contain_text("deleted")  # the notebook's audit cell follows live
    assert registry.repository(repository).check_manifest(digest) is None
    rows = _audit(audit_log)  # execute may log its intent before the DELETE: the last row is the outcome
    assert {(r["digest"], r["dry_run"]) for r in rows} == {(digest, "False")}
    assert rows[-1]["outcome"] == "deleted"
    shots(page, "after-the-delete", widget)
    widget.locator("button.dc-sort[data-key=size]").focus()
    page.keyboard.press("Enter")
    expect(widget.locator("th[data-key=size]")).to_have_attribute("aria-sort", "ascending")

    # 4. saved with the widget state: the notebook file shows the widget when opened again
    page.locator(".jp-Cell").first.click()
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        saved = json.loads(notebook.read_text())
        state = saved["metadata"].get("widgets", {}).get("application/vnd.jupyter.widget-state+json")
        if state and any(m["state"].get("_model_name") == "AnyModel" for m in state["state"].values()):
            break
        time.sleep(0.2)
    else:
        pytest.fail("the saved notebook has no widget state for the cleanup widget")
    page.close()


def test_the_report_alone_in_a_browser(
    browser: Any, sample_registry: LocalRegistry, shots: Shots, tmp_path: Path
) -> None:
    result = crawl(Registry.build_with_manual_client(sample_registry.url), progress=False)
    index = write_report(result, tmp_path / "report")
    alone = tmp_path / "sent" / "index.html"  # what a recipient gets: the page without its folder
    alone.parent.mkdir()
    shutil.copy(index, alone)
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(alone.as_uri())
    images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
    assert len(images) == 3 and all(done and width > 0 for done, width in images)
    shots(page, "report-top")
    table = page.locator("table.sortable").first
    header = table.locator("th", has_text="stored")
    values = "Array.from(t.tBodies[0].rows).map(r => parseFloat(r.cells[2].dataset.value))"
    header.click()
    ascending = table.evaluate(f"t => {values}")
    assert ascending == sorted(ascending) and len(set(ascending)) > 1
    header.click()
    assert table.evaluate(f"t => {values}") == sorted(ascending, reverse=True)
    names = "Array.from(t.tBodies[0].rows).map(r => r.cells[0].textContent)"
    table.locator("th", has_text="repository").click()
    assert table.evaluate(f"t => {names}") == sorted(table.evaluate(f"t => {names}"))
    shots(page, "report-sorted", table)
    page.close()


def test_the_dashboard(browser: Any, sample_registry: LocalRegistry, shots: Shots, tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dreg_frames",
            "dashboard",
            sample_registry.url,
            "--port",
            str(port),
            "--audit-log",
            str(tmp_path / "audit.csv"),
        ],
        env={**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config")},
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "voila.log").open("wb"),
        start_new_session=True,  # so that teardown can check nothing of it is left
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/voila/static/nothing", process)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(f"http://127.0.0.1:{port}/")
        expect(page.locator(".dreg-dashboard")).to_be_visible(timeout=90_000)
        expect(page.locator("h2", has_text="Registry 127.0.0.1:")).to_be_visible()
        shots(page, "dashboard-storage")
        for tab, inside in (
            ("Stale", "older than 180 days"),
            ("Duplicates", "digest"),
            ("Audit log", "no audit entries yet"),
        ):
            page.get_by_role("tab", name=tab).click()
            expect(
                page.locator(".lm-TabPanel-stackedPanel:visible, .widget-tab-contents:visible").last
            ).to_contain_text(inside)
        page.get_by_role("tab", name="Cleanup").click()
        widget = page.locator(".dreg-cleanup")
        expect(widget).to_be_visible()
        widget.locator("tbody tr input.dc-pick").first.check()
        widget.locator("button.dc-ask").click()
        widget.locator("button.dc-confirm", has_text="Confirm dry run").click()
        expect(widget.locator(".dc-log")).to_contain_text("Dry run:")
        shots(page, "dashboard-cleanup")
        rows = _audit(tmp_path / "audit.csv")
        assert [(r["dry_run"], r["outcome"]) for r in rows] == [("True", "dry run")]
        page.close()
    finally:
        stop(process)  # SIGTERM: the command stops Voila and its kernels itself
        time.sleep(0.5)
        try:
            os.killpg(process.pid, 0)
            leaked = True
        except ProcessLookupError:
            leaked = False
        if leaked:
            os.killpg(process.pid, 9)
        assert not leaked, "dreg-frames dashboard left Voila running after SIGTERM"
