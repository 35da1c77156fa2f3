"""Crawl snapshots, diffs and storage over time, on a real registry changed between two crawls."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import matplotlib
import pandas as pd
import pyarrow.dataset as ds
import pytest

from dreg_frames import (
    DregError,
    LocalRegistry,
    Registry,
    crawl,
    diff,
    history,
    load_snapshot,
    make_layer,
    plot_activity,
    plot_storage_history,
    push_image,
    snapshots,
    trend_section,
)
from dreg_frames.events import EventStore, load_events
from dreg_frames.trend import activity_per_day

matplotlib.use("Agg")

TOTAL = "(registry total)"


@pytest.fixture(scope="module")
def server() -> Iterator[LocalRegistry]:
    with LocalRegistry() as local:
        yield local


def test_two_crawls_around_a_push_a_move_and_a_delete(server: LocalRegistry, tmp_path: Path) -> None:
    registry = Registry.build_with_manual_client(server.url)
    app, lib, fresh = (registry.repository(n) for n in ("hist/app", "hist/lib", "hist/fresh"))
    a1 = push_image(app, [make_layer({"f": b"a1"})], tags=["v1"])
    a2 = push_image(app, [make_layer({"f": b"a2"})], tags=["v2", "latest"])
    l1 = push_image(lib, [make_layer({"f": b"l1"})], tags=["old"])
    push_image(lib, [make_layer({"f": b"l2"})], tags=["keep"])
    store = tmp_path / "history"
    first = crawl(registry, progress=False, snapshot_store=store)

    a3 = push_image(app, [make_layer({"f": b"a3"})], tags=["v3"])  # a tag added
    app.tag(a1.digest, "latest")  # a tag moved
    lib.delete_manifest(l1.digest)  # a tag removed (with its manifest)
    f1 = push_image(fresh, [make_layer({"f": b"f1" * 100})], tags=["v1"])  # a repository added
    second = crawl(registry, progress=False, snapshot_store=store)

    known = snapshots(store)
    assert known["id"].tolist() == [first.meta["snapshot"], second.meta["snapshot"]]
    old, new = load_snapshot(store, first.meta["snapshot"]), load_snapshot(store)
    pd.testing.assert_frame_equal(old.tags, first.tags)
    pd.testing.assert_frame_equal(new.layers, second.layers)

    change = diff(old, new)
    assert sorted(change.tags.itertuples(index=False, name=None)) == sorted(
        [
            ("added", "hist/app", "v3", None, a3.digest),
            ("moved", "hist/app", "latest", a2.digest, a1.digest),
            ("removed", "hist/lib", "old", l1.digest, None),
            ("added", "hist/fresh", "v1", None, f1.digest),
        ]
    )
    assert change.repositories.values.tolist() == [["added", "hist/fresh"]]
    growth = change.bytes.set_index("repository")["growth"]
    # every byte a push adds (layers, config, manifest) or a delete takes, by the push API's own count
    assert growth["hist/fresh"] == f1.total_size
    assert growth["hist/app"] == a3.total_size  # a move adds nothing
    assert growth["hist/lib"] == -l1.total_size
    assert growth[TOTAL] == f1.total_size + a3.total_size - l1.total_size
    assert "4 added" not in change.summary() and "1 moved" in change.summary()

    over_time = history(store)
    assert set(over_time["snapshot"]) == set(known["snapshot"])
    wide = over_time.pivot(index="snapshot", columns="repository", values="stored_bytes")
    assert wide["hist/fresh"].isna().tolist() == [True, False]
    assert (wide.iloc[1] - wide.iloc[0].fillna(0)).astype("int64")["hist/app"] == a3.total_size
    # one dataset per frame, hive-partitioned by snapshot: what pyarrow, DuckDB and Dask read as is
    tags = ds.dataset(store / "tags", partitioning="hive").to_table().to_pandas()
    assert len(tags) == len(first.tags) + len(second.tags)
    assert set(tags["snapshot"].astype(str)) == set(known["id"])

    # a snapshot not finished (no record) is invisible; the same time twice is refused
    (store / "tags" / "snapshot=2099-01-01T000000.000000Z").mkdir()
    assert len(snapshots(store)) == 2
    with pytest.raises(DregError, match="already holds"):
        second.save_snapshot(store, at=pd.Timestamp(known["snapshot"].iloc[1]))
    at_first = load_snapshot(store, known["snapshot"].iloc[0] + pd.Timedelta(microseconds=1))
    assert at_first.meta["snapshot"] == first.meta["snapshot"]
    with pytest.raises(DregError, match="no snapshot at or before"):
        load_snapshot(store, "2001-01-01")

    html = trend_section(store, out_dir=tmp_path / "report")
    assert "Trend" in html and "1 moved" in html and 'src="trend-storage.png"' in html
    assert (tmp_path / "report" / "trend-storage.png").stat().st_size > 0


def _events(tmp_path: Path) -> pd.DataFrame:
    store = EventStore(tmp_path / "e.db")
    start = pd.Timestamp("2026-11-01T12:00:00Z")
    rows = []
    for day, (pushes, pulls) in enumerate([(1, 3), (0, 0), (2, 5)]):
        for action, count in (("push", pushes), ("pull", pulls)):
            for _ in range(count):
                rows.append(
                    {
                        "id": str(uuid.uuid4()),
                        "timestamp": (start + pd.Timedelta(days=day)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "action": action,
                        "target": {
                            "repository": "r/x",
                            "digest": "sha256:" + "1" * 64,
                            "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        },
                        "request": {"useragent": "docker/27"},
                    }
                )
    store.add(rows)
    return load_events(store)


def test_plots_and_the_trend_section(tmp_path: Path) -> None:
    events = _events(tmp_path)
    per_day = activity_per_day(events)
    assert per_day["push"].tolist() == [1, 0, 2] and per_day["pull"].tolist() == [3, 0, 5]
    ax = plot_activity(events)
    assert ax.get_ylabel() == "manifest events" and [t.get_text() for t in ax.get_legend().get_texts()] == [
        "pulls",
        "pushes",
    ]
    frame = pd.DataFrame(
        {
            "snapshot": pd.to_datetime(
                ["2026-11-01", "2026-11-01", "2026-11-01", "2026-11-02", "2026-11-02", "2026-11-02"], utc=True
            ),
            "registry": "r",
            "repository": ["a", "b", "c", "a", "b", "c"],
            "stored_bytes": [3 * 2**20, 2**20, 2**19, 4 * 2**20, 2**20, 2**20],
        }
    )
    ax = plot_storage_history(frame, top=1)
    assert ax.get_ylabel() == "stored (MiB)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "(rest)"]
    html = trend_section(tmp_path / "empty-store", events=events)
    assert "0 snapshots" in html and "data:image/png;base64," in html and "Pushes and pulls" in html
