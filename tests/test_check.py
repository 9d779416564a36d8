"""check (models + data tests + unit tests on DuckDB) and test (the data tests on PostgreSQL)."""

import json
import re
import shutil
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from tracker.pipeline import duck as tracker_duck
from tracker.pipeline.models import load_project
from tracker.plumbing import config

# PostgreSQL's format_type() -> the type DuckDB reports for the same column.
PG_TO_DUCKDB = {
    "bigint": "BIGINT",
    "smallint": "SMALLINT",
    "text": "VARCHAR",
    "date": "DATE",
    "timestamp with time zone": "TIMESTAMP WITH TIME ZONE",
    # Unconstrained numeric (alerts.spent) holds sums of numeric(12, 2) amounts.
    "numeric": "DECIMAL(38,2)",
}


def duckdb_type(pg_type: str) -> str:
    if pg_type.startswith("character("):
        return "VARCHAR"
    if pg_type.startswith("numeric("):
        return "DECIMAL(" + pg_type[len("numeric(") :].replace(" ", "")
    return PG_TO_DUCKDB[pg_type]


def has_row(output: str, status: str, kind: str, name: str) -> bool:
    """True when the result table has a row with this status, kind and name."""
    pattern = rf"^{status}\s+{kind}\s+{re.escape(name)}(\s|$)"
    return re.search(pattern, output, re.MULTILINE) is not None


@pytest.fixture
def queries(tmp_path) -> Path:
    """A private copy of queries/ that a test may break."""
    target = tmp_path / "queries"
    shutil.copytree(config.QUERIES_DIR, target)
    return target


def test_check_base_tables_match_the_migrations(conn):
    rows = conn.execute(
        """
        select
            class.relname,
            attribute.attname,
            format_type(attribute.atttypid, attribute.atttypmod),
            attribute.attnotnull
        from pg_attribute as attribute
        inner join pg_class as class
            on class.oid = attribute.attrelid
        where class.relnamespace = 'public'::regnamespace
            and class.relname = any(%s)
            and attribute.attnum > 0
            and not attribute.attisdropped
        order by class.relname, attribute.attnum
        """,
        [list(tracker_duck.BASE_TABLES)],
    ).fetchall()
    in_postgres = [
        (table, column, duckdb_type(type_), not_null) for table, column, type_, not_null in rows
    ]
    duck = tracker_duck.connect()
    tracker_duck.create_base_tables(duck)
    in_duckdb = duck.execute(
        """
        select table_name, column_name, data_type, is_nullable = 'NO'
        from information_schema.columns
        where table_schema = 'main'
        order by table_name, ordinal_position
        """
    ).fetchall()
    assert in_duckdb == in_postgres


def test_check_passes_on_the_sample_seeds(run_cli):
    result = run_cli(None, "check")
    assert result.exit_code == 0, result.output
    models = len(load_project().models)
    assert f"PASS: {models} models" in result.output
    assert " 0 failed" in result.output


def test_check_verbose_lists_every_model_and_test(run_cli):
    result = run_cli(None, "check", "--verbose")
    assert result.exit_code == 0, result.output
    assert has_row(result.output, "PASS", "model", "budget_vs_actual")
    assert "unique_key(monthly_totals: user_id, month)" in result.output
    assert "relationships(fact_expenses.date -> dim_date.date)" in result.output
    assert "exceeded_budgets_have_an_alert" in result.output


def test_check_seeds_in_duckdb_equal_the_seeds_in_postgresql(seeded_url, tmp_path):
    from_seeds = tracker_duck.connect()
    tracker_duck.create_base_tables(from_seeds)
    tracker_duck.load_seeds(from_seeds)
    from_postgres = tracker_duck.connect()
    tracker_duck.create_base_tables(from_postgres)
    tracker_duck.copy_from_postgres(seeded_url, from_postgres, tmp_path)
    for table, columns in {
        "users": "id, name, email, currency",
        "categories": "id, name, description, color",
        "budgets": "id, user_id, category_id, month, amount",
        "expenses": "id, user_id, category_id, amount, currency, date, note",
    }.items():
        query = f"select {columns} from main.{table} order by id"
        assert from_seeds.execute(query).fetchall() == from_postgres.execute(query).fetchall(), (
            table
        )


