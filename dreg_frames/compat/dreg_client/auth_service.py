"""dreg-client's token service names over dreg-frames' :class:`~dreg_frames.client.auth.TokenAuthService`.

Tokens are fetched from the realm with ``scope`` and ``service``, cached per scope until shortly
before ``expires_in`` runs out (60 s when absent), and accepted as ``token`` or ``access_token``:
all of that is dreg-frames' token service; this module only gives it dreg-client's constructor and
failure type.
"""

from __future__ import annotations

import requests

from ...client.auth import AuthService, TokenAuthService
from ...client.credentials import Credentials
from ...client.errors import AuthenticationError, DregError
from ._errors import requests_errors
from ._types import RequestsAuth

__all__ = ["AuthService", "AuthServiceFailure", "DockerTokenAuthService"]


class AuthServiceFailure(DregError):
    """The token service gave no usable token; ``__cause__`` says why when there is more to say."""


class DockerTokenAuthService:
    """A Docker token service (``realm`` of a ``Bearer`` challenge) that hands out bearer tokens.

    Example::

        tokens = DockerTokenAuthService.build_with_session("https://auth.example.com/token", "example.com")
        registry = Registry.build_with_manual_client("https://example.com/v2/", auth_service=tokens)
    """

    def __init__(self, session: requests.Session | TokenAuthService, /) -> None:
        """From a ``requests_toolbelt`` ``BaseUrlSession`` whose ``base_url`` is the realm and whose
        ``params["service"]`` names the service (dreg-client's way), or from a dreg-frames
        :class:`TokenAuthService`."""
        if isinstance(session, TokenAuthService):
            self._tokens = session
            return
        realm = getattr(session, "base_url", None)
        if not isinstance(realm, str):
            raise TypeError(
                "the session needs a base_url: the token realm (requests_toolbelt's BaseUrlSession)"
            )
        service = session.params.get("service") if isinstance(session.params, dict) else None
        verify = session.verify if isinstance(session.verify, (bool, str)) else True
        self._tokens = TokenAuthService(
            realm, str(service) if service else None, None, session=session, verify=verify
        )

    @classmethod
    def build_with_session(
        cls, base_url: str, service: str, /, *, auth: RequestsAuth = None
    ) -> DockerTokenAuthService:
        """A token service at ``base_url`` for ``service``; ``auth`` (Basic or requests auth) goes to it."""
        session = requests.Session()  # its own session: calls go through requests, so HTTP mocks see them
        credentials = None
        if isinstance(auth, tuple):
            credentials = Credentials(auth[0], auth[1])
        elif auth is not None:
            session.auth = auth
        return cls(TokenAuthService(base_url, service, credentials, session=session))

    def __repr__(self) -> str:
        return f"DockerTokenAuthService({self._tokens.realm!r}, {self._tokens.service!r})"

    def request_token(self, scope: str, /) -> str:
        """A bearer token for ``scope`` (e.g. ``repository:team/app:pull``), cached until it expires."""
        with requests_errors():  # an unreachable realm is requests.ConnectionError, as in dreg-client
            try:
                return self._tokens.request_token(scope)
            except AuthenticationError as exc:
                raise AuthServiceFailure("Failed to retrieve valid auth token.") from _why(exc)


def _why(exc: AuthenticationError) -> BaseException | None:
    # dreg-client's causes: the HTTP error, the JSON error, or none when the JSON lacked a token.
    response = exc.response
    if response is None or response.status_code != 200:
        return exc
    try:
        response.json()
    except ValueError as bad_json:
        return bad_json
    return None
