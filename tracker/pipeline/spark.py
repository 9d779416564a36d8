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

`check --engine spark` and `parity --engine spark` are in spark_checks.py.

Nothing here prints or reads the environment.
"""

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tracker.errors import InputError, TrackerError
from tracker.pipeline.models import SCHEMA, Model, Project, Selection, render, selection_text
from tracker.text import reason

SOURCE_DATABASE = "lake"


FILES_DATABASE = "lake_files"


DEFAULT_MASTER = "local[*]"


# Lines of a Spark error that are not its reason.
JVM_NOISE = ("JVM stacktrace", "at ", "Caused by")


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
            month,
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
            "pyspark is not installed. Run `make venv` (requirements.lock pins it)."
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
            f"Spark could not start on master {master}: {reason(exc, JVM_NOISE)}. "
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
            f"{manifest_path} does not exist. Export the lake first: "
            f"`python cli.py export --lake {lake_dir}`."
        )
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    tables = manifest.get("tables") or {}
    recreate_database(spark, FILES_DATABASE)
    for name, table in tables.items():
        columns = table.get("columns") or []
        select_list = ", ".join(
            f"cast({spark_identifier(column['name'])} as {_spark_type(column['type'])}) "
            f"as {spark_identifier(column['name'])}"
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
                f"cast(null as {_spark_type(column['type'])}) as {spark_identifier(column['name'])}"
                for column in columns
            )
            spark.sql(f"create view {FILES_DATABASE}.{name} as select {nulls} where false")
    email = "email" if manifest.get("include_pii") else "cast(null as string)"
    recreate_database(spark, SOURCE_DATABASE)
    for table, query in LAKE_SOURCES.items():
        spark.sql(f"create view {SOURCE_DATABASE}.{table} as {query.format(email=email)}")
    return manifest


def register_parquet_sources(spark, directory: Path | str) -> None:
    """Base tables lake.<table> straight from <directory>/<table>.parquet (for `check`)."""
    from tracker.pipeline.duck import BASE_TABLES

    recreate_database(spark, SOURCE_DATABASE)
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
    recreate_database(spark, SCHEMA)
    for model in project.models.values():
        if model.name not in wanted:
            continue
        query = render(model, "spark", vars)
        try:
            spark.sql(f"create view {SCHEMA}.{model.name} as\n{query}")
        except Exception as exc:
            raise TrackerError(
                f'model "{model.name}" failed on Spark ({model.display_path}): '
                f"{reason(exc, JVM_NOISE)}. Fix the model (or its macro's spark branch)."
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
                f'model "{model.name}" failed on Spark ({model.display_path}): '
                f"{reason(exc, JVM_NOISE)}. Fix the model (or its macro's spark branch)."
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
    select: Selection = None,
    vars: dict | None = None,
    on_model: Callable[[str, float], None] | None = None,
) -> SparkRun:
    """`run --engine spark`: the models over the lake, the marts written as Parquet."""
    started = time.perf_counter()
    models = [model for model in project.select(select) if model.export]
    if not models:
        raise InputError(
            f'--select "{selection_text(select)}" chooses no mart. Name one of the marts, '
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


# --- helpers -----------------------------------------------------------------------------------


def recreate_database(spark, name: str) -> None:
    spark.sql(f"drop database if exists {name} cascade")
    spark.sql(f"create database {name}")


def _spark_type(duckdb_type: str) -> str:
    if duckdb_type.startswith("DECIMAL("):
        return duckdb_type.lower()
    return _SPARK_TYPES.get(duckdb_type, "string")


def spark_identifier(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _path_text(path: Path) -> str:
    text = str(path)
    if "`" in text:
        raise InputError(
            f"the path {text} holds a backtick, which Spark SQL cannot name. Choose another folder."
        )
    return text


def duck_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