def test_check_table_columns_reads_one_relation_never_a_temporary_namesake(tmp_path):
    for duck in (tracker_duck.connect(), tracker_duck.connect(tmp_path / "file.duckdb")):
        duck.execute(
            "create table main.t (a integer, b decimal(12, 2)); create schema analytics;"
            "create view analytics.v as select a from main.t; create temp table t (c varchar)"
        )
        assert tracker_duck.table_columns(duck, "t") == {"a": "INTEGER", "b": "DECIMAL(12,2)"}
        assert tracker_duck.table_columns(duck, "t", "temp") == {"c": "VARCHAR"}
        assert tracker_duck.table_columns(duck, "missing") == {}
        assert tracker_duck.table_columns(duck, "t", "analytics") == {}
        # A view that no longer binds still has the columns the catalog recorded for it.
        duck.execute("drop table temp.main.t; drop table main.t")
        assert tracker_duck.table_columns(duck, "v", "analytics") == {"a": "INTEGER"}


def test_check_names_the_file_of_a_broken_model(run_cli, queries):
    path = queries / "marts" / "monthly_totals.sql"
    path.write_text(path.read_text().replace("sum(expenses.amount)", "sum(expenses.amount_typo)"))
    result = run_cli(None, "check", "--queries", str(queries))
    assert result.exit_code == 1, result.output
    assert has_row(result.output, "ERROR", "model", "monthly_totals")
    assert (
        'model "monthly_totals" failed in DuckDB (queries/marts/monthly_totals.sql)'
        in result.output
    )
    assert "amount_typo" in result.output
    # What reads the broken model is skipped, not reported as a second cause.
    assert has_row(result.output, "SKIP", "model", "rolling_trend")
    assert result.output.rstrip().splitlines()[-1].startswith("FAIL:")


def test_check_fails_a_generic_test_and_shows_the_rows(run_cli, queries):
    path = queries / "marts" / "budget_vs_actual.sql"
    text = path.read_text()
    old = "{'accepted_values': {'values': ['under', 'near', 'over']}}"
    assert old in text
    path.write_text(text.replace(old, "{'accepted_values': {'values': ['near', 'over']}}"))
    result = run_cli(None, "check", "--queries", str(queries))
    assert result.exit_code == 1, result.output
    name = "accepted_values(budget_vs_actual.status in ['near', 'over'])"
    assert has_row(result.output, "FAIL", "test", name)
    # All four seed budgets are under: one failing row, the group of them.
    assert (
        f"FAIL test {name}: 1 failing row(s) (queries/marts/budget_vs_actual.sql)" in result.output
    )
    assert "status=under, n_records=4" in result.output


def test_check_fails_a_singular_test_and_shows_the_rows(run_cli, queries):
    (queries / "tests" / "no_expense_above_1000.sql").write_text(
        "-- Fails on purpose: two seed expenses are above 1000.\n"
        "select expense_id, amount from {{ ref('fact_expenses') }} where amount > 1000\n"
    )
    result = run_cli(None, "check", "--queries", str(queries))
    assert result.exit_code == 1, result.output
    assert has_row(result.output, "FAIL", "test", "no_expense_above_1000")
    assert "2 failing row(s) (queries/tests/no_expense_above_1000.sql)" in result.output
    assert "expense_id=2, amount=1200.00" in result.output
    assert "expense_id=4, amount=3200.00" in result.output


def test_check_unknown_generic_test_is_an_error_naming_the_model(run_cli, queries):
    path = queries / "marts" / "monthly_totals.sql"
    path.write_text(
        path.read_text().replace(
            "'tests': ['not_null', 'non_negative']", "'tests': ['not_null', 'positive']"
        )
    )
    result = run_cli(None, "check", "--queries", str(queries))
    assert result.exit_code == 1
    assert 'Error: model "monthly_totals" declares an unknown test "positive"' in result.stderr
    assert "(queries/marts/monthly_totals.sql)" in result.stderr


def test_check_documented_column_missing_from_the_select_fails(run_cli, queries):
    path = queries / "marts" / "monthly_totals.sql"
    path.write_text(
        path.read_text().replace(
            "cast(monthly.expense_count as bigint) as expense_count",
            "cast(monthly.expense_count as bigint) as n_expenses",
        )
    )
    result = run_cli(None, "check", "--queries", str(queries))
    assert result.exit_code == 1, result.output
    assert (
        'model "monthly_totals" documents column "expense_count" that its SELECT does not return'
        in result.output
    )


