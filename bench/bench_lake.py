"""make bench, section lake: the partitioned Parquet lake and the models on Spark.

At 1,000,000 expenses (the run's dataset):
- a full `export --lake` against today's whole export (CSV + Parquet + manifest) of the
  same database: the ratio, target at most 1.5x (the lake writes one file per month);
- an incremental `export --lake` after 1,000 new expenses in one month (one INSERT, so the
  alert trigger and the change-log trigger run as in real use) against the full lake
  export: target at most 5 % of it;
- every model computed on Spark (local[2], over the lake) beside DuckDB (over the same
  lake files) and PostgreSQL (over its tables): informational, no target.

With `--lake-expenses N` (e.g. 10000000; opt-in, it takes minutes on 2 cores) a second lake of N
expenses is generated straight into Parquet by DuckDB (no PostgreSQL), and the time per
million rows of every model on Spark and DuckDB is printed for both sizes, so growth shows.
"""

import json
import time
from pathlib import Path

import duckdb

from bench import Figure, paired, section
from tracker.pipeline.export import export_items, export_models, select_export_models
from tracker.pipeline.lake import export_lake
from tracker.pipeline.models import SCHEMA, load_project
from tracker.pipeline.runner import run_models, run_models_duckdb
from tracker.plumbing import db as tracker_db

FULL_RATIO = 1.5
INCREMENTAL_SHARE = 0.05
NEW_EXPENSES = 1000
SPARK_MASTER = "local[2]"

# The base tables as DuckDB views over a lake (the mapping tracker/pipeline/spark.py gives Spark).
DUCKDB_SOURCES = {
    "users": "select user_id as id, name, cast(null as varchar) as email, currency, created_at "
    "from read_parquet('{lake}/dim_user.parquet')",
    "categories": "select category_id as id, category as name, description, color "
    "from read_parquet('{lake}/dim_category.parquet')",
    "budgets": "select budget_id as id, user_id, category_id, month, budget_amount as amount, "
    "cast(null as timestamptz) as created_at, cast(null as timestamptz) as updated_at "
    "from read_parquet('{lake}/fact_budgets/*/*/*.parquet', hive_partitioning = false)",
    "expenses": "select expense_id as id, user_id, category_id, amount, currency, date, note, "
    "cast(null as timestamptz) as created_at "
    "from read_parquet('{lake}/fact_expenses/*/*/*.parquet', hive_partitioning = false)",
    "alerts": "select alert_id as id, user_id, budget_id, category_id, month, alert_type, "
    "message, spent, budget_amount, fired_at, acknowledged_at "
    "from read_parquet('{lake}/alerts/*/*/*.parquet', hive_partitioning = false, "
    "union_by_name = true)",
}


