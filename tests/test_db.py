"""db-init, migrations, db status/stop and connection errors, against real PostgreSQL."""

import re
import threading

import psycopg
import pytest

from tracker.errors import TrackerError
from tracker.plumbing.bootstrap import initialize_database
from tracker.plumbing.migrations import MigrationFailed

MIGRATIONS = {
    "V001__first.sql": "-- one\ncreate table first_table (id int primary key);\n",
    "V002__second.sql": (
        "-- two\ninsert into first_table values (1);\ncreate table second_table (id int);\n"
    ),
}


def write_migrations(directory, files):
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def history(url):
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select version, name from schema_migrations order by version"
        ).fetchall()


def table_exists(url, name):
    with psycopg.connect(url) as conn:
        return conn.execute("select to_regclass(%s) is not null", [name]).fetchone()[0]


def test_db_init_applies_migrations_in_order_and_seeds(run_cli, fresh_database):
    url = fresh_database()
    result = run_cli(url, "db-init")
    assert result.exit_code == 0, result.output
    assert result.output.index("V001__schema.sql") < result.output.index("V002__")
    assert "loaded sample seeds (2 users, 5 categories, 4 budgets, 5 expenses)" in result.output
    with psycopg.connect(url) as conn:
        counts = conn.execute(
            "select (select count(*) from users), (select count(*) from categories),"
            " (select count(*) from budgets), (select sum(amount) from expenses)"
        ).fetchone()
    assert counts == (2, 5, 4, __import__("decimal").Decimal("5100.00"))
    assert [row[0] for row in history(url)] == sorted(row[0] for row in history(url))


def test_db_init_twice_changes_nothing_and_says_so(run_cli, fresh_database):
    url = fresh_database()
    assert run_cli(url, "db-init").exit_code == 0
    second = run_cli(url, "db-init")
    assert second.exit_code == 0, second.output
    assert "Nothing to do" in second.output
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from expenses").fetchone()[0] == 5


def test_db_init_no_seed_leaves_tables_empty(run_cli, fresh_database):
    url = fresh_database()
    result = run_cli(url, "db-init", "--no-seed")
    assert result.exit_code == 0, result.output
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from users").fetchone()[0] == 0


def test_migrations_apply_in_version_order(tmp_path, fresh_database):
    url = fresh_database()
    directory = write_migrations(tmp_path / "m", {**MIGRATIONS, "V010__tenth.sql": "select 1;"})
    report = initialize_database(url, seed=False, migrations_dir=directory)
    assert [m.filename for m in report.applied] == [
        "V001__first.sql",
        "V002__second.sql",
        "V010__tenth.sql",
    ]
    assert history(url) == [(1, "first"), (2, "second"), (10, "tenth")]


def test_migration_edited_after_apply_is_refused(tmp_path, fresh_database):
    url = fresh_database()
    directory = write_migrations(tmp_path / "m", MIGRATIONS)
    initialize_database(url, seed=False, migrations_dir=directory)
    (directory / "V001__first.sql").write_text(
        "-- one, edited\ncreate table first_table (id int);\n"
    )
    with pytest.raises(
        TrackerError, match=re.escape('migration "V001__first.sql" changed after it was applied')
    ):
        initialize_database(url, seed=False, migrations_dir=directory)


def test_failed_migration_rolls_back_and_names_file_and_statement(tmp_path, fresh_database):
    url = fresh_database()
    directory = write_migrations(tmp_path / "m", MIGRATIONS)
    initialize_database(url, seed=False, migrations_dir=directory)
    (directory / "V003__broken.sql").write_text(
        "-- three\ncreate table third_table (id int);\ninsert into first_table values (1);\n"
    )
    with pytest.raises(MigrationFailed) as failure:
        initialize_database(url, seed=False, migrations_dir=directory)
    message = str(failure.value)
    assert (
        '"V003__broken.sql" failed at statement 2 (insert into first_table values (1);' in message
    )
    assert "duplicate key" in message
    assert not table_exists(url, "third_table")
    assert [row[0] for row in history(url)] == [1, 2]


def test_failed_migration_through_cli_exits_1_with_one_line(
    tmp_path, run_cli, fresh_database, monkeypatch
):
    url = fresh_database()
    directory = write_migrations(tmp_path / "m", {"V001__bad.sql": "create tabel oops (id int);\n"})
    monkeypatch.setattr("tracker.plumbing.config.MIGRATIONS_DIR", directory)
    result = run_cli(url, "db-init", "--no-seed")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert 'migration "V001__bad.sql" failed at statement 1 (create tabel oops' in result.stderr
    assert history(url) == []


