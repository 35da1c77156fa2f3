"""Crawl benchmark (run by hand): python -m tests.benchmarks.bench_crawl [--repos 200 --tags 20]

Seeds a local Distribution registry with REPOS x TAGS images of mixed media types (Docker schema2,
OCI, and Docker/OCI multi-arch), then times in one run, on loopback and through a 20 ms delay proxy:
a sequential one-request-at-a-time crawl with the client API (the baseline), our cold crawl, and our
warm recrawl from the cache. Prints requests, req/s, wall seconds, ratios, the registry process's own
CPU seconds (its floor on this machine), peak RSS and frame bytes per layer row.
"""

from __future__ import annotations

import argparse
import gc
import resource
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

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
        f"  {label:<22} {out['requests']:>7} req {out['rps']:>8.0f} req/s {wall:>7.2f} s wall  "
        f"registry CPU {cpu:>6.2f} s  client CPU {own:>6.2f} s  "
        f"wall/registry-CPU {wall / cpu if cpu else float('nan'):>5.2f}  "
        f"peak RSS {rss:>6.0f} MiB",
        flush=True,
    )
    return out


def run(server: LocalRegistry, url: str, title: str, workers: int) -> None:
    print(f"\n{title}  ({url})")
    cache = tempfile.mkdtemp(prefix="dreg-bench-cache-")
    base = measure("sequential baseline", server, lambda: sequential_baseline(url))
    frames: dict[str, Any] = {}

    def ours(use_cache: bool) -> dict[str, Any]:
        result = crawl(
            Registry.build_with_manual_client(url, pool_size=workers),
            workers=workers,
            progress=False,
            cache=cache if use_cache else None,
        )
        frames["result"] = result
        return {"requests": result.meta["requests"], "layers": len(result.layers)}

    cold_plain = measure(f"cold crawl (w={workers})", server, lambda: ours(False))
    cold = measure("cold crawl + fill cache", server, lambda: ours(True))
    warm = measure("warm recrawl (cache)", server, lambda: ours(True))
    result = frames["result"]
    per_row = result.layers.memory_usage(deep=True).sum() / max(1, len(result.layers))
    assert cold_plain["layers"] == base["layers"] == warm["layers"], "crawls disagree"
    print(
        f"  cold vs baseline: {base['wall'] / cold_plain['wall']:.2f}x faster; "
        f"cold+cache vs baseline: {base['wall'] / cold['wall']:.2f}x; "
        f"warm vs cold: {cold_plain['wall'] / warm['wall']:.2f}x faster; "
        f"cold wall / registry CPU: {cold_plain['wall'] / cold_plain['registry_cpu']:.2f}"
    )
    print(
        f"  layers frame: {len(result.layers)} rows, {per_row:.0f} bytes per row "
        f"(all frames {sum(f.memory_usage(deep=True).sum() for f in result.frames.values()) / 2**20:.1f} MiB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repos", type=int, default=200)
    parser.add_argument("--tags", type=int, default=20)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--delay", type=float, default=0.020)
    args = parser.parse_args()
    with LocalRegistry() as server:
        t0 = time.perf_counter()
        n = seed(server, args.repos, args.tags)
        print(
            f"seeded {args.repos} repositories x {args.tags} tags = {n} tags "
            f"in {time.perf_counter() - t0:.0f}s"
        )
        run(server, server.url, "loopback", args.workers)
        with DelayProxy(server.port or 0, args.delay) as proxy:
            run(
                server,
                proxy.url(),
                f"through a {args.delay * 1000:.0f} ms delay proxy",
                max(args.workers, 32),
            )


if __name__ == "__main__":
    main()
