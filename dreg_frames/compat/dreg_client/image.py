"""dreg-client's ``Image``: one tag seen as a set of platform images."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...client.errors import DregError
from .manifest import DigestMixin, ImageConfig, ImageLayerRef, Manifest, ManifestList, ManifestRef, Platform

if TYPE_CHECKING:
    from .client import Client

__all__ = ["Image", "PlatformImage", "UnavailableImagePlatformError", "UnexpectedImageManifestError"]

_NO_PLATFORM = "No manifest available for the selected platform in this image."
_NOT_SINGLE = "The digest matched by the selected platform did not represent a single platform manifest."


class UnavailableImagePlatformError(DregError):
    """The image has no manifest for ``platform``."""

    def __init__(self, platform: Platform, message: str) -> None:
        super().__init__(message)
        self.platform = platform


class UnexpectedImageManifestError(DregError):
    """``digest`` is not a single-platform image manifest (a list, an index or schema1)."""

    def __init__(self, digest: str, message: str) -> None:
        super().__init__(message)
        self.digest = digest


@dataclass(frozen=True)
class PlatformImage(DigestMixin):
    """One platform's image: its manifest digest, config and layers."""

    digest: str
    config: ImageConfig = field(compare=False, repr=False)
    layers: Sequence[ImageLayerRef] = field(compare=False, repr=False)

    @property
    def platform_name(self) -> str:
        return self.config.platform_name

    @property
    def image_size(self) -> int:
        return sum(layer.size for layer in self.layers)


class Image:
    """A tag of a repository and the manifest list behind it (one entry for single-platform images)."""

    def __init__(self, client: Client, repo: str, tag: str, manifest_list: ManifestList) -> None:
        self._client = client
        self._repo = repo
        self._tag = tag
        self._manifest_list = manifest_list

    def __repr__(self) -> str:
        return f"Image({self._repo}:{self._tag})"

    @property
    def repo(self) -> str:
        return self._repo

    @property
    def tag(self) -> str:
        return self._tag

    @property
    def manifest_list(self) -> ManifestList:
        return self._manifest_list

    @property
    def platforms(self) -> AbstractSet[Platform]:
        return frozenset(ref.platform for ref in self._manifest_list.manifests)

    def get_platform_image(self, platform: Platform, /) -> PlatformImage:
        manifest = self.fetch_manifest_by_platform(platform)
        config = self._client.get_image_config_blob(self._repo, manifest.config.digest)
        return PlatformImage(digest=manifest.digest, config=config, layers=manifest.layers)

    def get_platform_images(self) -> Iterator[PlatformImage]:
        for platform in self.platforms:
            yield self.get_platform_image(platform)

    def fetch_manifest_by_platform_name(self, platform_name: str, /) -> Manifest:
        ref = _first(ref for ref in self._manifest_list.manifests if ref.platform_name == platform_name)
        if ref is None:
            raise UnavailableImagePlatformError(Platform.from_name(platform_name), _NO_PLATFORM)
        return self._fetch(ref.digest, _NOT_SINGLE)

    def fetch_manifest_by_platform(self, platform: Platform, /) -> Manifest:
        ref = _first(ref for ref in self._manifest_list.manifests if ref.platform == platform)
        if ref is None:
            raise UnavailableImagePlatformError(platform, _NO_PLATFORM)
        return self._fetch(ref.digest, _NOT_SINGLE)

    def fetch_manifest_by_digest(self, digest: str, /) -> Manifest:
        return self._fetch(digest, "The specified digest did not represent a single platform manifest.")

    def _fetch(self, digest: str, message: str) -> Manifest:
        manifest = self._client.get_manifest(self._repo, digest)
        if not isinstance(manifest, Manifest):
            raise UnexpectedImageManifestError(digest, message)
        return manifest


def _first(refs: Iterable[ManifestRef]) -> ManifestRef | None:
    return next(iter(refs), None)
