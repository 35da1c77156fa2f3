"""The type names dreg-client's own example script imports."""

from __future__ import annotations

from collections.abc import Callable

from requests import PreparedRequest

# What requests accepts as ``auth``: a (user, password) pair or a callable that signs the request.
RequestsAuth = Callable[[PreparedRequest], PreparedRequest] | tuple[str, str] | None

__all__ = ["RequestsAuth"]
