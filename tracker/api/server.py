"""Run the API with uvicorn until Ctrl-C or SIGTERM (uvicorn then drains and closes the pool)."""

import signal

import uvicorn

from tracker.api.app import DEFAULT_POOL_SIZE, create_app
from tracker.api.context import API_ROLE
from tracker.api.fast_create import PlainCreate
from tracker.errors import TrackerError
from tracker.plumbing import config, db


def _stopped(signum, frame) -> None:
    """uvicorn re-raises the stop signal once it has shut down; by then all is done."""


def check_database(database_url: str) -> None:
    """Refuse to start on an unreachable database or one without the API's migration (V008)."""
    # An unreachable database is one TrackerError line now, not a failed start-up later.
    with db.connect(database_url) as conn:
        ready = db.scalar(
            conn,
            "select to_regclass('public.api_tokens') is not null"
            " and exists (select from pg_catalog.pg_roles where rolname = %s)",
            [API_ROLE],
        )
    if not ready:
        raise TrackerError(
            f"{config.mask_url(database_url)} has no API tables (migration V008). "
            "Run `python cli.py db-init` first."
        )


def serve(
    database_url: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    pool_size: int = DEFAULT_POOL_SIZE,
    access_log: bool = True,
) -> None:
    """Serve the API on host:port against database_url (blocks until stopped)."""
    check_database(database_url)
    # The plain success of POST /api/v1/expenses is answered in front of the app.
    app = PlainCreate(create_app(database_url, pool_size=pool_size))
    # uvicorn handles both signals while it runs (graceful shutdown, lifespan end, pool
    # closed), then re-raises the one it got with the handlers it found: these make that a
    # normal return, so a stop asked for by Ctrl-C or a service manager exits 0.
    previous = {
        number: signal.signal(number, _stopped) for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            access_log=access_log,
            log_level="info",
            timeout_graceful_shutdown=10,
        )
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
