"""Storage, reclaimable, duplicates and stale on generated registry graphs, against a deliberately
naive oracle: plain Python sets over the raw manifest JSON, no pandas and no dreg_frames code.

The graphs (tests/graphs.py) hold single and multi-arch images, nested indexes, zero-layer
manifests, Windows images with foreign base layers and layers shared across repositories; some
cross the category counts where pandas widens its codes (127/128, 32767/32768).
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dreg_frames import duplicates, reclaimable, stale, storage_usage
from dreg_frames.crawl.frames import build_frames
from dreg_frames.crawl.records import ImageRecord, TagRecord

from .graphs import RegistryGraph, build_graph, graph_specs, wide_spec
from .shapes import DOCKER_LIST, OCI_INDEX, Content

NOW = datetime(2026, 11, 27, tzinfo=timezone.utc)
INDEXES = (OCI_INDEX, DOCKER_LIST)


# -- the graph as crawl records (the input; the oracle below never uses it) -------------------------
def _records(graph: RegistryGraph) -> list[TagRecord]:
    out = []
    for (repository, tag), top in sorted(graph.tags.items()):
        images: list[ImageRecord] = []
        if top.media_type in INDEXES:
            _children(top, images)
        else:
            images.append(_image(top, None, None, None))
        out.append(TagRecord(repository, tag, top.digest, top.media_type, tuple(images), top.size))
    return out


def _children(index: Content, images: list[ImageRecord]) -> None:
    for entry, child in zip(index.json["manifests"], index.children, strict=True):
        platform = entry.get("platform")
        if child.media_type in INDEXES:
            images.append(
                ImageRecord(
                    child.digest,
                    child.media_type,
                    "unknown",
                    None,
                    None,
                    (),
                    None,
                    child.size,
                    None,
                    index.digest,
                )
            )
            _children(child, images)
        else:
            images.append(_image(child, platform, index.digest, platform and platform.get("os.version")))


def _image(
    content: Content, platform: dict[str, str] | None, parent: str | None, os_version: str | None
) -> ImageRecord:
    body = content.json
    config_digest = body["config"]["digest"]
    config = json.loads(content.blobs[config_digest])
    name = f"{config.get('os') or 'unknown'}/{config.get('architecture') or 'unknown'}"
    if platform:
        name = "/".join(p for p in (platform["os"], platform["architecture"], platform.get("variant")) if p)
    layers = tuple((d["digest"], d["size"], d["mediaType"], tuple(d.get("urls", ()))) for d in body["layers"])
    return ImageRecord(
        content.digest,
        content.media_type,
        name,
        config_digest,
        config.get("created"),
        layers,
        body["config"]["size"],
        content.size,
        os_version or config.get("os.version"),
        parent,
    )


def _frames(graph: RegistryGraph) -> dict[str, Any]:
    return build_frames("test", _records(graph), [], [], NOW)


# -- the naive oracle -----------------------------------------------------------------------------
def _blobs_of(content: Content) -> dict[str, int]:
    """Blobs this one manifest makes the registry keep: itself, its config and stored layers."""
    return {content.digest: content.size, **content.blob_sizes}


def _pulled(top: Content) -> dict[str, int]:
    blobs: dict[str, int] = {}
    for content in top.walk():
        blobs.update(_blobs_of(content))
    return blobs


def _foreign(top: Content) -> dict[str, int]:
    out: dict[str, int] = {}
    for content in top.walk():
        out.update(content.foreign)
    return out


def oracle_usage(graph: RegistryGraph) -> dict[str, dict[str, int]]:
    per_repo: dict[str, dict[str, int]] = defaultdict(dict)
    foreign: dict[str, dict[str, int]] = defaultdict(dict)
    logical: dict[str, int] = defaultdict(int)
    for (repository, _), top in graph.tags.items():
        pulled = _pulled(top)
        per_repo[repository].update(pulled)
        foreign[repository].update(_foreign(top))
        logical[repository] += sum(pulled.values())
    users: dict[str, set[str]] = defaultdict(set)
    for repository, blobs in per_repo.items():
        for blob in blobs:
            users[blob].add(repository)
    out = {}
    for repository, blobs in per_repo.items():
        out[repository] = {
            "stored_bytes": sum(blobs.values()),
            "exclusive_bytes": sum(size for blob, size in blobs.items() if users[blob] == {repository}),
            "logical_bytes": logical[repository],
            "foreign_bytes": sum(foreign[repository].values()),
        }
    everything: dict[str, int] = {}
    for blobs in per_repo.values():
        everything.update(blobs)
    out["(registry total)"] = {"stored_bytes": sum(everything.values())}
    return out


def _revisions(graph: RegistryGraph) -> dict[str, dict[str, Content]]:
    """repository -> every manifest revision it holds (digest -> content)."""
    out: dict[str, dict[str, Content]] = defaultdict(dict)
    for (repository, _), top in graph.tags.items():
        for content in top.walk():
            out[repository][content.digest] = content
    return out


def oracle_reclaimable(
    graph: RegistryGraph, victims: set[tuple[str, str]], delete_untagged: bool
) -> dict[str, int]:
    """What Distribution's garbage collector frees after these manifests are deleted."""
    revisions = _revisions(graph)
    deleted = set(victims)
    if delete_untagged:
        tagged = {(r, c.digest) for (r, _), c in graph.tags.items()}
        while True:
            listed_by: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
            for repository, manifests in revisions.items():
                for digest, content in manifests.items():
                    for child in content.children:
                        listed_by[(repository, child.digest)].add((repository, digest))
            more = {
                child
                for child, parents in listed_by.items()
                if child not in tagged and child not in deleted and parents <= deleted
            }
            if not more:
                break
            deleted |= more
    marked: set[str] = set()
    before: dict[str, int] = {}
    for repository, manifests in revisions.items():
        for digest, content in manifests.items():
            before.update(_blobs_of(content))
            if (repository, digest) in deleted:
                continue
            marked |= set(_blobs_of(content))
            marked |= {child.digest for child in content.children}
    return {blob: size for blob, size in before.items() if blob not in marked}


