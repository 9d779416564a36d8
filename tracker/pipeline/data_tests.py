"""Data tests: queries whose rows are failures, declared beside the models or in queries/tests/.

Two kinds, as in dbt:

- generic tests, declared beside each model in config(): per column `tests: [...]` with
  not_null, unique, non_negative (money), accepted_values {'values': [...]} and
  relationships {'to': model, 'field': column}; a model's unique_key is a uniqueness test
  on those columns together;
- singular tests, queries/tests/<name>.sql: one SELECT whose rows are failures.

Every test query is engine-neutral SQL; identifiers are quoted, values rendered by
models.sql_literal. A runner (DuckDB, PostgreSQL here; Spark in spark.py) executes them:
`failures(query)` -> (column names, first rows, total) and `row(query)` -> one row, with
`errors`, the exceptions that mean "this test errored". Nothing here prints.
"""

import re
import time
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass
from pathlib import Path

from tracker.errors import TrackerError
from tracker.pipeline.models import (
    SCHEMA,
    Model,
    Project,
    Selection,
    display_path,
    render_file,
    sql_literal,
)
from tracker.pipeline.results import FETCH_LIMIT, SAMPLE_ROWS, Result, row_text
from tracker.text import quote_identifier as _quote
from tracker.text import reason

GENERIC_TESTS = ("not_null", "unique", "non_negative", "accepted_values", "relationships")


@dataclass(frozen=True)
class DataTest:
    """One data test: a query whose rows are failures, and the model it is about."""

    name: str
    model: str
    query: str
    path: str
    predicate: str = ""  # for tests of single rows: the condition a failing row meets
    error: str = ""  # the test could not even be rendered
    # A screen: an aggregate over the model's relation (as `child`, joined with screen_join)
    # that is 0 when the test passes. Every screen of a model runs in one scan; a test whose
    # screen is not 0 runs its own query to find and show its failing rows. "{alias}" in
    # either string is replaced by a name unique within that scan.
    screen: str = ""
    screen_join: str = ""


# --- collecting tests ------------------------------------------------------------------------


def generic_tests(project: Project, models: Iterable[Model], engine: str) -> list[DataTest]:
    """The tests declared in the models' config(): per column, and unique_key."""
    tests = []
    for model in models:
        relation = f"{SCHEMA}.{_quote(model.name)}"
        for column, spec in model.columns.items():
            for declared in spec["tests"]:
                tests.append(_generic_test(project, model, relation, column, declared, engine))
        if model.unique_key:
            key = ", ".join(_quote(column) for column in model.unique_key)
            qualified = ", ".join(f"child.{_quote(column)}" for column in model.unique_key)
            distinct = qualified if len(model.unique_key) == 1 else f"({qualified})"
            screen = f"count(*) - count(distinct {distinct})"
            alone = not any(spec["tests"] for spec in model.columns.values())
            if engine == "postgres" and not (alone and len(model.unique_key) == 1):
                screen = _postgres_unique_key_screen(relation, model.unique_key)
            tests.append(
                DataTest(
                    f"unique_key({model.name}: {', '.join(model.unique_key)})",
                    model.name,
                    f"select {key}, count(*) as n_records from {relation} "
                    f"group by {key} having count(*) > 1",
                    model.display_path,
                    # Never 0 when the test fails: rows with null keys count, distinct skips them.
                    screen=screen,
                )
            )
    return tests


def _postgres_unique_key_screen(relation: str, unique_key: list[str]) -> str:
    """The unique_key screen on PostgreSQL: the key's distinct count in its own narrow scan.

    A count(distinct) in the model's scan sorts every row with every column the other
    screens read (and a row of several columns compares slowly); one column sorts fast
    alone, several hash fast as `select distinct`, which counts null keys as GROUP BY does.
    (A model with no other screen keeps its one-column count in its scan: nothing to gain.)
    """
    if len(unique_key) == 1:
        column = _quote(unique_key[0])
        return f"count(*) - (select count(distinct {column}) from {relation})"
    key = ", ".join(_quote(column) for column in unique_key)
    return f"count(*) - (select count(*) from (select distinct {key} from {relation}) as keys)"


