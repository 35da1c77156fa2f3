"""A hostile or broken registry (tests/hostile_server.py) cannot steal credentials, hang a crawl,
exhaust memory or end it: every hostile value is an errors row, every request ends within its
deadline, every body stops at its cap. Figures (peak memory, time to end) are printed with -s."""

from __future__ import annotations

import importlib
import json
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dreg_frames import (
    AuthenticationError,
    ContentTooLarge,
    Crawl,
    DregError,
    LocalRegistry,
    NotFound,
    Registry,
    RegistryError,
    crawl,
)
from dreg_frames.client.http import default_retry
from dreg_frames.client.limits import MAX_LIST_BYTES, Limits

from .hostile_server import (
    Answer,
    HostileServer,
    Seen,
    digest_of,
    gzip_bomb,
    json_answer,
    nested,
)
from .pki import self_signed, server_cert

CREDS = ("alice", "hostile-test-password-42")
TOKEN = "good-token"
BOMB = 256 * 1024 * 1024  # decoded bytes of every gzip bomb: 16 times the largest cap
# Peak memory a crawl may take under any one bomb, documented in the README ("Reliability").
PEAK_BOUND = 64 * 1024 * 1024


def _registry(server: HostileServer, **kwargs: object) -> Registry:
    kwargs.setdefault("retry", default_retry(total=2, backoff=0.01, max_backoff=0.05, max_retry_after=0.1))
    kwargs.setdefault("timeout", (2.0, 5.0))
    return Registry.build_with_manual_client(server.url, **kwargs)  # type: ignore[arg-type]


def _crawl(server: HostileServer, names: list[str] | None = None, **kwargs: object) -> Crawl:
    return crawl(_registry(server, **kwargs), names, progress=False, workers=4)


def _errors(result: Crawl) -> dict[tuple[str, str], tuple[str, str]]:
    """(repository, stage) -> (error class, message)."""
    frame = result.errors
    return {
        (str(r["repository"]), str(r["stage"])): (str(r["error"]), str(r["message"]))
        for r in frame.to_dict("records")
    }


def _tagged(result: Crawl) -> set[str]:
    return set(result.tags["repository"].astype(str) + ":" + result.tags["tag"].astype(str))


@pytest.fixture()
def hostile() -> Iterator[HostileServer]:
    with HostileServer("127.0.0.1") as server:
        server.add_image("honest/app", "v1")
        yield server


@pytest.fixture()
def foreign() -> Iterator[HostileServer]:
    """Another host: 127.0.0.2."""
    with HostileServer("127.0.0.2") as server:
        yield server


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile-pki")
    ca = self_signed("hostile-test-ca")
    out = {"ca": ca.write(folder, "ca")[0]}
    for host in ("127.0.0.1", "127.0.0.2"):
        out[f"{host}.crt"], out[f"{host}.key"] = server_cert(ca, host).write(folder, host)
    return out


def _tls(pki: dict[str, Path], host: str) -> tuple[Path, Path]:
    return pki[f"{host}.crt"], pki[f"{host}.key"]


def _bearer_gate(realm: str, only: str = "") -> Callable[[Seen], Answer | None]:
    """Every /v2/ request (under ``only``, if given) needs ``Bearer good-token``; the 401 names ``realm``."""

    def rule(seen: Seen) -> Answer | None:
        if not seen.route.startswith(f"/v2/{only}") or seen.headers.get("Authorization") == f"Bearer {TOKEN}":
            return None
        challenge = f'Bearer realm="{realm}",service="hostile"'
        return json_answer({"errors": [{"code": "UNAUTHORIZED"}]}, 401, {"WWW-Authenticate": challenge})

    return rule


def _token_endpoint(answer: Callable[[Seen], Answer] | None = None) -> Callable[[Seen], Answer | None]:
    def rule(seen: Seen) -> Answer | None:
        if seen.route != "/token":
            return None
        return answer(seen) if answer is not None else json_answer({"token": TOKEN, "expires_in": 300})

    return rule


def _basic_sent(server: HostileServer) -> bool:
    import base64

    basic = "Basic " + base64.b64encode(f"{CREDS[0]}:{CREDS[1]}".encode()).decode()
    return basic in server.authorizations() or any(CREDS[1] in str(s.headers) for s in server.seen)


