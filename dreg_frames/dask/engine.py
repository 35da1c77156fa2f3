"""Crawl on a Dask cluster: the repository list split into tasks, each crawled by a worker with its
own connection pool and written as Parquet parts to a shared store, under a cluster-wide cap on
concurrent requests to the registry.

Each task is the local crawl (:class:`~dreg_frames.crawl.crawler.Crawler` and
:func:`~dreg_frames.crawl.frames.build_frames`) over its share of repositories; a failing repository
or tag is an errors row there as it is in a local crawl. Only small metadata comes back to the
driver; the frames are read from the store.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..client.errors import DregError
from ..client.registry import Registry
from ..crawl.crawler import Crawler
from ..crawl.records import ErrorRecord
from .spec import ConnectionSpec, CredentialSource, DockerConfig
from .store import DaskCrawl, prepare, read_crawl, store_url, write_meta, write_part

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["ClusterCap", "crawl"]

# Summed over the tasks into the result's meta (the rest of a task's stats are the same everywhere).
_SUMMED = ("repositories", "tags", "requests", "manifest_fetches", "config_fetches")
# A task's share at most, by default: each share is crawled as one local crawl (content shared
# within it fetched once, the limiter's concurrency learned once), and held in memory until written.
REPOSITORIES_PER_TASK = 1000


def crawl(
    registry: Registry | ConnectionSpec | str,
    repositories: str | Sequence[str] | None = None,
    *,
    client: Client | None = None,
    store: str | os.PathLike[str],
    credentials: CredentialSource | None = None,
    max_requests: int | None = 32,
    tasks: int | None = None,
    workers: int | str = "auto",
    resolve: str = "auto",
    referrers: bool = True,
    progress: bool = True,
    overwrite: bool = False,
) -> DaskCrawl:
    """Crawl the registry on a Dask cluster into a store of Parquet parts; frames are dask DataFrames.

    ``registry``: a :class:`Registry`, a URL, or a :class:`ConnectionSpec`. Credentials never go
    into the task graph: each worker finds them itself, from ``credentials`` (``DockerConfig()``,
    the default: the worker's Docker config; ``EnvCredentials("USER_VAR", "PASSWORD_VAR")``;
    ``Anonymous()``). A Registry built with ``auth=`` needs ``credentials=`` to say where.

    ``store``: a local path or an fsspec URL every worker and this process can reach; it must not
    hold an earlier crawl (``overwrite=True`` replaces one). ``client``: a ``distributed.Client``
    (default: the current one). ``tasks``: how many shares the repositories are split into
    (default: one per worker thread, more when a share would exceed 1000 repositories);
    ``workers``: requests in flight within one task (``"auto"`` adapts, as a local crawl does).
    ``max_requests``: the cap on requests in flight to this registry across the whole cluster (a
    ``distributed.Semaphore`` named ``dreg-frames:<host>``; ``None``: no cap); each running task
    holds an equal share of it.

    Example::

        from distributed import Client
        client = Client("tcp://scheduler:8786")
        result = crawl(registry, engine="dask", client=client, store="s3://audits/crawl-2026-11-27",
                       credentials=EnvCredentials("REG_USER", "REG_PASSWORD"), max_requests=64)
        storage_usage(result.layers)
    """
    from distributed import as_completed

    spec = _spec(registry, credentials)
    if client is None:
        client = _current_client()
    if max_requests is not None and max_requests < 1:
        raise ValueError(f"max_requests must be at least 1 (or None for no cap), got {max_requests}")
    if tasks is not None and tasks < 1:
        raise ValueError(f"tasks must be at least 1, got {tasks}")
    if workers != "auto" and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be 'auto' or a whole number of at least 1, got {workers!r}")
    url = store_url(store)
    prepare(url, overwrite)
    started = datetime.now(timezone.utc)
    clock = time.perf_counter()
    n_threads = sum(client.nthreads().values()) or 1
    cap = None
    if max_requests is not None:
        # each task that can run at once gets an equal share; one running task never starves another
        cap = (*_cluster_cap(client, spec.host, max_requests), -(-max_requests // n_threads))

    names, skipped = client.submit(_select, spec, repositories, pure=False).result()
    shares = _split(names, tasks or n_threads * -(-len(names) // (n_threads * REPOSITORIES_PER_TASK)))
    futures = [
        client.submit(
            _crawl_share,
            spec,
            share,
            url,
            part,
            cap,
            workers,
            resolve,
            referrers,
            skipped if part == 0 else [],
            pure=False,
        )
        for part, share in enumerate(shares)
    ]
    done: list[dict[str, Any]] = []
    try:
        for future in _progress(as_completed(futures), len(futures), progress):
            done.append(future.result())
    except BaseException:
        client.cancel(futures)
        raise
    done.sort(key=lambda d: d["part"])
    meta: dict[str, Any] = {
        "registry": done[0]["registry"],
        "url": spec.url,
        "started": started.isoformat(),
        "finished": datetime.now(timezone.utc).isoformat(),
        **{key: sum(d[key] for d in done) for key in _SUMMED},
        "seconds": round(time.perf_counter() - clock, 3),
        "cache_hits": 0,
        "summary_hits": 0,
        "resolve": done[0]["resolve"],
        "workers": workers,
        "concurrency": {
            "leases_per_task": cap[2] if cap is not None else None,
            "max_in_flight_per_task": max(d["concurrency"].get("max_in_flight", 0) for d in done),
        },
        "referrers_api": any(d["referrers_api"] for d in done) if names else None,
        "engine": "dask",
        "tasks": len(shares),
        "max_requests": max_requests,
        "store": url,
    }
    write_meta(url, meta)
    return read_crawl(url)


def _spec(registry: Registry | ConnectionSpec | str, credentials: CredentialSource | None) -> ConnectionSpec:
    if isinstance(registry, ConnectionSpec):
        if credentials is not None:
            raise ValueError("pass credentials in the ConnectionSpec, not beside it")
        return registry
    if isinstance(registry, str):
        return ConnectionSpec(registry, credentials=credentials or DockerConfig())
    if isinstance(registry, Registry):
        return ConnectionSpec.from_registry(registry, credentials)
    raise TypeError(f"crawl takes a Registry, a URL or a ConnectionSpec, got {type(registry).__name__}")


def _current_client() -> Client:
    from distributed import get_client

    try:
        return get_client()
    except ValueError:
        raise DregError(
            "crawl(engine='dask') needs a Dask cluster: pass client=distributed.Client(...) "
            "(or create one first; it becomes the default)"
        ) from None


def _cluster_cap(client: Client, host: str, max_requests: int) -> tuple[str, int]:
    """The cap's semaphore, made on the scheduler now so that a conflict is said here, once."""
    from distributed import Semaphore

    name = f"dreg-frames:{host}"

    def handle(leases: int) -> Semaphore:
        made = Semaphore(max_leases=leases, name=name, scheduler_rpc=client.scheduler, loop=client.loop)
        _stop_refresh(made)  # this handle never holds a lease
        return made

    def existing(dask_scheduler: Any) -> int | None:
        semaphores = dask_scheduler.extensions.get("semaphores")
        return None if semaphores is None else semaphores.max_leases.get(name)

    before = client.run_on_scheduler(existing)
    if before is not None and before != max_requests:
        # Left by an earlier crawl with another cap: replace it, unless a crawl holds leases now.
        old = handle(before)
        if old.get_value():
            raise DregError(
                f"another crawl of {host} is running on this cluster with max_requests={before}; "
                "wait for it to end, or use the same cap"
            )
        old.close()
    handle(max_requests).register()
    return name, max_requests


