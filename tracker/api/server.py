"""Run the API with uvicorn until Ctrl-C or SIGTERM (uvicorn then drains and closes the pool)."""

import uvicorn

from .app import DEFAULT_POOL_SIZE, create_app


def serve(database_url: str, *, host: str = "127.0.0.1", port: int = 8000,
          pool_size: int = DEFAULT_POOL_SIZE, access_log: bool = True) -> None:
    """Serve the API on host:port against database_url (blocks until stopped)."""
    app = create_app(database_url, pool_size=pool_size)
    uvicorn.run(app, host=host, port=port, access_log=access_log, log_level="info",
                timeout_graceful_shutdown=10)
