"""Events benchmark (run by hand): python -m tests.benchmarks.bench_events [--events 10000000]

1. Receiver throughput with the registry sending. Debian's registry runs with notifications to
   ``dreg-frames events serve`` (a separate process, so its CPU is its own); pull clients hammer
   the registry with manifest HEADs as fast as it answers (every HEAD is one event). Reported: the
   pull rate (= the rate the registry emits events), the rate events are stored, how far the store
   is behind when the pulls stop, and receiver CPU per event; once with the default durability
   (WAL, synchronous=NORMAL) and once with --fsync; and once with the registry sending to a null
   endpoint that stores nothing and acknowledges at once (what the registry can emit: the fair
   ceiling for the receiver). Then the receiver alone, posted to serially as the registry does.
2. ``load_events`` of EVENTS events and the per-digest summary, against DuckDB computing the same
   summary from the same events in a Parquet file (DuckDB's best case), in the same run, best of 3;
   the two results are checked equal.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from dreg_frames import LocalRegistry, Registry, make_layer, push_image
from dreg_frames.events import EventStore, digest_activity, load_events
from dreg_frames.events.store import COLUMNS
from dreg_frames.local_registry import free_port

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _puller(port: int, path: str, seconds: float, out: Any) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Accept": MANIFEST, "User-Agent": "bench-puller/1"}
    done, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        conn.request("HEAD", path, headers=headers)
        response = conn.getresponse()
        response.read()
        done += 1
    out.put(done)


def _count(store: Path) -> int:
    with EventStore(store, readonly=True) as opened:
        return opened.count()


def _null_endpoint(port: int, counter: Any, ready: Any) -> None:
    """The fair ceiling: an endpoint that stores nothing and acknowledges each POST the moment its
    body is in, counting events. What the registry delivers to it is what the registry can emit."""
    import asyncio

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                with counter.get_lock():
                    counter.value += len(json.loads(body)["events"])
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def receiver_under_registry(
    seconds: float, pullers: int, fsync: bool, null: bool = False
) -> dict[str, float]:
    """``null``: the registry sends to :func:`_null_endpoint` instead of the receiver."""
    work = Path(tempfile.mkdtemp(prefix="bench-events-"))
    store = work / "events.db"
    port = free_port()
    counter = multiprocessing.Value("q", 0)
    if null:
        ready = multiprocessing.Event()
        receiver: Any = multiprocessing.Process(target=_null_endpoint, args=(port, counter, ready))
        receiver.start()
        ready.wait(30)

        def count() -> int:
            return int(counter.value)
    else:
        args = [sys.executable, "-m", "dreg_frames", "events", "serve", "--listen", f"127.0.0.1:{port}"]
        args += ["--store", str(store)] + (["--fsync"] if fsync else [])
        receiver = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert receiver.stdout is not None
        receiver.stdout.readline()

        def count() -> int:
            return _count(store)

    endpoint = {"name": "bench", "url": f"http://127.0.0.1:{port}/events", "timeout": "5s", "threshold": 3}
    endpoint["backoff"] = "200ms"
    with LocalRegistry(extra={"notifications": {"endpoints": [endpoint]}}) as registry:
        repo = Registry.build_with_manual_client(registry.url).repository("bench/app")
        push_image(repo, [make_layer({"b": b"bench"})], tags=["v1"])
        time.sleep(1)
        base = count()
        cpu0, reg_cpu0 = cpu_seconds(receiver.pid), registry.cpu_seconds()
        queue: multiprocessing.Queue[int] = multiprocessing.Queue()
        procs = [
            multiprocessing.Process(
                target=_puller, args=(registry.port, "/v2/bench/app/manifests/v1", seconds, queue)
            )
            for _ in range(pullers)
        ]
        t0 = time.monotonic()
        for p in procs:
            p.start()
        pulls = sum(queue.get() for _ in procs)
        for p in procs:
            p.join()
        t_pulls = time.monotonic() - t0
        stored_at_end = count() - base
        while count() - base < pulls:
            time.sleep(0.01)
            if time.monotonic() - t0 > seconds * 20 + 60:
                break
        t_all = time.monotonic() - t0
        stored = count() - base
        cpu = cpu_seconds(receiver.pid) - cpu0
        reg_cpu = registry.cpu_seconds() - reg_cpu0
    receiver.terminate()
    if null:
        receiver.join(30)
    else:
        receiver.wait(timeout=30)
    return {
        "pulls": pulls,
        "pull_rate": pulls / t_pulls,
        "stored": stored,
        "stored_rate": stored / t_all,
        "behind_at_end": pulls - stored_at_end,
        "catch_up_s": t_all - t_pulls,
        "cpu_us_per_event": cpu / max(stored, 1) * 1e6,
        "registry_cpu_us_per_pull": reg_cpu / max(pulls, 1) * 1e6,
    }


def receiver_alone(n: int, fsync: bool, keep_alive: bool = False) -> dict[str, float]:
    """Posted to serially, one event per request and (unless ``keep_alive``) one connection per
    request, as Distribution does."""
    work = Path(tempfile.mkdtemp(prefix="bench-events-"))
    port = free_port()
    args = [sys.executable, "-m", "dreg_frames", "events", "serve", "--listen", f"127.0.0.1:{port}"]
    args += ["--store", str(work / "e.db")] + (["--fsync"] if fsync else [])
    receiver = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert receiver.stdout is not None
    receiver.stdout.readline()
    template = {
        "timestamp": "2026-11-27T10:00:00.123456789Z",
        "action": "pull",
        "target": {
            "mediaType": MANIFEST,
            "repository": "bench/app",
            "tag": "v1",
            "digest": "sha256:" + "a" * 64,
        },
        "request": {"method": "HEAD", "useragent": "containerd/1.7", "addr": "10.0.0.1:1234", "host": "r"},
        "actor": {},
        "source": {"addr": "r:5000", "instanceID": str(uuid.uuid4())},
    }
    bodies = [json.dumps({"events": [{**template, "id": str(uuid.uuid4())}]}).encode() for _ in range(n)]
    conn = http.client.HTTPConnection("127.0.0.1", port)
    cpu0 = cpu_seconds(receiver.pid)
    t0 = time.perf_counter()
    for body in bodies:
        if not keep_alive:  # as Distribution 2.8 does: a new connection for every event
            conn = http.client.HTTPConnection("127.0.0.1", port)
        conn.request(
            "POST", "/events", body, {"Content-Type": "application/vnd.docker.distribution.events.v1+json"}
        )
        response = conn.getresponse()
        response.read()
        assert response.status == 200
        if not keep_alive:
            conn.close()
    elapsed = time.perf_counter() - t0
    cpu = cpu_seconds(receiver.pid) - cpu0
    receiver.terminate()
    receiver.wait(timeout=30)
    return {
        "events": n,
        "rate": n / elapsed,
        "latency_us": elapsed / n * 1e6,
        "cpu_us_per_event": cpu / n * 1e6,
    }


# ---- 2. load_events and the summary at scale -----------------------------------------------------


def build_store(path: Path, n: int, batch: int = 262_144) -> float:
    """A store of ``n`` realistic events through the store's own API (add_rows, then compact)."""
    rng = random.Random(11)
    repos = [f"team{i % 20}/service{i:03d}" for i in range(200)]
    digests = {r: [f"sha256:{rng.getrandbits(256):064x}" for _ in range(25)] for r in repos}
    # blobs: 100k distinct layers and configs, pulled and pushed again and again
    blobs = [f"sha256:{rng.getrandbits(256):064x}" for _ in range(100_000)]
    agents = [
        "docker/27.1",
        "containerd/1.7.20",
        "kubelet/1.30",
        "skopeo/1.9.3",
        "dreg-frames/0.1",
        "Go-http-client/1.1",
    ]
    addrs = [f"10.{i // 250}.{i % 250}.1:{40000 + i}" for i in range(500)]
    start_ns = pd.Timestamp("2026-08-01T00:00:00Z").value
    step = 120 * 86400 * 10**9 // n  # 120 days of events, in arrival order
    store = EventStore(path, chunk_size=65536)
    t0 = time.perf_counter()
    made = 0
    while made < n:
        rows = []
        count = min(batch, n - made)
        stamps = [start_ns + (made + i) * step + rng.randrange(step) for i in range(count)]
        for ts in stamps:
            repo = rng.choice(repos)
            roll = rng.random()
            if roll < 0.45:
                action, media, digest, tag = (
                    "pull",
                    MANIFEST,
                    rng.choice(digests[repo]),
                    rng.choice([None, "latest", "v1"]),
                )
            elif roll < 0.90:
                action, media, digest, tag = "pull", "application/octet-stream", rng.choice(blobs), None
            elif roll < 0.95:
                action, media, digest, tag = "push", "application/octet-stream", rng.choice(blobs), None
            elif roll < 0.99:
                action, media, digest, tag = (
                    "push",
                    MANIFEST,
                    rng.choice(digests[repo]),
                    rng.choice(["latest", "v1"]),
                )
            else:
                action, media, digest, tag = "delete", None, rng.choice(digests[repo]), None
            rows.append(
                (
                    str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    ts,
                    ts + 1_000_000,
                    action,
                    repo,
                    tag,
                    digest,
                    media,
                    rng.randrange(500, 5_000_000),
                    rng.choice(["GET", "HEAD"])
                    if action == "pull"
                    else ("PUT" if action == "push" else "DELETE"),
                    None,
                    rng.choice(agents),
                    rng.choice(addrs),
                    "registry.example.com",
                    str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "3f1c0d2e-6194-464f-be88-207993ea2f76",
                    None,
                )
            )
        assert len(rows[0]) == len(COLUMNS)
        store.add_rows(rows)
        store.compact()
        made += count
        print(f"  built {made:,} events", end="\r", flush=True)
    store.close()
    print()
    return time.perf_counter() - t0


