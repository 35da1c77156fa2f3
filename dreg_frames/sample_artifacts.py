"""Supply-chain content for the sample registry: what signing and packaging tools add beside images.

The demo registry gets, after its images (``data/sample-registry.json``, key ``artifacts``):

- ``cosign-signature``: a cosign signature at ``sha256-<hex>.sig`` beside an image (simplesigning
  layer with its signature annotation, cosign's zero-time config);
- ``sbom``: an OCI 1.1 SBOM artifact (``artifactType`` ``application/spdx+json``, the 2-byte empty
  config, ``subject``) listed in the referrers tag schema index at ``sha256-<hex>``;
- ``helm-chart``: a Helm chart (config ``application/vnd.cncf.helm.config.v1+json``, the chart
  ``.tgz`` layer, dated by ``org.opencontainers.image.created``).

The JSON is written after the tools' public specs; signatures are placeholders, not verifiable.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
from typing import Any

from .client.artifacts import CREATED_ANNOTATION, HELM_CONFIG, OCI_EMPTY
from .client.errors import DregError
from .client.mediatypes import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST
from .client.registry import Registry
from .client.repository import Repository

__all__ = ["seed_artifacts"]

_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=False).encode()


def _descriptor(repo: Repository, data: bytes, media_type: str, **extra: Any) -> dict[str, Any]:
    blob = repo.push_blob(data)
    return {"mediaType": media_type, "digest": blob.digest, "size": blob.size, **extra}


def _put(
    repo: Repository, reference: str, manifest: dict[str, Any], media_type: str = OCI_MANIFEST
) -> dict[str, Any]:
    body = _compact(manifest)
    digest = repo.put_manifest(reference, body, media_type)
    return {"mediaType": media_type, "digest": digest, "size": len(body)}


def _cosign_signature(repo: Repository, subject: str) -> None:
    payload = _compact(
        {
            "critical": {
                "identity": {"docker-reference": repo.name},
                "image": {"docker-manifest-digest": subject},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
    )
    layer = _descriptor(
        repo,
        payload,
        _SIMPLESIGNING,
        annotations={
            "dev.cosignproject.cosign/signature": base64.b64encode(hashlib.sha512(payload).digest()).decode()
        },
    )
    config = _compact(
        {
            "architecture": "",
            "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"}],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
            "config": {},
        }
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": _descriptor(repo, config, OCI_CONFIG),
        "layers": [layer],
    }
    _put(repo, f"sha256-{subject.split(':', 1)[1]}.sig", manifest)


def _sbom(repo: Repository, subject: str, created: str) -> None:
    subject_descriptor = _subject_descriptor(repo, subject)
    document = _compact({"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": repo.name})
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/spdx+json",
        "config": {**_descriptor(repo, b"{}", OCI_EMPTY), "data": "e30="},
        "layers": [_descriptor(repo, document, "application/spdx+json")],
        "subject": subject_descriptor,
        "annotations": {CREATED_ANNOTATION: created},
    }
    # untagged, as referrers are: pushed by digest, found through the tag schema index
    pushed = _put(repo, "sha256:" + hashlib.sha256(_compact(manifest)).hexdigest(), manifest)
    entry = {**pushed, "artifactType": "application/spdx+json", "annotations": {CREATED_ANNOTATION: created}}
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}
    _put(repo, f"sha256-{subject.split(':', 1)[1]}", index, OCI_INDEX)


def _subject_descriptor(repo: Repository, digest: str) -> dict[str, Any]:
    body, content_type, actual = repo.get_manifest_bytes(digest)
    return {"mediaType": content_type.split(";")[0], "digest": actual, "size": len(body)}


def _helm_chart(repo: Repository, tag: str, created: str) -> None:
    name = repo.name.rsplit("/", 1)[-1]
    chart = {"apiVersion": "v2", "name": name, "version": tag, "type": "application"}
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        data = f"apiVersion: v2\nname: {name}\nversion: {tag}\n".encode()
        info = tarfile.TarInfo(f"{name}/Chart.yaml")
        info.size, info.mtime = len(data), 1_700_000_000
        tar.addfile(info, io.BytesIO(data))
    # gzip stamps the time it compresses at: a fixed mtime keeps the demo's digests the same every run
    chart_tgz = gzip.compress(archive.getvalue(), mtime=0)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": _descriptor(repo, _compact(chart), HELM_CONFIG),
        "layers": [_descriptor(repo, chart_tgz, "application/vnd.cncf.helm.chart.content.v1.tar+gzip")],
        "annotations": {CREATED_ANNOTATION: created, "org.opencontainers.image.title": name},
    }
    _put(repo, tag, manifest)


def seed_artifacts(registry: Registry, artifacts: list[dict[str, Any]]) -> None:
    """Push the sample's supply-chain artifacts (see the module docstring for the kinds)."""
    for item in artifacts:
        repo = registry.repository(item["repository"])
        kind = item.get("kind")
        if kind in ("cosign-signature", "sbom"):
            subject = repo.check_manifest(item["subject_tag"])
            if subject is None:
                raise DregError(f"sample artifact: {item['repository']}:{item['subject_tag']} is not there")
            if kind == "cosign-signature":
                _cosign_signature(repo, subject)
            else:
                _sbom(repo, subject, item["created"])
        elif kind == "helm-chart":
            _helm_chart(repo, item["tag"], item["created"])
        else:
            raise DregError(f"sample artifact of unknown kind {kind!r}")
