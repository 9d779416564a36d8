"""The same models on Apache Spark SQL, over the lake (or over the sample seeds for `check`).

Spark is optional at run time: pyspark is imported only here, and only when a Spark command
runs, so `export` and every PostgreSQL/DuckDB path work without Java.

How the models meet Spark:

- sources: `{{ source('expenses') }}` renders `lake.expenses` for engine 'spark'. For `run`
  and `parity` the five base tables are views in database `lake` rebuilt from the lake's
  files (fact_expenses -> expenses, fact_budgets -> budgets, dim_user -> users, ...): the
  columns the models read, with the base tables' types. Columns the lake does not carry
  (created_at of expenses and budgets; users' e-mail unless the lake has --include-pii)
  are null; LAKE_MISSING_COLUMNS lists which models that touches, and parity leaves those
  columns out. For `check` they are the sample seeds, loaded by DuckDB as `check` does and
  handed over as Parquet.
- models: each is a view `analytics.<name>` in Spark's in-memory catalog, created in
  dependency order from the same files in queries/ (dialect differences are in
  queries/macros/cross_database.sql, branch 'spark').
- identifiers in the engine-neutral test queries are double-quoted, so the session sets
  spark.sql.ansi.doubleQuotedIdentifiers (ANSI mode, Spark 4's default, is kept on:
  overflows and bad casts fail instead of turning into null).

Nothing here prints or reads the environment.
"""

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tracker.errors import InputError, TrackerError
from tracker.pipeline.models import SCHEMA, Model, Project, render, render_file, sql_literal

SOURCE_DATABASE = "lake"
FILES_DATABASE = "lake_files"
DEFAULT_MASTER = "local[*]"

# DuckDB/Parquet type names of the lake's manifest -> Spark SQL types.
_SPARK_TYPES = {
    "BIGINT": "bigint",
    "INTEGER": "int",
    "SMALLINT": "smallint",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "TIMESTAMPTZ": "timestamp",
    "TIMESTAMP": "timestamp_ntz",
    "DOUBLE": "double",
    "FLOAT": "float",
    "VARCHAR": "string",
}

# The base tables as views over the lake's tables (database lake_files): the columns the
# models read, in the migrations' types. {email} is the e-mail column or a null.
LAKE_SOURCES = {
    "users": """
        select
            user_id as id,
            name,
            {email} as email,
            currency,
            created_at
        from lake_files.dim_user
    """,
    "categories": """
        select
            category_id as id,
            category as name,
            description,
            color
        from lake_files.dim_category
    """,
    "budgets": """
        select
            budget_id as id,
            user_id,
            category_id,
            cast(extract(year from month) as smallint) as year,
            cast(extract(month from month) as smallint) as month,
            budget_amount as amount,
            cast(null as timestamp) as created_at,
            cast(null as timestamp) as updated_at
        from lake_files.fact_budgets
    """,
    "expenses": """
        select
            expense_id as id,
            user_id,
            category_id,
            amount,
            currency,
            date,
            note,
            cast(null as timestamp) as created_at
        from lake_files.fact_expenses
    """,
    "alerts": """
        select
            alert_id as id,
            user_id,
            budget_id,
            category_id,
            month,
            alert_type,
            message,
            spent,
            budget_amount,
            fired_at,
            acknowledged_at
        from lake_files.alerts
    """,
    # Not in the lake: V010's per-key totals are derived state, so they are derived here
    # exactly as its triggers keep them (the sum of each key's expenses).
    "budget_spending": """
        select
            user_id,
            category_id,
            cast(date_trunc('month', date) as date) as month,
            cast(sum(amount) as decimal(38,2)) as spent
        from lake_files.fact_expenses
        group by user_id, category_id, cast(date_trunc('month', date) as date)
    """,
}
# Model columns that come from base-table columns the lake does not carry.
LAKE_MISSING_COLUMNS = {
    "stg_expenses": ("created_at",),
    "stg_budgets": ("created_at", "updated_at"),
}
PII_MISSING_COLUMNS = {"stg_users": ("email",), "dim_user": ("email",)}


@dataclass
class SparkRun:
    """What `run --engine spark` did: per model the seconds to write it, and where."""

    out_dir: Path
    timings: list[tuple[str, float]]
    seconds: float
    master: str


