"""Registry content as other tools push it, built from their public specs, for tests.

Each ``push_*`` function writes one shape into a real registry through a
:class:`dreg_frames.Repository` and returns what a test needs to check frames against: the exact
manifest bytes (so ``sha256(raw) == digest``), the tags, and the size of every blob it stored.
The JSON is written here field by field after the specs, never copied from the tools:

- cosign (sigstore/cosign ``specs/SIGNATURE_SPEC.md``, ``ATTESTATION_SPEC.md``, ``SBOM_SPEC.md``):
  tags ``sha256-<hex>.sig|.att|.sbom``, the zero-time config cosign's image library writes.
- OCI image spec 1.1 artifacts (``artifactType``, ``subject``, the 2-byte empty config) and the
  distribution spec's referrers tag schema (an index at ``sha256-<hex>``), since Distribution 2.8
  has no referrers API.
- buildx attestation storage (BuildKit ``docs/attestations/attestation-storage.md``).
- Helm charts (config ``application/vnd.cncf.helm.config.v1+json``, chart ``.tgz`` layer).
- Notation signatures (notaryproject ``signature-specification.md``).
- Windows images with foreign / non-distributable base layers that carry ``urls``.
- nested indexes, odd ``created`` dates, zero-layer manifests.
- content pushed by tools nobody here wrote: ``skopeo copy`` from an OCI layout, and ``oras``.

Go tools (cosign, buildx, Helm, Notation, oras-go) marshal JSON compactly with struct field order
and sorted map keys; Docker pretty-prints with three spaces. :func:`go_json` and
:func:`docker_json` reproduce those byte layouts so digests behave as they do in the wild.

Example::

    image = push_ordinary(registry.repository("team/app")).images["v1"]
    cos = push_cosign(registry.repository("team/app"), image)
    cos.signature.tags   # ('sha256-<hex>.sig',)
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from dreg_frames import (
    BaseManifest,
    LocalRegistry,
    Repository,
    build_image,
    make_layer,
    push_image,
    push_multiarch,
    sha256_digest,
)
from dreg_frames.local_registry import find_registry_binary

# -- media types and fixed values from the specs ---------------------------------------------------
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
IN_TOTO_PREDICATE_ANNOTATION = "in-toto.io/predicate-type"
SPDX_JSON = "text/spdx+json"
CYCLONEDX_JSON = "application/vnd.cyclonedx+json"
SLSA_PROVENANCE_02 = "https://slsa.dev/provenance/v0.2"
SPDX_PREDICATE = "https://spdx.dev/Document"
DOCKER_REFERENCE_TYPE = "vnd.docker.reference.type"
DOCKER_REFERENCE_DIGEST = "vnd.docker.reference.digest"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
HELM_PROVENANCE = "application/vnd.cncf.helm.chart.provenance.v1.prov"
NOTARY_SIGNATURE = "application/vnd.cncf.notary.signature"
NOTARY_THUMBPRINT = "io.cncf.notary.x509chain.thumbprint#S256"
JOSE = "application/jose+json"
COSE = "application/cose"
CREATED_ANNOTATION = "org.opencontainers.image.created"
TITLE_ANNOTATION = "org.opencontainers.image.title"

#: The OCI empty descriptor: the two bytes ``{}``.
EMPTY_JSON = b"{}"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
EMPTY_DESCRIPTOR: Mapping[str, Any] = {
    "mediaType": OCI_EMPTY,
    "digest": EMPTY_DIGEST,
    "size": 2,
    "data": "e30=",
}

#: ``extra=`` for :class:`LocalRegistry`: Distribution refuses manifests whose layers carry
#: ``urls`` (foreign / non-distributable) unless they match an allow rule.
URLS_ALLOWED: Mapping[str, Any] = {"validation": {"manifests": {"urls": {"allow": ["^https?://"]}}}}

#: Windows Server releases as their ``os.version`` says (build 17763 is ltsc2019, 20348 ltsc2022).
WINDOWS_VERSIONS: Mapping[str, str] = {"ltsc2019": "10.0.17763.5329", "ltsc2022": "10.0.20348.2227"}

FIXED_CREATED = "2024-05-01T12:00:00Z"


def go_json(value: Any) -> bytes:
    """Compact JSON as Go's ``json.Marshal`` writes it (dict order = struct field order)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def docker_json(value: Any) -> bytes:
    """JSON as the docker CLI pushes schema2 manifests: three-space indent."""
    return json.dumps(value, indent=3).encode()


def tag_for_digest(digest: str, suffix: str = "") -> str:
    """``sha256:abc`` -> ``sha256-abc`` + suffix: cosign's and the referrers tag schema's tag."""
    algorithm, encoded = digest.split(":", 1)
    return f"{algorithm[:32]}-{encoded[:64]}{suffix}"


# -- built content ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Content:
    """A manifest or index built in memory: its exact bytes and everything it needs stored first.

    ``blobs`` are the config and layer bytes the registry stores (digest -> bytes); ``foreign`` the
    layers declared with ``urls`` and never uploaded (digest -> declared size); ``children`` the
    manifests an index lists, pushed before it.
    """

    raw: bytes
    media_type: str
    blobs: Mapping[str, bytes] = field(default_factory=dict)
    foreign: Mapping[str, int] = field(default_factory=dict)
    children: tuple[Content, ...] = ()

    @cached_property
    def digest(self) -> str:
        # cached: big generated graphs ask for the digest of the same content many times
        return sha256_digest(self.raw)

    @property
    def size(self) -> int:
        return len(self.raw)

    @property
    def json(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.raw)
        return loaded

    @property
    def blob_sizes(self) -> dict[str, int]:
        """Stored blobs this manifest references directly (config and layers): digest -> size."""
        return {digest: len(data) for digest, data in self.blobs.items()}

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        """An OCI descriptor of this manifest (``mediaType``, ``digest``, ``size``, then ``extra``)."""
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}

    def walk(self) -> Iterator[Content]:
        """This manifest and every manifest below it, depth first, parents before children."""
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(frozen=True)
class Pushed:
    """A :class:`Content` as stored in one repository, with the tags that point at it."""

    repository: str
    content: Content
    tags: tuple[str, ...] = ()

    @property
    def digest(self) -> str:
        return self.content.digest

    @property
    def raw(self) -> bytes:
        return self.content.raw

    @property
    def media_type(self) -> str:
        return self.content.media_type

    @property
    def size(self) -> int:
        return self.content.size

    @property
    def json(self) -> dict[str, Any]:
        return self.content.json

    @property
    def blob_sizes(self) -> dict[str, int]:
        return self.content.blob_sizes

    @property
    def foreign(self) -> Mapping[str, int]:
        return self.content.foreign

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return self.content.descriptor(**extra)

    def stored(self) -> dict[str, int]:
        """Every blob the registry keeps for this manifest and its children, manifests included."""
        return stored_sizes([self.content])


