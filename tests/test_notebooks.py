"""The example notebooks, executed top to bottom in a real kernel against a real local registry."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from dreg_frames import LocalRegistry, Registry, crawl, stale
from dreg_frames.sample import seed_registry

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@pytest.fixture(scope="module")
def sample_server() -> Iterator[LocalRegistry]:
    with LocalRegistry() as server:
        seed_registry(Registry.build_with_manual_client(server.url))
        yield server


def run_notebook(
    name: str, workdir: Path, params: dict[str, Any], extra: str = "", allow_errors: bool = False
) -> nbformat.NotebookNode:
    """Execute ``name`` with ``params`` injected after its parameters cell (as papermill does)."""
    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    where = next(i for i, c in enumerate(book.cells) if "parameters" in c.metadata.get("tags", []))
    lines = [f"{key} = {value!r}" for key, value in params.items()]
    book.cells.insert(where + 1, nbformat.v4.new_code_cell("# injected by the test\n" + "\n".join(lines)))
    if extra:
        book.cells.append(nbformat.v4.new_code_cell(extra))
    client = NotebookClient(
        book,
        timeout=180,
        kernel_name="python3",
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()
    return book


def widget_states(book: nbformat.NotebookNode) -> list[dict[str, Any]]:
    """The widget models nbclient saved in the executed notebook (what a saved notebook renders)."""
    saved = book.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    return [model["state"] for model in saved.get("state", {}).values()]


def _text(book: nbformat.NotebookNode) -> str:
    parts = []
    for cell in book.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(json.dumps(output.get("data", {})))
    return "\n".join(parts)


def test_notebooks_are_committed_without_outputs() -> None:
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        book = nbformat.read(path, as_version=4)
        for cell in book.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name} has outputs"


def test_01_explore(sample_server: LocalRegistry, tmp_path: Path) -> None:
    book = run_notebook("01-explore.ipynb", tmp_path, {"REGISTRY_URL": sample_server.url})
    text = _text(book)
    assert "Crawl(registry=" in text and "errors=0" in text
    assert "data/reproducible-tool" in text  # the suspect-date cell found the epoch-stamped image


def test_02_storage_report(sample_server: LocalRegistry, tmp_path: Path) -> None:
    book = run_notebook(
        "02-storage-report.ipynb", tmp_path, {"REGISTRY_URL": sample_server.url, "OUTPUT_DIR": "rep"}
    )
    assert "stored once:" in _text(book)
    assert (tmp_path / "rep" / "index.html").exists() and (tmp_path / "rep" / "storage.png").exists()
    assert any(
        o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
        for c in book.cells
        for o in c.get("outputs", [])
    )


def test_03_audit_round_trip(sample_server: LocalRegistry, tmp_path: Path) -> None:
    run_notebook(
        "03-audit-export.ipynb", tmp_path, {"REGISTRY_URL": sample_server.url, "OUTPUT_DIR": "audit"}
    )
    review = pd.read_csv(tmp_path / "audit" / "stale-review.csv", keep_default_na=False)
    assert list(review.columns[:3]) == ["decision", "repository", "digest"] and set(review["decision"]) == {
        ""
    }
    reviewed = pd.read_csv(tmp_path / "audit" / "stale-reviewed.csv", keep_default_na=False)
    plan = pd.read_csv(tmp_path / "audit" / "delete-plan.csv")
    assert len(plan) == (reviewed["decision"] == "delete").sum() > 0
    assert (tmp_path / "audit" / "duplicates.csv").exists()


def test_04_widget_deletes_in_the_kernel(tmp_path: Path) -> None:
    with LocalRegistry() as server:
        registry = Registry.build_with_manual_client(server.url)
        seed_registry(registry)
        candidates = stale(crawl(registry, progress=False).images, older_than="180D", keep_latest=2)
        victim = candidates.iloc[0]
        repo, digest = str(victim["repository"]), str(victim["digest"])
        others = {t: registry.repository(repo).check_manifest(t) for t in registry.repository(repo).tags()}
        drive = f"""
cleanup.select([{repo + "@" + digest!r}])
cleanup.dry_run = False
cleanup.ask()
cleanup.confirm()
print(cleanup.messages)
print("dry run ticked again:", cleanup.dry_run)
"""
        book = run_notebook("04-cleanup-widget.ipynb", tmp_path, {"REGISTRY_URL": server.url}, extra=drive)
        text = _text(book)
        assert "Deleted" in text and "dry run ticked again: True" in text
        assert registry.repository(repo).check_manifest(digest) is None
        for tag, was in others.items():
            expected = None if tag in victim["tags"] else was
            assert registry.repository(repo).check_manifest(tag) == expected, tag
        audit = pd.read_csv(tmp_path / "audit.csv")
        # the intent row is written before the DELETE goes out, the outcome after it
        assert list(audit["outcome"]) == ["deleting", "deleted"] and set(audit["digest"]) == {digest}
        # the executed notebook keeps the widgets' state, so it shows them when opened again: the
        # cleanup widget (its front end included) and the audit view, updated after the delete
        states = widget_states(book)
        cleanup = next(s for s in states if s.get("_model_name") == "AnyModel")
        assert "data-lm-suppress-shortcuts" in cleanup["_esm"] and cleanup["dry_run"] is True
        assert any(r["outcome"] == "deleted" for r in cleanup["rows"])
        assert any("deleted" in str(s.get("value", "")) and digest in str(s.get("value", "")) for s in states)


def test_01_default_starts_the_embedded_demo_registry(tmp_path: Path) -> None:
    book = run_notebook("01-explore.ipynb", tmp_path, {})
    assert "Crawl(registry='127.0.0.1:" in _text(book)


def test_readable_tables_and_progress_units(sample_server: LocalRegistry, tmp_path: Path) -> None:
    book = run_notebook("01-explore.ipynb", tmp_path, {"REGISTRY_URL": sample_server.url})
    html_out = [
        o["data"]["text/html"]
        for c in book.cells
        for o in c.get("outputs", [])
        if "text/html" in o.get("data", {})
    ]
    tags_table = next(h for h in html_out if "platforms" in h and "media_type" in h)
    assert "KiB" in tags_table and "+00:00" not in tags_table and "registry 127.0.0.1:" in tags_table
    assert "('" not in "".join(html_out)  # tuples are shown as "a, b"
    assert "<i>no errors</i>" in "".join(html_out)
    bars = " ".join(str(s.get("value", "")) for s in widget_states(book))
    assert "repository/s" in bars and "repositorie/" not in bars


def test_a_wrong_url_is_one_line_and_a_hint(tmp_path: Path) -> None:
    """A web server that is not a registry: not the catalog hint, and no 60-line traceback."""
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        book = run_notebook("01-explore.ipynb", tmp_path, {"REGISTRY_URL": url}, allow_errors=True)
    finally:
        server.shutdown()
    error = next(o for c in book.cells for o in c.get("outputs", []) if o.get("output_type") == "error")
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in error["traceback"]]
    assert len(lines) <= 3, lines
    assert lines[0].startswith("CatalogUnavailable: ") and "is not a container registry" in lines[0]
    assert lines[1].startswith("hint: check the registry URL") and "repositories" not in " ".join(lines)