def test_check_select_limits_the_models_and_their_tests(run_cli):
    result = run_cli(None, "check", "--select", "monthly_totals", "--verbose")
    assert result.exit_code == 0, result.output
    assert has_row(result.output, "PASS", "model", "budget_vs_actual")  # every model is built
    assert has_row(result.output, "PASS", "test", "not_null(monthly_totals.user_id)")
    assert has_row(result.output, "PASS", "test", "monthly_totals_match_top_categories")
    assert "test   not_null(budget_vs_actual" not in result.output
    assert "exceeded_budgets_have_an_alert" not in result.output


def test_test_passes_on_postgresql_after_run(seeded_url, run_cli):
    assert run_cli(seeded_url, "run").exit_code == 0
    result = run_cli(seeded_url, "test", "--verbose")
    assert result.exit_code == 0, result.output
    assert "on postgres" in result.output
    assert has_row(result.output, "PASS", "test", "unique_key(budget_vs_actual: budget_id)")


def test_test_without_run_says_to_build_the_models(db_url, run_cli):
    result = run_cli(db_url, "test")
    assert result.exit_code == 1
    assert "does not exist" in result.stderr
    assert "python cli.py run" in result.stderr


def test_test_fails_on_bad_data_in_postgresql(seeded_url, run_cli):
    with psycopg.connect(seeded_url, autocommit=True) as conn:
        # An alert below its budget, and an over-budget key without any alert.
        conn.execute("alter table expenses disable trigger expenses_budget_alert_insert")
        conn.execute(
            "insert into expenses (user_id, category_id, amount, date) "
            "select users.id, categories.id, 99999.00, date '2025-05-20' "
            "from users, categories where users.email = 'priya@example.com' "
            "and categories.name = 'Food'"
        )
        conn.execute(
            "insert into alerts (user_id, month, alert_type, message, spent, budget_amount) "
            "select id, date '2025-05-01', 'BUDGET_EXCEEDED', 'made up', 10, 20 from users "
            "where email = 'aman@example.com'"
        )
        alert_id = conn.execute("select max(id) from alerts").fetchone()[0]
    # The marts are tables: built from the bad data, as `build` would.
    assert run_cli(seeded_url, "run").exit_code == 0
    result = run_cli(seeded_url, "test")
    assert result.exit_code == 1, result.output
    # The trigger that keeps the spending totals (V010) was off for that insert too.
    assert has_row(result.output, "FAIL", "test", "budget_spending_matches_expenses")
    assert has_row(result.output, "FAIL", "test", "alerts_exceed_their_budget")
    assert f"alert_id={alert_id}" in result.output
    assert has_row(result.output, "FAIL", "test", "exceeded_budgets_have_an_alert")
    assert f"spent={Decimal('100299.00')}" in result.output
    assert "FAIL: " in result.output


def test_check_runs_the_unit_tests(run_cli):
    result = run_cli(None, "check", "--verbose")
    assert result.exit_code == 0, result.output
    for name in (
        "budget_alert_crossings: crossings_in_id_order",
        "budget_vs_actual: status_bands_and_zero_budgets",
        "monthly_totals: months_across_a_year_boundary_and_a_leap_day",
        "rolling_trend: empty_month_inside_the_range_and_year_boundary",
    ):
        assert has_row(result.output, "PASS", "unit", name)


def test_check_unit_test_catches_spending_at_the_budget_counted_as_over(run_cli, queries):
    path = queries / "marts" / "budget_vs_actual.sql"
    text = path.read_text()
    old = "when budget_spending.spent > budget_spending.budget_amount then 'over'"
    assert old in text
    path.write_text(text.replace(old, old.replace(" > ", " >= ")))
    result = run_cli(None, "check", "--queries", str(queries))
    assert result.exit_code == 1, result.output
    name = "budget_vs_actual: status_bands_and_zero_budgets"
    assert has_row(result.output, "FAIL", "unit", name)
    assert (
        f"FAIL unit {name}: 2 expected row(s) missing, 2 unexpected "
        "(queries/unit/budget_vs_actual.json)"
    ) in result.output
    assert (
        "missing:    budget_id=1, category=Food, spent=100.00, remaining=0.00, "
        "pct_used=100.0, status=near"
    ) in result.output
    assert (
        "unexpected: budget_id=1, category=Food, spent=100.00, remaining=0.00, "
        "pct_used=100.0, status=over"
    ) in result.output
    assert (
        "unexpected: budget_id=2, category=Travel, spent=0.00, remaining=0.00, "
        "pct_used=null, status=over"
    ) in result.output


