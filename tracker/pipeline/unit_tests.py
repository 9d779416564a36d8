"""Unit tests of models: given small input rows, a model must return exactly the expected rows.

queries/unit/<model>.json names a model (or a query in queries/checks/) and its tests; each
test gives rows for some of the model's sources and refs and the rows it must return. One
runner serves every engine through a small adapter (UnitEngine): DuckDB and PostgreSQL here,
Spark in spark.py. The adapter loads the inputs, computes the model into `unit_actual`, writes
the expected rows into `unit_expected` with the same column types, and fetches rows; the
runner compares the two as multisets (EXCEPT ALL both ways, in one grouping; values shown as
text) inside the adapter's isolation, which is always undone, so neither the real data nor
schema analytics changes.
"""

import contextlib
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tracker.errors import InputError, TrackerError
from tracker.pipeline.duck import table_columns
from tracker.pipeline.models import (
    SCHEMA,
    SOURCE_TABLES,
    Project,
    display_path,
    render,
    render_file,
    sql_literal,
)
from tracker.pipeline.results import SAMPLE_ROWS, Result, row_text
from tracker.text import quote_identifier as _quote
from tracker.text import reason

INPUT_PATTERN = re.compile(r"""^\s*(ref|source)\(\s*['"]([a-z_][a-z0-9_]*)['"]\s*\)\s*$""")


@dataclass(frozen=True)
class UnitTest:
    """Given rows for some inputs of a model, the rows it must return."""

    name: str
    model: str
    given: tuple[tuple[str, str, tuple[dict, ...]], ...]  # (kind, name, rows)
    expect: tuple[dict, ...]
    path: str


class UnitEngine(Protocol):
    """What the runner needs from an engine to run one unit test."""

    engine: str  # what models are rendered for: duckdb, postgres, spark
    text_type: str  # the engine's name for text, to compare values as text
    errors: tuple[type[BaseException], ...]  # exceptions that mean "this test errored"

    def isolated(self) -> contextlib.AbstractContextManager: ...

    def load_inputs(self, project: Project, upstream: set[str], given: dict, test) -> None: ...

    def create_actual(self, query: str) -> list[str]: ...

    def create_expected(self, names: list[str], rows: Iterable[dict], test) -> None: ...

    def fetch(self, query: str) -> list[tuple]: ...


def load_unit_tests(project: Project, unit_dir: Path | str | None = None) -> list[UnitTest]:
    """queries/unit/*.json: {"model": NAME, "tests": [{"name", "given", "expect"}, ...]}."""
    unit_dir = Path(unit_dir or project.queries_dir / "unit")
    tests = []
    for path in sorted(unit_dir.glob("*.json")):
        display = display_path(path, project.queries_dir)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(
                f"unit test file {display} is not valid JSON ({exc.msg} on line "
                f"{exc.lineno}). Fix the file."
            ) from None

        def fail(what: str, display: str = display) -> InputError:
            return InputError(f"unit test file {display} {what}. Fix the file.")

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
    engine: UnitEngine,
    project: Project,
    *,
    unit_dir: Path | str | None = None,
    failed: Iterable[str] = frozenset(),
    chosen: set[str] | None = None,
    on_result: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Run every unit test (of the chosen models) on engine; a failed model's are skipped."""
    results = []
    for test in load_unit_tests(project, unit_dir):
        if chosen is not None and test.model not in chosen:
            continue
        name = f"{test.model}: {test.name}"
        started = time.perf_counter()
        if test.model in failed:
            result = Result(
                "unit", name, "skip", detail=f'model "{test.model}" failed', path=test.path
            )
        else:
            errors: tuple[type[BaseException], ...] = (TrackerError, *engine.errors)
            try:
                with engine.isolated():
                    missing, unexpected, names = _run_one(engine, project, test)
            except errors as exc:
                result = Result(
                    "unit",
                    name,
                    "error",
                    time.perf_counter() - started,
                    detail=f"{reason(exc)} ({test.path})",
                    path=test.path,
                )
            else:
                result = _unit_result(name, test, missing, unexpected, names, started)
        results.append(result)
        if on_result:
            on_result(result)
    return results


def _run_one(engine: UnitEngine, project: Project, test: UnitTest):
    upstream = project.upstream(test.model) if test.model in project.models else set()
    given = {(kind, name): rows for kind, name, rows in test.given}
    for kind, name in given:
        if kind == "ref" and name not in upstream:
            raise TrackerError(
                f"unit test \"{test.name}\" gives ref('{name}'), which model "
                f'"{test.model}" does not read'
            )
    engine.load_inputs(project, upstream, given, test)
    if test.model in project.models:
        query = render(project[test.model], engine.engine)
    else:
        path = project.queries_dir / "checks" / f"{test.model}.sql"
        query = render_file(project, path, engine.engine)
    names = _expected_columns(test, engine.create_actual(query))
    engine.create_expected(names, test.expect, test)
    missing, unexpected = _row_differences(engine.fetch, names, engine.text_type)
    return missing, unexpected, names