# -- 1. credentials never go to a host the rules exclude -----------------------------------------------


@pytest.mark.parametrize(
    ("registry_tls", "realm_host", "realm_tls", "allowed"),
    [
        (False, "127.0.0.2", False, False),  # another host over plain http
        (True, "127.0.0.2", False, False),  # https registry, plain http realm elsewhere
        (True, "127.0.0.1", False, False),  # https registry, plain http realm on its own host
        (True, "127.0.0.2", True, True),  # another host over https: allowed
        (False, "127.0.0.1", False, True),  # http registry, realm on its own host: as named
    ],
)
def test_token_realm_rules(
    pki: dict[str, Path], registry_tls: bool, realm_host: str, realm_tls: bool, allowed: bool
) -> None:
    with (
        HostileServer("127.0.0.1", _tls(pki, "127.0.0.1") if registry_tls else None) as server,
        HostileServer(realm_host, _tls(pki, realm_host) if realm_tls else None) as realm,
    ):
        server.add_image("team/app", "v1")
        realm.rules.append(_token_endpoint())
        server.rules.append(_bearer_gate(f"{realm.origin}/token"))
        registry = _registry(server, auth=CREDS, verify=str(pki["ca"]))
        if allowed:
            assert registry.repository("team/app").tags() == ["v1"]
            assert _basic_sent(realm)
        else:
            with pytest.raises(AuthenticationError, match="credentials") as info:
                registry.repository("team/app").tags()
            assert CREDS[1] not in str(info.value)
            assert not _basic_sent(realm) and not realm.seen  # the realm never heard from us


def test_http_realm_elsewhere_only_with_the_lab_opt_out_and_anonymous_goes_anywhere(
    hostile: HostileServer, foreign: HostileServer
) -> None:
    foreign.rules.append(_token_endpoint())
    hostile.rules.append(_bearer_gate(f"{foreign.origin}/token"))
    lab = _registry(hostile, auth=CREDS, allow_http_realm=True)
    assert lab.repository("honest/app").tags() == ["v1"]
    assert _basic_sent(foreign)
    foreign.seen.clear()
    anonymous = _registry(hostile, docker_config=False)
    assert anonymous.repository("honest/app").tags() == ["v1"]
    assert foreign.seen and not foreign.authorizations()


def test_a_redirect_targets_challenge_is_never_answered(tmp_path: Path, foreign: HostileServer) -> None:
    """The real registry (htpasswd) behind a proxy that sends blob GETs to another host, which
    answers 401 with its own realm, or asks for Basic auth: it never sees the password."""
    import bcrypt

    from .fault_proxy import Exchange, FaultProxy, Reply

    hashed = bcrypt.hashpw(CREDS[1].encode(), bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "htpasswd").write_text(f"{CREDS[0]}:{hashed}\n")
    foreign.rules.append(_token_endpoint())
    challenges = iter([f'Bearer realm="{foreign.origin}/token",service="cdn"', 'Basic realm="cdn"'])
    foreign.rules.append(lambda seen: Answer(401, {"WWW-Authenticate": next(challenges)}, b"{}"))
    auth = {"htpasswd": {"realm": "hostile", "path": str(tmp_path / "htpasswd")}}
    with LocalRegistry(auth=auth) as server, FaultProxy(server.port or 0) as proxy:

        def to_cdn(exchange: Exchange, forward: Callable[[], Reply]) -> Reply | None:
            if (
                exchange.method == "GET"
                and "/blobs/" in exchange.path
                and "Authorization" in exchange.headers
            ):
                return Reply(307, {"Location": f"{foreign.origin}/cdn{exchange.path}"})
            return None

        proxy.rules.append(to_cdn)
        registry = Registry.build_with_manual_client(proxy.url, auth=CREDS)
        blob = registry.repository("team/app").push_blob(b"a blob behind a hostile CDN")
        for _ in range(2):
            with pytest.raises(AuthenticationError, match="where the registry redirected") as info:
                registry.repository("team/app").blob_bytes(blob.digest)
            assert info.value.status == 401
    assert len([s for s in foreign.seen if s.route.startswith("/cdn/")]) == 2
    assert not foreign.authorizations() and not _basic_sent(foreign)
    assert not any(s.route == "/token" for s in foreign.seen)


