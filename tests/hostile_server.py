"""A deliberately hostile /v2/ server on loopback, for the tests (a test tool, like the fault proxy).

By default it serves a small, honest registry from memory (catalog, tags lists, OCI manifests,
configs and blobs with correct digests), so a crawl of it works. Rules then make it lie the way a
hostile or broken registry would: challenges naming foreign token realms, trickled headers and
bodies, gzip bombs, endless pagination, deeply nested JSON, truncated bodies, absurd values. It
logs every request it receives, headers included, so a test can prove a credential never arrived.

Bind it to 127.0.0.2 (all of 127.0.0.0/8 is loopback on Linux) to play "another host".
"""

from __future__ import annotations

import gzip
import hashlib
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    host: str

    @property
    def route(self) -> str:
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.path).query)


@dataclass
class Answer:
    """What to send back. ``body`` may be an iterable of chunks (sent as they come, the connection
    closed at the end); ``length`` overrides the Content-Length (None: the body's length, or no
    header for an iterable); ``trickle`` sends the status line, headers and body one byte at a time
    with that many seconds between bytes (the body only, with ``trickle_body_only``);
    ``truncate_to`` sends only that many body bytes and closes.
    """

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | Iterable[bytes] = b""
    length: int | None = None
    trickle: float = 0.0
    trickle_body_only: bool = False
    truncate_to: int | None = None


Rule = Callable[[Seen], "Answer | None"]


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def json_answer(value: object, status: int = 200, headers: dict[str, str] | None = None) -> Answer:
    return Answer(status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(value).encode())


def gzip_bomb(decoded_bytes: int, prefix: bytes = b"", suffix: bytes = b"") -> bytes:
    """``prefix + b" " * n + suffix`` as gzip (about 1000:1: 256 MiB is some 256 KiB): one member
    for the prefix, copies of one cached 16 MiB member of spaces, one for the suffix."""
    block, size = _spaces_member()
    count, left = divmod(decoded_bytes, size)
    return b"".join([gzip.compress(prefix), block * count, gzip.compress(b" " * left + suffix)])


@cache
def _spaces_member() -> tuple[bytes, int]:
    size = 16 * 1024 * 1024
    return gzip.compress(b" " * size, compresslevel=9), size


def nested(depth: int) -> bytes:
    """JSON nested ``depth`` levels deep: Python's json module gives up with RecursionError."""
    return b"[" * depth + b"]" * depth


