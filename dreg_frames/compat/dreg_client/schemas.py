"""dreg-client's names for the manifest media types (the values come from dreg-frames' mediatypes)."""

from __future__ import annotations

from ...client.mediatypes import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_SCHEMA1,
    DOCKER_SCHEMA1_SIGNED,
    OCI_INDEX,
    OCI_MANIFEST,
)

schema_1 = DOCKER_SCHEMA1
schema_1_signed = DOCKER_SCHEMA1_SIGNED
schema_2 = DOCKER_MANIFEST
schema_2_list = DOCKER_MANIFEST_LIST
# Beyond dreg-client: OCI manifests and indexes are read too (dreg-client asks only for the Docker types).
schema_oci = OCI_MANIFEST
schema_oci_index = OCI_INDEX

legacy_manifest_content_types = frozenset({schema_1, schema_1_signed})
known_manifest_content_types = legacy_manifest_content_types | {
    schema_2,
    schema_2_list,
    schema_oci,
    schema_oci_index,
}

__all__ = [
    "known_manifest_content_types",
    "legacy_manifest_content_types",
    "schema_1",
    "schema_1_signed",
    "schema_2",
    "schema_2_list",
    "schema_oci",
    "schema_oci_index",
]