# -- 5. a trickle never hangs a crawl --------------------------------------------------------------------


def test_trickled_headers_and_bodies_end_at_the_deadline(hostile: HostileServer) -> None:
    hostile.add_image("slow/head", "v1")
    hostile.add_image("slow/body", "v1")
    hostile.add_image("slow/tags", "v1")
    body_digest = hostile.repositories["slow/body"]["v1"]
    body = hostile.manifests[body_digest][0]

    def trickle(seen: Seen) -> Answer | None:
        if seen.route == "/v2/slow/head/manifests/v1":
            return Answer(200, {"X-Pad": "p" * 5000}, b"{}", trickle=0.01)  # headers: 50 s
        if seen.route == "/v2/slow/body/manifests/v1":
            headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
            return Answer(200, headers, body, trickle=0.05, trickle_body_only=True)
        if seen.route == "/v2/slow/tags/tags/list":
            return Answer(
                200, {}, b'{"tags": ["v1"]' + b" " * 5000 + b"}", trickle=0.01, trickle_body_only=True
            )
        return None

    hostile.rules.append(trickle)
    started = time.monotonic()
    result = _crawl(hostile, limits=Limits(deadline=1.5))
    took = time.monotonic() - started
    print(
        f"\n[hang] 3 trickled answers (headers, body, tags list), 1.5 s deadline: crawl ended in {took:.2f} s"
    )
    errors = _errors(result)
    assert errors[("slow/head", "manifest")][0] == "DeadlineExceeded"
    assert errors[("slow/body", "manifest")][0] == "DeadlineExceeded"
    assert errors[("slow/tags", "tags")][0] == "DeadlineExceeded"
    assert "1.5 s" in errors[("slow/head", "manifest")][1]
    assert _tagged(result) == {"honest/app:v1"}


def test_the_retry_window_is_per_request(hostile: HostileServer) -> None:
    """A policy made long ago still retries and follows redirects (the window starts per request)."""
    registry = _registry(hostile, retry=default_retry(total=3, backoff=0.01, deadline=0.5))
    registry.ping()
    time.sleep(0.7)
    failures = iter([Answer(503, {}, b"busy")])
    hostile.rules.append(lambda seen: next(failures, None) if "tags/list" in seen.route else None)
    digest = hostile.repositories["honest/app"]["v1"]
    hostile.rules.append(
        lambda seen: (
            Answer(307, {"Location": f"/v2/honest/app/manifests/{digest}"})
            if seen.route.endswith("/manifests/v1")
            else None
        )
    )
    assert registry.repository("honest/app").tags() == ["v1"]
    assert registry.repository("honest/app").get_manifest("v1").digest == digest


# -- 6. bombs: every body stops at its cap, on decoded bytes -----------------------------------------------


def _bomb_cases(server: HostileServer) -> dict[str, tuple[Callable[[Seen], Answer | None], str, str]]:
    """case -> (rule, stage of the expected row, expected error class)."""
    gz = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    digest = server.add_image("bomb/app", "v1")
    config = json.loads(server.manifests[digest][0])["config"]["digest"]

    def on(route: str, answer: Answer) -> Callable[[Seen], Answer | None]:
        return lambda seen: answer if seen.route == route else None

    return {
        "tags list": (
            on("/v2/bomb/app/tags/list", Answer(200, gz, gzip_bomb(BOMB, b'{"tags": [', b"]}"))),
            "tags",
            "ContentTooLarge",
        ),
        "manifest": (
            on("/v2/bomb/app/manifests/v1", Answer(200, gz, gzip_bomb(BOMB, b'{"schemaVersion": 2', b"}"))),
            "manifest",
            "ContentTooLarge",
        ),
        "config": (
            on(f"/v2/bomb/app/blobs/{config}", Answer(200, gz, gzip_bomb(BOMB))),
            "config",
            "ContentTooLarge",
        ),
        "error body": (
            on("/v2/bomb/app/manifests/v1", Answer(404, gz, gzip_bomb(BOMB, b'{"errors": ['))),
            "manifest",
            "NotFound",
        ),
        "retried error body": (
            on("/v2/bomb/app/manifests/v1", Answer(503, gz, gzip_bomb(BOMB))),
            "manifest",
            "ServerError",
        ),
        "token": (
            _token_endpoint(lambda seen: Answer(200, gz, gzip_bomb(BOMB, b'{"token": "'))),
            "tags",
            "ContentTooLarge",
        ),
    }


