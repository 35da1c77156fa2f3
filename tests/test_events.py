"""The event receiver and store against a real registry's notifications, and events as frames.

Every real-registry test compares what our receiver stored with what a control endpoint on the
same registry was sent (tests/events_fixture.py): no event missing, none twice.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from dreg_frames import Crawl, Registry, crawl, make_layer, push_image, push_multiarch
from dreg_frames.events import (
    EventReceiver,
    EventStore,
    InvalidEnvelope,
    digest_activity,
    load_events,
    parse_envelope,
)
from dreg_frames.local_registry import free_port

from .events_fixture import TOKEN, Setup, registry_with_receiver, skopeo, wait_for

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    with registry_with_receiver(tmp_path_factory.mktemp("events") / "events.db") as value:
        yield value


def _stored_ids(store: Path) -> list[str]:
    return load_events(store, include_crawler=True, ids=True)["id"].astype(str).tolist()


def _all_stored(setup: Setup) -> None:
    wait_for(
        "the receiver to hold every event the control endpoint saw",
        lambda: set(_stored_ids(setup.store)) >= setup.control.ids(),
    )


def test_pushes_and_pulls_are_stored_once_each(setup: Setup, tmp_path: Path) -> None:
    registry = Registry.build_with_manual_client(setup.registry.url)
    repo = registry.repository("ev/app")
    pushed = push_image(repo, [make_layer({"a": b"events"})], tags=["v1"])
    index = push_multiarch(
        repo,
        {"linux/amd64": [make_layer({"m": b"1"})], "linux/arm64": [make_layer({"m": b"2"})]},
        tags=["multi"],
    )
    repo.check_manifest("v1")  # a HEAD: Distribution counts it as a pull
    port = setup.registry.port
    skopeo("inspect", "--tls-verify=false", f"docker://127.0.0.1:{port}/ev/app:v1")
    skopeo(
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        f"docker://127.0.0.1:{port}/ev/app:v1",
        f"docker://127.0.0.1:{port}/ev/copy:c1",
    )
    # a platform manifest pulled by digest only: the index is in use through it
    child = index.manifests[1].digest
    requests.get(f"{setup.registry.url}ev/app/manifests/{child}", headers={"Accept": MANIFEST}, timeout=10)
    _all_stored(setup)

    stored = _stored_ids(setup.store)
    assert len(stored) == len(set(stored)), "an event was stored twice"
    assert set(stored) == setup.control.ids(), "stored events differ from what the registry sent"

    events = load_events(setup.store, include_crawler=True)
    ours = events[events["repository"].isin(["ev/app", "ev/copy"])]
    manifests = ours[ours["kind"] == "manifest"]
    by = manifests.groupby(["action", "method", "user_agent", "tag"], observed=True, dropna=False).size()
    skopeo_agent = next(a for a in manifests["user_agent"].astype(str).unique() if a.startswith("skopeo/"))
    assert by[("pull", "HEAD", "dreg-frames/0.1", "v1")] == 1
    assert by[("pull", "GET", skopeo_agent, "v1")] >= 2  # inspect, and copy's read
    copy_push = manifests[(manifests["repository"] == "ev/copy") & (manifests["action"] == "push")]
    assert set(copy_push["user_agent"].astype(str)) == {skopeo_agent}
    assert (copy_push["tag"] == "c1").any()
    assert set(copy_push["digest"].astype(str)) == {pushed.digest}  # skopeo copied the bytes as they are
    assert (ours["kind"] == "blob").any() and set(ours["kind"].astype(str)) <= {"manifest", "blob"}
    assert ours["timestamp"].is_monotonic_increasing
    assert str(ours["timestamp"].dtype) == "datetime64[ns, UTC]"

    # the toolkit's own pulls are left out by default, its pushes kept
    default = load_events(setup.store)
    agents = default[default["action"] == "pull"]["user_agent"].astype(str)
    assert not agents.str.startswith("dreg-frames/").any()
    assert (default[default["action"] == "push"]["user_agent"] == "dreg-frames/0.1").any()

    # the crawl's pulls do not make images "used"; a child pulled by digest does
    result = crawl(registry, ["ev/app"], progress=False).with_events(load_events(setup.store))
    tags = result.tags.set_index("tag")
    assert tags.loc["v1", "pulls"] == 2  # skopeo's inspect and copy; not the HEAD, not the crawl
    assert tags.loc["multi", "pulls"] == 0
    assert not pd.isna(tags.loc["multi", "last_pulled"])  # through its arm64 child
    assert tags.loc["v1", "pushed"] <= tags.loc["v1", "last_pushed"]
    assert result.images["pulls_30d"].dtype == "int64"
    # what load_events and with_events give can be saved as any crawl can
    saved = Crawl.load(result.to_parquet(tmp_path / "joined"))
    assert saved.tags.set_index("tag").loc["v1", "pulls"] == 2
    assert saved.meta["recording_start"] == load_events(setup.store).attrs["recording_start"]


def test_receiver_restart_in_a_burst_loses_nothing(setup: Setup) -> None:
    registry = Registry.build_with_manual_client(setup.registry.url)
    repo = registry.repository("ev/burst")
    push_image(repo, [make_layer({"b": b"burst"})], tags=["b1"])
    _all_stored(setup)
    agent = f"burst-test/{uuid.uuid4().hex[:8]}"
    sent, stop_after = 120, 30
    stored_before = len(_stored_ids(setup.store))
    stopped = threading.Event()

    def puller() -> None:
        with requests.Session() as session:
            session.headers.update({"User-Agent": agent, "Accept": MANIFEST})
            for i in range(sent):
                if i == sent // 2:
                    # the second half is pulled while the receiver is down, so the registry must queue it
                    stopped.wait(timeout=60)
                session.head(f"{setup.registry.url}ev/burst/manifests/b1", timeout=10).raise_for_status()

    thread = threading.Thread(target=puller)
    thread.start()
    wait_for(
        "the burst to start arriving", lambda: len(_stored_ids(setup.store)) >= stored_before + stop_after
    )
    setup.receiver.close()  # stopped in the middle of the burst; the registry retries with backoff
    held = len(_stored_ids(setup.store)) - stored_before
    stopped.set()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert held <= sent // 2 < sent
    setup.restart_receiver()
    burst = lambda e: e.get("request", {}).get("useragent") == agent  # noqa: E731
    wait_for("the control endpoint to see the whole burst", lambda: len(setup.control.ids(burst)) == sent)
    _all_stored(setup)

    events = load_events(setup.store, ids=True)
    ours = events[events["user_agent"] == agent]
    assert len(ours) == sent == len(set(ours["id"])), "the burst lost or doubled events"
    assert set(ours["id"].astype(str)) == setup.control.ids(burst)
    assert setup.receiver.stats.as_dict()["stored"] >= sent - held  # the restarted receiver got the rest


def _post(url: str, body: bytes, token: str | None = TOKEN) -> requests.Response:
    headers = {"Content-Type": "application/vnd.docker.distribution.events.v1+json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(url, data=body, headers=headers, timeout=10)


def _event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "timestamp": "2026-11-27T10:00:00.123456789Z",
        "action": "pull",
        "target": {
            "mediaType": MANIFEST,
            "repository": "x/y",
            "tag": "t",
            "digest": "sha256:" + "a" * 64,
            "size": 5,
        },
        "request": {"method": "GET", "useragent": "containerd/1.7", "addr": "10.0.0.9:5000"},
        "actor": {"name": "ci-bot"},
    }
    event.update(overrides)
    return event


def test_hostile_requests_get_4xx_and_store_nothing(tmp_path: Path) -> None:
    with EventReceiver(tmp_path / "e.db", token=TOKEN, max_body=16384) as receiver:
        good = json.dumps({"events": [_event()]}).encode()
        cases = {
            "not json": (b"\xff\xfe{not json", 400),
            "a list": (b"[1, 2]", 400),
            "no events list": (b'{"events": 3}', 400),
            "event not an object": (b'{"events": [1]}', 400),
            "event without id": (json.dumps({"events": [{"action": "pull"}]}).encode(), 400),
            "deep nesting": (b'{"events": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400),
            "oversized": (json.dumps({"events": [_event(pad="x" * 20000)]}).encode(), 413),
        }
        for name, (body, status) in cases.items():
            response = _post(receiver.url, body)
            assert response.status_code == status, name
            assert response.text, f"{name}: the answer says why"
        assert _post(receiver.url, good, token="wrong").status_code == 401
        assert _post(receiver.url, good, token=None).status_code == 401
        assert (
            requests.post(receiver.url.replace("/events", "/other"), data=good, timeout=5).status_code == 404
        )
        assert receiver.store.count() == 0
        # still serving, and a replayed envelope is stored once
        assert _post(receiver.url, good).status_code == 200
        assert _post(receiver.url, good).status_code == 200
        assert receiver.store.count() == 1
        stats = receiver.stats.as_dict()
        assert stats["duplicates"] == 1 and stats["rejected"] == len(cases) + 3
        assert "stored 1" in requests.get(receiver.url, timeout=5).text


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
            ),
            max_leaves=30,
        ).map(lambda v: json.dumps({"events": [v] if not isinstance(v, list) else v}).encode()),
    )
)
def test_any_body_is_rows_or_invalid_envelope(body: bytes) -> None:
    try:
        rows = parse_envelope(body, received_ns=1)
    except InvalidEnvelope:
        return
    for row in rows:
        assert isinstance(row[0], str) and isinstance(row[1], int)


def test_timestamps_and_odd_fields_are_read_leniently(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "e.db")
    store.add(
        [
            _event(id="a", timestamp="2026-11-27T11:00:00+01:00"),
            _event(id="b", timestamp="not a time", target={"repository": ["odd"], "size": "big"}),
            _event(id="c", timestamp="2026-02-30T00:00:00Z"),
        ]
    )
    events = load_events(store, ids=True).set_index("id")
    assert events.loc["a", "timestamp"] == pd.Timestamp("2026-11-27T10:00:00Z")
    assert events.loc["b", "repository"] == '["odd"]' and pd.isna(events.loc["b", "size"])
    # an unreadable time is stored as the time received, never dropped
    assert events.loc["b", "timestamp"] == events.loc["b", "received"]
    assert events.loc["c", "timestamp"] == events.loc["c", "received"]


def _synthetic(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    start = pd.Timestamp("2026-10-01T00:00:00Z")
    out = []
    for i in range(n):
        when = start + pd.Timedelta(seconds=rng.randrange(0, 60 * 86400), nanoseconds=rng.randrange(1000))
        blob = rng.random() < 0.3
        out.append(
            _event(
                id=f"ev-{seed}-{i}",
                timestamp=when.strftime("%Y-%m-%dT%H:%M:%S.%f") + f"{when.nanosecond:03d}Z",
                action=rng.choice(["push", "pull", "pull", "pull", "delete"]),
                target={
                    "mediaType": "application/octet-stream" if blob else MANIFEST,
                    "repository": rng.choice(["a/x", "a/y", "b/z"]),
                    "tag": rng.choice([None, "v1", "v2"]),
                    "digest": "sha256:" + str(rng.randrange(6)) * 64,
                    "size": rng.randrange(100),
                },
                request={
                    "method": rng.choice(["GET", "HEAD"]),
                    "useragent": rng.choice(["docker/27", "dreg-frames/0.1"]),
                },
            )
        )
    return out


def test_compacted_chunks_read_as_the_rows_did(tmp_path: Path) -> None:
    raw = _synthetic(230, seed=1)
    store = EventStore(tmp_path / "e.db", chunk_size=50)
    for i in range(0, len(raw), 7):
        store.add(raw[i : i + 7])
    hot = load_events(store, include_crawler=True, ids=True)
    assert store.compact() == 200 and store.hot_count() == 30
    packed = load_events(store, include_crawler=True, ids=True)
    pd.testing.assert_frame_equal(hot, packed)
    assert len(packed) == 230 and store.count() == 230
    # since / until cut inside chunks as in the hot rows
    since, until = "2026-10-20", "2026-11-10"
    cut = load_events(store, since, until, include_crawler=True, ids=True)
    expected = {
        e["id"]
        for e in raw
        if pd.Timestamp(since, tz="UTC") <= pd.Timestamp(e["timestamp"]) < pd.Timestamp(until, tz="UTC")
    }
    assert set(cut["id"]) == expected
    assert load_events(store, columns=["timestamp", "repository"]).columns.tolist() == [
        "timestamp",
        "repository",
    ]
    # packing empties the hot table; what comes after gets new sequence numbers, never a chunk's
    assert store.compact(force=True) == 30 and store.hot_count() == 0
    more = _synthetic(60, seed=3)
    store.add(more)
    assert store.compact(force=True) == 60
    everything = load_events(store, include_crawler=True, ids=True)
    assert sorted(everything["id"]) == sorted(e["id"] for e in raw + more)
    with pytest.raises(ValueError, match="unknown columns"):
        load_events(store, columns=["nope"])


def test_digest_activity_matches_a_plain_python_count(tmp_path: Path) -> None:
    raw = _synthetic(400, seed=2)
    store = EventStore(tmp_path / "e.db", chunk_size=64)
    store.add(raw)
    store.compact()
    now = pd.Timestamp("2026-11-25T00:00:00Z")
    activity = digest_activity(load_events(store), now=now)
    expected: dict[tuple[str, str], dict[str, Any]] = {}
    for e in raw:
        target = e["target"]
        crawler_pull = e["request"]["useragent"].startswith("dreg-frames/") and e["action"] == "pull"
        if target["mediaType"] != MANIFEST or crawler_pull:
            continue
        row = expected.setdefault(
            (target["repository"], target["digest"]), {"push": [], "pull": [], "delete": []}
        )
        row[e["action"]].append(pd.Timestamp(e["timestamp"]))
    got = activity.set_index(["repository", "digest"])
    assert set(got.index) == set(expected)
    for key, row in expected.items():
        assert got.loc[key, "pulls"] == len(row["pull"])
        assert got.loc[key, "pulls_30d"] == sum(now - pd.Timedelta(days=30) <= t for t in row["pull"])
        for column, values, pick in (
            ("pushed", row["push"], min),
            ("last_pushed", row["push"], max),
            ("first_pulled", row["pull"], min),
            ("last_pulled", row["pull"], max),
            ("deleted", row["delete"], max),
        ):
            want = pick(values) if values else pd.NaT
            assert (pd.isna(got.loc[key, column]) and pd.isna(want)) or got.loc[key, column] == want, (
                key,
                column,
            )


def test_cli_serves_until_sigterm_and_summarises(tmp_path: Path) -> None:
    port = free_port()
    store = tmp_path / "cli.db"
    env = {**os.environ, "DREG_EVENTS_TOKEN": TOKEN}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dreg_frames",
            "events",
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--store",
            str(store),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert "receiving registry events at" in process.stdout.readline()
        url = f"http://127.0.0.1:{port}/events"
        assert _post(url, json.dumps({"events": [_event(id="one")]}).encode()).status_code == 200
        assert _post(url, b"{}", token=None).status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "stopped" in out
    summary = subprocess.run(
        [sys.executable, "-m", "dreg_frames", "events", "summary", "--store", str(store)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "x/y" in summary.stdout and "sha256:" in summary.stdout


def test_kinds_of_deletes(tmp_path: Path) -> None:
    """Distribution sends deletes without a media type: a manifest's digest is known from its other
    events; a tag delete has a tag and no digest; anything else is unknown."""
    store = EventStore(tmp_path / "e.db")
    known, other = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    store.add(
        [
            _event(
                id="push", action="push", target={"mediaType": MANIFEST, "repository": "r/x", "digest": known}
            ),
            _event(id="del-known", action="delete", target={"repository": "r/x", "digest": known}),
            _event(id="del-other", action="delete", target={"repository": "r/x", "digest": other}),
            _event(id="del-tag", action="delete", target={"repository": "r/x", "tag": "v1"}),
            _event(
                id="blob",
                target={"mediaType": "application/octet-stream", "repository": "r/x", "digest": other},
            ),
        ]
    )
    kinds = load_events(store, ids=True).set_index("id")["kind"].astype(str).to_dict()
    assert kinds == {
        "push": "manifest",
        "del-known": "manifest",
        "del-other": "unknown",
        "del-tag": "tag",
        "blob": "blob",
    }
