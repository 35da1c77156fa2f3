"""What a manifest is beyond "an image": signatures, attestations, SBOMs, Helm charts, other OCI
artifacts, and which image (its *subject*) a supply-chain artifact belongs to.

The shapes come from the public specs of the tools that push them:

- cosign: tags ``sha256-<hex>.sig`` / ``.att`` / ``.sbom`` beside the image they sign (simplesigning,
  DSSE and SPDX / CycloneDX layers, a zero-time config);
- OCI image spec 1.1: ``artifactType``, ``subject``, the empty config; the distribution spec's
  referrers tag schema, an index at tag ``sha256-<hex>`` listing the referrers of ``sha256:<hex>``;
- docker buildx: attestation manifests in the image index, platform ``unknown/unknown`` and the
  annotations ``vnd.docker.reference.type: attestation-manifest`` and ``vnd.docker.reference.digest``;
- Helm (config ``application/vnd.cncf.helm.config.v1+json``) and Notation
  (``application/vnd.cncf.notary.signature``).

>>> cosign_subject("sha256-" + "a" * 64 + ".sig")
('sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'signature')
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .manifests import Descriptor, Manifest
from .mediatypes import DOCKER_CONFIG, OCI_CONFIG

__all__ = [
    "ARTIFACT_KINDS",
    "ATTESTATION_MANIFEST",
    "CREATED_ANNOTATION",
    "HELM_CONFIG",
    "IMAGE_CONFIG_TYPES",
    "OCI_EMPTY",
    "REFERENCE_DIGEST",
    "REFERENCE_TYPE",
    "REFERRER_KINDS",
    "cosign_subject",
    "created_annotation",
    "kind_of",
    "kind_of_type",
    "tag_schema_subject",
]

CREATED_ANNOTATION = "org.opencontainers.image.created"
REFERENCE_TYPE = "vnd.docker.reference.type"
REFERENCE_DIGEST = "vnd.docker.reference.digest"
ATTESTATION_MANIFEST = "attestation-manifest"

OCI_EMPTY = "application/vnd.oci.empty.v1+json"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
NOTARY_SIGNATURE = "application/vnd.cncf.notary.signature"
COSIGN_SIGNATURE_TYPES = frozenset(
    {"application/vnd.dev.cosign.simplesigning.v1+json", "application/vnd.dev.cosign.artifact.sig.v1+json"}
)
ATTESTATION_TYPES = frozenset(
    {
        "application/vnd.dsse.envelope.v1+json",
        "application/vnd.in-toto+json",
        "application/vnd.dev.cosign.artifact.att.v1+json",
    }
)
SBOM_TYPES = frozenset(
    {
        "text/spdx",
        "text/spdx+json",
        "text/spdx+xml",
        "application/spdx+json",
        "application/vnd.cyclonedx",
        "application/vnd.cyclonedx+json",
        "application/vnd.cyclonedx+xml",
        "application/vnd.dev.cosign.artifact.sbom.v1+json",
        "application/vnd.syft+json",
    }
)
IMAGE_CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})

#: What ``kind`` can say about one manifest (``index`` and ``referrers-index`` for indexes).
ARTIFACT_KINDS = ("image", "signature", "attestation", "sbom", "helm-chart", "artifact")
#: The kinds that belong to another image rather than standing on their own.
REFERRER_KINDS = frozenset({"signature", "attestation", "sbom"})

_COSIGN_TAG = re.compile(r"(sha256)-([a-f0-9]{64})\.(sig|att|sbom)")
_SCHEMA_TAG = re.compile(r"(sha256|sha512)-([a-f0-9]{64}|[a-f0-9]{128})")
_COSIGN_KINDS = {"sig": "signature", "att": "attestation", "sbom": "sbom"}


def cosign_subject(tag: str) -> tuple[str, str] | None:
    """``(subject digest, kind)`` for a cosign tag (``sha256-<hex>.sig|.att|.sbom``), else None."""
    match = _COSIGN_TAG.fullmatch(tag)
    if match is None:
        return None
    return f"{match.group(1)}:{match.group(2)}", _COSIGN_KINDS[match.group(3)]


def tag_schema_subject(tag: str) -> str | None:
    """The subject digest of a referrers tag schema tag (``sha256-<hex>``), else None."""
    match = _SCHEMA_TAG.fullmatch(tag)
    return f"{match.group(1)}:{match.group(2)}" if match else None


def created_annotation(annotations: Mapping[str, str]) -> str | None:
    """``org.opencontainers.image.created`` as Helm, oras and Notation write it, if present."""
    value = annotations.get(CREATED_ANNOTATION)
    return value or None


def kind_of(manifest: Manifest, *, tag: str | None = None, descriptor: Descriptor | None = None) -> str:
    """What an image manifest is: one of :data:`ARTIFACT_KINDS`.

    ``tag`` is the tag it was found under (cosign's suffixes say what its content is), and
    ``descriptor`` the entry of the index that lists it (buildx marks attestations there).
    """
    if descriptor is not None and descriptor.annotations.get(REFERENCE_TYPE) == ATTESTATION_MANIFEST:
        return "attestation"
    config_type = manifest.config.media_type
    artifact_type = manifest.artifact_type or ""
    types = {artifact_type, config_type}
    types.update([layer.media_type for layer in manifest.layers])
    if config_type == HELM_CONFIG or artifact_type == HELM_CONFIG:
        return "helm-chart"
    if NOTARY_SIGNATURE in types or types & COSIGN_SIGNATURE_TYPES:
        return "signature"
    cosign = cosign_subject(tag) if tag else None
    if cosign is not None:
        return cosign[1]
    # (no needle holds a space, so a match in the joined text is a match within one type)
    joined = " ".join(types)
    if types & ATTESTATION_TYPES or "in-toto" in joined:
        return "attestation"
    if types & SBOM_TYPES or "spdx" in joined or "cyclonedx" in joined:
        return "sbom"
    if artifact_type or (config_type and config_type not in IMAGE_CONFIG_TYPES):
        return "artifact"
    return "image"


def kind_of_type(artifact_type: str | None) -> str:
    """The kind an ``artifactType`` alone tells (what a referrers list says of each referrer)."""
    if not artifact_type:
        return "artifact"
    if artifact_type == HELM_CONFIG:
        return "helm-chart"
    if (
        artifact_type == NOTARY_SIGNATURE
        or artifact_type in COSIGN_SIGNATURE_TYPES
        or "signature" in artifact_type
    ):
        return "signature"
    if artifact_type in ATTESTATION_TYPES or "in-toto" in artifact_type or "dsse" in artifact_type:
        return "attestation"
    if artifact_type in SBOM_TYPES or "spdx" in artifact_type or "cyclonedx" in artifact_type:
        return "sbom"
    return "artifact"
