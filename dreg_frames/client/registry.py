"""The registry: its catalog, namespaces and repositories."""

from __future__ import annotations

import threading
from collections.abc import Mapping

import requests
from urllib3.util.retry import Retry

from .auth import AuthService
from .credentials import DOCKER_HUB_HOSTS, Credentials
from .errors import CatalogUnavailable, NotFound, UnsupportedOperation
from .http import DEFAULT_TIMEOUT, Transport
from .limits import Limits
from .reference import check_name
from .repository import Repository

__all__ = ["DEFAULT_NAMESPACE", "Registry"]

# dreg-client files single-segment names ("app2") under this namespace, as Docker Hub does.
DEFAULT_NAMESPACE = "library"


class Registry:
    """A Docker Registry HTTP API v2 / OCI Distribution registry.

    Example::

        registry = Registry.build_with_manual_client("http://127.0.0.1:5000/v2/")
        registry.repositories()   # {'team1/app': Repository('team1/app'), ...}
    """

    def __init__(self, client: Transport) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._objects: dict[str, Repository] = {}  # one object per name, listed or not
        self._repositories: dict[str, Repository] = {}
        self._by_namespace: dict[str, dict[str, Repository]] = {}
        self._listed = False

    @classmethod
    def build_with_manual_client(
        cls,
        url: str,
        *,
        auth: tuple[str, str] | Credentials | requests.auth.AuthBase | None = None,
        auth_service: AuthService | None = None,
        docker_config: bool = True,
        verify: bool | str = True,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        retry: Retry | int | None = None,
        pool_size: int = 32,
        limits: Limits | None = None,
        allow_http_realm: bool = False,
    ) -> Registry:
        """A registry at ``url`` (``https://host[:port]/v2/``).

        ``auth`` is ``(user, password)``, used for Basic auth or to get bearer tokens, whichever the
        registry asks for; without it, Docker's config.json (and its credential helpers) is looked
        up when the registry first asks (``docker_config=False`` turns that off). ``auth_service``
        is a dreg-client style token service (``request_token(scope)``) for hand-made setups.
        ``verify`` is True, False or a CA bundle path, honoured even when ``REQUESTS_CA_BUNDLE`` is set.
        ``limits`` (a :class:`~.limits.Limits`) bounds each request's time, body sizes and pages;
        ``allow_http_realm`` lets credentials go to a token realm on another host over plain http.
        """
        return cls(
            Transport(
                url,
                auth=auth,
                auth_service=auth_service,
                docker_config=docker_config,
                verify=verify,
                timeout=timeout,
                retry=retry,
                pool_size=pool_size,
                limits=limits,
                allow_http_realm=allow_http_realm,
            )
        )

    @property
    def client(self) -> Transport:
        return self._client

    @property
    def url(self) -> str:
        return self._client.base_url

    def __repr__(self) -> str:
        return f"Registry({self.url!r})"

    def ping(self) -> None:
        """Check that ``/v2/`` answers as a registry (raises otherwise)."""
        self._client.request("GET", "", what="ping the registry")

    def catalog(self, page_size: int | None = 1000) -> list[str]:
        """Every repository name in the catalog (all pages).

        Raises :class:`CatalogUnavailable` on registries that have no catalog (GHCR, Docker Hub).
        """
        try:
            return list(
                self._client.paginate(
                    "_catalog", "repositories", what="list the catalog", page_size=page_size
                )
            )
        except (NotFound, UnsupportedOperation) as exc:
            raise CatalogUnavailable(
                f"{self.url} does not serve /v2/_catalog (HTTP {exc.status}); "
                "name the repositories to crawl yourself",
                status=exc.status,
                codes=exc.codes,
                errors=exc.errors,
                response=exc.response,
            ) from None

    def refresh(self) -> None:
        """Read the catalog again; Repository objects already handed out stay the same objects."""
        names = self.catalog()
        with self._lock:
            repositories = {name: self._get_or_make(name) for name in names}
            by_namespace: dict[str, dict[str, Repository]] = {}
            for name, repo in repositories.items():
                by_namespace.setdefault(repo.namespace or DEFAULT_NAMESPACE, {})[name] = repo
            self._repositories = repositories
            self._by_namespace = by_namespace
            self._listed = True

    def namespaces(self) -> list[str]:
        """The namespaces of the catalog's repositories (first path segment; ``library`` for none)."""
        if not self._listed:
            self.refresh()
        return list(self._by_namespace)

    def repositories(self, namespace: str | None = None) -> Mapping[str, Repository]:
        """Repository name -> :class:`Repository`, for all or for one namespace's repositories."""
        if not self._listed:
            self.refresh()
        if namespace is None:
            return dict(self._repositories)
        return dict(self._by_namespace.get(namespace, {}))

    def repository(self, repository: str, namespace: str | None = None) -> Repository:
        """``repository("testrepo", "testns")`` or ``repository("testns/testrepo")``: the same object."""
        if namespace is not None:
            if "/" in repository and repository.split("/", 1)[0] == namespace:
                raise ValueError(f"namespace {namespace!r} given twice: in {repository!r} and as namespace=")
            name = f"{namespace}/{repository}"
        else:
            name = repository
        if "/" not in name and self._client.host in DOCKER_HUB_HOSTS:
            name = f"library/{name}"  # Docker Hub's official images: "nginx" is "library/nginx"
        check_name(name)
        with self._lock:
            return self._get_or_make(name)

    def _get_or_make(self, name: str) -> Repository:
        existing = self._objects.get(name)
        if existing is not None:
            return existing
        namespace, _, rest = name.partition("/")
        repo = Repository(self._client, rest, namespace) if rest else Repository(self._client, name)
        self._objects[name] = repo
        return repo
