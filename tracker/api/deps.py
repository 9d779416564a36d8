"""What every authenticated endpoint receives: the bearer token, and a way to open its session."""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tracker.api.context import unauthorized, user_session

_bearer = HTTPBearer(auto_error=False, description="A token from `python cli.py token create`.")


async def bearer_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The token; without one the request is a 401 before any of its input is judged."""
    if credentials is None or not credentials.credentials:
        raise unauthorized(
            "No token. Send Authorization: Bearer TOKEN (create one with "
            "`python cli.py token create --user EMAIL`)."
        )
    return credentials.credentials


Token = Annotated[str, Depends(bearer_token)]


def session(request: Request, token: str):
    """The caller's transaction (a context manager) on the app's pool."""
    return user_session(request.app.state.pool, token)
