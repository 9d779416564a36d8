"""check and parity on Apache Spark: the data and unit tests, and Spark's marts against
PostgreSQL's.

`check --engine spark` builds every model over the sample seeds (loaded by DuckDB as `check`
does, handed over as Parquet) and runs the same data tests (SparkRunner) and unit tests
(SparkUnitEngine, the UnitEngine of unit_tests.py); `parity --engine spark` runs the models
over the lake and compares them with PostgreSQL as parity.py does for DuckDB.
"""

import contextlib
import shutil
import tempfile
import time
from pathlib import Path

from tracker.errors import TrackerError
from tracker.pipeline.models import SCHEMA, Project, render, sql_literal
from tracker.pipeline.spark import (
    DEFAULT_MASTER,
    JVM_NOISE,
    LAKE_MISSING_COLUMNS,
    PII_MISSING_COLUMNS,
    SOURCE_DATABASE,
    build_models,
    duck_text,
    recreate_database,
    register_lake,
    register_parquet_sources,
    spark_identifier,
    spark_session,
    write_models,
)
from tracker.text import reason


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
    from tracker.pipeline.parity import compare_models

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
    try:
        duck.execute(f"create schema {SCHEMA}")
        for model in models:
            files = str(workdir / "spark" / model.name / "*.parquet")
            duck.execute(
                f'create view {SCHEMA}."{model.name}" as '
                f"select * from read_parquet({duck_text(files)})"
            )
        return compare_models(
            url, duck, models, workdir, skip=skip, engine="Spark", on_model=on_model
        )
    finally:
        duck.close()


class SparkRunner:
    """Runs the engine-neutral failure queries of tracker.pipeline.data_tests on Spark."""

    def __init__(self, spark):
        self.spark = spark
        self.errors = (Exception,)

    def failures(self, query: str) -> tuple[list[str], list[tuple], int]:
        from tracker.pipeline.results import FETCH_LIMIT

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
    from tracker.pipeline.checks import build_each
    from tracker.pipeline.data_tests import chosen_data_tests, run_data_tests
    from tracker.pipeline.results import CheckReport
    from tracker.pipeline.unit_tests import run_unit_tests
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
            duck_module.load_sample(duck, project, seeds_dir or config.SEEDS_DIR)
            for table in duck_module.BASE_TABLES:
                target = duck_text(str(workdir / f"{table}.parquet"))
                duck.execute(f"copy main.{table} to {target} (format parquet)")
        finally:
            duck.close()
        spark = spark_session(master, shuffle_partitions=2, workdir=workdir)
        register_parquet_sources(spark, workdir)
        recreate_database(spark, SCHEMA)

        def build(model) -> None:
            spark.sql(f"create view {SCHEMA}.{model.name} as\n{render(model, 'spark')}")
            actual = spark.table(f"{SCHEMA}.{model.name}").columns
            missing = [column for column in model.columns if column not in actual]
            if missing:
                raise TrackerError(
                    f'model "{model.name}" documents column "{missing[0]}" that its '
                    f"SELECT does not return ({model.display_path})"
                )

        failed = build_each(
            project,
            build,
            record,
            errors=(Exception,),
            describe=lambda exc: reason(exc, JVM_NOISE),
        )
        chosen, tests = chosen_data_tests(project, select, "spark")
        run_data_tests(SparkRunner(spark), tests, failed, record)
        run_unit_tests(
            SparkUnitEngine(spark),
            project,
            unit_dir=unit_dir,
            chosen=chosen if select else None,
            on_result=record,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return CheckReport(results, time.perf_counter() - started, "spark")


class SparkUnitEngine:
    """Unit tests on Spark (the UnitEngine of unit_tests.py): the model rendered for Spark over
    temporary views of the given rows; the views are replaced by the next test."""

    engine = "spark"
    text_type = "string"
    errors: tuple[type[BaseException], ...] = (Exception,)

    def __init__(self, spark):
        import re

        from tracker.pipeline.models import SOURCE_TABLES

        self.spark = spark
        self.pattern = re.compile(
            rf"\b(?:{SOURCE_DATABASE}\.("
            + "|".join(SOURCE_TABLES)
            + r")|"
            + SCHEMA
            + r"\.([a-z_][a-z0-9_]*))\b"
        )

    def isolated(self):
        return contextlib.nullcontext()

    def load_inputs(self, project: Project, upstream: set[str], given: dict, test) -> None:
        from tracker.pipeline.models import SOURCE_TABLES

        spark = self.spark
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
            view = f"unit_ref_{model_name}"
            query = self._redirect(render(project[model_name], "spark"))
            spark.sql(f"create or replace temporary view {view} as\n{query}")
            if ("ref", model_name) in given:
                schema = spark.table(view).schema
                _rows_view(
                    spark, view, schema, given[("ref", model_name)], f"ref('{model_name}')", test
                )

    def create_actual(self, query: str) -> list[str]:
        self.spark.sql(f"create or replace temporary view unit_actual as\n{self._redirect(query)}")
        return [field.name for field in self.spark.table("unit_actual").schema.fields]

    def create_expected(self, names: list[str], rows, test) -> None:
        from pyspark.sql.types import StructType

        actual = self.spark.table("unit_actual").schema
        schema = StructType([field for field in actual.fields if field.name in names])
        _rows_view(self.spark, "unit_expected", schema, rows, "expect", test)

    def fetch(self, query: str) -> list[tuple]:
        return [tuple(row) for row in self.spark.sql(query).collect()]

    def _redirect(self, query: str) -> str:
        def replace(match):
            if match.group(1):
                return f"unit_source_{match.group(1)}"
            return f"unit_ref_{match.group(2)}"

        return self.pattern.sub(replace, query)


def _rows_view(spark, view: str, schema, rows, label: str, test) -> None:
    """A temporary view holding rows (dicts of text values) cast to schema's types."""
    from tracker.pipeline.unit_tests import given_columns

    fields = {field.name: field.dataType.simpleString() for field in schema.fields}
    given_columns(test, rows, fields, label)

    def select(row: dict | None) -> str:
        return ", ".join(
            f"cast({_literal(None if row is None else row.get(name))} as {type_}) "
            f"as {spark_identifier(name)}"
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
