"""The Dask engine against the real registry on a LocalCluster (2 worker processes), and the analysis
functions on dask frames against pandas (and the naive oracle) on generated registry graphs."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster, Semaphore
from distributed.diagnostics.plugin import SchedulerPlugin
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dreg_frames import (
    DregError,
    LocalRegistry,
    Registry,
    crawl,
    duplicates,
    make_layer,
    push_image,
    reclaimable,
    stale,
    storage_usage,
)
from dreg_frames.dask import (
    Anonymous,
    ConnectionSpec,
    DaskCrawl,
    DockerConfig,
    EnvCredentials,
    read_crawl,
)
from dreg_frames.sample import seed_registry

from .crawl_fixture import seed_known_registry
from .fault_proxy import Exchange, FaultProxy, Reply
from .graphs import build_graph, graph_specs
from .test_numbers_properties import NOW, _frames, _revisions, oracle_reclaimable, oracle_usage

USER = "dask-reader"
SECRET = "dask-" + secrets.token_hex(12)
USER_VAR, PASSWORD_VAR = "DREG_DASK_TEST_USER", "DREG_DASK_TEST_PASSWORD"


# -- fixtures ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """Two worker processes of one thread. Their environment, made before they start, holds the
    test credentials (as a deployment's secret would) and an empty Docker config."""
    saved = {k: os.environ.get(k) for k in (USER_VAR, PASSWORD_VAR, "DOCKER_CONFIG")}
    os.environ.update(
        {USER_VAR: USER, PASSWORD_VAR: SECRET, "DOCKER_CONFIG": str(tmp_path_factory.mktemp("no-docker"))}
    )
    try:
        with (
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as local,
            Client(local) as client,
        ):
            yield client
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def seeded() -> Iterator[LocalRegistry]:
    """The crawl tests' registry of known content (errors, an empty repository, odd dates, 110
    repositories) and the sample registry's (multi-arch, signatures, SBOMs, Helm charts)."""
    with LocalRegistry(delete_enabled=True) as server:
        seed_known_registry(server)
        seed_registry(Registry.build_with_manual_client(server.url))
        yield server


@pytest.fixture(scope="module")
def both(
    seeded: LocalRegistry, cluster: Client, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Any, DaskCrawl]:
    registry = Registry.build_with_manual_client(seeded.url)
    local = crawl(registry, progress=False)
    store = tmp_path_factory.mktemp("store") / "crawl"
    return local, crawl(registry, engine="dask", client=cluster, store=store, progress=False, tasks=5)


# -- the crawl --------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value.item() if isinstance(value, np.generic) else value


def _normalised(frame: pd.DataFrame) -> pd.DataFrame:
    """Values only: text as Python strings, missing as None, rows sorted, dtypes forgotten."""
    out = frame.astype(object).map(_plain)
    return out.sort_values(list(out.columns), key=lambda c: c.astype(str)).reset_index(drop=True)


def test_dask_crawl_equals_the_pandas_crawl_row_for_row(both: tuple[Any, DaskCrawl]) -> None:
    local, result = both
    assert isinstance(result.layers, dd.DataFrame)
    assert result.layers.npartitions == 5 and result.meta["tasks"] == 5
    assert len(local.errors) >= 3 and len(local.layers) > 150  # errors rows and real content in the test
    for name, frame in local.frames.items():
        # the dask frames as they are (strings for categories) hold the same rows
        got = result.frames[name].compute()
        assert list(got.columns) == list(frame.columns), name
        pd.testing.assert_frame_equal(_normalised(got), _normalised(frame), obj=name)
    # compute() restores the contract: dtypes, categories and row order as a local crawl has them
    computed = result.compute()
    for name, frame in local.frames.items():
        pd.testing.assert_frame_equal(computed.frames[name], frame, obj=name)
    assert result.meta["requests"] >= local.meta["requests"]
    # the default cap (32) shared by the 2 worker threads: 16 leases a task, never more in flight
    assert result.meta["concurrency"]["leases_per_task"] == 16
    assert 1 <= result.meta["concurrency"]["max_in_flight_per_task"] <= 16
    reopened = read_crawl(result.store)
    pd.testing.assert_frame_equal(reopened.tags.compute(), result.tags.compute())


def test_analysis_on_the_dask_crawl_equals_pandas(both: tuple[Any, DaskCrawl], cluster: Client) -> None:
    local, result = both
    for by in ("repository", "namespace", "kind", ["namespace", "tag"]):
        pd.testing.assert_frame_equal(storage_usage(result, by), storage_usage(local, by))
    pd.testing.assert_frame_equal(storage_usage(result.layers), storage_usage(local.layers))
    pd.testing.assert_frame_equal(duplicates(result.layers), duplicates(local.layers))
    pd.testing.assert_frame_equal(duplicates(result.images), duplicates(local.images))
    now = pd.Timestamp("2026-11-27", tz="UTC")
    candidates = stale(local.images, older_than="30D", keep_latest=1, now=now)
    assert len(candidates)
    pd.testing.assert_frame_equal(stale(result, older_than="30D", keep_latest=1, now=now), candidates)
    for untagged in (True, False):
        expected = reclaimable(local.layers, candidates, delete_untagged=untagged)
        assert expected["size"].sum() > 0
        pd.testing.assert_frame_equal(reclaimable(result, candidates, delete_untagged=untagged), expected)
    index = local.tags.loc[local.tags["media_type"].astype(str).str.contains("index|list"), "digest"]
    bare = [str(index.iloc[0]), str(local.tags["digest"].iloc[0])]
    pd.testing.assert_frame_equal(reclaimable(result.layers, bare), reclaimable(local.layers, bare))


def test_a_store_is_never_mixed(both: tuple[Any, DaskCrawl], seeded: LocalRegistry, cluster: Client) -> None:
    _, result = both
    with pytest.raises(DregError, match="already holds a crawl"):
        crawl(seeded.url, engine="dask", client=cluster, store=result.store, progress=False)
    with pytest.raises(DregError, match="not a finished crawl store"):
        read_crawl(Path(result.store.removeprefix("file://")) / "layers")


# -- credentials ------------------------------------------------------------------------------------
class GraphRecorder(SchedulerPlugin):
    """Keeps every task the scheduler receives, pickled as it would be sent to a worker."""

    name = "dreg-frames-graph-recorder"

    def __init__(self) -> None:
        self.pickled: list[bytes] = []

    def update_graph(self, scheduler: Any, *, tasks: list[Any], **kwargs: Any) -> None:
        from distributed.protocol.pickle import dumps

        for key in tasks:
            state = scheduler.tasks.get(key)
            if state is not None:
                self.pickled.append(dumps(state.run_spec))


def _recorded(client: Client) -> bytes:
    def fetch(dask_scheduler: Any) -> bytes:
        return b"".join(dask_scheduler.plugins[GraphRecorder.name].pickled)

    return client.run_on_scheduler(fetch)  # type: ignore[no-any-return]


def _logs(client: Client) -> str:
    worker_logs = client.get_worker_logs()
    return repr(client.get_scheduler_logs(n=10_000)) + repr(worker_logs)


@pytest.fixture(scope="module")
def htpasswd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    folder = tmp_path_factory.mktemp("htpasswd")
    hashed = bcrypt.hashpw(SECRET.encode(), bcrypt.gensalt(rounds=5)).decode()
    (folder / "htpasswd").write_text(f"{USER}:{hashed}\n")
    with LocalRegistry(auth={"htpasswd": {"realm": "dreg-dask", "path": str(folder / "htpasswd")}}) as server:
        registry = Registry.build_with_manual_client(server.url, auth=(USER, SECRET))
        push_image(registry.repository("private/app"), [make_layer({"a": b"secret-app"})], ["v1", "v2"])
        push_image(registry.repository("private/db"), [make_layer({"d": b"db"})], ["latest"])
        yield server


def test_credentials_reach_the_workers_but_never_the_graph_or_logs(
    htpasswd: LocalRegistry, cluster: Client, tmp_path: Path
) -> None:
    forms = [SECRET.encode(), base64.b64encode(f"{USER}:{SECRET}".encode())]
    cluster.register_plugin(GraphRecorder(), name=GraphRecorder.name)
    try:
        config = tmp_path / "docker"
        config.mkdir()
        auth = base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
        (config / "config.json").write_text(
            json.dumps({"auths": {htpasswd.url.split("/")[2]: {"auth": auth}}})
        )
        with_password = Registry.build_with_manual_client(htpasswd.url, auth=(USER, SECRET))
        sources: list[Any] = [EnvCredentials(USER_VAR, PASSWORD_VAR), DockerConfig(str(config))]
        for n, source in enumerate(sources):
            result = crawl(
                with_password,
                engine="dask",
                client=cluster,
                store=tmp_path / f"store{n}",
                credentials=source,
                progress=False,
            )
            tags = result.tags.compute()
            assert len(tags) == 3 and len(result.errors.compute()) == 0, source
        # the store holds no credentials either
        stored = b"".join(
            p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and "docker" not in p.parts
        )
        assert not any(form in stored for form in forms)
        graph = _recorded(cluster)
        # the recorder saw both crawls' tasks: the sources went, by name only
        assert b"EnvCredentials" in graph and PASSWORD_VAR.encode() in graph and b"DockerConfig" in graph
        assert not any(form in graph for form in forms)
        assert not any(form.decode() in _logs(cluster) for form in forms)
        # the recorder would have seen a password sent as a task argument
        cluster.submit(len, SECRET, pure=False).result()
        assert SECRET.encode() in _recorded(cluster)
    finally:
        cluster.unregister_scheduler_plugin(GraphRecorder.name)


def test_credentials_in_memory_are_refused_and_missing_ones_named(
    htpasswd: LocalRegistry, cluster: Client, tmp_path: Path
) -> None:
    with_password = Registry.build_with_manual_client(htpasswd.url, auth=(USER, SECRET))
    with pytest.raises(DregError, match="not sent into the task graph") as refused:
        crawl(with_password, engine="dask", client=cluster, store=tmp_path / "s0", progress=False)
    assert SECRET not in str(refused.value)
    with pytest.raises(DregError, match="NOT_SET_ANYWHERE"):
        crawl(
            htpasswd.url,
            engine="dask",
            client=cluster,
            store=tmp_path / "s1",
            credentials=EnvCredentials(USER_VAR, "NOT_SET_ANYWHERE"),
            progress=False,
        )
    with pytest.raises(DregError, match=r"ConnectionSpec\.credentials must be"):
        ConnectionSpec(htpasswd.url, credentials=(USER, SECRET))  # type: ignore[arg-type]
    # anonymous workers get the registry's 401: an error row per repository, not a crash
    result = crawl(
        ConnectionSpec(htpasswd.url, credentials=Anonymous()),
        ["private/app"],
        engine="dask",
        client=cluster,
        store=tmp_path / "s2",
        progress=False,
    )
    errors = result.errors.compute()
    assert list(errors["error"]) == ["AuthenticationError"]


# -- the cluster-wide cap ---------------------------------------------------------------------------
def test_the_cap_bounds_requests_in_flight_across_the_cluster(
    seeded: LocalRegistry, cluster: Client, tmp_path: Path
) -> None:
    lock = threading.Lock()
    state = {"now": 0, "most": 0}

    def count(exchange: Exchange, forward: Any) -> Reply:
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        try:
            time.sleep(0.01)  # long enough for requests of both workers to overlap
            return forward()  # type: ignore[no-any-return]
        finally:
            with lock:
                state["now"] -= 1

    names = [f"many/repo{i:03d}" for i in range(24)]
    with FaultProxy(seeded.port or 0) as proxy:
        proxy.rules.append(count)
        for cap in (2, 3):
            state["most"] = 0
            proxy.seen.clear()
            result = crawl(
                proxy.url,
                names,
                engine="dask",
                client=cluster,
                store=tmp_path / f"cap{cap}",
                max_requests=cap,
                tasks=4,
                progress=False,
            )
            assert len(result.tags.compute()) == 24 and len(result.errors.compute()) == 0
            assert result.meta["requests"] == len(proxy.seen)
            # never above the cap, and the cap was reached: both workers' tasks ran side by side
            assert state["most"] == cap, state
        # a crawl holding the cap (3) now: another cap for the same registry is refused, not mixed
        held = Semaphore(max_leases=3, name=f"dreg-frames:{ConnectionSpec(proxy.url).host}")
        held.acquire()
        try:
            with pytest.raises(DregError, match="running on this cluster with max_requests=3"):
                crawl(
                    proxy.url, names, engine="dask", client=cluster, store=tmp_path / "busy", max_requests=4
                )
        finally:
            held.release()


# -- dask frames vs pandas on generated graphs ------------------------------------------------------
def _as_dask(frame: pd.DataFrame, split: str, n: int) -> Any:
    """``frame`` as the store gives it (text as strings): whole repositories per partition
    (``"repositories"``), or rows cut anywhere (``"rows"``: a tag may span partitions)."""
    text = frame.copy()
    for column in text.columns:
        if isinstance(text[column].dtype, pd.CategoricalDtype):
            text[column] = text[column].astype("string")
    if split == "rows":
        return dd.from_pandas(text, npartitions=n, sort=False)
    names = sorted(text["repository"].unique())
    groups = [list(chunk) for chunk in np.array_split(np.array(names, dtype=object), min(n, len(names)))]
    return dd.concat([dd.from_pandas(text[text["repository"].isin(g)], npartitions=1) for g in groups])


SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEYS = st.sampled_from(["namespace", "kind", "tag", "digest", ["namespace", "kind"]])


@SETTINGS
@given(
    graph_specs(windows=True), st.sampled_from(["repositories", "rows"]), st.integers(1, 4), KEYS, st.data()
)
def test_dask_storage_and_reclaimable_equal_pandas_and_the_oracle(
    spec: Any, split: str, n: int, by: Any, data: st.DataObject
) -> None:
    graph = build_graph(spec)
    layers = _frames(graph)["layers"]
    distributed_layers = _as_dask(layers, split, n)
    with dask.config.set(scheduler="sync"):
        for key in ("repository", by):
            pd.testing.assert_frame_equal(storage_usage(distributed_layers, key), storage_usage(layers, key))
        usage = storage_usage(distributed_layers).set_index("repository")
        for repository, figures in oracle_usage(graph).items():
            for column, value in figures.items():
                assert int(usage.loc[repository, column]) == value, (repository, column)
        pairs = sorted({(r, c.digest) for r, m in _revisions(graph).items() for c in m.values()})
        victims = set(data.draw(st.lists(st.sampled_from(pairs), max_size=4)))
        untagged = data.draw(st.booleans())
        freed = reclaimable(distributed_layers, sorted(victims), delete_untagged=untagged)
        pd.testing.assert_frame_equal(freed, reclaimable(layers, sorted(victims), delete_untagged=untagged))
        got = dict(zip(freed["blob"], freed["size"].astype(int), strict=True))
        assert got == oracle_reclaimable(graph, victims, untagged)
        bare = [digest for _, digest in sorted(victims)][:2]
        pd.testing.assert_frame_equal(
            reclaimable(distributed_layers, bare, delete_untagged=untagged),
            reclaimable(layers, bare, delete_untagged=untagged),
        )


def _as_sets(found: pd.DataFrame) -> set[tuple[Any, ...]]:
    return {
        (k, key, tuple(d), tuple(r), n, nr, None if pd.isna(s) else int(s))
        for k, key, d, r, n, nr, s in found.itertuples(index=False)
    }


@SETTINGS
@given(graph_specs(), st.sampled_from(["repositories", "rows"]), st.integers(1, 4), st.integers(0, 3000))
def test_dask_duplicates_and_stale_equal_pandas(spec: Any, split: str, n: int, days: int) -> None:
    frames = _frames(build_graph(spec))
    with dask.config.set(scheduler="sync"):
        for name in ("layers", "images"):
            found = duplicates(_as_dask(frames[name], split, n))
            expected = duplicates(frames[name])
            assert _as_sets(found) == _as_sets(expected)
            assert list(found.columns) == list(expected.columns) and len(found) == len(expected)
        for name in ("images", "layers"):
            pd.testing.assert_frame_equal(
                stale(_as_dask(frames[name], split, n), older_than=days, keep_latest=1, now=NOW),
                stale(frames[name], older_than=days, keep_latest=1, now=NOW),
            )


# -- the base install stays light -------------------------------------------------------------------
def test_dask_loads_only_when_used() -> None:
    code = (
        "import sys\n"
        "from dreg_frames import Registry, crawl, storage_usage, load_sample\n"
        "import dreg_frames.dask\n"
        "storage_usage(load_sample().layers)\n"
        "print(sorted(m for m in ('dask', 'distributed', 'fsspec') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"