def test_check_unit_test_counts_repeated_rows(run_cli, queries):
    # Expected rows are a multiset: a row expected twice but returned once is missing once.
    path = queries / "unit" / "monthly_totals.json"
    document = json.loads(path.read_text())
    expect = document["tests"][0]["expect"]
    expect[-1] = dict(expect[0])
    path.write_text(json.dumps(document))
    result = run_cli(None, "check", "--queries", str(queries), "--select", "monthly_totals")
    assert result.exit_code == 1, result.output
    name = "monthly_totals: months_across_a_year_boundary_and_a_leap_day"
    assert (
        f"FAIL unit {name}: 1 expected row(s) missing, 1 unexpected "
        "(queries/unit/monthly_totals.json)"
    ) in result.output
    assert (
        "missing:    user_id=1, month=2023-12-01, total_spent=100.10, expense_count=1"
        in result.output
    )
    assert (
        "unexpected: user_id=2, month=2024-03-01, total_spent=0.01, expense_count=1"
        in result.output
    )


def test_check_unit_test_that_expects_an_unknown_column_is_an_error(run_cli, queries):
    path = queries / "unit" / "monthly_totals.json"
    path.write_text(path.read_text().replace('"expense_count": 2', '"n_expenses": 2'))
    result = run_cli(None, "check", "--queries", str(queries))
    assert result.exit_code == 1, result.output
    assert has_row(
        result.output,
        "ERROR",
        "unit",
        "monthly_totals: months_across_a_year_boundary_and_a_leap_day",
    )
    assert (
        'expects column "n_expenses", which model "monthly_totals" does not return' in result.output
    )


def test_check_unit_test_file_that_is_not_json_is_refused(run_cli, queries):
    (queries / "unit" / "broken.json").write_text('{"model": "monthly_totals", "tests": [}')
    result = run_cli(None, "check", "--queries", str(queries))
    assert result.exit_code == 2
    assert "Error: unit test file queries/unit/broken.json is not valid JSON" in result.stderr


def test_check_singular_test_with_an_unknown_ref_is_an_error_naming_its_file(run_cli, queries):
    (queries / "tests" / "typo.sql").write_text(
        "-- Refers to a model that does not exist.\nselect * from {{ ref('monthly_total') }}\n"
    )
    result = run_cli(None, "check", "--queries", str(queries))
    assert result.exit_code == 1, result.output
    assert has_row(result.output, "ERROR", "test", "typo")
    assert 'refers to unknown model "monthly_total" (queries/tests/typo.sql)' in result.output
    assert 'Did you mean "monthly_totals"?' in result.output
    # The other tests still ran.
    assert "0 skipped" in result.output and "1 failed" in result.output


def test_test_runs_the_unit_tests_on_postgresql_without_touching_the_data(seeded_url, run_cli):
    assert run_cli(seeded_url, "run").exit_code == 0
    with psycopg.connect(seeded_url) as conn:
        before = conn.execute("select count(*), sum(amount) from expenses").fetchone()
    result = run_cli(seeded_url, "test", "--verbose")
    assert result.exit_code == 0, result.output
    assert has_row(result.output, "PASS", "unit", "budget_vs_actual: status_bands_and_zero_budgets")
    assert has_row(result.output, "PASS", "unit", "budget_alert_crossings: crossings_in_id_order")
    with psycopg.connect(seeded_url) as conn:
        assert conn.execute("select count(*), sum(amount) from expenses").fetchone() == before
        assert conn.execute(
            "select count(*) from pg_class where relname like 'unit_%'"
        ).fetchone() == (0,)


def test_test_unit_test_fails_on_postgresql_with_the_rows(seeded_url, run_cli, queries):
    assert run_cli(seeded_url, "run").exit_code == 0
    path = queries / "marts" / "budget_vs_actual.sql"
    old = "when budget_spending.spent > budget_spending.budget_amount then 'over'"
    path.write_text(path.read_text().replace(old, old.replace(" > ", " >= ")))
    result = run_cli(seeded_url, "test", "--queries", str(queries), "--select", "budget_vs_actual")
    assert result.exit_code == 1, result.output
    assert has_row(result.output, "FAIL", "unit", "budget_vs_actual: status_bands_and_zero_budgets")
    assert (
        "unexpected: budget_id=1, category=Food, spent=100.00, remaining=0.00, "
        "pct_used=100.0, status=over"
    ) in result.output
