"""Versioned migrations: database/migrations/V<nnn>__<name>.sql, applied once, in order.

Each file runs in one transaction together with its history row; the history keeps the
sha256 of the file's bytes, and an applied file that changed afterwards is refused.
A session-level advisory lock serializes concurrent runs.
"""

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
import sqlparse

from tracker.errors import TrackerError
from tracker.plumbing import db

# Held for a whole db-init run (migrations and seeds) so two runs never interleave.
RUN_LOCK_ID = 7_240_517_001
FILE_PATTERN = re.compile(r"^V(\d+)__([a-z0-9_]+)\.sql$")

HISTORY_DDL = """
create table if not exists schema_migrations (
    version integer primary key,
    name text not null,
    checksum text not null,
    applied_at timestamptz not null default now(),
    execution_ms integer not null
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def statements(self) -> list[str]:
        text = self.path.read_text(encoding="utf-8")
        return [
            part
            for part in sqlparse.split(text)
            if sqlparse.format(part, strip_comments=True).strip()
        ]


@dataclass(frozen=True)
class AppliedMigration:
    version: int
    name: str
    checksum: str
    applied_at: object


def discover_migrations(directory: Path) -> list[Migration]:
    """The migration files in version order; a misnamed or duplicate file is an error."""
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = FILE_PATTERN.match(path.name)
        if not match:
            raise TrackerError(
                f'Error: migration file "{path.name}" is not named V<number>__<name>.sql '
                f"({directory}). Rename it, for example V004__add_index.sql."
            )
        version = int(match.group(1))
        if version in migrations:
            raise TrackerError(
                f'Error: migrations "{migrations[version].filename}" and "{path.name}" share '
                f"version {version}. Give one of them the next free number."
            )
        migrations[version] = Migration(version, match.group(2), path)
    return [migrations[version] for version in sorted(migrations)]


def applied_migrations(conn: psycopg.Connection) -> list[AppliedMigration]:
    """The history table's rows, oldest first (empty before the first run)."""
    exists = db.scalar(conn, "select to_regclass('schema_migrations') is not null")
    if not exists:
        return []
    rows = conn.execute(
        "select version, name, checksum, applied_at from schema_migrations order by version"
    ).fetchall()
    return [AppliedMigration(*row) for row in rows]


def pending_migrations(
    migrations: list[Migration], applied: list[AppliedMigration]
) -> list[Migration]:
    """What still has to run; refuses edited, missing or out-of-order files."""
    by_version = {migration.version: migration for migration in migrations}
    for row in applied:
        migration = by_version.get(row.version)
        if migration is None:
            raise TrackerError(
                f"Error: migration V{row.version:03d}__{row.name} is applied in the database "
                "but its file is missing from database/migrations. Restore the file."
            )
        if migration.checksum != row.checksum:
            raise TrackerError(
                f'Error: migration "{migration.filename}" changed after it was applied. '
                "Restore it and add a new migration instead."
            )
    newest = max((row.version for row in applied), default=0)
    applied_versions = {row.version for row in applied}
    pending = [m for m in migrations if m.version not in applied_versions]
    for migration in pending:
        if migration.version < newest:
            raise TrackerError(
                f'Error: migration "{migration.filename}" is older than V{newest:03d}, which is '
                "already applied. Renumber it after the newest applied migration."
            )
    return pending


def apply_migration(conn: psycopg.Connection, migration: Migration) -> int:
    """Run one file and record it, in one transaction; returns milliseconds taken."""
    started = time.perf_counter()
    checksum = migration.checksum
    with conn.transaction():
        for number, statement in enumerate(migration.statements(), start=1):
            try:
                conn.execute(statement)
            except psycopg.Error as exc:
                raise MigrationFailed(migration, number, statement, exc) from exc
        elapsed_ms = round((time.perf_counter() - started) * 1000)
        conn.execute(
            "insert into schema_migrations (version, name, checksum, execution_ms)"
            " values (%s, %s, %s, %s)",
            [migration.version, migration.name, checksum, elapsed_ms],
        )
    return elapsed_ms


def apply_migrations(
    conn: psycopg.Connection,
    migrations: list[Migration],
    on_applied: Callable[[Migration, int], None] | None = None,
) -> list[Migration]:
    """Apply every pending migration in order; the caller holds the run lock."""
    conn.execute(HISTORY_DDL)
    pending = pending_migrations(migrations, applied_migrations(conn))
    for migration in pending:
        elapsed_ms = apply_migration(conn, migration)
        if on_applied:
            on_applied(migration, elapsed_ms)
    return pending


class MigrationFailed(TrackerError):
    """A statement of a migration failed; the migration's transaction was rolled back."""

    def __init__(self, migration: Migration, number: int, statement: str, cause: psycopg.Error):
        code = sqlparse.format(statement, strip_comments=True).strip()
        first_line = " ".join(code.split())[:80]
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        super().__init__(
            f'Error: migration "{migration.filename}" failed at statement {number} '
            f"({first_line}...): {reason}. Nothing from this file was applied; fix it and run "
            "db-init again."
        )
        self.migration = migration
        self.statement_number = number