def _generic_test(project, model, relation, column, declared, engine) -> DataTest:
    args: dict
    if isinstance(declared, str):
        kind, args = declared, {}
    elif isinstance(declared, dict) and len(declared) == 1:
        kind, args = next(iter(declared.items()))
    else:
        kind, args = repr(declared), {}
    where = f"{model.name}.{column}"

    def fail(what: str) -> TrackerError:
        return TrackerError(
            f'model "{model.name}" declares {what} on column "{column}" '
            f"({model.display_path}). Fix the tests list in its config()."
        )

    if kind not in GENERIC_TESTS:
        raise fail(f'an unknown test "{kind}" (known: {", ".join(GENERIC_TESTS)})')
    if not isinstance(args, dict):
        raise fail(f'test "{kind}" with arguments that are not a dict')
    quoted = _quote(column)
    predicate = ""
    screen = screen_join = ""
    if kind == "not_null":
        predicate = f"{quoted} is null"
        query = f"select * from {relation} where {predicate}"
    elif kind == "unique":
        query = (
            f"select {quoted}, count(*) as n_records from {relation} "
            f"where {quoted} is not null group by {quoted} having count(*) > 1"
        )
        screen = f"count(child.{quoted}) - count(distinct child.{quoted})"
    elif kind == "non_negative":
        predicate = f"{quoted} < 0"
        query = f"select * from {relation} where {predicate}"
    elif kind == "accepted_values":
        values = args.get("values")
        if not isinstance(values, list) or not values:
            raise fail('accepted_values without a list of "values"')
        listed = ", ".join(sql_literal(value, engine) for value in values)
        predicate = f"{quoted} not in ({listed})"
        query = (
            f"select {quoted}, count(*) as n_records from {relation} "
            f"where {quoted} not in ({listed}) group by {quoted}"
        )
        where = f"{where} in {values}"
    else:
        parent, parent_field = args.get("to"), args.get("field")
        if (
            not isinstance(parent, str)
            or parent not in project.models
            or not isinstance(parent_field, str)
        ):
            raise fail(f'relationships to unknown model "{parent}" or without a "field"')
        query = (
            f"select child.{quoted} from {relation} as child "
            f"left join {SCHEMA}.{_quote(parent)} as parent "
            f"on parent.{_quote(parent_field)} = child.{quoted} "
            f"where child.{quoted} is not null and parent.{_quote(parent_field)} is null"
        )
        where = f"{where} -> {parent}.{parent_field}"
        if engine == "postgres":
            screen = _postgres_relationship_screen(quoted, parent, parent_field)
            return DataTest(
                f"{kind}({where})", model.name, query, model.display_path, screen=screen
            )
        # Distinct parent values, so the join never multiplies the child's rows.
        screen_join = (
            f"left join (select distinct {_quote(parent_field)} as parent_value "
            f"from {SCHEMA}.{_quote(parent)}) as {{alias}} "
            f"on {{alias}}.parent_value = child.{quoted}"
        )
        screen = (
            f"count(*) filter (where child.{quoted} is not null and {{alias}}.parent_value is null)"
        )
    if predicate:
        # The same condition on the scan's `child` (a joined parent_value is never ambiguous).
        screen = f"count(*) filter (where {predicate.replace(quoted, 'child.' + quoted, 1)})"
    return DataTest(
        f"{kind}({where})",
        model.name,
        query,
        model.display_path,
        predicate,
        screen=screen,
        screen_join=screen_join,
    )


def _postgres_relationship_screen(quoted: str, parent: str, parent_field: str) -> str:
    """The relationships screen on PostgreSQL: a hashed NOT IN instead of a join.

    A join carries every row of the model through one hash join per relationship (and on
    into the unique_key sort); NOT IN probes a hash of the parent's values (work_mem holds
    it) and keeps the rows narrow. The parent's nulls are left out: they match nothing in
    the join either, and in NOT IN they would make every answer null.
    """
    field = _quote(parent_field)
    return (
        f"count(*) filter (where child.{quoted} is not null and child.{quoted} not in "
        f"(select {field} from {SCHEMA}.{_quote(parent)} where {field} is not null))"
    )


def singular_tests(project: Project, engine: str, tests_dir: Path | None = None) -> list[DataTest]:
    """queries/tests/*.sql, rendered for engine; the model is the first ref() it names."""
    tests_dir = Path(tests_dir or project.queries_dir / "tests")
    tests = []
    for path in sorted(tests_dir.glob("*.sql")):
        display = display_path(path, project.queries_dir)
        try:
            query = render_file(project, path, engine).strip().rstrip(";")
        except TrackerError as exc:
            # Reported as this test's error, so the other tests still run.
            tests.append(DataTest(path.stem, "", "", display, error=str(exc)))
            continue
        refs = re.findall(rf"\b{SCHEMA}\.([a-z_][a-z0-9_]*)", query)
        tests.append(DataTest(path.stem, refs[0] if refs else "", query, display))
    return tests


def chosen_data_tests(project: Project, select: Selection, engine: str):
    """The chosen models' names, and their generic and singular tests rendered for engine.

    A singular test belongs to the first model it refers to; with no selection, all run.
    """
    chosen = {model.name for model in project.select(select)}
    models = [project[name] for name in project.order if name in chosen]
    tests = generic_tests(project, models, engine)
    tests += [
        test for test in singular_tests(project, engine) if not select or test.model in chosen
    ]
    return chosen, tests


# --- running data tests ----------------------------------------------------------------------


class DuckRunner:
    """Runs failure queries on DuckDB; values come back as text (no pytz needed)."""

    def __init__(self, duck):
        import duckdb

        self.duck = duck
        self.errors = (duckdb.Error,)

    def failures(self, query: str) -> tuple[list[str], list[tuple], int]:
        cursor = self.duck.execute(
            f"select cast(columns(*) as varchar) from (\n{query}\n) as failures "
            f"limit {FETCH_LIMIT + 1}"
        )
        names = [column[0] for column in cursor.description]
        rows = cursor.fetchall()
        total = len(rows)
        if total > FETCH_LIMIT:
            total = self.duck.execute(f"select count(*) from (\n{query}\n) as failures").fetchone()[
                0
            ]
        return names, rows, total

    def row(self, query: str) -> tuple:
        return self.duck.execute(query).fetchone()


