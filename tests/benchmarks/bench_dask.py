"""Dask benchmark (run by hand): python -m tests.benchmarks.bench_dask [--crawl] [--analysis] [--rows N]

1. Crawl: the 200 x 20 registry of bench_crawl (same seeding), crawled by the thread pool (the
   baseline, in this process) and on a LocalCluster of 2 worker processes (1 thread each), in the
   same run. Prints wall seconds, requests, the registry's CPU and the ratio; the dask frames are
   checked equal to the pandas crawl.
2. Analysis on ROWS layer rows (default 20M) from Parquet: storage_usage, duplicates, stale and
   reclaimable, each in its own subprocess, once with pandas (read the whole dataset, then the
   function) and once with dask (threaded scheduler, 2 threads, partitions of 200k rows). Prints
   seconds and peak RSS of each, and whether it stayed under the memory budget (--budget-gib).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

NOW = "2026-11-27T00:00:00Z"
LAYERS_PER_IMAGE = 20
TAGS_PER_REPO = 50
IMAGES_PER_FILE = 10_000  # 200 repositories, 200k layer rows a file
FUNCTIONS = ("storage_usage", "duplicates", "stale", "reclaimable")


# -- 1. the crawl -----------------------------------------------------------------------------------
def bench_crawl(repos: int, tags: int, workers: int | str, rounds: int, delay: float) -> None:
    from distributed import Client, LocalCluster

    from dreg_frames import LocalRegistry

    from ..proxies import DelayProxy
    from .bench_crawl import seed

    with LocalRegistry() as server:
        t0 = time.perf_counter()
        n = seed(server, repos, tags)
        print(f"seeded {repos} repositories x {tags} tags = {n} tags in {time.perf_counter() - t0:.0f}s")
        t0 = time.perf_counter()
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
        # the workers import what a task needs now, as this process already has
        client.run(lambda: [__import__(m) for m in ("dreg_frames.dask.engine", "pyarrow.parquet", "fsspec")])
        print(f"LocalCluster of 2 worker processes started in {time.perf_counter() - t0:.1f}s (not counted)")
        store = Path(tempfile.mkdtemp(prefix="dreg-bench-dask-"))
        try:
            print(f"\nloopback ({server.url})")
            _crawl_rounds(server, server.url, client, store, workers, rounds)
            with DelayProxy(server.port or 0, delay) as proxy:
                print(f"\nthrough a {delay * 1000:.0f} ms delay proxy ({proxy.url()})")
                _crawl_rounds(server, proxy.url(), client, store, workers, rounds)
        finally:
            client.close()
            cluster.close()
            shutil.rmtree(store, ignore_errors=True)


def _crawl_rounds(server: Any, url: str, client: Any, store: Path, workers: int | str, rounds: int) -> None:
    """The thread pool and the dask crawl (no cap, the default cap 32, 16), alternated ``rounds``
    times; best of each, and the dask frames checked equal to the local crawl's."""
    from dreg_frames import Registry, crawl

    best: dict[str, float] = {}
    results: dict[str, Any] = {}
    local_label = f"thread pool (w={workers})"
    for round_ in range(rounds):
        for cap in (0, None, 32, 16):
            label = local_label if cap == 0 else f"dask 2 procs (w={workers}/task, cap={cap})"
            cpu0, own0, t = server.cpu_seconds(), time.process_time(), time.perf_counter()
            if cap == 0:
                out = crawl(Registry.build_with_manual_client(url), workers=workers, progress=False)
            else:
                out = crawl(
                    url,
                    engine="dask",
                    client=client,
                    store=store / f"cap-{cap}-{round_}",
                    workers=workers,
                    max_requests=cap,
                    progress=False,
                    overwrite=True,
                )
            wall = time.perf_counter() - t
            cpu = server.cpu_seconds() - cpu0
            best[label] = min(wall, best.get(label, wall))
            results[label] = out
            print(
                f"  {label:<36} {out.meta['requests']:>7} req {wall:>7.2f} s wall "
                f"{out.meta['requests'] / wall:>7.0f} req/s  registry CPU {cpu:>6.2f} s  "
                f"client CPU {time.process_time() - own0:>6.2f} s (this process)",
                flush=True,
            )
    local = results[local_label]
    for label in best:
        if label == local_label:
            continue
        computed = results[label].compute()
        for name, frame in local.frames.items():
            pd.testing.assert_frame_equal(computed.frames[name], frame)
        print(
            f"  best of {rounds}: {label} vs thread pool: {best[local_label] / best[label]:.2f}x "
            f"({best[label]:.2f} s vs {best[local_label]:.2f} s; {results[label].meta['tasks']} "
            f"tasks, {results[label].meta['requests']} vs {local.meta['requests']} requests; "
            "frames equal row for row)"
        )


