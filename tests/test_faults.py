"""Crawling through a fault-injecting proxy in front of the real registry: nothing silently wrong,
nothing lost, and the crawl always finishes."""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pandas as pd
import pytest

from dreg_frames import (
    ContentTooLarge,
    Crawl,
    DigestMismatch,
    LocalRegistry,
    Registry,
    ServerError,
    TooManyRequests,
    crawl,
)
from dreg_frames.client.http import default_retry
from dreg_frames.sample import seed_registry

from .fault_proxy import Exchange, FaultProxy, Reply

Rule = Callable[[Exchange, Callable[[], Reply]], "Reply | None"]


@pytest.fixture(scope="module")
def sample() -> Iterator[tuple[LocalRegistry, Crawl]]:
    with LocalRegistry() as server:
        registry = Registry.build_with_manual_client(server.url)
        seed_registry(registry)
        yield server, crawl(registry, progress=False)


def _fast_retry() -> object:
    return default_retry(total=4, backoff=0.01, max_backoff=0.05, max_retry_after=0.2, deadline=10)


def _crawl_through(server: LocalRegistry, rules: list[Rule], timeout: tuple[float, float] = (2, 5)) -> Crawl:
    with FaultProxy(server.port or 0) as proxy:
        proxy.rules.extend(rules)
        registry = Registry.build_with_manual_client(proxy.url, retry=_fast_retry(), timeout=timeout)  # type: ignore[arg-type]
        return crawl(registry, progress=False, workers=4)


def _rows(frame: pd.DataFrame, columns: list[str]) -> set[tuple[object, ...]]:
    out = frame[columns].copy()
    for column in columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            # nanoseconds since the epoch: str() formats a column differently if any value has ns
            out[column] = out[column].map(lambda t: "NaT" if pd.isna(t) else str(t.value)).astype(object)
    return set(out.astype(str).itertuples(index=False, name=None))


def _check_nothing_silently_wrong(direct: Crawl, proxied: Crawl) -> None:
    """Every proxied row matches the direct crawl; every missing tag is in errors."""
    key = ["repository", "tag", "digest", "media_type", "manifest_digest", "layer_digest", "layer_size"]
    assert _rows(proxied.layers, key) <= _rows(direct.layers, key)
    # a platform is read from the config; where the config was lost it is 'unknown' and said so
    with_platform = proxied.layers[proxied.layers["platform"] != "unknown"]
    assert _rows(with_platform, [*key, "platform"]) <= _rows(direct.layers, [*key, "platform"])
    # (an artifact's config says no platform at all: only images count here)
    lost = (proxied.layers["platform"] == "unknown") & (proxied.layers["kind"] == "image")
    unknown = _rows(proxied.layers[lost], ["repository", "tag"])
    config_errors = proxied.errors[proxied.errors["stage"] == "config"]
    assert unknown <= _rows(config_errors, ["repository", "tag"])
    image_key = ["repository", "tag", "manifest_digest", "config_digest", "created", "size"]
    ok_images = proxied.images[proxied.images["created"].notna()]
    assert _rows(ok_images, image_key) <= _rows(direct.images, image_key)
    missing = _rows(direct.tags, ["repository", "tag"]) - _rows(proxied.tags, ["repository", "tag"])
    errors = proxied.errors
    errored_tags = _rows(errors[errors["tag"].notna()], ["repository", "tag"])
    errored_repos = {r for (r,) in _rows(errors[errors["tag"].isna()], ["repository"])}
    assert all(t in errored_tags or t[0] in errored_repos for t in missing)


def _first_n(n: int, predicate: Callable[[Exchange], bool], reply: Callable[[Exchange], Reply]) -> Rule:
    """Answer the first ``n`` requests for each path that ``predicate`` accepts with ``reply``."""
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def rule(exchange: Exchange, forward: Callable[[], Reply]) -> Reply | None:
        if not predicate(exchange):
            return None
        with lock:
            counts[exchange.path] += 1
            hit = counts[exchange.path] <= n
        return reply(exchange) if hit else None

    return rule


def _is_manifest(exchange: Exchange) -> bool:
    return exchange.method == "GET" and "/manifests/" in exchange.path