def test_concurrent_db_init_applies_each_migration_once(fresh_database):
    url = fresh_database()
    barrier = threading.Barrier(4)
    reports, errors = [], []

    def init():
        barrier.wait()
        try:
            reports.append(initialize_database(url, seed=True))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=init) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(len(report.applied) for report in reports) == len(history(url))
    assert sum(1 for report in reports if report.seeds.loaded) == 1
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from expenses").fetchone()[0] == 5


def test_db_init_bad_url_is_one_line(run_cli):
    result = run_cli("postgresql://u:s3cret@/x?bogus_option=1", "db-init")
    assert result.exit_code == 1
    assert "s3cret" not in result.output
    assert result.stderr.startswith("Error: ")
    assert result.stderr.count("\n") == 1


def test_db_init_unreachable_server_masks_password(run_cli):
    result = run_cli("postgresql://tracker:s3cret@127.0.0.1:1/tracker?connect_timeout=3", "db-init")
    assert result.exit_code == 1
    assert "s3cret" not in result.output
    assert result.stderr.startswith(
        "Error: cannot connect to postgresql://tracker:***@127.0.0.1:1/tracker"
    )
    assert "Connection refused" in result.stderr
    assert result.stderr.count("\n") == 1


def test_db_init_wrong_password_masks_password(run_cli):
    # The private server trusts only the postgres superuser, so other roles need a password.
    from tracker.plumbing.db import private_server

    server = private_server()
    server.ensure_running()
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        conn.execute("drop role if exists tracker_pw_test")
        conn.execute("create role tracker_pw_test login password 'right-one'")
    try:
        url = server.url("postgres").replace("postgres@", "tracker_pw_test:wr0ng-pass@", 1)
        result = run_cli(url, "db-init")
        assert result.exit_code == 1
        assert "wr0ng-pass" not in result.output
        assert result.stderr.startswith(
            "Error: cannot connect to postgresql://tracker_pw_test:***@/postgres"
        )
        assert "password authentication failed" in result.stderr
        assert result.stderr.count("\n") == 1
    finally:
        with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
            conn.execute("drop role if exists tracker_pw_test")


def test_db_status_reports_applied_migrations(run_cli, seeded_url):
    result = run_cli(seeded_url, "db", "status")
    assert result.exit_code == 0, result.output
    assert "Reachable:  yes" in result.output
    assert "applied  V001__schema" in result.output
    assert "0 pending" in result.output


def test_db_stop_then_status_then_any_command_restarts_the_private_server(
    run_cli, monkeypatch, tmp_path
):
    # A private server of this test's own, so stopping it never disturbs other test runs.
    from tracker.plumbing import config
    from tracker.plumbing.db import private_server

    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setattr(config, "PRIVATE_SERVER_DIR", tmp_path / "pgdata")
    server = private_server()
    try:
        first = run_cli(None, "db-init", "--no-seed")
        assert first.exit_code == 0, first.output
        assert "(private server)" in first.output
        assert server.status().running
        stopped = run_cli(None, "db", "stop")
        assert stopped.exit_code == 0, stopped.output
        assert "Stopped the private PostgreSQL server." in stopped.output
        assert not server.status().running
        assert "was not running" in run_cli(None, "db", "stop").output
        status = run_cli(None, "db", "status")
        assert status.exit_code == 1
        assert "Server:     private, stopped" in status.output
        assert "Reachable:  no" in status.output
        # The next command starts it again, on the same data.
        again = run_cli(None, "db-init", "--no-seed")
        assert again.exit_code == 0, again.output
        assert "Nothing to do" in again.output
        assert server.status().running
        # Already running: reused, not started again.
        assert server.ensure_running() is False
    finally:
        server.stop()


def test_cli_run_with_any_python_uses_the_project_venv(tmp_path):
    # -S: the interpreter sees no site-packages at all (no click, no psycopg), so the
    # command can only work by re-running itself with the project's .venv.
    import subprocess
    import sys
    from pathlib import Path

    base_python = Path(sys.base_prefix) / "bin" / "python3"
    cli_path = Path(__file__).resolve().parent.parent / "cli.py"
    result = subprocess.run(
        [str(base_python), "-I", "-S", str(cli_path), "db", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Inspect or stop the database." in result.stdout
