"""Storage figures checked against the real registry's own disk and garbage collector."""

from __future__ import annotations

from pathlib import Path

from dreg_frames import (
    LocalRegistry,
    Registry,
    crawl,
    make_layer,
    push_image,
    push_multiarch,
    reclaimable,
    storage_usage,
)


def _blob_bytes(server: LocalRegistry) -> dict[str, int]:
    root = server.storage / "docker/registry/v2/blobs/sha256"
    return {p.parent.name: p.stat().st_size for p in Path(root).glob("*/*/data")}


def test_reclaimable_matches_what_garbage_collect_frees() -> None:
    with LocalRegistry() as server:
        registry = Registry.build_with_manual_client(server.url)
        base = make_layer({"base": b"b" * 5000})
        r1, r2, r3 = (registry.repository(n) for n in ("team/one", "team/two", "team/three"))
        a = push_image(r1, [base, make_layer({"a": b"a" * 3000})], ["a"], created="2024-01-01T00:00:00Z")
        b = push_image(
            r1, [base, make_layer({"b": b"x" * 4000})], ["b", "b-alias"], created="2024-02-01T00:00:00Z"
        )
        push_image(r2, [base, make_layer({"a": b"a" * 3000})], ["copy-of-a"], created="2024-01-01T00:00:00Z")
        idx = push_multiarch(
            r3,
            {
                "linux/amd64": [base, make_layer({"x": b"1" * 2000})],
                "linux/arm64/v8": [make_layer({"y": b"2" * 1500})],
            },
            ["multi"],
            created="2024-03-01T00:00:00Z",
        )
        result = crawl(registry, progress=False)
        before = _blob_bytes(server)
        usage = storage_usage(result.layers).set_index("repository")
        # every blob on disk is referenced by some tag, and each is counted once
        assert usage.loc["(registry total)", "stored_bytes"] == sum(before.values())

        plan = [("team/one", b.digest), ("team/three", idx.digest), ("team/one", a.digest)]
        expected = reclaimable(result.layers, plan, delete_untagged=False)
        for repository, digest in plan:
            registry.repository(repository).delete_manifest(digest)
        server.stop()
        server.garbage_collect()
        after = _blob_bytes(server)
        freed = {k: v for k, v in before.items() if k not in after}
        assert {b.split(":")[1] for b in expected["blob"]} == set(freed)
        assert expected["size"].sum() == sum(freed.values())
        # a's layer lives on in team/two; the base in team/two and the amd64 child
        assert all(layer.digest.split(":")[1] in after for layer in a.layers)
