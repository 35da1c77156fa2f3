"""dreg-client's ``Repository``: a name, its cached tags, and calls on the client for that name."""

from __future__ import annotations

from collections.abc import Sequence

import requests

from ...client.errors import DregError
from .client import Client
from .image import Image
from .manifest import LegacyManifest, ManifestList, ManifestParseOutput, single_platform_list

__all__ = ["LegacyImageRequestError", "Repository"]


class LegacyImageRequestError(DregError):
    """``get_image`` found a schema1 manifest (pass ``raise_on_legacy=False`` to have it returned)."""


class Repository:
    """A repository: ``registry.repository("testns/testrepo")``.

    Tags are read once and cached; :meth:`refresh` reads them again.
    """

    def __init__(self, client: Client, repository: str, namespace: str | None = None) -> None:
        self._client = client
        self.repository = repository
        self.namespace = namespace
        self._tags: tuple[str, ...] | None = None

    @property
    def name(self) -> str:
        return f"{self.namespace}/{self.repository}" if self.namespace else self.repository

    def __repr__(self) -> str:
        return f"Repository({self.name})"

    def tags(self) -> Sequence[str]:
        """The tags, read on first use (every page) and cached."""
        if self._tags is None:
            self.refresh()
        assert self._tags is not None
        return self._tags

    def refresh(self) -> None:
        """Read the tags again."""
        listed = self._client.get_repository_tags(self.name)["tags"]
        self._tags = tuple(listed) if listed is not None else ()

    def get_image(self, tag: str, /, *, raise_on_legacy: bool = True) -> Image | LegacyManifest:
        """The image behind ``tag``; a single-platform image gets a one-entry manifest list."""
        manifest = self.get_manifest(tag)
        if isinstance(manifest, LegacyManifest):
            if raise_on_legacy:
                raise LegacyImageRequestError(f"{self.name}:{tag} is a schema1 manifest")
            return manifest
        if isinstance(manifest, ManifestList):
            return Image(self._client, self.name, tag, manifest)
        config = self._client.get_image_config_blob(self.name, manifest.config.digest)
        return Image(self._client, self.name, tag, single_platform_list(manifest, config.platform))

    def check_manifest(self, reference: str, /) -> str | None:
        return self._client.check_manifest(self.name, reference)

    def get_manifest(self, reference: str) -> ManifestParseOutput:
        """The manifest of a tag or digest."""
        return self._client.get_manifest(self.name, reference)

    def delete_manifest(self, digest: str, /) -> requests.Response:
        return self._client.delete_manifest(self.name, digest)

    def get_blob(self, digest: str, /) -> requests.Response:
        return self._client.get_blob(self.name, digest)

    def delete_blob(self, digest: str, /) -> requests.Response:
        return self._client.delete_blob(self.name, digest)
