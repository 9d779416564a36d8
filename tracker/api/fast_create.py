"""POST /api/v1/expenses, the busiest request, answered in front of the FastAPI app.

The FastAPI route in routes_expenses.py is the specification: it is what the OpenAPI schema
documents, and it answers every request this path does not. PlainCreate, the ASGI app that
`serve` runs, wraps the FastAPI app: it only answers the plain success of that route (no
Idempotency-Key, a Bearer token, a JSON body the route's own model and rules accept, an expense
recorded) and gives everything else, unchanged, to the FastAPI app: a refusal costs one more
pass, and its answer is the FastAPI route's own. It skips what a 201 does not need: the
app's middleware stack, FastAPI's dependency resolution and request validation machinery
(together more than half of the server's CPU per POST), the AnyIO worker-thread hop of a sync
endpoint, and rendering twice.

The body is read as FastAPI reads it (json.loads, then the ExpenseIn model validated in Python
mode with from_attributes, as FastAPI validates a body, so a body is accepted exactly when the
route accepts it), the values are checked by the same checked_body(), and the expense is
recorded by the same one statement (api_record_expense(), as record_as_caller() sends it); a
refused row (unknown token, category, currency) wrote nothing, so handing the request on
records nothing twice. The 201 is created_response(), as the route
renders it. An exception while recording (the database unreachable, ...) becomes the problem
the app's own exception handlers make of it, as it would in the route.
"""

import asyncio
import json

from fastapi import FastAPI
from fastapi.security.utils import get_authorization_scheme_param
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from tracker.api.context import record_as_caller
from tracker.api.problems import ApiProblem
from tracker.api.routes_expenses import checked_body, created, created_response, recording
from tracker.api.schemas import ExpenseIn
from tracker.everyday.expenses import SESSION_USER

PATH = "/api/v1/expenses"


def _bearer(value: bytes | None) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header, read as HTTPBearer reads it."""
    scheme, token = get_authorization_scheme_param(
        None if value is None else value.decode("latin-1")
    )
    return token if scheme.lower() == "bearer" and token else None


class PlainCreate:
    """ASGI app: the plain 201 of POST /api/v1/expenses; anything else goes to `app`."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left: nothing to answer
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        scope["app"] = self.app  # as the app sets it for its routes and handlers
        try:
            answer = await self._answer(scope, body)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            answer = await handler(Request(scope), exc)
        if answer is None:
            await self.app(scope, _replay(body, receive), send)
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
            document = ExpenseIn.model_validate(json.loads(body), from_attributes=True)
            values = checked_body(document)
            chosen = recording(SESSION_USER, values)
        except Exception:  # whatever the route refuses (and how) is the route's to answer
            return None
        state = self.app.state
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

    def _handler(self, exc: Exception):
        """The app's exception handler for exc (the nearest class first, as Starlette looks)."""
        for kind in type(exc).__mro__:
            if kind in self.app.exception_handlers:
                return self.app.exception_handlers[kind]
        return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """receive() for the app: the body already read, then the client's own messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