def spark_session(
    master: str = DEFAULT_MASTER,
    *,
    shuffle_partitions: int | None = None,
    workdir: Path | str | None = None,
):
    """A SparkSession (created, or the running one) set up for the models."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise TrackerError(
            "Error: pyspark is not installed. Install the spark extra: "
            "`pip install --require-hashes -r requirements-test.lock` (or `pip install .[spark]`)."
        ) from None
    active = SparkSession.getActiveSession()
    if active is not None:
        # One JVM per process: a later command (or test) reuses the running session as is.
        if shuffle_partitions:
            active.conf.set("spark.sql.shuffle.partitions", str(shuffle_partitions))
        return active
    warehouse = Path(workdir or tempfile.gettempdir()) / "spark-warehouse"
    builder = (
        SparkSession.builder.master(master)
        .appName("smart-spending-tracker")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.ansi.enabled", "true")
        .config("spark.sql.ansi.doubleQuotedIdentifiers", "true")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.sql.catalogImplementation", "in-memory")
        .config("spark.sql.warehouse.dir", str(warehouse))
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions or 8))
        .config("spark.driver.extraJavaOptions", "-Dlog4j2.level=ERROR")
    )
    try:
        spark = builder.getOrCreate()
    except Exception as exc:
        raise TrackerError(
            f"Error: Spark could not start on master {master}: {_first_line(exc)}. "
            "Check `java -version` (Java 17 or 21) and the --master URL."
        ) from None
    spark.sparkContext.setLogLevel("ERROR")
    if shuffle_partitions:
        spark.conf.set("spark.sql.shuffle.partitions", str(shuffle_partitions))
    return spark


def register_lake(spark, lake_dir: Path | str) -> dict:
    """The lake's tables (lake_files.*) and the base tables over them (lake.*); its manifest."""
    lake_dir = Path(lake_dir).absolute()
    manifest_path = lake_dir / "manifest.json"
    if not manifest_path.exists():
        raise InputError(
            f"Error: {manifest_path} does not exist. Export the lake first: "
            f"`python cli.py export --lake {lake_dir}`."
        )
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    tables = manifest.get("tables") or {}
    _recreate_database(spark, FILES_DATABASE)
    for name, table in tables.items():
        columns = table.get("columns") or []
        select_list = ", ".join(
            f"cast({_quote(column['name'])} as {_spark_type(column['type'])}) "
            f"as {_quote(column['name'])}"
            for column in columns
        )
        path = lake_dir / table.get("path", name)
        has_files = path.is_file() or (path.is_dir() and any(path.rglob("*.parquet")))
        if has_files:
            source = f"parquet.`{_path_text(path)}`"
            spark.sql(f"create view {FILES_DATABASE}.{name} as select {select_list} from {source}")
        else:
            # No partition yet (no alerts at all): an empty table with the right columns.
            nulls = ", ".join(
                f"cast(null as {_spark_type(column['type'])}) as {_quote(column['name'])}"
                for column in columns
            )
            spark.sql(f"create view {FILES_DATABASE}.{name} as select {nulls} where false")
    email = "email" if manifest.get("include_pii") else "cast(null as string)"
    _recreate_database(spark, SOURCE_DATABASE)
    for table, query in LAKE_SOURCES.items():
        spark.sql(f"create view {SOURCE_DATABASE}.{table} as {query.format(email=email)}")
    return manifest


def register_parquet_sources(spark, directory: Path | str) -> None:
    """Base tables lake.<table> straight from <directory>/<table>.parquet (for `check`)."""
    from tracker.pipeline.duck import BASE_TABLES

    _recreate_database(spark, SOURCE_DATABASE)
    for table in BASE_TABLES:
        path = Path(directory).absolute() / f"{table}.parquet"
        spark.sql(
            f"create view {SOURCE_DATABASE}.{table} as select * from parquet.`{_path_text(path)}`"
        )


def build_models(
    spark, project: Project, models: list[Model] | None = None, vars: dict | None = None
) -> None:
    """Every model (or those given, with what they read) as a view analytics.<name>."""
    wanted = set(project.models) if models is None else set()
    for model in models or []:
        wanted |= {model.name} | project.upstream(model.name)
    _recreate_database(spark, SCHEMA)
    for model in project.models.values():
        if model.name not in wanted:
            continue
        query = render(model, "spark", vars)
        try:
            spark.sql(f"create view {SCHEMA}.{model.name} as\n{query}")
        except Exception as exc:
            raise TrackerError(
                f'Error: model "{model.name}" failed on Spark ({model.display_path}): '
                f"{_first_line(exc)}. Fix the model (or its macro's spark branch)."
            ) from None


