"""Sample data: database/seeds/<table>.csv, copied into staging tables, loaded once.

stage.sql creates one temporary table per CSV, COPY streams each file into it, and
load.sql moves the rows into the base tables; all of it is one transaction, recorded in
schema_seeds so a second db-init loads nothing.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from tracker.errors import TrackerError

SEED_FILES = ("users", "categories", "budgets", "expenses")
SEED_SET = "sample"
CHUNK_BYTES = 1 << 20

HISTORY_DDL = """
create table if not exists schema_seeds (
    name text primary key,
    checksum text not null,
    loaded_at timestamptz not null default now()
)
"""


@dataclass(frozen=True)
class SeedResult:
    loaded: bool
    rows: dict[str, int]


def seeds_checksum(directory: Path) -> str:
    """One sha256 over the seed SQL and CSV files, in load order."""
    digest = hashlib.sha256()
    for path in _seed_paths(directory):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def load_seeds(conn: psycopg.Connection, directory: Path) -> SeedResult:
    """Load the sample data unless this database already has it."""
    for path in _seed_paths(directory):
        if not path.exists():
            raise TrackerError(f"seed file {path} is missing. Restore it from git.")
    with conn.transaction():
        conn.execute(HISTORY_DDL)
        done = conn.execute("select 1 from schema_seeds where name = %s", [SEED_SET]).fetchone()
        if done:
            return SeedResult(False, {})
        conn.execute((directory / "stage.sql").read_text(encoding="utf-8"))
        rows = {}
        for name in SEED_FILES:
            rows[name] = _copy_csv(conn, directory / f"{name}.csv", f"seed_{name}")
        conn.execute((directory / "load.sql").read_text(encoding="utf-8"))
        conn.execute(
            "insert into schema_seeds (name, checksum) values (%s, %s)",
            [SEED_SET, seeds_checksum(directory)],
        )
    return SeedResult(True, rows)


def _copy_csv(conn: psycopg.Connection, path: Path, table: str) -> int:
    statement = sql.SQL("copy {} from stdin with (format csv, header match)").format(
        sql.Identifier(table)
    )
    with conn.cursor() as cursor:
        try:
            with cursor.copy(statement) as copy, open(path, "rb") as source:
                while chunk := source.read(CHUNK_BYTES):
                    copy.write(chunk)
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0]
            raise TrackerError(
                f"seed file {path.name} could not be loaded: {reason}. Fix the file."
            ) from None
        return cursor.rowcount


def _seed_paths(directory: Path) -> list[Path]:
    names = ["stage.sql", *(f"{name}.csv" for name in SEED_FILES), "load.sql"]
    return [directory / name for name in names]
