"""The crawler against a registry of known images: every frame row checked against what was pushed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from dreg_frames import (
    CatalogUnavailable,
    Crawl,
    InvalidReference,
    LocalRegistry,
    Registry,
    crawl,
    make_layer,
    push_image,
)
from dreg_frames.crawl.frames import IMAGE_COLUMNS, LAYER_COLUMNS, TAG_COLUMNS

from .crawl_fixture import Expected, seed_known_registry


@pytest.fixture(scope="module")
def known() -> Iterator[tuple[LocalRegistry, Expected]]:
    with LocalRegistry() as server:
        yield server, seed_known_registry(server)


@pytest.fixture(scope="module")
def result(known: tuple[LocalRegistry, Expected]) -> Crawl:
    server, _ = known
    return crawl(Registry.build_with_manual_client(server.url), progress=False)


def _ts(text: str | None) -> pd.Timestamp:
    return pd.Timestamp(text) if text else pd.NaT


def test_layers_frame_matches_what_was_pushed(result: Crawl, known: tuple[LocalRegistry, Expected]) -> None:
    server, exp = known
    assert list(result.layers.columns[: len(LAYER_COLUMNS)]) == LAYER_COLUMNS
    expected = []
    for (repository, tag), images in exp.images.items():
        digest, media_type = exp.digests[(repository, tag)]
        for manifest_digest, manifest_type, platform, config, created, layers in images:
            for index, (layer_digest, size) in enumerate(layers):
                expected.append(
                    (
                        f"127.0.0.1:{server.port}",
                        repository,
                        tag,
                        digest,
                        media_type,
                        manifest_digest,
                        manifest_type,
                        digest if manifest_digest != digest else None,  # parent_digest: the index
                        platform,
                        config,
                        _ts(created),
                        index,
                        layer_digest,
                        size,
                    )
                )
    columns = [
        c
        for c in LAYER_COLUMNS
        if c
        not in (
            "created_suspect",
            "layer_media_type",
            "config_size",
            "manifest_size",
            "digest_size",
            "os_version",
            "kind",
            "subject_digest",
            "layer_foreign",
            "layer_urls",
        )
    ]
    assert not result.layers["layer_foreign"].any() and result.layers["os_version"].isna().all()
    assert set(result.layers["kind"].astype(str)) == {"image"}
    got = [tuple(row) for row in result.layers[columns].astype(object).itertuples(index=False)]
    norm = [tuple(None if not isinstance(v, str) and pd.isna(v) else v for v in row) for row in got]
    exp_norm = [tuple(None if v is pd.NaT else v for v in row) for row in expected]
    assert sorted(norm, key=repr) == sorted(exp_norm, key=repr)


def test_blob_sizes_of_configs_and_manifests(result: Crawl, known: tuple[LocalRegistry, Expected]) -> None:
    _, exp = known
    images = result.images.astype({"digest": str, "manifest_digest": str, "config_digest": str})
    for row in images.to_dict("records"):
        assert row["digest_size"] == exp.sizes[row["digest"]]
        assert row["manifest_size"] == exp.sizes[row["manifest_digest"]]
        assert row["config_size"] == exp.sizes[row["config_digest"]]


def test_nanoseconds_and_suspect_dates(result: Crawl) -> None:
    images = result.images.set_index(["repository", "tag"])
    created = images.loc[("team1/app", "v1"), "created"]
    assert created == pd.Timestamp("2024-05-06T07:08:09.123456789Z")
    assert created.nanosecond == 789
    assert str(result.images["created"].dtype) == "datetime64[ns, UTC]"
    suspect = set(result.images.loc[result.images["created_suspect"], "repository"].astype(str))
    # broken/config: created unknown; farfuture/tool: year 2999 does not fit a nanosecond timestamp
    assert suspect == {"epoch/tool", "future/tool", "farfuture/tool", "broken/config"}
    far = result.images[result.images["repository"] == "farfuture/tool"].iloc[0]
    assert pd.isna(far["created"]) and far["created_raw"] == "2999-01-01T00:00:00Z"


def test_images_and_tags_frames(result: Crawl, known: tuple[LocalRegistry, Expected]) -> None:
    _, exp = known
    assert list(result.images.columns[: len(IMAGE_COLUMNS)]) == IMAGE_COLUMNS
    assert list(result.tags.columns[: len(TAG_COLUMNS)]) == TAG_COLUMNS
    expected_images = sum(len(v) for v in exp.images.values())
    assert len(result.images) == expected_images
    tags = result.tags.set_index(["repository", "tag"])
    assert set(tags.index) == set(exp.digests)
    for key, (digest, media_type) in exp.digests.items():
        assert tags.loc[key, "digest"] == digest and tags.loc[key, "media_type"] == media_type
        images = exp.images[key]
        layer_bytes = {d: s for image in images for d, s in image[5]}
        assert tags.loc[key, "size"] == sum(layer_bytes.values())
        assert tags.loc[key, "platforms"] == ",".join(sorted(i[2] for i in images))
    multi = result.images[result.images["repository"] == "team1/multi"]
    assert list(multi["platform"].astype(str)) == ["linux/amd64", "linux/arm64/v8"]
    assert (multi["digest"].astype(str) != multi["manifest_digest"].astype(str)).all()
    single = result.images[result.images["repository"] == "team1/app"]
    assert (single["digest"].astype(str) == single["manifest_digest"].astype(str)).all()
    sizes = result.layers.groupby(["repository", "tag", "manifest_digest"], observed=True)["layer_size"].sum()
    assert (result.images.set_index(["repository", "tag", "manifest_digest"])["size"] == sizes).all()


def test_dtypes(result: Crawl) -> None:
    layers = result.layers
    for column in ("repository", "tag", "digest", "layer_digest", "platform", "media_type"):
        assert isinstance(layers[column].dtype, pd.CategoricalDtype), column
    assert str(layers["layer_size"].dtype) == "Int64"
    assert str(result.images["size"].dtype) == "Int64"
    assert str(result.tags["size"].dtype) == "Int64"
    assert layers.equals(
        layers.sort_values(["repository", "tag", "platform", "manifest_digest", "layer_index"])
    )


def test_failures_are_rows_and_the_crawl_goes_on(
    result: Crawl, known: tuple[LocalRegistry, Expected]
) -> None:
    _, exp = known
    errors = result.errors
    assert {(str(r), str(s)) for r, s in zip(errors["repository"], errors["stage"], strict=True)} == set(
        exp.broken.items()
    )
    corrupt = errors[errors["repository"] == "broken/corrupt"].iloc[0]
    assert corrupt["error"] == "DigestMismatch" and corrupt["tag"] == "v1"
    config = errors[errors["repository"] == "broken/config"].iloc[0]
    assert config["error"] == "BlobNotFound" and config["status"] == 404
    child = errors[errors["repository"] == "broken/child"].iloc[0]
    assert child["error"] == "ManifestNotFound" and child["digest"].startswith("sha256:")
    assert "broken/corrupt" not in set(result.tags["repository"].astype(str))
    repos = result.repositories.set_index("repository")
    assert repos.loc["empty/repo", "state"] == "empty" and repos.loc["empty/repo", "n_tags"] == 0
    assert len(repos) == len({k[0] for k in exp.digests} | set(exp.empty) | {"broken/corrupt"})


def test_each_digest_fetched_once(known: tuple[LocalRegistry, Expected]) -> None:
    server, exp = known
    registry = Registry.build_with_manual_client(server.url)
    result = crawl(registry, progress=False, workers=6)
    n_repos = len(result.repositories)
    n_tags = len(exp.digests) + 1  # + broken/corrupt's tag
    children = {i[0] for k, v in exp.images.items() for i in v if exp.digests[k][0] != i[0]}
    configs = {i[3] for v in exp.images.values() for i in v}
    catalog_pages = 1  # n=1000
    probe = 1  # one referrers API request finds out the registry has none
    # one GET per tag, one per index child digest, one per config digest (+1 for the deleted child)
    assert (
        result.meta["requests"] == catalog_pages + n_repos + n_tags + len(children) + 1 + len(configs) + probe
    )

    head = crawl(Registry.build_with_manual_client(server.url), progress=False, resolve="head")
    tops = {d for d, _ in exp.digests.values()}
    assert (
        head.meta["requests"]
        == catalog_pages
        + n_repos
        + 2 * n_tags
        - len(exp.digests)
        + len(tops)
        + len(children)
        + 1
        + len(configs)
        + probe
    )
    pd.testing.assert_frame_equal(head.layers, result.layers)


def test_cache_makes_a_recrawl_head_only_and_finishes_interrupted_crawls(
    known: tuple[LocalRegistry, Expected], tmp_path: Path, result: Crawl
) -> None:
    server, exp = known
    cache = tmp_path / "cache"
    # a crawl that stopped after the team1 repositories
    partial = crawl(
        Registry.build_with_manual_client(server.url), "team1/*", cache=str(cache), progress=False
    )
    assert set(partial.tags["repository"].astype(str)) == {"team1/app", "team1/multi"}
    finish = crawl(Registry.build_with_manual_client(server.url), cache=str(cache), progress=False)
    assert finish.meta["cache_hits"] > 0
    pd.testing.assert_frame_equal(finish.layers, result.layers)
    warm = crawl(Registry.build_with_manual_client(server.url), cache=str(cache), progress=False)
    n_tags = len(exp.digests) + 1
    # catalog + tag lists + one HEAD per tag + the manifests that cannot be cached (corrupt, deleted child)
    # + the config that is gone (no cache entry for what never arrived) + the referrers API probe
    assert warm.meta["requests"] == 1 + len(warm.repositories) + n_tags + 1 + 1 + 1 + 1
    pd.testing.assert_frame_equal(warm.layers, result.layers)
    # a warm crawl HEADs the tag first, so its manifest errors also name the digest
    pd.testing.assert_frame_equal(
        warm.errors.drop(columns=["message", "digest"]), result.errors.drop(columns=["message", "digest"])
    )
    # every tag whose crawl was complete came from the summaries; the three broken ones were walked again
    assert warm.meta["summary_hits"] == n_tags - 3


def test_a_moved_tag_is_read_again_despite_the_cache(
    known: tuple[LocalRegistry, Expected], tmp_path: Path
) -> None:
    server, exp = known
    cache = str(tmp_path / "cache")
    registry = Registry.build_with_manual_client(server.url)
    first = crawl(registry, ["team2/copy"], cache=cache, progress=False)
    assert first.tags["digest"].iloc[0] == exp.digests[("team2/copy", "v1-copy")][0]
    repo = registry.repository("team2/copy")
    moved = push_image(
        repo, [make_layer({"moved": b"elsewhere"})], ["v1-copy"], created="2025-05-05T00:00:00Z"
    )
    try:
        again = crawl(registry, ["team2/copy"], cache=cache, progress=False)
        assert again.tags["digest"].iloc[0] == moved.digest
        assert again.images["created"].iloc[0] == pd.Timestamp("2025-05-05T00:00:00Z")
    finally:
        original = exp.digests[("team2/copy", "v1-copy")][0]
        repo.tag(original, "v1-copy")


def test_a_damaged_cache_entry_is_a_miss(known: tuple[LocalRegistry, Expected], tmp_path: Path) -> None:
    server, exp = known
    cache = tmp_path / "cache"
    crawl(Registry.build_with_manual_client(server.url), ["team1/app"], cache=str(cache), progress=False)
    config = exp.images[("team1/app", "v1")][0][3]
    assert config is not None
    entry = cache / "configs" / "sha256" / config.split(":")[1]
    entry.write_bytes(b'{"created": "1999-01-01T00:00:00Z"}')
    again = crawl(
        Registry.build_with_manual_client(server.url), ["team1/app"], cache=str(cache), progress=False
    )
    v1 = again.images[again.images["tag"] == "v1"].iloc[0]
    assert v1["created"] == pd.Timestamp("2024-05-06T07:08:09.123456789Z")


def test_selection_list_glob_and_bad_names(known: tuple[LocalRegistry, Expected]) -> None:
    server, _ = known
    registry = Registry.build_with_manual_client(server.url)
    by_list = crawl(registry, ["team2/copy", "epoch/tool"], progress=False)
    assert sorted(set(by_list.tags["repository"].astype(str))) == ["epoch/tool", "team2/copy"]
    by_glob = crawl(registry, "many/repo10*", progress=False)
    assert len(by_glob.tags) == 10
    missing = crawl(registry, ["no/such-repo"], progress=False)
    assert missing.tags.empty and missing.layers.empty
    assert list(missing.repositories["state"]) == ["empty"]
    with pytest.raises(InvalidReference):
        crawl(registry, ["../etc"], progress=False)


def test_save_and_load_round_trip(result: Crawl, tmp_path: Path) -> None:
    for fmt in ("parquet", "csv"):
        out = getattr(result, f"to_{fmt}")(tmp_path / fmt)
        loaded = Crawl.load(out)
        for name, frame in result.frames.items():
            pd.testing.assert_frame_equal(
                loaded.frames[name], frame, check_categorical=False, obj=f"{fmt} {name}"
            )
        assert loaded.meta["registry"] == result.meta["registry"]


def test_progress_bars_run(known: tuple[LocalRegistry, Expected], capsys: pytest.CaptureFixture[str]) -> None:
    server, _ = known
    crawl(Registry.build_with_manual_client(server.url), "team1/*", progress=True)
    assert "tags" in capsys.readouterr().err


def test_catalog_unavailable_is_clear() -> None:
    error = CatalogUnavailable("x", status=404)
    assert error.status == 404


def test_an_interrupted_crawl_finishes_from_the_cache(
    known: tuple[LocalRegistry, Expected], tmp_path: Path, result: Crawl
) -> None:
    from dreg_frames.crawl import ContentCache, Crawler

    server, _ = known

    class Interrupted(ContentCache):
        """Ctrl-C arrives after the 20th entry is written."""

        writes = 0

        def put(self, kind: str, digest: str, body: bytes, media_type: str = "") -> None:
            super().put(kind, digest, body, media_type)
            Interrupted.writes += 1
            if Interrupted.writes == 20:
                raise KeyboardInterrupt

    registry = Registry.build_with_manual_client(server.url)
    crawler = Crawler(registry, cache=Interrupted(tmp_path / "cache"), progress=False, workers=2)
    with pytest.raises(KeyboardInterrupt):
        crawler.run(crawler.select(None))
    rerun = crawl(
        Registry.build_with_manual_client(server.url), cache=str(tmp_path / "cache"), progress=False
    )
    assert rerun.meta["resolve"] == "head" and rerun.meta["cache_hits"] >= 19
    pd.testing.assert_frame_equal(rerun.layers, result.layers)
