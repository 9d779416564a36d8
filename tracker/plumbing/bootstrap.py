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
)
from tracker.plumbing.seeds import SeedResult, load_seeds


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
    applied_versions = {row.version for row in applied}
    pending = [m for m in migrations if m.version not in applied_versions]
    return DatabaseStatus(database, True, None, version, applied, pending, running)
