"""Media types of the OCI image spec and Docker's registry formats, and the Accept list."""

from __future__ import annotations

__all__ = [
    "ACCEPT_MANIFESTS",
    "DOCKER_CONFIG",
    "DOCKER_LAYER",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "DOCKER_SCHEMA1",
    "DOCKER_SCHEMA1_SIGNED",
    "FOREIGN_LAYER_TYPES",
    "INDEX_TYPES",
    "MANIFEST_TYPES",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_MANIFEST",
    "SCHEMA1_TYPES",
    "short_name",
]

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"

# Layers the registry does not store: a Windows base layer or an OCI non-distributable layer is
# fetched from its ``urls`` (Distribution accepts such manifests only with validation.manifests.urls).
FOREIGN_LAYER_TYPES = frozenset(
    {
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    }
)

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
SCHEMA1_TYPES = frozenset({DOCKER_SCHEMA1_SIGNED, DOCKER_SCHEMA1})

# Order matters: without the index types first the Distribution registry answers with one child
# manifest (and a HEAD with the child's digest), and without the schema2/OCI types it converts to
# schema1 under another digest.
ACCEPT_MANIFESTS = ", ".join(
    [OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST, DOCKER_SCHEMA1_SIGNED, DOCKER_SCHEMA1]
)

_SHORT = {
    OCI_INDEX: "oci-index",
    OCI_MANIFEST: "oci-manifest",
    DOCKER_MANIFEST_LIST: "docker-list",
    DOCKER_MANIFEST: "docker-v2",
    DOCKER_SCHEMA1_SIGNED: "docker-v1",
    DOCKER_SCHEMA1: "docker-v1",
}


def short_name(media_type: str) -> str:
    """A short label for tables: ``"oci-index"``, ``"docker-v2"``; unknown types unchanged."""
    return _SHORT.get(media_type, media_type)
