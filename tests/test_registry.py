"""Catalog, namespaces and repositories against the real Distribution registry."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from dreg_frames import DregError, LocalRegistry, Registry, TransportError, make_layer, push_image
from dreg_frames.client.http import normalise_url


@pytest.fixture(scope="module")
def big_registry() -> Iterator[tuple[LocalRegistry, list[str]]]:
    """A registry with 1,050 repositories, so the catalog needs several pages at any page size."""
    with LocalRegistry() as server:
        registry = Registry.build_with_manual_client(server.url)
        seed = registry.repository("seed/base")
        blob = seed.push_blob(b"common base layer")
        names = [f"ns{i % 7}/repo{i:04d}" for i in range(1050)] + ["solo"]

        def mount(name: str) -> None:
            assert registry.repository(name).mount_blob(blob.digest, seed)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(mount, names))
        yield server, sorted([*names, "seed/base"])


def test_catalog_follows_every_page(big_registry: tuple[LocalRegistry, list[str]]) -> None:
    server, names = big_registry
    for page_size in (None, 100, 1000):
        registry = Registry.build_with_manual_client(server.url)
        assert registry.catalog(page_size=page_size) == names
        pages = registry.client.requests_made
        expected_pages = -(-len(names) // (page_size or 100))
        assert pages == expected_pages


def test_page_size_over_the_limit_falls_back(big_registry: tuple[LocalRegistry, list[str]]) -> None:
    server, names = big_registry
    registry = Registry.build_with_manual_client(server.url)
    assert registry.catalog(page_size=5000) == names


def test_repositories_and_namespaces(big_registry: tuple[LocalRegistry, list[str]]) -> None:
    server, names = big_registry
    registry = Registry.build_with_manual_client(server.url)
    repos = registry.repositories()
    assert sorted(repos) == names
    assert sorted(registry.namespaces()) == sorted({"library", "seed"} | {f"ns{i}" for i in range(7)})
    ns3 = registry.repositories("ns3")
    assert sorted(ns3) == [n for n in names if n.startswith("ns3/")]
    assert registry.repositories("library") == {"solo": repos["solo"]}
    assert registry.repositories("nope") == {}
    one = registry.repository("repo0003", "ns3")
    assert one is registry.repository("ns3/repo0003") is repos["ns3/repo0003"]
    assert (one.name, one.namespace, one.repository) == ("ns3/repo0003", "ns3", "repo0003")


def test_repository_objects_survive_refresh(registry: Registry) -> None:
    repo = registry.repository("stable/identity")
    push_image(repo, [make_layer({"i": b"i"})], tags=["v1"])
    registry.refresh()
    assert registry.repositories()["stable/identity"] is repo


def test_url_forms() -> None:
    assert normalise_url("http://127.0.0.1:5000/v2/") == "http://127.0.0.1:5000/v2/"
    assert normalise_url("http://127.0.0.1:5000") == "http://127.0.0.1:5000/v2/"
    assert normalise_url("registry.example.com") == "https://registry.example.com/v2/"
    with pytest.raises(DregError, match="credentials"):
        normalise_url("https://user:pw@registry.example.com")
    with pytest.raises(DregError, match="http"):
        normalise_url("ftp://x")


def test_unreachable_registry_is_a_transport_error() -> None:
    from dreg_frames.local_registry import free_port

    registry = Registry.build_with_manual_client(f"http://127.0.0.1:{free_port()}/v2/", retry=0)
    with pytest.raises(TransportError, match="cannot reach"):
        registry.ping()


def test_docker_hub_names_are_normalised() -> None:
    from dreg_frames.client.credentials import registry_key

    hub = Registry.build_with_manual_client("docker.io")
    assert hub.url == "https://registry-1.docker.io/v2/"
    assert hub.repository("nginx").name == "library/nginx"
    assert hub.repository("bitnami/redis").name == "bitnami/redis"
    assert registry_key(hub.url) is None  # Docker's config keys Hub as its index, not by host
    assert registry_key("http://127.0.0.1:5000/v2/") == "127.0.0.1:5000"
