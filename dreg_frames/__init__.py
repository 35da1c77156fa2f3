"""dreg-frames: a container registry client and pandas analytics for registry admins.

Example::

    from dreg_frames import Registry
    registry = Registry.build_with_manual_client("http://127.0.0.1:5000/v2/")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_getattr
from .client import (
    AnyManifest,
    AuthenticationError,
    BadRequest,
    BaseManifest,
    BlobNotFound,
    BuiltImage,
    CatalogUnavailable,
    ContentTooLarge,
    Descriptor,
    DigestMismatch,
    DregError,
    ImageConfig,
    ImageIndex,
    InvalidReference,
    Manifest,
    ManifestError,
    ManifestNotFound,
    NotFound,
    PaginationError,
    PermissionDenied,
    Platform,
    Reference,
    Registry,
    RegistryError,
    Repository,
    RepositoryNotFound,
    SchemaOneManifest,
    ServerError,
    TLSError,
    TooManyRequests,
    Transport,
    TransportError,
    UnsupportedMediaType,
    UnsupportedOperation,
    build_image,
    check_digest,
    check_name,
    check_tag,
    make_layer,
    parse_config,
    parse_manifest,
    parse_reference,
    push_image,
    push_multiarch,
    sha256_digest,
)

# Eager, and after the client: the function must win over the subpackage of the same name.
from .crawl import crawl
from .local_registry import LocalRegistry

if TYPE_CHECKING:
    from .analysis import (
        EcrPolicy,
        EcrRule,
        GitLabPolicy,
        HarborPolicy,
        HarborRule,
        RetentionPolicy,
        blob_references,
        byte_unit,
        duplicates,
        plot_age,
        plot_layer_sharing,
        plot_storage,
        reclaimable,
        stale,
        storage_usage,
    )
    from .crawl import Crawl
    from .delete import execute, plan_delete
    from .demo import load_sample

# The analytics names load pandas and matplotlib; they are imported on first use, so that
# `from dreg_frames import Registry` (the client alone) stays light.
_LAZY = {
    "EcrPolicy": ".analysis",
    "EcrRule": ".analysis",
    "GitLabPolicy": ".analysis",
    "HarborPolicy": ".analysis",
    "HarborRule": ".analysis",
    "RetentionPolicy": ".analysis",
    "blob_references": ".analysis",
    "byte_unit": ".analysis",
    "duplicates": ".analysis",
    "plot_age": ".analysis",
    "plot_layer_sharing": ".analysis",
    "plot_storage": ".analysis",
    "reclaimable": ".analysis",
    "stale": ".analysis",
    "storage_usage": ".analysis",
    "Crawl": ".crawl",
    "execute": ".delete",
    "plan_delete": ".delete",
    "load_sample": ".demo",
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


__all__ = [
    "AnyManifest",
    "AuthenticationError",
    "BadRequest",
    "BaseManifest",
    "BlobNotFound",
    "BuiltImage",
    "CatalogUnavailable",
    "ContentTooLarge",
    "Crawl",
    "Descriptor",
    "DigestMismatch",
    "DregError",
    "EcrPolicy",
    "EcrRule",
    "GitLabPolicy",
    "HarborPolicy",
    "HarborRule",
    "ImageConfig",
    "ImageIndex",
    "InvalidReference",
    "LocalRegistry",
    "Manifest",
    "ManifestError",
    "ManifestNotFound",
    "NotFound",
    "PaginationError",
    "PermissionDenied",
    "Platform",
    "Reference",
    "Registry",
    "RegistryError",
    "Repository",
    "RepositoryNotFound",
    "RetentionPolicy",
    "SchemaOneManifest",
    "ServerError",
    "TLSError",
    "TooManyRequests",
    "Transport",
    "TransportError",
    "UnsupportedMediaType",
    "UnsupportedOperation",
    "blob_references",
    "build_image",
    "byte_unit",
    "check_digest",
    "check_name",
    "check_tag",
    "crawl",
    "duplicates",
    "execute",
    "load_sample",
    "make_layer",
    "parse_config",
    "parse_manifest",
    "parse_reference",
    "plan_delete",
    "plot_age",
    "plot_layer_sharing",
    "plot_storage",
    "push_image",
    "push_multiarch",
    "reclaimable",
    "sha256_digest",
    "stale",
    "storage_usage",
]
