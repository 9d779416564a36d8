"""Data tests and model unit tests, on DuckDB (`check`) and on PostgreSQL (`test`).

Three kinds, as in dbt:

- generic tests, declared beside each model in config(): per column `tests: [...]` with
  not_null, unique, non_negative (money), accepted_values {'values': [...]} and
  relationships {'to': model, 'field': column}; a model's unique_key is a uniqueness test
  on those columns together;
- singular tests, queries/tests/<name>.sql: one SELECT whose rows are failures;
- unit tests, queries/unit/<model>.json: given small input rows for some of a model's sources
  and refs, the model must return exactly the expected rows. The inputs replace the real
  relations inside a transaction that is rolled back (DuckDB only).

Every test query is engine-neutral SQL; identifiers are quoted, values rendered by
models.sql_literal. Results are returned as Result records; nothing here prints.
"""

import json
import re
import time
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path

from tracker.errors import InputError, TrackerError
from tracker.pipeline.models import SCHEMA, Model, Project, render, render_file, sql_literal
from tracker.plumbing import config

GENERIC_TESTS = ("not_null", "unique", "non_negative", "accepted_values", "relationships")
SAMPLE_ROWS = 5
FETCH_LIMIT = 100
INPUT_PATTERN = re.compile(r"""^\s*(ref|source)\(\s*['"]([a-z_][a-z0-9_]*)['"]\s*\)\s*$""")


@dataclass
class Result:
    """The outcome of one model build or test: pass, fail, error or skip."""

    kind: str  # "model", "test" or "unit"
    name: str
    status: str
    seconds: float = 0.0
    failures: int = 0
    detail: str = ""
    rows: list[str] = field(default_factory=list)
    path: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "pass"


@dataclass
class CheckReport:
    """Every result of a check or test run, in the order they ran."""

    results: list[Result]
    seconds: float
    engine: str

    @property
    def ok(self) -> bool:
        return not any(result.status in ("fail", "error") for result in self.results)

    def count(self, status: str | None = None, kind: str | None = None) -> int:
        return sum(
            1
            for result in self.results
            if (status is None or result.status == status) and (kind is None or result.kind == kind)
        )


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
            tests.append(
                DataTest(
                    f"unique_key({model.name}: {', '.join(model.unique_key)})",
                    model.name,
                    f"select {key}, count(*) as n_records from {relation} "
                    f"group by {key} having count(*) > 1",
                    model.display_path,
                    # Never 0 when the test fails: rows with null keys count, distinct skips them.
                    screen=f"count(*) - count(distinct {distinct})",
                )
            )
    return tests


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
            f'Error: model "{model.name}" declares {what} on column "{column}" '
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


def singular_tests(project: Project, engine: str, tests_dir: Path | None = None) -> list[DataTest]:
    """queries/tests/*.sql, rendered for engine; the model is the first ref() it names."""
    tests_dir = Path(tests_dir or project.queries_dir / "tests")
    tests = []
    for path in sorted(tests_dir.glob("*.sql")):
        display = _display(path, project)
        try:
            query = render_file(project, path, engine).strip().rstrip(";")
        except TrackerError as exc:
            # Reported as this test's error, so the other tests still run.
            tests.append(DataTest(path.stem, "", "", display, error=str(exc)))
            continue
        refs = re.findall(rf"\b{SCHEMA}\.([a-z_][a-z0-9_]*)", query)
        tests.append(DataTest(path.stem, refs[0] if refs else "", query, display))
    return tests


# --- running data tests ----------------------------------------------------------------------


class _DuckRunner:
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


class _PostgresRunner:
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
    skip_models: AbstractSet[str] = frozenset(),
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
                    detail=f"{_first_line(exc)} ({test.path})",
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
                    rows=[_row_text(names, row) for row in rows[:SAMPLE_ROWS]],
                    path=test.path,
                )
        results.append(result)
        if on_result:
            on_result(result)
    return results


def _passing_row_tests(runner, tests: list[DataTest], skip_models) -> tuple[set[int], float]:
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


