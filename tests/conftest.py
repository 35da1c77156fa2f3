"""Real-registry fixtures: Debian's docker-registry on a free 127.0.0.1 port, temporary storage."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from dreg_frames import LocalRegistry, Registry, Repository

_counter = itertools.count()


@pytest.fixture(scope="session")
def registry_server() -> Iterator[LocalRegistry]:
    """One registry with deletes enabled, shared by the session: tests use their own repositories."""
    with LocalRegistry(delete_enabled=True) as server:
        yield server


@pytest.fixture(scope="session")
def nodelete_server() -> Iterator[LocalRegistry]:
    """A registry with the Distribution default: deletes disabled."""
    with LocalRegistry(delete_enabled=False) as server:
        yield server


@pytest.fixture()
def registry(registry_server: LocalRegistry) -> Registry:
    return Registry.build_with_manual_client(registry_server.url)


@pytest.fixture()
def repo(registry: Registry, request: pytest.FixtureRequest) -> Repository:
    """A repository name no other test uses."""
    return registry.repository(unique_name(request.node.name))


def unique_name(hint: str) -> str:
    cleaned = "".join(c if c.isalnum() else "-" for c in hint.lower()).strip("-")
    cleaned = "-".join(part for part in cleaned.split("-") if part)[:60] or "repo"
    return f"t{next(_counter)}/{cleaned}"
