"""Engine parity: the same generated data on PostgreSQL and DuckDB gives the same model rows,
and the set-based alert model agrees with the PostgreSQL trigger."""

import shutil
from decimal import Decimal

import psycopg
import pytest

from tracker.pipeline import duck as tracker_duck
from tracker.pipeline.models import load_project, render_file
from tracker.plumbing import config

GENERATE = ("generate", "--users", "30", "--expenses", "3000", "--months", "14", "--seed", "7")
ALERT_MODEL = config.QUERIES_DIR / "checks" / "budget_alert_crossings.sql"
COPIED = {
    "users": "id, name, email, currency",
    "categories": "id, name, description, color",
    "budgets": "id, user_id, category_id, month, amount",
}
EXPENSE_COLUMNS = "id, user_id, category_id, amount, currency, date, note"


@pytest.fixture
def generated_url(db_url, run_cli) -> str:
    result = run_cli(db_url, *GENERATE)
    assert result.exit_code == 0, result.output
    return db_url


def test_parity_every_model_returns_the_same_rows_on_both_engines(generated_url, run_cli):
    assert run_cli(generated_url, "run").exit_code == 0
    result = run_cli(generated_url, "parity")
    assert result.exit_code == 0, result.output
    models = len(load_project().models)
    assert f"PASS: {models} models return the same rows on PostgreSQL and DuckDB." in result.output
    # The comparison had something to compare: 3,000 expenses on both sides.
    assert any(
        line.split()[1:] == ["fact_expenses", "3,000", "3,000"]
        for line in result.output.splitlines()
        if line.startswith("PASS")
    )


def test_parity_reports_an_engine_difference_with_model_key_and_values(
    generated_url, run_cli, tmp_path
):
    assert run_cli(generated_url, "run").exit_code == 0
    queries = tmp_path / "queries"
    shutil.copytree(config.QUERIES_DIR, queries)
    macros = queries / "macros" / "cross_database.sql"
    old = "{% macro money(expr) -%}\ncast(round({{ expr }}, 2) as numeric(38, 2))"
    assert old in macros.read_text()
    # A macro that rounds money to whole units on DuckDB only: an engine difference.
    macros.write_text(
        macros.read_text().replace(
            old,
            (
                "{% macro money(expr) -%}\n"
                "{% if target.engine == 'duckdb' %}cast(round({{ expr }}, 0) as numeric(38, 2))"
                "{% else %}cast(round({{ expr }}, 2) as numeric(38, 2)){% endif %}"
            ),
        )
    )
    result = run_cli(
        generated_url, "parity", "--queries", str(queries), "--select", "monthly_totals"
    )
    assert result.exit_code == 1, result.output
    assert "FAIL monthly_totals:" in result.output
    with psycopg.connect(generated_url) as conn:
        user_id, month, total = conn.execute(
            "select user_id, month, total_spent from analytics.monthly_totals "
            "where total_spent <> round(total_spent, 0) order by user_id::text, month limit 1"
        ).fetchone()
    assert (
        f"(user_id={user_id}, month={month}) total_spent: PostgreSQL '{total}', "
        f"DuckDB '{total.quantize(Decimal('1'), 'ROUND_HALF_UP')}.00'"
    ) in result.output
    assert "FAIL: 1 of 1 model differs" in result.output


def test_parity_type_difference_is_reported(generated_url, run_cli, tmp_path):
    assert run_cli(generated_url, "run").exit_code == 0
    queries = tmp_path / "queries"
    shutil.copytree(config.QUERIES_DIR, queries)
    macros = queries / "macros" / "cross_database.sql"
    old = "cast(round({{ expr }}, 2) as numeric(38, 2))"
    macros.write_text(
        macros.read_text().replace(
            old,
            (
                "{% if target.engine == 'duckdb' %}cast(round({{ expr }}, 2) as numeric(18, 2))"
                "{% else %}" + old + "{% endif %}"
            ),
        )
    )
    result = run_cli(
        generated_url, "parity", "--queries", str(queries), "--select", "monthly_totals"
    )
    assert result.exit_code == 1, result.output
    assert (
        'column "total_spent" is DECIMAL(38,2) in PostgreSQL, DECIMAL(18,2) in DuckDB'
        in result.output
    )


