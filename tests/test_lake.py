"""export --lake: partitions, incremental = full, crash safety, concurrent writers, verify."""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import psycopg
import pytest

from tracker.plumbing.config import PROJECT_DIR

FACT_KEYS = {"fact_expenses": "expense_id", "fact_budgets": "budget_id", "alerts": "alert_id"}
DIMENSION_KEYS = {"dim_user": "user_id", "dim_category": "category_id", "dim_date": "date"}


def lake_rows(lake: Path) -> dict[str, list[tuple]]:
    """Every table of the lake as DuckDB reads it (hive partitions on), sorted by its key."""
    duck = duckdb.connect()
    duck.execute("set TimeZone = 'UTC'")
    tables = {}
    for name, key in FACT_KEYS.items():
        files = sorted((lake / name).rglob("*.parquet")) if (lake / name).exists() else []
        if not files:
            tables[name] = []
            continue
        tables[name] = duck.execute(
            f"select cast(columns(* exclude (year)) as varchar) from read_parquet("
            f"{[str(f) for f in files]}, hive_partitioning = true) order by {key}"
        ).fetchall()
    for name, key in DIMENSION_KEYS.items():
        tables[name] = duck.execute(
            f"select cast(columns(*) as varchar) from read_parquet("
            f"'{lake / (name + '.parquet')}') order by {key}"
        ).fetchall()
    return tables


def postgres_rows(url: str, run_cli) -> dict[str, list[tuple]]:
    """The same tables as `run` builds them now (dim_user without email).

    The marts are tables, so `run` first: the lake, read from the models' SQL in its own
    snapshot, must equal what a fresh build of the same data holds.
    """
    result = run_cli(url, "run")
    assert result.exit_code == 0, result.output
    tables = {}
    with psycopg.connect(url) as conn:
        conn.execute("set timezone = 'UTC'")
        for name, key in {**FACT_KEYS, **DIMENSION_KEYS}.items():
            names = [
                column.name
                for column in conn.execute(f"select * from analytics.{name} limit 0").description
                if column.name != "email"
            ]
            columns = ", ".join(f"cast({column} as text)" for column in names)
            tables[name] = conn.execute(
                f"select {columns} from analytics.{name} order by {key}"
            ).fetchall()
    return tables


def files_of(lake: Path) -> dict[str, tuple[int, int]]:
    """Each data file readers see: (inode, mtime_ns), to tell rewritten from untouched.

    Hidden folders (a staging folder of an unfinished export) are skipped, as Spark and the
    per-table globs skip them.
    """
    return {
        str(path.relative_to(lake)): (path.stat().st_ino, path.stat().st_mtime_ns)
        for path in lake.rglob("*.parquet")
        if not any(part.startswith(".") for part in path.relative_to(lake).parts)
    }


def partition_files(lake: Path) -> set[str]:
    return {path for path in files_of(lake) if "/year=" in path}


@pytest.fixture
def lake_url(db_url, run_cli):
    """A database with generated data over 5 months across a year boundary, models built."""
    result = run_cli(
        db_url,
        "generate",
        "--users",
        "12",
        "--expenses",
        "3000",
        "--months",
        "5",
        "--seed",
        "5",
        "--start-month",
        "2024-10",
    )
    assert result.exit_code == 0, result.output
    result = run_cli(db_url, "run")
    assert result.exit_code == 0, result.output
    return db_url


