"""Run Debian's ``docker-registry`` (the CNCF Distribution registry) on loopback.

The demo and the test suite both use this: a real registry on a free 127.0.0.1 port with its own
storage directory, stopped by its pid::

    with LocalRegistry() as local:
        registry = Registry.build_with_manual_client(local.url)
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from .client.errors import DregError

__all__ = ["LocalRegistry", "RegistryBinaryMissing", "find_registry_binary"]

_CANDIDATES = ("docker-registry", "registry")


class RegistryBinaryMissing(DregError):
    """The Distribution registry binary is not installed (``apt-get install docker-registry``)."""


def find_registry_binary() -> str:
    """Path of the registry binary (``$DREG_REGISTRY_BINARY`` or ``docker-registry`` on PATH)."""
    override = os.environ.get("DREG_REGISTRY_BINARY")
    if override:
        return override
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise RegistryBinaryMissing(
        "the Distribution registry is not installed: run 'apt-get install docker-registry' "
        "(Debian) or set DREG_REGISTRY_BINARY to the registry binary"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LocalRegistry:
    """A Distribution registry process on 127.0.0.1 with a private storage directory.

    ``auth`` and ``tls`` are merged into the registry's config (``auth:`` section, and
    ``{"certificate": ..., "key": ...}`` under ``http.tls``); ``extra`` into its top level.
    """

    def __init__(
        self,
        storage: str | Path | None = None,
        *,
        delete_enabled: bool = True,
        port: int | None = None,
        auth: dict[str, Any] | None = None,
        tls: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self._own_dir = storage is None
        self.root = Path(storage) if storage is not None else Path(tempfile.mkdtemp(prefix="dreg-registry-"))
        self.storage = self.root / "storage" if self._own_dir else self.root
        self.delete_enabled = delete_enabled
        self.port = port
        self.auth = auth
        self.tls = tls
        self.extra = extra or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.config_path = (
            self.root if self._own_dir else Path(tempfile.mkdtemp(prefix="dreg-cfg-"))
        ) / "config.yml"
        self.log_path = self.config_path.with_name("registry.log")

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/v2/"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise DregError("the local registry is not running")
        return self.process.pid

    def config(self) -> dict[str, Any]:
        http: dict[str, Any] = {"addr": f"127.0.0.1:{self.port}", "secret": "dreg-frames-local"}
        if self.tls:
            http["tls"] = dict(self.tls)
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                # As Debian's packaged config has it: saves a filesystem stat per blob lookup.
                "cache": {"blobdescriptor": "inmemory"},
                "delete": {"enabled": self.delete_enabled},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": http,
        }
        if self.auth:
            config["auth"] = self.auth
        config.update(self.extra)
        return config

    def write_config(self) -> Path:
        # YAML is a superset of JSON, so the registry reads this without a YAML library here.
        self.storage.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        return self.config_path

    def start(self, timeout: float = 20.0) -> LocalRegistry:
        """Start the registry and wait until ``/v2/`` answers."""
        binary = find_registry_binary()
        for _ in range(3):
            if self.port is None or self.process is not None:
                self.port = free_port()
            self.write_config()
            log = open(self.log_path, "ab")  # noqa: SIM115 - the child process owns it
            self.process = subprocess.Popen(
                [binary, "serve", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            log.close()
            if self._wait_ready(timeout):
                # The registry runs in its own session, so it would outlive a notebook kernel or a
                # crashed script: stop it when this interpreter exits, whatever the caller forgot.
                atexit.register(self.stop)
                return self
            self.stop()
        raise DregError(f"the local registry did not start; see {self.log_path}: {self._log_tail()}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                # Any HTTP answer (200, or 401 with auth on) means it is serving; the certificate
                # of a TLS test registry is the tests' business, not the readiness check's.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    requests.get(self.url, timeout=1, verify=False)
                return True
            except requests.exceptions.RequestException:
                time.sleep(0.05)
        return False

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-800:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stop the registry process (SIGTERM, then SIGKILL)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def garbage_collect(self, delete_untagged: bool = False) -> str:
        """Run ``docker-registry garbage-collect`` on the storage (the registry should be idle)."""
        args = [find_registry_binary(), "garbage-collect", str(self.config_path)]
        if delete_untagged:
            args.insert(2, "--delete-untagged")
        done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=300)
        if done.returncode != 0:
            raise DregError(f"garbage-collect failed: {done.stderr[-800:]}")
        return done.stdout

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the registry process has used (from /proc/<pid>/stat)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()
