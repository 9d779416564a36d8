"""db-init, migrations, db status/stop and connection errors, against real PostgreSQL."""

import hashlib
import re
import shutil
import threading

import psycopg
import pytest

from tracker.errors import TrackerError
from tracker.plumbing import config
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
    """The versioned history; repeatable rows (no version) are in repeatable_history."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select version, name from schema_migrations where version is not null order by version"
        ).fetchall()


def repeatable_history(url):
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select name, checksum from schema_migrations where version is null order by name"
        ).fetchall()


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


# The project's V013 makes room for repeatable rows; a test folder needs it to hold R files.
V013 = {
    "V013__repeatable_migrations.sql": (
        config.MIGRATIONS_DIR / "V013__repeatable_migrations.sql"
    ).read_text()
}
REPEATABLES = {
    "R__b_view.sql": "create or replace view second_view as select id from first_table;\n",
    "R__a_function.sql": (
        "create or replace function first_count() returns bigint language sql"
        " as $$ select count(*) from first_table $$;\n"
    ),
}


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
    # Repeatable files run after every versioned one, in name order.
    assert result.output.index("V013__") < result.output.index("R__budget_alerts.sql")
    assert result.output.index("R__budget_alerts.sql") < result.output.index("R__row_security")


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
    assert sum(len(report.applied) for report in reports) == len(history(url)) + len(
        repeatable_history(url)
    )
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
    assert "applied  R__budget_alerts" in result.output


def test_db_status_shows_a_changed_repeatable_file_as_pending(
    run_cli, seeded_url, tmp_path, monkeypatch
):
    directory = tmp_path / "migrations"
    shutil.copytree(config.MIGRATIONS_DIR, directory)
    with (directory / "R__row_security.sql").open("a") as file:
        file.write("-- touched\n")
    monkeypatch.setattr("tracker.plumbing.config.MIGRATIONS_DIR", directory)
    result = run_cli(seeded_url, "db", "status")
    assert result.exit_code == 0, result.output
    assert "1 pending" in result.output
    assert "pending  R__row_security.sql" in result.output


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


def test_repeatable_migrations_run_after_versioned_ones_then_only_when_changed(
    tmp_path, fresh_database
):
    url = fresh_database()
    directory = write_migrations(tmp_path / "m", {**MIGRATIONS, **V013, **REPEATABLES})
    first = initialize_database(url, seed=False, migrations_dir=directory)
    assert [m.filename for m in first.applied] == [
        "V001__first.sql",
        "V002__second.sql",
        "V013__repeatable_migrations.sql",
        "R__a_function.sql",
        "R__b_view.sql",
    ]
    assert repeatable_history(url) == [
        ("a_function", sha256(REPEATABLES["R__a_function.sql"])),
        ("b_view", sha256(REPEATABLES["R__b_view.sql"])),
    ]
    # Unchanged: nothing runs again.
    assert initialize_database(url, seed=False, migrations_dir=directory).applied == []
    # Edited: that file alone runs again, once, and its new checksum is recorded.
    edited = "create or replace view second_view as select id, id * 2 as twice from first_table;\n"
    (directory / "R__b_view.sql").write_text(edited)
    again = initialize_database(url, seed=False, migrations_dir=directory)
    assert [m.filename for m in again.applied] == ["R__b_view.sql"]
    assert initialize_database(url, seed=False, migrations_dir=directory).applied == []
    assert repeatable_history(url)[1] == ("b_view", sha256(edited))
    with psycopg.connect(url) as conn:
        assert conn.execute("select id, twice from second_view").fetchall() == [(1, 2)]
        assert conn.execute("select first_count()").fetchone()[0] == 1
    assert len(history(url)) == 3


def test_broken_repeatable_migration_applies_nothing_and_names_the_file(
    tmp_path, fresh_database, run_cli, monkeypatch
):
    url = fresh_database()
    directory = write_migrations(tmp_path / "m", {**MIGRATIONS, **V013, **REPEATABLES})
    initialize_database(url, seed=False, migrations_dir=directory)
    before = repeatable_history(url)
    # A new versioned file and a broken edit of a repeatable one, in the same run.
    (directory / "V014__third.sql").write_text("create table third_table (id int);\n")
    (directory / "R__a_function.sql").write_text(
        "create or replace function first_count() returns bigint language sql"
        " as $$ select count(*) from missing_table $$;\n"
    )
    monkeypatch.setattr("tracker.plumbing.config.MIGRATIONS_DIR", directory)
    result = run_cli(url, "db-init", "--no-seed")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert 'migration "R__a_function.sql" failed at statement 1' in result.stderr
    assert 'relation "missing_table" does not exist' in result.stderr
    assert "Nothing from this run was applied" in result.stderr
    assert "applied V014" not in result.output
    assert not table_exists(url, "third_table")
    assert [row[0] for row in history(url)] == [1, 2, 13]
    assert repeatable_history(url) == before
    with psycopg.connect(url) as conn:
        assert conn.execute("select first_count()").fetchone()[0] == 1


def test_repeatable_files_without_room_in_the_history_are_refused_clearly(tmp_path, fresh_database):
    url = fresh_database()
    directory = write_migrations(tmp_path / "m", {**MIGRATIONS, **REPEATABLES})
    with pytest.raises(TrackerError, match=r'"R__a_function\.sql" cannot be recorded.*V013'):
        initialize_database(url, seed=False, migrations_dir=directory)
    assert history(url) == []


def test_edited_versioned_file_is_still_refused_next_to_repeatables(tmp_path, fresh_database):
    url = fresh_database()
    directory = write_migrations(tmp_path / "m", {**MIGRATIONS, **V013, **REPEATABLES})
    initialize_database(url, seed=False, migrations_dir=directory)
    (directory / "V002__second.sql").write_text("-- edited\n")
    (directory / "R__b_view.sql").write_text("create or replace view second_view as select 1;\n")
    with pytest.raises(TrackerError, match=r'"V002__second\.sql" changed after it was applied'):
        initialize_database(url, seed=False, migrations_dir=directory)
    assert repeatable_history(url)[1] == ("b_view", sha256(REPEATABLES["R__b_view.sql"]))


CATALOG = """
select p.proname, p.prosecdef, p.proconfig, p.proacl::text, pg_get_userbyid(p.proowner),
    md5(p.prosrc), pg_get_function_identity_arguments(p.oid)
