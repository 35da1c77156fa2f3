"""dreg_frames.compat.dreg_client as a drop-in for dreg-client 1.2.0.

dreg-client's own unit tests (from its PyPI sdist, downloaded here, never copied into this
repository) run in a subprocess with ``dreg_client`` aliased to the compat module, and its example
script ``docker-registry-show.py`` runs against the real registry. The compat API is also driven
against the real registry, plainly and behind token auth.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import requests_mock
import responses

import dreg_frames.compat.dreg_client as dreg_client
from dreg_frames import LocalRegistry, ManifestNotFound, Registry, make_layer, push_image, push_multiarch
from dreg_frames.client.errors import DigestMismatch
from dreg_frames.client.reference import sha256_digest

from .conftest import unique_name
from .pki import self_signed
from .token_server import ADMIN, SERVICE, TokenServer

DREG_CLIENT = "dreg-client==1.2.0"

# Tests of dreg-client's private helpers, which the compat module does not reproduce.
PRIVATE_HELPER_TESTS = {
    # the expiry arithmetic of dreg-client's own token cache (dreg-frames' TokenAuthService caches
    # tokens; the public request_token tests below check the same renewal times)
    "tests/test_auth_service.py::test_make_expires_at": 22,
    "tests/test_auth_service.py::test_has_auth_token_expired": 88,
    # parse_manifest_response / parse_image_config_blob_response(response): header checks on a mocked
    # response; dreg-frames reads the body itself and computes the digest and length from it
    "tests/manifest/test_parse_manifest.py": 11,
    "tests/manifest/test_parse_image_config.py": 4,
}
PUBLIC_API_TESTS = 73
# Public-API tests that serve content under a digest it does not have: dreg-frames verifies digests
# and refuses it. The reasons below must be what their failures say.
DIGEST_REFUSALS = {
    # a schema1 manifest whose "signature" is the placeholder text "protected"/"signature"
    "tests.test_client::test_get_manifest_success": ("DigestMismatch", "signature"),
    # a config served as sha256:1a067abcdef1... which its bytes do not hash to
    "tests.test_client::test_get_image_config_blob_success": ("DigestMismatch",),
}

# `import dreg_client` gives the compat package; its submodules are registered too, so that
# `dreg_client.manifest.Manifest` and `dreg_frames.compat.dreg_client.manifest.Manifest` are one class.
SHIM = """\
import importlib
import sys

import dreg_frames.compat.dreg_client as compat

for name in ("_types", "auth_service", "client", "image", "manifest", "registry", "repository", "schemas"):
    sys.modules[f"dreg_client.{name}"] = importlib.import_module(f"dreg_frames.compat.dreg_client.{name}")
sys.modules["dreg_client"] = compat
"""

# test_auth_service.py imports two private helpers at the top; these stand-ins let its public tests
# be collected, and fail if anything calls them (their own tests are deselected).
PRIVATE_NAMES_PLUGIN = """\
import dreg_client
import dreg_client.auth_service

assert dreg_client.__name__ == "dreg_frames.compat.dreg_client", dreg_client.__name__


def _private_helper(*args, **kwargs):
    raise NotImplementedError("a private helper of dreg-client, not part of the compat API")


dreg_client.auth_service.AuthToken = _private_helper
dreg_client.auth_service.make_expires_at = _private_helper


def pytest_report_header(config):
    return f"dreg_client is {dreg_client.__name__}"
