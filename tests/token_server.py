"""A small Docker token server (the ``auth.token`` realm) for the auth tests: RS256 JWTs with a libtrust
``kid``, anonymous pull-only access, full access for the admin account, and identity-token grants."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt

from .pki import Pair, libtrust_kid

SERVICE = "dreg-test-registry"
ISSUER = "dreg-test-issuer"
ADMIN = ("admin", "s3cret-admin-pw")
REFRESH_TOKEN = "refresh-token-for-admin"


class TokenServer:
    def __init__(self, signer: Pair, expires_in: int = 300) -> None:
        self.signer = signer
        self.expires_in = expires_in
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                user = None
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    name, _, password = base64.b64decode(header[6:]).decode().partition(":")
                    if (name, password) != ADMIN:
                        return self._send(401, {"details": "bad credentials"})
                    user = name
                self._grant(user, query)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                if form.get("grant_type") != ["refresh_token"] or form.get("refresh_token") != [
                    REFRESH_TOKEN
                ]:
                    return self._send(401, {"details": "bad refresh token"})
                self._grant(ADMIN[0], form)

            def _grant(self, user: str | None, query: dict[str, list[str]]) -> None:
                scopes = query.get("scope", [])
                with server._lock:
                    server.requests.append({"user": user, "scopes": scopes, "service": query.get("service")})
                access = []
                for scope in scopes:
                    kind, _, rest = scope.partition(":")
                    name, _, actions = rest.rpartition(":")
                    wanted = actions.split(",")
                    allowed = wanted if user == ADMIN[0] else [a for a in wanted if a == "pull"]
                    access.append({"type": kind, "name": name, "actions": allowed})
                now = int(time.time())
                claims = {
                    "iss": ISSUER,
                    "sub": user or "",
                    "aud": SERVICE,
                    "iat": now,
                    "nbf": now - 10,
                    "exp": now + server.expires_in,
                    "jti": uuid.uuid4().hex,
                    "access": access,
                }
                token = jwt.encode(
                    claims,
                    server.signer.key_pem(),
                    algorithm="RS256",
                    headers={"kid": libtrust_kid(server.signer.key.public_key())},
                )
                self._send(200, {"token": token, "expires_in": server.expires_in, "issued_at": now})

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def registry_auth(self, cert: Path) -> dict[str, Any]:
        """The registry's ``auth:`` section for this token server, trusting the signer's ``cert``."""
        return {
            "token": {"realm": self.realm, "service": SERVICE, "issuer": ISSUER, "rootcertbundle": str(cert)}
        }

    def __enter__(self) -> TokenServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
