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


def test_delete_command_dry_run_then_yes(
    registry_server: object, tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    from pathlib import Path

    from dreg_frames import LocalRegistry, Registry, make_layer, push_image

    from .conftest import unique_name

    assert isinstance(registry_server, LocalRegistry) and isinstance(tmp_path, Path)
    registry = Registry.build_with_manual_client(registry_server.url)
    repo = registry.repository(unique_name("cli-delete"))
    pushed = push_image(repo, [make_layer({"c": b"cli"})], ["v1", "v1.0"])
    log = tmp_path / "audit.csv"
    ref = f"{repo.name}@{pushed.digest}"
    assert main(["delete", registry_server.url, ref, "--audit-log", str(log)]) == 0
    out = capsys.readouterr().out
    assert "tags that go with it: v1, v1.0" in out and "outcome: dry run" in out
    assert sorted(repo.tags()) == ["v1", "v1.0"]
    assert main(["delete", registry_server.url, ref, "--yes", "--audit-log", str(log)]) == 0
    assert "outcome: deleted" in capsys.readouterr().out
    assert repo.check_manifest(pushed.digest) is None
    assert main(["delete", registry_server.url, f"{repo.name}:v1"]) == 2
    assert "by digest only" in capsys.readouterr().err
