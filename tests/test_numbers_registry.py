"""Storage numbers on a real registry holding what other tools push: signatures, Helm charts,
buildx indexes, Windows images, nested indexes, zero-layer manifests, odd dates and 20+ ordinary
images. The oracles are the registry's own blob store on disk and its garbage collector."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd
import pytest

from dreg_frames import Crawl, LocalRegistry, Registry, crawl, reclaimable, storage_usage

from .shapes import (
    BuildxImage,
    NestedIndex,
    OddDate,
    Pushed,
    WindowsImages,
    blob_store_bytes,
    push_buildx,
    push_cosign,
    push_helm_chart,
    push_nested_index,
    push_notation_signature,
    push_odd_dates,
    push_ordinary,
    push_referrers,
    push_referrers_tag,
    push_windows,
    push_zero_layers,
    run_garbage_collect,
    urls_registry,
)


@dataclass
class Mixed:
    server: LocalRegistry
    registry: Registry
    result: Crawl
    ordinary: dict[str, Pushed]
    windows: WindowsImages
    nested: NestedIndex
    buildx: BuildxImage
    dates: dict[str, OddDate]


@pytest.fixture(scope="module")
def mixed() -> Iterator[Mixed]:
    with urls_registry() as server:
        registry = Registry.build_with_manual_client(server.url)
        ordinary: dict[str, Pushed] = {}
        for i in range(6):  # 6 repositories x 4 digests (5 tags): 24 ordinary images
            pushed = push_ordinary(registry.repository(f"apps/app{i}"), seed=str(i)).images
            ordinary.update({f"apps/app{i}:{tag}": image for tag, image in pushed.items()})
        signed = ordinary["apps/app0:v1"]
        push_cosign(registry.repository("apps/app0"), signed)
        push_referrers(registry.repository("apps/app1"), ordinary["apps/app1:v1"])
        # Notation on a registry without the referrers API: the signature, then the tag schema index
        app2 = registry.repository("apps/app2")
        notation = push_notation_signature(app2, ordinary["apps/app2:oci"])
        push_referrers_tag(app2, ordinary["apps/app2:oci"], [notation])
        push_helm_chart(registry.repository("charts/nginx"))
        buildx = push_buildx(registry.repository("apps/buildx"))
        windows = push_windows(registry.repository("win/servercore"))
        nested = push_nested_index(registry.repository("odd/nested"))
        push_zero_layers(registry.repository("odd/zero"))
        dates = push_odd_dates(registry.repository("odd/dates"))
        result = crawl(registry, progress=False)
        yield Mixed(server, registry, result, ordinary, windows, nested, buildx, dates)


def test_the_crawl_of_everything_has_no_errors(mixed: Mixed) -> None:
    assert mixed.result.errors.empty, mixed.result.errors[["repository", "tag", "stage", "message"]]


def test_stored_bytes_equal_the_blob_store(mixed: Mixed) -> None:
    on_disk = blob_store_bytes(mixed.server.storage)
    layers = mixed.result.layers
    foreign = set(layers.loc[layers["layer_foreign"], "layer_digest"].astype(str))
    assert foreign and not foreign & set(on_disk)  # foreign layers are in the frames, not on disk
    usage = storage_usage(mixed.result)
    total = usage.iloc[-1]
    assert int(total["stored_bytes"]) == sum(on_disk.values())
    assert int(total["n_blobs"]) == len(on_disk)
    sizes = layers[layers["layer_foreign"]].drop_duplicates("layer_digest")["layer_size"]
    assert int(total["foreign_bytes"]) == int(sizes.sum())
    # per repository: each repository's distinct blobs, from the frames against the raw manifests
    by_repo = usage.set_index("repository")["stored_bytes"]
    for name, expected in (("win/servercore", mixed.windows), ("odd/nested", mixed.nested)):
        pushed = expected.images.values() if isinstance(expected, WindowsImages) else [expected.outer]
        blobs: dict[str, int] = {}
        for image in pushed:
            blobs.update(image.stored())
        assert int(by_repo[name]) == sum(blobs.values()), name


def test_every_single_repository_crawls_on_its_own(mixed: Mixed) -> None:
    for name in mixed.result.repositories["repository"].astype(str):
        alone = crawl(mixed.registry, [name], progress=False)
        assert alone.errors.empty, name
        whole = mixed.result.layers[mixed.result.layers["repository"] == name]
        assert len(alone.layers) == len(whole), name


def test_nested_index_is_walked(mixed: Mixed) -> None:
    images = mixed.result.images
    nested = images[images["repository"] == "odd/nested"]
    inner = mixed.nested.inner.digest
    leaves = {leaf.digest for leaf in mixed.nested.leaves}
    assert leaves <= set(nested["manifest_digest"].astype(str))
    grandchildren = nested[nested["parent_digest"].astype(str) == inner]
    assert set(grandchildren["platform"].astype(str)) == {"linux/amd64", "linux/arm64/v8"}
    tag = mixed.result.tags.set_index("tag").loc["nested"]
    assert tag["platforms"] == "linux/amd64,linux/arm64/v8,linux/s390x" and tag["n_images"] == 3


def test_windows_os_version_tells_releases_apart(mixed: Mixed) -> None:
    tags = mixed.result.tags.set_index(["repository", "tag"])
    assert tags.loc[("win/servercore", "multi"), "platforms"] == (
        "windows/amd64 (10.0.17763.5329),windows/amd64 (10.0.20348.2227)"
    )
    images = mixed.result.images
    versions = images[images["tag"] == "ltsc2019"]["os_version"].astype(str)
    assert set(versions) == {"10.0.17763.5329"}


def test_odd_dates_never_crash_and_keep_their_text(mixed: Mixed) -> None:
    images = mixed.result.images.set_index("tag")
    for label, odd in mixed.dates.items():
        row = images.loc[f"date-{label}"]
        if odd.annotation_created:
            # no date in the config: the manifest's org.opencontainers.image.created stands in
            assert row["created"] == pd.Timestamp(odd.annotation_created)
            assert row["created_source"] == "annotation" and row["created_raw"] == odd.annotation_created
            continue
        assert pd.isna(row["created_source"]) or row["created_source"] == "config"
        if odd.created_raw:
            assert row["created_raw"] == odd.created_raw
        year = int(odd.utc[:4]) if odd.utc else None
        if year is None or not 1678 <= year <= 2261:
            assert pd.isna(row["created"]), label
            assert row["created_suspect"], label
        else:
            assert row["created"] == pd.Timestamp(odd.utc), label


def test_cli_usage_on_the_mixed_registry(mixed: Mixed, capsys: pytest.CaptureFixture[str]) -> None:
    from dreg_frames.cli import main

    assert main(["usage", mixed.server.url]) == 0
    out = capsys.readouterr().out
    assert "(registry total)" in out and "foreign_bytes" in out


def test_reclaimable_matches_garbage_collect_after_real_deletes(mixed: Mixed) -> None:
    """Runs last in this module: it deletes from the registry."""
    victims = [
        ("apps/app3", mixed.ordinary["apps/app3:oci"].digest),
        ("apps/app4", mixed.ordinary["apps/app4:multi"].digest),  # an index: plain GC keeps children
        ("win/servercore", mixed.windows.images["ltsc2019"].digest),
        ("odd/nested", mixed.nested.outer.digest),
        ("odd/zero", mixed.result.tags.set_index("tag").loc["zero-oci", "digest"]),
    ]
    predicted = reclaimable(mixed.result, victims, delete_untagged=False)
    for repository, digest in victims:
        mixed.registry.repository(repository).delete_manifest(str(digest))
    gc = run_garbage_collect(mixed.server.config_path)
    try:
        assert dict(zip(predicted["blob"], predicted["size"].astype(int), strict=True)) == gc.freed
    finally:
        gc.cleanup()
