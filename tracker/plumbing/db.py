"""Connections: resolve the configured database and open psycopg connections to it."""

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.abc import Params
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import Row

from tracker.errors import TrackerError
from tracker.plumbing import config
from tracker.plumbing.server import PrivateServer
from tracker.text import first_line

CONNECT_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Database:
    """A database the tool works on."""

    url: str
    source: str

    @property
    def masked_url(self) -> str:
        return config.mask_url(self.url)

    @property
    def is_private(self) -> bool:
        return self.source == "private server"


def private_server() -> PrivateServer:
    """The project's own server, under .pgdata/."""
    return PrivateServer(config.PRIVATE_SERVER_DIR)


def resolve(option_url: str | None = None, *, start: bool = True) -> Database:
    """The database to use; starts the private server (and its database) when none is given."""
    choice = config.choose_database(option_url)
    if choice.url is not None:
        _check_url(choice.url, choice.source)
        return Database(choice.url, choice.source)
    server = private_server()
    if start:
        server.ensure_running()
        ensure_database(server.url("postgres"), config.PRIVATE_DATABASE)
    return Database(server.url(config.PRIVATE_DATABASE), choice.source)


def _check_url(url: str, source: str) -> None:
    try:
        conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        # libpq's parse error quotes the raw string, password included: never show it.
        raise TrackerError(
            f"{source} is not a valid PostgreSQL connection string "
            f"({config.mask_url(url)}). "
            "Use postgresql://user:password@host:5432/dbname (percent-encode special characters)."
        ) from None


def connect(url: str, *, autocommit: bool = False, **kwargs) -> psycopg.Connection:
    """Open a connection, turning any failure into one line with the password masked."""
    params = conninfo_to_dict(url)
    params.setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)
    params.setdefault("application_name", "smart-spending-tracker")
    try:
        return psycopg.connect(make_conninfo("", **params), autocommit=autocommit, **kwargs)
    except psycopg.OperationalError as exc:
        raise TrackerError(
            f"cannot connect to {config.mask_url(url)}: {_first_line(exc)}. "
            "Check DATABASE_URL and that the server is running."
        ) from None


def one(cursor: psycopg.Cursor[Row]) -> Row:
    """The one row a statement returns (`insert ... returning`, an aggregate, a row just read).

    fetchone() may return None, which no such statement does: this says so once, here.
    """
    row = cursor.fetchone()
    if row is None:
        raise TrackerError("Error: the database returned no row where one was expected.")
    return row


def scalar(
    conn: psycopg.Connection, query: str | sql.SQL | sql.Composed, params: Params | None = None
) -> Any:
    """The first value of the one row a statement returns (a count, exists, `returning id`)."""
    return one(conn.execute(query, params))[0]


def with_database(url: str, database: str) -> str:
    """The same server, another database (as a keyword/value connection string)."""
    return make_conninfo(url, dbname=database)


def ensure_database(maintenance_url: str, name: str) -> bool:
    """Create database `name` if it does not exist; True when created."""
    with connect(maintenance_url, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", [name]).fetchone()
        if exists:
            return False
        try:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:
            return False
        return True


def _first_line(exc: Exception) -> str:
    line = first_line(exc) or type(exc).__name__
    # libpq prefixes messages with the address it tried; keep only the reason.
    if "failed: " in line:
        line = line.rsplit("failed: ", 1)[1]
    return line.rstrip(".")


POOL_TIMEOUT_SECONDS = 30


def pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 4,
    timeout: float = POOL_TIMEOUT_SECONDS,
    connect_timeout: int = CONNECT_TIMEOUT_SECONDS,
    **kwargs,
):
    """An open psycopg_pool.ConnectionPool for long-running work (imports, a future API).

    Connections get a connect timeout; waiting for a free connection gives up after
    `timeout` seconds. An unreachable database is one TrackerError line (password masked)
    instead of the pool retrying in the background. Close it, or use it as a context manager.
    """
    import logging

    from psycopg_pool import ConnectionPool, PoolTimeout

    # The pool logs each failed attempt as a multi-line warning; the caller gets one
    # TrackerError line instead (a handler on the logger keeps logging's last-resort
    # stderr printer away, while an application can still add its own handler).
    logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())
    # Fail fast, with the reason, before the pool starts retrying in the background.
    connect(url, connect_timeout=connect_timeout).close()
    params = conninfo_to_dict(url)
    params.setdefault("connect_timeout", connect_timeout)
    params.setdefault("application_name", "smart-spending-tracker")
    connection_pool = ConnectionPool(
        make_conninfo("", **params),
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        open=False,
        name="tracker",
        **kwargs,
    )
    try:
        connection_pool.open(wait=True, timeout=connect_timeout + 1)
    except PoolTimeout:
        connection_pool.close()
        raise TrackerError(
            f"cannot connect to {config.mask_url(url)}: no connection within "
            f"{connect_timeout} s. Check DATABASE_URL and that the server is running."
        ) from None
    return connection_pool
