"""The numbers on ordinary and unusual content: category codes, dates, zero-layer manifests, foreign
layers, nested indexes. Each test here reproduced a defect before it was fixed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import pandas as pd
import pytest

from dreg_frames import (
    DigestMismatch,
    LocalRegistry,
    Registry,
    crawl,
    make_layer,
    plan_delete,
    push_image,
    reclaimable,
    stale,
    storage_usage,
)
from dreg_frames.client.errors import UnsupportedDigest
from dreg_frames.crawl.frames import build_frames
from dreg_frames.crawl.records import ImageRecord, TagRecord

from .analysis_frames import NOW, d, frames, image, tag
from .fault_proxy import Exchange, FaultProxy, Reply

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"


def _total(usage: pd.DataFrame, column: str = "stored_bytes") -> int:
    return int(usage.iloc[-1][column])


def test_twenty_images_of_seven_layers_do_not_overflow_category_codes() -> None:
    # 20 images x 7 layers: fewer than 128 categories per column, so pandas uses int8 codes, and
    # adding per-column offsets to them overflowed.
    tags = []
    expected = 0
    for i in range(20):
        layers = [(f"img{i}-layer{j}", 1000 + j) for j in range(7)]
        tags.append(tag("team/app", f"v{i}", f"m{i}", image(f"m{i}", "2024-01-01T00:00:00Z", layers)))
        expected += sum(size for _, size in layers) + 100 + 10  # layers, config, manifest
    f = frames(*tags)
    assert _total(storage_usage(f["layers"])) == expected
    freed = reclaimable(f["layers"], [d("m0")])
    assert int(freed["size"].sum()) == sum(1000 + j for j in range(7)) + 110


def test_tagged_index_blob_counted_when_codes_would_wrap() -> None:
    # Few categories per column (int8 codes): the index blob's unified code wrapped and it vanished.
    children = [
        image(f"c{i}", "2024-01-01T00:00:00Z", [(f"l{i}-{j}", 10) for j in range(30)]) for i in range(5)
    ]
    f = frames(tag("team/app", "multi", "idx", *children, index=True))
    # 150 layers of 10, 5 configs of 100, 5 manifests of 10, the index (1 byte in the fixture)
    assert _total(storage_usage(f["layers"])) == 1500 + 500 + 50 + 1
    assert int(reclaimable(f["layers"], [d("idx")])["size"].sum()) == 1500 + 500 + 50 + 1


CREATED_SHAPES = [
    None,
    "",
    "0001-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "2262-04-12T00:00:00Z",
    "2300-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "2024-05-01t12:00:00z",
    "2024-05-01T12:00:00+05:30",
    "2024-05-01T12:00:00.123456789Z",
    "not a date",
]
PARSED = {
    "2024-05-01t12:00:00z": pd.Timestamp("2024-05-01T12:00:00Z"),
    "2024-05-01T12:00:00+05:30": pd.Timestamp("2024-05-01T06:30:00Z"),
    "2024-05-01T12:00:00.123456789Z": pd.Timestamp("2024-05-01T12:00:00.123456789Z"),
    "1970-01-01T00:00:00Z": pd.Timestamp("1970-01-01T00:00:00Z"),
}


@pytest.mark.parametrize("created", CREATED_SHAPES)
def test_every_created_shape_alone(created: str | None) -> None:
    f = frames(tag("team/app", "v1", "m1", image("m1", created, [("l", 1)])))
    row = f["images"].iloc[0]
    assert str(f["images"]["created"].dtype) == "datetime64[ns, UTC]"
    if created in PARSED:
        assert row["created"] == PARSED[created]
    else:
        assert pd.isna(row["created"])
    assert bool(row["created_suspect"]) is (created not in PARSED or created.startswith("1970"))
    if created:
        assert row["created_raw"] == created
    assert bool(f["tags"].iloc[0]["created_suspect"]) is bool(row["created_suspect"])


def test_every_created_shape_mixed_in_one_crawl() -> None:
    tags = [
        tag("team/app", f"t{i}", f"m{i}", image(f"m{i}", created, [(f"l{i}", 1)]))
        for i, created in enumerate(CREATED_SHAPES)
    ]
    images = frames(*tags)["images"].set_index("tag")
    for i, created in enumerate(CREATED_SHAPES):
        got = images.loc[f"t{i}", "created"]
        if created in PARSED:
            assert got == PARSED[created], created
        else:
            assert pd.isna(got), created


def _artifact(manifest: str, config_size: int = 2) -> ImageRecord:
    return ImageRecord(d(manifest), OCI_MANIFEST, "unknown", d(f"cfg-{manifest}"), None, (), config_size, 300)


def test_manifest_without_layers_is_counted_everywhere() -> None:
    f = build_frames(
        "test",
        [
            TagRecord(
                "team/app",
                "v1",
                d("m1"),
                OCI_MANIFEST,
                (image("m1", "2024-01-01T00:00:00Z", [("a", 5)]),),
                10,
            ),
            TagRecord("team/app", "sbom", d("art"), OCI_MANIFEST, (_artifact("art"),), 300),
            TagRecord("team/app", "sbom-alias", d("art"), OCI_MANIFEST, (_artifact("art"),), 300),
        ],
        [],
        [],
        NOW,
    )
    layers = f["layers"]
    art = layers[layers["digest"] == d("art")]
    assert len(art) == 2  # one row per tag, with empty layer columns
    assert art["layer_digest"].isna().all() and art["layer_size"].isna().all()
    usage = storage_usage(layers)
    # m1: 5 + config 100 + manifest 10; the artifact: config 2 + manifest 300
    assert _total(usage) == 115 + 302
    assert int(usage.iloc[-1]["n_tags"]) == 3
    assert int(reclaimable(layers, [d("art")])["size"].sum()) == 302
    old = stale(f["images"], older_than=0, keep_latest=0, now=NOW, keep_latest_tag=False)
    assert ("team/app", d("art")) not in set(zip(old["repository"], old["digest"], strict=True))  # no date
    plan = plan_delete(layers, [("team/app", d("art"))])
    assert not plan.iloc[0]["blocked"], plan.iloc[0]["warnings"]
    assert set(plan.iloc[0]["tags"]) == {"sbom", "sbom-alias"}


def test_foreign_layers_are_kept_but_not_counted_as_stored() -> None:
    windows = ImageRecord(
        d("win"),
        "application/vnd.docker.distribution.manifest.v2+json",
        "windows/amd64",
        d("cfg-win"),
        "2024-01-01T00:00:00Z",
        (
            (d("base"), 1_500_000_000, FOREIGN, ("https://mcr.microsoft.com/base",)),
            (d("top"), 1000, "application/vnd.docker.image.rootfs.diff.tar.gzip", ()),
        ),
        100,
        10,
    )
    f = build_frames(
        "test",
        [TagRecord("win/app", "ltsc", d("win"), windows.manifest_media_type, (windows,), 10)],
        [],
        [],
        NOW,
    )
    layers = f["layers"]
    assert list(layers["layer_foreign"]) == [True, False]
    usage = storage_usage(layers)
    assert _total(usage) == 1000 + 100 + 10
    assert _total(usage, "foreign_bytes") == 1_500_000_000
    assert int(reclaimable(layers, [d("win")])["size"].sum()) == 1110


# -- digest algorithms (against the real registry, lies told by the fault proxy) --------------------


def _sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


def test_sha512_content_is_verified_with_sha512(registry_server: LocalRegistry) -> None:
    registry = Registry.build_with_manual_client(registry_server.url)
    repo = registry.repository("numbers/sha512")
    data = b'{"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z"}'
    repo.push_blob(data, _sha512(data))  # uploaded by its sha512 digest
    assert repo.blob_bytes(_sha512(data)) == data

    def lie(exchange: Exchange, forward: Callable[[], Reply]) -> Reply | None:
        if "/blobs/sha512:" in exchange.path:
            real = forward()
            return Reply(real.status, real.headers, real.body.replace(b"amd64", b"arm64"))
        return None

    with FaultProxy(registry_server.port or 0) as proxy:
        proxy.rules.append(lie)
        lied = Registry.build_with_manual_client(proxy.url).repository("numbers/sha512")
        with pytest.raises(DigestMismatch, match="sha512"):
            lied.blob_bytes(_sha512(data))


@pytest.mark.parametrize("digest", ["md5:" + "0" * 32, "sha1:" + "0" * 40, "blake3:" + "0" * 64])
def test_unknown_digest_algorithms_are_refused_before_asking(
    registry_server: LocalRegistry, digest: str
) -> None:
    with FaultProxy(registry_server.port or 0) as proxy:
        repo = Registry.build_with_manual_client(proxy.url).repository("numbers/algo")
        with pytest.raises(UnsupportedDigest, match="cannot be verified"):
            repo.blob_bytes(digest)
        with pytest.raises(UnsupportedDigest):
            repo.get_manifest(digest)
        assert proxy.seen == []


def test_schema1_content_type_does_not_make_a_claimed_digest_trusted(registry_server: LocalRegistry) -> None:
    registry = Registry.build_with_manual_client(registry_server.url)
    repo = registry.repository("numbers/schema1-lie")
    pushed = push_image(repo, [b"real layer"], ["v1"])
    forged = json.dumps(
        {"schemaVersion": 1, "name": "x", "tag": "v1", "fsLayers": [], "history": []}
    ).encode()

    def lie(exchange: Exchange, forward: Callable[[], Reply]) -> Reply | None:
        if exchange.path.endswith(f"/manifests/{pushed.digest}"):
            headers = {
                "Content-Type": "application/vnd.docker.distribution.manifest.v1+prettyjws",
                "Docker-Content-Digest": pushed.digest,
            }
            return Reply(200, headers, forged)
        return None

    with FaultProxy(registry_server.port or 0) as proxy:
        proxy.rules.append(lie)
        lied = Registry.build_with_manual_client(proxy.url).repository("numbers/schema1-lie")
        with pytest.raises(DigestMismatch):
            lied.get_manifest(pushed.digest)


def test_index_nesting_is_bounded_and_errors_name_the_digest(registry_server: LocalRegistry) -> None:
    from .shapes import image_content, oci_index, platform_json, push_content

    registry = Registry.build_with_manual_client(registry_server.url)
    repo = registry.repository("numbers/deep")
    leaf = image_content([make_layer({"deep": b"leaf"})], oci=True)
    chain = [oci_index([(leaf, {"platform": platform_json("linux/amd64")})])]
    for _ in range(5):  # six indexes, one inside the other
        chain.append(oci_index([(chain[-1], {})]))
    push_content(repo, chain[-1], ["deep"])
    result = crawl(registry, ["numbers/deep"], progress=False)
    errors = result.errors
    assert list(errors["stage"]) == ["child"] and "nests deeper than 4" in errors.iloc[0]["message"]
    # the error names the index it is about, and every index down to the bound is in the frames
    too_deep = chain[-1 - 4].digest
    assert errors.iloc[0]["digest"] == too_deep
    rows = set(result.images["manifest_digest"].astype(str))
    assert {c.digest for c in chain[-5:-1]} <= rows and leaf.digest not in rows
