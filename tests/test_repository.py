"""Repository operations against the real Distribution registry."""

from __future__ import annotations

import io
import json

import pytest

from dreg_frames import (
    BlobNotFound,
    DigestMismatch,
    ImageIndex,
    InvalidReference,
    LocalRegistry,
    Manifest,
    ManifestNotFound,
    Registry,
    Repository,
    RepositoryNotFound,
    UnsupportedOperation,
    make_layer,
    push_image,
    push_multiarch,
    sha256_digest,
)
from dreg_frames.client import mediatypes as mt

from .conftest import unique_name


@pytest.mark.parametrize(
    ("oci", "expected"), [(False, mt.DOCKER_MANIFEST), (True, mt.OCI_MANIFEST)], ids=["docker", "oci"]
)
def test_single_arch_round_trip(repo: Repository, oci: bool, expected: str) -> None:
    layers = [make_layer({"bin/app": b"app" * 100}), make_layer({"etc/conf": b"conf"})]
    pushed = push_image(
        repo, layers, tags=["v1", "latest"], created="2023-04-05T06:07:08.123456789Z", oci=oci
    )
    got = repo.get_manifest("v1")
    assert isinstance(got, Manifest)
    assert got.media_type == expected
    assert got.digest == pushed.digest
    assert [layer.digest for layer in got.layers] == [sha256_digest(layer) for layer in layers]
    assert got.size == sum(len(layer) for layer in layers)
    assert repo.get_manifest(got.digest).raw == got.raw
    assert repo.check_manifest("latest") == got.digest
    config = repo.get_config(got)
    assert config.created_raw == "2023-04-05T06:07:08.123456789Z"
    assert str(config.platform) == "linux/amd64"
    assert sorted(repo.tags()) == ["latest", "v1"]


@pytest.mark.parametrize(
    ("oci", "expected"), [(False, mt.DOCKER_MANIFEST_LIST), (True, mt.OCI_INDEX)], ids=["docker", "oci"]
)
def test_multi_arch_index_and_children(repo: Repository, oci: bool, expected: str) -> None:
    images = {
        "linux/amd64": [make_layer({"a": b"amd64"})],
        "linux/arm64/v8": [make_layer({"a": b"arm64"}), make_layer({"b": b"extra"})],
    }
    index = push_multiarch(repo, images, tags=["multi"], oci=oci)
    got = repo.get_manifest("multi")
    assert isinstance(got, ImageIndex)
    assert got.media_type == expected
    assert got.digest == index.digest
    assert got.platforms == ("linux/amd64", "linux/arm64/v8")
    # The full Accept list makes HEAD answer with the index digest, not a child's.
    assert repo.check_manifest("multi") == index.digest
    child = repo.get_manifest(got.child("linux/arm64/v8").digest)
    assert isinstance(child, Manifest)
    assert len(child.layers) == 2
    assert str(repo.get_config(child).platform) == "linux/arm64/v8"


def test_delete_by_digest_removes_every_tag_on_it(repo: Repository) -> None:
    keep = push_image(repo, [make_layer({"k": b"keep"})], tags=["keep"])
    gone = push_image(repo, [make_layer({"g": b"gone"})], tags=["a", "b", "c"])
    repo.delete_manifest(gone.digest)
    assert repo.tags() == ["keep"]
    assert repo.check_manifest("a") is None
    assert repo.check_manifest(keep.digest) == keep.digest
    with pytest.raises(ManifestNotFound) as info:
        repo.get_manifest("b")
    assert info.value.status == 404
    assert info.value.codes == ("MANIFEST_UNKNOWN",)
    assert info.value.response is not None
    with pytest.raises(ManifestNotFound):
        repo.delete_manifest(gone.digest)


def test_delete_refused_when_deletes_disabled(nodelete_server: LocalRegistry) -> None:
    registry = Registry.build_with_manual_client(nodelete_server.url)
    repo = registry.repository(unique_name("nodelete"))
    pushed = push_image(repo, [make_layer({"x": b"x"})], tags=["v1"])
    with pytest.raises(UnsupportedOperation) as info:
        repo.delete_manifest(pushed.digest)
    assert info.value.status == 405
    assert info.value.code == "UNSUPPORTED"
    assert repo.tags() == ["v1"]