def test_export_lake_writes_partitions_with_the_database_rows(lake_url, run_cli, tmp_path):
    lake = tmp_path / "lake"
    result = run_cli(lake_url, "export", "--lake", str(lake))
    assert result.exit_code == 0, result.output
    assert "full (no lake yet)" in result.output
    with psycopg.connect(lake_url) as conn:
        months = [
            row[0]
            for row in conn.execute(
                "select distinct date_trunc('month', date)::date from expenses order by 1"
            ).fetchall()
        ]
        assert conn.execute("select count(*) from lake_changes").fetchone()[0] == 0
    assert months[0] == date(2024, 10, 1) and months[-1] == date(2025, 2, 1)
    expected = {
        f"fact_expenses/year={m.year}/month={m.isoformat()}/part-00000.parquet" for m in months
    }
    assert {path for path in partition_files(lake) if path.startswith("fact_expenses/")} == expected
    assert lake_rows(lake) == postgres_rows(lake_url, run_cli)
    # Types as in the plain export: DECIMAL money, DATE month (not the partition's integer).
    duck = duckdb.connect()
    types = dict(
        duck.execute(
            f"select column_name, column_type from (describe select * from "
            f"read_parquet('{lake}/fact_expenses/**/*.parquet'))"
        ).fetchall()
    )
    assert types["amount"] == "DECIMAL(12,2)" and types["month"] == "DATE"
    assert types["expense_id"] == "BIGINT" and types["date"] == "DATE"
    manifest = json.loads((lake / "manifest.json").read_text())
    entry = next(e for e in manifest["files"] if e["path"] == sorted(expected)[0])
    with psycopg.connect(lake_url) as conn:
        rows, total = conn.execute(
            "select count(*), sum(amount)::text from analytics.fact_expenses "
            "where month = '2024-10-01'"
        ).fetchone()
    assert entry["rows"] == rows and entry["money_sums"] == {"amount": total}
    assert entry["partition"] == {"year": 2024, "month": "2024-10-01"}


def test_export_lake_incremental_rewrites_exactly_the_changed_months(lake_url, run_cli, tmp_path):
    lake = tmp_path / "lake"
    assert run_cli(lake_url, "export", "--lake", str(lake)).exit_code == 0
    before = files_of(lake)
    with psycopg.connect(lake_url, autocommit=True) as conn:
        last_alert = conn.execute("select coalesce(max(id), 0) from alerts").fetchone()[0]
        # A category without budgets: the insert cannot fire an alert of its own.
        category = conn.execute(
            "insert into categories (name) values ('Lake test') returning id"
        ).fetchone()[0]
        user = conn.execute("select min(id) from users").fetchone()[0]
        conn.execute(
            "insert into expenses (user_id, category_id, amount, date, note) "
            "values (%s, %s, 12.34, '2024-12-31', 'new')",
            [user, category],
        )
        moved = conn.execute(
            "select min(id) from expenses where date between '2025-01-01' and '2025-01-31'"
        ).fetchone()[0]
        conn.execute("update expenses set date = '2024-12-01' where id = %s", [moved])
        conn.execute(
            "delete from expenses where id = (select max(id) from expenses where "
            "date between '2025-01-01' and '2025-01-31')"
        )
        alert_months = {
            row[0]
            for row in conn.execute(
                "select distinct month from alerts where id > %s", [last_alert]
            ).fetchall()
        }
    result = run_cli(lake_url, "export", "--lake", str(lake))
    assert result.exit_code == 0, result.output
    assert "incremental" in result.output
    after = files_of(lake)
    rewritten = {path for path in after if "/year=" in path and after[path] != before.get(path)}
    expected = {
        "fact_expenses/year=2024/month=2024-12-01/part-00000.parquet",
        "fact_expenses/year=2025/month=2025-01-01/part-00000.parquet",
    } | {f"alerts/year={m.year}/month={m.isoformat()}/part-00000.parquet" for m in alert_months}
    assert rewritten == expected
    assert set(after) - set(before) <= expected
    # The new category is in dim_category; the other dimensions were left as they were.
    assert after["dim_category.parquet"] != before["dim_category.parquet"]
    assert after["dim_user.parquet"] == before["dim_user.parquet"]

    full = tmp_path / "full"
    assert run_cli(lake_url, "export", "--lake", str(full), "--full").exit_code == 0
    assert lake_rows(lake) == lake_rows(full) == postgres_rows(lake_url, run_cli)
    assert partition_files(lake) == partition_files(full)
    shas = [
        {
            e["path"]: (e["rows"], e["sha256"], e["money_sums"])
            for e in json.loads((d / "manifest.json").read_text())["files"]
        }
        for d in (lake, full)
    ]
    assert shas[0] == shas[1]