# --- check: everything on DuckDB -------------------------------------------------------------


def run_check(
    project: Project,
    *,
    seeds_dir: Path | str = config.SEEDS_DIR,
    select: str | None = None,
    unit_dir: Path | str | None = None,
    on_result: Callable[[Result], None] | None = None,
) -> CheckReport:
    """Build every model on the sample seeds in an in-memory DuckDB and run all the tests."""
    from tracker.pipeline import duck as duck_module

    started = time.perf_counter()
    # Every model is built (tests compare models with each other); select picks the tests.
    chosen = {model.name for model in project.select(select)}
    needed = set(project.models)
    results: list[Result] = []

    def record(result: Result) -> None:
        results.append(result)
        if on_result:
            on_result(result)

    duck = duck_module.connect()
    try:
        duck_module.create_base_tables(duck)
        duck_module.load_seeds(duck, seeds_dir)
        duck_module.fill_alerts(duck, project)
        duck_module.fill_budget_spending(duck)
        duck.execute(f"create schema if not exists {SCHEMA}")
        failed: set[str] = set()
        for model in project.models.values():
            if model.name not in needed:
                continue
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
            model_started = time.perf_counter()
            try:
                _build_duckdb(duck, model)
            except TrackerError as exc:
                failed.add(model.name)
                record(
                    Result(
                        "model",
                        model.name,
                        "error",
                        time.perf_counter() - model_started,
                        detail=str(exc),
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
        for result in _check_documented_columns(duck, project, needed - failed):
            failed.add(result.name)
            record(result)
        models = [project[name] for name in project.order if name in chosen]
        tests = generic_tests(project, models, "duckdb")
        tests += [
            test
            for test in singular_tests(project, "duckdb")
            if select is None or test.model in chosen
        ]
        run_data_tests(_DuckRunner(duck), tests, failed, record)
        for result in run_unit_tests(
            duck,
            project,
            unit_dir=unit_dir,
            failed=failed,
            chosen=None if select is None else chosen,
        ):
            record(result)
    finally:
        duck.close()
    return CheckReport(results, time.perf_counter() - started, "duckdb")


def _build_duckdb(duck, model: Model) -> None:
    """Create one model's view or table; the runner's comments are left out for speed."""
    import duckdb

    query = render(model, "duckdb")
    try:
        duck.execute(f"create {model.materialized} {SCHEMA}.{_quote(model.name)} as\n{query}")
    except duckdb.Error as exc:
        raise TrackerError(
            f'Error: model "{model.name}" failed in DuckDB ({model.display_path}): '
            f"{_first_line(exc)}. Fix the model and run `python cli.py check` again."
        ) from None


def _check_documented_columns(duck, project: Project, names: set[str]) -> list[Result]:
    """A model whose config() documents a column its SELECT does not return fails."""
    actual: dict[str, list[str]] = {}
    for table, column in duck.execute(
        "select table_name, column_name from duckdb_columns() where schema_name = ? "
        "order by table_name, column_index",
        [SCHEMA],
    ).fetchall():
        actual.setdefault(table, []).append(column)
    results = []
    for name in project.order:
        model = project[name]
        if name not in names:
            continue
        missing = [column for column in model.columns if column not in actual.get(name, [])]
        if missing:
            results.append(
                Result(
                    "model",
                    name,
                    "error",
                    detail=f'Error: model "{name}" documents column "{missing[0]}" that its SELECT '
                    f"does not return ({model.display_path}; it returns "
                    f"{', '.join(actual.get(name, []))}). Fix the config() or the SELECT.",
                    path=model.display_path,
                )
            )
    return results


def run_postgres_tests(
    conn,
    project: Project,
    select: str | None = None,
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
    results += run_unit_tests_postgres(
        conn, project, unit_dir=unit_dir, chosen=_chosen(project, select), on_result=on_result
    )
    conn.rollback()
    return CheckReport(results, time.perf_counter() - started, "postgres")


def run_postgres_data_tests(
    conn,
    project: Project,
    select: str | None = None,
    on_result: Callable[[Result], None] | None = None,
) -> list[Result]:
    """The generic and singular tests, in the caller's transaction (its snapshot)."""
    from tracker.pipeline.models import BUILD_WORK_MEM

    models = project.select(select)
    chosen = {model.name for model in models}
    tests = generic_tests(project, models, "postgres")
    tests += [
        test
        for test in singular_tests(project, "postgres")
        if select is None or test.model in chosen
    ]
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
            f"Error: {SCHEMA}.{missing[0]} does not exist"
            f"{f' (nor {len(missing) - 1} other model(s))' if len(missing) > 1 else ''}. "
            "Build the models first: `python cli.py run`."
        )
    # Distinct counts and aggregates over every expense, in memory rather than temp files.
    conn.execute("select set_config('work_mem', %s, true)", [BUILD_WORK_MEM])
    return run_data_tests(_PostgresRunner(conn), tests, set(), on_result)


def _chosen(project: Project, select: str | None) -> set[str] | None:
    return None if select is None else {model.name for model in project.select(select)}


# --- unit tests ------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitTest:
    """Given rows for some inputs of a model, the rows it must return."""

    name: str
    model: str
    given: tuple[tuple[str, str, tuple[dict, ...]], ...]  # (kind, name, rows)
    expect: tuple[dict, ...]
    path: str


def load_unit_tests(project: Project, unit_dir: Path | str | None = None) -> list[UnitTest]:
    """queries/unit/*.json: {"model": NAME, "tests": [{"name", "given", "expect"}, ...]}."""
    unit_dir = Path(unit_dir or project.queries_dir / "unit")
    tests = []
    for path in sorted(unit_dir.glob("*.json")):
        display = _display(path, project)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(
                f"Error: unit test file {display} is not valid JSON ({exc.msg} on line "
                f"{exc.lineno}). Fix the file."
            ) from None

        def fail(what: str, display: str = display) -> InputError:
            return InputError(f"Error: unit test file {display} {what}. Fix the file.")

        if not isinstance(document, dict) or not isinstance(document.get("tests"), list):
            raise fail('must be an object with "model" and a list of "tests"')
        model = document.get("model")
        if not isinstance(model, str) or (
            model not in project.models
            and not (project.queries_dir / "checks" / f"{model}.sql").exists()
        ):
            raise fail(f'names unknown model "{model}"')
        for index, test in enumerate(document["tests"], start=1):
            if not isinstance(test, dict) or not isinstance(test.get("expect"), list):
                raise fail(f'test {index} has no "expect" list of rows')
            name = test.get("name") or f"{model}_{index}"
            given = []
            for entry in test.get("given", []):
                match = (
                    INPUT_PATTERN.match(str(entry.get("input", "")))
                    if isinstance(entry, dict)
                    else None
                )
                if not match or not isinstance(entry.get("rows"), list):
                    raise fail(
                        f'test "{name}" has a "given" entry without "input": '
                        '"ref(\'model\')" or "source(\'table\')" and a list of "rows"'
                    )
                given.append((match.group(1), match.group(2), tuple(entry["rows"])))
            tests.append(UnitTest(name, model, tuple(given), tuple(test["expect"]), display))
    return tests


def run_unit_tests(
    duck,
    project: Project,
    *,
    unit_dir: Path | str | None = None,
    failed: AbstractSet[str] = frozenset(),
    chosen: set[str] | None = None,
) -> list[Result]:
    """Run every unit test in a transaction that is rolled back afterwards."""
    from tracker.pipeline.duck import BASE_TABLES

    results = []
    for test in load_unit_tests(project, unit_dir):
        if chosen is not None and test.model not in chosen:
            continue
        name = f"{test.model}: {test.name}"
        if test.model in failed:
            results.append(
                Result("unit", name, "skip", detail=f'model "{test.model}" failed', path=test.path)
            )
            continue
        started = time.perf_counter()
        duck.execute("begin transaction")
        try:
            for table in BASE_TABLES:
                duck.execute(f"delete from main.{table}")
            missing, unexpected, names = _run_unit_test(duck, project, test)
        except (TrackerError, *_duck_errors()) as exc:
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
        finally:
            duck.execute("rollback")
        results.append(_unit_result(name, test, missing, unexpected, names, started))
    return results


def _run_unit_test(duck, project: Project, test: UnitTest):
    upstream = set()
    if test.model in project.models:
        upstream = project.upstream(test.model)
    given_refs = {name for kind, name, _ in test.given if kind == "ref"}
    for kind, name, rows in test.given:
        if kind == "source":
            _insert_rows(duck, "main", name, rows, f"source('{name}')", test)
        else:
            if name not in upstream:
                raise TrackerError(
                    f"Error: unit test \"{test.name}\" gives ref('{name}'), which model "
                    f'"{test.model}" does not read'
                )
            columns = _relation_columns(duck, SCHEMA, name)
            duck.execute(f"drop {_relation_kind(duck, name)} {SCHEMA}.{_quote(name)}")
            duck.execute(
                f"create table {SCHEMA}.{_quote(name)} ("
                + ", ".join(f"{_quote(column)} {type_}" for column, type_ in columns.items())
                + ")"
            )
            _insert_rows(duck, SCHEMA, name, rows, f"ref('{name}')", test)
    # Tables built from the real data are rebuilt from the given rows; views read them live.
    for model_name in project.order:
        model = project[model_name]
        if (
            model_name in upstream
            and model_name not in given_refs
            and model.materialized == "table"
        ):
            duck.execute(
                f"create or replace table {SCHEMA}.{_quote(model_name)} as\n"
                f"{render(model, 'duckdb')}"
            )
    if test.model in project.models:
        query = render(project[test.model], "duckdb")
    else:
        query = render_file(project, project.queries_dir / "checks" / f"{test.model}.sql", "duckdb")
    duck.execute(f"create temp table unit_actual as\n{query}")
    actual_columns = _relation_columns(duck, "temp", "unit_actual")
    names = _expected_columns(test, list(actual_columns))
    duck.execute(
        "create temp table unit_expected ("
        + ", ".join(f"{_quote(name)} {actual_columns[name]}" for name in names)
        + ")"
    )
    _insert_rows(duck, "temp", "unit_expected", test.expect, "expect", test)
    missing, unexpected = _row_differences(
        lambda query: duck.execute(query).fetchall(), names, "varchar"
    )
    return missing, unexpected, names


def _expected_columns(test: UnitTest, actual_columns: list[str]) -> list[str]:
    """The columns a unit test compares: those its expected rows name, else all of them."""
    names = list(dict.fromkeys(column for row in test.expect for column in row)) or actual_columns
    unknown = [name for name in names if name not in actual_columns]
    if unknown:
        raise TrackerError(
            f'Error: unit test "{test.name}" expects column "{unknown[0]}", which model '
            f'"{test.model}" does not return'
        )
    return names


def _row_differences(fetch, names: list[str], text_type: str) -> tuple[list, list]:
    """Rows of unit_expected missing from unit_actual, and rows of unit_actual not expected."""
    projected = ", ".join(f"cast({_quote(name)} as {text_type})" for name in names)
    listed = ", ".join(_quote(name) for name in names)

    def except_all(left: str, right: str) -> list:
        return fetch(
            f"select {projected} from (select {listed} from {left} "
            f"except all select {listed} from {right}) as difference order by {listed}"
        )

    return except_all("unit_expected", "unit_actual"), except_all("unit_actual", "unit_expected")


def run_unit_tests_postgres(
    conn,
    project: Project,
    *,
    unit_dir: Path | str | None = None,
    chosen: set[str] | None = None,
    on_result: Callable[[Result], None] | None = None,
) -> list[Result]:
    """The unit tests on PostgreSQL, each in a transaction that is rolled back.

    The model and everything upstream of it are rendered for PostgreSQL and pointed at
    temporary relations (pg_temp): the given rows, or empty copies of the base tables, so
    neither the real data nor schema analytics is read or touched.
    """
    import psycopg

    results = []
    for test in load_unit_tests(project, unit_dir):
        if chosen is not None and test.model not in chosen:
            continue
        name = f"{test.model}: {test.name}"
        started = time.perf_counter()
        try:
            with conn.transaction(force_rollback=True):
                missing, unexpected, names = _run_unit_test_postgres(conn, project, test)
        except (TrackerError, psycopg.Error) as exc:
            result = Result(
                "unit",
                name,
                "error",
                time.perf_counter() - started,
                detail=f"{_first_line(exc)} ({test.path})",
                path=test.path,
            )
        else:
            result = _unit_result(name, test, missing, unexpected, names, started)
        results.append(result)
        if on_result:
            on_result(result)
    return results


def _unit_result(name, test, missing, unexpected, names, started) -> Result:
    rows = [f"missing:    {_row_text(names, row)}" for row in missing[:SAMPLE_ROWS]]
    rows += [f"unexpected: {_row_text(names, row)}" for row in unexpected[:SAMPLE_ROWS]]
    failures = len(missing) + len(unexpected)
    detail = (
        (f"{len(missing)} expected row(s) missing, {len(unexpected)} unexpected ({test.path})")
        if failures
        else ""
    )
    return Result(
        "unit",
        name,
        "fail" if failures else "pass",
        time.perf_counter() - started,
        failures,
        detail,
        rows,
        test.path,
    )


def _run_unit_test_postgres(conn, project: Project, test: UnitTest):
    from psycopg import sql

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
        r"\b(?:public\.(" + "|".join(SOURCE_TABLES) + r")|" + SCHEMA + r"\.([a-z_][a-z0-9_]*))\b"
    )

    def redirect(query: str) -> str:
        def replace(match):
            if match.group(1):
                return f"pg_temp.unit_source_{match.group(1)}"
            return f"pg_temp.unit_ref_{match.group(2)}"

        return pattern.sub(replace, query)

    for table in SOURCE_TABLES:
        conn.execute(
            sql.SQL("create temporary table {} (like {} including defaults)").format(
                sql.Identifier(f"unit_source_{table}"), sql.Identifier("public", table)
            )
        )
        if ("source", table) in given:
            _insert_rows_postgres(
                conn, f"unit_source_{table}", given[("source", table)], f"source('{table}')", test
            )
    for model_name in project.order:
        if model_name not in upstream:
            continue
        relation = f"unit_ref_{model_name}"
        conn.execute(
            f"create temporary view {relation} as\n"
            + redirect(render(project[model_name], "postgres"))
        )
        if ("ref", model_name) in given:
            conn.execute(f"create temporary table unit_given as select * from {relation} limit 0")
            conn.execute(f"drop view {relation}")
            conn.execute(f"alter table unit_given rename to {relation}")
            _insert_rows_postgres(
                conn, relation, given[("ref", model_name)], f"ref('{model_name}')", test
            )
    if test.model in project.models:
        query = render(project[test.model], "postgres")
    else:
        query = render_file(
            project, project.queries_dir / "checks" / f"{test.model}.sql", "postgres"
        )
    conn.execute("create temporary table unit_actual as\n" + redirect(query))
    actual_columns = [
        row[0]
        for row in conn.execute(
            "select attname from pg_attribute where attrelid = 'pg_temp.unit_actual'::regclass "
            "and attnum > 0 and not attisdropped order by attnum"
        ).fetchall()
    ]
    names = _expected_columns(test, actual_columns)
    listed = ", ".join(_quote(name) for name in names)
    conn.execute(
        f"create temporary table unit_expected as select {listed} from unit_actual limit 0"
    )
    _insert_rows_postgres(conn, "unit_expected", test.expect, "expect", test)
    missing, unexpected = _row_differences(
        lambda query: conn.execute(query).fetchall(), names, "text"
    )
    return missing, unexpected, names


def _insert_rows_postgres(conn, table: str, rows, label: str, test: UnitTest) -> None:
    from psycopg import sql

    if not rows:
        return
    columns = [
        row[0]
        for row in conn.execute(
            "select attname from pg_attribute where attrelid = to_regclass(%s) "
            "and attnum > 0 and not attisdropped order by attnum",
            [f"pg_temp.{table}"],
        ).fetchall()
    ]
    names = list(dict.fromkeys(column for row in rows for column in row))
    unknown = [name for name in names if name not in columns]
    if unknown:
        raise TrackerError(
            f'Error: unit test "{test.name}" gives column "{unknown[0]}" for {label}, which has '
            f"columns {', '.join(columns)}"
        )
    statement = sql.SQL("insert into {} ({}) values ({})").format(
        sql.Identifier(table),
        sql.SQL(", ").join(sql.Identifier(name) for name in names),
        sql.SQL(", ").join(sql.Placeholder() for _ in names),
    )
    with conn.cursor() as cursor:
        cursor.executemany(
            statement, [[_pg_value(row.get(name)) for name in names] for row in rows]
        )


def _pg_value(value):
    # Numbers go as text, so "100.00" and 100 reach numeric columns without a float.
    return None if value is None else str(value) if not isinstance(value, bool) else value


def _insert_rows(duck, schema: str, table: str, rows, label: str, test: UnitTest) -> None:
    if not rows:
        return
    columns = _relation_columns(duck, schema, table)
    names = list(dict.fromkeys(column for row in rows for column in row))
    unknown = [name for name in names if name not in columns]
    if unknown:
        raise TrackerError(
            f'Error: unit test "{test.name}" gives column "{unknown[0]}" for {label}, which has '
            f"columns {', '.join(columns)}"
        )
    values = ",\n".join(
        "(" + ", ".join(sql_literal(row.get(name), "duckdb") for name in names) + ")"
        for row in rows
    )
    target = table if schema == "temp" else f"{schema}.{_quote(table)}"
    duck.execute(
        f"insert into {target} ({', '.join(_quote(name) for name in names)}) values\n{values}"
    )


def _relation_columns(duck, schema: str, name: str) -> dict[str, str]:
    # duckdb_columns() directly: information_schema.columns is a view over it, ~10x slower.
    if schema == "temp":
        rows = duck.execute(
            "select column_name, data_type from duckdb_columns() "
            "where database_name = 'temp' and table_name = ? order by column_index",
            [name],
        ).fetchall()
    else:
        rows = duck.execute(
            "select column_name, data_type from duckdb_columns() "
            "where database_name <> 'temp' and schema_name = ? and table_name = ? "
            "order by column_index",
            [schema, name],
        ).fetchall()
    return dict(rows)


def _relation_kind(duck, name: str) -> str:
    row = duck.execute(
        "select table_type from information_schema.tables where table_schema = ? "
        "and table_name = ?",
        [SCHEMA, name],
    ).fetchone()
    return "view" if row and row[0] == "VIEW" else "table"


# --- helpers ---------------------------------------------------------------------------------


def _duck_errors() -> tuple:
    import duckdb

    return (duckdb.Error,)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _row_text(names: list[str], row: tuple) -> str:
    return ", ".join(
        f"{name}={'null' if value is None else value}"
        for name, value in zip(names, row, strict=True)
    )


def _display(path: Path, project: Project) -> str:
    try:
        return str(path.relative_to(project.queries_dir.parent))
    except ValueError:
        return str(path)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0].strip().rstrip(".")