def test_blobs_get_delete_and_file_push(repo: Repository) -> None:
    payload = b"blob-data" * 1000
    descriptor = repo.push_blob(io.BytesIO(payload))
    assert descriptor.digest == sha256_digest(payload) and descriptor.size == len(payload)
    response = repo.get_blob(descriptor.digest)
    assert response.status_code == 200 and response.content == payload
    assert repo.blob_bytes(descriptor.digest) == payload
    assert repo.check_blob(descriptor.digest) == len(payload)
    assert repo.delete_blob(descriptor.digest).status_code == 202
    assert repo.check_blob(descriptor.digest) is None
    with pytest.raises(BlobNotFound):
        repo.get_blob(descriptor.digest)


def test_push_blob_checks_the_digest_it_was_told(repo: Repository) -> None:
    with pytest.raises(DigestMismatch):
        repo.push_blob(b"abc", digest=sha256_digest(b"abd"))


def test_cross_repository_mount(registry: Registry, repo: Repository) -> None:
    descriptor = repo.push_blob(b"shared base layer")
    other = registry.repository(unique_name("mount-target"))
    assert other.mount_blob(descriptor.digest, repo) is True
    assert other.check_blob(descriptor.digest) == len(b"shared base layer")
    missing = sha256_digest(b"nobody has this")
    assert other.mount_blob(missing, repo) is False


def test_put_manifest_with_digest_reference_must_match(repo: Repository) -> None:
    body = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}).encode()
    with pytest.raises(DigestMismatch):
        repo.put_manifest(sha256_digest(b"other"), body, mt.OCI_INDEX)
    assert repo.put_manifest("empty", body, mt.OCI_INDEX) == sha256_digest(body)


def test_tag_copies_exact_bytes(repo: Repository) -> None:
    pushed = push_image(repo, [make_layer({"t": b"t"})])
    # Distribution 2.8 answers NAME_UNKNOWN for the tags of a repository that never had one.
    with pytest.raises(RepositoryNotFound):
        repo.tags()
    assert repo.tag(pushed.digest, "promoted") == pushed.digest
    assert repo.check_manifest("promoted") == pushed.digest
    assert repo.tags() == ["promoted"]


def test_many_tags_all_listed(repo: Repository) -> None:
    pushed = push_image(repo, [make_layer({"m": b"m"})])
    names = [f"t{i:04d}" for i in range(1100)]
    for name in names:
        repo.put_manifest(name, pushed.raw, pushed.media_type)
    assert sorted(repo.tags()) == names


def test_unknown_repository_and_tag(registry: Registry) -> None:
    missing = registry.repository(unique_name("never-pushed"))
    with pytest.raises(RepositoryNotFound) as info:
        missing.tags()
    assert info.value.code == "NAME_UNKNOWN"
    assert "never-pushed" in str(info.value)
    assert missing.check_manifest("v1") is None


@pytest.mark.parametrize(
    "call",
    [
        lambda r: r.get_manifest("../../etc/passwd"),
        lambda r: r.get_manifest("v1\n"),
        lambda r: r.check_manifest("sha256:abc"),
        lambda r: r.delete_manifest("latest"),
        lambda r: r.get_blob("sha256:" + "0" * 63),
        lambda r: r.delete_blob("%2e%2e"),
        lambda r: r.put_manifest("a/b", b"{}", mt.OCI_MANIFEST),
        lambda r: r.mount_blob("sha256:" + "0" * 64, "../other"),
    ],
)
def test_bad_references_rejected_before_any_request(registry: Registry, call: object) -> None:
    repo = registry.repository("team/app")
    before = registry.client.requests_made
    with pytest.raises(InvalidReference):
        call(repo)  # type: ignore[operator]
    assert registry.client.requests_made == before


@pytest.mark.parametrize("name", ["../etc", "Team/App", "a/%2e%2e", "a\n"])
def test_bad_repository_names_rejected(registry: Registry, name: str) -> None:
    with pytest.raises(InvalidReference, match="invalid name"):
        registry.repository(name)