def write_models(
    spark,
    models: list[Model],
    out_dir: Path | str,
    on_model: Callable[[str, float], None] | None = None,
) -> list[tuple[str, float]]:
    """Compute each model and write it as Parquet files in out_dir/<name>/; seconds each."""
    out_dir = Path(out_dir).absolute()
    out_dir.mkdir(parents=True, exist_ok=True)
    timings = []
    for model in models:
        started = time.perf_counter()
        target = out_dir / model.name
        try:
            spark.table(f"{SCHEMA}.{model.name}").write.mode("overwrite").parquet(
                _path_text(target)
            )
        except Exception as exc:
            raise TrackerError(
                f'Error: model "{model.name}" failed on Spark ({model.display_path}): '
                f"{_first_line(exc)}. Fix the model (or its macro's spark branch)."
            ) from None
        seconds = time.perf_counter() - started
        timings.append((model.name, seconds))
        if on_model:
            on_model(model.name, seconds)
    return timings


def run_spark(
    project: Project,
    lake_dir: Path | str,
    out_dir: Path | str,
    *,
    master: str = DEFAULT_MASTER,
    select: str | None = None,
    vars: dict | None = None,
    on_model: Callable[[str, float], None] | None = None,
) -> SparkRun:
    """`run --engine spark`: the models over the lake, the marts written as Parquet."""
    started = time.perf_counter()
    models = [model for model in project.select(select) if model.export]
    if not models:
        raise InputError(
            f'Error: --select "{select}" chooses no mart. Name one of the marts, '
            "e.g. --select monthly_totals."
        )
    spark = spark_session(master, workdir=out_dir)
    register_lake(spark, lake_dir)
    build_models(spark, project, models, vars)
    timings = write_models(spark, models, out_dir, on_model)
    return SparkRun(Path(out_dir), timings, time.perf_counter() - started, master)