# --- engine parity ---------------------------------------------------------------------------

# PostgreSQL type name -> DuckDB type, for reading PostgreSQL's rows back in DuckDB.
_DUCKDB_TYPES = {
    "int2": "SMALLINT",
    "int4": "INTEGER",
    "int8": "BIGINT",
    "bool": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "timestamptz": "TIMESTAMP WITH TIME ZONE",
    "text": "VARCHAR",
    "varchar": "VARCHAR",
    "bpchar": "VARCHAR",
    "float8": "DOUBLE",
}
PARITY_SAMPLE = 5


@dataclass
class ModelParity:
    """One model on both engines: rows on each side and what differs."""

    name: str
    postgres_rows: int
    duckdb_rows: int
    differences: list[str]

    @property
    def ok(self) -> bool:
        return not self.differences


def compare_engines(
    url: str,
    project: Project,
    workdir: Path | str,
    select: str | None = None,
    on_model: Callable[[ModelParity], None] | None = None,
) -> list[ModelParity]:
    """Every model on DuckDB (from a copy of the base tables) against PostgreSQL's analytics.

    PostgreSQL's relations are the ones `run` built; each is copied out with COPY (timestamps
    in UTC) and read back in DuckDB with the types of its catalog, then joined to DuckDB's
    result on the model's unique_key. A difference names the model, the key, the column and
    both values; a column whose type differs is a difference too.
    """
    from tracker.pipeline import duck as duck_module
    from tracker.plumbing.db import connect as pg_connect

    workdir = Path(workdir)
    duck = duck_module.connect()
    try:
        duck_module.create_base_tables(duck)
        duck_module.copy_from_postgres(url, duck, workdir)
        duck.execute(f"create schema {SCHEMA}")
        for model in project.models.values():
            _build_duckdb(duck, model)
        duck.execute("create schema postgres")
        results = []
        with pg_connect(url) as conn:
            conn.read_only = True
            conn.isolation_level = _repeatable_read()
            conn.execute("set timezone = 'UTC'")
            conn.execute("set datestyle = 'ISO, YMD'")
            for model in project.select(select):
                parity = _compare_model(conn, duck, model, workdir)
                results.append(parity)
                if on_model:
                    on_model(parity)
            conn.rollback()
    finally:
        duck.close()
    return results


