"""dreg-client's callers catch requests' exceptions: the one place dreg-frames' errors become those.

The dreg-frames error stays attached as ``__cause__`` (status, registry error codes, what was asked).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import requests

from ...client.errors import RegistryError, TLSError, TransportError

__all__ = ["requests_errors"]


@contextmanager
def requests_errors() -> Iterator[None]:
    """Raise what ``requests`` + ``raise_for_status()`` would have raised for the same answer.

    An error status becomes ``requests.HTTPError`` (``.response`` set); a 2xx answer whose body was
    unusable becomes the ``ValueError`` that reading its JSON gives; no answer at all becomes
    ``requests.ConnectionError`` (``SSLError`` for TLS).
    """
    try:
        yield
    except RegistryError as exc:
        raise _from_registry_error(exc) from exc
    except TLSError as exc:
        raise requests.exceptions.SSLError(str(exc)) from exc
    except TransportError as exc:
        raise requests.exceptions.ConnectionError(str(exc)) from exc


def _from_registry_error(exc: RegistryError) -> Exception:
    response = exc.response
    if response is None:
        return requests.HTTPError(str(exc))
    if response.status_code >= 400:
        try:
            response.raise_for_status()
        except requests.HTTPError as http_error:
            return http_error
    try:
        response.json()
    except ValueError as bad_json:
        return bad_json
    return ValueError(str(exc))  # JSON, but not of the shape the API promises