def _expected_columns(test: UnitTest, actual_columns: list[str]) -> list[str]:
    """The columns a unit test compares: those its expected rows name, else all of them."""
    names = list(dict.fromkeys(column for row in test.expect for column in row)) or actual_columns
    unknown = [name for name in names if name not in actual_columns]
    if unknown:
        raise TrackerError(
            f'unit test "{test.name}" expects column "{unknown[0]}", which model '
            f'"{test.model}" does not return'
        )
    return names


def _row_differences(fetch, names: list[str], text_type: str) -> tuple[list, list]:
    """Rows of unit_expected missing from unit_actual, and rows of unit_actual not expected.

    EXCEPT ALL both ways, as one grouping: each distinct row with how many more copies of it
    unit_expected has than unit_actual (DuckDB runs the two EXCEPT ALLs ~3x slower).
    """
    projected = ", ".join(f"cast({_quote(name)} as {text_type})" for name in names)
    listed = ", ".join(_quote(name) for name in names)
    # Names with spaces, which no model column has, so neither clashes with one.
    side, surplus = '"unit test side"', '"unit test surplus"'
    rows = fetch(
        f"select {projected}, {surplus} from ("
        f"select {listed}, sum({side}) as {surplus} from ("
        f"select {listed}, 1 as {side} from unit_expected "
        f"union all select {listed}, -1 as {side} from unit_actual"
        f") as both_sides group by {listed}) as difference "
        f"where {surplus} <> 0 order by {listed}"
    )
    missing = [tuple(row[:-1]) for row in rows for _ in range(row[-1])]
    unexpected = [tuple(row[:-1]) for row in rows for _ in range(-row[-1])]
    return missing, unexpected


def _unit_result(name, test, missing, unexpected, names, started) -> Result:
    rows = [f"missing:    {row_text(names, row)}" for row in missing[:SAMPLE_ROWS]]
    rows += [f"unexpected: {row_text(names, row)}" for row in unexpected[:SAMPLE_ROWS]]
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


def given_columns(test: UnitTest, rows: Iterable[dict], columns: Iterable[str], label: str):
    """The columns rows name, in first-seen order; a column the relation lacks is an error."""
    columns = list(columns)
    names = list(dict.fromkeys(column for row in rows for column in row))
    unknown = [name for name in names if name not in columns]
    if unknown:
        raise TrackerError(
            f'unit test "{test.name}" gives column "{unknown[0]}" for {label}, which has '
            f"columns {', '.join(columns)}"
        )
    return names


# --- DuckDB: the inputs replace the base tables and refs, in a transaction rolled back --------


class DuckUnitEngine:
    """Unit tests on DuckDB (check): given rows go into main.<table> and analytics.<ref>."""

    engine = "duckdb"
    text_type = "varchar"

    def __init__(self, duck):
        import duckdb

        self.duck = duck
        self.errors: tuple[type[BaseException], ...] = (duckdb.Error,)
        self._actual_types: dict[str, str] = {}  # unit_actual's columns, once created

    @contextlib.contextmanager
    def isolated(self):
        self.duck.execute("begin transaction")
        try:
            yield
        finally:
            self.duck.execute("rollback")

    def load_inputs(self, project: Project, upstream: set[str], given: dict, test) -> None:
        duck = self.duck
        # One script, one round trip.
        duck.execute("; ".join(f"delete from main.{table}" for table in SOURCE_TABLES))
        for (kind, name), rows in given.items():
            if kind == "source":
                self._insert("main", name, rows, f"source('{name}')", test)
                continue
            columns = self._columns(SCHEMA, name)
            # check built it as its config() says; asking DuckDB's catalog instead costs ~10 ms
            # on first use (listing relations makes DuckDB create its lazy system views).
            duck.execute(f"drop {project[name].materialized} {SCHEMA}.{_quote(name)}")
            duck.execute(
                f"create table {SCHEMA}.{_quote(name)} ("
                + ", ".join(f"{_quote(column)} {type_}" for column, type_ in columns.items())
                + ")"
            )
            self._insert(SCHEMA, name, rows, f"ref('{name}')", test, columns)
        # Tables built from the real data are rebuilt from the given rows; views read them live.
        for model_name in project.order:
            model = project[model_name]
            if (
                model_name in upstream
                and ("ref", model_name) not in given
                and model.materialized == "table"
            ):
                duck.execute(
                    f"create or replace table {SCHEMA}.{_quote(model_name)} as\n"
                    f"{render(model, 'duckdb')}"
                )

    def create_actual(self, query: str) -> list[str]:
        self.duck.execute(f"create temp table unit_actual as\n{query}")
        # Kept for create_expected: each catalog lookup is a round trip.
        self._actual_types = self._columns("temp", "unit_actual")
        return list(self._actual_types)

    def create_expected(self, names: list[str], rows: Iterable[dict], test) -> None:
        types = self._actual_types
        self.duck.execute(
            "create temp table unit_expected ("
            + ", ".join(f"{_quote(name)} {types[name]}" for name in names)
            + ")"
        )
        self._insert("temp", "unit_expected", rows, "expect", test, names)

    def fetch(self, query: str) -> list[tuple]:
        return self.duck.execute(query).fetchall()

    def _insert(self, schema: str, table: str, rows, label: str, test, columns=None) -> None:
        """Insert rows into a relation; columns: its columns when the caller knows them."""
        if not rows:
            return
        if columns is None:
            columns = self._columns(schema, table)
        names = given_columns(test, rows, columns, label)
        values = ",\n".join(
            "(" + ", ".join(sql_literal(row.get(name), "duckdb") for name in names) + ")"
            for row in rows
        )
        target = table if schema == "temp" else f"{schema}.{_quote(table)}"
        self.duck.execute(
            f"insert into {target} ({', '.join(_quote(name) for name in names)}) values\n{values}"
        )

    def _columns(self, schema: str, name: str) -> dict[str, str]:
        return table_columns(self.duck, name, schema)


