"""Adaptive concurrency benchmark (run by hand): python -m tests.benchmarks.bench_concurrency

A smaller registry than bench_crawl's (default 40 repositories x 10 tags: python-dxf needs a
minute per pass through 50 ms of latency), crawled in one run:

1. through the delay proxy (tests/proxies.py) at 20 ms and 50 ms added to every request: python-dxf
   (one request at a time, its natural use) against our crawl with ``workers="auto"``;
2. through a front end answering 429 to any request beyond N in flight (``LimitProxy``, each
   request let through taking 20 ms): ``workers="auto"`` against fixed worker counts 2/4/8/16/32.

Each is repeated (``--repeat``) and reported as median (min-max); ratios are of medians.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas  # noqa: F401  (loaded before anything is timed, as in a notebook)

import dreg_frames.crawl.frames  # noqa: F401
from dreg_frames import LocalRegistry, Registry, crawl

from ..proxies import DelayProxy, LimitProxy
from .baselines import dxf_crawl
from .bench_crawl import seed

FIXED = (2, 4, 8, 16, 32)


@contextlib.contextmanager
def registry(storage: str | None, repos: int, tags: int) -> Iterator[LocalRegistry]:
    """A seeded registry; ``storage`` keeps it between runs (seeded once)."""
    root = Path(storage or tempfile.mkdtemp(prefix="dreg-bench-concurrency-"))
    fresh = not (root / "docker").exists()
    with LocalRegistry(root) as server:
        if fresh:
            t0 = time.perf_counter()
            seed(server, repos, tags)
            print(f"seeded {repos} x {tags} in {time.perf_counter() - t0:.0f} s")
        yield server


def ours(url: str, workers: int | str) -> dict[str, Any]:
    result = crawl(Registry.build_with_manual_client(url), workers=workers, progress=False)
    return {
        "requests": result.meta["requests"],
        "layers": len(result.layers),
        "errors": len(result.errors),
        "concurrency": result.meta["concurrency"],
    }


def timed(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    t0 = time.perf_counter()
    out = fn()
    out["wall"] = time.perf_counter() - t0
    return out


def spread(walls: list[float]) -> str:
    return f"{statistics.median(walls):6.2f} s ({min(walls):.2f}-{max(walls):.2f})"


def latency(server: LocalRegistry, delay: float, repeat: int) -> None:
    print(f"\nthrough a {delay * 1000:.0f} ms delay proxy")
    walls: dict[str, list[float]] = {"python-dxf": [], "auto": []}
    last: dict[str, dict[str, Any]] = {}
    for _ in range(repeat):
        with DelayProxy(server.port or 0, delay) as proxy:
            last["python-dxf"] = timed(lambda: dxf_crawl(proxy.url()))
            last["auto"] = timed(lambda: ours(proxy.url(), "auto"))
        for label in walls:
            walls[label].append(last[label]["wall"])
    assert last["auto"]["layers"] == last["python-dxf"]["layers"], "the crawls disagree"
    for label, values in walls.items():
        extra = f"  concurrency {last[label]['concurrency']}" if "concurrency" in last[label] else ""
        print(f"  {label:<12} {last[label]['requests']:>6} req  {spread(values)}{extra}")
    ratio = statistics.median(walls["python-dxf"]) / statistics.median(walls["auto"])
    print(f"  auto vs python-dxf: {ratio:.1f}x faster")


def rate_limited(server: LocalRegistry, limit: int, delay: float, repeat: int) -> None:
    print(f"\nthrough a front end answering 429 beyond {limit} in flight ({delay * 1000:.0f} ms a request)")
    labels: list[int | str] = ["auto", *FIXED]
    walls: dict[int | str, list[float]] = {label: [] for label in labels}
    notes: dict[int | str, str] = {}
    for _ in range(repeat):
        for label in labels:
            with LimitProxy(server.port or 0, limit, delay=delay) as proxy:
                out = timed(lambda label=label: ours(proxy.url(), label))  # type: ignore[misc]
            walls[label].append(out["wall"])
            c = out["concurrency"]
            notes[label] = (
                f"errors {out['errors']:>3}  429s {proxy.rejected:>4}  "
                f"limit start {c['start']} max {c['max']} final {c['final']}, backoffs {c['backoffs']}"
            )
    for label in labels:
        name = "auto" if label == "auto" else f"fixed {label}"
        print(f"  {name:<9} {spread(walls[label])}  {notes[label]}")
    best = min(FIXED, key=lambda w: statistics.median(walls[w]))
    ratio = statistics.median(walls["auto"]) / statistics.median(walls[best])
    print(f"  auto vs the best fixed count ({best}): {ratio:.2f}x its time")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repos", type=int, default=40)
    parser.add_argument("--tags", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--limit", type=int, default=8, help="N of the 429-above-N front end")
    parser.add_argument("--storage", help="keep the seeded registry here (reused when it exists)")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-429", action="store_true")
    args = parser.parse_args()
    with registry(args.storage, args.repos, args.tags) as server:
        if not args.skip_latency:
            for delay in (0.020, 0.050):
                latency(server, delay, args.repeat)
        if not args.skip_429:
            rate_limited(server, args.limit, 0.020, args.repeat)


if __name__ == "__main__":
    main()