def test_export_lake_follows_deleted_users_budgets_and_emptied_months(lake_url, run_cli, tmp_path):
    lake = tmp_path / "lake"
    assert run_cli(lake_url, "export", "--lake", str(lake)).exit_code == 0
    with psycopg.connect(lake_url, autocommit=True) as conn:
        conn.execute("delete from users where id = (select max(user_id) from expenses)")
        conn.execute("update budgets set amount = amount + 1 where month = '2024-11-01'")
        conn.execute(
            "update budgets set month = '2025-03-01' where id = "
            "(select min(id) from budgets where month = '2024-10-01')"
        )
        conn.execute("delete from expenses where date >= '2025-02-01'")
    result = run_cli(lake_url, "export", "--lake", str(lake))
    assert result.exit_code == 0, result.output
    assert not list(lake.glob("fact_expenses/year=2025/month=2025-02-01"))
    assert "fact_budgets/year=2025/month=2025-03-01/part-00000.parquet" in partition_files(lake)
    full = tmp_path / "full"
    assert run_cli(lake_url, "export", "--lake", str(full), "--full").exit_code == 0
    assert lake_rows(lake) == lake_rows(full) == postgres_rows(lake_url, run_cli)
    assert partition_files(lake) == partition_files(full)
    assert run_cli(lake_url, "verify", "--out", str(lake)).exit_code == 0


def test_export_lake_merges_only_a_partition_file_it_can_trust(lake_url, run_cli, tmp_path):
    """A changed month is its old file minus the changed ids plus those rows from the
    database; a file that no longer matches the manifest, or a change logged without ids
    (before V011), makes the export read that month whole instead."""
    lake = tmp_path / "lake"
    assert run_cli(lake_url, "export", "--lake", str(lake)).exit_code == 0
    december = "fact_expenses/year=2024/month=2024-12-01/part-00000.parquet"
    january = "fact_expenses/year=2025/month=2025-01-01/part-00000.parquet"
    with psycopg.connect(lake_url, autocommit=True) as conn:
        ids = conn.execute(
            "select date_trunc('month', date)::date, max(id) from expenses "
            "where date between '2024-11-01' and '2025-01-31' group by 1 order by 1"
        ).fetchall()
        (november, _), (_, december_id), (_, january_id) = ids
        conn.execute("update expenses set amount = amount + 1 where id = %s", [december_id])
        conn.execute("delete from expenses where id = %s", [january_id])
        conn.execute(
            "update expenses set note = 'moved' where id = (select min(id) from expenses "
            "where date >= %s and date < %s)",
            [november, date(2024, 12, 1)],
        )
        # November's change as if logged before V011: no ids, so the month is read whole.
        conn.execute(
            "update lake_changes set first_id = null, last_id = null where month = %s", [november]
        )
    # December's file replaced by another valid Parquet file: not the one the manifest lists.
    (lake / december).write_bytes((lake / january).read_bytes())
    result = run_cli(lake_url, "export", "--lake", str(lake))
    assert result.exit_code == 0, result.output
    full = tmp_path / "full"
    assert run_cli(lake_url, "export", "--lake", str(full), "--full").exit_code == 0
    assert lake_rows(lake) == lake_rows(full) == postgres_rows(lake_url, run_cli)
    shas = [
        {e["path"]: e["sha256"] for e in json.loads((d / "manifest.json").read_text())["files"]}
        for d in (lake, full)
    ]
    assert shas[0] == shas[1]
    assert run_cli(lake_url, "verify", "--out", str(lake)).exit_code == 0


