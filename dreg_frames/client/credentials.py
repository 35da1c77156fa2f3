"""Credentials people already have: Docker's config.json, its credential stores and helpers.

The lookup itself is the ``docker`` package's (``docker.auth``): it reads
``$DOCKER_CONFIG/config.json`` (else ``~/.docker/config.json``), decodes ``auths`` entries, and runs
``docker-credential-<name> get`` for ``credsStore`` and ``credHelpers``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["DOCKER_HUB_HOSTS", "Credentials", "docker_config_credentials", "registry_key"]

# Docker Hub answers at registry-1.docker.io; config files key it as docker.io or index.docker.io.
DOCKER_HUB_HOSTS = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)


@dataclass(frozen=True)
class Credentials:
    """A user name with a password, or an identity (refresh) token. Never printed."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    identity_token: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        kind = "identity token" if self.identity_token else "password"
        return f"Credentials(username={self.username!r}, {kind}=***)"

    @property
    def basic(self) -> tuple[str, str] | None:
        if self.username is not None and self.password is not None:
            return (self.username, self.password)
        return None


def registry_key(url: str) -> str | None:
    """The key Docker's config uses for a registry URL: ``host[:port]``, or None for Docker Hub."""
    host = urlsplit(url if "://" in url else f"https://{url}").netloc
    return None if host in DOCKER_HUB_HOSTS else host


def docker_config_credentials(url: str, config_path: str | None = None) -> Credentials | None:
    """Credentials for ``url`` from Docker's config (auths, credsStore, credHelpers), or None."""
    from docker import auth as docker_auth  # the docker package is heavy: load it only when asked

    try:
        config = docker_auth.load_config(config_path=config_path)
        found = config.resolve_authconfig(registry_key(url))
    except Exception:
        return None
    if not found:
        return None
    token = found.get("IdentityToken") or found.get("identitytoken")
    username = found.get("Username") or found.get("username")
    password = found.get("Password") or found.get("password") or found.get("Secret")
    if token:
        return Credentials(username=username, identity_token=token)
    if username and password:
        return Credentials(username=username, password=password)
    return None