DUCKDB_SUMMARY = """
SELECT repository, digest,
       min(timestamp) FILTER (WHERE action = 'push')   AS pushed,
       max(timestamp) FILTER (WHERE action = 'push')   AS last_pushed,
       min(timestamp) FILTER (WHERE action = 'pull')   AS first_pulled,
       max(timestamp) FILTER (WHERE action = 'pull')   AS last_pulled,
       count(*) FILTER (WHERE action = 'pull')         AS pulls,
       count(*) FILTER (WHERE action = 'pull' AND timestamp >= $since) AS pulls_30d,
       max(timestamp) FILTER (WHERE action = 'delete') AS deleted
FROM {source}
WHERE kind = 'manifest' AND digest IS NOT NULL
  AND NOT (action = 'pull' AND starts_with(user_agent, 'dreg-frames/'))
GROUP BY repository, digest
ORDER BY repository, digest
"""


def best(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def replicate(source: Path, target: Path, times: int) -> None:
    """``target``: the chunks of ``source`` ``times`` over, each copy later in time (its timestamps
    re-encoded, everything else copied as stored). Building ten million events through add_rows takes
    a quarter of an hour; what load_events reads is the same either way."""
    import shutil
    import sqlite3

    import numpy as np

    shutil.copy(source, target)
    conn = sqlite3.connect(target)
    chunks = conn.execute(
        "SELECT seq_first, seq_last, n, ts_min, ts_max FROM chunks ORDER BY seq_first"
    ).fetchall()
    span = chunks[-1][4] - chunks[0][3] + 1
    last_seq = chunks[-1][1]
    for copy in range(1, times):
        shift, seq_shift = copy * span, copy * (last_seq + 1)
        for first, last, count, ts_min, ts_max in chunks:
            conn.execute(
                "INSERT INTO chunks VALUES (?, ?, ?, ?, ?)",
                (first + seq_shift, last + seq_shift, count, ts_min + shift, ts_max + shift),
            )
            for name, kind, width, data, dictionary in conn.execute(
                "SELECT name, kind, width, data, dictionary FROM chunk_columns WHERE seq_first = ?", (first,)
            ).fetchall():
                if name in ("timestamp", "received"):
                    data = (np.frombuffer(data, dtype="<i8") + shift).astype("<i8").tobytes()
                conn.execute(
                    "INSERT INTO chunk_columns VALUES (?, ?, ?, ?, ?, ?)",
                    (first + seq_shift, name, kind, width, data, dictionary),
                )
        conn.commit()
    conn.close()


def at_scale(n: int, keep: Path | None) -> None:
    work = keep or Path(tempfile.mkdtemp(prefix="bench-events-"))
    store = work / f"events-{n}.db"
    base_n = min(n, 1_048_576)
    base = work / f"events-{base_n}.db"
    if not base.exists():
        print(
            f"building a store of {base_n:,} events through add_rows (one transaction per 262,144) + compact"
        )
        seconds = build_store(base, base_n)
        print(f"  {seconds:.0f} s: {base_n / seconds:,.0f} events/s stored and packed (generation included)")
    if not store.exists():
        partial = store.with_suffix(".partial")
        replicate(base, partial, n // base_n)
        partial.rename(store)
        n = (n // base_n) * base_n
    print(
        f"  store: {store.stat().st_size / 2**20:,.0f} MiB on disk "
        f"({store.stat().st_size / n:.0f} bytes/event)"
    )
    now = pd.Timestamp("2026-11-29T00:00:00Z")

    # every event, the toolkit's own pulls included: what DuckDB reads (and filters itself)
    t_load_all, everything = best(lambda: load_events(store, include_crawler=True), 2)
    t_load, events = best(lambda: load_events(store), 2)
    t_sum, ours = best(lambda: digest_activity(events, now=now))
    t_pruned, pruned = best(lambda: digest_activity(store, now=now))
    pd.testing.assert_frame_equal(ours.drop(columns=[]), pruned)
    size = everything.memory_usage(deep=True).sum() / 2**20
    print(
        f"  load_events: {len(everything):,} rows, {size:,.0f} MiB in memory "
        f"({len(events):,} without crawler pulls)"
    )

    parquet = work / "events.parquet"
    everything.to_parquet(parquet, index=False)
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    since = now - pd.Timedelta(days=30)
    query_file = DUCKDB_SUMMARY.format(source=f"read_parquet('{parquet}')")
    t_duck_file, theirs = best(lambda: con.execute(query_file, {"since": since}).df())
    con.register("events_frame", everything)
    query_frame = DUCKDB_SUMMARY.format(source="events_frame")
    t_duck_frame, _ = best(lambda: con.execute(query_frame, {"since": since}).df())

    mine = (
        ours.astype({"repository": str, "digest": str})
        .sort_values(["repository", "digest"])
        .reset_index(drop=True)
    )
    theirs = theirs.astype({"repository": str, "digest": str}).reset_index(drop=True)
    for column in ("pushed", "last_pushed", "first_pulled", "last_pulled", "deleted"):
        theirs[column] = pd.to_datetime(theirs[column], utc=True).astype("datetime64[ns, UTC]")
    for column in ("pulls", "pulls_30d"):
        theirs[column] = theirs[column].astype("int64")
    pd.testing.assert_frame_equal(mine[theirs.columns.tolist()], theirs, check_dtype=False)
    print(f"  results equal: {len(mine):,} (repository, digest) rows\n")

    print(f"{'step':<58}{'ours s':>9}{'DuckDB s':>10}{'ratio':>8}")
    rows = [
        ("load_events (all columns) + digest_activity vs Parquet+SQL", t_load + t_sum, t_duck_file),
        ("digest_activity(store): only the columns it needs", t_pruned, t_duck_file),
        ("digest_activity on the loaded frame vs SQL on the frame", t_sum, t_duck_frame),
    ]
    for name, mine_s, theirs_s in rows:
        print(f"{name:<58}{mine_s:>9.2f}{theirs_s:>10.2f}{mine_s / theirs_s:>8.2f}")
    print(f"{'load_events alone (default: crawler pulls dropped)':<58}{t_load:>9.2f}")
    print(f"{'load_events alone (include_crawler=True)':<58}{t_load_all:>9.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--seconds", type=float, default=10.0, help="pull load duration")
    parser.add_argument("--pullers", type=int, default=4, help="pull client processes")
    parser.add_argument("--keep", type=Path, help="folder to keep (and reuse) the big store in")
    parser.add_argument("--skip-receiver", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    args = parser.parse_args()
    print(
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, pandas {pd.__version__}, "
        f"duckdb {duckdb.__version__}\n"
    )
    if not args.skip_receiver:
        print("1. receiver with Debian's registry sending (manifest HEADs flat out, one event each)")
        for pullers, fsync, null in (
            (1, False, False),
            (args.pullers, False, True),
            (args.pullers, False, False),
            (args.pullers, True, False),
        ):
            r = receiver_under_registry(args.seconds, pullers, fsync, null)
            mode = f"{pullers} puller{'s' if pullers > 1 else ''}, " + (
                "null endpoint" if null else "fsync" if fsync else "default"
            )
            print(
                f"  {mode:<20} pulls {r['pulls']:,.0f} at {r['pull_rate']:,.0f}/s; stored {r['stored']:,.0f} "
                f"at {r['stored_rate']:,.0f}/s ({r['stored_rate'] / r['pull_rate']:.2f} of the pull rate); "
                f"behind {r['behind_at_end']:,.0f} when pulls stopped, caught up in {r['catch_up_s']:.2f} s; "
                f"receiver CPU {r['cpu_us_per_event']:.0f} us/event; "
                f"registry CPU {r['registry_cpu_us_per_pull']:.0f} us/pull"
            )
        for fsync, keep_alive in ((False, False), (True, False), (False, True)):
            r = receiver_alone(5000, fsync, keep_alive)
            mode = ("fsync each event" if fsync else "default") + (", keep-alive" if keep_alive else "")
            print(
                f"  receiver alone, {mode:<24} {r['rate']:,.0f} events/s serially "
                f"({r['latency_us']:.0f} us a request), CPU {r['cpu_us_per_event']:.0f} us/event"
            )
        print()
    if not args.skip_scale:
        print(f"2. load_events and the per-digest summary, {args.events:,} events")
        at_scale(args.events, args.keep)


if __name__ == "__main__":
    main()