class HostileServer:
    """A /v2/ server on ``host`` (127.0.0.1 or 127.0.0.2), http or https (``tls=(cert, key)``).

    ``rules`` are tried in order on every request; the first that returns an Answer wins, else
    the honest registry answers. ``seen`` lists every request received.
    """

    def __init__(self, host: str = "127.0.0.1", tls: tuple[Path, Path] | None = None) -> None:
        self.host = host
        self.rules: list[Rule] = []
        self.seen: list[Seen] = []
        self.repositories: dict[str, dict[str, str]] = {}  # name -> tag -> digest
        self.manifests: dict[str, tuple[bytes, str]] = {}  # digest -> (body, media type)
        self.blobs: dict[str, bytes] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                seen = Seen(self.command, self.path, dict(self.headers.items()), server.host)
                with server._lock:
                    server.seen.append(seen)
                answer: Answer | None = None
                for rule in list(server.rules):
                    answer = rule(seen)
                    if answer is not None:
                        break
                if answer is None:
                    answer = server.honest(seen)
                try:
                    self._send(answer)
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
                    self.close_connection = True

            def _send(self, answer: Answer) -> None:
                head = [f"HTTP/1.1 {answer.status} {self.responses.get(answer.status, ('?',))[0]}"]
                headers = dict(answer.headers)
                chunks: Iterable[bytes]
                if isinstance(answer.body, bytes):
                    body = answer.body
                    headers.setdefault(
                        "Content-Length", str(answer.length if answer.length is not None else len(body))
                    )
                    chunks = [body[: answer.truncate_to] if answer.truncate_to is not None else body]
                    closing = answer.truncate_to is not None
                else:
                    if answer.length is not None:
                        headers["Content-Length"] = str(answer.length)
                    chunks = answer.body
                    closing = True
                if closing:
                    headers["Connection"] = "close"
                head += [f"{k}: {v}" for k, v in headers.items()]
                raw_head = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
                if self.command == "HEAD":
                    chunks = []
                elif not answer.trickle and isinstance(chunks, list):
                    # one write: headers and body in separate small segments meet Nagle and delayed ACKs
                    raw_head, chunks = raw_head + b"".join(chunks), []
                self._write(raw_head, 0.0 if answer.trickle_body_only else answer.trickle)
                for chunk in chunks:
                    self._write(chunk, answer.trickle)
                if closing:
                    self.close_connection = True
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)

            def _write(self, data: bytes, trickle: float) -> None:
                if not trickle:
                    self.wfile.write(data)
                    return
                for i in range(len(data)):
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                    time.sleep(trickle)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = _handle

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that gave up on a trickle is the point of the test

        self.httpd = Server((host, 0), Handler)
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    # -- content ----------------------------------------------------------------------------------
    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.origin}/v2/"

    def add_image(
        self,
        name: str,
        tag: str,
        *,
        layer: bytes | None = None,
        config: bytes | None = None,
        manifest: bytes | None = None,
        layer_size: int | None = None,
    ) -> str:
        """Store an OCI image under ``name:tag``; any part may be replaced by raw (hostile) bytes.
        Returns the manifest digest."""
        layer = layer if layer is not None else f"layer of {name}:{tag}".encode()
        if config is None:
            config = json.dumps(
                {
                    "created": "2024-01-01T00:00:00Z",
                    "architecture": "amd64",
                    "os": "linux",
                    "rootfs": {"type": "layers", "diff_ids": [digest_of(layer)]},
                }
            ).encode()
        if manifest is None:
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
                    "layers": [
                        {
                            "mediaType": OCI_LAYER,
                            "digest": digest_of(layer),
                            "size": layer_size if layer_size is not None else len(layer),
                        }
                    ],
                }
            ).encode()
        digest = digest_of(manifest)
        with self._lock:
            self.blobs[digest_of(layer)] = layer
            self.blobs[digest_of(config)] = config
            self.manifests[digest] = (manifest, OCI_MANIFEST)
            self.repositories.setdefault(name, {})[tag] = digest
        return digest

    def honest(self, seen: Seen) -> Answer:
        """What a well-behaved registry would answer."""
        route = seen.route
        if route in ("/v2/", "/v2"):
            return json_answer({})
        if route == "/v2/_catalog":
            return json_answer({"repositories": sorted(self.repositories)})
        for kind in ("/tags/list", "/manifests/", "/blobs/"):
            name, found, reference = route[len("/v2/") :].partition(kind)
            if found:
                break
        else:
            return _unknown("NOT_FOUND")
        if name not in self.repositories:
            return _unknown("NAME_UNKNOWN")
        if kind == "/tags/list":
            return json_answer({"name": name, "tags": sorted(self.repositories[name])})
        if kind == "/manifests/":
            digest = self.repositories[name].get(reference, reference)
            if digest not in self.manifests:
                return _unknown("MANIFEST_UNKNOWN")
            body, media_type = self.manifests[digest]
            return Answer(200, {"Content-Type": media_type, "Docker-Content-Digest": digest}, body)
        blob = self.blobs.get(reference)
        if blob is None:
            return _unknown("BLOB_UNKNOWN")
        return Answer(
            200, {"Content-Type": "application/octet-stream", "Docker-Content-Digest": reference}, blob
        )

    def authorizations(self) -> list[str]:
        """Every Authorization header this server received."""
        with self._lock:
            return [s.headers["Authorization"] for s in self.seen if "Authorization" in s.headers]

    def __enter__(self) -> HostileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _unknown(code: str) -> Answer:
    return json_answer({"errors": [{"code": code, "message": code.lower().replace("_", " ")}]}, status=404)
