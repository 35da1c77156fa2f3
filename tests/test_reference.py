from __future__ import annotations

import pytest

from dreg_frames import InvalidReference, check_digest, check_name, check_tag, parse_reference
from dreg_frames.client.reference import check_reference

GOOD_DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "name", ["app", "team1/app", "a/b/c", "my-app", "my__app", "my.app", "a--b", "x" * 255]
)
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "App",
        "../x",
        "a/../b",
        "a//b",
        "/a",
        "a/",
        "a%2fb",
        "%2e%2e",
        "a\nb",
        "a b",
        "ä",
        "-a",
        "a-",
        "a___b",
        "x" * 256,
        "a:b",
        "a@b",
        None,
        5,
    ],
)
def test_invalid_names_name_value_and_rule(name: object) -> None:
    with pytest.raises(InvalidReference) as info:
        check_name(name)
    assert info.value.kind == "name"
    assert repr(name) in str(info.value)
    assert "lowercase" in str(info.value)


@pytest.mark.parametrize("tag", ["v1", "latest", "1.0.0-rc.1", "_x", "A" * 128])
def test_valid_tags(tag: str) -> None:
    assert check_tag(tag) == tag


@pytest.mark.parametrize("tag", ["", ".x", "-x", "a/b", "a\n", "a" * 129, "..", "%2e", "tä"])
def test_invalid_tags(tag: str) -> None:
    with pytest.raises(InvalidReference, match="invalid tag"):
        check_tag(tag)


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "sha256:",
        "sha256",
        "md5:x/y",
        "sha256:" + "a" * 64 + "\n",
        "",
    ],
)
def test_invalid_digests(digest: str) -> None:
    with pytest.raises(InvalidReference, match="invalid digest"):
        check_digest(digest)


def test_reference_picks_rule_by_shape() -> None:
    assert check_reference(GOOD_DIGEST) == GOOD_DIGEST
    assert check_reference("v1") == "v1"
    with pytest.raises(InvalidReference, match="digest"):
        check_reference("sha256:zz")


def test_parse_reference() -> None:
    ref = parse_reference(f"team/app:v1@{GOOD_DIGEST}")
    assert (ref.name, ref.tag, ref.digest) == ("team/app", "v1", GOOD_DIGEST)
    assert str(ref) == f"team/app:v1@{GOOD_DIGEST}"
    assert parse_reference("team/app").tag is None
    with pytest.raises(InvalidReference):
        parse_reference("team/app@")
    with pytest.raises(InvalidReference):
        parse_reference("Team/app:v1")