def test_export_lake_keeps_a_concurrent_writers_change_for_the_next_export(
    lake_url, run_cli, tmp_path
):
    lake = tmp_path / "lake"
    assert run_cli(lake_url, "export", "--lake", str(lake)).exit_code == 0
    with psycopg.connect(lake_url) as slow, psycopg.connect(lake_url, autocommit=True) as fast:
        # The slow writer takes its change id first but commits only after the export's
        # snapshot; the fast one takes a later id and commits before it.
        slow.execute(
            "delete from expenses where id = (select min(id) from expenses where "
            "date between '2024-11-01' and '2024-11-30')"
        )
        fast.execute(
            "delete from expenses where id = (select min(id) from expenses where "
            "date between '2025-02-01' and '2025-02-28')"
        )
        ids = [row[0] for row in fast.execute("select id from lake_changes order by id")]
        assert len(ids) == 1
        result = run_cli(lake_url, "export", "--lake", str(lake))
        assert result.exit_code == 0, result.output
        assert "1 changed months read" in result.output
        slow.commit()
    with psycopg.connect(lake_url) as conn:
        pending = conn.execute("select fact, month from lake_changes").fetchall()
    assert pending == [("fact_expenses", date(2024, 11, 1))]
    result = run_cli(lake_url, "export", "--lake", str(lake))
    assert result.exit_code == 0, result.output
    full = tmp_path / "full"
    assert run_cli(lake_url, "export", "--lake", str(full), "--full").exit_code == 0
    assert lake_rows(lake) == lake_rows(full) == postgres_rows(lake_url, run_cli)


