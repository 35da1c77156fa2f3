"""dreg-client's ``Registry``: the catalog grouped by namespace, and Repository objects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import requests

from ...client.auth import AuthService
from ._types import RequestsAuth
from .client import Client
from .repository import Repository

__all__ = ["Registry"]

# dreg-client files single-segment names ("debian") under this namespace.
DEFAULT_NAMESPACE = "library"


class Registry:
    """A registry: ``Registry.build_with_manual_client("https://registry.example.com/v2/")``.

    The catalog is read once, on first use, and cached; :meth:`refresh` reads it again.
    """

    def __init__(self, client: Client, /) -> None:
        self._client = client
        self._repositories: dict[str, Repository] = {}
        self._by_namespace: dict[str, dict[str, Repository]] = {}
        self._listed = False

    @classmethod
    def build_with_client(
        cls, session: requests.Session, /, *, auth_service: AuthService | None = None
    ) -> Registry:
        """Over a ``requests_toolbelt`` ``BaseUrlSession`` you set up (auth, verify, proxies)."""
        return cls(Client(session, auth_service=auth_service))

    @classmethod
    def build_with_manual_client(
        cls, base_url: str, /, *, auth: RequestsAuth = None, auth_service: AuthService | None = None
    ) -> Registry:
        return cls(Client.build_with_session(base_url, auth=auth, auth_service=auth_service))

    @property
    def client(self) -> Client:
        return self._client

    def __repr__(self) -> str:
        return f"Registry({self._client!r})"

    def namespaces(self) -> Sequence[str]:
        if not self._listed:
            self.refresh()
        return tuple(self._by_namespace)

    def repository(self, repository: str, namespace: str | None = None) -> Repository:
        """``repository("testrepo", "testns")`` or ``repository("testns/testrepo")``.

        A repository listed in the catalog is the same object each time; others are new objects.
        """
        if "/" in repository:
            if namespace is not None:
                raise ValueError("Cannot specify namespace twice.")
            namespace, repository = repository.split("/", 1)
        name = f"{namespace}/{repository}" if namespace else repository
        listed = self._repositories.get(name)
        if listed is not None:
            return listed
        return Repository(self._client, repository, namespace=namespace)

    def repositories(self, namespace: str | None = None) -> Mapping[str, Repository]:
        """Name -> Repository for the whole catalog, or for one namespace (KeyError if it has none)."""
        if not self._listed:
            self.refresh()
        if namespace:
            return self._by_namespace[namespace]
        return self._repositories

    def refresh(self) -> None:
        """Read the catalog again (all pages)."""
        repositories: dict[str, Repository] = {}
        by_namespace: dict[str, dict[str, Repository]] = {}
        for name in self._client.catalog()["repositories"]:
            namespace, _, rest = name.partition("/")
            repo = Repository(self._client, rest, namespace) if rest else Repository(self._client, name)
            repositories[name] = repo
            by_namespace.setdefault(namespace if rest else DEFAULT_NAMESPACE, {})[name] = repo
        self._repositories = repositories
        self._by_namespace = by_namespace
        self._listed = True
