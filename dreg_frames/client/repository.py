"""One repository: tags, manifests, configs and blobs, read and written by content address."""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from datetime import datetime, timezone
from typing import IO, TYPE_CHECKING
from urllib.parse import quote

import requests

from .errors import BadRequest, DigestMismatch, ManifestError, NotFound, RegistryError, UnsupportedOperation
from .http import MAX_MANIFEST_BYTES, Transport
from .manifests import (
    AnyManifest,
    Descriptor,
    ImageConfig,
    ImageIndex,
    Manifest,
    parse_config,
    parse_manifest,
    schema1_payload,
)
from .mediatypes import ACCEPT_MANIFESTS, OCI_INDEX, OCI_MANIFEST, SCHEMA1_TYPES
from .reference import (
    check_digest,
    check_name,
    check_reference,
    check_tag,
    check_verifiable,
    digest_of,
    is_digest,
    sha256_digest,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["MAX_REFERRER_PAGES", "Repository"]

OCI_EMPTY = "application/vnd.oci.empty.v1+json"  # the 2-byte ``{}`` config of OCI 1.1 artifacts

# A referrers list is one index per page; a subject with thousands of signatures is already odd.
MAX_REFERRER_PAGES = 100

_CHUNK = 1024 * 1024


class Repository:
    """A repository in a registry, e.g. ``registry.repository("team1/app")``.

    Example::

        repo.tags()                       # ['latest', 'v1']
        repo.get_manifest("v1").digest    # 'sha256:...'
    """

    def __init__(self, client: Transport, repository: str, namespace: str | None = None) -> None:
        self._client = client
        self.repository = repository
        self.namespace = namespace
        check_name(self.name)

    @property
    def name(self) -> str:
        """The full repository name, ``namespace/repository``."""
        return f"{self.namespace}/{self.repository}" if self.namespace else self.repository

    @property
    def client(self) -> Transport:
        return self._client

    def __repr__(self) -> str:
        return f"Repository({self.name!r})"

    # -- tags -------------------------------------------------------------------------------------
    def tags(self) -> list[str]:
        """Every tag of the repository (all pages), as the registry lists them.

        A repository whose tags were all deleted answers with ``[]``; one that never had a tag
        raises :class:`RepositoryNotFound` on Distribution 2.8, as an unknown name does.
        """
        return list(self.iter_tags())

    def iter_tags(self, page_size: int | None = 1000) -> Iterator[str]:
        return self._client.paginate(
            f"{self.name}/tags/list", "tags", what=f"list tags of {self.name}", page_size=page_size
        )

    # -- manifests --------------------------------------------------------------------------------
    def check_manifest(self, reference: str) -> str | None:
        """The digest ``reference`` (a tag or digest) resolves to, or None when it does not exist (HEAD).

        A HEAD does not count as a pull on Docker Hub, so this is the cheap way to re-resolve a tag.
        """
        check_reference(reference)
        try:
            response = self._client.request(
                "HEAD",
                f"{self.name}/manifests/{reference}",
                what=f"check {self.name}:{reference}",
                headers={"Accept": ACCEPT_MANIFESTS},
            )
        except NotFound:
            return None
        digest = response.headers.get("Docker-Content-Digest")
        if digest is None and is_digest(reference):
            return reference
        if digest is None:
            # Without the header a HEAD cannot tell us the digest; a GET hashes the body instead.
            return self.get_manifest(reference).digest
        check_digest(digest)
        if is_digest(reference) and digest != reference:
            raise DigestMismatch(reference, digest, f"{self.name} HEAD")
        return digest

    def get_manifest_bytes(self, reference: str) -> tuple[bytes, str, str]:
        """``(body, content_type, digest)`` of a manifest, the digest checked against the body."""
        check_reference(reference)
        by_digest = is_digest(reference)
        if by_digest:
            check_verifiable(reference)  # an algorithm we cannot verify is refused before asking
        what = f"get {self.name}@{reference}" if by_digest else f"get manifest {self.name}:{reference}"
        body, response = self._client.get_capped(
            f"{self.name}/manifests/{reference}",
            what=what,
            headers={"Accept": ACCEPT_MANIFESTS},
            cap=MAX_MANIFEST_BYTES,
        )
        content_type = response.headers.get("Content-Type", "")
        served = response.headers.get("Docker-Content-Digest")
        # Neither the digest asked for nor the header is believed until the bytes hash to it, each
        # with its own algorithm (schema1: the signed payload, as Distribution digests it).
        signed = schema1_payload(body) if _is_schema1(content_type) else body
        # Usually the header repeats the digest asked for: the body is hashed once per claim.
        claims = [reference] if by_digest else []
        if served is not None and served not in claims:
            claims.append(served)
        for claimed in claims:
            actual = digest_of(signed, check_digest(claimed))
            if actual != claimed:
                raise DigestMismatch(claimed, actual, f"{self.name}:{reference}")
        actual = reference if by_digest else served or sha256_digest(signed)
        return body, content_type, actual

    def get_manifest(self, reference: str) -> AnyManifest:
        """The manifest a tag or digest points to: :class:`Manifest`, :class:`ImageIndex` (multi-arch)
        or :class:`SchemaOneManifest`. Raises :class:`ManifestNotFound` if there is none."""
        body, content_type, digest = self.get_manifest_bytes(reference)
        try:
            return parse_manifest(body, content_type, digest)
        except ManifestError as exc:
            raise type(exc)(f"{self.name}:{reference}: {exc}") from None

    def put_manifest(self, reference: str, body: bytes, media_type: str) -> str:
        """Upload manifest bytes under a tag or digest; returns the digest of ``body``."""
        check_reference(reference)
        digest = sha256_digest(body)
        if is_digest(reference) and reference != digest:
            raise DigestMismatch(reference, digest, f"put {self.name}")
        response = self._client.request(
            "PUT",
            f"{self.name}/manifests/{reference}",
            what=f"put manifest {self.name}:{reference}",
            ok=(201, 200),
            headers={"Content-Type": media_type},
            data=body,
        )
        served = response.headers.get("Docker-Content-Digest")
        if served is not None and served != digest:
            raise DigestMismatch(digest, served, f"put {self.name}:{reference}")
        return digest

    def tag(self, digest: str, tag: str) -> str:
        """Point ``tag`` at the manifest ``digest`` (a server-side copy of its exact bytes)."""
        body, content_type, _ = self.get_manifest_bytes(check_digest(digest))
        return self.put_manifest(tag, body, content_type.split(";")[0])

    def delete_manifest(self, digest: str) -> requests.Response:
        """Delete a manifest by digest; the registry removes every tag that points at it.

        Returns the registry's answer (202), as dreg-client does. Raises :class:`UnsupportedOperation`
        when the registry has deletes disabled and :class:`ManifestNotFound` when the digest is not there.
        """
        check_digest(digest)
        return self._client.request(
            "DELETE", f"{self.name}/manifests/{digest}", what=f"delete {self.name}@{digest}", ok=(202, 200)
        )

    def untag(self, tag: str) -> str:
        """Remove one tag, leaving the manifest and every other tag on it in place.

        ``DELETE /v2/<name>/manifests/<tag>`` where the registry supports it (OCI distribution 1.1);
        else the known fallback for registries that delete by digest only (Distribution 2.8 answers
        400 ``DIGEST_INVALID``): point the tag at a tiny manifest of its own (the 2-byte empty
        config, no layers, a unique annotation), then delete that manifest by digest, which takes
        the tag with it. Returns how it went: ``"delete-tag"`` or ``"placeholder"``.

        Check :meth:`deletes_enabled` first: with deletes disabled the fallback would leave the tag
        on the placeholder.
        """
        check_tag(tag)
        try:
            self._client.request(
                "DELETE", f"{self.name}/manifests/{tag}", what=f"untag {self.name}:{tag}", ok=(202, 200)
            )
            return "delete-tag"
        except (BadRequest, UnsupportedOperation, NotFound) as exc:
            if isinstance(exc, NotFound) and self.check_manifest(tag) is None:
                raise
        config = self.push_blob(b"{}")
        stamp = f"{tag} {datetime.now(timezone.utc).isoformat()} {uuid.uuid4()}"
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.empty.v1+json",
                    "digest": config.digest,
                    "size": 2,
                },
                "layers": [],
                "annotations": {"dev.dreg-frames.untag": stamp},
            },
            separators=(",", ":"),
        ).encode()
        placeholder = self.put_manifest(tag, body, OCI_MANIFEST)
        self.delete_manifest(placeholder)
        return "placeholder"

    def deletes_enabled(self) -> bool | None:
        """Whether the registry accepts manifest deletes here, asked without deleting anything.

        DELETE of the all-zero digest, which no content can have: Distribution answers 405
        UNSUPPORTED when deletes are disabled and 404 when they are enabled. None when the answer
        says neither (another registry's behaviour, or an auth error).
        """
        try:
            self._client.request(
                "DELETE",
                f"{self.name}/manifests/sha256:{'0' * 64}",
                what=f"probe deletes on {self.name}",
                ok=(202,),
            )
        except UnsupportedOperation:
            return False
        except NotFound:
            return True
        except RegistryError:
            return None
        return True

    def referrers(self, digest: str, artifact_type: str | None = None) -> list[Descriptor] | None:
        """The OCI 1.1 referrers of ``digest`` (signatures, SBOMs, attestations whose ``subject`` it is),
        through ``GET /v2/<name>/referrers/<digest>``; None when the registry has no referrers API.

        The spec forbids a 404 from a registry that has the API, so a 404 means "not supported"
        (Distribution 2.8 answers so: clients then read the ``sha256-<hex>`` tag schema instead).
        ``artifact_type`` is sent as the spec's filter and applied here too when the registry says
        it did not (no ``OCI-Filters-Applied``). Pages are followed through ``Link``, at most
        :data:`MAX_REFERRER_PAGES` of them.
        """
        check_verifiable(digest)
        query = f"?artifactType={quote(artifact_type, safe='')}" if artifact_type else ""
        path = f"{self.name}/referrers/{digest}{query}"
        found: list[Descriptor] = []
        for _ in range(MAX_REFERRER_PAGES):
            try:
                body, response = self._client.get_capped(
                    path, what=f"list referrers of {self.name}@{digest}", cap=MAX_MANIFEST_BYTES
                )
            except NotFound:
                if found:
                    raise
                return None
            index = parse_manifest(body, response.headers.get("Content-Type") or OCI_INDEX)
            if not isinstance(index, ImageIndex):
                raise ManifestError(f"referrers of {self.name}@{digest}: the answer is not an image index")
            filtered = "artifacttype" in response.headers.get("OCI-Filters-Applied", "").lower()
            found.extend(
                d
                for d in index.manifests
                if not artifact_type or filtered or d.artifact_type == artifact_type
            )
            link = response.links.get("next", {}).get("url")
            if not link:
                return found
            path = requests.compat.urljoin(response.url, link)
        raise RegistryError(f"referrers of {self.name}@{digest}: more than {MAX_REFERRER_PAGES} pages")

    # -- blobs ------------------------------------------------------------------------------------
    def get_blob(self, digest: str, *, stream: bool = True) -> requests.Response:
        """The blob's response (streaming by default; read ``.content`` or ``.iter_content``).

        With ``stream=False`` the whole blob is read here, however large (you asked for it in
        memory); :meth:`blob_bytes` takes a ``cap``. A streamed body is read by you, after the
        request's deadline has ended (the read timeout still bounds each read)."""
        check_digest(digest)
        return self._client.request(
            "GET", f"{self.name}/blobs/{digest}", what=f"get blob {digest}", stream=stream, cap=1 << 62
        )

    def blob_bytes(self, digest: str, *, cap: int | None = None) -> bytes:
        """A blob read into memory and checked against its digest."""
        check_verifiable(digest)  # an algorithm we cannot verify is refused before asking
        body, _ = self._client.get_capped(
            f"{self.name}/blobs/{digest}", what=f"get blob {self.name}@{digest}", cap=cap or 1 << 62
        )
        actual = digest_of(body, digest)
        if actual != digest:
            raise DigestMismatch(digest, actual, f"blob in {self.name}")
        return body

    def get_config(self, manifest: Manifest | Descriptor | str) -> ImageConfig:
        """The image config of a manifest (or of a config descriptor / digest)."""
        if isinstance(manifest, Manifest):
            digest = manifest.config.digest
        elif isinstance(manifest, Descriptor):
            digest = manifest.digest
        else:
            digest = manifest
        body = self.blob_bytes(digest, cap=MAX_MANIFEST_BYTES)
        try:
            return parse_config(body, digest)
        except ManifestError as exc:
            raise type(exc)(f"{self.name} config {digest}: {exc}") from None

    def check_blob(self, digest: str) -> int | None:
        """The blob's size if this repository has it, else None (HEAD)."""
        check_digest(digest)
        try:
            response = self._client.request(
                "HEAD", f"{self.name}/blobs/{digest}", what=f"check blob {digest}"
            )
        except NotFound:
            return None
        length = response.headers.get("Content-Length")
        return int(length) if length and length.isdigit() else 0

    def delete_blob(self, digest: str) -> requests.Response:
        """Delete a blob link from this repository (needs deletes enabled on the registry)."""
        check_digest(digest)
        return self._client.request(
            "DELETE", f"{self.name}/blobs/{digest}", what=f"delete blob {self.name}@{digest}", ok=(202, 200)
        )

    def push_blob(self, data: bytes | IO[bytes], digest: str | None = None) -> Descriptor:
        """Upload a blob (bytes or a binary file) in one monolithic PUT; returns its descriptor.

        An existing blob is not uploaded again.
        """
        # ``digest`` may name another algorithm (sha512): the upload is addressed, and checked, by it.
        algorithm = check_verifiable(digest) if digest else "sha256"
        payload: bytes | IO[bytes]
        if isinstance(data, (bytes, bytearray)):
            payload = bytes(data)
            size = len(data)
            actual = digest_of(payload, algorithm)
        else:
            start = data.tell()
            hasher = hashlib.new(algorithm)
            size = 0
            for chunk in iter(lambda: data.read(_CHUNK), b""):
                hasher.update(chunk)
                size += len(chunk)
            data.seek(start)
            payload = data
            actual = f"{algorithm}:{hasher.hexdigest()}"
        if digest is not None and digest != actual:
            raise DigestMismatch(digest, actual, f"push to {self.name}")
        descriptor = Descriptor(media_type="application/octet-stream", digest=actual, size=size)
        if self.check_blob(actual) is not None:
            return descriptor
        started = self._client.request(
            "POST", f"{self.name}/blobs/uploads/", what=f"start upload to {self.name}", ok=(202,)
        )
        location = started.headers.get("Location")
        if not location:
            raise RegistryError(f"start upload to {self.name}: no Location header", response=started)
        location = requests.compat.urljoin(started.url, location)
        sep = "&" if "?" in location else "?"
        self._client.request(
            "PUT",
            f"{location}{sep}digest={actual}",
            what=f"upload blob {actual} to {self.name}",
            ok=(201,),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            data=payload,
        )
        return descriptor

    def mount_blob(self, digest: str, from_repository: str | Repository) -> bool:
        """Cross-repository mount: link a blob another repository has, without uploading it.

        Returns True if mounted; False when the registry started a regular upload instead (then
        the blob was not there or the mount was refused), which we cancel.
        """
        check_digest(digest)
        source = (
            from_repository.name if isinstance(from_repository, Repository) else check_name(from_repository)
        )
        response = self._client.request(
            "POST",
            f"{self.name}/blobs/uploads/?mount={digest}&from={source}",
            what=f"mount {digest} from {source} into {self.name}",
            ok=(201, 202),
        )
        if response.status_code == 201:
            return True
        location = response.headers.get("Location")
        if location:
            # An upload session left open expires on the registry by itself, so a failed cancel is fine.
            with contextlib.suppress(RegistryError):
                self._client.request(
                    "DELETE",
                    requests.compat.urljoin(response.url, location),
                    what="cancel upload",
                    ok=(204, 200),
                )
        return False


def _is_schema1(content_type: str) -> bool:
    # Exact types: "manifest.v1" also occurs in the OCI manifest's media type.
    return content_type.split(";")[0].strip() in SCHEMA1_TYPES