"""


@dataclass(frozen=True)
class Sdist:
    root: Path  # the unpacked dreg-client-1.2.0/ without its dreg_client package
    shim: Path  # a directory to put first on PYTHONPATH

    def env(self) -> dict[str, str]:
        path = os.pathsep.join(filter(None, [str(self.shim), os.environ.get("PYTHONPATH")]))
        return {**os.environ, "PYTHONPATH": path}


@pytest.fixture(scope="session")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Sdist:
    folder = tmp_path_factory.mktemp("dreg-client-sdist")
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "-q",
        "--no-binary",
        ":all:",
        "--no-deps",
        DREG_CLIENT,
    ]
    # pip reads the sdist's metadata; with the installed setuptools that takes 3 s instead of 10 s
    # (a fresh build environment), and without setuptools installed it falls back to one.
    for isolation in (["--no-build-isolation"], []):
        download = subprocess.run(
            command + isolation, cwd=folder, capture_output=True, text=True, timeout=300
        )
        if download.returncode == 0:
            break
    archives = list(folder.glob("dreg*client-1.2.0.tar.gz"))
    assert download.returncode == 0 and archives, f"pip download {DREG_CLIENT} failed:\n{download.stderr}"
    with tarfile.open(archives[0]) as archive:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12
            archive.extractall(folder, filter="data")
        else:  # pragma: no cover
            archive.extractall(folder)
    root = folder / "dreg-client-1.2.0"
    # Nothing but the compat module can answer `import dreg_client` in what runs below.
    shutil.rmtree(root / "dreg_client")
    shim = folder / "shim"
    (shim / "dreg_client").mkdir(parents=True)
    (shim / "dreg_client" / "__init__.py").write_text(SHIM)
    (shim / "dreg_client_private_names.py").write_text(PRIVATE_NAMES_PLUGIN)
    return Sdist(root, shim)


def test_dreg_client_unit_tests_pass_against_the_compat_module(sdist: Sdist, tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    excluded = [f"--deselect={test}" for test in PRIVATE_HELPER_TESTS if "::" in test]
    excluded += [f"--ignore={test}" for test in PRIVATE_HELPER_TESTS if "::" not in test]
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "dreg_client",
            "-p",
            "dreg_client_private_names",
            "-p",
            "no:cacheprovider",
            "tests",
            # needs a Docker daemon to build and push images (covered against the real registry below)
            "--ignore=tests/integration",
            *excluded,
            f"--junitxml={report}",
        ],
        cwd=sdist.root,
        env=sdist.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "dreg_client is dreg_frames.compat.dreg_client" in run.stdout, run.stdout + run.stderr
    outcomes = _junit_outcomes(report)
    assert len(outcomes) == PUBLIC_API_TESTS, sorted(outcomes)
    failed = {test: text for test, (outcome, text) in outcomes.items() if outcome != "passed"}
    assert set(failed) == set(DIGEST_REFUSALS), {test: text[-2000:] for test, text in failed.items()}
    for test, reasons in DIGEST_REFUSALS.items():
        assert any(reason in failed[test] for reason in reasons), failed[test][-3000:]
    passed = len(outcomes) - len(failed)
    print(f"dreg-client {DREG_CLIENT}: {passed} of {len(outcomes)} public-API unit tests pass")


def _junit_outcomes(report: Path) -> dict[str, tuple[str, str]]:
    outcomes: dict[str, tuple[str, str]] = {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        test = f"{case.get('classname')}::{case.get('name')}"
        outcome, text = "passed", ""
        for kind in ("failure", "error", "skipped"):
            found = case.find(kind)
            if found is not None:
                outcome, text = kind, f"{found.get('message', '')}\n{found.text or ''}"
        outcomes[test] = outcome, text
    return outcomes


def _show(sdist: Sdist, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(sdist.root / "docker-registry-show.py"), *args],
        env=sdist.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_docker_registry_show_against_the_real_registry(
    sdist: Sdist, registry_server: LocalRegistry, registry: Registry
) -> None:
    name = unique_name("show")
    pushed = push_image(registry.repository(name), [make_layer({"a": b"show"})], ["v1", "v2"])
    index = push_multiarch(
        registry.repository(f"{name}-oci"),
        {"linux/amd64": [make_layer({"b": b"amd"})], "linux/arm64/v8": [make_layer({"b": b"arm"})]},
        ["multi"],
        oci=True,
    )

    listing = _show(sdist, registry_server.url)
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.startswith("Repositories:\n")
    assert {f"  - {name}", f"  - {name}-oci"} <= set(listing.stdout.splitlines())

    tags = _show(sdist, registry_server.url, name)
    assert tags.returncode == 0, tags.stderr
    assert tags.stdout.splitlines() == [f"Tags in repository {name}:", "  - v1", "  - v2"]

    # The script prints the digest, then json.dumps(manifest) of a dataclass fails: dreg-client 1.2.0's
    # own script does exactly the same with dreg-client itself.
    for reference, digest in (("v1", pushed.digest), ("multi", index.digest)):
        shown = _show(sdist, registry_server.url, name if reference == "v1" else f"{name}-oci", reference)
        assert shown.stdout.splitlines()[:2] == [f"Digest: {digest}", "Manifest:"], shown.stderr
        assert "is not JSON serializable" in shown.stderr


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalRegistry, TokenServer]]:
    folder = tmp_path_factory.mktemp("compat-token")
    signer = self_signed("dreg-compat-token-signer", ca=False)
    cert, _ = signer.write(folder, "signer")
    with TokenServer(signer) as tokens, LocalRegistry(auth=tokens.registry_auth(cert)) as server:
        admin = Registry.build_with_manual_client(server.url, auth=ADMIN, docker_config=False)
        push_image(admin.repository("team/app"), [make_layer({"t": b"token"})], ["v1"])
        yield server, tokens


def test_docker_registry_show_with_a_token_service(
    sdist: Sdist, token_registry: tuple[LocalRegistry, TokenServer]
) -> None:
    server, tokens = token_registry
    login = ["--username", ADMIN[0], "--password", ADMIN[1], "--auth-token-url", tokens.realm]
    shown = _show(sdist, *login, "--auth-service", SERVICE, server.url)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == ["Repositories:", "  - team/app"]
    assert {"user": "admin", "scopes": ["registry:catalog:*"], "service": [SERVICE]} in tokens.requests


def test_token_service_and_anonymous_pull(token_registry: tuple[LocalRegistry, TokenServer]) -> None:
    server, tokens = token_registry
    service = dreg_client.DockerTokenAuthService.build_with_session(tokens.realm, SERVICE, auth=ADMIN)
    admin = dreg_client.Registry.build_with_manual_client(server.url, auth_service=service)
    assert list(admin.repositories()) == ["team/app"]
    # Without credentials dreg-frames fetches an anonymous token from the challenge's realm (pull only).
    anonymous = dreg_client.Registry.build_with_manual_client(server.url)
    assert anonymous.repository("team/app").tags() == ("v1",)
    with pytest.raises(requests.HTTPError) as refused:
        anonymous.repositories()
    assert refused.value.response is not None and refused.value.response.status_code == 401
    wrong = dreg_client.DockerTokenAuthService.build_with_session(tokens.realm, SERVICE, auth=("admin", "no"))
    with pytest.raises(dreg_client.AuthServiceFailure, match="Failed to retrieve valid auth token"):
        wrong.request_token("registry:catalog:*")


def test_registry_repositories_and_images_against_the_real_registry(
    registry_server: LocalRegistry, registry: Registry
) -> None:
    namespace = unique_name("compat").split("/")[0]
    single = push_image(
        registry.repository(f"{namespace}/single"), [make_layer({"s": b"1"}), make_layer({"s": b"2"})], ["v1"]
    )
    multi = push_multiarch(
        registry.repository(f"{namespace}/multi"),
        {"linux/amd64": [make_layer({"m": b"amd"})], "linux/arm/v7": [make_layer({"m": b"arm"})]},
        ["v1"],
        oci=True,
    )
    compat = dreg_client.Registry.build_with_manual_client(registry_server.url)

    assert namespace in compat.namespaces()
    assert sorted(compat.repositories(namespace)) == [f"{namespace}/multi", f"{namespace}/single"]
    with pytest.raises(KeyError):
        compat.repositories(f"{namespace}-unknown")
    repo = compat.repository("single", namespace)
    assert repo is compat.repository(f"{namespace}/single") is compat.repositories()[f"{namespace}/single"]
    with pytest.raises(ValueError, match="Cannot specify namespace twice"):
        compat.repository(f"{namespace}/single", namespace)

    assert repo.tags() == ("v1",)
    push_image(registry.repository(f"{namespace}/single"), [make_layer({"s": b"3"})], ["v2"])
    assert repo.tags() == ("v1",)  # cached, as in dreg-client
    repo.refresh()
    assert repo.tags() == ("v1", "v2")

    manifest = repo.get_manifest("v1")
    assert isinstance(manifest, dreg_client.Manifest)
    assert (manifest.digest, manifest.content_type) == (single.digest, single.media_type)
    assert manifest.content_length == len(single.raw)
    assert manifest.short_digest == single.digest[7:19]
    assert manifest.image_size == single.size == sum(layer.size for layer in manifest.layers)
    assert manifest.config.digest == single.config.digest
    assert repo.check_manifest("v1") == single.digest
    assert repo.check_manifest("missing") is None

    image = repo.get_image("v1")
    assert isinstance(image, dreg_client.Image)
    assert (image.repo, image.tag, image.platforms) == (
        repo.name,
        "v1",
        {dreg_client.Platform("linux", "amd64")},
    )
    (platform_image,) = image.get_platform_images()
    assert platform_image.digest == single.digest and platform_image.platform_name == "linux/amd64"
    assert platform_image.config.created_at == "2024-01-01T00:00:00Z"
    assert platform_image.image_size == single.size

    listed = compat.repository(f"{namespace}/multi").get_image("v1")
    assert isinstance(listed, dreg_client.Image)
    assert listed.manifest_list.digest == multi.digest
    assert listed.manifest_list.content_type == dreg_client.schemas.schema_oci_index
    assert listed.platforms == dreg_client.Platform.from_names(["linux/amd64", "linux/arm/v7"])
    arm = listed.fetch_manifest_by_platform_name("linux/arm/v7")
    assert arm.digest == multi.child("linux/arm/v7").digest
    with pytest.raises(dreg_client.UnexpectedImageManifestError):
        listed.fetch_manifest_by_digest(multi.digest)
    with pytest.raises(dreg_client.UnavailableImagePlatformError):
        listed.fetch_manifest_by_platform(dreg_client.Platform.from_name("linux/s390x"))

    with pytest.raises(requests.HTTPError, match="404 Client Error") as missing:
        repo.get_manifest("nope")
    assert isinstance(missing.value.__cause__, ManifestNotFound)

    config_response = repo.get_blob(single.config.digest)
    assert config_response.headers["Docker-Content-Digest"] == single.config.digest
    assert config_response.json()["os"] == "linux"
    deleted = repo.delete_manifest(single.digest)
    assert isinstance(deleted, requests.Response) and deleted.status_code == 202
    assert repo.check_manifest("v1") is None
    assert repo.delete_blob(single.config.digest).status_code == 202


BASE = "https://registry.example.com/v2/"
CONFIG = b'{"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z","config":{},"rootfs":{}}'


def test_calls_go_through_requests_mock_too() -> None:
    digest = sha256_digest(CONFIG)
    client = dreg_client.Client.build_with_session(BASE)
    with requests_mock.Mocker() as mock:
        mock.get(f"{BASE}_catalog", json={"repositories": ["a/b"]})
        mock.get(f"{BASE}a/b/blobs/{digest}", content=CONFIG)
        assert client.catalog() == {"repositories": ["a/b"]}
        config = client.get_image_config_blob("a/b", digest)
    assert (config.digest, config.platform_name, config.content_length) == (
        digest,
        "linux/amd64",
        len(CONFIG),
    )


def test_content_under_a_digest_it_does_not_have_is_refused() -> None:
    made_up = "sha256:" + "1" * 64
    client = dreg_client.Client.build_with_session(BASE)
    with responses.RequestsMock() as mocked:
        mocked.add(responses.GET, f"{BASE}a/b/blobs/{made_up}", body=CONFIG)
        with pytest.raises(DigestMismatch):
            client.get_image_config_blob("a/b", made_up)


def test_the_compat_module_loads_no_pandas() -> None:
    code = "import sys, dreg_frames.compat.dreg_client as d; d.Registry; print('pandas' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert loaded.stdout.strip() == "False", loaded.stderr


def test_the_sdist_is_not_imported(sdist: Sdist) -> None:
    """The alias, not dreg-client's code, answers `import dreg_client` (its package was removed)."""
    probe = textwrap.dedent(
        """
        import dreg_client, dreg_client.manifest
        print(dreg_client.__name__, dreg_client.manifest.Manifest.__module__)
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", probe], cwd=sdist.root, env=sdist.env(), capture_output=True, text=True
    )
    assert run.stdout.split() == ["dreg_frames.compat.dreg_client", "dreg_frames.compat.dreg_client.manifest"]