def stored_sizes(contents: Sequence[Content]) -> dict[str, int]:
    """digest -> size of every blob a registry stores for ``contents`` (manifests, configs, layers;
    foreign layers excluded), each digest once: what ``blob_store_bytes`` should find on disk."""
    sizes: dict[str, int] = {}
    for top in contents:
        for content in top.walk():
            sizes[content.digest] = content.size
            sizes.update(content.blob_sizes)
    return sizes


def _layer(media_type: str, data: bytes, annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data)}
    if annotations:
        entry["annotations"] = dict(sorted(annotations.items()))
    return entry


def oci_manifest(
    config_media_type: str,
    config: bytes,
    layers: Sequence[tuple[str, bytes, Mapping[str, str] | None]] = (),
    *,
    artifact_type: str | None = None,
    subject: Mapping[str, Any] | None = None,
    annotations: Mapping[str, str] | None = None,
    media_type_field: bool = True,
    empty_config_data: bool = False,
    raw_layers: Sequence[Mapping[str, Any]] = (),
) -> Content:
    """An OCI image manifest in image-spec field order (schemaVersion, mediaType, artifactType,
    config, layers, subject, annotations). ``layers`` are ``(media_type, bytes, annotations)``;
    ``raw_layers`` are ready descriptors placed first (base layers); those with ``urls`` are
    foreign (never pushed), others must already be among the blobs (the empty descriptor).
    ``media_type_field=False`` leaves ``mediaType`` out, as the OCI spec allows and older Helm did.
    """
    body: dict[str, Any] = {"schemaVersion": 2}
    if media_type_field:
        body["mediaType"] = OCI_MANIFEST
    if artifact_type is not None:
        body["artifactType"] = artifact_type
    config_descriptor: dict[str, Any] = {
        "mediaType": config_media_type,
        "digest": sha256_digest(config),
        "size": len(config),
    }
    if empty_config_data:
        config_descriptor["data"] = base64.b64encode(config).decode()
    body["config"] = config_descriptor
    body["layers"] = [dict(d) for d in raw_layers] + [_layer(mt, data, ann) for mt, data, ann in layers]
    if subject is not None:
        body["subject"] = dict(subject)
    if annotations:
        body["annotations"] = dict(sorted(annotations.items()))
    blobs = {sha256_digest(config): config}
    blobs.update({sha256_digest(data): data for _, data, _ in layers})
    foreign = {str(d["digest"]): int(d["size"]) for d in raw_layers if d.get("urls")}
    return Content(go_json(body), OCI_MANIFEST, blobs, foreign)


def oci_index(
    children: Sequence[tuple[Content, Mapping[str, Any]]],
    *,
    annotations: Mapping[str, str] | None = None,
    artifact_type: str | None = None,
    subject: Mapping[str, Any] | None = None,
) -> Content:
    """An OCI index over ``children``; each comes with the extra descriptor fields it gets
    (``platform``, ``annotations``, ``artifactType``), in the Go descriptor's field order."""
    order = ("annotations", "platform", "artifactType")
    entries = []
    for child, extra in children:
        entry = child.descriptor()
        for key in order:
            if key in extra:
                entry[key] = extra[key]
        entries.append(entry)
    body: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX}
    if artifact_type is not None:
        body["artifactType"] = artifact_type
    body["manifests"] = entries
    if subject is not None:
        body["subject"] = dict(subject)
    if annotations:
        body["annotations"] = dict(sorted(annotations.items()))
    return Content(go_json(body), OCI_INDEX, children=tuple(child for child, _ in children))


def platform_json(platform: str, os_version: str | None = None) -> dict[str, str]:
    """``"linux/arm64/v8"`` as an image-spec ``platform`` object (architecture, os, os.version, variant)."""
    parts = platform.split("/")
    out = {"architecture": parts[1], "os": parts[0]}
    if os_version:
        out["os.version"] = os_version
    if len(parts) == 3:
        out["variant"] = parts[2]
    return out


def image_content(
    layers: Sequence[bytes],
    *,
    created: str | None = FIXED_CREATED,
    platform: str = "linux/amd64",
    oci: bool = False,
    labels: Mapping[str, str] | None = None,
) -> Content:
    """An ordinary image as :func:`dreg_frames.build_image` makes it (what ``push_image`` pushes)."""
    built = build_image(layers, created=created, platform=platform, oci=oci, labels=labels)
    blobs = {sha256_digest(built.config): built.config}
    blobs.update({sha256_digest(layer): layer for layer in built.layers})
    return Content(built.manifest, built.media_type, blobs)


def push_content(repo: Repository, content: Content, tags: Sequence[str] = ()) -> Pushed:
    """Push ``content`` (children, then blobs, then the manifest by digest) and tag it."""
    for child in content.children:
        push_content(repo, child)
    for data in content.blobs.values():
        repo.push_blob(data)
    digest = repo.put_manifest(content.digest, content.raw, content.media_type)
    assert digest == content.digest
    for tag in tags:
        repo.put_manifest(tag, content.raw, content.media_type)
    return Pushed(repo.name, content, tuple(tags))


def _subject(subject: Pushed | Content | BaseManifest | Mapping[str, Any]) -> dict[str, Any]:
    """The OCI descriptor of a subject given as what we pushed, a client manifest or a descriptor."""
    if isinstance(subject, (Pushed, Content)):
        return subject.descriptor()
    if isinstance(subject, BaseManifest):
        return {"mediaType": subject.media_type, "digest": subject.digest, "size": len(subject.raw)}
    return {"mediaType": subject["mediaType"], "digest": subject["digest"], "size": subject["size"]}


def _subject_digest(subject: Pushed | Content | BaseManifest | Mapping[str, Any] | str) -> str:
    return subject if isinstance(subject, str) else str(_subject(subject)["digest"])


# -- 1. ordinary images ----------------------------------------------------------------------------
@dataclass(frozen=True)
class OrdinaryImages:
    """Docker and OCI, single and multi-arch images in one repository, all on one base layer.

    ``images`` by tag (``v1`` and ``latest`` are the same digest); ``base_layer`` digest -> size.
    """

    images: Mapping[str, Pushed]
    base_layer: tuple[str, int]


