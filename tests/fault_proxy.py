"""An HTTP proxy on 127.0.0.1 in front of the real registry that can inject faults.

Rules see each request and may answer it themselves (429 with Retry-After, 5xx bursts, resets,
slow or truncated answers, a wrong Docker-Content-Digest, malformed JSON, huge bodies, redirects)
or pass it on with ``forward()`` and change what comes back. Everything else is forwarded as is.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Exchange:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    truncate_to: int | None = (
        None  # send only this many body bytes (with the full Content-Length), then close
    )
    reset: bool = False  # close the connection without an answer
    delay: float = 0.0


Rule = Callable[[Exchange, Callable[[], Reply]], "Reply | None"]
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}


class FaultProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.rules: list[Rule] = []
        self.seen: list[Exchange] = []
        self._local = threading.local()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                exchange = Exchange(self.command, self.path, dict(self.headers.items()), body)
                proxy.seen.append(exchange)
                reply: Reply | None = None
                for rule in list(proxy.rules):
                    reply = rule(exchange, lambda: proxy.forward(exchange))
                    if reply is not None:
                        break
                if reply is None:
                    reply = proxy.forward(exchange)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.reset:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    if key.lower() not in _HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if self.command != "HEAD":
                    if reply.truncate_to is not None:
                        self.wfile.write(reply.body[: reply.truncate_to])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    self.wfile.write(reply.body)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = _handle

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that gave up on a slow or reset answer is part of the test, not news

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2/"

    def forward(self, exchange: Exchange) -> Reply:
        """Send the request to the real registry and return its answer."""
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
        try:
            headers = {k: v for k, v in exchange.headers.items() if k.lower() not in _HOP | {"host"}}
            headers["Host"] = f"127.0.0.1:{self.port}"  # so Location headers point back at the proxy
            conn.request(exchange.method, exchange.path, body=exchange.body or None, headers=headers)
            response = conn.getresponse()
            body = response.read()
            return Reply(response.status, {k: v for k, v in response.getheaders()}, body)
        finally:
            conn.close()

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
