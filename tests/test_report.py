"""The HTML report is one self-contained page with the figures a reader needs (the browser test
opens it in Chromium: tests/test_browser.py)."""

from __future__ import annotations

import base64
import re
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from dreg_frames import load_sample, reclaimable, stale
from dreg_frames.display import human_bytes
from dreg_frames.report import write_report

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_the_page_alone_is_the_report(tmp_path: Path) -> None:
    result = load_sample()
    page = write_report(result, tmp_path, now=NOW, older_than="180D", keep_latest=2).read_text()
    sources = re.findall(r'<img[^>]* src="([^"]+)"', page)
    assert len(sources) == 3 and all(s.startswith("data:image/png;base64,") for s in sources)
    for source, name in zip(sources, ("storage.png", "age.png", "layer_sharing.png"), strict=True):
        assert base64.b64decode(source.split(",", 1)[1]) == (tmp_path / name).read_bytes()
    assert not re.search(r'(?:src|href)="(?!data:)[^"#]+"', page)  # nothing that needs another file
    candidates = stale(result.images, older_than="180D", keep_latest=2, now=NOW)
    freed = int(reclaimable(result.layers, candidates)["size"].sum())
    summary = page[page.index('<div class="summary">') : page.index('<div class="cards">')]
    assert f"{len(candidates)} stale digests" in summary and human_bytes(freed) in summary
    assert "180 days" in summary and "180D" not in page
    assert "<title>Registry report: sample</title>" in page
    n_repos = result.tags["repository"].nunique()
    assert n_repos > 10 and f"top 10 of {n_repos} repositories" in page
    assert "@media print" in page and "break-inside: avoid" in page
    assert "No errors" in summary


def test_errors_are_counted_at_the_top(tmp_path: Path) -> None:
    result = load_sample()
    row = {"repository": "x/y", "tag": "v1", "stage": "manifest", "error": "E", "message": "boom"}
    result.errors = pd.DataFrame([row], columns=result.errors.columns)
    page = write_report(result, tmp_path, now=NOW).read_text()
    assert "<b>1 errors</b>" in page and "boom" in page


def test_trend_section_from_a_snapshot_store(tmp_path: Path) -> None:
    sample = load_sample()
    store = tmp_path / "snapshots"
    sample.save_snapshot(store, at=pd.Timestamp("2026-11-01T00:00:00Z"))
    sample.save_snapshot(store, at=pd.Timestamp("2026-11-02T00:00:00Z"))
    index = write_report(
        sample, tmp_path / "report", now=datetime(2026, 11, 27, tzinfo=timezone.utc), snapshot_store=store
    )
    page = index.read_text()
    section = page[page.index('<section id="trend">') :]
    assert "2 snapshots" in section and "data:image/png;base64," in section
    assert not re.search(r'<img src="(?!data:)', page)  # still one self-contained file