def push_ordinary(repo: Repository, *, seed: str = "") -> OrdinaryImages:
    """Push the everyday images with the project's own push API (``push_image``/``push_multiarch``).

    Tags: ``v1`` and ``latest`` (Docker schema2, one digest), ``oci`` (OCI manifest), ``multi``
    (Docker manifest list, amd64 + arm64/v8), ``oci-multi`` (OCI index, amd64 + arm/v7).
    ``seed`` changes the content so two calls give different digests.
    """
    base = make_layer({"etc/os-release": f"base {seed}".encode() * 50})
    app = make_layer({"app/bin": f"app {seed}".encode() * 20})
    arm = make_layer({"app/bin": f"arm {seed}".encode() * 20})
    images: dict[str, Pushed] = {}

    docker = push_image(repo, [base, app], ["v1", "latest"], created="2024-01-02T03:04:05Z")
    content = image_content([base, app], created="2024-01-02T03:04:05Z")
    assert content.digest == docker.digest
    images["v1"] = images["latest"] = Pushed(repo.name, content, ("v1", "latest"))

    oci = push_image(repo, [base, app], ["oci"], created="2024-02-03T04:05:06Z", oci=True)
    content = image_content([base, app], created="2024-02-03T04:05:06Z", oci=True)
    assert content.digest == oci.digest
    images["oci"] = Pushed(repo.name, content, ("oci",))

    for tag, is_oci, second in (("multi", False, "linux/arm64/v8"), ("oci-multi", True, "linux/arm/v7")):
        created = "2024-03-04T05:06:07Z"
        index = push_multiarch(
            repo, {"linux/amd64": [base, app], second: [base, arm]}, [tag], created=created, oci=is_oci
        )
        children = (
            image_content([base, app], created=created, platform="linux/amd64", oci=is_oci),
            image_content([base, arm], created=created, platform=second, oci=is_oci),
        )
        content = Content(index.raw, index.media_type, children=children)
        assert [c.digest for c in children] == [d.digest for d in index.manifests]
        images[tag] = Pushed(repo.name, content, (tag,))
    return OrdinaryImages(images, (sha256_digest(base), len(base)))


@dataclass(frozen=True)
class SharedBase:
    """One image per repository, all on the same base layer (mounted, not uploaded, after the first)."""

    base_layer: tuple[str, int]
    images: Mapping[str, Pushed]  # repository name -> image
    mounted: Mapping[str, bool]  # repository name -> whether the cross-repository mount succeeded


def push_shared_base(repos: Sequence[Repository], *, tag: str = "v1", base_size: int = 4096) -> SharedBase:
    """The base layer is uploaded to ``repos[0]`` and mounted into the others; each repository gets
    its own top layer, so the base is the only blob shared across repositories."""
    base = make_layer({"base/data": b"shared-base-" * (base_size // 12 + 1)})
    images: dict[str, Pushed] = {}
    mounted: dict[str, bool] = {}
    for i, repo in enumerate(repos):
        if i:
            mounted[repo.name] = repo.mount_blob(sha256_digest(base), repos[0])
        top = make_layer({"app/name": repo.name.encode()})
        content = image_content([base, top], created=f"2024-04-{i % 28 + 1:02d}T00:00:00Z")
        images[repo.name] = push_content(repo, content, [tag])
    return SharedBase((sha256_digest(base), len(base)), images, mounted)


# -- 2. cosign -------------------------------------------------------------------------------------
def cosign_config(layers: Sequence[bytes]) -> bytes:
    """The config cosign's image library writes: zero time, empty os/architecture, one diff_id per
    (uncompressed) payload layer, in go-containerregistry's ConfigFile field order."""
    return go_json(
        {
            "architecture": "",
            "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"}],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(layer) for layer in layers]},
            "config": {},
        }
    )


def _fake_signature(*parts: str) -> str:
    # Not a real ECDSA signature: what matters to a registry is its shape (base64 in an annotation).
    return base64.b64encode(sha256_digest("|".join(parts).encode()).encode()[:64]).decode()


@dataclass(frozen=True)
class CosignSet:
    """cosign's three tags next to a subject: ``.sig`` (simple signing), ``.att`` (DSSE in-toto
    attestation), ``.sbom`` (SPDX or CycloneDX document); ``payloads`` the layer bytes by tag."""

    subject_digest: str
    signature: Pushed
    attestation: Pushed
    sbom: Pushed
    payloads: Mapping[str, tuple[bytes, ...]]

    @property
    def all(self) -> tuple[Pushed, ...]:
        return (self.signature, self.attestation, self.sbom)


def push_cosign(
    repo: Repository,
    subject: Pushed | Content | BaseManifest | Mapping[str, Any] | str,
    *,
    signatures: int = 1,
    sbom_format: str = "spdx",
    predicate_type: str = SLSA_PROVENANCE_02,
) -> CosignSet:
    """Sign, attest and attach an SBOM to ``subject`` (a digest or anything with one) as cosign does.

    ``signatures`` > 1 puts several simple-signing layers in one ``.sig`` manifest, as repeated
    ``cosign sign`` runs do.
    """
    digest = _subject_digest(subject)
    reference = repo.name
    sig_layers = []
    sig_payloads = []
    for i in range(signatures):
        payload = go_json(
            {
                "critical": {
                    "identity": {"docker-reference": reference},
                    "image": {"docker-manifest-digest": digest},
                    "type": "cosign container image signature",
                },
                "optional": {"signer": f"key-{i}"} if i else None,
            }
        )
        sig_payloads.append(payload)
        sig_layers.append(
            (COSIGN_SIMPLESIGNING, payload, {COSIGN_SIGNATURE_ANNOTATION: _fake_signature(digest, str(i))})
        )
    signature = push_content(
        repo,
        oci_manifest(OCI_CONFIG, cosign_config(sig_payloads), sig_layers),
        [tag_for_digest(digest, ".sig")],
    )

    statement = go_json(
        {
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": predicate_type,
            "subject": [{"name": reference, "digest": {"sha256": digest.split(":", 1)[1]}}],
            "predicate": {"builder": {"id": "https://example.invalid/builder"}, "buildType": "test"},
        }
    )
    envelope = go_json(
        {
            "payloadType": IN_TOTO,
            "payload": base64.b64encode(statement).decode(),
            "signatures": [{"keyid": "", "sig": _fake_signature(digest, "att")}],
        }
    )
    attestation = push_content(
        repo,
        oci_manifest(
            OCI_CONFIG,
            cosign_config([envelope]),
            [(DSSE_ENVELOPE, envelope, {COSIGN_SIGNATURE_ANNOTATION: "", "predicateType": predicate_type})],
        ),
        [tag_for_digest(digest, ".att")],
    )

    if sbom_format == "spdx":
        sbom_type = SPDX_JSON
        document = go_json(
            {
                "spdxVersion": "SPDX-2.3",
                "dataLicense": "CC0-1.0",
                "SPDXID": "SPDXRef-DOCUMENT",
                "name": reference,
                "packages": [{"SPDXID": "SPDXRef-Package-busybox", "name": "busybox", "versionInfo": "1.36"}],
            }
        )
    elif sbom_format == "cyclonedx":
        sbom_type = CYCLONEDX_JSON
        document = go_json(
            {
                "bomFormat": "CycloneDX",
                "specVersion": "1.5",
                "version": 1,
                "components": [{"type": "library", "name": "busybox", "version": "1.36"}],
            }
        )
    else:
        raise ValueError(f"sbom_format must be 'spdx' or 'cyclonedx', got {sbom_format!r}")
    sbom = push_content(
        repo,
        oci_manifest(OCI_CONFIG, cosign_config([document]), [(sbom_type, document, None)]),
        [tag_for_digest(digest, ".sbom")],
    )
    payloads = {
        signature.tags[0]: tuple(sig_payloads),
        attestation.tags[0]: (envelope,),
        sbom.tags[0]: (document,),
    }
    return CosignSet(digest, signature, attestation, sbom, payloads)


