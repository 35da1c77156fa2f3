"""The read path's own HTTP/1.1 connections (dreg_frames.client.connections) against a raw server
that answers byte for byte what a test says: framings a real registry seldom uses (chunked, until
close, deflate without its zlib header, gzip members), keep-alive and its end, hostile heads."""

from __future__ import annotations

import gzip
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator

import pytest

from dreg_frames import Registry, TransportError
from dreg_frames.client.connections import MAX_HEADERS

Serve = Callable[[str, str], tuple[bytes, bool]]  # (method, target) -> (answer bytes, close after)


class RawServer:
    """One thread per connection; requests read up to the blank line (no bodies: GET and HEAD)."""

    def __init__(self, serve: Serve) -> None:
        self.serve = serve
        self.connections = 0
        self.requests: list[str] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2/"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while True:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, data = data.split(b"\r\n\r\n", 1)
                method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
                self.requests.append(f"{method} {target}")
                answer, close = self.serve(method, target)
                conn.sendall(answer)
                if close:
                    return

    def close(self) -> None:
        self._sock.close()


def answer(status: str, headers: dict[str, str], body: bytes = b"", *, length: bool = True) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items())]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(body: bytes, size: int = 7) -> bytes:
    parts = [
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size]) for i in range(0, len(body), size)
    ]
    return b"".join(parts) + b"0\r\n\r\n"


@pytest.fixture()
def raw() -> Iterator[Callable[[Serve], RawServer]]:
    servers: list[RawServer] = []

    def start(serve: Serve) -> RawServer:
        servers.append(RawServer(serve))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


TAGS = b'{"name": "a/b", "tags": ["v1", "v2"]}'


def test_framings_and_encodings_all_read_the_same(raw: Callable[[Serve], RawServer]) -> None:
    ways = {
        "plain": (answer("200 OK", {}, TAGS), False),
        "chunked": (answer("200 OK", {"Transfer-Encoding": "chunked"}, chunked(TAGS), length=False), False),
        "until-close": (answer("200 OK", {}, TAGS, length=False), True),
        "gzip-members": (
            answer("200 OK", {"Content-Encoding": "gzip"}, gzip.compress(TAGS[:9]) + gzip.compress(TAGS[9:])),
            False,
        ),
        "raw-deflate": (
            answer("200 OK", {"Content-Encoding": "deflate"}, zlib.compress(TAGS)[2:-4]),
            False,
        ),
        "gzip-chunked": (
            answer(
                "200 OK",
                {"Content-Encoding": "gzip", "Transfer-Encoding": "chunked"},
                chunked(gzip.compress(TAGS), 5),
                length=False,
            ),
            False,
        ),
    }
    server = raw(lambda method, target: ways[target.split("/")[2]])
    registry = Registry.build_with_manual_client(server.url, retry=0)
    for way in ways:
        assert registry.repository(f"{way}/b").tags() == ["v1", "v2"], way


def test_keep_alive_reuses_one_connection_and_a_closed_one_is_not_reused(
    raw: Callable[[Serve], RawServer],
) -> None:
    """HEAD answers carry a Content-Length and no body; a server that drops idle connections costs
    no retry (retry=0 here): the dropped connection is seen before it is used."""
    digest = "sha256:" + "a" * 64
    close_next = {"on": False}

    def serve(method: str, target: str) -> tuple[bytes, bool]:
        head = {"Docker-Content-Digest": digest, "Content-Type": "application/vnd.oci.image.manifest.v1+json"}
        body = b"{}" if method == "GET" else b""
        out = answer("200 OK", {**head, "Content-Length": "2"}, body, length=False)
        return out, close_next["on"]

    server = raw(serve)
    repo = Registry.build_with_manual_client(server.url, retry=0).repository("a/b")
    for _ in range(5):
        assert repo.check_manifest("v1") == digest
    assert server.connections == 1
    close_next["on"] = True  # the server now closes after each answer, without saying so
    for _ in range(3):
        assert repo.check_manifest("v1") == digest
        time.sleep(0.2)  # (not timed: lets the server's close arrive before the next request)
    assert server.connections == 3  # the one open when the server changed its mind, then two fresh


def test_hostile_heads_are_transport_errors(raw: Callable[[Serve], RawServer]) -> None:
    many = {f"X-{i}": "y" for i in range(MAX_HEADERS + 1)}
    ways = {
        "many-headers": answer("200 OK", many, TAGS),
        "garbage": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nBad Header\x00: x\r\n\r\nhello",
        "no-answer": b"",
        "cut-short": answer("200 OK", {"Content-Length": "500"}, TAGS, length=False),
    }
    server = raw(lambda method, target: (ways[target.split("/")[2]], True))
    registry = Registry.build_with_manual_client(server.url, retry=0)
    for way in ways:
        with pytest.raises(TransportError, match=f"list tags of {way}/b: "):
            registry.repository(f"{way}/b").tags()


def test_a_next_link_with_odd_characters_is_sent_encoded(raw: Callable[[Serve], RawServer]) -> None:
    def serve(method: str, target: str) -> tuple[bytes, bool]:
        if "last=" not in target:
            link = {"Link": '</v2/a/b/tags/list?n=1&last=v 1|x>; rel="next"'}
            return answer("200 OK", link, b'{"tags": ["v1"]}'), False
        return answer("200 OK", {}, b'{"tags": ["v2"]}'), False

    server = raw(serve)
    assert Registry.build_with_manual_client(server.url).repository("a/b").tags() == ["v1", "v2"]
    assert server.requests[-1] == "GET /v2/a/b/tags/list?n=1&last=v%201%7Cx"
