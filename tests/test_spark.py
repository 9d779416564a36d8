"""The models on Apache Spark over the lake: run, parity with PostgreSQL, check (data + unit tests).

One SparkSession for the whole session (local[2], 2 shuffle partitions, no UI): every CLI call
made in-process reuses it, so the JVM starts once.
"""

import json
import shutil
from decimal import Decimal
from pathlib import Path

import duckdb
import psycopg
import pytest

from tracker.plumbing.config import QUERIES_DIR

EDGE_USER = "edge@example.com"


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from tracker.pipeline.spark import spark_session, stop_spark

    session = spark_session(
        "local[2]", shuffle_partitions=2, workdir=tmp_path_factory.mktemp("spark")
    )
    yield session
    stop_spark()


def add_edge_cases(url: str) -> None:
    """A user with a month gap, a year boundary, 29 February, zero and exact-at budgets."""
    with psycopg.connect(url, autocommit=True) as conn:
        user = conn.execute(
            "insert into users (name, email) values ('Edge', %s) returning id", [EDGE_USER]
        ).fetchone()[0]
        ids = dict(conn.execute("select name, id from categories").fetchall())
        for category, month, amount in [
            ("Food", "2024-01-01", "10.00"),  # nothing spent: under, spent 0
            ("Food", "2024-02-01", "80.00"),  # spent exactly 80.00: near, 100.0 %
            ("Rent", "2024-02-01", "0.00"),  # zero budget, nothing spent: near, pct null
            ("Rent", "2024-03-01", "0.00"),  # zero budget, 50.00 spent: over
        ]:
            conn.execute(
                "insert into budgets (user_id, category_id, month, amount) values (%s, %s, %s, %s)",
                [user, ids[category], month, amount],
            )
        for category, day, amount in [
            ("Food", "2023-12-31", "100.10"),
            ("Food", "2024-02-29", "80.00"),
            ("Transport", "2024-02-29", "0.05"),
            ("Rent", "2024-03-01", "50.00"),
        ]:
            conn.execute(
                "insert into expenses (user_id, category_id, amount, date) values (%s, %s, %s, %s)",
                [user, ids[category], amount, day],
            )


def spark_rows(out: Path, model: str, where: str = "true") -> list[tuple]:
    duck = duckdb.connect()
    return duck.execute(
        f"select cast(columns(*) as varchar) from read_parquet('{out / model}/*.parquet') "
        f"where {where} order by all"
    ).fetchall()