# -- 3. OCI 1.1 artifacts and the referrers tag schema ---------------------------------------------
def artifact_content(
    subject: Pushed | Content | BaseManifest | Mapping[str, Any] | None,
    artifact_type: str,
    files: Sequence[tuple[str, bytes, Mapping[str, str] | None]] = (),
    *,
    annotations: Mapping[str, str] | None = None,
    empty_layer: bool = False,
) -> Content:
    """An OCI 1.1 artifact: ``artifactType``, the empty config (with its ``data``), ``files`` as
    layers (``layers: []`` when there are none, or the empty descriptor as sole layer when
    ``empty_layer``, the spec's portable choice), and ``subject`` when given."""
    # The empty blob is the config too, so the empty layer descriptor needs no blob of its own.
    empty = [EMPTY_DESCRIPTOR] if empty_layer and not files else []
    return oci_manifest(
        OCI_EMPTY,
        EMPTY_JSON,
        files,
        artifact_type=artifact_type,
        subject=_subject(subject) if subject is not None else None,
        annotations=annotations,
        empty_config_data=True,
        raw_layers=empty,
    )


def push_oci_artifact(
    repo: Repository,
    subject: Pushed | Content | BaseManifest | Mapping[str, Any] | None,
    artifact_type: str,
    files: Sequence[tuple[str, bytes, Mapping[str, str] | None]] = (),
    *,
    annotations: Mapping[str, str] | None = None,
    empty_layer: bool = False,
    tags: Sequence[str] = (),
) -> Pushed:
    """Push :func:`artifact_content` (untagged unless ``tags``: referrers usually are)."""
    content = artifact_content(
        subject, artifact_type, files, annotations=annotations, empty_layer=empty_layer
    )
    return push_content(repo, content, tags)


def referrer_descriptor(referrer: Pushed | Content) -> dict[str, Any]:
    """How the referrers API (and its tag schema) lists a referrer: its descriptor with
    ``artifactType`` (the manifest's, else its config media type) and its annotations."""
    body = referrer.json
    artifact_type = body.get("artifactType") or body.get("config", {}).get("mediaType")
    extra: dict[str, Any] = {}
    if body.get("annotations"):
        extra["annotations"] = body["annotations"]
    extra["artifactType"] = artifact_type
    return referrer.descriptor(**extra)


def push_referrers_tag(
    repo: Repository,
    subject: Pushed | Content | BaseManifest | Mapping[str, Any],
    referrers: Sequence[Pushed],
) -> Pushed:
    """The referrers tag schema: an OCI index at tag ``sha256-<hex of subject>`` listing ``referrers``
    (a client's fallback when the registry, like Distribution 2.8, has no referrers API)."""
    digest = _subject_digest(subject)
    entries = [referrer_descriptor(r) for r in referrers]
    body = go_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    content = Content(body, OCI_INDEX, children=tuple(r.content for r in referrers))
    return push_content(repo, content, [tag_for_digest(digest)])


@dataclass(frozen=True)
class Referrers:
    """OCI 1.1 referrers of one subject and the referrers-tag index listing all of them."""

    subject_digest: str
    sbom: Pushed  # artifactType application/spdx+json, one file
    signature: Pushed  # a signature-like artifact with ``layers: []``
    empty_layer: Pushed  # an artifact whose sole layer is the empty descriptor
    notation: Pushed  # a Notation signature (config media type style)
    index: Pushed  # tag sha256-<hex>

    @property
    def referrers(self) -> tuple[Pushed, ...]:
        return (self.sbom, self.signature, self.empty_layer, self.notation)


def push_referrers(
    repo: Repository, subject: Pushed | Content | BaseManifest | Mapping[str, Any]
) -> Referrers:
    """Attach four OCI 1.1 referrers to ``subject`` and write the referrers tag index over them."""
    sbom_doc = go_json({"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": "referrer-sbom"})
    sbom = push_oci_artifact(
        repo,
        subject,
        "application/spdx+json",
        [("application/spdx+json", sbom_doc, {TITLE_ANNOTATION: "sbom.spdx.json"})],
        annotations={CREATED_ANNOTATION: FIXED_CREATED},
    )
    signature = push_oci_artifact(
        repo,
        subject,
        "application/vnd.example.signature.v1",
        annotations={"com.example.signature": _fake_signature(_subject_digest(subject), "empty")},
    )
    empty = push_oci_artifact(repo, subject, "application/vnd.example.marker.v1", empty_layer=True)
    notation = push_notation_signature(repo, subject)
    index = push_referrers_tag(repo, subject, [sbom, signature, empty, notation])
    return Referrers(_subject_digest(subject), sbom, signature, empty, notation, index)


# -- 4. buildx attestations ------------------------------------------------------------------------
@dataclass(frozen=True)
class BuildxImage:
    """A buildx index: one image per platform, then one attestation manifest per image."""

    index: Pushed
    platforms: Mapping[str, Content]  # "linux/amd64" -> image manifest
    attestations: Mapping[str, Content]  # "linux/amd64" -> its attestation manifest (unknown/unknown)


