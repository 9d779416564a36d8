"""Migrations in database/migrations: versioned V<nnn>__<name>.sql, repeatable R__<name>.sql.

Versioned files change the schema and run once, in version order; an applied file that
changed afterwards is refused. Repeatable files hold the current definition of functions,
triggers and views (one home each) and run again whenever their text changes, after the
versioned ones, in name order (Flyway's convention). The history table keeps the sha256 of
each file's bytes; a repeatable file's row has no version (V013 made that possible).

A run applies everything pending in one transaction, so the tables and the functions that
read them never disagree: a failure anywhere rolls the whole run back. A session-level
advisory lock, held by the caller, serializes concurrent runs.
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
from tracker.plumbing.db import scalar

# Held for a whole db-init run (migrations and seeds) so two runs never interleave.
RUN_LOCK_ID = 7_240_517_001
FILE_PATTERN = re.compile(r"^V(\d+)__([a-z0-9_]+)\.sql$")
REPEATABLE_PATTERN = re.compile(r"^R__([a-z0-9_]+)\.sql$")

# The versioned history as it was first created; V013 lets version be null for repeatables.
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
    """One file; version is None for a repeatable file."""

    version: int | None
    name: str
    path: Path

    @property
    def repeatable(self) -> bool:
        return self.version is None

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
    """A history row; version is None for a repeatable file (applied_at: its last run)."""

    version: int | None
    name: str
    checksum: str
    applied_at: object

    @property
    def label(self) -> str:
        return f"R__{self.name}" if self.version is None else f"V{self.version:03d}__{self.name}"


def discover_migrations(directory: Path) -> list[Migration]:
    """Versioned files in version order, then repeatable files in name order.

    A misnamed file or two versioned files sharing a number is an error.
    """
    versioned: dict[int, Migration] = {}
    repeatable: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        if match := REPEATABLE_PATTERN.match(path.name):
            repeatable.append(Migration(None, match.group(1), path))
            continue
        match = FILE_PATTERN.match(path.name)
        if not match:
            raise TrackerError(
                f'migration file "{path.name}" is not named V<number>__<name>.sql or '
                f"R__<name>.sql ({directory}). Rename it, for example V004__add_index.sql."
            )
        version = int(match.group(1))
        if version in versioned:
            raise TrackerError(
                f'migrations "{versioned[version].filename}" and "{path.name}" share '
                f"version {version}. Give one of them the next free number."
            )
        versioned[version] = Migration(version, match.group(2), path)
    return [versioned[version] for version in sorted(versioned)] + repeatable


def applied_migrations(conn: psycopg.Connection) -> list[AppliedMigration]:
    """The history table's rows, versioned oldest first, then repeatable by name."""
    exists = scalar(conn, "select to_regclass('schema_migrations') is not null")
    if not exists:
        return []
    rows = conn.execute(
        "select version, name, checksum, applied_at from schema_migrations"
        " order by version nulls last, name"
    ).fetchall()
    return [AppliedMigration(*row) for row in rows]


def unapplied(migrations: list[Migration], applied: list[AppliedMigration]) -> list[Migration]:
    """Versioned files not in the history, and repeatable files that are new or changed."""
    versions = {row.version for row in applied if row.version is not None}
    repeatable = {row.name: row.checksum for row in applied if row.version is None}
    return [
        migration
        for migration in migrations
        if (migration.repeatable and repeatable.get(migration.name) != migration.checksum)
        or (not migration.repeatable and migration.version not in versions)
    ]


def pending_migrations(
    migrations: list[Migration], applied: list[AppliedMigration]
) -> list[Migration]:
    """What still has to run; refuses edited, missing or out-of-order versioned files."""
    by_version = {m.version: m for m in migrations if not m.repeatable}
    for row in applied:
        if row.version is None:
            continue  # A repeatable file may change, or go once a V file drops its objects.
        migration = by_version.get(row.version)
        if migration is None:
            raise TrackerError(
                f"migration V{row.version:03d}__{row.name} is applied in the database "
                "but its file is missing from database/migrations. Restore the file."
            )
        if migration.checksum != row.checksum:
            raise TrackerError(
                f'migration "{migration.filename}" changed after it was applied. '
                "Restore it and add a new migration instead."
            )
    newest = max((row.version for row in applied if row.version is not None), default=0)
    pending = unapplied(migrations, applied)
    for migration in pending:
        if migration.version is not None and migration.version < newest:
            raise TrackerError(
                f'migration "{migration.filename}" is older than V{newest:03d}, which is '
                "already applied. Renumber it after the newest applied migration."
            )
    return pending


def _run_file(conn: psycopg.Connection, migration: Migration) -> int:
    """Run one file's statements and record it; returns milliseconds taken."""
    started = time.perf_counter()
    checksum = migration.checksum
    for number, statement in enumerate(migration.statements(), start=1):
        try:
            conn.execute(statement)
        except psycopg.Error as exc:
            raise MigrationFailed(migration, number, statement, exc) from exc
    elapsed_ms = round((time.perf_counter() - started) * 1000)
    if migration.repeatable:
        _require_repeatable_history(conn, migration)
        conn.execute(
            "delete from schema_migrations where version is null and name = %s",
            [migration.name],
        )
    conn.execute(
        "insert into schema_migrations (version, name, checksum, execution_ms)"
        " values (%s, %s, %s, %s)",
        [migration.version, migration.name, checksum, elapsed_ms],
    )
    return elapsed_ms


def _require_repeatable_history(conn: psycopg.Connection, migration: Migration) -> None:
    nullable = scalar(
        conn,
        "select not attnotnull from pg_attribute"
        " where attrelid = 'schema_migrations'::regclass and attname = 'version'",
    )
    if not nullable:
        raise TrackerError(
            f'repeatable migration "{migration.filename}" cannot be recorded: '
            "schema_migrations has no room for repeatable files yet. Keep "
            "V013__repeatable_migrations.sql (or a migration doing the same) in the folder."
        )


def apply_migrations(
    conn: psycopg.Connection,
    migrations: list[Migration],
    on_applied: Callable[[Migration, int], None] | None = None,
) -> list[Migration]:
    """Apply every pending file in one transaction; the caller holds the run lock.

    on_applied hears of each file once the transaction has committed.
    """
    conn.execute(HISTORY_DDL)
    timings: list[tuple[Migration, int]] = []
    with conn.transaction():
        for migration in pending_migrations(migrations, applied_migrations(conn)):
            timings.append((migration, _run_file(conn, migration)))
    if on_applied:
        for migration, elapsed_ms in timings:
            on_applied(migration, elapsed_ms)
    return [migration for migration, _ in timings]


class MigrationFailed(TrackerError):
    """A statement of a migration failed; the run's transaction was rolled back."""

    def __init__(self, migration: Migration, number: int, statement: str, cause: psycopg.Error):
        code = sqlparse.format(statement, strip_comments=True).strip()
        first_line = " ".join(code.split())[:80]
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        super().__init__(
            f'migration "{migration.filename}" failed at statement {number} '
            f"({first_line}...): {reason}. Nothing from this run was applied; fix the file "
            "and run db-init again."
        )
        self.migration = migration
        self.statement_number = number
