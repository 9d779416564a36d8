"""What every authenticated endpoint receives: the bearer token, and a way to open its session."""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .context import user_session

_bearer = HTTPBearer(auto_error=False, description="A token from `python cli.py token create`.")


def bearer_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str | None:
    return credentials.credentials if credentials else None


Token = Annotated[str | None, Depends(bearer_token)]


def session(request: Request, token: str | None):
    """The caller's transaction (a context manager) on the app's pool."""
    return user_session(request.app.state.pool, token)