from pg_proc as p
where p.pronamespace = 'public'::regnamespace
union all
select t.tgname || ' on ' || t.tgrelid::regclass, null, null, t.tgenabled::text,
    pg_get_userbyid(c.relowner), md5(pg_get_triggerdef(t.oid)), null
from pg_trigger as t
inner join pg_class as c on c.oid = t.tgrelid
where not t.tgisinternal
order by 1
"""


def test_project_repeatables_survive_being_applied_again(tmp_path, fresh_database, seeded_url):
    """Every object an R file defines keeps its settings, grants and owner when re-run."""
    directory = tmp_path / "migrations"
    shutil.copytree(config.MIGRATIONS_DIR, directory)
    repeatables = sorted(path.name for path in directory.glob("R__*.sql"))
    assert {"R__budget_alerts.sql", "R__lake_change_log.sql", "R__row_security.sql"} <= set(
        repeatables
    )
    with psycopg.connect(seeded_url) as conn:
        before = conn.execute(CATALOG).fetchall()
    for name in repeatables:
        with (directory / name).open("a") as file:
            file.write("-- touched\n")
    again = initialize_database(seeded_url, seed=False, migrations_dir=directory)
    assert sorted(m.filename for m in again.applied) == repeatables
    with psycopg.connect(seeded_url, autocommit=True) as conn:
        assert conn.execute(CATALOG).fetchall() == before
        # And the alert trigger still fires: the first seeded budget, crossed once.
        conn.execute("delete from alerts")
        user_id, category_id, month, amount = conn.execute(
            "select user_id, category_id, month, amount from budgets order by id limit 1"
        ).fetchone()
        conn.execute(
            "insert into expenses (user_id, category_id, amount, date) values (%s, %s, %s, %s)",
            [user_id, category_id, amount + 1, month],
        )
        assert conn.execute("select count(*) from alerts").fetchone()[0] == 1
