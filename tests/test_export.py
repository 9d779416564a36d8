"""export: CSV + Parquet + manifest.json, checked against the database read independently."""

import csv
import hashlib
import json
import shutil
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from tracker.pipeline.export import export_items, export_models, select_export_models
from tracker.pipeline.models import load_project

TRICKY_NOTE = 'Dinner, "the good place"\nsecond line\r\nthird 🎉 — naïve ₹'
BOM = b"\xef\xbb\xbf"


@pytest.fixture
def built_url(seeded_url, run_cli):
    """The seeded database plus awkward notes, with the models built by `run`."""
    with psycopg.connect(seeded_url, autocommit=True) as conn:
        conn.execute(
            """
            insert into expenses (user_id, category_id, amount, date, note)
            select users.id, categories.id, amounts.amount, date '2025-06-03', amounts.note
            from users
            cross join categories
            cross join (values
                (12.34::numeric(12, 2), %s::text),
                (0.05, ''),
                (9999999999.99, null)
            ) as amounts (amount, note)
            where users.email = 'aman@example.com'
                and categories.name = 'Food'
            """,
            [TRICKY_NOTE],
        )
    result = run_cli(seeded_url, "run")
    assert result.exit_code == 0, result.output
    return seeded_url


def export(run_cli, url, out, *args):
    # The Power BI project written beside the files has its own tests (test_powerbi.py).
    return run_cli(url, "export", "--out", str(out), "--no-powerbi", *args)


def tree(directory: Path) -> dict[str, bytes]:
    """Every file under directory (hidden ones too) and its bytes."""
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def exported_models():
    return select_export_models(load_project())


def database_rows(url, model, columns):
    """The relation's rows, read with psycopg in the model's order_by, then unique_key."""
    order = list(model.order_by) + [c for c in model.unique_key if c not in model.order_by]
    order = order or columns
    query = psycopg.sql.SQL("select {} from {} order by {}").format(
        psycopg.sql.SQL(", ").join(map(psycopg.sql.Identifier, columns)),
        psycopg.sql.Identifier("analytics", model.name),
        psycopg.sql.SQL(", ").join(map(psycopg.sql.Identifier, order)),
    )
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def database_columns(url, name):
    with psycopg.connect(url) as conn:
        cursor = conn.execute(
            psycopg.sql.SQL("select * from {} limit 0").format(
                psycopg.sql.Identifier("analytics", name)
            )
        )
        return [column.name for column in cursor.description]


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, encoding="utf-8-sig", newline="") as source:
        rows = list(csv.reader(source))
    return rows[0], rows[1:]


