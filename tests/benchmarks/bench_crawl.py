"""Crawl benchmark (run by hand): python -m tests.benchmarks.bench_crawl [--repos 200 --tags 20]

Seeds a local Distribution registry with REPOS x TAGS images of mixed media types (Docker schema2,
OCI, and Docker/OCI multi-arch), then times in one run, on loopback: python-dxf walking the registry
one request at a time (the baseline: a registry client nobody here wrote, see baselines.py), the same
walk with our client API, our cold crawl (``workers="auto"``, and a fixed count), and our warm
recrawl from the cache. Prints requests, req/s, wall seconds, the client's own CPU per request
(process CPU time / requests: what competes with the registry on a small machine), the registry
process's CPU (its floor here), ratios against python-dxf, peak RSS and frame bytes per layer row.
``--repeat`` runs it all several times and prints each ratio's median and spread. pandas is imported
before anything is timed, as in a notebook. ``--delay 0.02`` adds a pass through the delay proxy
(bench_concurrency.py compares adaptive concurrency through it).
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas  # noqa: F401  (loaded before anything is timed, as in a notebook)

import dreg_frames.crawl.frames
import dreg_frames.crawl.result  # noqa: F401
from dreg_frames import (
    ImageIndex,
    LocalRegistry,
    Manifest,
    Registry,
    crawl,
    make_layer,
    push_image,
    push_multiarch,
)

from ..proxies import DelayProxy
from .baselines import dxf_crawl


def seed(server: LocalRegistry, repos: int, tags: int) -> int:
    """REPOS repositories x TAGS tags, shaped like a real registry rather than all-distinct content.

    Per source repository: builds tagged ``1.0.N``; about 40% of the tags are aliases of a build
    (``1.N``, ``latest``, ``stable``), as release pipelines tag them. One repository in four is a
    promoted copy (``prod/...``) of a ``staging/...`` one: same digests under another name. 60%
    Docker schema2, 25% OCI, 15% multi-arch (Docker list or OCI index, two platforms).
    """
    registry = Registry.build_with_manual_client(server.url, pool_size=16)
    base = make_layer({"base": b"B" * 4000})
    builds = max(1, round(tags * 0.6))
    n_copies = repos // 4
    sources = repos - n_copies

    def source(r: int) -> list[tuple[str, str]]:
        name = f"staging/service{r:03d}" if r < n_copies else f"team{r % 10}/service{r:03d}"
        repo = registry.repository(name)
        pushed: list[tuple[str, str]] = []
        for b in range(builds):
            app = make_layer({"app": f"{r}-{b}".encode() * 50})
            created = f"2024-{1 + b % 12:02d}-{1 + r % 28:02d}T12:00:00.{r:03d}{b:06d}Z"
            kind = (r + b) % 20
            if kind < 3:
                image: ImageIndex | Manifest = push_multiarch(
                    repo,
                    {"linux/amd64": [base, app], "linux/arm64/v8": [base, app + b"\0"]},
                    [f"1.0.{b}"],
                    created=created,
                    oci=kind == 0,
                )
            else:
                image = push_image(repo, [base, app], [f"1.0.{b}"], created=created, oci=kind < 8)
            pushed.append((image.digest, image.media_type))
        aliases = [f"1.{a}" for a in range(tags - builds - 2)] + ["latest", "stable"]
        for i, alias in enumerate(aliases):
            repo.tag(pushed[-1 - (i % builds)][0], alias)
        return pushed

    def promote(r: int) -> None:
        src = registry.repository(f"staging/service{r:03d}")
        dst = registry.repository(f"prod/service{r:03d}")
        for tag in src.tags():
            top = src.get_manifest(tag)
            children = (
                [src.get_manifest(d.digest) for d in top.manifests] if isinstance(top, ImageIndex) else []
            )
            for manifest in [*children, top]:
                if isinstance(manifest, Manifest):
                    for blob in (manifest.config, *manifest.layers):
                        dst.mount_blob(blob.digest, src)
                if manifest is not top:
                    dst.put_manifest(manifest.digest, manifest.raw, manifest.media_type)
            dst.put_manifest(tag, top.raw, top.media_type)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(source, range(sources)))
        list(pool.map(promote, range(n_copies)))
    return repos * tags


def sequential_baseline(url: str) -> dict[str, Any]:
    """What a notebook loop over the client API does: one request at a time, nothing shared."""
    registry = Registry.build_with_manual_client(url)
    layers = 0
    for name, repo in registry.repositories().items():
        for tag in repo.tags():
            top = repo.get_manifest(tag)
            children = (
                [repo.get_manifest(d.digest) for d in top.manifests] if isinstance(top, ImageIndex) else [top]
            )
            for child in children:
                if isinstance(child, Manifest):
                    repo.get_config(child)
                    layers += len(child.layers)
        del name
    return {"requests": registry.client.requests_made, "layers": layers}


def measure(label: str, server: LocalRegistry, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    gc.collect()
    cpu0 = server.cpu_seconds()
    own0 = time.process_time()
    t0 = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t0
    cpu = server.cpu_seconds() - cpu0
    own = time.process_time() - own0
    out.update(label=label, wall=wall, registry_cpu=cpu, client_cpu=own, rps=out["requests"] / wall)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"  {label:<24} {out['requests']:>7} req {out['rps']:>7.0f} req/s {wall:>7.2f} s wall  "
        f"client CPU {own / out['requests'] * 1000:>5.3f} ms/req  "
        f"registry CPU {cpu:>6.2f} s ({cpu / out['requests'] * 1000:.2f} ms/req)  peak RSS {rss:>5.0f} MiB",
        flush=True,
    )
    return out


def run(server: LocalRegistry, url: str, title: str, workers: int) -> dict[str, float]:
    """One pass; returns its ratios."""
    print(f"\n{title}  ({url})")
    cache = tempfile.mkdtemp(prefix="dreg-bench-cache-")
    dxf = measure("python-dxf (baseline)", server, lambda: dxf_crawl(url))
    seq = measure("our API, one at a time", server, lambda: sequential_baseline(url))
    frames: dict[str, Any] = {}

    def ours(use_cache: bool, how: int | str = "auto") -> dict[str, Any]:
        result = crawl(
            Registry.build_with_manual_client(url),
            workers=how,
            progress=False,
            cache=cache if use_cache else None,
        )
        frames["result"] = result
        used = result.meta["concurrency"]
        return {
            "requests": result.meta["requests"],
            "layers": len(result.layers),
            "limit": f"{used['start']}->{used['max']}->{used['final']}",
        }

    cold = measure("cold crawl (auto)", server, lambda: ours(False))
    print(f"{'':28}(limit start->max->final: {cold['limit']})")
    fixed = measure(f"cold crawl (workers={workers})", server, lambda: ours(False, workers))
    filled = measure("cold crawl + fill cache", server, lambda: ours(True))
    warm = measure("warm recrawl (cache)", server, lambda: ours(True))
    result = frames["result"]
    per_row = result.layers.memory_usage(deep=True).sum() / max(1, len(result.layers))
    assert cold["layers"] == fixed["layers"] == dxf["layers"] == seq["layers"] == warm["layers"], (
        "crawls disagree"
    )
    ratios = {
        "cold/dxf": dxf["wall"] / cold["wall"],
        "warm/dxf": dxf["wall"] / warm["wall"],
        f"w={workers}/dxf": dxf["wall"] / fixed["wall"],
        "cold CPU ms/req": cold["client_cpu"] / cold["requests"] * 1000,
        "dxf CPU ms/req": dxf["client_cpu"] / dxf["requests"] * 1000,
    }
    fixed_ratio = ratios[f"w={workers}/dxf"]
    print(
        f"  vs python-dxf: cold {ratios['cold/dxf']:.2f}x faster, warm {ratios['warm/dxf']:.2f}x, "
        f"workers={workers} {fixed_ratio:.2f}x, cold+cache {dxf['wall'] / filled['wall']:.2f}x; "
        f"our API one at a time {dxf['wall'] / seq['wall']:.2f}x; "
        f"warm vs cold {cold['wall'] / warm['wall']:.2f}x"
    )
    warm_cpu = warm["client_cpu"] / warm["requests"] * 1000
    print(
        f"  client CPU per request: ours cold {ratios['cold CPU ms/req']:.3f} ms, warm {warm_cpu:.3f} ms, "
        f"python-dxf {ratios['dxf CPU ms/req']:.3f} ms; "
        f"cold wall / registry CPU {cold['wall'] / cold['registry_cpu']:.2f}"
    )
    print(
        f"  layers frame: {len(result.layers)} rows, {per_row:.0f} bytes per row "
        f"(all frames {sum(f.memory_usage(deep=True).sum() for f in result.frames.values()) / 2**20:.1f} MiB)"
    )
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repos", type=int, default=200)
    parser.add_argument("--tags", type=int, default=20)
    parser.add_argument("--workers", type=int, default=8, help="the fixed count compared with auto")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--delay", type=float, default=0.0, help="also through a delay proxy (seconds)")
    parser.add_argument("--storage", help="keep the seeded registry here (reused when it exists)")
    args = parser.parse_args()
    root = Path(args.storage) if args.storage else None
    fresh = root is None or not (root / "docker").exists()
    with LocalRegistry(root) as server:
        if fresh:
            t0 = time.perf_counter()
            n = seed(server, args.repos, args.tags)
            took = time.perf_counter() - t0
            print(f"seeded {args.repos} repositories x {args.tags} tags = {n} tags in {took:.0f}s")
        passes = [
            run(server, server.url, f"loopback, pass {i + 1}", args.workers) for i in range(args.repeat)
        ]
        if args.repeat > 1:
            print(f"\nover {args.repeat} passes: median (min-max)")
            for key in passes[0]:
                values = [p[key] for p in passes]
                print(f"  {key:<18} {statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})")
        if args.delay:
            with DelayProxy(server.port or 0, args.delay) as proxy:
                run(server, proxy.url(), f"through a {args.delay * 1000:.0f} ms delay proxy", args.workers)


if __name__ == "__main__":
    main()
