"""Property-based tests: parsers take arbitrary input and only the project's own errors escape."""

from __future__ import annotations

import contextlib
import json
import string
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dreg_frames import (
    DregError,
    InvalidReference,
    Registry,
    check_digest,
    check_name,
    check_tag,
    parse_config,
    parse_manifest,
    parse_reference,
)
from dreg_frames.client import mediatypes as mt
from dreg_frames.client.auth import parse_challenge, scope_for

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)
digests = st.sampled_from(["sha256:" + "a" * 64, "sha256:" + "0" * 63, "md5:zz", "", 5, None])
descriptor = st.fixed_dictionaries(
    {"digest": digests, "size": st.one_of(st.integers(-5, 10**9), st.text(max_size=3), st.none())},
    optional={
        "mediaType": st.sampled_from([mt.OCI_LAYER, 3, ""]),
        "platform": json_values,
        "annotations": json_values,
        "urls": json_values,
    },
)
manifest_like = st.fixed_dictionaries(
    {},
    optional={
        "schemaVersion": st.sampled_from([1, 2, "2", None]),
        "mediaType": st.sampled_from(
            [mt.OCI_MANIFEST, mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST, mt.DOCKER_SCHEMA1, "x", 7]
        ),
        "config": st.one_of(descriptor, json_values),
        "layers": st.one_of(st.lists(descriptor, max_size=3), json_values),
        "manifests": st.one_of(st.lists(descriptor, max_size=3), json_values),
        "fsLayers": json_values,
        "history": json_values,
        "subject": st.one_of(descriptor, json_values),
    },
)
NAME_CHARS = string.ascii_letters + string.digits + "._-/%:@ \n\t" + "äé\u2028"


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(manifest_like, json_values),
    st.sampled_from([None, mt.OCI_MANIFEST, mt.OCI_INDEX, "text/plain"]),
)
def test_manifest_parsing_raises_only_our_errors(data: Any, content_type: str | None) -> None:
    raw = json.dumps(data).encode()
    with contextlib.suppress(DregError):
        parse_manifest(raw, content_type)


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_manifest_parsing_of_arbitrary_bytes(raw: bytes) -> None:
    with contextlib.suppress(DregError):
        parse_manifest(raw)


config_like = st.fixed_dictionaries(
    {},
    optional={
        "created": st.one_of(
            st.text(max_size=30),
            st.sampled_from(
                ["2024-01-01T00:00:00.123456789Z", "1970-01-01T00:00:00Z", "2024-13-40T99:00:00Z"]
            ),
            json_values,
        ),
        "os": json_values,
        "architecture": json_values,
        "variant": json_values,
        "rootfs": json_values,
        "config": json_values,
        "history": json_values,
    },
)


@settings(max_examples=300)
@given(st.one_of(json_values, config_like))
def test_config_parsing_raises_only_our_errors(data: Any) -> None:
    try:
        config = parse_config(json.dumps(data).encode())
    except DregError:
        return
    # an unreadable date is None, never an exception (the text stays in created_raw)
    assert config.created is None or config.created.utcoffset() == timedelta(0)


@settings(max_examples=500)
@given(st.text(alphabet=NAME_CHARS, max_size=40))
def test_accepted_names_cannot_escape_a_url(text: str) -> None:
    try:
        name = check_name(text)
    except InvalidReference as exc:
        assert repr(text) in str(exc)
        return
    assert ".." not in name.split("/") and "%" not in name and name == name.strip()
    assert all(c in string.ascii_lowercase + string.digits + "._-/" for c in name)
    assert not name.startswith("/") and "//" not in name


@settings(max_examples=500)
@given(st.text(alphabet=NAME_CHARS, max_size=140))
def test_accepted_tags_and_digests_are_plain(text: str) -> None:
    for check in (check_tag, check_digest):
        try:
            value = check(text)
        except InvalidReference:
            continue
        assert "/" not in value and "%" not in value and not any(c.isspace() for c in value)
        assert value.isascii()


@settings(max_examples=300)
@given(st.text(alphabet=NAME_CHARS, max_size=80))
def test_reference_parsing_never_crashes(text: str) -> None:
    try:
        ref = parse_reference(text)
    except InvalidReference:
        return
    assert parse_reference(str(ref)) == ref


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=NAME_CHARS, min_size=1, max_size=30))
def test_bad_input_never_reaches_the_network(text: str) -> None:
    registry = Registry.build_with_manual_client("http://127.0.0.1:9/v2/", retry=0)
    repo = registry.repository("team/app")
    for call in (repo.get_manifest, repo.check_manifest, repo.delete_manifest, repo.get_blob):
        try:
            if call in (repo.get_manifest, repo.check_manifest):
                (check_tag if ":" not in text else check_digest)(text)
            else:
                check_digest(text)
        except InvalidReference:
            before = registry.client.requests_made
            with contextlib.suppress(InvalidReference):
                call(text)
            assert registry.client.requests_made == before


@settings(max_examples=300)
@given(st.text(max_size=120), st.sampled_from(["GET", "HEAD", "PUT", "DELETE", "POST"]), st.text(max_size=60))
def test_challenge_and_scope_parsing_never_crash(header: str, method: str, path: str) -> None:
    parse_challenge(header)
    scope = scope_for(method, path)
    assert scope is None or scope.startswith(("repository:", "registry:"))