# -- 2. the analysis --------------------------------------------------------------------------------
def _layer_frame(first_image: int, n_images: int) -> pd.DataFrame:
    """Layer rows of images ``first_image ..``, shaped as bench_analysis.synthetic (and built
    vectorised): 50 tags a repository, a tenth of tags aliases of the previous build, 15 of 20
    layers from a pool of 300 shared base layers, 5 own."""
    from dreg_frames.crawl.frames import apply_schema

    n = np.arange(first_image, first_image + n_images)
    alias = n % 10 == 9
    build = np.where(alias, n - 1, n)
    repo = n // TAGS_PER_REPO
    k = np.arange(LAYERS_PER_IMAGE)
    shared = (build[:, None] * 7 + k[None, :15]) % 300
    own = 300 + build[:, None] * 5 + k[None, : LAYERS_PER_IMAGE - 15]
    layer_ids = np.concatenate([shared, own], axis=1).ravel()
    ids, layer_codes = np.unique(layer_ids, return_inverse=True)
    layer_names = np.array([f"sha256:{i + 10**9:064x}" for i in ids], dtype=object)
    digests = np.array([f"sha256:{b + 10**6:064x}" for b in build], dtype=object)
    configs = np.array([f"sha256:{b + 10**7:064x}" for b in build], dtype=object)
    repos = np.array([f"team{r % 40}/service{r:05d}" for r in repo], dtype=object)
    tags = np.array(["latest" if i % TAGS_PER_REPO == 0 else f"v{i}" for i in n], dtype=object)
    days = pd.to_timedelta(build % 2500, unit="D") + pd.to_timedelta(
        (build * 7919) % 86_400_000_000_000, unit="ns"
    )
    created = pd.Timestamp("2019-06-01", tz="UTC") + days
    per_row = np.repeat(np.arange(n_images), LAYERS_PER_IMAGE)
    frame = pd.DataFrame(
        {
            "registry": "bench",
            "repository": pd.Categorical(repos[per_row]),
            "tag": pd.Categorical(tags[per_row]),
            "digest": pd.Categorical(digests[per_row]),
            "media_type": "application/vnd.oci.image.manifest.v1+json",
            "manifest_digest": pd.Categorical(digests[per_row]),
            "manifest_media_type": "application/vnd.oci.image.manifest.v1+json",
            "parent_digest": None,
            "platform": "linux/amd64",
            "os_version": None,
            "kind": "image",
            "subject_digest": None,
            "config_digest": pd.Categorical(configs[per_row]),
            "created": created[per_row],
            "created_suspect": False,
            "config_size": 900,
            "manifest_size": 700,
            "digest_size": 700,
            "layer_index": np.tile(k, n_images),
            "layer_digest": pd.Categorical.from_codes(layer_codes, categories=pd.Index(layer_names)),
            "layer_size": 1000 + (ids[layer_codes] * 7919) % 50_000,
            "layer_media_type": "application/vnd.oci.image.layer.v1.tar+gzip",
            "layer_foreign": False,
            "layer_urls": None,
        }
    )
    frame = apply_schema(frame, "layers")
    # an all-empty category column is stored as a dictionary of nulls, which pyarrow cannot read
    # back into a categorical one file at a time (as dask does): plain strings there
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype) and not len(frame[column].cat.categories):
            frame[column] = frame[column].astype("string")
    return frame