def test_spark_marts_equal_postgres_on_sample_generated_and_edge_data(
    spark, seeded_url, run_cli, tmp_path
):
    result = run_cli(
        seeded_url,
        "generate",
        "--users",
        "6",
        "--expenses",
        "1500",
        "--months",
        "14",
        "--seed",
        "11",
        "--start-month",
        "2023-12",
    )
    assert result.exit_code == 0, result.output
    add_edge_cases(seeded_url)
    assert run_cli(seeded_url, "run").exit_code == 0
    lake, out = tmp_path / "lake", tmp_path / "marts"

    result = run_cli(
        seeded_url, "parity", "--engine", "spark", "--master", "local[2]", "--lake", str(lake)
    )
    assert result.exit_code == 0, result.output
    from tracker.pipeline.models import load_project

    models = len(load_project().models)
    assert f"PASS: {models} models return the same rows on PostgreSQL and Spark." in result.output

    result = run_cli(
        seeded_url,
        "run",
        "--engine",
        "spark",
        "--master",
        "local[2]",
        "--lake",
        str(lake),
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    marts = [model.name for model in load_project().models.values() if model.export]
    assert sorted(path.name for path in out.iterdir()) == sorted(marts)

    with psycopg.connect(seeded_url) as conn:
        user = conn.execute("select id from users where email = %s", [EDGE_USER]).fetchone()[0]
    # The edge cases, computed by hand.
    rows = spark_rows(out, "budget_vs_actual", f"user_id = {user}")
    assert [(row[2], row[4], row[6], row[7], row[8], row[9]) for row in rows] == [
        ("2024-01-01", "Food", "0.00", "10.00", "0.0", "under"),
        ("2024-02-01", "Food", "80.00", "0.00", "100.0", "near"),
        ("2024-02-01", "Rent", "0.00", "0.00", None, "near"),
        ("2024-03-01", "Rent", "50.00", "-50.00", None, "over"),
    ]
    assert spark_rows(out, "rolling_trend", f"user_id = {user}") == [
        (str(user), "2023-12-01", "100.10", "100.10", "100.10"),
        (str(user), "2024-01-01", "0.00", "100.10", "50.05"),
        (str(user), "2024-02-01", "80.05", "180.15", "60.05"),
        (str(user), "2024-03-01", "50.00", "130.05", "43.35"),
    ]
    feb = spark_rows(out, "top_categories", f"user_id = {user} and month = '2024-02-01'")
    assert [(row[2], row[4], row[5], row[7]) for row in feb] == [
        ("1", "Food", "80.00", "99.9"),
        ("2", "Transport", "0.05", "0.1"),
    ]
    leap = spark_rows(out, "dim_date", "date = '2024-02-29'")
    assert leap == [
        ("2024-02-29", "2024", "1", "2", "February", "2024-02-01", "9", "4", "Thursday", "false")
    ]
    # Types as PostgreSQL has them: exact decimals, DATE months.
    types = dict(
        duckdb.connect()
        .execute(
            f"select column_name, column_type from (describe select * from "
            f"read_parquet('{out}/budget_vs_actual/*.parquet'))"
        )
        .fetchall()
    )
    assert types["spent"] == "DECIMAL(38,2)" and types["pct_used"] == "DECIMAL(38,1)"
    assert types["month"] == "DATE"
    with psycopg.connect(seeded_url) as conn:
        total = conn.execute("select sum(total_spent) from analytics.monthly_totals").fetchone()[0]
    (spark_total,) = (
        duckdb.connect()
        .execute(f"select sum(total_spent) from read_parquet('{out}/monthly_totals/*.parquet')")
        .fetchone()
    )
    assert Decimal(spark_total) == total


def test_parity_engine_spark_names_the_model_key_and_values_that_differ(
    spark, seeded_url, run_cli, tmp_path
):
    assert run_cli(seeded_url, "run").exit_code == 0
    lake = tmp_path / "lake"
    assert run_cli(seeded_url, "export", "--lake", str(lake)).exit_code == 0
    # PostgreSQL's relation changes behind the lake's back (a table the lake cannot follow).
    with psycopg.connect(seeded_url, autocommit=True) as conn:
        conn.execute("update analytics.dim_date set month_name = 'Mai' where date = '2025-05-17'")
    result = run_cli(
        seeded_url,
        "parity",
        "--engine",
        "spark",
        "--master",
        "local[2]",
        "--lake",
        str(lake),
        "--select",
        "dim_date",
    )
    assert result.exit_code == 1
    assert "(date=2025-05-17) month_name: PostgreSQL 'Mai', Spark 'May'" in result.output


def test_check_engine_spark_runs_the_data_and_unit_tests(spark, run_cli, tmp_path):
    result = run_cli(None, "check", "--engine", "spark", "--master", "local[2]")
    assert result.exit_code == 0, result.output
    duck = run_cli(None, "check")
    assert duck.exit_code == 0
    spark_line = result.output.strip().splitlines()[-1]
    duck_line = duck.output.strip().splitlines()[-1]
    assert spark_line.startswith("PASS:") and " on spark;" in spark_line
    # The same number of models, data tests and unit tests on both engines.
    assert spark_line.split(" on ")[0] == duck_line.split(" on ")[0]

    queries = tmp_path / "queries"
    shutil.copytree(QUERIES_DIR, queries)
    unit = queries / "unit" / "monthly_totals.json"
    document = json.loads(unit.read_text())
    document["tests"][0]["expect"][0]["total_spent"] = "100.11"
    unit.write_text(json.dumps(document))
    result = run_cli(
        None,
        "check",
        "--engine",
        "spark",
        "--master",
        "local[2]",
        "--queries",
        str(queries),
        "--select",
        "monthly_totals",
    )
    assert result.exit_code == 1
    assert "FAIL unit monthly_totals: months_across_a_year_boundary_and_a_leap_day" in result.output
    assert "total_spent=100.11" in result.output
