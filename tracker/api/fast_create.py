"""POST /api/v1/expenses, the busiest request, answered before FastAPI's per-request machinery.

The FastAPI route in routes_expenses.py is the specification: it is what the OpenAPI schema
documents, and it answers every request this path does not. This route only answers the plain
success (no Idempotency-Key, a Bearer token, a JSON body the route's own model and rules accept,
an expense recorded) and gives everything else, unchanged, to the FastAPI route: a refusal
costs one more pass, and its answer is the FastAPI route's own. It skips what a 201 does not
need: FastAPI's dependency resolution and request validation machinery (about half of the
server's time per POST), the worker-thread hop of a sync endpoint, and re-rendering.

The body is read as FastAPI reads it (json.loads, then the ExpenseIn model in Python mode, so a
body is accepted exactly when the route accepts it), the values are checked by the same
checked_body(), and the expense is recorded by the same one statement (api_record_expense(), as
record_as_caller() sends it); a refused row (unknown token, category, currency) wrote nothing,
so handing the request on records nothing twice. The 201 is created_response(), as the route
renders it. Exceptions (the database unreachable, ...) reach the app's problem handlers as the
route's do: this route sits in the app's router, inside its exception middleware.
"""

import asyncio
import json
from typing import Any

from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from tracker.api.context import record_as_caller
from tracker.api.problems import ApiProblem
from tracker.api.routes_expenses import checked_body, created, created_response, recording
from tracker.api.schemas import ExpenseIn
from tracker.everyday.expenses import SESSION_USER

PATH = "/api/v1/expenses"
# Set on a request this route handed on, so the router's second pass skips it.
_HANDED_ON = "tracker.fast_create.handed_on"


def _bearer(value: bytes | None) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header, read as HTTPBearer reads it."""
    scheme, token = get_authorization_scheme_param(
        None if value is None else value.decode("latin-1")
    )
    return token if scheme.lower() == "bearer" and token else None


class FastCreateRoute(BaseRoute):
    """The plain 201 of POST /api/v1/expenses; anything else goes to the FastAPI route."""

    def __init__(self, router) -> None:
        self.router = router  # the app's router, for the second pass

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] == PATH
            and _HANDED_ON not in scope
        ):
            return Match.FULL, {}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)  # it has no name: url_for finds the route

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left: nothing to answer
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        answer = await self._answer(scope, body)
        if answer is None:
            await self._hand_on(scope, receive, send, body)
        else:
            await answer(scope, receive, send)

    async def _answer(self, scope: Scope, body: bytes):
        """The 201 response, or None when the FastAPI route must answer."""
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name, value)  # the first of a repeated header, as Starlette
        token = _bearer(headers.get(b"authorization"))
        if (
            token is None
            or b"idempotency-key" in headers
            or headers.get(b"content-type") != b"application/json"
            or not body
        ):
            return None
        try:
            values = checked_body(ExpenseIn.model_validate(json.loads(body)))
            chosen = recording(SESSION_USER, values)
        except Exception:  # whatever the route refuses (and how) is the route's to answer
            return None
        state = scope["app"].state
        try:
            rows = await asyncio.get_running_loop().run_in_executor(
                state.record_threads, record_as_caller, state.pool, token, chosen
            )
        except ApiProblem:  # the token is unknown or revoked: nothing was written
            return None
        if rows[0]["problem"] is not None:
            return None
        answer = created(chosen, rows, values)
        return created_response(answer, {"Location": f"{PATH}/{answer.id}"})

    async def _hand_on(self, scope: Scope, receive: Receive, send: Send, body: bytes) -> None:
        """Run the request through the app's router again, where the FastAPI route takes it."""
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        scope[_HANDED_ON] = True
        await self.router(scope, replay, send)
