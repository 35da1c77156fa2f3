"""An independent client (skopeo) reads what our push API wrote, byte for byte."""

from __future__ import annotations

import json
import shutil
import subprocess

from dreg_frames import LocalRegistry, Repository, make_layer, push_image, push_multiarch, sha256_digest


def _skopeo(*args: str) -> bytes:
    assert shutil.which("skopeo"), "skopeo is missing: the README's test command installs it"
    done = subprocess.run(["skopeo", *args], capture_output=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def _ref(server: LocalRegistry, repo: Repository, tag: str) -> str:
    return f"docker://127.0.0.1:{server.port}/{repo.name}:{tag}"


def test_skopeo_reads_our_docker_image(registry_server: LocalRegistry, repo: Repository) -> None:
    pushed = push_image(repo, [make_layer({"x": b"skopeo"})], tags=["v1"], created="2022-02-02T02:02:02Z")
    raw = _skopeo("inspect", "--raw", "--tls-verify=false", _ref(registry_server, repo, "v1"))
    assert sha256_digest(raw) == pushed.digest
    info = json.loads(_skopeo("inspect", "--tls-verify=false", _ref(registry_server, repo, "v1")))
    assert info["Digest"] == pushed.digest
    assert info["Created"].startswith("2022-02-02T02:02:02")
    assert info["Architecture"] == "amd64"
    assert info["Layers"] == [layer.digest for layer in pushed.layers]


def test_skopeo_reads_our_oci_index(registry_server: LocalRegistry, repo: Repository) -> None:
    index = push_multiarch(
        repo,
        {"linux/amd64": [make_layer({"a": b"1"})], "linux/arm64/v8": [make_layer({"a": b"2"})]},
        tags=["multi"],
        oci=True,
    )
    raw = _skopeo("inspect", "--raw", "--tls-verify=false", _ref(registry_server, repo, "multi"))
    assert sha256_digest(raw) == index.digest
    assert json.loads(raw)["mediaType"] == "application/vnd.oci.image.index.v1+json"
    arm = json.loads(
        _skopeo(
            "inspect",
            "--tls-verify=false",
            "--override-arch=arm64",
            "--override-variant=v8",
            _ref(registry_server, repo, "multi"),
        )
    )
    assert arm["Architecture"] == "arm64"
