"""Random registry graphs for property tests: built in memory as plain records, pushable for real.

A :class:`GraphSpec` says what a registry holds (repositories, tags, single and multi-arch images,
nested indexes, zero-layer manifests, Windows images with foreign base layers, layers shared
across repositories); :func:`build_graph` turns it into exact manifest bytes and naive records
(the oracle: no pandas, no dreg_frames crawl code), and :func:`push_graph` writes it into a real
registry fast (each blob uploaded once, mounted elsewhere, PUTs in parallel).

Example::

    @given(graph_specs())
    def test_something(spec):
        graph = build_graph(spec)
        with LocalRegistry() as server:
            push_graph(graph, Registry.build_with_manual_client(server.url))
            assert blob_store_bytes(server.storage) == graph.stored_blobs()

:func:`wide_spec` makes graphs with exactly N distinct names (tags, repositories, digests or
layers), e.g. 127/128 and 32767/32768 where pandas switches category code widths.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from hypothesis import strategies as st

from dreg_frames import Registry, make_layer

from .shapes import (
    DOCKER_LIST,
    FIXED_CREATED,
    OCI_INDEX,
    ODD_DATES,
    WINDOWS_VERSIONS,
    Content,
    docker_json,
    image_content,
    oci_index,
    platform_json,
    stored_sizes,
    windows_image,
)

PLATFORMS = ("linux/amd64", "linux/arm64/v8", "linux/arm/v7", "linux/s390x", "linux/ppc64le")
#: created values a graph draws from: ordinary ones and the odd ones of shapes.ODD_DATES
CREATED_VALUES: tuple[str | None, ...] = (
    FIXED_CREATED,
    "2023-01-15T08:30:00Z",
    "2019-07-01T00:00:00Z",
    *(v for k, v in ODD_DATES.items() if k != "annotation-only"),
)


# -- the description ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageSpec:
    """One image manifest. ``layers`` index the graph's layer pool (``()`` = zero layers);
    ``windows`` (``ltsc2019``/``ltsc2022``) puts a foreign base layer under them (needs a registry
    started with ``URLS_ALLOWED``); ``label`` makes otherwise equal images distinct."""

    layers: tuple[int, ...]
    platform: str = "linux/amd64"
    created: str | None = FIXED_CREATED
    oci: bool = False
    windows: str | None = None
    label: str = ""


@dataclass(frozen=True)
class IndexSpec:
    """An OCI index (``oci``) or Docker manifest list over ``children``; an OCI index may hold
    another index (nested)."""

    children: tuple[ImageSpec | IndexSpec, ...]
    oci: bool = True


Target = ImageSpec | IndexSpec


@dataclass(frozen=True)
class TagSpec:
    repository: str
    tag: str
    target: Target


@dataclass(frozen=True)
class GraphSpec:
    """The layer pool (byte sizes of its layers' contents) and every tag of every repository."""

    layer_sizes: tuple[int, ...]
    tags: tuple[TagSpec, ...]


# -- the built graph ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RegistryGraph:
    """A :class:`GraphSpec` built: ``tags`` maps (repository, tag) to the exact content it points at."""

    spec: GraphSpec
    tags: Mapping[tuple[str, str], Content]
    layer_pool: tuple[bytes, ...] = field(repr=False)

    @property
    def repositories(self) -> list[str]:
        return sorted({repository for repository, _ in self.tags})

    @property
    def needs_urls(self) -> bool:
        """True when some layer has ``urls``: push into a registry with ``URLS_ALLOWED``."""
        return any(c.foreign for top in self.tags.values() for c in top.walk())

    def contents(self, repository: str | None = None) -> list[Content]:
        return [c for (r, _), c in self.tags.items() if repository is None or r == repository]

    def stored_blobs(self, repository: str | None = None) -> dict[str, int]:
        """digest -> size of every blob the registry stores (manifests, configs, pushed layers;
        each once); what ``blob_store_bytes`` finds on disk after a push into an empty registry."""
        return stored_sizes(self.contents(repository))

    def tag_records(self) -> list[dict[str, Any]]:
        """One row per (repository, tag): digest and media type of what the tag points at."""
        return [
            {"repository": r, "tag": t, "digest": c.digest, "media_type": c.media_type}
            for (r, t), c in sorted(self.tags.items())
        ]

    def image_records(self) -> list[dict[str, Any]]:
        """One row per (repository, tag, image manifest reached from the tag), nested indexes
        walked: platform and dates from the config as written, layer counts and sizes."""
        rows = []
        for (repository, tag), top in sorted(self.tags.items()):
            for path, leaf in _leaves(top):
                body = leaf.json
                config_digest = body["config"]["digest"]
                config = json.loads(leaf.blobs[config_digest])
                platform = f"{config.get('os', '')}/{config.get('architecture', '')}"
                if config.get("variant"):
                    platform += f"/{config['variant']}"
                layers = body["layers"]
                rows.append(
                    {
                        "repository": repository,
                        "tag": tag,
                        "digest": top.digest,
                        "media_type": top.media_type,
                        "manifest_digest": leaf.digest,
                        "manifest_media_type": leaf.media_type,
                        "index_path": path,
                        "platform": platform,
                        "os_version": config.get("os.version"),
                        "config_digest": config_digest,
                        "config_size": body["config"]["size"],
                        "created_raw": config.get("created"),
                        "n_layers": len(layers),
                        "layer_bytes": sum(d["size"] for d in layers),
                        "stored_layer_bytes": sum(d["size"] for d in layers if not d.get("urls")),
                    }
                )
        return rows

    def layer_records(self) -> list[dict[str, Any]]:
        """One row per (repository, tag, image manifest, layer), as the manifests declare them."""
        rows = []
        for (repository, tag), top in sorted(self.tags.items()):
            for _, leaf in _leaves(top):
                for index, layer in enumerate(leaf.json["layers"]):
                    rows.append(
                        {
                            "repository": repository,
                            "tag": tag,
                            "digest": top.digest,
                            "manifest_digest": leaf.digest,
                            "layer_index": index,
                            "layer_digest": layer["digest"],
                            "layer_size": layer["size"],
                            "layer_media_type": layer["mediaType"],
                            "foreign": bool(layer.get("urls")),
                        }
                    )
        return rows


def _leaves(content: Content, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Content]]:
    """(digests of the indexes above, image manifest) for every image manifest under ``content``."""
    if not content.children and content.media_type not in (OCI_INDEX, DOCKER_LIST):
        yield path, content
    for child in content.children:
        yield from _leaves(child, (*path, content.digest))