def stop_spark() -> None:
    """Stop the running SparkSession, if any (its JVM goes with the Python process)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        return
    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()


# --- parity: Spark's models against PostgreSQL's -----------------------------------------------


def compare_spark(
    url: str,
    project: Project,
    lake_dir: Path | str,
    workdir: Path | str,
    *,
    master: str = DEFAULT_MASTER,
    select: str | None = None,
    on_model=None,
) -> list:
    """Every model on Spark (over the lake) against PostgreSQL's analytics, key by key.

    Spark writes each model as Parquet; DuckDB reads those files and PostgreSQL's rows (COPY,
    with the catalog's types) and joins them on the model's unique_key, as `parity` does for
    DuckDB: money as exact DECIMAL, months as DATE, every column's type and value compared.
    Columns the lake does not carry are left out (LAKE_MISSING_COLUMNS).
    """
    from tracker.pipeline import duck as duck_module
    from tracker.pipeline.checks import ModelParity, _compare_model, _repeatable_read
    from tracker.plumbing.db import connect as pg_connect

    workdir = Path(workdir)
    models = project.select(select)
    spark = spark_session(master, workdir=workdir)
    manifest = register_lake(spark, lake_dir)
    build_models(spark, project, models)
    write_models(spark, models, workdir / "spark")
    skip = dict(LAKE_MISSING_COLUMNS)
    if not manifest.get("include_pii"):
        skip.update(PII_MISSING_COLUMNS)
    duck = duck_module.connect()
    results = []
    try:
        duck.execute(f"create schema {SCHEMA}")
        duck.execute("create schema postgres")
        for model in models:
            files = str(workdir / "spark" / model.name / "*.parquet")
            duck.execute(
                f'create view {SCHEMA}."{model.name}" as '
                f"select * from read_parquet({_duck_text(files)})"
            )
        with pg_connect(url) as conn:
            conn.read_only = True
            conn.isolation_level = _repeatable_read()
            conn.execute("set timezone = 'UTC'")
            conn.execute("set datestyle = 'ISO, YMD'")
            for model in models:
                parity = _compare_model(
                    conn, duck, model, workdir, skip=skip.get(model.name, ()), engine="Spark"
                )
                results.append(parity)
                if on_model:
                    on_model(parity)
            conn.rollback()
    finally:
        duck.close()
    assert all(isinstance(result, ModelParity) for result in results)
    return results


# --- check: data tests and unit tests on Spark -------------------------------------------------


class SparkRunner:
    """Runs the engine-neutral failure queries of tracker.checks on Spark."""

    def __init__(self, spark):
        self.spark = spark
        self.errors = (Exception,)

    def failures(self, query: str) -> tuple[list[str], list[tuple], int]:
        from tracker.pipeline.checks import FETCH_LIMIT

        frame = self.spark.sql(f"select * from (\n{query}\n) as failures limit {FETCH_LIMIT + 1}")
        names = list(frame.columns)
        rows = [
            tuple(None if value is None else str(value) for value in row) for row in frame.collect()
        ]
        total = len(rows)
        if total > FETCH_LIMIT:
            total = self.spark.sql(f"select count(*) from (\n{query}\n) as failures").collect()[0][
                0
            ]
        return names, rows, total

    def row(self, query: str) -> tuple:
        return tuple(self.spark.sql(query).collect()[0])


def run_check_spark(
    project: Project,
    *,
    master: str = DEFAULT_MASTER,
    seeds_dir=None,
    select: str | None = None,
    unit_dir=None,
    on_result=None,
):
    """`check --engine spark`: every model on the sample seeds in Spark, then all the tests."""
    from tracker.pipeline import duck as duck_module
    from tracker.pipeline.checks import (
        CheckReport,
        Result,
        generic_tests,
        run_data_tests,
        singular_tests,
    )
    from tracker.plumbing import config

    started = time.perf_counter()
    results: list = []

    def record(result) -> None:
        results.append(result)
        if on_result:
            on_result(result)

    workdir = Path(tempfile.mkdtemp(prefix="tracker_spark_check_"))
    try:
        duck = duck_module.connect()
        try:
            duck_module.create_base_tables(duck)
            duck_module.load_seeds(duck, seeds_dir or config.SEEDS_DIR)
            duck_module.fill_alerts(duck, project)
            duck_module.fill_budget_spending(duck)
            for table in duck_module.BASE_TABLES:
                target = _duck_text(str(workdir / f"{table}.parquet"))
                duck.execute(f"copy main.{table} to {target} (format parquet)")
        finally:
            duck.close()
        spark = spark_session(master, shuffle_partitions=2, workdir=workdir)
        register_parquet_sources(spark, workdir)
        _recreate_database(spark, SCHEMA)
        failed: set[str] = set()
        for model in project.models.values():
            model_started = time.perf_counter()
            broken = sorted(model.depends_on & failed)
            if broken:
                failed.add(model.name)
                record(
                    Result(
                        "model",
                        model.name,
                        "skip",
                        detail=f'reads model "{broken[0]}", which failed',
                        path=model.display_path,
                    )
                )
                continue
            try:
                spark.sql(f"create view {SCHEMA}.{model.name} as\n{render(model, 'spark')}")
                actual = spark.table(f"{SCHEMA}.{model.name}").columns
                missing = [column for column in model.columns if column not in actual]
                if missing:
                    raise TrackerError(
                        f'Error: model "{model.name}" documents column "{missing[0]}" that its '
                        f"SELECT does not return ({model.display_path})"
                    )
            except Exception as exc:
                failed.add(model.name)
                record(
                    Result(
                        "model",
                        model.name,
                        "error",
                        time.perf_counter() - model_started,
                        detail=_first_line(exc),
                        path=model.display_path,
                    )
                )
            else:
                record(
                    Result(
                        "model",
                        model.name,
                        "pass",
                        time.perf_counter() - model_started,
                        path=model.display_path,
                    )
                )
        chosen = {model.name for model in project.select(select)}
        models = [project[name] for name in project.order if name in chosen]
        tests = generic_tests(project, models, "spark")
        tests += [
            test
            for test in singular_tests(project, "spark")
            if select is None or test.model in chosen
        ]
        run_data_tests(SparkRunner(spark), tests, failed, record)
        for result in run_unit_tests_spark(
            spark, project, unit_dir=unit_dir, chosen=None if select is None else chosen
        ):
            record(result)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return CheckReport(results, time.perf_counter() - started, "spark")


def run_unit_tests_spark(
    spark, project: Project, *, unit_dir=None, chosen: set[str] | None = None
) -> list:
    """The unit tests on Spark: the model rendered for Spark over temporary views of the rows."""
    from tracker.pipeline.checks import Result, _unit_result, load_unit_tests

    results = []
    for test in load_unit_tests(project, unit_dir):
        if chosen is not None and test.model not in chosen:
            continue
        name = f"{test.model}: {test.name}"
        started = time.perf_counter()
        try:
            missing, unexpected, names = _run_unit_test_spark(spark, project, test)
        except Exception as exc:
            results.append(
                Result(
                    "unit",
                    name,
                    "error",
                    time.perf_counter() - started,
                    detail=f"{_first_line(exc)} ({test.path})",
                    path=test.path,
                )
            )
            continue
        results.append(_unit_result(name, test, missing, unexpected, names, started))
    return results


def _run_unit_test_spark(spark, project: Project, test):
    import re

    from tracker.pipeline.checks import _expected_columns, _row_differences
    from tracker.pipeline.models import SOURCE_TABLES

    upstream = project.upstream(test.model) if test.model in project.models else set()
    given = {(kind, name): rows for kind, name, rows in test.given}
    for kind, name in given:
        if kind == "ref" and name not in upstream:
            raise TrackerError(
                f"Error: unit test \"{test.name}\" gives ref('{name}'), which model "
                f'"{test.model}" does not read'
            )
    pattern = re.compile(
        rf"\b(?:{SOURCE_DATABASE}\.("
        + "|".join(SOURCE_TABLES)
        + r")|"
        + SCHEMA
        + r"\.([a-z_][a-z0-9_]*))\b"
    )

    def redirect(query: str) -> str:
        def replace(match):
            if match.group(1):
                return f"unit_source_{match.group(1)}"
            return f"unit_ref_{match.group(2)}"

        return pattern.sub(replace, query)

    for table in SOURCE_TABLES:
        schema = spark.table(f"{SOURCE_DATABASE}.{table}").schema
        _rows_view(
            spark,
            f"unit_source_{table}",
            schema,
            given.get(("source", table), ()),
            f"source('{table}')",
            test,
        )
    for model_name in project.order:
        if model_name not in upstream:
            continue
        query = redirect(render(project[model_name], "spark"))
        view = f"unit_ref_{model_name}"
        spark.sql(f"create or replace temporary view {view} as\n{query}")
        if ("ref", model_name) in given:
            schema = spark.table(view).schema
            _rows_view(
                spark, view, schema, given[("ref", model_name)], f"ref('{model_name}')", test
            )
    if test.model in project.models:
        query = render(project[test.model], "spark")
    else:
        query = render_file(project, project.queries_dir / "checks" / f"{test.model}.sql", "spark")
    spark.sql(f"create or replace temporary view unit_actual as\n{redirect(query)}")
    actual = spark.table("unit_actual").schema
    names = _expected_columns(test, [field.name for field in actual.fields])
    expected_schema = [field for field in actual.fields if field.name in names]
    from pyspark.sql.types import StructType

    _rows_view(spark, "unit_expected", StructType(expected_schema), test.expect, "expect", test)
    return (
        *_row_differences(
            lambda sql: [tuple(row) for row in spark.sql(sql).collect()], names, "string"
        ),
        names,
    )


def _rows_view(spark, view: str, schema, rows, label: str, test) -> None:
    """A temporary view holding rows (dicts of text values) cast to schema's types."""
    fields = {field.name: field.dataType.simpleString() for field in schema.fields}
    unknown = [name for row in rows for name in row if name not in fields]
    if unknown:
        raise TrackerError(
            f'Error: unit test "{test.name}" gives column "{unknown[0]}" for {label}, which has '
            f"columns {', '.join(fields)}"
        )

    def select(row: dict | None) -> str:
        return ", ".join(
            f"cast({_literal(None if row is None else row.get(name))} as {type_}) as {_quote(name)}"
            for name, type_ in fields.items()
        )

    if rows:
        query = " union all ".join(f"select {select(row)}" for row in rows)
    else:
        query = f"select {select(None)} where false"
    spark.sql(f"create or replace temporary view {view} as {query}")


def _literal(value) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    return sql_literal(value, "spark")


# --- helpers -----------------------------------------------------------------------------------


def _recreate_database(spark, name: str) -> None:
    spark.sql(f"drop database if exists {name} cascade")
    spark.sql(f"create database {name}")


def _spark_type(duckdb_type: str) -> str:
    if duckdb_type.startswith("DECIMAL("):
        return duckdb_type.lower()
    return _SPARK_TYPES.get(duckdb_type, "string")


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _path_text(path: Path) -> str:
    text = str(path)
    if "`" in text:
        raise InputError(
            f"Error: the path {text} holds a backtick, which Spark SQL cannot "
            "name. Choose another folder."
        )
    return text


def _duck_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("JVM stacktrace", "at ", "Caused by")):
            return line.rstrip(".")
    return type(exc).__name__