def generate(root: Path, rows: int) -> dict[str, Any]:
    """Write ROWS layer rows as Parquet files of whole repositories, and the victims of a cleanup
    (every third build, as ``stale`` might pick), unless already there."""
    done = root / "done.json"
    if done.exists():
        return dict(json.loads(done.read_text()))
    import pyarrow as pa
    import pyarrow.parquet as pq

    shutil.rmtree(root, ignore_errors=True)
    (root / "layers").mkdir(parents=True)
    images = rows // LAYERS_PER_IMAGE
    t0 = time.perf_counter()
    for i, first in enumerate(range(0, images, IMAGES_PER_FILE)):
        frame = _layer_frame(first, min(IMAGES_PER_FILE, images - first))
        pq.write_table(
            pa.Table.from_pandas(frame, preserve_index=False), root / "layers" / f"part-{i:05d}.parquet"
        )
    n = np.arange(images)
    victims = pd.DataFrame(
        {
            "repository": [f"team{r % 40}/service{r:05d}" for r in n // TAGS_PER_REPO],
            "digest": [f"sha256:{b + 10**6:064x}" for b in n],
        }
    )[(n % 3 == 0) & (n % 10 != 9)]
    victims.to_parquet(root / "victims.parquet", index=False)
    info = {
        "rows": images * LAYERS_PER_IMAGE,
        "files": -(-images // IMAGES_PER_FILE),
        "victims": len(victims),
    }
    print(f"generated {info} in {time.perf_counter() - t0:.0f}s")
    done.write_text(json.dumps(info))
    return info


def _measure(engine: str, function: str, root: str) -> dict[str, Any]:
    """In a fresh process: read the layers, run one function, report seconds and peak RSS."""
    from dreg_frames import duplicates, reclaimable, stale, storage_usage

    t0 = time.perf_counter()
    if engine == "pandas":
        layers: Any = pd.read_parquet(Path(root) / "layers")
    else:
        import dask
        import dask.dataframe as dd

        dask.config.set(scheduler="threads", num_workers=2)
        layers = dd.read_parquet(str(Path(root) / "layers"), split_row_groups=False)
    read = time.perf_counter() - t0
    victims = pd.read_parquet(Path(root) / "victims.parquet")
    t0 = time.perf_counter()
    if function == "storage_usage":
        out = storage_usage(layers)
    elif function == "duplicates":
        out = duplicates(layers)
    elif function == "stale":
        out = stale(layers, older_than="365D", keep_latest=3, now=NOW)
    else:
        out = reclaimable(layers, victims)
    seconds = time.perf_counter() - t0
    return {
        "read": read,
        "seconds": seconds,
        "rows": len(out),
        "checksum": int(pd.util.hash_pandas_object(out.astype(str), index=False).sum()),
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def bench_analysis(rows: int, budget_gib: float, data: Path, functions: list[str]) -> None:
    info = generate(data, rows)
    print(f"\nanalysis on {info['rows']:,} layer rows in {info['files']} Parquet files ({data})")
    print(f"  memory budget {budget_gib:.1f} GiB; each cell a fresh process (peak RSS includes the read)")
    results: dict[tuple[str, str], dict[str, Any]] = {}
    for function in functions:
        for engine in ("pandas", "dask"):
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "tests.benchmarks.bench_dask",
                    "--measure",
                    engine,
                    function,
                    str(data),
                ],
                capture_output=True,
                text=True,
                timeout=3600,
            )
            if done.returncode:
                print(f"  {function:<14} {engine:<6} failed (exit {done.returncode}): {done.stderr[-500:]}")
                continue
            got = json.loads(done.stdout.strip().splitlines()[-1])
            results[(function, engine)] = got
            under = "under" if got["peak_mib"] < budget_gib * 1024 else "OVER"
            got["total"] = got["read"] + got["seconds"]
            print(
                f"  {function:<14} {engine:<6} read {got['read']:>6.1f} s  "
                f"function {got['seconds']:>7.1f} s  total {got['total']:>7.1f} s  "
                f"peak RSS {got['peak_mib']:>7.0f} MiB ({under} budget)  rows {got['rows']}",
                flush=True,
            )
        pandas_run, dask_run = (results.get((function, e)) for e in ("pandas", "dask"))
        if pandas_run and dask_run:
            same = "same answer" if pandas_run["checksum"] == dask_run["checksum"] else "ANSWERS DIFFER"
            print(
                f"  {function:<14} dask/pandas: time {dask_run['total'] / pandas_run['total']:.2f}x, "
                f"peak memory {dask_run['peak_mib'] / pandas_run['peak_mib']:.2f}x; {same}"
            )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":
        print(json.dumps(_measure(*sys.argv[2:5])))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--crawl", action="store_true", help="only the crawl benchmark")
    parser.add_argument("--analysis", action="store_true", help="only the analysis benchmark")
    parser.add_argument("--repos", type=int, default=200)
    parser.add_argument("--tags", type=int, default=20)
    parser.add_argument("--workers", type=lambda v: v if v == "auto" else int(v), default="auto")
    parser.add_argument("--rounds", type=int, default=3, help="crawl runs of each kind, alternated")
    parser.add_argument("--delay", type=float, default=0.020, help="the delay proxy's added latency")
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--budget-gib", type=float, default=4.0)
    parser.add_argument("--functions", nargs="+", default=list(FUNCTIONS), choices=FUNCTIONS)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "dreg-bench-dask-layers")
    args = parser.parse_args()
    both = not (args.crawl or args.analysis)
    if args.crawl or both:
        bench_crawl(args.repos, args.tags, args.workers, args.rounds, args.delay)
    if args.analysis or both:
        bench_analysis(args.rows, args.budget_gib, args.data / str(args.rows), args.functions)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
