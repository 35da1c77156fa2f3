"""dreg-client's ``Client``: one registry's HTTP API, over dreg-frames' Transport and Repository.

Every call goes through dreg-frames (grammar checks, auth challenges, pagination, digest
verification, retries) on a ``requests`` session, so HTTP mocks such as ``responses`` and
``requests-mock`` see each request. Errors come back as ``requests`` exceptions, as in dreg-client.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import requests

from ...client.auth import AuthService
from ...client.errors import DregError, ManifestError
from ...client.http import MAX_MANIFEST_BYTES, Transport
from ...client.registry import Registry as NativeRegistry
from ...client.repository import Repository as NativeRepository
from ._errors import requests_errors
from ._types import RequestsAuth
from .manifest import (
    ImageConfig,
    ManifestParseOutput,
    UnusableManifestPayloadError,
    image_config_from_bytes,
    manifest_from_bytes,
)

__all__ = ["CatalogResponse", "Client", "TagsResponse"]


class CatalogResponse(TypedDict):
    repositories: Sequence[str]


class TagsResponse(TypedDict):
    name: str
    tags: Sequence[str] | None


class Client:
    """A registry's API: ``Client.build_with_session("https://registry.example.com/v2/")``.

    ``session`` is a ``requests`` session with a ``base_url`` (requests_toolbelt's
    ``BaseUrlSession``, as dreg-client takes), or a dreg-frames :class:`Transport`.
    """

    def __init__(
        self, session: requests.Session | Transport, /, *, auth_service: AuthService | None = None
    ) -> None:
        if isinstance(session, Transport):
            if auth_service is not None:
                raise ValueError("Give the Transport its auth_service when building it.")
            transport = session
        else:
            if session.auth and auth_service:
                raise ValueError("Cannot supply session.auth and auth_service together.")
            base_url = getattr(session, "base_url", None)
            if not isinstance(base_url, str):
                raise TypeError(
                    "the session needs a base_url such as https://registry.example.com/v2/ "
                    "(requests_toolbelt's BaseUrlSession)"
                )
            transport = Transport(
                base_url,
                session=session,
                auth_service=auth_service,
                docker_config=False,  # dreg-client never reads Docker's credentials
                verify=session.verify if isinstance(session.verify, (bool, str)) else True,
            )
        self._transport = transport
        self._registry = NativeRegistry(transport)

    @classmethod
    def build_with_session(
        cls, base_url: str, /, *, auth: RequestsAuth = None, auth_service: AuthService | None = None
    ) -> Client:
        """A client for the registry at ``base_url`` (``https://host[:port]/v2/``).

        ``auth`` is ``(user, password)`` (Basic, or to get bearer tokens: whatever the registry asks
        for) or any requests auth callable; ``auth_service`` a token service such as
        :class:`~dreg_frames.compat.dreg_client.DockerTokenAuthService`.
        """
        if auth and auth_service:
            raise ValueError("Cannot supply auth and auth_service together.")
        # A session of our own (not the urllib3 fast path) so that every call goes through requests.
        session = requests.Session()
        if auth is not None and not isinstance(auth, (tuple, requests.auth.AuthBase)):
            session.auth = auth  # a bare callable: requests applies it to every request
            auth = None
        transport = Transport(
            base_url, auth=auth, auth_service=auth_service, docker_config=False, session=session
        )
        return cls(transport)

    @property
    def transport(self) -> Transport:
        return self._transport

    @property
    def registry(self) -> NativeRegistry:
        """The same registry as a dreg-frames :class:`~dreg_frames.Registry` (for ``crawl`` and the rest)."""
        return self._registry

    def __repr__(self) -> str:
        return f"Client({self._transport.base_url!r})"

    def _repo(self, name: str) -> NativeRepository:
        return self._registry.repository(name)

    def check_status(self) -> bool:
        """Whether ``/v2/`` answers as a registry (with JSON)."""
        try:
            self._transport.get_json("", what="check the registry")
        except DregError:
            return False
        return True

    def catalog(self) -> CatalogResponse:
        """``{"repositories": [...]}``: every page of the catalog."""
        with requests_errors():
            return {"repositories": self._registry.catalog()}

    def get_repository_tags(self, name: str) -> TagsResponse:
        """``{"name": name, "tags": [...]}``: every page of the tag list."""
        with requests_errors():
            repo = self._repo(name)
            return {"name": repo.name, "tags": repo.tags()}

    def check_manifest(self, name: str, reference: str) -> str | None:
        """The digest a tag or digest resolves to (HEAD), or None when there is no such manifest."""
        with requests_errors():
            return self._repo(name).check_manifest(reference)

    def get_manifest(self, name: str, reference: str) -> ManifestParseOutput:
        """A :class:`Manifest`, :class:`ManifestList` or :class:`LegacyManifest`, its digest verified."""
        with requests_errors():
            try:
                body, content_type, digest = self._repo(name).get_manifest_bytes(reference)
            except ManifestError as exc:  # e.g. a schema1 signature that cannot be read to verify it
                raise UnusableManifestPayloadError(None, None, str(exc)) from exc
        return manifest_from_bytes(body, content_type, digest)

    def delete_manifest(self, name: str, digest: str) -> requests.Response:
        """Delete a manifest by digest (every tag on it goes too); the registry's answer."""
        with requests_errors():
            return self._repo(name).delete_manifest(digest)

    def get_image_config_blob(self, name: str, digest: str) -> ImageConfig:
        """The image config blob ``digest``, verified against its digest."""
        with requests_errors():
            body = self._repo(name).blob_bytes(digest, cap=MAX_MANIFEST_BYTES)
        return image_config_from_bytes(body, digest)

    def get_blob(self, name: str, digest: str) -> requests.Response:
        """The blob's response, read in full (``.content``, ``.json()``), as dreg-client returns it."""
        with requests_errors():
            return self._repo(name).get_blob(digest, stream=False)

    def delete_blob(self, name: str, digest: str) -> requests.Response:
        with requests_errors():
            return self._repo(name).delete_blob(digest)