def test_transient_faults_are_retried_and_the_result_is_exact(sample: tuple[LocalRegistry, Crawl]) -> None:
    server, direct = sample
    rules = [
        _first_n(
            1, lambda e: "/tags/list" in e.path, lambda e: Reply(429, {"Retry-After": "0"}, b'{"errors":[]}')
        ),
        _first_n(2, _is_manifest, lambda e: Reply(503, {}, b"<html>busy</html>")),
        _first_n(1, lambda e: "/blobs/" in e.path, lambda e: Reply(0, reset=True)),
        _first_n(1, lambda e: "_catalog" in e.path, lambda e: Reply(502, {}, b"bad gateway")),
    ]
    proxied = _crawl_through(server, rules)
    assert proxied.errors.empty, proxied.errors.to_dict("records")
    for name in ("tags", "images", "layers"):
        pd.testing.assert_frame_equal(
            proxied.frames[name].drop(columns="registry"),
            direct.frames[name].drop(columns="registry"),
            check_categorical=False,
        )


def test_truncated_and_slow_answers(sample: tuple[LocalRegistry, Crawl]) -> None:
    server, direct = sample

    def truncate(exchange: Exchange) -> Reply:
        body = b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}'
        return Reply(200, {}, body, truncate_to=20)

    def slow(exchange: Exchange, forward: Callable[[], Reply]) -> Reply | None:
        if "/blobs/" not in exchange.path:
            return None
        time.sleep(0.3)  # slow, but under the read timeout
        return forward()

    def empty_config(exchange: Exchange, forward: Callable[[], Reply]) -> Reply | None:
        # a 200 with an empty body for the configs of one repository: fails its digest check
        return Reply(200, {}, b"") if "data/ml-model/blobs/" in exchange.path else None

    # every manifest is cut short once: read again, and exact
    proxied = _crawl_through(server, [_first_n(1, _is_manifest, truncate), empty_config, slow])
    _check_nothing_silently_wrong(direct, proxied)
    errors = proxied.errors
    assert set(errors["repository"].astype(str)) == {"data/ml-model"}
    assert set(errors["stage"].astype(str)) == {"config"} and set(errors["error"].astype(str)) == {
        "DigestMismatch"
    }
    assert len(proxied.tags) == len(direct.tags)  # a lost config keeps the tag and its layers


def test_lies_are_errors_never_data(sample: tuple[LocalRegistry, Crawl]) -> None:
    server, direct = sample
    victims = itertools.cycle(["wrong-digest", "malformed", "huge", "honest"])
    plan: dict[str, str] = {}
    lock = threading.Lock()

    def lie(exchange: Exchange, forward: Callable[[], Reply]) -> Reply | None:
        if not _is_manifest(exchange) or "sha256:" in exchange.path:
            return None
        with lock:
            kind = plan.setdefault(exchange.path, next(victims))
        if kind == "honest":
            return None
        real = forward()
        if kind == "wrong-digest":
            real.headers["Docker-Content-Digest"] = "sha256:" + "0" * 64
        elif kind == "malformed":
            real.body = b'{"schemaVersion": 2, "layers": [ {"digest": 5}'
            real.headers["Docker-Content-Digest"] = "sha256:" + hashlib.sha256(real.body).hexdigest()
        elif kind == "huge":
            real.body = b" " * (5 * 1024 * 1024)
        return real

    proxied = _crawl_through(server, [lie])
    _check_nothing_silently_wrong(direct, proxied)
    by_kind: dict[str, set[str]] = {}
    for path, kind in plan.items():
        repository, tag = path.split("/v2/", 1)[1].split("/manifests/")
        by_kind.setdefault(kind, set()).add(f"{repository}:{tag}")
    errors = proxied.errors
    refs = errors["repository"].astype(str) + ":" + errors["tag"].astype(str)
    kinds = dict(zip(refs, errors["error"].astype(str), strict=True))
    assert {kinds[r] for r in by_kind["wrong-digest"]} == {DigestMismatch.__name__}
    assert {kinds[r] for r in by_kind["malformed"]} == {"ManifestError"}
    assert {kinds[r] for r in by_kind["huge"]} == {ContentTooLarge.__name__}
    assert _rows(proxied.tags, ["repository", "tag"]) == {tuple(r.split(":")) for r in by_kind["honest"]}