def _split(names: Sequence[str], n: int) -> list[list[str]]:
    """``n`` contiguous shares of the sorted names (at least one, possibly empty: an empty registry
    still writes its frames); neighbours in a namespace tend to share content fetched once a task."""
    n = max(1, min(n, len(names)))
    size, extra = divmod(len(names), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(list(names[start:end]))
        start = end
    return out


def _select(
    spec: ConnectionSpec, repositories: str | Sequence[str] | None
) -> tuple[list[str], list[ErrorRecord]]:
    """On a worker: the repositories to crawl, and the catalog names that cannot be (errors rows)."""
    crawler = Crawler(spec.build(), progress=False, referrers=False)
    names = crawler.select(repositories)
    return names, crawler.run([]).errors


def _crawl_share(
    spec: ConnectionSpec,
    names: list[str],
    url: str,
    part: int,
    cap: tuple[str, int, int] | None,
    workers: int | str,
    resolve: str,
    referrers: bool,
    extra_errors: list[ErrorRecord],
) -> dict[str, Any]:
    """On a worker: crawl ``names``, write the six frames as part ``part``; return the stats."""
    leases = ClusterCap(*cap) if cap is not None else None
    try:
        # The registry's own limiter never lets more requests out than the leases held.
        registry = _registry(spec, leases.leases if leases is not None else None)
        crawler = Crawler(registry, workers=workers, resolve=resolve, progress=False, referrers=referrers)
        records = crawler.run(names)
    finally:
        if leases is not None:
            leases.close()
    # the catalog's unusable names come first, as in a local crawl
    records.errors[:0] = extra_errors
    frames = records.frames()
    for name, frame in frames.items():
        write_part(url, name, frame, part)
    return {
        "part": part,
        "registry": records.registry,
        **records.stats,
        "leases": leases.leases if leases is not None else 0,
        "rows": {name: len(frame) for name, frame in frames.items()},
    }


# One Registry per worker thread and connection: its connection pool and what its limiter learned
# ("auto" concurrency) carry over from one task to the next, as they would in one long local crawl.
_REGISTRIES: dict[tuple[int, ConnectionSpec, int | None], Registry] = {}
_REGISTRIES_LOCK = threading.Lock()


def _registry(spec: ConnectionSpec, concurrency: int | None) -> Registry:
    key = (threading.get_ident(), spec, concurrency)
    with _REGISTRIES_LOCK:
        registry = _REGISTRIES.get(key)
        if registry is None:
            registry = _REGISTRIES[key] = spec.build(concurrency=concurrency)
        return registry


class ClusterCap:
    """A task's share of the cluster-wide request cap: leases of a ``distributed.Semaphore``.

    A lease costs a round trip to the scheduler, too much for every request; so a task takes its
    leases when it starts (one, waiting for it, then up to ``want`` if free) and its Registry's
    limiter lets no more requests out at once than it holds, until the task ends. Requests in
    flight across the cluster never exceed the leases, hence the cap.

    Built in the task's own thread, where the semaphore finds its worker (and keeps its leases
    refreshed while the task runs).
    """

    def __init__(self, name: str, max_leases: int, want: int) -> None:
        from distributed import Semaphore

        self._semaphore = Semaphore(max_leases=max_leases, name=name)
        self._semaphore.acquire()
        self.leases = 1
        while self.leases < min(want, max_leases) and self._semaphore.acquire(timeout=0):
            self.leases += 1

    def close(self) -> None:
        for _ in range(self.leases):
            self._semaphore.release()
        _stop_refresh(self._semaphore)


def _stop_refresh(semaphore: Any) -> None:
    # Each handle refreshes its leases on a timer (absent when leases never time out).
    callback = getattr(semaphore, "refresh_callback", None)
    if callback is not None:
        callback.stop()


def _progress(items: Any, total: int, enabled: bool) -> Any:
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, total=total, desc="tasks", unit="task")
