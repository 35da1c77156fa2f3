"""dreg-client 1.2.0's API over dreg-frames' client: change one import and keep your scripts.

    import dreg_frames.compat.dreg_client as dreg_client

    registry = dreg_client.Registry.build_with_manual_client("https://registry.example.com/v2/")
    registry.repositories()        # {'testns/testrepo': Repository(testns/testrepo), ...}

Same names, signatures, return types and exceptions as dreg-client (``requests.HTTPError`` for
error statuses); underneath, dreg-frames does the HTTP, auth, pagination, OCI media types and
digest verification. The README's "Compatibility with dreg-client" lists where it differs.
"""

from __future__ import annotations

from . import schemas
from .auth_service import AuthService, AuthServiceFailure, DockerTokenAuthService
from .client import Client
from .image import Image, PlatformImage, UnavailableImagePlatformError, UnexpectedImageManifestError
from .manifest import (
    ImageConfig,
    ImageHistoryItem,
    InvalidPlatformNameError,
    LegacyManifest,
    Manifest,
    ManifestList,
    ManifestRef,
    Platform,
    UnusableImageConfigBlobPayloadError,
    UnusableImageConfigBlobResponseError,
    UnusableManifestPayloadError,
    UnusableManifestResponseError,
)
from .registry import Registry
from .repository import LegacyImageRequestError, Repository

# The dreg-client release whose API this module follows.
__version__ = "1.2.0"

__all__ = [
    "AuthService",
    "AuthServiceFailure",
    "Client",
    "DockerTokenAuthService",
    "Image",
    "ImageConfig",
    "ImageHistoryItem",
    "InvalidPlatformNameError",
    "LegacyImageRequestError",
    "LegacyManifest",
    "Manifest",
    "ManifestList",
    "ManifestRef",
    "Platform",
    "PlatformImage",
    "Registry",
    "Repository",
    "UnavailableImagePlatformError",
    "UnexpectedImageManifestError",
    "UnusableImageConfigBlobPayloadError",
    "UnusableImageConfigBlobResponseError",
    "UnusableManifestPayloadError",
    "UnusableManifestResponseError",
    "schemas",
]
