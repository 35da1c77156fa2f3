"""A real registry whose notifications go to our receiver and, as an oracle, to a control sink.

The control sink is a few lines of ``http.server`` that records every event id it is sent and always
answers 200: Distribution sends the same events (same ids) to every endpoint, each with its own
queue, so what the control saw is exactly what the registry emitted, whatever our receiver did.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from dreg_frames import LocalRegistry
from dreg_frames.events import EventReceiver

TOKEN = "test-shared-secret"


class ControlSink:
    """Records every event the registry sends to it (the test's oracle)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with sink.lock:
                    sink.events.extend(json.loads(body)["events"])
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/control"

    def ids(self, where: Callable[[dict[str, Any]], bool] = lambda e: True) -> set[str]:
        with self.lock:
            return {e["id"] for e in self.events if where(e)}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Setup:
    registry: LocalRegistry
    receiver: EventReceiver
    control: ControlSink
    store: Path

    def restart_receiver(self) -> EventReceiver:
        """A new receiver on the same port and store, as after a crash or a deploy."""
        port = self.receiver.port
        self.receiver = EventReceiver(self.store, port=port, token=TOKEN).start()
        return self.receiver


def endpoint(name: str, url: str, headers: dict[str, list[str]] | None = None) -> dict[str, Any]:
    # threshold 1 and a 200 ms backoff: a failing endpoint is retried every 200 ms, quick enough for tests
    out: dict[str, Any] = {"name": name, "url": url, "timeout": "2s", "threshold": 1, "backoff": "200ms"}
    if headers:
        out["headers"] = headers
    return out


@contextmanager
def registry_with_receiver(store: Path) -> Iterator[Setup]:
    receiver = EventReceiver(store, token=TOKEN).start()
    control = ControlSink()
    config = {
        "notifications": {
            "endpoints": [
                endpoint("dreg-frames", receiver.url, {"Authorization": [f"Bearer {TOKEN}"]}),
                endpoint("control", control.url),
            ]
        }
    }
    setup = Setup(LocalRegistry(extra=config).start(), receiver, control, store)
    try:
        yield setup
    finally:
        setup.registry.cleanup()
        setup.receiver.close()
        control.stop()


def wait_for(what: str, condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll until ``condition()``; a deadline for waiting, not an assertion about speed."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout:.0f} s")
        time.sleep(0.05)


def skopeo(*args: str) -> bytes:
    assert shutil.which("skopeo"), "skopeo is missing: the README's test command installs it"
    done = subprocess.run(["skopeo", *args], capture_output=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout
