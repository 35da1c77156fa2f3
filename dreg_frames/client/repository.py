"""One repository: tags, manifests, configs and blobs, read and written by content address."""

from __future__ import annotations

import contextlib
import hashlib
from typing import IO, TYPE_CHECKING

import requests

from .errors import DigestMismatch, ManifestError, NotFound, RegistryError, UnsupportedOperation
from .http import MAX_MANIFEST_BYTES, Transport
from .manifests import AnyManifest, Descriptor, ImageConfig, Manifest, parse_config, parse_manifest
from .mediatypes import ACCEPT_MANIFESTS, SCHEMA1_TYPES
from .reference import check_digest, check_name, check_reference, is_digest, sha256_digest

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["Repository"]

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
        what = (
            f"get manifest {self.name}:{reference}"
            if not is_digest(reference)
            else f"get {self.name}@{reference}"
        )
        body, response = self._client.get_capped(
            f"{self.name}/manifests/{reference}",
            what=what,
            headers={"Accept": ACCEPT_MANIFESTS},
            cap=MAX_MANIFEST_BYTES,
        )
        actual = sha256_digest(body)
        served = response.headers.get("Docker-Content-Digest")
        if served is not None and served != actual:
            # Schema1 signed manifests hash without their signature block; we only read them.
            if not served.startswith("sha256:") or not _is_schema1(response):
                raise DigestMismatch(served, actual, f"{self.name}:{reference}")
            actual = served
        if is_digest(reference) and reference != actual:
            raise DigestMismatch(reference, actual, f"{self.name}@{reference}")
        return body, response.headers.get("Content-Type", ""), actual

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

    def delete_manifest(self, digest: str) -> None:
        """Delete a manifest by digest; the registry removes every tag that points at it.

        Raises :class:`UnsupportedOperation` when the registry has deletes disabled and
        :class:`ManifestNotFound` when the digest is not there.
        """
        check_digest(digest)
        self._client.request(
            "DELETE", f"{self.name}/manifests/{digest}", what=f"delete {self.name}@{digest}", ok=(202, 200)
        )

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

    # -- blobs ------------------------------------------------------------------------------------
    def get_blob(self, digest: str, *, stream: bool = True) -> requests.Response:
        """The blob's response (streaming by default; read ``.content`` or ``.iter_content``)."""
        check_digest(digest)
        return self._client.request(
            "GET", f"{self.name}/blobs/{digest}", what=f"get blob {digest}", stream=stream
        )

    def blob_bytes(self, digest: str, *, cap: int | None = None) -> bytes:
        """A blob read into memory and checked against its digest."""
        check_digest(digest)
        body, _ = self._client.get_capped(
            f"{self.name}/blobs/{digest}", what=f"get blob {self.name}@{digest}", cap=cap or 1 << 62
        )
        actual = sha256_digest(body) if digest.startswith("sha256:") else digest
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
        payload: bytes | IO[bytes]
        if isinstance(data, (bytes, bytearray)):
            payload = bytes(data)
            size = len(data)
            actual = sha256_digest(payload)
        else:
            start = data.tell()
            hasher = hashlib.sha256()
            size = 0
            for chunk in iter(lambda: data.read(_CHUNK), b""):
                hasher.update(chunk)
                size += len(chunk)
            data.seek(start)
            payload = data
            actual = "sha256:" + hasher.hexdigest()
        if digest is not None and check_digest(digest) != actual:
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


def _is_schema1(response: requests.Response) -> bool:
    # Exact types: "manifest.v1" also occurs in the OCI manifest's media type.
    return response.headers.get("Content-Type", "").split(";")[0].strip() in SCHEMA1_TYPES
