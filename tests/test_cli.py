"""The command line, end to end against a real local registry."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dreg_frames.cli import main
from dreg_frames.sample import load_spec


def test_demo_pushes_and_reports_the_sample(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    spec = load_spec()
    for image in spec["images"]:
        assert image["repository"] in out
        for tag in image["tags"]:
            assert f"  {tag} " in out
    assert "12 repositories, 28 tags" in out and "0 errors" in out
    assert "(suspect date)" in out  # the epoch-stamped reproducible build


def test_console_script_help_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dreg_frames", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "demo" in done.stdout