def test_gzip_bombs_stop_at_the_cap_in_bounded_memory(hostile: HostileServer) -> None:
    cases = _bomb_cases(hostile)
    peaks: dict[str, int] = {}
    tracemalloc.start()
    try:
        for case, (rule, stage, error) in cases.items():
            hostile.rules[:] = [rule]
            if case == "token":
                hostile.rules.append(_bearer_gate(f"{hostile.origin}/token", only="bomb/"))
            tracemalloc.reset_peak()
            result = _crawl(hostile, ["bomb/app", "honest/app"], auth=CREDS)
            peaks[case] = tracemalloc.get_traced_memory()[1]
            assert _errors(result)[("bomb/app", stage)][0] == error, case
            assert "honest/app:v1" in _tagged(result), case
        hostile.rules[:] = [
            lambda seen: (
                Answer(200, {"Content-Encoding": "gzip"}, gzip_bomb(BOMB, b'{"repositories": ['))
                if seen.route == "/v2/_catalog"
                else None
            )
        ]
        tracemalloc.reset_peak()
        with pytest.raises(ContentTooLarge, match=r"Limits\.list_bytes"):
            _registry(hostile).catalog()
        peaks["catalog"] = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(f"\n[memory] {BOMB >> 20} MiB gzip bombs; peak traced memory of each crawl:")
    for case, peak in peaks.items():
        print(f"  {case:<20} {peak / 2**20:6.1f} MiB")
    assert max(peaks.values()) < PEAK_BOUND, peaks
    assert max(peaks.values()) > MAX_LIST_BYTES  # the list caps were really reached, not dodged


# -- 7. endless pagination -------------------------------------------------------------------------------


def test_endless_and_huge_lists_are_bounded(hostile: HostileServer) -> None:
    hostile.add_image("endless/app", "v1")
    hostile.add_image("wide/app", "v1")

    def endless(seen: Seen) -> Answer | None:
        if seen.route == "/v2/endless/app/tags/list":
            page = int(seen.query.get("last", ["0"])[0])
            link = f'</v2/endless/app/tags/list?n=1000&last={page + 1}>; rel="next"'
            return json_answer({"tags": [f"t{page}-{i}" for i in range(50)]}, headers={"Link": link})
        if seen.route == "/v2/wide/app/tags/list":
            return json_answer({"tags": [f"t{i}" for i in range(3000)]})
        if seen.route == "/v2/_catalog":
            page = int(seen.query.get("last", ["0"])[0] or 0)
            return json_answer(
                {"repositories": [f"r{page}"]}, headers={"Link": f"</v2/_catalog?last={page + 1}>; rel=next"}
            )
        return None

    hostile.rules.append(endless)
    result = _crawl(
        hostile, ["endless/app", "wide/app", "honest/app"], limits=Limits(list_pages=20, list_items=2000)
    )
    errors = _errors(result)
    assert (
        errors[("endless/app", "tags")][0] == "ContentTooLarge"
        and "20 pages" in errors[("endless/app", "tags")][1]
    )
    assert (
        errors[("wide/app", "tags")][0] == "ContentTooLarge"
        and "2000 entries" in errors[("wide/app", "tags")][1]
    )
    assert _tagged(result) == {"honest/app:v1"}
    pages = [s for s in hostile.seen if s.route == "/v2/endless/app/tags/list"]
    assert len(pages) == 20
    with pytest.raises(ContentTooLarge, match=r"Limits\.list_pages"):
        _registry(hostile, limits=Limits(list_pages=5)).catalog()


# -- 9, 10, 11. hostile values: one errors row each, the crawl goes on ------------------------------------


