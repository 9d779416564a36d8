"""The FastAPI application: lifespan-managed connection pool, routes, offline docs, problems.

Why a synchronous pool and endpoints run in a thread pool instead of async psycopg: the
tracker's operations (tracker/everyday/expenses.py, budgets.py, alerts.py, summary.py, ...) are
synchronous psycopg functions with their validation and transactions inside; running them
unchanged in FastAPI's worker threads reuses every rule and statement of the CLI, where an
async API would need a second copy of each. psycopg releases the GIL while it waits on the
server, so the threads overlap their database time.

`serve` runs the app behind fast_create.PlainCreate, which answers the plain success of
POST /api/v1/expenses, the busiest request, itself (in a thread pool of its own, sized by
record_threads()) and hands everything else to this app.
"""

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

from tracker.api import routes_budgets, routes_expenses, routes_more, routes_seed
from tracker.api.problems import PROBLEM_MEDIA_TYPE, ApiProblem, error_responses, install_handlers
from tracker.api.schemas import Health
from tracker.plumbing import db

DOCS_ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
DOCS_STATIC_URL = "/docs-assets"
DEFAULT_POOL_SIZE = 16
HEALTH_TIMEOUT_SECONDS = 3.0
RECORD_THREADS_PER_CORE = 2


def record_threads(pool_size: int) -> int:
    """How many POSTs send their statement at once: two per core this process may use (at
    most the pool's size); the others wait their turn in the server, in order.

    Measured on 2 cores with 16 clients: 4 statements in flight instead of 16 cost the database
    about a fifth less CPU per expense (fewer backends contending for the same cores), took p99
    latency from 57-59 ms to 27-31 ms, and kept the throughput.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(pool_size, RECORD_THREADS_PER_CORE * (cores or 1)))


def create_app(database_url: str, *, pool_size: int = DEFAULT_POOL_SIZE) -> FastAPI:
    """The API on database_url; its pool opens at start-up and closes at shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.pool = db.pool(
            database_url,
            min_size=min(4, pool_size),
            max_size=pool_size,
            kwargs={"autocommit": True},
        )
        # The threads in which POST /api/v1/expenses's plain path (fast_create.py) sends its
        # one statement (a plain executor costs less per call than the endpoints' AnyIO one).
        app.state.record_threads = ThreadPoolExecutor(
            record_threads(pool_size), thread_name_prefix="record"
        )
        try:
            yield
        finally:
            app.state.record_threads.shutdown()
            app.state.pool.close()

    app = FastAPI(
        title="Smart Spending Tracker API",
        version="1.0.0",
        description=(
            "Expenses, budgets, alerts, summaries and marts for the user of your token "
            "(`Authorization: Bearer TOKEN`). Amounts are exact decimal strings; errors are "
            "application/problem+json (RFC 9457)."
        ),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    install_handlers(app)
    app.mount(DOCS_STATIC_URL, StaticFiles(directory=DOCS_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        # Served from the fastapi-offline package's copy of Swagger UI 5: no CDN, works offline.
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - docs",
            swagger_js_url=f"{DOCS_STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_STATIC_URL}/favicon.png",
        )

    @app.get(
        "/api/health", response_model=Health, tags=["health"], responses=error_responses(500, 503)
    )
    def health(request: Request):
        """Whether the database answers (no token needed)."""
        try:
            with request.app.state.pool.connection(timeout=HEALTH_TIMEOUT_SECONDS) as conn:
                conn.execute("select 1")
        except Exception:
            raise ApiProblem(503, "The database is not reachable.") from None
        return Health(status="ok", database="reachable")

    for module in (routes_seed, routes_expenses, routes_budgets, routes_more):
        app.include_router(module.router)
    # FastAPI's documented way to customise the schema is to replace this method.
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict:
    """FastAPI's schema, with every error response as application/problem+json."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    for path in schema["paths"].values():
        for operation in path.values():
            for status, answer in operation.get("responses", {}).items():
                if status.isdigit() and int(status) >= 400:
                    answer["content"] = {
                        PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
                    }
    components = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    app.openapi_schema = schema
    return schema