def _export_process(url: str, lake: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            str(PROJECT_DIR / "cli.py"),
            "--database-url",
            url,
            "export",
            "--lake",
            str(lake),
            *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_export_lake_killed_half_way_then_run_again_gives_the_same_lake(db_url, run_cli, tmp_path):
    result = run_cli(
        db_url,
        "generate",
        "--users",
        "40",
        "--expenses",
        "60000",
        "--months",
        "14",
        "--seed",
        "9",
        "--start-month",
        "2024-07",
    )
    assert result.exit_code == 0, result.output
    assert run_cli(db_url, "run").exit_code == 0
    lake = tmp_path / "lake"
    assert run_cli(db_url, "export", "--lake", str(lake)).exit_code == 0
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("update expenses set amount = amount + 0.01 where date < '2025-01-01'")
    kills = 0
    for _ in range(5):
        before = json.loads((lake / "manifest.json").read_text())
        process = _export_process(db_url, lake, "--full")
        # Kill it once it is writing Parquet files into its staging folder.
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            if any(lake.glob(".lake-staging-*/fact_*.parquet")):
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        process.wait()
        if process.returncode != -signal.SIGKILL:
            continue
        kills += 1
        # Killed before its journal: the lake is the previous one, whole and as listed.
        manifest = json.loads((lake / "manifest.json").read_text())
        assert manifest == before
        on_disk = set(files_of(lake))
        assert on_disk == {entry["path"] for entry in manifest["files"]}
        assert lake_rows(lake)["fact_expenses"]
        break
    assert kills, "the export always finished before it could be killed"
    result = run_cli(db_url, "export", "--lake", str(lake))
    assert result.exit_code == 0, result.output
    assert not list(lake.glob(".lake-*"))
    full = tmp_path / "full"
    assert run_cli(db_url, "export", "--lake", str(full), "--full").exit_code == 0
    assert lake_rows(lake) == lake_rows(full) == postgres_rows(db_url, run_cli)
    assert run_cli(db_url, "verify", "--out", str(lake)).exit_code == 0


def test_export_lake_rolls_a_committed_journal_forward(lake_url, run_cli, tmp_path, monkeypatch):
    """A crash after the journal (the commit point): the next export finishes the moves."""
    from tracker.pipeline.lake import JOURNAL, recover_lake

    lake = tmp_path / "lake"
    assert run_cli(lake_url, "export", "--lake", str(lake)).exit_code == 0
    with psycopg.connect(lake_url, autocommit=True) as conn:
        conn.execute(
            "delete from expenses where date between '2025-01-01' and '2025-01-31' and id % 2 = 0"
        )
    # A real export, stopped right after its journal: its moves are all still to do.
    import tracker.pipeline.lake as lake_module
    from tracker.pipeline.lake import export_lake
    from tracker.pipeline.models import load_project

    calls = []

    def stop_after_commit(directory):
        calls.append(directory)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process dies here, after the commit point
        return recover_lake(directory)

    monkeypatch.setattr(lake_module, "recover_lake", stop_after_commit)
    with pytest.raises(KeyboardInterrupt):
        export_lake(lake_url, load_project(), lake)
    monkeypatch.undo()
    assert (lake / JOURNAL).exists()
    # Every export moves in the manifest it staged; a journal without one (written by the
    # code before, or whose manifest was moved in already) brings its own copy.
    staging = lake / json.loads((lake / JOURNAL).read_text())["staging"]
    (staging / "manifest.json").unlink()
    assert recover_lake(lake) is True
    assert json.loads((lake / "manifest.json").read_text())["last_export"]["kind"] == "incremental"
    assert not (lake / JOURNAL).exists()
    assert run_cli(lake_url, "verify", "--out", str(lake)).exit_code == 0
    full = tmp_path / "full"
    assert run_cli(lake_url, "export", "--lake", str(full), "--full").exit_code == 0
    assert lake_rows(lake) == lake_rows(full)


def test_verify_proves_one_lake_partition_in_python_and_bash(lake_url, run_cli, tmp_path):
    lake = tmp_path / "lake"
    assert run_cli(lake_url, "export", "--lake", str(lake)).exit_code == 0
    partition = "fact_expenses/year=2025/month=2025-01-01"
    result = run_cli(lake_url, "verify", "--out", str(lake), "--partition", partition)
    assert result.exit_code == 0, result.output
    assert "PASS: 1 file in" in result.output
    env = {**os.environ, "DATABASE_URL": lake_url}
    script = str(PROJECT_DIR / "scripts" / "verify.sh")
    done = subprocess.run(
        ["bash", script, str(lake), partition], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASS fact_expenses/") == 1
    # A change in that month in the database, and an edited file of another month, both fail.
    with psycopg.connect(lake_url, autocommit=True) as conn:
        conn.execute(
            "update expenses set amount = amount + 1 where id = (select min(id) "
            "from expenses where date between '2025-01-01' and '2025-01-31')"
        )
    result = run_cli(lake_url, "verify", "--out", str(lake), "--partition", partition)
    assert result.exit_code == 1 and "sum(amount) is" in result.output
    # The script recounts the analytics tables, which show the change once `run` rebuilt them.
    assert run_cli(lake_url, "run").exit_code == 0
    done = subprocess.run(
        ["bash", script, str(lake), partition], env=env, capture_output=True, text=True
    )
    assert done.returncode == 1 and "PostgreSQL has" in done.stdout
    other = lake / "fact_expenses/year=2024/month=2024-11-01/part-00000.parquet"
    other.write_bytes(other.read_bytes()[:-10])
    result = run_cli(
        lake_url, "verify", "--out", str(lake), "--partition", "fact_expenses/year=2024"
    )
    assert result.exit_code == 1 and "2024-11-01/part-00000.parquet does not match" in result.output


def test_export_lake_refuses_options_that_do_not_apply_and_foreign_folders(
    lake_url, run_cli, tmp_path
):
    result = run_cli(lake_url, "export", "--lake", str(tmp_path / "l"), "--format", "csv")
    assert result.exit_code == 2 and "do not apply to --lake" in result.output
    result = run_cli(lake_url, "export", "--full")
    assert result.exit_code == 2 and "--full applies only to --lake" in result.output
    assert run_cli(lake_url, "export", "--out", str(tmp_path / "plain")).exit_code == 0
    result = run_cli(lake_url, "export", "--lake", str(tmp_path / "plain"))
    assert result.exit_code == 2 and "not a lake" in result.output


def test_export_lake_into_a_second_folder_takes_no_change_from_the_first(
    lake_url, run_cli, tmp_path
):
    first, second = tmp_path / "first", tmp_path / "second"
    assert run_cli(lake_url, "export", "--lake", str(first)).exit_code == 0
    with psycopg.connect(lake_url, autocommit=True) as conn:
        conn.execute("delete from expenses where id = (select min(id) from expenses)")
    assert run_cli(lake_url, "export", "--lake", str(second)).exit_code == 0
    result = run_cli(lake_url, "export", "--lake", str(first))
    assert result.exit_code == 0, result.output
    assert "1 files written" in result.output
    assert lake_rows(first) == lake_rows(second) == postgres_rows(lake_url, run_cli)
    with psycopg.connect(lake_url) as conn:
        assert conn.execute("select count(*) from lake_changes").fetchone()[0] == 0
        assert conn.execute("select count(*) from lake_exports").fetchone()[0] == 2


def test_change_triggers_record_writes_of_a_role_with_no_right_on_the_log(seeded_url):
    """The REST API's role (issue 10) writes expenses, never lake_changes: SECURITY DEFINER."""
    import uuid

    role = f"lake_writer_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(seeded_url, autocommit=True) as conn:
        conn.execute(f"create role {role}")
        try:
            conn.execute(
                f"grant select, insert, update, delete on all tables in schema public to {role}"
            )
            conn.execute(f"grant usage on all sequences in schema public to {role}")
            conn.execute(f"revoke all on lake_changes, lake_exports from {role}")
            conn.execute("delete from lake_changes")
            conn.execute(f"set role {role}")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("select count(*) from lake_changes")
            conn.execute(
                "insert into expenses (user_id, category_id, amount, date) "
                "values (1, 1, 5.00, '2025-07-04')"
            )
            conn.execute("set search_path = pg_temp, public")
            conn.execute("update expenses set date = '2025-08-01' where date = '2025-07-04'")
            conn.execute("reset role")
            conn.execute("reset search_path")
            rows = conn.execute(
                "select distinct fact, month from lake_changes order by 2"
            ).fetchall()
        finally:
            conn.execute("reset role")
            conn.execute(f"drop owned by {role}")
            conn.execute(f"drop role {role}")
    assert rows == [("fact_expenses", date(2025, 7, 1)), ("fact_expenses", date(2025, 8, 1))]


def test_export_lake_rewrites_a_dimension_only_when_what_it_is_made_of_changed(
    lake_url, run_cli, tmp_path
):
    """dim_date follows the years the expenses and budgets span, dim_user its users: each is
    read again only when that changed, and the lake still equals a fresh --full export."""
    lake = tmp_path / "lake"
    assert run_cli(lake_url, "export", "--lake", str(lake)).exit_code == 0
    full = tmp_path / "full"

    def export_both() -> dict:
        before = files_of(lake)
        result = run_cli(lake_url, "export", "--lake", str(lake))
        assert result.exit_code == 0, result.output
        assert "incremental" in result.output
        after = files_of(lake)
        assert run_cli(lake_url, "export", "--lake", str(full), "--full").exit_code == 0
        assert lake_rows(lake) == lake_rows(full) == postgres_rows(lake_url, run_cli)
        shas = [
            {e["path"]: e["sha256"] for e in json.loads((d / "manifest.json").read_text())["files"]}
            for d in (lake, full)
        ]
        assert shas[0] == shas[1]
        return {name: after[name] != before[name] for name in after if "/" not in name}

    with psycopg.connect(lake_url, autocommit=True) as conn:
        user = conn.execute("select min(id) from users").fetchone()[0]
        category = conn.execute("select min(id) from categories").fetchone()[0]
        # Inside the years the lake spans: no dimension changes.
        conn.execute(
            "insert into expenses (user_id, category_id, amount, date) "
            "values (%s, %s, 1.00, '2024-11-05')",
            [user, category],
        )
    assert export_both() == {
        "dim_user.parquet": False,
        "dim_category.parquet": False,
        "dim_date.parquet": False,
    }
    with psycopg.connect(lake_url, autocommit=True) as conn:
        # A year the lake did not span: dim_date grows by 2026 (and 2026 alone).
        new_id = conn.execute(
            "insert into expenses (user_id, category_id, amount, date) "
            "values (%s, %s, 2.00, '2026-03-01') returning id",
            [user, category],
        ).fetchone()[0]
    assert export_both()["dim_date.parquet"] is True
    years = duckdb.sql(
        f"select min(year), max(year) from read_parquet('{lake / 'dim_date.parquet'}')"
    ).fetchall()
    assert years == [(2024, 2026)]
    with psycopg.connect(lake_url, autocommit=True) as conn:
        # Its only expense deleted: 2026 goes again; a renamed user rewrites dim_user.
        conn.execute("delete from expenses where id = %s", [new_id])
        conn.execute("update users set name = name || ' (renamed)' where id = %s", [user])
    assert export_both() == {
        "dim_user.parquet": True,
        "dim_category.parquet": False,
        "dim_date.parquet": True,
    }
