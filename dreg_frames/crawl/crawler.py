"""Walk a registry's repositories, tags, manifests and configs into records, concurrently.

Every failure becomes an :class:`ErrorRecord` and the walk goes on; content is fetched once per
digest (configs and index children, shared across tags and repositories) and, with a cache, never
again across crawls.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..client.artifacts import (
    IMAGE_CONFIG_TYPES,
    REFERENCE_DIGEST,
    cosign_subject,
    created_annotation,
    kind_of,
    tag_schema_subject,
)
from ..client.concurrency import Limiter
from ..client.errors import DregError, InvalidReference, ManifestError, RegistryError, RepositoryNotFound
from ..client.manifests import (
    AnyManifest,
    Descriptor,
    ImageConfig,
    ImageIndex,
    Manifest,
    Platform,
    SchemaOneManifest,
    parse_config,
    parse_manifest,
    parse_timestamp,
)
from ..client.reference import check_name, check_tag
from ..client.registry import Registry
from ..client.repository import Repository
from .cache import ContentCache
from .records import ErrorRecord, ImageRecord, LayerTuple, ReferrerRecord, RepositoryRecord, TagRecord

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CrawlRecords", "Crawler"]

T = TypeVar("T")
R = TypeVar("R")

# Real content nests an index in an index once at most; the bound keeps a hostile chain finite.
MAX_INDEX_DEPTH = 4


class _Pending(Generic[T]):
    """One digest being fetched: a plain lock held by the fetcher is what waiters wait on (a Future
    would cost a Condition and an RLock for each of a crawl's thousands of digests)."""

    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Lock()
        self.done.acquire()
        self.value: T | None = None
        self.error: BaseException | None = None

    def result(self) -> T:
        with self.done:  # released by the fetcher once value or error is set
            pass
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


class _Once(Generic[T]):
    """Content-addressed memo: the first caller of a digest fetches it, concurrent callers wait."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending[T]] = {}
        self.fetches = 0

    def get(self, digest: str, fetch: Callable[[], T]) -> T:
        with self._lock:
            pending = self._pending.get(digest)
            owner = pending is None
            if pending is None:
                pending = self._pending[digest] = _Pending()
        if not owner:
            return pending.result()
        try:
            value = fetch()
        except BaseException as exc:
            # Waiting callers see this failure; later ones try again (it may have been transient,
            # or the digest may be readable through another repository).
            with self._lock:
                del self._pending[digest]
            pending.error = exc
            pending.done.release()
            raise
        with self._lock:
            self.fetches += 1
        pending.value = value
        pending.done.release()
        return value


class _Workers:
    """Threads working through a list of jobs, results in order: lighter than an executor's Future
    per job (a crawl has tens of thousands) and its wake-up of the caller for each.

    With a :class:`Limiter` in "auto" mode, only as many threads as its limit work at a time and the
    others are parked until the limit grows: threads waiting on the limiter would cost a wake-up
    (a thread switch) per request. Any exception a job raises past its own handling
    (KeyboardInterrupt, from a cache write), or Ctrl-C in the caller, drops the jobs not started
    yet; the running ones end, then it is raised. What was fetched so far is in the cache, so a
    rerun picks up from there."""

    def __init__(self, threads: int, progress: bool, limiter: Limiter | None = None) -> None:
        self.threads = threads
        self.progress = progress
        self.limiter = limiter

    def map(self, fn: Callable[[T], R], items: Sequence[T], desc: str = "") -> list[R]:
        total = len(items)
        results: list[Any] = [None] * total
        if total == 0:
            return results
        cursor = itertools.count()
        done = [0] * min(self.threads, total)  # per thread: each writes only its own slot
        failure: list[BaseException] = []
        running = [len(done)]
        active = [len(done)]
        over = [False]  # no job left to start
        ended = threading.Condition()
        gate = threading.Condition()
        limiter = self.limiter

        def wake(_: int) -> None:
            with gate:
                gate.notify_all()

        def park() -> None:
            assert limiter is not None
            with gate:
                active[0] -= 1
                while not failure and not over[0] and active[0] >= limiter.limit:
                    gate.wait()
                active[0] += 1

        def work(me: int) -> None:
            try:
                while not failure and not over[0]:
                    if limiter is not None and active[0] > limiter.limit:
                        park()
                        continue
                    i = next(cursor)
                    if i >= total:
                        over[0] = True
                        break
                    results[i] = fn(items[i])
                    done[me] += 1
            except BaseException as exc:  # handed to the caller, who raises it
                failure.append(exc)
            finally:
                if limiter is not None:
                    wake(0)  # parked threads see the end (or the failure) and leave
                with ended:
                    running[0] -= 1
                    ended.notify()

        if limiter is not None:
            limiter.subscribe(wake)
        threads = [
            threading.Thread(target=work, args=(k,), name=f"dreg-crawl-{k}", daemon=True)
            for k in range(len(done))
        ]
        for thread in threads:
            thread.start()
        bar = _bar(total, desc) if self.progress and desc else None
        try:
            shown = 0
            with ended:
                while running[0]:
                    ended.wait(0.2 if bar is not None else None)
                    if bar is not None:
                        now = sum(done)
                        bar.update(now - shown)
                        shown = now
        except BaseException as exc:  # Ctrl-C while waiting: stop starting jobs
            failure.append(exc)
            wake(0)
            raise
        finally:
            for thread in threads:
                thread.join()
            if limiter is not None:
                limiter.unsubscribe(wake)
            if bar is not None:
                bar.close()
        if failure:
            raise failure[0]
        return results


@dataclass
class CrawlRecords:
    """Everything a crawl found, before it becomes DataFrames."""

    registry: str
    started: datetime
    finished: datetime | None = None
    tags: list[TagRecord] = field(default_factory=list)
    referrers: list[ReferrerRecord] = field(default_factory=list)
    errors: list[ErrorRecord] = field(default_factory=list)
    repositories: list[RepositoryRecord] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    def frames(self) -> dict[str, pd.DataFrame]:
        """The six frames of the contract (one place builds them, for local and dask crawls)."""
        from .frames import build_frames

        return build_frames(
            self.registry, self.tags, self.errors, self.repositories, self.finished, self.referrers
        )


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
        workers: int | str = "auto",
        cache: ContentCache | None = None,
        resolve: str = "auto",
        progress: bool = True,
        referrers: bool = True,
    ) -> None:
        if workers != "auto" and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ValueError(f"workers must be 'auto' or a whole number of at least 1, got {workers!r}")
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
        self.referrers = referrers
        self._referrers_api: bool | None = None  # unknown until asked
        self._manifests: _Once[AnyManifest] = _Once()
        self._configs: _Once[ImageConfig] = _Once()
        self._lock = threading.Lock()
        self._skipped: list[ErrorRecord] = []  # catalog names that cannot be crawled (see select)
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
            return self._crawlable(self.registry.catalog())
        if isinstance(repositories, str):
            if any(ch in repositories for ch in "*?["):
                return self._crawlable(
                    n for n in self.registry.catalog() if fnmatch.fnmatchcase(n, repositories)
                )
            repositories = [repositories]
        return sorted({check_name(name) for name in repositories})

    def _crawlable(self, names: Iterable[str]) -> list[str]:
        """The catalog's names that can be crawled: one that breaks the grammar (a hostile or broken
        catalog) is skipped, with a row of ``errors``, and the rest are crawled."""
        good: set[str] = set()
        for name in names:
            try:
                good.add(check_name(name))
            except InvalidReference as exc:
                shown = name[:200] if isinstance(name, str) else repr(name)[:200]
                self._skipped.append(_error(shown, None, "catalog", exc))
        return sorted(good)

    # -- the walk ---------------------------------------------------------------------------------
    def run(self, names: Sequence[str]) -> CrawlRecords:
        records = CrawlRecords(registry=self.registry.client.host, started=datetime.now(timezone.utc))
        clock = time.perf_counter()
        records.errors.extend(self._skipped)
        # The registry's limiter decides how many requests are in flight ("auto": it adapts); the
        # pool only has to be large enough for it.
        limiter = self.registry.client.limiter
        with limiter.session(self.workers) as usage:
            if self.workers == "auto":
                pool = _Workers(limiter.cap, self.progress, limiter)
            else:
                pool = _Workers(int(self.workers), self.progress)
            listed = pool.map(self._list_tags, names, desc="repositories")
            jobs: list[tuple[str, str]] = []
            for name, (tags, errors, status) in zip(names, listed, strict=True):
                records.repositories.append(RepositoryRecord(name, len(tags), status))
                records.errors.extend(errors)
                jobs.extend((name, tag) for tag in tags)
            for tag_record, errors in pool.map(self._crawl_tag_guarded, jobs, desc="tags"):
                if tag_record is not None:
                    records.tags.append(tag_record)
                records.errors.extend(errors)
            if self.referrers:
                self._ask_referrers(pool, records)
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
            "concurrency": usage.summary(),
            "referrers_api": self._referrers_api,
        }
        return records

    def _ask_referrers(self, pool: _Workers, records: CrawlRecords) -> None:
        """Every manifest's referrers through the referrers API, where the registry has one.

        One request tells: Distribution 2.8 and other registries without the API answer 404 (the
        crawl then relies on the tag schema, cosign tags and ``subject`` fields it already read).
        """
        subjects = sorted(
            {(t.repository, t.digest) for t in records.tags}
            | {(t.repository, i.manifest_digest) for t in records.tags for i in t.images}
        )
        if not subjects:
            return

        def ask(pair: tuple[str, str]) -> tuple[list[ReferrerRecord], list[ErrorRecord], bool]:
            repository, digest = pair
            try:
                found = self.registry.repository(repository).referrers(digest)
            except Exception as exc:  # a hostile answer (MemoryError, RecursionError too) is a row
                return [], [_error(repository, None, "referrers", exc, digest)], True
            if found is None:
                return [], [], False
            rows = [
                ReferrerRecord(
                    repository,
                    digest,
                    d.digest,
                    d.media_type,
                    d.artifact_type,
                    d.size,
                    _annotations(d.annotations),
                )
                for d in found
            ]
            return rows, [], True

        first_rows, first_errors, supported = ask(subjects[0])
        self._referrers_api = supported
        if not supported:
            return
        records.referrers.extend(first_rows)
        records.errors.extend(first_errors)
        for rows, errors, _ in pool.map(ask, subjects[1:]):
            records.referrers.extend(rows)
            records.errors.extend(errors)

    def _list_tags(self, name: str) -> tuple[list[str], list[ErrorRecord], str]:
        repo = self.registry.repository(name)
        try:
            listed = repo.tags()
        except RepositoryNotFound:
            # Distribution keeps a repository in the catalog after its last tag is deleted, and
            # answers NAME_UNKNOWN for its tags: an empty repository, not a failure.
            return [], [], "empty"
        except DregError as exc:
            return [], [_error(name, None, "tags", exc)], "error"
        except Exception as exc:  # MemoryError, RecursionError: one repository's row, not the crawl's end
            return [], [_error(name, None, "tags", exc)], "error"
        tags: list[str] = []
        errors: list[ErrorRecord] = []
        for tag in listed:
            try:
                tags.append(check_tag(tag))
            except InvalidReference as exc:
                # "sha256:..." would be fetched as a digest and recorded as a tag: not a tag, skipped.
                errors.append(
                    _error(name, None, "tags", InvalidReference("tag", tag[:200], f"skipped: {exc.rule}"))
                )
        tags.sort()
        return tags, errors, "ok" if tags else ("error" if errors else "empty")

    def _crawl_tag_guarded(self, job: tuple[str, str]) -> tuple[TagRecord | None, list[ErrorRecord]]:
        name, tag = job
        try:
            return self._crawl_tag(name, tag)
        except Exception as exc:  # MemoryError, RecursionError, a value nothing expected: a row
            return None, [_error(name, tag, "manifest", exc)]

    def _crawl_tag(self, name: str, tag: str) -> tuple[TagRecord | None, list[ErrorRecord]]:
        repo = self.registry.repository(name)
        errors: list[ErrorRecord] = []
        digest: str | None = None
        try:
            digest = repo.check_manifest(tag) if self.resolve == "head" else None
            if digest is not None and digest in self._summaries:
                # Everything under this digest was read before, and content never changes.
                with self._lock:
                    self._summary_hits += 1
                media_type, cached, size = self._summaries[digest]
                return TagRecord(name, tag, digest, media_type, _in_context(tag, cached), size), []
            top = self._resolve_tag(repo, tag, digest)
        except DregError as exc:
            return None, [_error(name, tag, "manifest", exc, digest)]
        images: list[ImageRecord] = []
        if isinstance(top, ImageIndex):
            self._walk(repo, tag, top, images, errors, (top.digest,))
        else:
            images.append(self._image(repo, tag, top, None, errors))
        record = TagRecord(name, tag, top.digest, top.media_type, _in_context(tag, images), len(top.raw))
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

    def _walk(
        self,
        repo: Repository,
        tag: str,
        index: ImageIndex,
        images: list[ImageRecord],
        errors: list[ErrorRecord],
        path: tuple[str, ...],
    ) -> None:
        """The manifests under ``index``, nested indexes included (``path``: the indexes above)."""
        for child in index.manifests:
            if child.digest in path:
                cycle = ManifestError(f"index {index.digest} lists {child.digest}, which contains it")
                errors.append(_error(repo.name, tag, "child", cycle, child.digest))
                continue
            try:
                manifest = self._manifest(repo, child.digest, stage="child")
            except _StageError as exc:
                errors.append(_error(repo.name, tag, exc.stage, exc.cause, exc.digest))
                continue
            if not isinstance(manifest, ImageIndex):
                images.append(self._image(repo, tag, manifest, child.platform, errors, index.digest, child))
                continue
            # The nested index is a blob of its own: a row without config or layers counts its bytes.
            images.append(
                ImageRecord(
                    manifest.digest,
                    manifest.media_type,
                    str(child.platform) if child.platform is not None else "unknown",
                    None,
                    None,
                    (),
                    None,
                    len(manifest.raw),
                    child.platform.os_version if child.platform is not None else None,
                    index.digest,
                    kind="index",
                    annotations=_annotations(manifest.annotations),
                )
            )
            if len(path) >= MAX_INDEX_DEPTH:
                deep = ManifestError(f"index {manifest.digest} nests deeper than {MAX_INDEX_DEPTH} levels")
                errors.append(_error(repo.name, tag, "child", deep, manifest.digest))
                continue
            self._walk(repo, tag, manifest, images, errors, (*path, manifest.digest))

    def _image(
        self,
        repo: Repository,
        tag: str,
        manifest: AnyManifest,
        platform: Platform | None,
        errors: list[ErrorRecord],
        parent: str | None = None,
        descriptor: Descriptor | None = None,
    ) -> ImageRecord:
        """One manifest under a tag (``platform`` and ``descriptor``: what its index says of it)."""
        named = str(platform) if platform is not None else None
        os_version = platform.os_version if platform is not None else None
        if isinstance(manifest, SchemaOneManifest):
            layers_s1: tuple[LayerTuple, ...] = tuple((d, None, "", ()) for d in reversed(manifest.fs_layers))
            arch = manifest.architecture or "unknown"
            return ImageRecord(
                manifest.digest,
                manifest.media_type,
                named or f"linux/{arch}",
                None,
                manifest.created,
                layers_s1,
                parent_digest=parent,
                created_source="config" if manifest.created else None,
            )
        assert isinstance(manifest, Manifest)  # indexes are walked by _walk
        layers = tuple((d.digest, d.size, d.media_type, d.urls) for d in manifest.layers)
        kind = kind_of(manifest, tag=tag if parent is None else None, descriptor=descriptor)
        created: str | None = None
        source: str | None = None
        # Only image configs are worth a request: an artifact's config is the empty `{}` or its
        # tool's own metadata, with no date or platform in it.
        if manifest.config.media_type in IMAGE_CONFIG_TYPES or kind == "image":
            try:
                config = self._config(repo, manifest.config.digest)
                created = config.created_raw
                source = "config" if created else None
                if named is None and config.os:
                    named = str(config.platform)
                os_version = os_version or config.os_version
            except DregError as exc:
                # The layers are known from the manifest; only created/platform are lost, and recorded.
                errors.append(_error(repo.name, tag, "config", exc, manifest.config.digest))
        annotated = created_annotation(manifest.annotations)
        if annotated and (created is None or config_created_unusable(created)):
            # Helm, oras and Notation date the manifest, not the config (cosign's config says year 1).
            created, source = annotated, "annotation"
        subject, via = None, None
        if descriptor is not None and kind == "attestation" and descriptor.annotations.get(REFERENCE_DIGEST):
            subject, via = descriptor.annotations[REFERENCE_DIGEST], "buildx-index"
        elif manifest.subject is not None:
            subject, via = manifest.subject.digest, "subject"
        return ImageRecord(
            manifest.digest,
            manifest.media_type,
            named or ("unknown/unknown" if kind == "attestation" else "unknown"),
            manifest.config.digest,
            created,
            layers,
            manifest.config.size,
            len(manifest.raw),
            os_version,
            parent,
            kind=kind,
            artifact_type=manifest.artifact_type,
            config_media_type=manifest.config.media_type or None,
            created_source=source,
            subject_digest=subject,
            referrer_source=via,
            annotations=_annotations(manifest.annotations),
        )


def _annotations(annotations: Mapping[str, str]) -> str | None:
    return json.dumps(dict(annotations), sort_keys=True, separators=(",", ":")) if annotations else None


def config_created_unusable(text: str) -> bool:
    """True for a config ``created`` no one can date an image by: unreadable, or before 1970
    (cosign and other tools write year 1, Go's zero time)."""
    try:
        return parse_timestamp(text).year < 1970
    except ManifestError:
        return True


def _in_context(tag: str, images: Sequence[ImageRecord]) -> tuple[ImageRecord, ...]:
    """What the tag's name says about its manifests: a cosign tag names the subject of its one
    manifest, a referrers tag schema tag the subject of every manifest its index lists."""
    cosign = cosign_subject(tag)
    if cosign is not None and len(images) == 1 and images[0].parent_digest is None:
        image = images[0]
        kind = image.kind if image.kind != "image" and image.kind != "artifact" else cosign[1]
        return (replace(image, kind=kind, subject_digest=cosign[0], referrer_source="cosign-tag"),)
    schema = tag_schema_subject(tag)
    if schema is not None and images and all(i.parent_digest is not None for i in images):
        return tuple(
            replace(i, subject_digest=i.subject_digest or schema, referrer_source="tag-schema")
            if i.kind != "index"
            else i
            for i in images
        )
    return tuple(images)


def _bar(total: int, desc: str) -> Any:
    from tqdm.auto import tqdm  # notebook widget in Jupyter, a bar in a terminal

    # the unit is the singular of desc, said properly ("repository/s", not "repositorie/s")
    unit = {"repositories": "repository", "tags": "tag"}.get(desc, desc)
    return tqdm(total=total, desc=desc, unit=unit)
