"""How a Dask worker reaches the registry: a picklable recipe that names where credentials are,
never the credentials themselves.

A task graph is pickled, sent through the scheduler and may be logged or kept for a dashboard, so
the password must not travel in it. A :class:`ConnectionSpec` carries the URL, TLS, timeouts and
limits, and a credentials *source* that each worker resolves on its own machine: its Docker config
(``DockerConfig``), its environment (``EnvCredentials``) or nothing (``Anonymous``).

Example::

    spec = ConnectionSpec("https://registry.internal", credentials=EnvCredentials("REG_USER", "REG_PASSWORD"))
    spec.build()   # on a worker: a Registry with the credentials that worker's environment holds
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from ..client.credentials import Credentials, docker_config_credentials
from ..client.errors import DregError
from ..client.http import DEFAULT_TIMEOUT, normalise_url
from ..client.limits import Limits
from ..client.registry import Registry

__all__ = ["Anonymous", "ConnectionSpec", "CredentialSource", "DockerConfig", "EnvCredentials"]


@dataclass(frozen=True)
class DockerConfig:
    """Docker's config on each worker: ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``
    (``directory=None``, read when the registry first asks, as a local crawl does), or the
    ``config.json`` in ``directory`` (a path on the workers, e.g. a mounted secret)."""

    directory: str | None = None

    def resolve(self, url: str) -> tuple[Credentials | None, bool]:
        if self.directory is None:
            return None, True
        path = os.path.join(self.directory, "config.json")
        if not os.path.exists(path):
            raise DregError(
                f"DockerConfig: no config.json in {self.directory} on worker {socket.gethostname()}"
            )
        return docker_config_credentials(url, config_path=path), False


@dataclass(frozen=True)
class EnvCredentials:
    """A user name and password from environment variables of each worker (by name: the values
    never leave the worker). ``DREG_USER`` / ``DREG_PASSWORD`` are what the command line reads."""

    username_var: str = "DREG_USER"
    password_var: str = "DREG_PASSWORD"

    def resolve(self, url: str) -> tuple[Credentials | None, bool]:
        values = []
        for var in (self.username_var, self.password_var):
            value = os.environ.get(var)
            if not value:
                raise DregError(
                    f"EnvCredentials: ${var} is not set on worker {socket.gethostname()}; "
                    "set it in the workers' environment (e.g. from a Kubernetes secret)"
                )
            values.append(value)
        return Credentials(values[0], values[1]), False


@dataclass(frozen=True)
class Anonymous:
    """No credentials, and no Docker config lookup."""

    def resolve(self, url: str) -> tuple[Credentials | None, bool]:
        return None, False


CredentialSource = DockerConfig | EnvCredentials | Anonymous


@dataclass(frozen=True)
class ConnectionSpec:
    """Everything a worker needs to build its own :class:`Registry` (and connection pool).

    ``verify`` may be a CA bundle path: it must exist at that path on every worker.
    """

    url: str
    credentials: CredentialSource = field(default_factory=DockerConfig)
    verify: bool | str = True
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT
    retry: int | None = None
    pool_size: int = 32
    limits: Limits | None = None
    allow_http_realm: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.credentials, (DockerConfig, EnvCredentials, Anonymous)):
            raise DregError(
                "ConnectionSpec.credentials must be DockerConfig(), EnvCredentials(...) or Anonymous(), "
                f"got {type(self.credentials).__name__}: a password must not go into the task graph"
            )

    @property
    def host(self) -> str:
        """``host[:port]``, as the registry's client names it (the cluster-wide cap is per host)."""
        return urlsplit(normalise_url(self.url)).netloc

    def build(self, concurrency: int | None = None) -> Registry:
        """A Registry for this worker, with the credentials its source finds here; ``concurrency``
        lowers its cap on requests in flight (:class:`Limits`)."""
        auth, docker_config = self.credentials.resolve(self.url)
        limits = self.limits
        if concurrency is not None:
            limits = limits or Limits()
            limits = replace(limits, concurrency=min(limits.concurrency, concurrency))
        return Registry.build_with_manual_client(
            self.url,
            auth=auth,
            docker_config=docker_config,
            verify=self.verify,
            timeout=self.timeout,
            retry=self.retry,
            pool_size=self.pool_size,
            limits=limits,
            allow_http_realm=self.allow_http_realm,
        )

    @classmethod
    def from_registry(cls, registry: Registry, credentials: CredentialSource | None = None) -> ConnectionSpec:
        """The spec of a Registry built here: its URL, TLS verification, timeouts and limits.

        A Registry holding credentials given in memory (``auth=``, ``auth_service=``) is refused
        unless ``credentials`` names where the workers find them: they are not sent to the cluster.
        """
        transport = registry.client
        held = (
            getattr(transport.auth, "_credentials", None) is not None
            or transport.auth.auth_service is not None
            or transport.session.auth is not None
        )
        if credentials is None:
            if held:
                raise DregError(
                    "crawl(engine='dask'): this Registry holds credentials in memory, which are not sent "
                    "into the task graph; say where the workers find them: credentials=EnvCredentials("
                    "'USER_VAR', 'PASSWORD_VAR') or credentials=DockerConfig('/path/on/workers')"
                )
            credentials = DockerConfig()
        return cls(
            registry.url,
            credentials=credentials,
            verify=transport.verify,
            timeout=transport.timeout,
            limits=transport.limits,
        )