def test_persistent_failures_end_as_errors_within_the_budget(sample: tuple[LocalRegistry, Crawl]) -> None:
    server, direct = sample
    started = time.monotonic()
    rules = [
        _first_n(
            10**6,
            lambda e: "web/" in e.path and "/tags/list" in e.path,
            lambda e: Reply(429, {"Retry-After": "3600"}, b""),
        ),
        _first_n(10**6, lambda e: "finance/" in e.path and _is_manifest(e), lambda e: Reply(503, {}, b"")),
        _first_n(
            10**6,
            lambda e: "platform/python" in e.path and _is_manifest(e),
            lambda e: Reply(200, {}, b"{}", delay=1.5),
        ),
    ]
    proxied = _crawl_through(server, rules, timeout=(2, 0.5))
    # a Retry-After of an hour is cut to the cap: the crawl ends in seconds
    assert time.monotonic() - started < 60
    _check_nothing_silently_wrong(direct, proxied)
    errors = proxied.errors
    web = errors[errors["repository"].astype(str).str.startswith("web/")]
    assert set(web["error"].astype(str)) == {TooManyRequests.__name__} and set(web["status"]) == {429}
    finance = errors[errors["repository"].astype(str).str.startswith("finance/")]
    assert set(finance["error"].astype(str)) == {ServerError.__name__}
    slow = errors[errors["repository"] == "platform/python"]
    assert set(slow["error"].astype(str)) == {"TransportError"}
    untouched = {"data/ml-model", "tools", "mirror/billing"}
    assert untouched <= set(proxied.tags["repository"].astype(str))


def test_retry_after_is_honoured(sample: tuple[LocalRegistry, Crawl]) -> None:
    server, _ = sample
    with FaultProxy(server.port or 0) as proxy:
        proxy.rules.append(
            _first_n(1, lambda e: "_catalog" in e.path, lambda e: Reply(429, {"Retry-After": "1"}))
        )
        registry = Registry.build_with_manual_client(proxy.url)
        started = time.monotonic()
        assert "tools" in registry.catalog()
        assert time.monotonic() - started >= 0.9
        assert sum("_catalog" in e.path for e in proxy.seen) == 2


def test_pushes_are_not_retried_on_a_status(sample: tuple[LocalRegistry, Crawl]) -> None:
    server, _ = sample
    with FaultProxy(server.port or 0) as proxy:
        proxy.rules.append(lambda e, f: Reply(503, {}, b"") if e.method == "PUT" else None)
        registry = Registry.build_with_manual_client(proxy.url)
        body = json.dumps(
            {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}
        ).encode()
        with pytest.raises(ServerError):
            registry.repository("tools").put_manifest("x", body, "application/vnd.oci.image.index.v1+json")
        assert sum(e.method == "PUT" for e in proxy.seen) == 1


def test_a_registry_without_a_catalog(
    sample: tuple[LocalRegistry, Crawl], capsys: pytest.CaptureFixture[str]
) -> None:
    from dreg_frames import CatalogUnavailable
    from dreg_frames.cli import main

    server, _ = sample
    with FaultProxy(server.port or 0) as proxy:
        proxy.rules.append(
            lambda e, f: (
                Reply(404, {}, b'{"errors":[{"code":"NOT_FOUND"}]}') if "_catalog" in e.path else None
            )
        )
        registry = Registry.build_with_manual_client(proxy.url)
        with pytest.raises(CatalogUnavailable, match="name the repositories"):
            crawl(registry, progress=False)
        named = crawl(registry, ["web/api", "tools"], progress=False)
        assert sorted(set(named.tags["repository"].astype(str))) == ["tools", "web/api"]
        assert main(["usage", proxy.url]) == 2
        err = capsys.readouterr().err
        assert "does not serve /v2/_catalog" in err and "--repositories" in err


def test_truncated_lists_are_fetched_again(
    sample: tuple[LocalRegistry, Crawl],
) -> None:
    server, direct = sample
    cut: Counter[str] = Counter()
    lock = threading.Lock()

    def truncate_lists(exchange: Exchange, forward: Callable[[], Reply]) -> Reply | None:
        if exchange.method != "GET" or not ("_catalog" in exchange.path or "/tags/list" in exchange.path):
            return None
        with lock:
            cut[exchange.path] += 1
            first = cut[exchange.path] == 1
        reply = forward()
        if first:  # every list is cut short once, mid-JSON
            reply.truncate_to = len(reply.body) // 2
        return reply

    proxied = _crawl_through(server, [truncate_lists])
    assert proxied.errors.empty, proxied.errors.to_dict("records")
    assert cut and all(n == 2 for n in cut.values())
    for name in ("tags", "images", "layers"):
        pd.testing.assert_frame_equal(
            proxied.frames[name].drop(columns="registry"),
            direct.frames[name].drop(columns="registry"),
            check_categorical=False,
        )