def pool_layer(index: int, size: int) -> bytes:
    """Layer ``index`` of the pool: a real tar.gz of ``size`` pseudo-random bytes (incompressible,
    so the blob is about ``size`` bytes)."""
    data = bytearray()
    block = f"pool-{index}".encode()
    while len(data) < size:
        block = hashlib.sha256(block).digest()
        data += block
    return make_layer({f"pool/{index}": bytes(data[:size])})


def build_graph(spec: GraphSpec) -> RegistryGraph:
    """Build every manifest of ``spec`` in memory (no registry)."""
    pool = tuple(pool_layer(i, size) for i, size in enumerate(spec.layer_sizes))
    cache: dict[Target, Content] = {}

    def build(target: Target) -> Content:
        if target not in cache:
            cache[target] = (
                _build_index(target, build) if isinstance(target, IndexSpec) else _build_image(target, pool)
            )
        return cache[target]

    tags = {(t.repository, t.tag): build(t.target) for t in spec.tags}
    return RegistryGraph(spec, tags, pool)


def _build_image(spec: ImageSpec, pool: Sequence[bytes]) -> Content:
    layers = [pool[i] for i in spec.layers]
    labels = {"label": spec.label} if spec.label else None
    if spec.windows:
        return windows_image(
            spec.windows, oci=spec.oci, created=spec.created, layers=layers, label=spec.label
        )
    return image_content(layers, created=spec.created, platform=spec.platform, oci=spec.oci, labels=labels)


def _platform_of(spec: Target) -> dict[str, str] | None:
    if isinstance(spec, IndexSpec):
        return None
    if spec.windows:
        return platform_json("windows/amd64", WINDOWS_VERSIONS[spec.windows])
    return platform_json(spec.platform)