def test_parity_without_run_says_to_build_the_models(generated_url, run_cli):
    result = run_cli(generated_url, "parity")
    assert result.exit_code == 1
    assert "does not exist in PostgreSQL" in result.stderr
    assert "python cli.py run" in result.stderr


def _copy_reference_tables(source, target) -> None:
    for table, columns in COPIED.items():
        with (
            source.cursor().copy(
                f"copy (select {columns} from {table} order by id) to stdout"
            ) as out,
            target.cursor().copy(f"copy {table} ({columns}) from stdin") as into,
        ):
            for chunk in out:
                into.write(chunk)


def _differences(label_a, rows_a: dict, label_b, rows_b: dict) -> list[str]:
    differences = []
    for key in sorted(set(rows_a) | set(rows_b)):
        if rows_a.get(key) != rows_b.get(key):
            differences.append(
                f"key (user, category, month) {key}: {label_a} {rows_a.get(key)}, "
                f"{label_b} {rows_b.get(key)}"
            )
    return differences


def test_parity_alert_model_equals_the_trigger_row_by_row_and_by_copy(
    generated_url, fresh_database, empty_template, tmp_path
):
    project = load_project()
    with psycopg.connect(generated_url) as source:
        crossings = source.execute(
            "select user_id, category_id, month, spent, budget_amount, expense_id from ("
            + render_file(project, ALERT_MODEL, "postgres")
            + ") as crossings"
        ).fetchall()
        expenses = source.execute(f"select {EXPENSE_COLUMNS} from expenses order by id").fetchall()
        final_totals = {
            (user_id, category_id, month): total
            for user_id, category_id, month, total in source.execute(
                "select user_id, category_id, date_trunc('month', date)::date, sum(amount) "
                "from expenses group by 1, 2, 3"
            ).fetchall()
        }
        row_url, copy_url = fresh_database(empty_template), fresh_database(empty_template)
        for url in (row_url, copy_url):
            with psycopg.connect(url) as target:
                _copy_reference_tables(source, target)
    model = {(u, c, m): (spent, budget) for u, c, m, spent, budget, _ in crossings}
    assert len(model) == len(crossings), "the model gives one crossing per key at most"
    assert len(model) > 20, "the generated data must cross some budgets"

    # The same model on DuckDB, from a copy of the same base tables.
    duck = tracker_duck.connect()
    tracker_duck.create_base_tables(duck)
    tracker_duck.copy_from_postgres(generated_url, duck, tmp_path)
    in_duckdb = duck.execute(
        "select user_id, category_id, month, spent, budget_amount, expense_id from ("
        + render_file(project, ALERT_MODEL, "duckdb")
        + ") as crossings order by all"
    ).fetchall()
    assert in_duckdb == sorted(crossings)

    # Row by row: one INSERT statement per expense, in id order, budgets already present.
    with psycopg.connect(row_url) as conn:
        with conn.cursor() as cursor:
            cursor.executemany(
                f"insert into expenses ({EXPENSE_COLUMNS}) values (%s, %s, %s, %s, %s, %s, %s)",
                expenses,
            )
        conn.commit()
        fired = conn.execute(
            "select user_id, category_id, month, spent, budget_amount from alerts"
        ).fetchall()
    by_trigger = {(u, c, m): (spent, budget) for u, c, m, spent, budget in fired}
    assert len(by_trigger) == len(fired), "row by row, a key crosses its budget once"
    differences = _differences("trigger", by_trigger, "model", model)
    assert not differences, "\n".join(differences[:10])

    # One COPY: the trigger fires once per key with the final total, so the keys that end
    # over budget are the keys the model finds a crossing for.
    with psycopg.connect(copy_url) as conn:
        with conn.cursor().copy(f"copy expenses ({EXPENSE_COLUMNS}) from stdin") as copy:
            for row in expenses:
                copy.write_row(row)
        conn.commit()
        fired = conn.execute(
            "select user_id, category_id, month, spent, budget_amount from alerts"
        ).fetchall()
    by_copy = {(u, c, m): (spent, budget) for u, c, m, spent, budget in fired}
    assert len(by_copy) == len(fired)
    expected = {key: (final_totals[key], budget) for key, (_, budget) in model.items()}
    differences = _differences("COPY trigger", by_copy, "model (final total)", expected)
    assert not differences, "\n".join(differences[:10])