def push_buildx(
    repo: Repository,
    tag: str = "buildx",
    platforms: Sequence[str] = ("linux/amd64", "linux/arm64"),
    *,
    created: str = FIXED_CREATED,
) -> BuildxImage:
    """``docker buildx build --provenance=true --sbom=true --platform ... --push`` as stored."""
    base = make_layer({"etc/os-release": b"buildx base\n" * 40})
    images: dict[str, Content] = {}
    attestations: dict[str, Content] = {}
    entries: list[tuple[Content, Mapping[str, Any]]] = []
    for platform in platforms:
        own = make_layer({"app": platform.encode() * 30})
        images[platform] = image_content([base, own], created=created, platform=platform, oci=True)
    for platform, image in images.items():
        statements = []
        for predicate_type, predicate in (
            (SLSA_PROVENANCE_02, {"builder": {"id": ""}, "buildType": "https://mobyproject.org/buildkit@v1"}),
            (SPDX_PREDICATE, {"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": "sbom"}),
        ):
            statement = go_json(
                {
                    "_type": "https://in-toto.io/Statement/v0.1",
                    "predicateType": predicate_type,
                    "subject": [
                        {
                            "name": f"pkg:docker/{repo.name}@{tag}?platform={platform.replace('/', '%2F')}",
                            "digest": {"sha256": image.digest.split(":", 1)[1]},
                        }
                    ],
                    "predicate": predicate,
                }
            )
            statements.append((IN_TOTO, statement, {IN_TOTO_PREDICATE_ANNOTATION: predicate_type}))
        config = go_json(
            {
                "architecture": "unknown",
                "os": "unknown",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": [sha256_digest(s[1]) for s in statements]},
            }
        )
        attestations[platform] = oci_manifest(OCI_CONFIG, config, statements)
    for platform, image in images.items():
        entries.append((image, {"platform": platform_json(platform)}))
    for platform, attestation in attestations.items():
        annotations = {
            DOCKER_REFERENCE_DIGEST: images[platform].digest,
            DOCKER_REFERENCE_TYPE: "attestation-manifest",
        }
        entries.append(
            (
                attestation,
                {"annotations": annotations, "platform": {"architecture": "unknown", "os": "unknown"}},
            )
        )
    index = push_content(repo, oci_index(entries), [tag])
    return BuildxImage(index, images, attestations)


# -- 5. Helm ---------------------------------------------------------------------------------------
def helm_chart_tgz(name: str, version: str, *, app_version: str = "1.16.0", mtime: int = 1714564800) -> bytes:
    """A real ``helm package`` style archive: ``<name>/Chart.yaml``, ``values.yaml``, a template."""
    files = {
        f"{name}/Chart.yaml": (
            f"apiVersion: v2\nname: {name}\ndescription: A tiny chart for tests\ntype: application\n"
            f'version: {version}\nappVersion: "{app_version}"\n'
        ).encode(),
        f"{name}/values.yaml": b"replicaCount: 1\nmessage: hello\n",
        f"{name}/templates/configmap.yaml": (
            b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\n"
            b"data:\n  message: {{ .Values.message | quote }}\n"
        ),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = mtime
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), mtime=mtime)


@dataclass(frozen=True)
class HelmChart:
    """A pushed chart: the manifest, the Chart.yaml-as-JSON config and the ``.tgz`` layer bytes."""

    pushed: Pushed
    config: bytes
    chart: bytes


def push_helm_chart(
    repo: Repository,
    name: str = "mychart",
    version: str = "0.1.0",
    *,
    created: str = FIXED_CREATED,
    media_type_field: bool = True,
    provenance: bool = False,
) -> HelmChart:
    """``helm push <name>-<version>.tgz oci://...``: tag = chart version; the config is Chart.yaml
    as JSON (Helm's Metadata field order, no created/os), ``created`` only in the manifest
    annotations. ``media_type_field=False`` writes the manifest without ``mediaType`` as Helm
    before 3.13 did; ``provenance`` adds the ``.prov`` layer ``helm package --sign`` makes."""
    config = go_json(
        {
            "name": name,
            "version": version,
            "description": "A tiny chart for tests",
            "apiVersion": "v2",
            "appVersion": "1.16.0",
            "type": "application",
        }
    )
    chart = helm_chart_tgz(name, version)
    layers: list[tuple[str, bytes, Mapping[str, str] | None]] = [(HELM_CHART, chart, None)]
    if provenance:
        prov = f"-----BEGIN PGP SIGNED MESSAGE-----\nname: {name}\nversion: {version}\n".encode()
        layers.append((HELM_PROVENANCE, prov, None))
    annotations = {
        CREATED_ANNOTATION: created,
        "org.opencontainers.image.description": "A tiny chart for tests",
        TITLE_ANNOTATION: name,
        "org.opencontainers.image.version": version,
    }
    content = oci_manifest(
        HELM_CONFIG, config, layers, annotations=annotations, media_type_field=media_type_field
    )
    # Helm tags with the chart version; "+" is not allowed in tags, so Helm writes "_".
    pushed = push_content(repo, content, [version.replace("+", "_")])
    return HelmChart(pushed, config, chart)


# -- 6. Notation -----------------------------------------------------------------------------------
def push_notation_signature(
    repo: Repository,
    subject: Pushed | Content | BaseManifest | Mapping[str, Any],
    *,
    envelope: str = "jose",
    artifact_type_field: bool = False,
    created: str = FIXED_CREATED,
) -> Pushed:
    """A Notation signature of ``subject`` (untagged; found through the referrers tag index).

    Notation 1.x (the default) marks the signature with the config media type
    ``application/vnd.cncf.notary.signature`` over the 2-byte ``{}`` and writes no
    ``artifactType``; ``artifact_type_field=True`` gives the image-spec 1.1 form the Notary spec
    adopted later (``artifactType`` set, config ``application/vnd.oci.empty.v1+json``).
    """
    descriptor = _subject(subject)
    if envelope == "jose":
        payload = go_json({"targetArtifact": descriptor})
        protected = base64.urlsafe_b64encode(
            go_json({"alg": "PS256", "cty": "application/vnd.cncf.notary.payload.v1+json"})
        )
        blob = go_json(
            {
                "payload": base64.urlsafe_b64encode(payload).decode().rstrip("="),
                "protected": protected.decode().rstrip("="),
                "header": {
                    "x5c": [base64.b64encode(b"not a certificate").decode()],
                    "io.cncf.notary.signingAgent": "notation-go/1.1.0",
                },
                "signature": _fake_signature(descriptor["digest"], "notation"),
            }
        )
        media_type = JOSE
    elif envelope == "cose":
        blob = b"\xd2\x84" + sha256_digest(go_json(descriptor)).encode()  # a COSE_Sign1 tag, then filler
        media_type = COSE
    else:
        raise ValueError(f"envelope must be 'jose' or 'cose', got {envelope!r}")
    thumbprint = json.dumps(
        [sha256_digest(b"leaf-cert")[7:], sha256_digest(b"root-cert")[7:]], separators=(",", ":")
    )
    annotations = {NOTARY_THUMBPRINT: thumbprint, CREATED_ANNOTATION: created}
    if artifact_type_field:
        content = oci_manifest(
            OCI_EMPTY,
            EMPTY_JSON,
            [(media_type, blob, None)],
            artifact_type=NOTARY_SIGNATURE,
            subject=descriptor,
            annotations=annotations,
            empty_config_data=True,
        )
    else:
        content = oci_manifest(
            NOTARY_SIGNATURE,
            EMPTY_JSON,
            [(media_type, blob, None)],
            subject=descriptor,
            annotations=annotations,
        )
    return push_content(repo, content)