def _victims(graph: RegistryGraph, data: st.DataObject) -> set[tuple[str, str]]:
    pairs = sorted(
        {
            (repository, content.digest)
            for repository, m in _revisions(graph).items()
            for content in m.values()
        }
    )
    return set(data.draw(st.lists(st.sampled_from(pairs), max_size=4)))


# -- the properties --------------------------------------------------------------------------------
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(graph_specs(windows=True))
def test_storage_usage_equals_the_naive_oracle(spec: Any) -> None:
    graph = build_graph(spec)
    usage = storage_usage(_frames(graph)["layers"]).set_index("repository")
    expected = oracle_usage(graph)
    for repository, figures in expected.items():
        for column, value in figures.items():
            assert int(usage.loc[repository, column]) == value, (repository, column)
    assert int(usage.loc["(registry total)", "stored_bytes"]) == sum(graph.stored_blobs().values())


@SETTINGS
@given(graph_specs(windows=True), st.booleans(), st.data())
def test_reclaimable_equals_the_naive_mark_and_sweep(
    spec: Any, delete_untagged: bool, data: st.DataObject
) -> None:
    graph = build_graph(spec)
    victims = _victims(graph, data)
    freed = reclaimable(_frames(graph)["layers"], sorted(victims), delete_untagged=delete_untagged)
    got = dict(zip(freed["blob"], freed["size"].astype(int), strict=True))
    assert got == oracle_reclaimable(graph, victims, delete_untagged)


@SETTINGS
@given(graph_specs())
def test_duplicate_digests_equal_the_naive_oracle(spec: Any) -> None:
    graph = build_graph(spec)
    references: dict[str, set[str]] = defaultdict(set)
    for (repository, tag), content in graph.tags.items():
        references[content.digest].add(f"{repository}:{tag}")
    expected = {digest: refs for digest, refs in references.items() if len(refs) > 1}
    found = duplicates(_frames(graph)["layers"])
    by_digest = found[found["kind"] == "digest"]
    got = {key: set(refs) for key, refs in zip(by_digest["key"], by_digest["references"], strict=True)}
    assert got == expected
    # same config and the same layers in the same order, under different manifest digests
    by_content: dict[tuple[str, tuple[str, ...]], set[str]] = defaultdict(set)
    for top in graph.tags.values():
        for content in top.walk():
            if content.media_type in INDEXES or not content.json["layers"]:
                continue
            body = content.json
            by_content[(body["config"]["digest"], tuple(d["digest"] for d in body["layers"]))].add(
                content.digest
            )
    same = {frozenset(digests) for digests in by_content.values() if len(digests) > 1}
    content_rows = found[found["kind"] == "content"]
    assert {frozenset(d) for d in content_rows["digests"]} == same


def _trusted(created: str | None) -> datetime | None:
    if not created:
        return None
    try:
        value = datetime.fromisoformat(created.upper().replace("Z", "+00:00")).astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return None
    if value.year < 2013 or value > NOW + timedelta(days=1) or value.year >= 2262:
        return None
    return value


@SETTINGS
@given(graph_specs(), st.integers(0, 3000))
def test_stale_by_age_equals_the_naive_oracle(spec: Any, days: int) -> None:
    graph = build_graph(spec)
    newest: dict[tuple[str, str], datetime | None] = {}
    for (repository, _), top in graph.tags.items():
        dates = [
            _trusted(json.loads(c.blobs[c.json["config"]["digest"]]).get("created"))
            for c in top.walk()
            if c.media_type not in INDEXES
        ]
        known = [d for d in dates if d is not None]
        newest[(repository, top.digest)] = max(known) if known else None
    cutoff = NOW - timedelta(days=days)
    expected = {key for key, created in newest.items() if created is not None and created < cutoff}
    out = stale(_frames(graph)["images"], older_than=days, keep_latest=0, now=NOW, keep_latest_tag=False)
    assert set(zip(out["repository"], out["digest"], strict=True)) == expected


@pytest.mark.parametrize(
    ("kind", "n"),
    [(kind, n) for kind in ("tags", "repositories", "digests", "layers") for n in (127, 128)]
    # pandas codes are int16 from 128 categories and int32 from 32768: one column crosses each
    + [("tags", 32767), ("tags", 32768)],
)
def test_category_code_widths(kind: str, n: int) -> None:
    graph = build_graph(wide_spec(n, kind))
    layers = _frames(graph)["layers"]
    usage = storage_usage(layers).set_index("repository")
    expected = oracle_usage(graph)
    assert int(usage.loc["(registry total)", "stored_bytes"]) == expected["(registry total)"]["stored_bytes"]
    victim = next(iter(sorted(graph.tags)))
    victims = {(victim[0], graph.tags[victim].digest)}
    freed = reclaimable(layers, sorted(victims), delete_untagged=False)
    assert dict(zip(freed["blob"], freed["size"].astype(int), strict=True)) == oracle_reclaimable(
        graph, victims, False
    )
