"""The psql command line for a database, with the password kept out of the arguments."""

import shutil

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tracker.errors import TrackerError
from tracker.plumbing.server import binary

SSL_MODES = {"require", "verify-ca", "verify-full"}


def psql_command(url: str) -> tuple[list[str], dict[str, str]]:
    """psql's argv and the environment entries it needs (PGPASSWORD, not a visible argument)."""
    params = conninfo_to_dict(url)
    env = {}
    password = params.pop("password", None)
    if password:
        env["PGPASSWORD"] = str(password)
    return [psql_binary(params), make_conninfo("", **params)], env


def psql_binary(params: dict) -> str:
    """The system's psql for SSL connections; otherwise the one shipped with the server wheel."""
    system_psql = shutil.which("psql")
    if params.get("sslmode") in SSL_MODES:
        if system_psql:
            return system_psql
        raise TrackerError(
            "this connection needs SSL, and the psql bundled with pgserver has none. "
            "Install a PostgreSQL client (for example `apt-get install postgresql-client`)."
        )
    try:
        return binary("psql")
    except TrackerError:
        if system_psql:
            return system_psql
        raise