# -- 7. Windows ------------------------------------------------------------------------------------
def foreign_layer(name: str, size: int, *, oci: bool = False) -> dict[str, Any]:
    """A base-layer descriptor with ``urls`` whose content is never pushed (the registry keeps only
    the reference). Docker's foreign type, or OCI's non-distributable one."""
    digest = sha256_digest(f"foreign base layer {name}".encode())
    url = f"https://mcr.microsoft.com/v2/windows/servercore/blobs/{digest}"
    if oci:
        return {"mediaType": OCI_NONDISTRIBUTABLE, "digest": digest, "size": size, "urls": [url]}
    # distribution's schema2 Descriptor order: mediaType, size, digest, urls
    return {"mediaType": DOCKER_FOREIGN, "size": size, "digest": digest, "urls": [url]}


def windows_image(
    release: str,
    *,
    oci: bool = False,
    created: str | None = FIXED_CREATED,
    layers: Sequence[bytes] | None = None,
    label: str = "",
) -> Content:
    """A Windows image for ``release`` (``ltsc2019`` / ``ltsc2022``): a foreign base layer with
    ``urls``, then ``layers`` (default: one app layer) pushed; ``os.version`` in the config."""
    os_version = WINDOWS_VERSIONS[release]
    base_size = {"ltsc2019": 1_718_332_879, "ltsc2022": 1_482_567_111}[release]
    base = foreign_layer(release, base_size, oci=oci)
    own = (
        list(layers)
        if layers is not None
        else [make_layer({"Files/app.exe": f"app {release}".encode() * 40})]
    )
    config_json: dict[str, Any] = {"architecture": "amd64", "config": {"Cmd": ["cmd.exe"]}}
    if label:
        config_json["config"]["Labels"] = {"label": label}
    if created is not None:
        config_json["created"] = created
    config_json["history"] = [{"created": "2024-01-09T00:00:00Z"}] + [{"created_by": "COPY"} for _ in own]
    config_json["os"] = "windows"
    config_json["os.version"] = os_version
    diff_ids = [sha256_digest(f"uncompressed {release}".encode())]
    diff_ids += [sha256_digest(gzip.decompress(layer)) for layer in own]
    config_json["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    config = go_json(config_json)
    if oci:
        return oci_manifest(
            OCI_CONFIG, config, [(OCI_LAYER, layer, None) for layer in own], raw_layers=[base]
        )
    body = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": sha256_digest(config)},
        "layers": [base]
        + [{"mediaType": DOCKER_LAYER, "size": len(layer), "digest": sha256_digest(layer)} for layer in own],
    }
    blobs = {sha256_digest(config): config}
    blobs.update({sha256_digest(layer): layer for layer in own})
    return Content(docker_json(body), DOCKER_MANIFEST, blobs, {base["digest"]: base_size})


@dataclass(frozen=True)
class WindowsImages:
    """``ltsc2019`` and ``ltsc2022`` (Docker, foreign base), ``multi`` (manifest list over both with
    ``os.version`` in the platform) and ``nondist`` (OCI, non-distributable base)."""

    images: Mapping[str, Pushed]