def _repeatable_read():
    import psycopg

    return psycopg.IsolationLevel.REPEATABLE_READ


def _compare_model(
    conn, duck, model: Model, workdir: Path, skip: Iterable[str] = (), engine: str = "DuckDB"
) -> ModelParity:
    """One model: PostgreSQL's rows against analytics.<model> in duck (DuckDB's or Spark's).

    skip: columns left out on both sides (the Spark lake does not carry them).
    """
    from psycopg import sql

    skip = set(skip)
    pg_columns = {
        column: type_
        for column, type_ in _postgres_columns(conn, model.name).items()
        if column not in skip
    }
    if not pg_columns:
        raise TrackerError(
            f"Error: {SCHEMA}.{model.name} does not exist in PostgreSQL. "
            "Build the models first: `python cli.py run`."
        )
    duck_columns = {
        column: type_
        for column, type_ in _relation_columns(duck, SCHEMA, model.name).items()
        if column not in skip
    }
    differences = []
    for column, pg_type in pg_columns.items():
        duck_type = duck_columns.get(column)
        if duck_type is None:
            differences.append(f'column "{column}" is missing in {engine}')
        elif pg_type is not None and duck_type != pg_type:
            differences.append(
                f'column "{column}" is {pg_type} in PostgreSQL, {duck_type} in {engine}'
            )
    extra = [column for column in duck_columns if column not in pg_columns]
    differences += [f'column "{column}" is missing in PostgreSQL' for column in extra]
    if differences:
        return ModelParity(model.name, -1, -1, differences)
    path = workdir / f"postgres_{model.name}.csv"
    statement = sql.SQL("copy (select {} from {}) to stdout with (format csv, header)").format(
        sql.SQL(", ").join(sql.Identifier(column) for column in pg_columns),
        sql.Identifier(SCHEMA, model.name),
    )
    with open(path, "wb") as target, conn.cursor().copy(statement) as copy:
        for chunk in copy:
            target.write(chunk)
    from tracker.pipeline.duck import CSV_READER

    # Columns without a declared scale (plain numeric) are read as exact text-sized decimals.
    read_types = {column: pg_type or "DECIMAL(38,10)" for column, pg_type in pg_columns.items()}
    duck.execute(
        f"create table postgres.{_quote(model.name)} as select * from {CSV_READER}",
        {"path": str(path), "columns": read_types},
    )
    key = model.unique_key or list(pg_columns)
    others = [column for column in pg_columns if column not in key]
    on = " and ".join(
        f"pg.{_quote(column)} is not distinct from dk.{_quote(column)}" for column in key
    )
    key_text = " || ', ' || ".join(
        f"'{column}=' || coalesce(cast(coalesce(pg.{_quote(column)}, dk.{_quote(column)}) "
        f"as varchar), 'null')"
        for column in key
    )
    side_values = ", ".join(
        f"cast(pg.{_quote(column)} as varchar), cast(dk.{_quote(column)} as varchar), "
        f"pg.{_quote(column)} is distinct from dk.{_quote(column)}"
        for column in others
    )
    differs = (
        " or ".join(
            f"pg.{_quote(column)} is distinct from dk.{_quote(column)}" for column in others
        )
        or "false"
    )
    rows = duck.execute(
        f"""
        select
            {key_text} as key_text,
            pg.{_quote(key[0])} is null as only_duckdb,
            dk.{_quote(key[0])} is null as only_postgres
            {", " + side_values if side_values else ""}
        from postgres.{_quote(model.name)} as pg
        full outer join {SCHEMA}.{_quote(model.name)} as dk
            on {on}
        where pg.{_quote(key[0])} is null
            or dk.{_quote(key[0])} is null
            or {differs}
        order by 1
        limit {PARITY_SAMPLE}
        """
    ).fetchall()
    (differing,) = duck.execute(
        f"""
        select count(*)
        from postgres.{_quote(model.name)} as pg
        full outer join {SCHEMA}.{_quote(model.name)} as dk
            on {on}
        where pg.{_quote(key[0])} is null
            or dk.{_quote(key[0])} is null
            or {differs}
        """
    ).fetchone()
    for row in rows:
        key_value, only_duckdb, only_postgres = row[:3]
        if only_duckdb:
            differences.append(f"({key_value}) only in {engine}")
        elif only_postgres:
            differences.append(f"({key_value}) only in PostgreSQL")
        else:
            for index, column in enumerate(others):
                pg_value, duck_value, different = row[3 + 3 * index : 6 + 3 * index]
                if different:
                    differences.append(
                        f"({key_value}) {column}: PostgreSQL {_shown(pg_value)}, "
                        f"{engine} {_shown(duck_value)}"
                    )
    if differing > len(rows):
        differences.append(f"... {differing} differing rows in all")
    (pg_rows,) = duck.execute(f"select count(*) from postgres.{_quote(model.name)}").fetchone()
    (duck_rows,) = duck.execute(f"select count(*) from {SCHEMA}.{_quote(model.name)}").fetchone()
    if pg_rows != duck_rows and not differences:
        differences.append(f"{pg_rows} rows in PostgreSQL, {duck_rows} in {engine}")
    return ModelParity(model.name, pg_rows, duck_rows, differences)


def _postgres_columns(conn, name: str) -> dict[str, str | None]:
    """Column -> DuckDB type of a PostgreSQL relation (None: numeric without a scale)."""
    rows = conn.execute(
        """
        select
            attribute.attname,
            type.typname,
            attribute.atttypmod
        from pg_attribute as attribute
        inner join pg_type as type
            on type.oid = attribute.atttypid
        where attribute.attrelid = to_regclass(%s)
            and attribute.attnum > 0
            and not attribute.attisdropped
        order by attribute.attnum
        """,
        [f"{SCHEMA}.{name}"],
    ).fetchall()
    columns: dict[str, str | None] = {}
    for column, type_name, typmod in rows:
        if type_name == "numeric":
            if typmod >= 4:
                precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
                columns[column] = f"DECIMAL({precision},{scale})"
            else:
                columns[column] = None
        else:
            columns[column] = _DUCKDB_TYPES.get(type_name, "VARCHAR")
    return columns


def _shown(value) -> str:
    return "null" if value is None else repr(value)