def _build_index(spec: IndexSpec, build: Callable[[Target], Content]) -> Content:
    children = [(build(child), child) for child in spec.children]
    if spec.oci:
        entries = []
        for content, child in children:
            platform = _platform_of(child)
            entries.append((content, {"platform": platform} if platform else {}))
        return oci_index(entries)
    manifests = []
    for content, child in children:
        entry: dict[str, Any] = {
            "mediaType": content.media_type,
            "size": content.size,
            "digest": content.digest,
        }
        platform = _platform_of(child)
        if platform:
            entry["platform"] = platform
        manifests.append(entry)
    body = docker_json({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": manifests})
    return Content(body, DOCKER_LIST, children=tuple(content for content, _ in children))


# -- pushing -------------------------------------------------------------------------------------------
def push_graph(graph: RegistryGraph, registry: Registry, *, workers: int = 4) -> dict[tuple[str, str], str]:
    """Push ``graph`` into ``registry``: each distinct blob uploaded once and mounted into the other
    repositories that use it, manifests by digest level by level (children first), then the tags;
    every phase in a thread pool. Returns (repository, tag) -> digest as the registry answered."""
    repos = {name: registry.repository(name) for name in graph.repositories}
    needed: dict[str, list[str]] = {}  # blob digest -> repositories, in first-use order
    data: dict[str, bytes] = {}
    for repository in graph.repositories:
        for top in graph.contents(repository):
            for content in top.walk():
                for digest, blob in content.blobs.items():
                    data[digest] = blob
                    users = needed.setdefault(digest, [])
                    if repository not in users:
                        users.append(repository)

    def run(tasks: Iterable[Callable[[], object]]) -> list[object]:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda task: task(), list(tasks)))

    def mount(digest: str, source: str, target: str) -> None:
        if not repos[target].mount_blob(digest, source):
            repos[target].push_blob(data[digest])

    def put(repository: str, reference: str, content: Content) -> str:
        return repos[repository].put_manifest(reference, content.raw, content.media_type)

    run(partial(repos[users[0]].push_blob, data[digest]) for digest, users in needed.items())
    run(partial(mount, digest, users[0], other) for digest, users in needed.items() for other in users[1:])
    levels: dict[int, dict[tuple[str, str], Content]] = {}
    for (repository, _), top in graph.tags.items():
        _collect_levels(repository, top, levels)
    for level in sorted(levels):
        run(
            partial(put, repository, content.digest, content)
            for (repository, _), content in levels[level].items()
        )
    answers = run(partial(put, repository, tag, content) for (repository, tag), content in graph.tags.items())
    return {key: str(digest) for key, digest in zip(graph.tags, answers, strict=True)}


def _collect_levels(
    repository: str, content: Content, levels: dict[int, dict[tuple[str, str], Content]]
) -> int:
    """Height of ``content`` (0 = image manifest); files it under that height, once per repository."""
    height = 1 + max((_collect_levels(repository, c, levels) for c in content.children), default=-1)
    levels.setdefault(height, {})[(repository, content.digest)] = content
    return height


# -- hypothesis strategies -------------------------------------------------------------------------------
repository_names = st.from_regex(r"[a-z][a-z0-9]{0,5}(/[a-z][a-z0-9]{0,5})?", fullmatch=True)
tag_names = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,11}", fullmatch=True)


@st.composite
def image_specs(
    draw: st.DrawFn,
    n_layers: int,
    *,
    oci: bool | None = None,
    windows: bool = False,
    platform: str | None = None,
) -> ImageSpec:
    """An image over a pool of ``n_layers`` layers (zero layers possible)."""
    layers = tuple(draw(st.lists(st.integers(0, n_layers - 1), max_size=min(3, n_layers), unique=True)))
    is_oci = draw(st.booleans()) if oci is None else oci
    release = draw(st.sampled_from(sorted(WINDOWS_VERSIONS))) if windows and draw(st.booleans()) else None
    return ImageSpec(
        layers=layers,
        platform=platform or draw(st.sampled_from(PLATFORMS)),
        created=draw(st.sampled_from(CREATED_VALUES)),
        oci=is_oci,
        windows=release,
        label=draw(st.sampled_from(("", "a", "b"))),
    )


