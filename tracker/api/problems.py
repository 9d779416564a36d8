"""Errors as RFC 9457 problem details (application/problem+json), whatever the Accept header.

No stack trace, SQL text or connection string ever reaches a client: anything unexpected is a
500 with a fixed message, logged on the server.
"""

import logging
import re
from collections.abc import Mapping, Sequence

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from tracker.errors import InputError, TrackerError

PROBLEM_MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("tracker.api")

TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    415: "Unsupported media type",
    422: "Unprocessable content",
    500: "Internal server error",
    503: "Service unavailable",
}


class FieldError(BaseModel):
    field: str = Field(description="The failing field: a body member, query or path parameter.")
    detail: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldError] = Field(default_factory=list)


class ApiProblem(Exception):
    """A refusal the API answers with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        errors: list[tuple[str, str]] | None = None,
        headers: dict | None = None,
    ):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []
        self.headers = headers


def not_found(what: str) -> ApiProblem:
    return ApiProblem(404, f"{what} does not exist.")


def field_problem(field: str, error: TrackerError | str, status: int = 422) -> ApiProblem:
    """A refusal naming one field, with the library's one-line message."""
    text = clean_message(str(error))
    return ApiProblem(status, text, [(field, text)])


def clean_message(text: str) -> str:
    """The library's `Error: ...` line without its prefix and CLI-only hints."""
    line = text.strip().splitlines()[0] if text.strip() else "The request was refused."
    if line.startswith("Error: "):
        line = line[len("Error: ") :]
    return line


def problem_response(
    request: Request,
    status: int,
    detail: str,
    errors: Sequence[tuple[str, str]] = (),
    headers: Mapping[str, str] | None = None,
):
    body = Problem(
        title=TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=[FieldError(field=field, detail=message) for field, message in errors],
    )
    return JSONResponse(
        body.model_dump(), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def _field_name(location: tuple) -> str:
    """The member a validation error is about (bodies are flat: its first name after "body");
    the rest of pydantic's location names union members (int, float, str), not fields."""
    parts = [str(part) for part in location]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return parts[0] if parts else "body"


def _allowed_methods(request: Request) -> str:
    """Every method the API documents for this path (Starlette names only one route's)."""
    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, request.url.path):
            methods |= {method.upper() for method in operations}
    return ", ".join(sorted(methods))


def install_handlers(app: FastAPI) -> None:
    """Turn every error, FastAPI's own included, into a problem document."""

    @app.exception_handler(ApiProblem)
    async def api_problem(request: Request, exc: ApiProblem):
        return problem_response(request, exc.status, exc.detail, exc.errors, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_problem(request: Request, exc: RequestValidationError):
        messages: dict[str, list[str]] = {}
        for error in exc.errors():
            found = messages.setdefault(_field_name(error.get("loc", ())), [])
            message = str(error.get("msg", "is invalid"))
            if message not in found:
                found.append(message)
        errors = [(field, "; ".join(found)) for field, found in messages.items()]
        fields = ", ".join(messages) or "the request"
        return problem_response(request, 422, f"Invalid input: {fields}.", errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_problem(request: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "")
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"No such endpoint: {request.url.path}."
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}."
            headers = {**(exc.headers or {}), "Allow": _allowed_methods(request)}
            return problem_response(request, 405, detail, headers=headers)
        elif not detail.endswith("."):
            detail += "."
        return problem_response(request, exc.status_code, detail, headers=exc.headers)

    @app.exception_handler(InputError)
    async def input_problem(request: Request, exc: InputError):
        # A library refusal no endpoint mapped to a field: still the caller's input.
        return problem_response(request, 422, clean_message(str(exc)))

    @app.exception_handler(TrackerError)
    async def tracker_problem(request: Request, exc: TrackerError):
        # A handled refusal of the tracker's rules (its message names what failed).
        return problem_response(request, 409, clean_message(str(exc)))

    @app.exception_handler(psycopg.OperationalError)
    async def database_unavailable(request: Request, exc: psycopg.OperationalError):
        log.error(
            "database unavailable on %s %s: %s",
            request.method,
            request.url.path,
            type(exc).__name__,
        )
        return problem_response(request, 503, "The database is not reachable. Try again.")

    # Handled here rather than by the catch-all below, which Starlette runs only after the
    # connection is given up: a database error must not cost the client its connection.
    @app.exception_handler(psycopg.Error)
    async def database_problem(request: Request, exc: psycopg.Error):
        return _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def unexpected_problem(request: Request, exc: Exception):
        return _unexpected(request, exc)


def _unexpected(request: Request, exc: Exception):
    # Logged for the operator (no secret is in a request's context); the client gets a
    # fixed sentence.
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        request, 500, "The server failed to answer this request. It was logged; try again."
    )


def error_responses(*statuses: int) -> dict:
    """OpenAPI entries for the given error statuses (rewritten to problem+json by app.py)."""
    return {status: {"model": Problem, "description": TITLES[status]} for status in statuses}


# Every operation can answer these: a body that is not JSON (400), no or a bad token (401),
# input refused (422), the unexpected (500).
COMMON_ERRORS = error_responses(400, 401, 422, 500)
