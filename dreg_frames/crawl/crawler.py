"""Walk a registry's repositories, tags, manifests and configs into records, concurrently.

Every failure becomes an :class:`ErrorRecord` and the walk goes on; content is fetched once per
digest (configs and index children, shared across tags and repositories) and, with a cache, never
again across crawls.
"""

from __future__ import annotations

import fnmatch
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Generic, TypeVar

from ..client.errors import DregError, ManifestError, RegistryError, RepositoryNotFound
from ..client.manifests import (
    AnyManifest,
    ImageConfig,
    ImageIndex,
    SchemaOneManifest,
    parse_config,
    parse_manifest,
)
from ..client.reference import check_name
from ..client.registry import Registry
from ..client.repository import Repository
from .cache import ContentCache
from .records import ErrorRecord, ImageRecord, LayerTuple, RepositoryRecord, TagRecord

__all__ = ["CrawlRecords", "Crawler"]

T = TypeVar("T")


class _Once(Generic[T]):
    """Content-addressed memo: the first caller of a digest fetches it, concurrent callers wait."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: dict[str, Future[T]] = {}
        self.fetches = 0

    def get(self, digest: str, fetch: Callable[[], T]) -> T:
        with self._lock:
            future = self._futures.get(digest)
            owner = future is None
            if future is None:
                future = self._futures[digest] = Future()
        if owner:
            try:
                value = fetch()
            except BaseException as exc:
                # Waiting callers see this failure; later ones try again (it may have been transient,
                # or the digest may be readable through another repository).
                with self._lock:
                    del self._futures[digest]
                future.set_exception(exc)
                raise
            with self._lock:
                self.fetches += 1
            future.set_result(value)
            return value
        return future.result()


@dataclass
class CrawlRecords:
    """Everything a crawl found, before it becomes DataFrames."""

    registry: str
    started: datetime
    finished: datetime | None = None
    tags: list[TagRecord] = field(default_factory=list)
    errors: list[ErrorRecord] = field(default_factory=list)
    repositories: list[RepositoryRecord] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def _error(
    repository: str, tag: str | None, stage: str, exc: BaseException, digest: str | None = None
) -> ErrorRecord:
    status = exc.status if isinstance(exc, RegistryError) else None
    return ErrorRecord(repository, tag, stage, type(exc).__name__, str(exc)[:2000], status, digest)


class _StageError(Exception):
    """Carries the stage and digest a failure happened at, up to the tag task that records it."""

    def __init__(self, stage: str, cause: BaseException, digest: str | None) -> None:
        self.stage = stage
        self.cause = cause
        self.digest = digest


class Crawler:
    """The machinery behind :func:`dreg_frames.crawl`; one instance per crawl."""

    def __init__(
        self,
        registry: Registry,
        *,
        workers: int = 8,
        cache: ContentCache | None = None,
        resolve: str = "auto",
        progress: bool = True,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if resolve not in ("auto", "get", "head"):
            raise ValueError(f"resolve must be 'auto', 'get' or 'head', got {resolve!r}")
        self.registry = registry
        self.workers = workers
        self.cache = cache
        # HEAD-then-GET-by-digest fetches each manifest once and costs no "pull" on registries that count
        # them; a plain GET per tag is one request instead of two when nothing is cached yet.
        if resolve == "auto":
            resolve = "head" if self.cache is not None and not self.cache.is_empty() else "get"
        self.resolve = resolve
        self.progress = progress
        self._manifests: _Once[AnyManifest] = _Once()
        self._configs: _Once[ImageConfig] = _Once()
        self._lock = threading.Lock()
        self._requests_at_start = registry.client.requests_made
        # top digest -> (media type, images, size) of complete earlier crawls (see ContentCache.summaries)
        self._summaries: dict[str, tuple[str, tuple[ImageRecord, ...], int | None]] = (
            self.cache.load_summaries() if self.cache is not None else {}
        )
        self._new_summaries = 0
        self._summary_hits = 0

    # -- what to crawl ----------------------------------------------------------------------------
    def select(self, repositories: str | Sequence[str] | None) -> list[str]:
        """Repository names to crawl: the catalog, a list, or a glob over the catalog (``"team1/*"``)."""
        if repositories is None:
            return sorted(self.registry.catalog())
        if isinstance(repositories, str):
            if any(ch in repositories for ch in "*?["):
                return sorted(n for n in self.registry.catalog() if fnmatch.fnmatchcase(n, repositories))
            repositories = [repositories]
        return sorted({check_name(name) for name in repositories})

    # -- the walk ---------------------------------------------------------------------------------
    def run(self, names: Sequence[str]) -> CrawlRecords:
        records = CrawlRecords(registry=self.registry.client.host, started=datetime.now(timezone.utc))
        clock = time.perf_counter()
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="dreg-crawl")
        try:
            listed = list(
                _progress(
                    pool.map(self._list_tags, names),
                    total=len(names),
                    desc="repositories",
                    enabled=self.progress,
                )
            )
            jobs: list[tuple[str, str]] = []
            for name, (tags, error, status) in zip(names, listed, strict=True):
                records.repositories.append(RepositoryRecord(name, len(tags), status))
                if error is not None:
                    records.errors.append(error)
                jobs.extend((name, tag) for tag in tags)
            results = pool.map(lambda job: self._crawl_tag(*job), jobs)
            for tag_record, errors in _progress(results, total=len(jobs), desc="tags", enabled=self.progress):
                if tag_record is not None:
                    records.tags.append(tag_record)
                records.errors.extend(errors)
        finally:
            # On Ctrl-C, drop the tags not started yet instead of crawling them all before stopping;
            # what was fetched so far is in the cache, so a rerun picks up from there.
            pool.shutdown(wait=True, cancel_futures=True)
        records.finished = datetime.now(timezone.utc)
        if self.cache is not None and self._new_summaries:
            self.cache.save_summaries(self._summaries)
        records.stats = {
            "repositories": len(names),
            "tags": len(jobs),
            "requests": self.registry.client.requests_made - self._requests_at_start,
            "seconds": round(time.perf_counter() - clock, 3),
            "manifest_fetches": self._manifests.fetches,
            "config_fetches": self._configs.fetches,
            "cache_hits": self.cache.hits if self.cache else 0,
            "summary_hits": self._summary_hits,
            "resolve": self.resolve,
            "workers": self.workers,
        }
        return records

    def _list_tags(self, name: str) -> tuple[list[str], ErrorRecord | None, str]:
        repo = self.registry.repository(name)
        try:
            tags = sorted(repo.tags())
        except RepositoryNotFound:
            # Distribution keeps a repository in the catalog after its last tag is deleted, and
            # answers NAME_UNKNOWN for its tags: an empty repository, not a failure.
            return [], None, "empty"
        except DregError as exc:
            return [], _error(name, None, "tags", exc), "error"
        return tags, None, "ok" if tags else "empty"

    def _crawl_tag(self, name: str, tag: str) -> tuple[TagRecord | None, list[ErrorRecord]]:
        repo = self.registry.repository(name)
        errors: list[ErrorRecord] = []
        try:
            digest = repo.check_manifest(tag) if self.resolve == "head" else None
            if digest is not None and digest in self._summaries:
                # Everything under this digest was read before, and content never changes.
                with self._lock:
                    self._summary_hits += 1
                return TagRecord(name, tag, digest, *self._summaries[digest]), []
            top = self._resolve_tag(repo, tag, digest)
        except DregError as exc:
            return None, [_error(name, tag, "manifest", exc)]
        images: list[ImageRecord] = []
        if isinstance(top, ImageIndex):
            for child in top.manifests:
                try:
                    manifest = self._manifest(repo, child.digest, stage="child")
                except _StageError as exc:
                    errors.append(_error(name, tag, exc.stage, exc.cause, exc.digest))
                    continue
                platform = str(child.platform) if child.platform is not None else None
                images.append(self._image(repo, tag, manifest, platform, errors))
        else:
            images.append(self._image(repo, tag, top, None, errors))
        record = TagRecord(name, tag, top.digest, top.media_type, tuple(images), len(top.raw))
        if not errors and self.cache is not None:
            with self._lock:
                self._summaries[top.digest] = (record.media_type, record.images, record.digest_size)
                self._new_summaries += 1
        return record, errors

    def _resolve_tag(self, repo: Repository, tag: str, digest: str | None) -> AnyManifest:
        if self.resolve == "head":
            if digest is None:
                # Deleted between listing and now: the same answer a GET would have given.
                return repo.get_manifest(tag)
            try:
                return self._manifest(repo, digest, stage="manifest")
            except _StageError as exc:
                raise exc.cause from None
        body, content_type, digest = repo.get_manifest_bytes(tag)

        def parsed() -> AnyManifest:
            if self.cache is not None:
                self.cache.put("manifests", digest, body, content_type)
            return parse_manifest(body, content_type, digest)

        return self._manifests.get(digest, parsed)

    def _manifest(self, repo: Repository, digest: str, *, stage: str) -> AnyManifest:
        def fetch() -> AnyManifest:
            if self.cache is not None:
                hit = self.cache.get("manifests", digest)
                if hit is not None:
                    return parse_manifest(hit[0], hit[1], digest)
            body, content_type, actual = repo.get_manifest_bytes(digest)
            if self.cache is not None:
                self.cache.put("manifests", actual, body, content_type)
            return parse_manifest(body, content_type, actual)

        try:
            return self._manifests.get(digest, fetch)
        except DregError as exc:
            raise _StageError(stage, exc, digest) from None

    def _config(self, repo: Repository, digest: str) -> ImageConfig:
        def fetch() -> ImageConfig:
            if self.cache is not None:
                hit = self.cache.get("configs", digest)
                if hit is not None:
                    return parse_config(hit[0], digest)
            config = repo.get_config(digest)
            if self.cache is not None:
                self.cache.put("configs", digest, config.raw)
            return config

        return self._configs.get(digest, fetch)

    def _image(
        self,
        repo: Repository,
        tag: str,
        manifest: AnyManifest,
        platform: str | None,
        errors: list[ErrorRecord],
    ) -> ImageRecord:
        if isinstance(manifest, SchemaOneManifest):
            layers_s1: tuple[LayerTuple, ...] = tuple((d, None, "") for d in reversed(manifest.fs_layers))
            arch = manifest.architecture or "unknown"
            return ImageRecord(
                manifest.digest,
                manifest.media_type,
                platform or f"linux/{arch}",
                None,
                manifest.created,
                layers_s1,
            )
        if isinstance(manifest, ImageIndex):
            # An index inside an index: rare, and its own children are reached through their own tags.
            errors.append(
                _error(
                    repo.name, tag, "child", ManifestError(f"nested index {manifest.digest} is not walked")
                )
            )
            return ImageRecord(
                manifest.digest,
                manifest.media_type,
                platform or "unknown",
                None,
                None,
                (),
                None,
                len(manifest.raw),
            )
        layers = tuple((d.digest, d.size, d.media_type) for d in manifest.layers)
        created: str | None = None
        try:
            config = self._config(repo, manifest.config.digest)
            created = config.created_raw
            if platform is None:
                platform = str(config.platform) if config.os else None
        except DregError as exc:
            # The layers are known from the manifest; only created/platform are lost, and recorded.
            errors.append(_error(repo.name, tag, "config", exc, manifest.config.digest))
        return ImageRecord(
            manifest.digest,
            manifest.media_type,
            platform or "unknown",
            manifest.config.digest,
            created,
            layers,
            manifest.config.size,
            len(manifest.raw),
        )


def _progress(items: Iterable[T], *, total: int, desc: str, enabled: bool) -> Iterable[T]:
    if not enabled:
        return items
    from tqdm.auto import tqdm  # notebook widget in Jupyter, a bar in a terminal

    return tqdm(items, total=total, desc=desc, unit=desc.rstrip("s") if desc.endswith("s") else desc)