def csv_text(value) -> str:
    """How a database value must look in the CSV."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (date, Decimal, int, str)) and not isinstance(value, datetime):
        return value.isoformat() if isinstance(value, date) else str(value)
    raise AssertionError(f"unexpected type {type(value)}")


def same_value(csv_value: str, value) -> bool:
    if isinstance(value, datetime):
        return datetime.fromisoformat(csv_value) == value
    return csv_value == csv_text(value)


def test_export_round_trips_every_value_in_csv_and_parquet(built_url, run_cli, tmp_path):
    result = export(run_cli, built_url, tmp_path)
    assert result.exit_code == 0, result.output
    models = exported_models()
    assert len(models) >= 10
    for model in models:
        pii = model.pii_columns
        columns = [c for c in database_columns(built_url, model.name) if c not in pii]
        expected = database_rows(built_url, model, columns)
        header, rows = read_csv(tmp_path / "csv" / f"{model.name}.csv")
        assert header == columns, model.name
        assert len(rows) == len(expected), model.name
        for row, expected_row in zip(rows, expected, strict=True):
            assert all(map(same_value, row, expected_row)), (model.name, row, expected_row)
        table = pq.read_table(tmp_path / "parquet" / f"{model.name}.parquet")
        assert table.column_names == columns, model.name
        assert [tuple(row.values()) for row in table.to_pylist()] == expected, model.name


def test_export_note_with_comma_quote_newline_and_emoji_survives(built_url, run_cli, tmp_path):
    assert export(run_cli, built_url, tmp_path).exit_code == 0
    header, rows = read_csv(tmp_path / "csv" / "fact_expenses.csv")
    notes = [row[header.index("note")] for row in rows]
    assert TRICKY_NOTE in notes
    parquet_notes = pq.read_table(tmp_path / "parquet" / "fact_expenses.parquet")["note"]
    assert TRICKY_NOTE in parquet_notes.to_pylist()
    # NULL and the empty string stay different in Parquet (CSV cannot tell them apart).
    assert None in parquet_notes.to_pylist() and "" in parquet_notes.to_pylist()
    raw = (tmp_path / "csv" / "fact_expenses.csv").read_bytes()
    assert '"Dinner, ""the good place""\nsecond line\r\nthird 🎉 — naïve ₹"'.encode() in raw


def test_export_writes_bom_by_default_and_not_with_no_bom(built_url, run_cli, tmp_path):
    assert export(run_cli, built_url, tmp_path / "with", "--format", "csv").exit_code == 0
    result = export(run_cli, built_url, tmp_path / "without", "--format", "csv", "--no-bom")
    assert result.exit_code == 0, result.output
    for path in (tmp_path / "with" / "csv").glob("*.csv"):
        without = tmp_path / "without" / "csv" / path.name
        assert path.read_bytes().startswith(BOM)
        assert not without.read_bytes().startswith(BOM)
        assert path.read_bytes()[len(BOM) :] == without.read_bytes()


def test_export_parquet_has_real_types(built_url, run_cli, tmp_path):
    assert export(run_cli, built_url, tmp_path, "--format", "parquet").exit_code == 0
    schema = pq.read_schema(tmp_path / "parquet" / "fact_expenses.parquet")
    assert schema.field("amount").type == pa.decimal128(12, 2)
    assert schema.field("date").type == pa.date32()
    assert schema.field("month").type == pa.date32()
    assert schema.field("expense_id").type == pa.int64()
    assert schema.field("note").type == pa.string()
    totals = pq.read_schema(tmp_path / "parquet" / "monthly_totals.parquet")
    assert totals.field("total_spent").type == pa.decimal128(38, 2)
    dates = pq.read_schema(tmp_path / "parquet" / "dim_date.parquet")
    assert dates.field("is_weekend").type == pa.bool_()
    users = pq.read_schema(tmp_path / "parquet" / "dim_user.parquet")
    assert pa.types.is_timestamp(users.field("created_at").type)
    assert users.field("created_at").type.tz == "UTC"
    assert not (tmp_path / "csv").exists()


def test_export_manifest_matches_an_independent_recount(built_url, run_cli, tmp_path):
    url = f"{built_url} password=s3cret-word"
    result = export(run_cli, url, tmp_path)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert "s3cret-word" not in json.dumps(manifest) and "***" in manifest["database"]
    assert manifest["git_commit"] is None or len(manifest["git_commit"]) == 40
    datetime.fromisoformat(manifest["generated_at"])
    on_disk = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*.*"))
    listed = [*sorted(entry["path"] for entry in manifest["files"]), "manifest.json"]
    assert on_disk == sorted(listed)
    for entry in manifest["files"]:
        path = tmp_path / entry["path"]
        assert entry["bytes"] == path.stat().st_size
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        names = [column["name"] for column in entry["columns"]]
        if entry["format"] == "csv":
            header, rows = read_csv(path)
            values = {name: [row[header.index(name)] for row in rows] for name in header}
        else:
            table = pq.read_table(path)
            header = table.column_names
            values = {
                name: [str(v) if v is not None else "" for v in table[name].to_pylist()]
                for name in header
            }
            rows = table.to_pylist()
        assert names == header
        assert entry["rows"] == len(rows)
        # Money: every DECIMAL with scale 2, as the Parquet file's own schema says.
        schema = pq.read_schema(tmp_path / "parquet" / f"{entry['model']}.parquet")
        money = {
            field.name
            for field in schema
            if pa.types.is_decimal(field.type) and field.type.scale == 2
        }
        assert set(entry["money_sums"]) == money, entry["path"]
        for name in money:
            total = sum((Decimal(value) for value in values[name] if value), Decimal("0.00"))
            assert entry["money_sums"][name] == str(total), (entry["path"], name)
    fact = next(e for e in manifest["files"] if e["path"] == "csv/fact_expenses.csv")
    assert fact["money_sums"]["amount"] == "10000005112.38"


def test_export_leaves_out_pii_unless_include_pii(built_url, run_cli, tmp_path):
    assert export(run_cli, built_url, tmp_path / "default").exit_code == 0
    for content in tree(tmp_path / "default").values():
        assert b"@example.com" not in content
    header, _ = read_csv(tmp_path / "default" / "csv" / "dim_user.csv")
    assert "email" not in header
    result = export(run_cli, built_url, tmp_path / "pii", "--include-pii")
    assert result.exit_code == 0, result.output
    header, rows = read_csv(tmp_path / "pii" / "csv" / "dim_user.csv")
    assert sorted(row[header.index("email")] for row in rows) == [
        "aman@example.com",
        "priya@example.com",
    ]
    table = pq.read_table(tmp_path / "pii" / "parquet" / "dim_user.parquet")
    assert "email" in table.column_names
    manifest = json.loads((tmp_path / "pii" / "manifest.json").read_text())
    assert manifest["include_pii"] is True


def test_export_select_writes_only_those_models(built_url, run_cli, tmp_path):
    result = export(
        run_cli, built_url, tmp_path, "--select", "monthly_totals, dim_date", "--format", "csv"
    )
    assert result.exit_code == 0, result.output
    assert sorted(tree(tmp_path)) == ["csv/dim_date.csv", "csv/monthly_totals.csv", "manifest.json"]


def test_export_unknown_select_fails_and_keeps_previous_export(built_url, run_cli, tmp_path):
    assert export(run_cli, built_url, tmp_path).exit_code == 0
    before = tree(tmp_path)
    result = export(run_cli, built_url, tmp_path, "--select", "monthly_total")
    assert result.exit_code == 2
    assert '"monthly_total"' in result.stderr and 'Did you mean "monthly_totals"?' in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert tree(tmp_path) == before


def test_export_select_of_a_staging_model_is_refused(built_url, run_cli, tmp_path):
    result = export(run_cli, built_url, tmp_path, "--select", "stg_users")
    assert result.exit_code == 2
    assert 'model "stg_users", which is not exported' in result.stderr
    assert not tmp_path.joinpath("manifest.json").exists()


def test_export_out_under_a_regular_file_fails_with_the_path(built_url, run_cli, tmp_path):
    blocker = tmp_path / "not-a-dir.txt"
    blocker.write_text("keep me")
    result = export(run_cli, built_url, blocker / "exports")
    assert result.exit_code == 2
    assert str(blocker / "exports") in result.stderr and "Choose a directory" in result.stderr
    result = export(run_cli, built_url, blocker)
    assert result.exit_code == 2
    assert f"--out {blocker} is a file" in result.stderr
    assert blocker.read_text() == "keep me"


def test_export_rebuilds_a_missing_relation_first(built_url, run_cli, tmp_path):
    # export exports what queries/ says: a model dropped since `run` is built again first.
    assert export(run_cli, built_url, tmp_path).exit_code == 0
    before = tree(tmp_path / "csv")
    with psycopg.connect(built_url, autocommit=True) as conn:
        conn.execute("drop table analytics.rolling_trend")
    result = export(run_cli, built_url, tmp_path)
    assert result.exit_code == 0, result.stderr
    built = [line.split()[1] for line in result.stderr.splitlines() if "  built " in line]
    assert built == ["analytics.rolling_trend"]
    assert tree(tmp_path / "csv") == before


def test_export_failure_on_a_later_file_keeps_previous_export(built_url, run_cli, tmp_path):
    assert export(run_cli, built_url, tmp_path).exit_code == 0
    before = tree(tmp_path)
    last = exported_models()[-1].name
    relation, kept = (psycopg.sql.Identifier("analytics", name) for name in (last, f"{last}_ok"))
    with psycopg.connect(built_url, autocommit=True) as conn:
        # Same name and columns, but reading it raises once the query runs.
        conn.execute(
            psycopg.sql.SQL("alter table {} rename to {}").format(
                relation, psycopg.sql.Identifier(f"{last}_ok")
            )
        )
        conn.execute(
            psycopg.sql.SQL(
                "create view {} as select * from {}"
                " where 1 / (select count(*) - count(*) from {}) = 0"
            ).format(relation, kept, kept)
        )
    result = export(run_cli, built_url, tmp_path)
    assert result.exit_code == 1
    assert f"Error: exporting analytics.{last} failed: division by zero." in result.stderr
    assert tree(tmp_path) == before


def test_export_csv_only_replaces_the_whole_previous_set(built_url, run_cli, tmp_path):
    assert export(run_cli, built_url, tmp_path).exit_code == 0
    assert (tmp_path / "parquet").is_dir()
    result = export(run_cli, built_url, tmp_path, "--format", "csv")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "parquet").exists()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert {entry["format"] for entry in manifest["files"]} == {"csv"}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_export_refuses_to_replace_a_folder_it_did_not_write(built_url, run_cli, tmp_path):
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "mine.csv").write_text("my own data\n")
    result = export(run_cli, built_url, tmp_path)
    assert result.exit_code == 2
    assert "has no manifest.json" in result.stderr
    assert tree(tmp_path) == {"csv/mine.csv": b"my own data\n"}


def test_export_finishes_a_swap_that_a_crash_interrupted(built_url, run_cli, tmp_path):
    old, new, out = tmp_path / "old", tmp_path / "new", tmp_path / "out"
    assert export(run_cli, built_url, old, "--select", "dim_date").exit_code == 0
    assert export(run_cli, built_url, new, "--select", "monthly_totals").exit_code == 0
    expected = tree(new)
    # The state a crash leaves after moving the old manifest and csv/ out and the new
    # csv/ in, before parquet/ and the new manifest.
    staging = out / ".export-staging-crashed"
    (staging / "new").mkdir(parents=True)
    (staging / "old").mkdir()
    shutil.copytree(old / "csv", staging / "old" / "csv")
    shutil.copy(old / "manifest.json", staging / "old" / "manifest.json")
    shutil.copytree(new / "csv", out / "csv")
    shutil.copytree(old / "parquet", out / "parquet")
    shutil.copytree(new / "parquet", staging / "new" / "parquet")
    shutil.copy(new / "manifest.json", staging / "new" / "manifest.json")
    (staging / "COMMITTED").write_bytes(b"")
    with psycopg.connect(built_url, autocommit=True) as conn:
        # Same name and columns, but reading it raises (a missing one would be rebuilt).
        conn.execute("alter table analytics.dim_user rename to dim_user_ok")
        conn.execute(
            "create view analytics.dim_user as select * from analytics.dim_user_ok "
            "where 1 / (select count(*) - count(*) from analytics.dim_user_ok) = 0"
        )
    # This export fails (reading a relation fails), but first completes the interrupted one.
    result = export(run_cli, built_url, out)
    assert result.exit_code == 1, result.output
    assert tree(out) == expected


def test_export_reads_one_snapshot_while_others_write(built_url, tmp_path):
    models = exported_models()
    inserted = []

    def on_progress(event):
        if not inserted:
            with psycopg.connect(built_url, autocommit=True) as conn:
                conn.execute(
                    "insert into expenses (user_id, category_id, amount, date, note) "
                    "values (1, 1, 777.77, date '2025-05-20', 'added during export')"
                )
            inserted.append(event.path)

    result = export_models(
        built_url, export_items(models), tmp_path, formats=("csv",), on_progress=on_progress
    )
    assert inserted and inserted[0] != "csv/fact_expenses.csv"
    header, facts = read_csv(tmp_path / "csv" / "fact_expenses.csv")
    assert "added during export" not in [row[header.index("note")] for row in facts]
    # A CSV-only export counts rows and money sums in the database, after the insert above
    # for most files: still the snapshot's, so still exactly the files'.
    for entry in result.files:
        names, rows = read_csv(tmp_path / entry["path"])
        assert entry["rows"] == len(rows), entry["path"]
        for name, total in entry["money_sums"].items():
            column = names.index(name)
            expected = sum((Decimal(row[column]) for row in rows if row[column]), Decimal("0.00"))
            assert total == str(expected), (entry["path"], name)
    assert set(result.files[0]["money_sums"]) == {"spent", "budget_amount"}
    by_month: dict[tuple[str, str], Decimal] = {}
    for row in facts:
        key = (row[header.index("user_id")], row[header.index("month")])
        by_month[key] = by_month.get(key, Decimal(0)) + Decimal(row[header.index("amount")])
    header, totals = read_csv(tmp_path / "csv" / "monthly_totals.csv")
    assert {
        (row[header.index("user_id")], row[header.index("month")]): Decimal(
            row[header.index("total_spent")]
        )
        for row in totals
    } == by_month


def test_export_before_run_builds_the_models_first(db_url, run_cli, tmp_path):
    result = export(run_cli, db_url, tmp_path)
    assert result.exit_code == 0, result.stderr
    assert "Built 15 missing or stale models first." in result.stderr
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["models"] == [model.name for model in exported_models()]
    assert {entry["rows"] for entry in manifest["files"]} == {0}


def test_export_into_a_path_with_quotes_and_spaces(built_url, run_cli, tmp_path):
    out = tmp_path / 'it\'s a "folder" with spaces'
    result = export(run_cli, built_url, out, "--select", "monthly_totals")
    assert result.exit_code == 0, result.output
    assert read_csv(out / "csv" / "monthly_totals.csv")[0][0] == "user_id"
    assert "[1/2] csv/monthly_totals.csv" in result.stderr
    assert "[2/2] parquet/monthly_totals.parquet" in result.stderr


def test_export_second_export_into_the_same_folder_gives_up_after_waiting(
    built_url, run_cli, tmp_path
):
    import fcntl
    import os

    assert export(run_cli, built_url, tmp_path, "--select", "dim_date").exit_code == 0
    before = tree(tmp_path)
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        result = export(run_cli, built_url, tmp_path, "--lock-timeout", "0.2")
    finally:
        os.close(fd)
    assert result.exit_code == 1
    assert f"another export is still writing to {tmp_path} after waiting 0.2 s" in result.stderr
    assert tree(tmp_path) == before


PROJECT = Path(__file__).resolve().parent.parent


def test_export_help_has_example_and_readmes_document_every_model(run_cli):
    result = run_cli(None, "export", "--help")
    assert result.exit_code == 0, result.output
    assert "python cli.py export" in result.output.split("Example:", 1)[1]
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    assert "python cli.py export" in readme and "(exports/README.md)" in readme
    guide = (PROJECT / "exports" / "README.md").read_text(encoding="utf-8")
    for model in exported_models():
        # Each file is described, and has its Power Query type list.
        assert f"`{model.name}`" in guide, model.name
        assert f"// {model.name}" in guide or f"csv\\{model.name}.csv" in guide, model.name


def test_export_committed_sample_matches_its_manifest():
    sample = PROJECT / "exports" / "sample"
    manifest = json.loads((sample / "manifest.json").read_text(encoding="utf-8"))
    assert sorted(entry["model"] for entry in manifest["files"]) == sorted(
        model.name for model in exported_models()
    )
    for entry in manifest["files"]:
        content = (sample / entry["path"]).read_bytes()
        assert hashlib.sha256(content).hexdigest() == entry["sha256"], entry["path"]
        assert content.startswith(BOM)
        assert len(read_csv(sample / entry["path"])[1]) == entry["rows"]
    assert "password" not in json.dumps(manifest)


def test_export_twice_writes_identical_files(built_url, run_cli, tmp_path):
    assert export(run_cli, built_url, tmp_path / "first").exit_code == 0
    assert export(run_cli, built_url, tmp_path / "second").exit_code == 0
    first, second = tree(tmp_path / "first"), tree(tmp_path / "second")
    first.pop("manifest.json"), second.pop("manifest.json")
    assert len(first) == 2 * len(exported_models())
    assert first == second


def test_export_discards_the_staging_folder_of_a_killed_export(built_url, run_cli, tmp_path):
    assert export(run_cli, built_url, tmp_path, "--select", "dim_date").exit_code == 0
    before = tree(tmp_path)
    # What a killed export leaves: a staging folder without the COMMITTED marker.
    dead = tmp_path / ".export-staging-killed" / "new" / "csv"
    dead.mkdir(parents=True)
    (dead / "dim_date.csv").write_bytes(b"half a file")
    result = export(run_cli, built_url, tmp_path, "--select", "dim_date")
    assert result.exit_code == 0, result.output
    after = tree(tmp_path)
    assert sorted(after) == sorted(before)
    assert after["csv/dim_date.csv"] == before["csv/dim_date.csv"]


def test_export_without_psql_writes_the_same_files(built_url, tmp_path):
    models = export_items(exported_models())
    export_models(built_url, models, tmp_path / "psql", use_psql=True)
    export_models(built_url, models, tmp_path / "psycopg", use_psql=False)
    with_psql, without = tree(tmp_path / "psql"), tree(tmp_path / "psycopg")
    assert (
        json.loads(with_psql.pop("manifest.json"))["files"]
        == json.loads(without.pop("manifest.json"))["files"]
    )
    assert with_psql == without


def test_export_split_halves_are_the_whole_query_in_order(built_url):
    from tracker.pipeline.export_snapshot import export_query, plan_export, split_query

    item = next(item for item in export_items(exported_models()) if item.name == "fact_expenses")
    with psycopg.connect(built_url) as conn:
        ((_, columns),) = plan_export(conn, [item], False, built_url)
        halves = split_query(conn, item, columns, size=1 << 40)
        assert halves is not None
        first, second = (rows_of(conn, half) for half in halves)
        ordered = rows_of(conn, export_query(conn, item, columns))
    # Both halves hold rows, and one after the other they are exactly the ordered whole.
    assert first and second
    assert first + second == ordered


def rows_of(conn, query):
    with conn.cursor().copy(f"copy ({query}) to stdout (format csv)") as copy:
        return b"".join(bytes(block) for block in copy)


def test_export_in_two_psql_sessions_writes_the_same_files(built_url, tmp_path, monkeypatch):
    from tracker.pipeline import export_snapshot

    models = export_items(exported_models())
    export_models(built_url, models, tmp_path / "one", use_psql=True)
    # Every relation counts as large: the largest is copied as two halves by two sessions.
    monkeypatch.setattr(export_snapshot, "SPLIT_MIN_BYTES", 0)
    export_models(built_url, models, tmp_path / "two", use_psql=True)
    one, two = tree(tmp_path / "one"), tree(tmp_path / "two")
    assert (
        json.loads(one.pop("manifest.json"))["files"]
        == json.loads(two.pop("manifest.json"))["files"]
    )
    assert one == two
    assert not [name for name in two if ".part" in name]


def test_export_failure_in_two_psql_sessions_names_the_model(
    built_url, run_cli, tmp_path, monkeypatch
):
    from tracker.pipeline import export_snapshot

    monkeypatch.setattr(export_snapshot, "SPLIT_MIN_BYTES", 0)
    test_export_failure_on_a_later_file_keeps_previous_export(built_url, run_cli, tmp_path)


def test_export_select_with_graph_operators_keeps_only_exported_models(
    built_url, run_cli, tmp_path
):
    result = export(
        run_cli, built_url, tmp_path, "--select", "+monthly_totals stg_budgets+", "--format", "csv"
    )
    assert result.exit_code == 0, result.output
    exported = sorted(
        entry["model"] for entry in json.loads((tmp_path / "manifest.json").read_text())["files"]
    )
    project = load_project()
    expected = sorted(
        name
        for name in {"monthly_totals"} | project.downstream("stg_budgets")
        if project[name].export
    )
    assert exported == expected and "budget_vs_actual" in exported


def test_csv_manifest_counts_the_snapshot_not_later_writes(built_url, tmp_path):
    """Rows and money sums of a CSV-only export (counted by PostgreSQL) are the files'."""
    models = exported_models()
    copied: list[str] = []

    def on_progress(event):
        if not copied:
            # Rows committed into every exported table while the export runs: no file and
            # no manifest count may see them.
            with psycopg.connect(built_url, autocommit=True) as conn:
                for model in models:
                    conn.execute(
                        sql.SQL("insert into {table} select * from {table} limit 1").format(
                            table=sql.Identifier("analytics", model.name)
                        )
                    )
        copied.append(event.path)

    result = export_models(
        built_url, export_items(models), tmp_path, formats=("csv",), on_progress=on_progress
    )
    assert len(copied) == len(models)
    with psycopg.connect(built_url) as conn:
        grown = conn.execute("select count(*) from analytics.fact_expenses").fetchone()[0]
    for entry in result.files:
        names, rows = read_csv(tmp_path / entry["path"])
        assert entry["rows"] == len(rows), entry["path"]
        for name, total in entry["money_sums"].items():
            column = names.index(name)
            expected = sum((Decimal(row[column]) for row in rows if row[column]), Decimal("0.00"))
            assert total == str(expected), (entry["path"], name)
    fact = next(e for e in result.files if e["path"] == "csv/fact_expenses.csv")
    assert fact["rows"] == grown - 1