class PostgresRunner:
    """Runs failure queries on PostgreSQL, each in a savepoint so one error spoils nothing."""

    def __init__(self, conn):
        import psycopg

        self.conn = conn
        self.errors = (psycopg.Error,)

    def failures(self, query: str) -> tuple[list[str], list[tuple], int]:
        with self.conn.transaction():
            cursor = self.conn.execute(
                f"select * from (\n{query}\n) as failures limit {FETCH_LIMIT + 1}"
            )
            names = [column.name for column in cursor.description]
            rows = cursor.fetchall()
            total = len(rows)
            if total > FETCH_LIMIT:
                total = self.conn.execute(
                    f"select count(*) from (\n{query}\n) as failures"
                ).fetchone()[0]
        return names, rows, total

    def row(self, query: str) -> tuple:
        with self.conn.transaction():
            return self.conn.execute(query).fetchone()


def run_data_tests(
    runner,
    tests: list[DataTest],
    skip_models: Container[str] = frozenset(),
    on_result: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Run each test; a test of a model that failed to build is skipped."""
    results = []
    known_passing, batch_seconds = _passing_row_tests(runner, tests, skip_models)
    for index, test in enumerate(tests):
        started = time.perf_counter()
        if index in known_passing:
            result = Result("test", test.name, "pass", batch_seconds, path=test.path)
        elif test.error:
            result = Result("test", test.name, "error", 0.0, detail=test.error, path=test.path)
        elif test.model in skip_models:
            result = Result(
                "test",
                test.name,
                "skip",
                0.0,
                detail=f'model "{test.model}" was not built',
                path=test.path,
            )
        else:
            try:
                names, rows, total = runner.failures(test.query)
            except runner.errors as exc:
                result = Result(
                    "test",
                    test.name,
                    "error",
                    time.perf_counter() - started,
                    detail=f"{reason(exc)} ({test.path})",
                    path=test.path,
                )
            else:
                status = "fail" if total else "pass"
                detail = f"{total} failing row(s) ({test.path})" if total else ""
                result = Result(
                    "test",
                    test.name,
                    status,
                    time.perf_counter() - started,
                    failures=total,
                    detail=detail,
                    rows=[row_text(names, row) for row in rows[:SAMPLE_ROWS]],
                    path=test.path,
                )
        results.append(result)
        if on_result:
            on_result(result)
    return results


def _passing_row_tests(
    runner, tests: list[DataTest], skip_models: Container[str]
) -> tuple[set[int], float]:
    """The screens of each model's generic tests, all in one scan of the model.

    Returns the indexes of the tests that passed and the time per test; failing ones are run
    again on their own to show their rows, and a scan that errors leaves its tests to that.
    """
    by_model: dict[str, list[int]] = {}
    for index, test in enumerate(tests):
        if test.screen and test.model not in skip_models and not test.error:
            by_model.setdefault(test.model, []).append(index)
    passing: set[int] = set()
    started = time.perf_counter()
    for model, indexes in by_model.items():
        screens, joins = [], []
        for number, index in enumerate(indexes):
            alias = f"screen_{number}"
            screens.append(f"{tests[index].screen.replace('{alias}', alias)} as test_{number}")
            if tests[index].screen_join:
                joins.append(tests[index].screen_join.replace("{alias}", alias))
        query = f"select {', '.join(screens)} from {SCHEMA}.{_quote(model)} as child " + " ".join(
            joins
        )
        try:
            row = runner.row(query)
        except runner.errors:
            continue
        passing |= {index for index, count in zip(indexes, row, strict=True) if count == 0}
    return passing, (time.perf_counter() - started) / max(len(passing), 1)


def run_postgres_data_tests(
    conn,
    project: Project,
    select: Selection = None,
    on_result: Callable[[Result], None] | None = None,
) -> list[Result]:
    """The generic and singular tests, in the caller's transaction (its snapshot)."""
    from tracker.pipeline.runner import BUILD_WORK_MEM

    models = project.select(select)
    _, tests = chosen_data_tests(project, select, "postgres")
    built = {
        row[0]
        for row in conn.execute(
            "select table_name from information_schema.tables where table_schema = %s",
            [SCHEMA],
        ).fetchall()
    }
    missing = [model.name for model in models if model.name not in built]
    if missing:
        raise TrackerError(
            f"{SCHEMA}.{missing[0]} does not exist"
            f"{f' (nor {len(missing) - 1} other model(s))' if len(missing) > 1 else ''}. "
            "Build the models first: `python cli.py run`."
        )
    # Distinct counts and aggregates over every expense, in memory rather than temp files.
    conn.execute("select set_config('work_mem', %s, true)", [BUILD_WORK_MEM])
    return run_data_tests(PostgresRunner(conn), tests, set(), on_result)