@st.composite
def index_specs(
    draw: st.DrawFn, n_layers: int, *, nested: bool = True, windows: bool = False, oci: bool | None = None
) -> IndexSpec:
    """A Docker manifest list or OCI index of 1-3 images on distinct platforms; an OCI index may
    put one inner OCI index first (nested) when ``nested``."""
    oci = draw(st.booleans()) if oci is None else oci
    platforms = draw(st.lists(st.sampled_from(PLATFORMS), min_size=1, max_size=3, unique=True))
    children: list[Target] = [
        draw(image_specs(n_layers, oci=oci, windows=windows, platform=p)) for p in platforms
    ]
    if oci and nested and draw(st.booleans()):
        children.insert(0, draw(index_specs(n_layers, nested=False, windows=windows, oci=True)))
    return IndexSpec(tuple(children), oci=oci)


@st.composite
def graph_specs(
    draw: st.DrawFn,
    *,
    max_repositories: int = 3,
    max_tags: int = 4,
    max_layers: int = 5,
    max_layer_size: int = 3000,
    nested: bool = True,
    windows: bool = False,
) -> GraphSpec:
    """A whole registry: 1..max_repositories repositories, each with 1..max_tags tags on images or
    indexes; tags may alias one another (same digest), layers come from one pool so they are
    shared across images and repositories. ``windows`` allows foreign base layers."""
    n_layers = draw(st.integers(1, max_layers))
    sizes = tuple(draw(st.lists(st.integers(1, max_layer_size), min_size=n_layers, max_size=n_layers)))
    targets = st.one_of(
        image_specs(n_layers, windows=windows), index_specs(n_layers, nested=nested, windows=windows)
    )
    names = draw(st.lists(repository_names, min_size=1, max_size=max_repositories, unique=True))
    tags: list[TagSpec] = []
    for name in names:
        drawn: list[Target] = []
        for tag in draw(st.lists(tag_names, min_size=1, max_size=max_tags, unique=True)):
            # an alias of an earlier tag now and then: several tags, one digest
            alias = bool(drawn) and draw(st.integers(0, 3)) == 0
            target = draw(st.sampled_from(drawn)) if alias else draw(targets)
            drawn.append(target)
            tags.append(TagSpec(name, tag, target))
    return GraphSpec(sizes, tuple(tags))


def wide_spec(n: int, kind: str = "tags", *, layer_size: int = 16) -> GraphSpec:
    """A graph with exactly ``n`` distinct names of one kind:

    - ``tags``: one repository, ``n`` tags on one image;
    - ``repositories``: ``n`` repositories with tag ``latest`` on one image;
    - ``digests``: one repository, ``n`` tags on ``n`` distinct images sharing one layer;
    - ``layers``: one repository, ``n`` tags on ``n`` images of one distinct layer each.
    """
    if kind == "tags":
        image = ImageSpec((0,))
        return GraphSpec((layer_size,), tuple(TagSpec("wide/tags", f"t{i:06d}", image) for i in range(n)))
    if kind == "repositories":
        image = ImageSpec((0,))
        return GraphSpec((layer_size,), tuple(TagSpec(f"wide/r{i:06d}", "latest", image) for i in range(n)))
    if kind == "digests":
        return GraphSpec(
            (layer_size,),
            tuple(TagSpec("wide/digests", f"t{i:06d}", ImageSpec((0,), label=f"{i}")) for i in range(n)),
        )
    if kind == "layers":
        return GraphSpec(
            (layer_size,) * n, tuple(TagSpec("wide/layers", f"t{i:06d}", ImageSpec((i,))) for i in range(n))
        )
    raise ValueError(f"kind must be tags, repositories, digests or layers, got {kind!r}")


__all__ = [
    "CREATED_VALUES",
    "PLATFORMS",
    "GraphSpec",
    "ImageSpec",
    "IndexSpec",
    "RegistryGraph",
    "TagSpec",
    "Target",
    "build_graph",
    "graph_specs",
    "image_specs",
    "index_specs",
    "pool_layer",
    "push_graph",
    "repository_names",
    "tag_names",
    "wide_spec",
]
