"""Parsing of manifests, indexes and configs from bytes (no registry needed)."""

from __future__ import annotations

import json

import pytest

from dreg_frames import (
    ImageIndex,
    Manifest,
    ManifestError,
    Platform,
    SchemaOneManifest,
    parse_config,
    parse_manifest,
    sha256_digest,
)
from dreg_frames.client import mediatypes as mt
from dreg_frames.client.errors import UnsupportedMediaType

D = "sha256:" + "1" * 64
E = "sha256:" + "2" * 64


def _manifest(media_type: str | None) -> bytes:
    body: dict[str, object] = {
        "schemaVersion": 2,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": D, "size": 7},
        "layers": [
            {"mediaType": mt.OCI_LAYER, "digest": E, "size": 100},
            {"mediaType": mt.OCI_LAYER, "digest": D, "size": 23},
        ],
    }
    if media_type:
        body["mediaType"] = media_type
    return json.dumps(body).encode()


def test_oci_manifest_without_media_type_field_uses_content_type() -> None:
    raw = _manifest(None)
    m = parse_manifest(raw, mt.OCI_MANIFEST + "; charset=utf-8")
    assert isinstance(m, Manifest)
    assert m.media_type == mt.OCI_MANIFEST
    assert m.digest == sha256_digest(raw)
    assert m.size == 123
    assert m.total_size == 123 + 7 + len(raw)
    assert [layer.digest for layer in m.layers] == [E, D]


def test_without_field_or_header_the_shape_decides() -> None:
    assert isinstance(parse_manifest(_manifest(None)), Manifest)
    index = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    assert isinstance(parse_manifest(index), ImageIndex)


def test_docker_manifest_list_children_have_platforms() -> None:
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.DOCKER_MANIFEST_LIST,
            "manifests": [
                {
                    "mediaType": mt.DOCKER_MANIFEST,
                    "digest": D,
                    "size": 5,
                    "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
                },
                {
                    "mediaType": mt.DOCKER_MANIFEST,
                    "digest": E,
                    "size": 5,
                    "platform": {"os": "windows", "architecture": "amd64", "os.version": "10.0.17763.1"},
                },
            ],
        }
    ).encode()
    index = parse_manifest(raw, "application/json")
    assert isinstance(index, ImageIndex)
    assert index.platforms == ("linux/arm64/v8", "windows/amd64")
    assert index.child("linux/arm64/v8").digest == D
    assert index.manifests[1].platform == Platform("windows", "amd64", None, "10.0.17763.1")
    with pytest.raises(KeyError, match="linux/s390x"):
        index.child("linux/s390x")


def test_schema1_is_read() -> None:
    raw = json.dumps(
        {
            "schemaVersion": 1,
            "name": "team/app",
            "tag": "old",
            "architecture": "amd64",
            "fsLayers": [{"blobSum": D}, {"blobSum": E}],
            "history": [{"v1Compatibility": json.dumps({"created": "2015-01-02T03:04:05.123456789Z"})}],
            "signatures": [],
        }
    ).encode()
    m = parse_manifest(raw, mt.DOCKER_SCHEMA1_SIGNED)
    assert isinstance(m, SchemaOneManifest)
    assert m.fs_layers == (D, E)
    assert m.created == "2015-01-02T03:04:05.123456789Z"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[]",
        b"{",
        b"\xff",
        b'{"schemaVersion":2,"mediaType":5}',
        b'{"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}',
        b'{"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"x","size":1},"layers":[]}',
        b'{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":{}}',
        b'{"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:'
        + b"1" * 64
        + b'","size":-1},"layers":[]}',
    ],
)
def test_bad_manifests_raise_manifest_error(raw: bytes) -> None:
    with pytest.raises(ManifestError):
        parse_manifest(raw)


def test_unknown_media_type() -> None:
    with pytest.raises(UnsupportedMediaType, match="application/x-thing"):
        parse_manifest(b'{"mediaType":"application/x-thing"}')


def test_config_keeps_nanoseconds_and_platform() -> None:
    raw = json.dumps(
        {
            "created": "2023-05-06T07:08:09.123456789Z",
            "os": "linux",
            "architecture": "arm",
            "variant": "v7",
            "rootfs": {"type": "layers", "diff_ids": [D]},
            "history": [{"created_by": "RUN x"}],
            "config": {"Labels": {"team": "a"}},
        }
    ).encode()
    config = parse_config(raw)
    assert config.created_raw == "2023-05-06T07:08:09.123456789Z"
    assert config.created is not None and config.created.microsecond == 123456
    assert str(config.platform) == "linux/arm/v7"
    assert config.labels == {"team": "a"}


@pytest.mark.parametrize("raw", [b'{"created": 5}', b'{"rootfs": []}', b"null"])
def test_bad_configs(raw: bytes) -> None:
    with pytest.raises(ManifestError):
        parse_config(raw)


@pytest.mark.parametrize("created", ["yesterday", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_unreadable_dates_keep_the_config(created: str) -> None:
    # a date is never a reason to lose a config: its text stays, the time is unknown
    config = parse_config(json.dumps({"created": created, "os": "linux", "architecture": "amd64"}).encode())
    assert config.created_raw == created and config.created is None
    assert str(config.platform) == "linux/amd64"
