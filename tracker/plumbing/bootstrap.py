"""db-init and db status: bring a database to the newest schema and say where it stands."""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tracker.errors import TrackerError
from tracker.plumbing import config
from tracker.plumbing.db import Database, connect, private_server, scalar
from tracker.plumbing.migrations import (
    RUN_LOCK_ID,
    Migration,
    applied_migrations,
    apply_migrations,
    discover_migrations,
    unapplied,
)
from tracker.plumbing.seeds import SeedResult, load_seeds
from tracker.text import first_line


@dataclass
class InitReport:
    applied: list[Migration] = field(default_factory=list)
    already_applied: int = 0
    seeds: SeedResult | None = None

    @property
    def changed(self) -> bool:
        return bool(self.applied) or bool(self.seeds and self.seeds.loaded)


def initialize_database(
    url: str,
    *,
    seed: bool = True,
    on_applied: Callable[[Migration, int], None] | None = None,
    migrations_dir: Path | None = None,
    seeds_dir: Path | None = None,
) -> InitReport:
    """Apply pending migrations and (optionally) the sample seeds, under one advisory lock."""
    migrations = discover_migrations(migrations_dir or config.MIGRATIONS_DIR)
    report = InitReport()
    # The session-level lock goes away with the connection, on success or failure.
    with connect(url, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", [RUN_LOCK_ID])
        report.already_applied = len(applied_migrations(conn))
        report.applied = apply_migrations(conn, migrations, on_applied)
        if seed:
            report.seeds = load_seeds(conn, seeds_dir or config.SEEDS_DIR)
    return report


def describe_init(report: InitReport, seed: bool) -> str:
    """What db-init did after the migrations it reported one by one: seeds, then the verdict."""
    lines = []
    if report.seeds and report.seeds.loaded:
        rows = ", ".join(f"{count} {name}" for name, count in report.seeds.rows.items())
        lines.append(f"  loaded sample seeds ({rows})")
    if report.changed:
        lines.append("Database is up to date.")
    else:
        seeds_note = ", sample seeds already loaded" if seed else ""
        done = f"all {report.already_applied} migrations already applied{seeds_note}"
        lines.append(f"Nothing to do: {done}.")
    return "\n".join(lines)


@dataclass
class DatabaseStatus:
    database: Database
    reachable: bool
    error: str | None
    server_version: str | None
    applied: list
    pending: list[Migration]
    server_running: bool | None


def database_status(database: Database) -> DatabaseStatus:
    """Which database, whether it answers, which migrations are applied and pending."""
    migrations = discover_migrations(config.MIGRATIONS_DIR)
    running = private_server().status().running if database.is_private else None
    if running is False:
        return DatabaseStatus(
            database, False, "private server is stopped", None, [], migrations, False
        )
    try:
        with connect(database.url, autocommit=True) as conn:
            version = scalar(conn, "show server_version")
            applied = applied_migrations(conn)
    except TrackerError as exc:
        return DatabaseStatus(database, False, str(exc), None, [], migrations, running)
    pending = unapplied(migrations, applied)
    return DatabaseStatus(database, True, None, version, applied, pending, running)


def describe_status(status: DatabaseStatus) -> str:
    """The status for people, one fact per line; each migration on its own line."""
    lines = [
        f"Database:   {status.database.masked_url}",
        f"Source:     {status.database.source}",
    ]
    if status.server_running is not None:
        state = "running" if status.server_running else "stopped (any command starts it)"
        lines.append(f"Server:     private, {state}")
    if not status.reachable:
        lines.append(f"Reachable:  no ({first_line(status.error)})")
        return "\n".join(lines)
    lines.append(f"Reachable:  yes (PostgreSQL {status.server_version})")
    lines.append(f"Migrations: {len(status.applied)} applied, {len(status.pending)} pending")
    for row in status.applied:
        lines.append(f"  applied  {row.label}  {row.applied_at:%Y-%m-%d %H:%M:%S}")
    lines.extend(f"  pending  {migration.filename}" for migration in status.pending)
    return "\n".join(lines)
