"""A registry of known images for the crawl tests, and what each tag should produce."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dreg_frames import ImageIndex, LocalRegistry, Manifest, Registry, make_layer, push_image, push_multiarch
from dreg_frames.client.push import build_image


@dataclass
class Expected:
    """Rows the layers frame must hold: (repository, tag) -> list of per-image tuples."""

    images: dict[
        tuple[str, str], list[tuple[str, str, str, str | None, str | None, list[tuple[str, int]]]]
    ] = field(default_factory=dict)
    digests: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)
    empty: list[str] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)  # manifest/index/config digest -> bytes

    def add(
        self,
        repository: str,
        tags: list[str],
        pushed: Manifest | ImageIndex,
        children: list[Manifest],
        platforms: list[str],
        created: str | None,
    ) -> None:
        self.sizes[pushed.digest] = len(pushed.raw)
        for child in children:
            self.sizes[child.digest] = len(child.raw)
            self.sizes[child.config.digest] = child.config.size
        for tag in tags:
            self.digests[(repository, tag)] = (pushed.digest, pushed.media_type)
            rows = []
            for child, platform in zip(children, platforms, strict=True):
                layers = [(layer.digest, layer.size) for layer in child.layers]
                rows.append((child.digest, child.media_type, platform, child.config.digest, created, layers))
            self.images[(repository, tag)] = rows


def blob_data_path(server: LocalRegistry, digest: str) -> Path:
    hexpart = digest.split(":", 1)[1]
    return server.storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"


def _children(registry: Registry, repository: str, index: ImageIndex) -> list[Manifest]:
    repo = registry.repository(repository)
    out = []
    for descriptor in index.manifests:
        child = repo.get_manifest(descriptor.digest)
        assert isinstance(child, Manifest)
        out.append(child)
    return out


def seed_known_registry(server: LocalRegistry) -> Expected:
    registry = Registry.build_with_manual_client(server.url)
    exp = Expected()
    base = make_layer({"etc/os-release": b"base" * 500})
    app1 = make_layer({"app": b"one" * 300})
    app2 = make_layer({"app": b"two" * 300})

    created_ns = "2024-05-06T07:08:09.123456789Z"
    m = push_image(registry.repository("team1/app"), [base, app1], ["v1", "latest"], created=created_ns)
    exp.add("team1/app", ["v1", "latest"], m, [m], ["linux/amd64"], created_ns)
    m2 = push_image(
        registry.repository("team1/app"), [base, app2], ["v2"], created="2025-01-01T00:00:00Z", oci=True
    )
    exp.add("team1/app", ["v2"], m2, [m2], ["linux/amd64"], "2025-01-01T00:00:00Z")
    # the same digest under another repository and tag
    copy = push_image(registry.repository("team2/copy"), [base, app1], ["v1-copy"], created=created_ns)
    assert copy.digest == m.digest
    exp.add("team2/copy", ["v1-copy"], copy, [copy], ["linux/amd64"], created_ns)

    for repository, oci, tag in (("team1/multi", False, "1.0"), ("team2/oci-multi", True, "stable")):
        platforms = ["linux/amd64", "linux/arm64/v8"]
        index = push_multiarch(
            registry.repository(repository),
            {p: [base, make_layer({"arch": p.encode()})] for p in platforms},
            [tag],
            created="2025-03-03T03:03:03Z",
            oci=oci,
        )
        exp.add(
            repository,
            [tag],
            index,
            _children(registry, repository, index),
            platforms,
            "2025-03-03T03:03:03Z",
        )

    for repository, created in (
        ("epoch/tool", "1970-01-01T00:00:00Z"),
        ("future/tool", "2099-01-01T00:00:00Z"),
        ("farfuture/tool", "2999-01-01T00:00:00Z"),
    ):
        m3 = push_image(registry.repository(repository), [base], ["latest"], created=created)
        exp.add(repository, ["latest"], m3, [m3], ["linux/amd64"], created if created < "2262" else None)

    # 110 repositories: more than one catalog page at the registry's default page size of 100
    tiny = push_image(registry.repository("many/repo000"), [base], ["t"], created="2023-03-03T00:00:00Z")
    source = registry.repository("many/repo000")
    exp.add("many/repo000", ["t"], tiny, [tiny], ["linux/amd64"], "2023-03-03T00:00:00Z")
    for i in range(1, 110):
        name = f"many/repo{i:03d}"
        repo = registry.repository(name)
        for digest in (tiny.config.digest, *(layer.digest for layer in tiny.layers)):
            assert repo.mount_blob(digest, source)
        repo.put_manifest("t", tiny.raw, tiny.media_type)
        exp.add(name, ["t"], tiny, [tiny], ["linux/amd64"], "2023-03-03T00:00:00Z")

    # broken/config: the config blob is unlinked from the repository -> config error, layers kept
    bc = push_image(
        registry.repository("broken/config"),
        [base],
        ["v1"],
        created="2024-02-02T00:00:00Z",
        labels={"unique": "broken-config"},
    )
    registry.repository("broken/config").delete_blob(bc.config.digest)
    exp.add("broken/config", ["v1"], bc, [bc], ["unknown"], None)  # platform comes from the lost config
    exp.broken["broken/config"] = "config"

    # broken/child: one child of an index deleted -> child error, the other platform kept
    idx = push_multiarch(
        registry.repository("broken/child"),
        {"linux/amd64": [make_layer({"c": b"amd"})], "linux/arm64/v8": [make_layer({"c": b"arm"})]},
        ["v1"],
        created="2024-04-04T00:00:00Z",
    )
    kids = _children(registry, "broken/child", idx)
    registry.repository("broken/child").delete_manifest(kids[1].digest)
    exp.add("broken/child", ["v1"], idx, kids[:1], ["linux/amd64"], "2024-04-04T00:00:00Z")
    exp.broken["broken/child"] = "child"

    # broken/corrupt: the stored manifest bytes are damaged on disk -> digest mismatch for the tag
    bad = build_image([make_layer({"corrupt": b"me"})], created="2024-05-05T00:00:00Z")
    corrupt = push_image(
        registry.repository("broken/corrupt"), list(bad.layers), ["v1"], created="2024-05-05T00:00:00Z"
    )
    path = blob_data_path(server, corrupt.digest)
    path.write_bytes(path.read_bytes().replace(b'"schemaVersion": 2', b'"schemaVersion":  2'))
    exp.broken["broken/corrupt"] = "manifest"

    # empty/repo: its only manifest deleted; the catalog still lists it
    gone = push_image(registry.repository("empty/repo"), [app2], ["v1"], created="2024-01-01T00:00:00Z")
    registry.repository("empty/repo").delete_manifest(gone.digest)
    exp.empty.append("empty/repo")
    return exp
