"""Authentication and TLS against the real registry in each auth mode: htpasswd, token, TLS."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import bcrypt
import pytest
import requests
import urllib3

from dreg_frames import (
    AuthenticationError,
    DregError,
    LocalRegistry,
    PermissionDenied,
    Registry,
    TLSError,
    make_layer,
    push_image,
)
from dreg_frames.client.auth import TokenAuthService
from dreg_frames.client.credentials import Credentials

from .fault_proxy import Exchange, FaultProxy, Reply
from .pki import self_signed, server_cert
from .token_server import ADMIN, REFRESH_TOKEN, SERVICE, TokenServer

READER = ("reader", "pa55-w0rd-reader")


@pytest.fixture(autouse=True)
def _no_docker_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from an empty Docker config, whatever the machine has."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path_factory.mktemp("empty-docker-config")))


@pytest.fixture(scope="module")
def htpasswd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    folder = tmp_path_factory.mktemp("htpasswd")
    hashed = bcrypt.hashpw(READER[1].encode(), bcrypt.gensalt(rounds=5)).decode()
    (folder / "htpasswd").write_text(f"{READER[0]}:{hashed}\n")
    with LocalRegistry(auth={"htpasswd": {"realm": "dreg-test", "path": str(folder / "htpasswd")}}) as server:
        yield server


@pytest.fixture(scope="module")
def token_setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalRegistry, TokenServer]]:
    folder = tmp_path_factory.mktemp("token")
    signer = self_signed("dreg-token-signer", ca=False)
    cert, _ = signer.write(folder, "signer")
    with TokenServer(signer) as tokens, LocalRegistry(auth=tokens.registry_auth(cert)) as server:
        admin = Registry.build_with_manual_client(server.url, auth=ADMIN)
        push_image(admin.repository("team/app"), [make_layer({"t": b"token"})], ["v1"])
        yield server, tokens


def test_htpasswd_right_credentials(htpasswd_server: LocalRegistry) -> None:
    registry = Registry.build_with_manual_client(htpasswd_server.url, auth=READER)
    pushed = push_image(registry.repository("basic/app"), [make_layer({"b": b"basic"})], ["v1"])
    assert registry.repository("basic/app").check_manifest("v1") == pushed.digest
    assert "basic/app" in registry.catalog()
    assert READER[1] not in repr(registry) + repr(registry.client) + repr(registry.client.auth)


def test_htpasswd_wrong_or_missing_credentials(htpasswd_server: LocalRegistry) -> None:
    wrong = Registry.build_with_manual_client(htpasswd_server.url, auth=(READER[0], "not-the-password"))
    with pytest.raises(AuthenticationError, match="rejected the password of user 'reader'") as info:
        wrong.catalog()
    assert "not-the-password" not in str(info.value) and info.value.status == 401
    anonymous = Registry.build_with_manual_client(htpasswd_server.url)
    with pytest.raises(AuthenticationError, match="wants a user name and password"):
        anonymous.repository("basic/app").tags()


def test_token_anonymous_reads_but_cannot_push_or_delete(
    token_setup: tuple[LocalRegistry, TokenServer],
) -> None:
    server, _ = token_setup
    anonymous = Registry.build_with_manual_client(server.url)
    repo = anonymous.repository("team/app")
    digest = repo.check_manifest("v1")
    assert digest is not None and repo.get_manifest("v1").digest == digest
    with pytest.raises(PermissionDenied, match="anonymous access may not do this"):
        push_image(repo, [make_layer({"x": b"anon"})], ["anon"])
    with pytest.raises(PermissionDenied):
        repo.delete_manifest(digest)
    with pytest.raises(PermissionDenied):
        anonymous.catalog()


def test_token_admin_pushes_lists_and_deletes(token_setup: tuple[LocalRegistry, TokenServer]) -> None:
    server, tokens = token_setup
    admin = Registry.build_with_manual_client(server.url, auth=ADMIN)
    repo = admin.repository("team/admin-app")
    pushed = push_image(repo, [make_layer({"a": b"admin"})], ["v1", "v2"])
    assert "team/admin-app" in admin.catalog()
    repo.delete_manifest(pushed.digest)
    assert repo.check_manifest("v1") is None
    users = {r["user"] for r in tokens.requests}
    assert "admin" in users


def test_tokens_are_cached_per_scope_and_not_stampeded(
    token_setup: tuple[LocalRegistry, TokenServer],
) -> None:
    server, tokens = token_setup
    registry = Registry.build_with_manual_client(server.url, auth=ADMIN)
    repo = registry.repository("team/app")
    before = len(tokens.requests)
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(5):
                assert repo.check_manifest("v1") is not None
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    fetched = tokens.requests[before:]
    assert [r["scopes"] for r in fetched] == [["repository:team/app:pull"]]


def test_an_expiring_token_is_renewed_before_it_fails(tmp_path: Path) -> None:
    signer = self_signed("short-lived", ca=False)
    cert, _ = signer.write(tmp_path, "signer")
    with (
        TokenServer(signer, expires_in=2) as tokens,
        LocalRegistry(auth=tokens.registry_auth(cert)) as server,
    ):
        registry = Registry.build_with_manual_client(server.url, auth=ADMIN)
        repo = registry.repository("short/app")
        push_image(repo, [make_layer({"s": b"short"})], ["v1"])
        assert repo.check_manifest("v1") is not None
        fetched = len(tokens.requests)
        time.sleep(2.1)
        sent = registry.client.requests_made
        assert repo.check_manifest("v1") is not None
        # renewed up front: one request, no 401 round trip, one more token
        assert registry.client.requests_made - sent == 1
        assert len(tokens.requests) == fetched + 1


def _docker_config(folder: Path, config: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))


def test_credential_helper_on_path(
    token_setup: tuple[LocalRegistry, TokenServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = token_setup
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-dregtest"
    helper.write_text(
        "#!/bin/sh\nread server\n"
        f'printf \'{{"ServerURL": "%s", "Username": "{ADMIN[0]}", "Secret": "{ADMIN[1]}"}}\' "$server"\n'
    )
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    _docker_config(
        tmp_path / "docker", {"credHelpers": {f"127.0.0.1:{server.port}": "dregtest"}}, monkeypatch
    )
    registry = Registry.build_with_manual_client(server.url)
    push_image(registry.repository("helper/app"), [make_layer({"h": b"helper"})], ["v1"])
    assert registry.client.auth.credentials is not None
    assert registry.client.auth.credentials.username == "admin"
    assert ADMIN[1] not in repr(registry.client.auth)


def test_docker_config_auths_and_identity_token(
    htpasswd_server: LocalRegistry,
    token_setup: tuple[LocalRegistry, TokenServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import base64

    encoded = base64.b64encode(f"{READER[0]}:{READER[1]}".encode()).decode()
    _docker_config(
        tmp_path / "a", {"auths": {f"127.0.0.1:{htpasswd_server.port}": {"auth": encoded}}}, monkeypatch
    )
    assert Registry.build_with_manual_client(htpasswd_server.url).catalog() is not None
    server, tokens = token_setup
    _docker_config(
        tmp_path / "b",
        {"auths": {f"http://127.0.0.1:{server.port}": {"identitytoken": REFRESH_TOKEN}}},
        monkeypatch,
    )
    registry = Registry.build_with_manual_client(server.url)
    push_image(registry.repository("identity/app"), [make_layer({"i": b"identity"})], ["v1"])
    assert tokens.requests[-1]["user"] == "admin"
    # and without the lookup, the same registry is anonymous
    with pytest.raises(PermissionDenied):
        push_image(
            Registry.build_with_manual_client(server.url, docker_config=False).repository("identity/app"),
            [make_layer({"j": b"j"})],
            ["v2"],
        )


def test_explicit_auth_service(token_setup: tuple[LocalRegistry, TokenServer]) -> None:
    server, tokens = token_setup
    service = TokenAuthService(tokens.realm, SERVICE, Credentials(*ADMIN))
    registry = Registry.build_with_manual_client(server.url, auth_service=service)
    push_image(registry.repository("service/app"), [make_layer({"v": b"svc"})], ["v1"])
    assert service.fetches >= 1


def test_secrets_stay_out_of_errors_and_logs(
    htpasswd_server: LocalRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "very-secret-value-123"
    caplog.set_level(logging.DEBUG)
    registry = Registry.build_with_manual_client(htpasswd_server.url, auth=(READER[0], secret))
    with pytest.raises(AuthenticationError) as info:
        registry.repository("basic/app").tags()
    text = " ".join(
        [str(info.value), repr(info.value), repr(registry), repr(registry.client.auth), caplog.text]
    )
    assert secret not in text


def test_authorization_is_not_sent_to_another_host_on_redirect(htpasswd_server: LocalRegistry) -> None:
    registry = Registry.build_with_manual_client(htpasswd_server.url, auth=READER)
    repo = registry.repository("basic/redirect")
    blob = repo.push_blob(b"blob behind a redirect")
    storage_seen: list[Exchange] = []

    def storage(exchange: Exchange, forward: object) -> Reply:
        storage_seen.append(exchange)
        data = requests.get(
            f"{htpasswd_server.url}basic/redirect/blobs/{blob.digest}", auth=READER, timeout=10
        )
        return Reply(200, {"Content-Type": "application/octet-stream"}, data.content)

    with FaultProxy(htpasswd_server.port or 0) as store:
        store.rules.append(storage)

        def redirect(exchange: Exchange, forward: object) -> Reply | None:
            if (
                exchange.method == "GET"
                and "/blobs/" in exchange.path
                and "Authorization" in exchange.headers
            ):
                return Reply(307, {"Location": f"http://localhost:{store.port}/storage{exchange.path}"})
            return None

        with FaultProxy(htpasswd_server.port or 0) as front:
            front.rules.append(redirect)
            via = Registry.build_with_manual_client(front.url, auth=READER)
            assert via.repository("basic/redirect").blob_bytes(blob.digest) == b"blob behind a redirect"
            assert any("Authorization" in e.headers for e in front.seen)
    assert storage_seen and all("Authorization" not in e.headers for e in storage_seen)


@pytest.fixture(scope="module")
def tls_setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalRegistry, Path, Path]]:
    folder = tmp_path_factory.mktemp("tls")
    ca = self_signed("dreg-test-ca")
    ca_path, _ = ca.write(folder, "ca")
    crt, key = server_cert(ca).write(folder, "server")
    other_ca, _ = self_signed("some-other-ca").write(folder, "other")
    with LocalRegistry(tls={"certificate": str(crt), "key": str(key)}) as server:
        yield server, ca_path, other_ca


def test_tls_verified_with_the_ca(
    tls_setup: tuple[LocalRegistry, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, ca, other = tls_setup
    assert server.url.startswith("https://")
    registry = Registry.build_with_manual_client(server.url, verify=str(ca))
    push_image(registry.repository("tls/app"), [make_layer({"t": b"tls"})], ["v1"])
    # requests lets REQUESTS_CA_BUNDLE override Session.verify; a CA named here must still win
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other))
    assert Registry.build_with_manual_client(server.url, verify=str(ca)).repository("tls/app").tags() == [
        "v1"
    ]


def test_tls_unknown_ca_fails_clearly(
    tls_setup: tuple[LocalRegistry, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _, other = tls_setup
    with pytest.raises(TLSError, match=r"verify='/path/to/ca\.pem'"):
        Registry.build_with_manual_client(server.url, retry=0).ping()
    with pytest.raises(TLSError):
        Registry.build_with_manual_client(server.url, verify=str(other), retry=0).ping()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other))
    with pytest.raises(TLSError):
        Registry.build_with_manual_client(server.url, retry=0).ping()
    # only an explicit verify=False turns verification off, and urllib3 still says so
    with pytest.warns(urllib3.exceptions.InsecureRequestWarning):
        Registry.build_with_manual_client(server.url, verify=False).ping()
    # a string is a CA path, never a way to say "off"
    with pytest.raises(DregError, match="no CA bundle there"):
        Registry.build_with_manual_client(server.url, verify="false")


def test_credentials_never_reach_the_audit_log(htpasswd_server: LocalRegistry, tmp_path: Path) -> None:
    from dreg_frames import crawl, execute, plan_delete

    registry = Registry.build_with_manual_client(htpasswd_server.url, auth=READER)
    repo = registry.repository("basic/audited")
    pushed = push_image(repo, [make_layer({"a": b"audited"})], ["v1"])
    log = tmp_path / "audit.csv"
    plan = plan_delete(crawl(registry, [repo.name], progress=False), [pushed.digest])
    assert list(execute(registry, plan, dry_run=False, audit_log=log)["outcome"]) == ["deleted"]
    text = log.read_text()
    assert READER[1] not in text and "Authorization" not in text and "deleted" in text


def test_challenges_without_service_or_scope(token_setup: tuple[LocalRegistry, TokenServer]) -> None:
    server, tokens = token_setup

    def bare_challenge(exchange: Exchange, forward: Callable[[], Reply]) -> Reply | None:
        reply = forward()
        if reply.status == 401:
            reply.headers["Www-Authenticate"] = f'Bearer realm="{tokens.realm}"'
        return reply

    with FaultProxy(server.port or 0) as proxy:
        proxy.rules.append(bare_challenge)
        registry = Registry.build_with_manual_client(proxy.url, auth=ADMIN)
        assert "team/app" in registry.catalog()
        assert registry.repository("team/app").check_manifest("v1") is not None
    asked = [r["scopes"] for r in tokens.requests[-2:]]
    assert asked == [["registry:catalog:*"], ["repository:team/app:pull"]]
    assert all(r["service"] is None for r in tokens.requests[-2:])


def _fresh_crawls_are_clean(url: str, names: list[str], auth: tuple[str, str] | None, runs: int = 3) -> None:
    """A fresh Registry crawled at once with 8 workers: the first challenge is met by many requests
    at the same time, and none of them may give up (issue 17)."""
    from dreg_frames import crawl

    for _ in range(runs):
        registry = Registry.build_with_manual_client(url, auth=auth)
        result = crawl(registry, names, workers=8, progress=False)
        assert result.errors.empty, result.errors[["repository", "stage", "message"]].to_dict("records")
        assert len(result.tags) == len(names)


def _push_many(registry: Registry, prefix: str, count: int = 16) -> list[str]:
    layer = make_layer({"many": prefix.encode()})
    names = [f"{prefix}/app{i}" for i in range(count)]
    for name in names:
        push_image(registry.repository(name), [layer], ["v1"])
    return names


def test_concurrent_first_requests_with_basic_auth(htpasswd_server: LocalRegistry) -> None:
    names = _push_many(Registry.build_with_manual_client(htpasswd_server.url, auth=READER), "race-basic")
    _fresh_crawls_are_clean(htpasswd_server.url, names, READER)


def test_concurrent_first_requests_with_docker_config(
    htpasswd_server: LocalRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64

    names = _push_many(Registry.build_with_manual_client(htpasswd_server.url, auth=READER), "race-config")
    encoded = base64.b64encode(f"{READER[0]}:{READER[1]}".encode()).decode()
    _docker_config(tmp_path, {"auths": {f"127.0.0.1:{htpasswd_server.port}": {"auth": encoded}}}, monkeypatch)
    _fresh_crawls_are_clean(htpasswd_server.url, names, None)


def test_concurrent_first_requests_with_token_auth(token_setup: tuple[LocalRegistry, TokenServer]) -> None:
    server, _ = token_setup
    names = _push_many(Registry.build_with_manual_client(server.url, auth=ADMIN), "race-token", count=10)
    _fresh_crawls_are_clean(server.url, names, ADMIN)