def test_hostile_values_become_rows(hostile: HostileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    deep = nested(100_000)
    hostile.add_image("nest/manifest", "v1", manifest=deep)
    hostile.add_image("nest/config", "v1", config=deep)
    hostile.add_image("nest/tags", "v1")
    hostile.add_image("nest/error", "v1")
    hostile.add_image("huge/size", "v1", layer_size=2**63)
    hostile.add_image("gzip/app", "v1")
    hostile.add_image("memory/app", "v1")
    v1 = hostile.repositories["honest/app"]["v1"]
    gz_digest = hostile.repositories["gzip/app"]["v1"]
    memory_digest = hostile.repositories["memory/app"]["v1"]
    import gzip

    def lie(seen: Seen) -> Answer | None:
        if seen.route == "/v2/_catalog":
            return json_answer({"repositories": [*sorted(hostile.repositories), "Bad Name/../x", "a" * 5000]})
        if seen.route == "/v2/nest/tags/tags/list":
            return Answer(200, {"Content-Type": "application/json"}, deep)
        if seen.route == "/v2/nest/error/manifests/v1":
            return Answer(404, {"Content-Type": "application/json"}, deep)
        if seen.route == "/v2/honest/app/tags/list":
            return json_answer({"tags": ["v1", v1, "../etc"]})  # a digest is not a tag
        if seen.route == "/v2/gzip/app/manifests/v1":
            body = hostile.manifests[gz_digest][0]
            packed = gzip.compress(body)
            headers = {"Content-Encoding": "gzip", "Docker-Content-Digest": gz_digest}
            return Answer(
                200, {**headers, "Content-Type": "application/vnd.oci.image.manifest.v1+json"}, packed
            )
        return None

    hostile.rules.append(lie)
    from dreg_frames.client.manifests import parse_manifest as real_parse

    def parse(body: bytes, content_type: str | None = None, digest: str | None = None) -> object:
        if digest == memory_digest:
            raise MemoryError()
        return real_parse(body, content_type, digest)

    monkeypatch.setattr(importlib.import_module("dreg_frames.crawl.crawler"), "parse_manifest", parse)
    result = _crawl(hostile)
    errors = _errors(result)
    assert errors[("nest/manifest", "manifest")][0] == "ManifestError"
    assert errors[("nest/config", "config")][0] == "ManifestError"
    assert errors[("nest/tags", "tags")][0] == "RegistryError"
    assert errors[("nest/error", "manifest")][0] == "NotFound"
    assert errors[("huge/size", "manifest")][0] == "ManifestError"
    assert errors[("memory/app", "manifest")][0] == "MemoryError"
    assert errors[("Bad Name/../x", "catalog")][0] == "InvalidReference"
    assert errors[("a" * 200, "catalog")][0] == "InvalidReference"
    skipped = result.errors[
        (result.errors["repository"] == "honest/app") & (result.errors["stage"] == "tags")
    ]
    assert len(skipped) == 2 and all("skipped" in m for m in skipped["message"])
    assert not [s for s in hostile.seen if s.route == f"/v2/honest/app/manifests/{v1}" and s.method == "GET"]
    # the config of a lost config keeps its layers; gzip with a Content-Length is not "truncated"
    assert {"honest/app:v1", "gzip/app:v1", "nest/config:v1"} <= _tagged(result)
    assert ("gzip/app", "manifest") not in errors
    assert len(result.layers[result.layers["repository"] == "nest/config"]) == 1
    # a nested catalog is a clear error, not a RecursionError
    hostile.rules.insert(0, lambda seen: Answer(200, {}, deep) if seen.route == "/v2/_catalog" else None)
    with pytest.raises(RegistryError, match="not valid JSON"):
        crawl(_registry(hostile), progress=False)


def test_hostile_tokens_become_rows_and_are_never_shown(hostile: HostileServer) -> None:
    secret = "secret-token-value-9f8e7d"

    def token(seen: Seen) -> Answer:
        scope = seen.query.get("scope", [""])[0]
        if "tok/crlf" in scope:
            return json_answer({"token": f"{secret}\r\nX-Injected: 1"})
        if "tok/nested" in scope:
            return Answer(200, {"Content-Type": "application/json"}, nested(100_000))
        if "tok/bomb" in scope:
            return Answer(200, {"Content-Encoding": "gzip"}, gzip_bomb(BOMB, b'{"token": "'))
        return json_answer({"token": TOKEN})

    for name in ("tok/crlf", "tok/nested", "tok/bomb", "tok/fine"):
        hostile.add_image(name, "v1")
    hostile.rules[:] = [_token_endpoint(token), _bearer_gate(f"{hostile.origin}/token", only="tok/")]
    result = _crawl(hostile, ["tok/crlf", "tok/nested", "tok/bomb", "tok/fine", "honest/app"], auth=CREDS)
    errors = _errors(result)
    assert errors[("tok/crlf", "tags")][0] == "AuthenticationError"
    assert errors[("tok/nested", "tags")][0] == "AuthenticationError"
    assert errors[("tok/bomb", "tags")][0] == "ContentTooLarge"
    assert _tagged(result) == {"tok/fine:v1", "honest/app:v1"}
    text = result.errors.to_csv()
    assert secret not in text and CREDS[1] not in text
    assert not any("X-Injected" in str(s.headers) for s in hostile.seen)


# -- 12, 13. the command line: one line per mistake, no secret echoed ------------------------------------


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["crawl", "http://127.0.0.1:9/", "-o", "{file}"], "is not a folder"),
        (["crawl", "http://127.0.0.1:9/", "-o", "{dir}/out", "--cache", "{file}"], "--cache"),
        (["crawl", "http://127.0.0.1:9/", "-o", "{dir}/out", "--workers", "0"], "at least 1"),
        (["stale", "http://127.0.0.1:9/", "--older-than", "banana"], "banana"),
        (["stale", "http://127.0.0.1:9/", "--keep", "["], "regular expression"),
        (["delete", "http://127.0.0.1:9/", "a/b@sha256:" + "a" * 64, "--audit-log", "{dir}"], "is a folder"),
        (["usage", "http://127.0.0.1:9/", "--csv", "{dir}/missing/x.csv"], "does not exist"),
        (["crawl", "http://127.0.0.1:9/", "-o", "{dir}/o", "--password", "hunter2-secret"], "--password"),
        (["crawl", "ftp://bob:hunter2-secret@registry.example", "-o", "{dir}/o"], "credentials"),
        (["crawl", "https://bob:hunter2-secret@registry.example", "-o", "{dir}/o"], "credentials"),
    ],
)
def test_cli_mistakes_are_one_line_without_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    from dreg_frames.cli import main

    (tmp_path / "a-file").write_text("x")
    args = [a.replace("{file}", str(tmp_path / "a-file")).replace("{dir}", str(tmp_path)) for a in argv]
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's own exit
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("dreg-frames: hint:")]
    assert code != 0 and len(lines) == 1, err
    assert says in lines[0] and "Traceback" not in err and "hunter2" not in err
    assert "cannot reach" not in err  # refused before any crawl