# --- PostgreSQL: the model pointed at temporary relations, in a transaction rolled back -------


class PostgresUnitEngine:
    """Unit tests on PostgreSQL (test, build).

    The model and everything upstream of it are rendered for PostgreSQL and pointed at
    temporary relations (pg_temp): the given rows, or empty copies of the base tables, so
    neither the real data nor schema analytics is read or touched.
    """

    engine = "postgres"
    text_type = "text"
    _PATTERN = re.compile(
        r"\b(?:public\.(" + "|".join(SOURCE_TABLES) + r")|" + SCHEMA + r"\.([a-z_][a-z0-9_]*))\b"
    )

    def __init__(self, conn):
        import psycopg

        self.conn = conn
        self.errors: tuple[type[BaseException], ...] = (psycopg.Error,)

    def isolated(self):
        return self.conn.transaction(force_rollback=True)

    def load_inputs(self, project: Project, upstream: set[str], given: dict, test) -> None:
        from psycopg import sql

        conn = self.conn
        for table in SOURCE_TABLES:
            conn.execute(
                sql.SQL("create temporary table {} (like {} including defaults)").format(
                    sql.Identifier(f"unit_source_{table}"), sql.Identifier("public", table)
                )
            )
            if ("source", table) in given:
                self._insert(
                    f"unit_source_{table}", given[("source", table)], f"source('{table}')", test
                )
        for model_name in project.order:
            if model_name not in upstream:
                continue
            relation = f"unit_ref_{model_name}"
            conn.execute(
                f"create temporary view {relation} as\n"
                + self._redirect(render(project[model_name], "postgres"))
            )
            if ("ref", model_name) in given:
                conn.execute(
                    f"create temporary table unit_given as select * from {relation} limit 0"
                )
                conn.execute(f"drop view {relation}")
                conn.execute(f"alter table unit_given rename to {relation}")
                self._insert(relation, given[("ref", model_name)], f"ref('{model_name}')", test)

    def create_actual(self, query: str) -> list[str]:
        self.conn.execute("create temporary table unit_actual as\n" + self._redirect(query))
        return self._columns("unit_actual")

    def create_expected(self, names: list[str], rows: Iterable[dict], test) -> None:
        listed = ", ".join(_quote(name) for name in names)
        self.conn.execute(
            f"create temporary table unit_expected as select {listed} from unit_actual limit 0"
        )
        self._insert("unit_expected", rows, "expect", test)

    def fetch(self, query: str) -> list[tuple]:
        return self.conn.execute(query).fetchall()

    def _redirect(self, query: str) -> str:
        def replace(match):
            if match.group(1):
                return f"pg_temp.unit_source_{match.group(1)}"
            return f"pg_temp.unit_ref_{match.group(2)}"

        return self._PATTERN.sub(replace, query)

    def _columns(self, table: str) -> list[str]:
        return [
            row[0]
            for row in self.conn.execute(
                "select attname from pg_attribute where attrelid = to_regclass(%s) "
                "and attnum > 0 and not attisdropped order by attnum",
                [f"pg_temp.{table}"],
            ).fetchall()
        ]

    def _insert(self, table: str, rows, label: str, test) -> None:
        from psycopg import sql

        if not rows:
            return
        names = given_columns(test, rows, self._columns(table), label)
        statement = sql.SQL("insert into {} ({}) values ({})").format(
            sql.Identifier(table),
            sql.SQL(", ").join(sql.Identifier(name) for name in names),
            sql.SQL(", ").join(sql.Placeholder() for _ in names),
        )
        with self.conn.cursor() as cursor:
            cursor.executemany(
                statement, [[_pg_value(row.get(name)) for name in names] for row in rows]
            )


def _pg_value(value):
    # Numbers go as text, so "100.00" and 100 reach numeric columns without a float.
    return None if value is None else str(value) if not isinstance(value, bool) else value
