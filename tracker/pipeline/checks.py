"""check and test: build the models and run every data test and unit test on them.

`check` builds every model on the sample seeds in an in-memory DuckDB; `test` reads what `run`
built in PostgreSQL. The tests themselves live in data_tests.py (generic and singular) and
unit_tests.py (given rows, expected rows); engine parity in parity.py. Results are returned
as Result records (results.py); nothing here prints.
"""

import time
from collections.abc import Callable
from pathlib import Path

from tracker.errors import TrackerError
from tracker.pipeline.data_tests import (
    DuckRunner,
    chosen_data_tests,
    run_data_tests,
    run_postgres_data_tests,
)
from tracker.pipeline.duck import table_columns
from tracker.pipeline.models import SCHEMA, Model, Project, Selection
from tracker.pipeline.results import CheckReport, Result
from tracker.pipeline.runner import build_model_duckdb
from tracker.pipeline.unit_tests import DuckUnitEngine, PostgresUnitEngine, run_unit_tests
from tracker.plumbing import config


def run_check(
    project: Project,
    *,
    seeds_dir: Path | str = config.SEEDS_DIR,
    select: Selection = None,
    unit_dir: Path | str | None = None,
    on_result: Callable[[Result], None] | None = None,
) -> CheckReport:
    """Build every model on the sample seeds in an in-memory DuckDB and run all the tests."""
    from tracker.pipeline import duck as duck_module

    started = time.perf_counter()
    results: list[Result] = []

    def record(result: Result) -> None:
        results.append(result)
        if on_result:
            on_result(result)

    duck = duck_module.connect()
    # The sample is a few hundred rows: a second thread only adds hand-offs (~5% wall).
    duck.execute("set threads = 1")
    try:
        duck_module.load_sample(duck, project, seeds_dir)
        duck.execute(f"create schema if not exists {SCHEMA}")
        # Every model is built (tests compare models with each other); select picks the tests.
        failed = build_each(
            project, lambda model: build_model_duckdb(duck, model, describe=False), record
        )
        for result in _undocumented_columns(duck, project, set(project.models) - failed):
            failed.add(result.name)
            record(result)
        chosen, tests = chosen_data_tests(project, select, "duckdb")
        run_data_tests(DuckRunner(duck), tests, failed, record)
        run_unit_tests(
            DuckUnitEngine(duck),
            project,
            unit_dir=unit_dir,
            failed=failed,
            chosen=chosen if select else None,
            on_result=record,
        )
    finally:
        duck.close()
    return CheckReport(results, time.perf_counter() - started, "duckdb")


def build_each(
    project: Project,
    build: Callable[[Model], None],
    record: Callable[[Result], None],
    errors: tuple[type[BaseException], ...] = (TrackerError,),
    describe: Callable[[BaseException], str] = str,
) -> set[str]:
    """Build every model in dependency order with build(model), recording a Result for each.

    A model that reads a failed one is skipped. Returns the names of the models that failed
    or were skipped. errors: what a failing build raises; describe: its one-line detail.
    """
    failed: set[str] = set()
    for model in project.models.values():
        broken = sorted(model.depends_on & failed)
        if broken:
            failed.add(model.name)
            detail = f'reads model "{broken[0]}", which failed'
            record(Result("model", model.name, "skip", detail=detail, path=model.display_path))
            continue
        started = time.perf_counter()
        try:
            build(model)
        except errors as exc:
            failed.add(model.name)
            status, detail = "error", describe(exc)
        else:
            status, detail = "pass", ""
        elapsed = time.perf_counter() - started
        record(Result("model", model.name, status, elapsed, detail=detail, path=model.display_path))
    return failed


def _undocumented_columns(duck, project: Project, names: set[str]) -> list[Result]:
    """A model whose config() documents a column its SELECT does not return fails."""
    results = []
    for name in project.order:
        model = project[name]
        if name not in names or not model.columns:
            continue
        # One lookup per model: a scan of duckdb_columns() costs more than all of them.
        actual = list(table_columns(duck, name, SCHEMA))
        missing = [column for column in model.columns if column not in actual]
        if missing:
            results.append(
                Result(
                    "model",
                    name,
                    "error",
                    detail=f'model "{name}" documents column "{missing[0]}" that its SELECT '
                    f"does not return ({model.display_path}; it returns "
                    f"{', '.join(actual)}). Fix the config() or the SELECT.",
                    path=model.display_path,
                )
            )
    return results


def run_postgres_tests(
    conn,
    project: Project,
    select: Selection = None,
    unit_dir: Path | str | None = None,
    on_result: Callable[[Result], None] | None = None,
) -> CheckReport:
    """Run the data tests on the analytics schema built by `run`, then the unit tests."""
    import psycopg

    started = time.perf_counter()
    # One read-only snapshot for every test, so they all see the same data.
    conn.rollback()
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    with conn.transaction():
        results = run_postgres_data_tests(conn, project, select, on_result)
    # Unit tests write temporary tables, so they cannot share the read-only snapshot.
    conn.rollback()
    conn.read_only = False
    results += run_unit_tests(
        PostgresUnitEngine(conn),
        project,
        unit_dir=unit_dir,
        chosen=_chosen(project, select),
        on_result=on_result,
    )
    conn.rollback()
    return CheckReport(results, time.perf_counter() - started, "postgres")


def _chosen(project: Project, select) -> set[str] | None:
    return None if not select else {model.name for model in project.select(select)}
