"""Configuration: which database to use, where the project's files live.

This is the only module that reads the environment.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path


def _project_dir() -> Path:
    """The folder holding queries/ and database/: the models, migrations and seeds.

    TRACKER_PROJECT_DIR when set; else the checkout this package sits in (`python cli.py`, an
    editable install); else, for `pip install .` (the package in site-packages), the current
    folder, so `tracker` works from the project folder as `python cli.py` does.
    """
    if os.environ.get("TRACKER_PROJECT_DIR"):
        return Path(os.environ["TRACKER_PROJECT_DIR"]).resolve()
    checkout = Path(__file__).resolve().parent.parent.parent
    if (checkout / "queries").is_dir() and (checkout / "database").is_dir():
        return checkout
    return Path.cwd()


PROJECT_DIR = _project_dir()
MIGRATIONS_DIR = PROJECT_DIR / "database" / "migrations"
SEEDS_DIR = PROJECT_DIR / "database" / "seeds"
QUERIES_DIR = PROJECT_DIR / "queries"
EXPORTS_DIR = PROJECT_DIR / "exports"
TARGET_DIR = PROJECT_DIR / "target"
PRIVATE_SERVER_DIR = PROJECT_DIR / ".pgdata"
PRIVATE_DATABASE = "tracker"


@dataclass(frozen=True)
class DatabaseChoice:
    """A database URL given by the user, or None to use the private server."""

    url: str | None
    source: str  # "--database-url", "DATABASE_URL", ".env" or "private server"


def choose_database(option_url: str | None = None) -> DatabaseChoice:
    """Pick the database: the option, then DATABASE_URL, then .env, then the private server."""
    if option_url:
        return DatabaseChoice(option_url, "--database-url")
    if os.environ.get("DATABASE_URL"):
        return DatabaseChoice(os.environ["DATABASE_URL"], "DATABASE_URL")
    from dotenv import dotenv_values  # only here: commands without a database start faster

    dotenv_url = dotenv_values(PROJECT_DIR / ".env").get("DATABASE_URL")
    if dotenv_url:
        return DatabaseChoice(dotenv_url, ".env")
    return DatabaseChoice(None, "private server")


def debug_enabled() -> bool:
    """True when TRACKER_DEBUG asks for tracebacks."""
    return os.environ.get("TRACKER_DEBUG", "") not in ("", "0")


_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&]*", re.IGNORECASE)
# A URL's scheme, however it is spelled or mistyped: postgresql://, POSTGRES://, postgresql//.
_SCHEME = re.compile(r"^([A-Za-z][\w+.-]*:?//?)(.*)$", re.S)


def mask_url(url: str) -> str:
    """The connection string with any password replaced by ***, even when it is malformed."""
    masked = url
    scheme = _SCHEME.match(url)
    if scheme:
        prefix, rest = scheme.groups()
        # The last "@" ends the user info, so a password holding "@" is masked whole.
        userinfo, at, hosts = rest.rpartition("@")
        if at and ":" in userinfo:
            masked = f"{prefix}{userinfo.split(':', 1)[0]}:***@{hosts}"
    masked = _QUERY_PASSWORD.sub(r"\1***", masked)
    return _KEYWORD_PASSWORD.sub(r"\1***", masked)