@section(
    "lake",
    "export --lake full vs whole export; incremental <= 5 % of full; "
    "every model on Spark / DuckDB / PostgreSQL",
)
def bench_lake(ctx) -> list[Figure]:
    project = load_project()
    items = export_items(select_export_models(project))
    figures = []
    with ctx.scratch_database("lake", from_dataset=True) as url:
        with (
            tracker_db.connect(url) as conn,
            ctx.timer("cli.py run (build the models, not part of the figures)"),
        ):
            run_models(conn, project, list(project.models.values()))
        timings: dict[str, list[float]] = {"export": [], "full": [], "incremental": []}
        lake = ctx.workdir / "lake"
        for run in range(max(ctx.runs, 2)):
            started = time.perf_counter()
            export_models(url, items, ctx.workdir / "export")
            timings["export"].append(time.perf_counter() - started)
            started = time.perf_counter()
            full = export_lake(url, project, lake, full=True)
            timings["full"].append(time.perf_counter() - started)
            _insert_expenses(url, run)
            started = time.perf_counter()
            incremental = export_lake(url, project, lake)
            timings["incremental"].append(time.perf_counter() - started)
            ctx.echo(
                f"  run {run + 1}: whole export {timings['export'][-1]:.2f} s, full lake "
                f"{timings['full'][-1]:.2f} s ({len(full.written)} files), incremental "
                f"{timings['incremental'][-1]:.2f} s ({len(incremental.written)} files: "
                f"{', '.join(path for path in incremental.written if '/' in path)})"
            )
        figures += [
            Figure(
                "lake",
                "export --lake --full (facts by month + dimensions)",
                baseline_label="whole export",
                max_ratio=FULL_RATIO,
                note=f"median of {len(timings['full'])} runs' ratios",
                **paired(timings["full"], timings["export"]),
            ),
            Figure(
                "lake",
                f"export --lake after {NEW_EXPENSES:,} new expenses in one month",
                baseline_label="full lake export",
                max_ratio=INCREMENTAL_SHARE,
                note=f"median of {len(timings['full'])} runs' ratios",
                **paired(timings["incremental"], timings["full"]),
            ),
        ]
        rows = sum(
            entry["rows"] for entry in full.manifest["files"] if entry["model"] == "fact_expenses"
        )
        export_lake(url, project, lake)
        postgres = _postgres_models(url, project)
        ctx.echo(f"  every model on PostgreSQL (create table as each): {postgres:.2f} s")
    duck = _duckdb_models(project, lake)
    ctx.echo(f"  every model on DuckDB over the lake: {duck:.2f} s")
    spark_seconds = _spark_models(ctx, project, lake)
    ctx.echo(f"  every model on Spark {SPARK_MASTER} over the lake: {spark_seconds:.2f} s")
    figures += [
        Figure(
            "lake",
            f"every model on Spark {SPARK_MASTER}, {rows:,} expenses",
            spark_seconds,
            baseline_label="PostgreSQL",
            baseline_seconds=postgres,
            note=f"DuckDB {duck:.2f} s",
        ),
        Figure(
            "lake",
            f"every model on DuckDB over the lake, {rows:,} expenses",
            duck,
            baseline_label="PostgreSQL",
            baseline_seconds=postgres,
        ),
    ]
    big = getattr(ctx, "lake_expenses", 0)
    if big:
        big_lake = ctx.workdir / "big-lake"
        with ctx.timer(f"generate {big:,} expenses straight into a lake (DuckDB)"):
            _generate_lake(big_lake, big)
        big_duck = _duckdb_models(project, big_lake)
        big_spark = _spark_models(ctx, project, big_lake)
        for engine, small, large in (
            ("Spark", spark_seconds, big_spark),
            ("DuckDB", duck, big_duck),
        ):
            ctx.echo(
                f"  {engine}: {small / rows * 1e6:.2f} s per million rows at {rows:,}, "
                f"{large / big * 1e6:.2f} s per million rows at {big:,}"
            )
        figures += [
            Figure(
                "lake",
                f"every model on Spark {SPARK_MASTER}, {big:,} expenses",
                big_spark,
                note=f"{big_spark / big * 1e6:.2f} s per million rows",
            ),
            Figure(
                "lake",
                f"every model on DuckDB, {big:,} expenses",
                big_duck,
                note=f"{big_duck / big * 1e6:.2f} s per million rows",
            ),
        ]
    return figures


def _insert_expenses(url: str, run: int) -> None:
    """1,000 new expenses in one month (the dataset's last), in one statement."""
    with tracker_db.connect(url) as conn:
        conn.execute(
            """
            insert into expenses (user_id, category_id, amount, date, note)
            select
                users.id,
                (select min(id) from categories),
                (1 + series.n %% 500) / 10.0,
                (select max(date) from expenses),
                'bench lake ' || %s
            from generate_series(1, %s) as series (n)
            cross join lateral (
                select id from users order by id limit 1 offset series.n %% 50
            ) as users
            """,
            [run, NEW_EXPENSES],
        )
        conn.commit()


def _postgres_models(url: str, project) -> float:
    """Every model computed in full on PostgreSQL: create temp table as select * from it."""
    started = time.perf_counter()
    with tracker_db.connect(url) as conn:
        for name in project.order:
            conn.execute(f'create temp table "bench_{name}" as select * from {SCHEMA}."{name}"')
        conn.rollback()
    return time.perf_counter() - started


def _duckdb_models(project, lake: Path) -> float:
    """Every model built on DuckDB over the lake's files and computed in full."""
    duck = duckdb.connect()
    duck.execute("set TimeZone = 'UTC'")
    started = time.perf_counter()
    for table, query in DUCKDB_SOURCES.items():
        if table == "alerts" and not any((lake / "alerts").glob("*/*/*.parquet")):
            query = (
                "select * from (select 1::bigint as id, 1::bigint as user_id, "
                "1::bigint as budget_id, 1::bigint as category_id, date '2000-01-01' "
                "as month, '' as alert_type, '' as message, 0::decimal(38,2) as spent, "
                "0::decimal(12,2) as budget_amount, now() as fired_at, now() as "
                "acknowledged_at) where false"
            )
        duck.execute(f"create view main.{table} as {query.format(lake=lake)}")
    duck.execute(f"create schema {SCHEMA}")
    run_models_duckdb(duck, project, list(project.models.values()))
    for name in project.order:
        duck.execute(f'create temp table "bench_{name}" as select * from {SCHEMA}."{name}"')
    seconds = time.perf_counter() - started
    duck.close()
    return seconds


def _spark_models(ctx, project, lake: Path) -> float:
    """Every model on Spark over the lake, each written as Parquet (session start excluded)."""
    from tracker.pipeline.spark import build_models, register_lake, spark_session, write_models

    spark = spark_session(SPARK_MASTER, shuffle_partitions=4, workdir=ctx.workdir)
    started = time.perf_counter()
    register_lake(spark, lake)
    build_models(spark, project)
    write_models(spark, list(project.models.values()), ctx.workdir / f"spark-{lake.name}")
    return time.perf_counter() - started


