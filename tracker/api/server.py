"""Run the API with uvicorn until Ctrl-C or SIGTERM (uvicorn then drains and closes the pool)."""

import signal

import uvicorn

from .. import db
from .app import DEFAULT_POOL_SIZE, create_app


def _stopped(signum, frame) -> None:
    """uvicorn re-raises the stop signal once it has shut down; by then all is done."""


def serve(database_url: str, *, host: str = "127.0.0.1", port: int = 8000,
          pool_size: int = DEFAULT_POOL_SIZE, access_log: bool = True) -> None:
    """Serve the API on host:port against database_url (blocks until stopped)."""
    # An unreachable database is one TrackerError line now, not a failed start-up later.
    db.connect(database_url).close()
    app = create_app(database_url, pool_size=pool_size)
    # uvicorn handles both signals while it runs (graceful shutdown, lifespan end, pool
    # closed), then re-raises the one it got with the handlers it found: these make that a
    # normal return, so a stop asked for by Ctrl-C or a service manager exits 0.
    previous = {number: signal.signal(number, _stopped)
                for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        uvicorn.run(app, host=host, port=port, access_log=access_log, log_level="info",
                    timeout_graceful_shutdown=10)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