def push_windows(repo: Repository) -> WindowsImages:
    """Push the Windows shapes; needs a registry started with ``extra=URLS_ALLOWED``."""
    images: dict[str, Pushed] = {}
    children = []
    for release in ("ltsc2019", "ltsc2022"):
        content = windows_image(release)
        images[release] = push_content(repo, content, [release])
        children.append(
            {
                "mediaType": DOCKER_MANIFEST,
                "size": content.size,
                "digest": content.digest,
                "platform": platform_json("windows/amd64", WINDOWS_VERSIONS[release]),
            }
        )
    body = docker_json({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": children})
    listing = Content(body, DOCKER_LIST, children=tuple(images[r].content for r in ("ltsc2019", "ltsc2022")))
    images["multi"] = push_content(repo, listing, ["multi"])
    images["nondist"] = push_content(repo, windows_image("ltsc2022", oci=True), ["nondist"])
    return WindowsImages(images)


@contextlib.contextmanager
def urls_registry() -> Iterator[LocalRegistry]:
    """A local registry that accepts layers with ``urls`` (for :func:`push_windows`)."""
    with LocalRegistry(extra=dict(URLS_ALLOWED)) as server:
        yield server


@pytest.fixture(scope="session")
def urls_registry_server() -> Iterator[LocalRegistry]:
    """Session fixture: a registry with ``validation.manifests.urls.allow`` set. Import it into a
    test module (``from tests.shapes import urls_registry_server``) or move it to conftest."""
    with urls_registry() as server:
        yield server


# -- 8. nested index -------------------------------------------------------------------------------
@dataclass(frozen=True)
class NestedIndex:
    """``outer`` lists ``inner`` (an index of two images) and one image directly."""

    outer: Pushed
    inner: Content
    leaves: tuple[Content, ...]  # inner's two images, then the outer's direct image


def push_nested_index(repo: Repository, tag: str = "nested", *, inner_tag: str | None = None) -> NestedIndex:
    """An index whose first child is another index; the inner one is untagged unless ``inner_tag``."""
    base = make_layer({"nested": b"nested base\n" * 20})
    amd = image_content([base, make_layer({"a": b"amd64"})], platform="linux/amd64", oci=True)
    arm = image_content([base, make_layer({"a": b"arm64"})], platform="linux/arm64/v8", oci=True)
    s390 = image_content([base, make_layer({"a": b"s390x"})], platform="linux/s390x", oci=True)
    inner = oci_index(
        [
            (amd, {"platform": platform_json("linux/amd64")}),
            (arm, {"platform": platform_json("linux/arm64/v8")}),
        ]
    )
    if inner_tag:
        push_content(repo, inner, [inner_tag])
    outer = oci_index([(inner, {}), (s390, {"platform": platform_json("linux/s390x")})])
    return NestedIndex(push_content(repo, outer, [tag]), inner, (amd, arm, s390))


# -- 9. odd dates ----------------------------------------------------------------------------------
#: label -> the config's ``created`` (None: the key is absent).
ODD_DATES: Mapping[str, str | None] = {
    "missing": None,
    "empty": "",
    "year1": "0001-01-01T00:00:00Z",
    "epoch": "1970-01-01T00:00:00Z",
    "after-pandas": "2262-04-12T00:00:00Z",
    "y2300": "2300-01-01T00:00:00Z",
    "y9999": "9999-12-31T23:59:59Z",
    "offset": "2024-05-01T12:00:00+05:30",
    "lowercase": "2024-05-01t12:00:00z",
    "nanos": "2024-05-01T12:00:00.123456789Z",
    # in UTC these leave datetime's years 1..9999: a parser must not crash on them
    "year1-offset": "0001-01-01T00:00:00+01:00",
    "y9999-offset": "9999-12-31T23:59:59-01:00",
    "annotation-only": None,
}


def utc_text(raw: str | None) -> str | None:
    """An RFC 3339 time as UTC ``YYYY-MM-DDTHH:MM:SS[.fraction]Z`` keeping every fraction digit;
    None for missing or empty. Naive on purpose: the oracle tests compare against."""
    if not raw:
        return None
    match = re.fullmatch(
        r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)", raw.strip()
    )
    if match is None:
        raise ValueError(f"not RFC 3339: {raw!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, zone = match.group(7) or "", match.group(8)
    offset = 0
    if zone not in ("Z", "z"):
        offset = (1 if zone[0] == "+" else -1) * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    # plain calendar arithmetic (days from 0000-03-01), not datetime: UTC may leave years 1..9999
    seconds = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset
    days, rest = divmod(seconds, 86400)
    y, m, d = _civil_from_days(days)
    return f"{y:04d}-{m:02d}-{d:02d}T{rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}{fraction}Z"


def _days_from_civil(year: int, month: int, day: int) -> int:
    year -= month <= 2
    era, yoe = divmod(year, 400)
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy


def _civil_from_days(days: int) -> tuple[int, int, int]:
    era, doe = divmod(days, 146097)
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (month <= 2), month, day


@dataclass(frozen=True)
class OddDate:
    """One image with a strange ``created``: the raw value (None = absent), the manifest annotation
    (only for ``annotation-only``) and the UTC text an honest parser gets (None = unknown)."""

    label: str
    pushed: Pushed
    created_raw: str | None
    annotation_created: str | None
    utc: str | None


def push_odd_dates(repo: Repository) -> dict[str, OddDate]:
    """One OCI image per :data:`ODD_DATES` label, tagged ``date-<label>``, all on one layer."""
    layer = make_layer({"odd": b"dates"})
    out: dict[str, OddDate] = {}
    for label, created in ODD_DATES.items():
        content = image_content([layer], created=created, oci=True, labels={"date": label})
        annotation = None
        if label == "annotation-only":
            annotation = "2024-05-01T12:00:00Z"
            body = content.json
            body["annotations"] = {CREATED_ANNOTATION: annotation}
            content = Content(json.dumps(body, indent=3).encode(), content.media_type, content.blobs)
        pushed = push_content(repo, content, [f"date-{label}"])
        out[label] = OddDate(label, pushed, created, annotation, utc_text(created))
    return out


# -- 10. zero layers -------------------------------------------------------------------------------
def push_zero_layers(repo: Repository) -> dict[str, Pushed]:
    """Plain images (not artifacts) with ``layers: []``: tags ``zero-oci`` and ``zero-docker``."""
    out = {}
    for tag, oci in (("zero-oci", True), ("zero-docker", False)):
        manifest = push_image(repo, [], [tag], created=FIXED_CREATED, oci=oci, labels={"zero": tag})
        content = image_content([], oci=oci, labels={"zero": tag})
        assert content.digest == manifest.digest
        out[tag] = Pushed(repo.name, content, (tag,))
    return out


# -- 11. clients nobody here wrote -----------------------------------------------------------------
def write_oci_layout(directory: Path, contents: Mapping[str, Content]) -> Path:
    """An OCI image layout on disk: ``oci-layout``, ``index.json`` naming each content by its
    ``org.opencontainers.image.ref.name``, and ``blobs/sha256/<hex>`` for every manifest and blob."""
    blobs_dir = directory / "blobs" / "sha256"
    blobs_dir.mkdir(parents=True, exist_ok=True)
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    entries = []
    for ref_name, content in contents.items():
        for item in content.walk():
            (blobs_dir / item.digest.split(":", 1)[1]).write_bytes(item.raw)
            for digest, data in item.blobs.items():
                (blobs_dir / digest.split(":", 1)[1]).write_bytes(data)
        entries.append(content.descriptor(annotations={"org.opencontainers.image.ref.name": ref_name}))
    (directory / "index.json").write_bytes(
        go_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    )
    return directory


def skopeo(*args: str, timeout: float = 60) -> bytes:
    """Run skopeo; fail the test with its stderr when it fails."""
    assert shutil.which("skopeo"), "skopeo is missing: the README's test command installs it"
    done = subprocess.run(["skopeo", *args], capture_output=True, check=False, timeout=timeout)
    assert done.returncode == 0, f"skopeo {' '.join(args)}: {done.stderr.decode()}"
    return done.stdout


def skopeo_raw(host: str, repository: str, reference: str) -> bytes:
    """The manifest bytes as skopeo reads them (``skopeo inspect --raw``)."""
    sep = "@" if ":" in reference and reference.startswith("sha256:") else ":"
    return skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{host}/{repository}{sep}{reference}")


@dataclass(frozen=True)
class SkopeoCopied:
    """What ``skopeo copy oci:... docker://...`` stored: the layout content and the tags it got."""

    image: Pushed  # single image, tag "skopeo"
    index: Pushed  # an OCI index copied with --all, tag "skopeo-multi"
    layout: Path


def registry_host(repo: Repository) -> str:
    """``host:port`` of the registry ``repo`` lives in, as skopeo and oras want it."""
    return urlsplit(repo.client.base_url).netloc


def push_with_skopeo(repo: Repository, workdir: Path) -> SkopeoCopied:
    """Write an OCI layout to ``workdir`` and copy it into ``repo`` with ``skopeo copy`` (plain
    http, ``--dest-tls-verify=false``). The layout holds a single image (ref ``single``, tag
    ``skopeo``) and an index (ref ``multi``, copied with ``--all``, tag ``skopeo-multi``); skopeo
    uploads the blobs and manifests itself.
    """
    repository = repo.name
    layer = make_layer({"skopeo/hello.txt": b"copied by skopeo\n" * 10})
    single = image_content([layer], created="2023-06-07T08:09:10Z", oci=True, labels={"by": "skopeo"})
    amd = image_content([layer], platform="linux/amd64", oci=True, labels={"by": "skopeo-multi"})
    arm = image_content([layer], platform="linux/arm64/v8", oci=True, labels={"by": "skopeo-multi"})
    index = oci_index(
        [
            (amd, {"platform": platform_json("linux/amd64")}),
            (arm, {"platform": platform_json("linux/arm64/v8")}),
        ]
    )
    layout = write_oci_layout(workdir / "layout", {"single": single, "multi": index})
    target = f"docker://{registry_host(repo)}/{repository}"
    skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:single", f"{target}:skopeo")
    skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{layout}:multi", f"{target}:skopeo-multi")
    return SkopeoCopied(
        Pushed(repository, single, ("skopeo",)), Pushed(repository, index, ("skopeo-multi",)), layout
    )


@dataclass(frozen=True)
class OrasPushed:
    """What the ``oras`` Python client pushed: the manifest bytes as the registry serves them
    (oras serialises them itself), the file it uploaded, and the tags."""

    artifact: Pushed
    file_bytes: bytes
    referrer: Pushed | None  # the artifact pushed with ``subject``, if oras managed to


def push_with_oras(
    repo: Repository,
    workdir: Path,
    *,
    subject: Pushed | Content | BaseManifest | Mapping[str, Any] | None = None,
) -> OrasPushed:
    """Push with ``oras.client.OrasClient`` (PyPI ``oras``): an artifact with one file and manifest
    annotations at tag ``oras``, and, when ``subject`` is given, a second artifact with ``subject``
    at tag ``oras-ref``. Read back through ``repo`` (our client) to get the exact bytes."""
    import oras.client  # type: ignore[import-untyped]
    import oras.oci  # type: ignore[import-untyped]

    host = registry_host(repo)
    client = oras.client.OrasClient(hostname=host, insecure=True)
    path = workdir / "notes.txt"
    data = b"pushed by oras-py\n" * 8
    path.write_bytes(data)
    config = workdir / "config.json"
    config.write_bytes(go_json({"tool": "oras-py"}))
    client.push(
        target=f"{host}/{repo.name}:oras",
        files=[f"{path}:text/plain"],
        manifest_annotations={CREATED_ANNOTATION: FIXED_CREATED, "com.example.by": "oras"},
        manifest_config=f"{config}:application/vnd.example.oras.config.v1+json",
        disable_path_validation=True,
        quiet=True,
    )
    artifact = _read_back(repo, "oras")
    referrer = None
    if subject is not None:
        descriptor = _subject(subject)
        client.push(
            target=f"{host}/{repo.name}:oras-ref",
            files=[f"{path}:text/plain"],
            subject=oras.oci.Subject(descriptor["mediaType"], descriptor["digest"], descriptor["size"]),
            disable_path_validation=True,
            quiet=True,
        )
        referrer = _read_back(repo, "oras-ref")
    return OrasPushed(artifact, data, referrer)


def _read_back(repo: Repository, tag: str) -> Pushed:
    raw, content_type, digest = repo.get_manifest_bytes(tag)
    body = json.loads(raw)
    blobs = {}
    for descriptor in [body["config"], *body.get("layers", [])]:
        blobs[descriptor["digest"]] = repo.blob_bytes(descriptor["digest"])
    content = Content(raw, content_type.split(";")[0], blobs)
    assert content.digest == digest
    return Pushed(repo.name, content, (tag,))


# -- storage oracles -------------------------------------------------------------------------------
def blob_store_bytes(storage_root: str | Path) -> dict[str, int]:
    """digest -> size of every blob a filesystem-backed Distribution registry holds on disk
    (``<root>/docker/registry/v2/blobs/<alg>/<xx>/<hex>/data``): manifests, configs and layers."""
    root = Path(storage_root) / "docker" / "registry" / "v2" / "blobs"
    found: dict[str, int] = {}
    if not root.is_dir():
        return found
    for algorithm in root.iterdir():
        for data in algorithm.glob("*/*/data"):
            found[f"{algorithm.name}:{data.parent.name}"] = data.stat().st_size
    return found


@dataclass(frozen=True)
class GcResult:
    """A garbage collection run on a copy of a registry's storage."""

    before: Mapping[str, int]  # blob_store_bytes before
    after: Mapping[str, int]  # after (equals before on a dry run)
    eligible: frozenset[str]  # blob digests garbage-collect said it would delete / deleted
    output: str
    storage: Path  # the copy; remove it with cleanup()

    @property
    def freed(self) -> dict[str, int]:
        """digest -> size of every blob gone from disk (the bytes GC freed)."""
        return {d: s for d, s in self.before.items() if d not in self.after}

    def cleanup(self) -> None:
        shutil.rmtree(self.storage.parent, ignore_errors=True)


def _load_config(config_path: Path) -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = json.loads(config_path.read_text())
    except ValueError:
        raise ValueError(f"{config_path}: expected the JSON config LocalRegistry writes") from None
    return loaded


def run_garbage_collect(
    config_path: str | Path, *, delete_untagged: bool = False, dry_run: bool = False
) -> GcResult:
    """Run ``docker-registry garbage-collect`` on a COPY of the storage the config names, so the
    live registry is untouched; compare ``result.freed`` with what a model predicts.

    ``LocalRegistry.garbage_collect`` runs in place (and needs the registry stopped); this one can
    run while the registry serves, as long as nothing is being pushed meanwhile. Call
    ``result.cleanup()`` when done.
    """
    config = _load_config(Path(config_path))
    source = Path(config["storage"]["filesystem"]["rootdirectory"])
    workdir = Path(tempfile.mkdtemp(prefix="dreg-gc-"))
    copy = workdir / "storage"
    shutil.copytree(source, copy, symlinks=True)
    config["storage"]["filesystem"]["rootdirectory"] = str(copy)
    config.pop("notifications", None)  # the copy must not tell anyone about its deletes
    copy_config = workdir / "config.yml"
    copy_config.write_text(json.dumps(config))
    before = blob_store_bytes(copy)
    args = [find_registry_binary(), "garbage-collect"]
    if delete_untagged:
        args.append("--delete-untagged")
    if dry_run:
        args.append("--dry-run")
    args.append(str(copy_config))
    env = {**os.environ, "REGISTRY_LOG_LEVEL": "info"}
    done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=300, env=env)
    if done.returncode != 0:
        shutil.rmtree(workdir, ignore_errors=True)
        raise RuntimeError(f"garbage-collect failed ({done.returncode}): {done.stderr[-800:]}")
    output = done.stdout + done.stderr
    eligible = frozenset(re.findall(r"blob eligible for deletion: (\S+)", output))
    return GcResult(before, blob_store_bytes(copy), eligible, output, copy)
