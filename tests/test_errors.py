"""Mapping of error answers to the exception tree (responses built by hand: this is the mapping alone)."""

from __future__ import annotations

import json

import pytest
import requests

from dreg_frames import (
    AuthenticationError,
    BadRequest,
    BlobNotFound,
    DregError,
    ManifestNotFound,
    NotFound,
    PaginationError,
    PermissionDenied,
    RegistryError,
    RepositoryNotFound,
    ServerError,
    TooManyRequests,
    UnsupportedOperation,
)
from dreg_frames.client.errors import error_from_response


def _response(status: int, body: object = None, headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body if isinstance(body, bytes) else json.dumps(body).encode() if body else b""
    response.headers.update(headers or {})
    response.url = "http://127.0.0.1:5000/v2/x/manifests/v1?_state=secret"
    response.request = requests.Request("GET", response.url).prepare()
    return response


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "PAGINATION_NUMBER_INVALID", PaginationError),
        (400, "DIGEST_INVALID", BadRequest),
        (401, "UNAUTHORIZED", AuthenticationError),
        (403, "DENIED", PermissionDenied),
        (404, "MANIFEST_UNKNOWN", ManifestNotFound),
        (404, "NAME_UNKNOWN", RepositoryNotFound),
        (404, "BLOB_UNKNOWN", BlobNotFound),
        (404, None, NotFound),
        (405, "UNSUPPORTED", UnsupportedOperation),
        (429, "TOOMANYREQUESTS", TooManyRequests),
        (503, None, ServerError),
        (418, None, RegistryError),
    ],
)
def test_status_and_code_pick_the_class(status: int, code: str | None, cls: type[RegistryError]) -> None:
    body = {"errors": [{"code": code, "message": "msg", "detail": {}}]} if code else None
    error = error_from_response(_response(status, body), "get x:v1")
    assert type(error) is cls
    assert isinstance(error, DregError)
    assert error.status == status
    assert error.codes == ((code,) if code else ())
    assert error.response is not None
    assert str(error).startswith("get x:v1: GET http://127.0.0.1:5000/v2/x/manifests/v1 -> HTTP")
    assert "secret" not in str(error)


def test_a_code_that_contradicts_the_status_does_not_win() -> None:
    error = error_from_response(_response(500, {"errors": [{"code": "MANIFEST_UNKNOWN"}]}))
    assert type(error) is ServerError


def test_html_error_pages_are_tolerated() -> None:
    error = error_from_response(_response(502, b"<html>bad gateway</html>"))
    assert type(error) is ServerError and error.codes == ()


def test_retry_after_hint() -> None:
    error = error_from_response(_response(429, None, {"Retry-After": "7"}))
    assert isinstance(error, TooManyRequests) and error.retry_after == 7.0
