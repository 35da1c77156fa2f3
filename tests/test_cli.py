"""The command line, end to end against a real local registry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dreg_frames.cli import main
from dreg_frames.sample import load_spec


def test_demo_pushes_crawls_and_writes_the_report(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["demo", "-o", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    spec = load_spec()
    artifacts = spec.get("artifacts", [])  # each adds one tag: the signature's, the SBOM's index, the chart's
    repositories = {image["repository"] for image in spec["images"]} | {a["repository"] for a in artifacts}
    tags = {(image["repository"], tag) for image in spec["images"] for tag in image["tags"]}
    tags |= {(a["repository"], f"artifact-{i}") for i, a in enumerate(artifacts)}
    for image in spec["images"]:
        assert image["repository"] in out
        for tag in image["tags"]:
            assert f"  {tag} " in out
    assert f"{len(repositories)} repositories, {len(tags)} tags" in out and "0 errors" in out
    assert "(suspect date)" in out  # the epoch-stamped reproducible build
    _check_report(tmp_path / "report", expected_tags=len(tags))


def _check_report(folder: Path, expected_tags: int) -> None:
    for name in (
        "index.html",
        "storage.png",
        "age.png",
        "layer_sharing.png",
        "tags.csv",
        "images.csv",
        "storage_by_repository.csv",
        "storage_by_namespace.csv",
        "stale_candidates.csv",
        "duplicates.csv",
        "errors.csv",
    ):
        assert (folder / name).stat().st_size > 0, name
    assert (folder / "storage.png").read_bytes()[:4] == b"\x89PNG"
    assert len(pd.read_csv(folder / "tags.csv")) == expected_tags
    page = (folder / "index.html").read_text()
    assert "Where the bytes are" in page and "Stale candidates" in page
    assert 'src="data:image/png;base64,' in page  # plots embedded: the page alone is the report
    usage = pd.read_csv(folder / "storage_by_repository.csv")
    assert usage["repository"].iloc[-1] == "(registry total)"


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
    assert "tags that go: v1, v1.0" in out and ": dry run" in out
    assert sorted(repo.tags()) == ["v1", "v1.0"]
    assert main(["delete", registry_server.url, ref, "--yes", "--audit-log", str(log)]) == 0
    assert ": deleted" in capsys.readouterr().out
    assert repo.check_manifest(pushed.digest) is None
    assert main(["delete", registry_server.url, f"{repo.name}:v1"]) == 2
    assert "by digest only" in capsys.readouterr().err


def test_crawl_report_stale_duplicates_usage(
    registry_server: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dreg_frames import LocalRegistry, Registry, make_layer, push_image

    from .conftest import unique_name

    assert isinstance(registry_server, LocalRegistry)
    registry = Registry.build_with_manual_client(registry_server.url)
    name = unique_name("cli-crawl")
    repo = registry.repository(name)
    push_image(repo, [make_layer({"o": b"old"})], ["old"], created="2020-01-01T00:00:00Z")
    push_image(repo, [make_layer({"n": b"new"})], ["new", "latest"], created="2026-01-01T00:00:00Z")
    saved = tmp_path / "crawl"
    assert (
        main(["crawl", registry_server.url, "-o", str(saved), "--format", "csv", "--repositories", name]) == 0
    )
    assert (saved / "crawl.json").exists() and "saved to" in capsys.readouterr().out
    assert main(["report", str(saved), "-o", str(tmp_path / "report")]) == 0
    _check_report(tmp_path / "report", expected_tags=3)
    assert main(["stale", str(saved), "--keep-latest", "0", "--older-than", "365D"]) == 0
    out = capsys.readouterr().out
    assert "old" in out and "latest" not in out
    assert main(["duplicates", str(saved), "--csv", str(tmp_path / "d.csv")]) == 0
    assert pd.read_csv(tmp_path / "d.csv")["references"].iloc[0] == f"{name}:latest {name}:new"
    assert main(["usage", str(saved), "--by", "namespace"]) == 0
    assert "(registry total)" in capsys.readouterr().out
    # straight from the URL, too
    assert main(["usage", registry_server.url, "--repositories", name, "--csv", str(tmp_path / "u.csv")]) == 0
    assert pd.read_csv(tmp_path / "u.csv")["n_tags"].iloc[0] == 3


def test_friendly_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dreg_frames.local_registry import free_port

    assert main(["crawl", f"http://127.0.0.1:{free_port()}", "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "cannot reach" in err and "hint: check the URL" in err
    (tmp_path / "plain").mkdir()
    assert main(["usage", str(tmp_path / "plain")]) == 2
    assert "not a saved crawl" in capsys.readouterr().err
    assert main(["crawl", "ftp://x", "-o", str(tmp_path / "y")]) == 2
    assert "http:// or https://" in capsys.readouterr().err