def _generate_lake(lake: Path, expenses: int) -> None:
    """A lake of `expenses` expenses over 12 months of 2025 written by DuckDB, with a manifest."""
    users = max(expenses // 1000, 10)
    lake.mkdir(parents=True)
    duck = duckdb.connect()
    duck.execute("set TimeZone = 'UTC'")
    duck.execute(f"""
        copy (
            select
                cast(n as bigint) as expense_id,
                cast(1 + hash(n) % {users} as bigint) as user_id,
                cast(1 + hash(n + 1) % 9 as bigint) as category_id,
                date '2025-01-01' + cast(hash(n + 2) % 365 as integer) as date,
                cast(date_trunc('month', date '2025-01-01' + cast(hash(n + 2) % 365 as integer))
                     as date) as month,
                cast((1 + hash(n + 3) % 500000) / 100 as decimal(12, 2)) as amount,
                'INR' as currency,
                cast(null as varchar) as note,
                year(month) as year
            from range(1, {expenses} + 1) as series (n)
        ) to '{lake}/fact_expenses'
        (format parquet, partition_by (year, month), write_partition_columns true)
    """)
    duck.execute(f"""
        copy (
            select
                cast(row_number() over () as bigint) as budget_id,
                cast(u as bigint) as user_id,
                cast(c as bigint) as category_id,
                make_date(2025, m, 1) as month,
                cast(1000 + (u * c * m) % 9000 as decimal(12, 2)) as budget_amount,
                2025 as year
            from range(1, {users} + 1) as us (u), range(1, 10) as cs (c), range(1, 13) as ms (m)
        ) to '{lake}/fact_budgets'
        (format parquet, partition_by (year, month), write_partition_columns true)
    """)
    duck.execute(f"""copy (select cast(range + 1 as bigint) as user_id, 'User ' || range as name,
        'INR' as currency, timestamptz '2025-01-01 00:00:00+00' as created_at from range({users}))
        to '{lake}/dim_user.parquet' (format parquet)""")
    duck.execute(f"""copy (select cast(range + 1 as bigint) as category_id,
        'Category ' || range as category, cast(null as varchar) as description,
        '#9E9E9E' as color from range(9)) to '{lake}/dim_category.parquet' (format parquet)""")
    duck.close()

    def columns(pairs):
        return [{"name": name, "type": type_} for name, type_ in pairs]

    manifest = {
        "generator": "bench",
        "include_pii": False,
        "files": [],
        "tables": {
            "fact_expenses": {
                "path": "fact_expenses",
                "columns": columns(
                    [
                        ("expense_id", "BIGINT"),
                        ("user_id", "BIGINT"),
                        ("category_id", "BIGINT"),
                        ("date", "DATE"),
                        ("month", "DATE"),
                        ("amount", "DECIMAL(12,2)"),
                        ("currency", "VARCHAR"),
                        ("note", "VARCHAR"),
                    ]
                ),
            },
            "fact_budgets": {
                "path": "fact_budgets",
                "columns": columns(
                    [
                        ("budget_id", "BIGINT"),
                        ("user_id", "BIGINT"),
                        ("category_id", "BIGINT"),
                        ("month", "DATE"),
                        ("budget_amount", "DECIMAL(12,2)"),
                    ]
                ),
            },
            "alerts": {
                "path": "alerts",
                "columns": columns(
                    [
                        ("alert_id", "BIGINT"),
                        ("user_id", "BIGINT"),
                        ("budget_id", "BIGINT"),
                        ("category_id", "BIGINT"),
                        ("month", "DATE"),
                        ("alert_type", "VARCHAR"),
                        ("message", "VARCHAR"),
                        ("spent", "DECIMAL(38,2)"),
                        ("budget_amount", "DECIMAL(12,2)"),
                        ("fired_at", "TIMESTAMPTZ"),
                        ("acknowledged_at", "TIMESTAMPTZ"),
                    ]
                ),
            },
            "dim_user": {
                "path": "dim_user.parquet",
                "columns": columns(
                    [
                        ("user_id", "BIGINT"),
                        ("name", "VARCHAR"),
                        ("currency", "VARCHAR"),
                        ("created_at", "TIMESTAMPTZ"),
                    ]
                ),
            },
            "dim_category": {
                "path": "dim_category.parquet",
                "columns": columns(
                    [
                        ("category_id", "BIGINT"),
                        ("category", "VARCHAR"),
                        ("description", "VARCHAR"),
                        ("color", "VARCHAR"),
                    ]
                ),
            },
        },
    }
    (lake / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