# -- 18. every response names its request -------------------------------------------------------------


def test_responses_are_absolute_and_errors_name_method_and_url(hostile: HostileServer) -> None:
    registry = _registry(hostile)
    repo = registry.repository("honest/app")
    manifest = repo.get_manifest("v1")
    response = repo.get_blob(manifest.layers[0].digest)  # type: ignore[union-attr]
    assert response.url == f"{hostile.url}honest/app/blobs/{manifest.layers[0].digest}"  # type: ignore[union-attr]
    assert response.request is not None and response.request.method == "GET"
    assert response.request.url == response.url
    with pytest.raises(NotFound) as info:
        registry.repository("nobody/here").tags()
    assert f"GET {hostile.url}nobody/here/tags/list -> HTTP 404" in str(info.value)
    assert "?" not in str(info.value)


def test_the_honest_half_of_the_hostile_server_is_honest(hostile: HostileServer) -> None:
    """A check of the test tool itself: without rules, a crawl of it is clean and exact."""
    result = _crawl(hostile)
    assert result.errors.empty
    digest = hostile.repositories["honest/app"]["v1"]
    assert digest == digest_of(hostile.manifests[digest][0])
    assert list(result.tags["digest"].astype(str)) == [digest]


def test_limits_are_checked() -> None:
    with pytest.raises(DregError, match="positive"):
        Limits(deadline=0)
