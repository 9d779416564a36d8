"""Engine parity: every model must return the same rows and types on DuckDB (or Spark) as on
PostgreSQL.

PostgreSQL's relations are the ones `run` built; each is copied out with COPY (timestamps in
UTC) and read back in DuckDB with the types of its catalog (tracker.pipeline.types), then
joined to the other engine's result on the model's unique_key. A difference names the model,
the key, the column and both values; a column whose type differs is a difference too.
"""

import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tracker.errors import TrackerError
from tracker.pipeline.models import SCHEMA, Model, Project
from tracker.pipeline.types import CSV_READER, canonical_types, duckdb_type
from tracker.text import quote_identifier as _quote

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


def check_parity(
    url: str,
    project: Project,
    *,
    engine: str = "duckdb",
    select=None,
    master: str | None = None,
    lake_dir: Path | str | None = None,
    on_model: Callable[[ModelParity], None] | None = None,
) -> list[ModelParity]:
    """`parity`: every selected model on engine (duckdb or spark) against PostgreSQL's build.

    The copies live in a temporary folder, removed afterwards. With spark the lake (lake_dir)
    is first brought up to date (export_lake, incremental) and the models run over it.
    """
    with tempfile.TemporaryDirectory(prefix="tracker_parity_") as workdir:
        if engine != "spark":
            return compare_engines(url, project, workdir, select=select, on_model=on_model)
        from tracker.pipeline.lake import export_lake
        from tracker.pipeline.spark import DEFAULT_MASTER
        from tracker.pipeline.spark_checks import compare_spark

        if lake_dir is None:
            raise TypeError("check_parity(engine='spark') needs lake_dir, the lake to run on")
        export_lake(url, project, lake_dir)
        return compare_spark(
            url,
            project,
            lake_dir,
            workdir,
            master=master or DEFAULT_MASTER,
            select=select,
            on_model=on_model,
        )


def compare_engines(
    url: str,
    project: Project,
    workdir: Path | str,
    select=None,
    on_model: Callable[[ModelParity], None] | None = None,
) -> list[ModelParity]:
    """Every model on DuckDB (from a copy of the base tables) against PostgreSQL's analytics.

    PostgreSQL's relations are the ones `run` built; each is copied out with COPY (timestamps
    in UTC) and read back in DuckDB with the types of its catalog, then joined to DuckDB's
    result on the model's unique_key. A difference names the model, the key, the column and
    both values; a column whose type differs is a difference too.
    """
    from tracker.pipeline import duck as duck_module
    from tracker.pipeline.runner import build_model_duckdb

    workdir = Path(workdir)
    duck = duck_module.connect()
    try:
        duck_module.create_base_tables(duck)
        duck_module.copy_from_postgres(url, duck, workdir)
        duck.execute(f"create schema {SCHEMA}")
        for model in project.models.values():
            build_model_duckdb(duck, model, describe=False)
        return compare_models(url, duck, project.select(select), workdir, on_model=on_model)
    finally:
        duck.close()


def compare_models(
    url: str,
    duck,
    models: Iterable[Model],
    workdir: Path,
    *,
    skip: Mapping[str, Iterable[str]] | None = None,
    engine: str = "DuckDB",
    on_model: Callable[[ModelParity], None] | None = None,
) -> list[ModelParity]:
    """Each model's relation in duck (schema analytics) against PostgreSQL's, in one read-only
    snapshot of PostgreSQL; skip: per model, columns left out on both sides."""
    import psycopg

    from tracker.plumbing.db import connect as pg_connect

    duck.execute("create schema if not exists postgres")
    results = []
    with pg_connect(url) as conn:
        conn.read_only = True
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.execute("set timezone = 'UTC'")
        conn.execute("set datestyle = 'ISO, YMD'")
        for model in models:
            parity = compare_model(
                conn, duck, model, workdir, (skip or {}).get(model.name, ()), engine
            )
            results.append(parity)
            if on_model:
                on_model(parity)
        conn.rollback()
    return results


def compare_model(
    conn, duck, model: Model, workdir: Path, skip: Iterable[str] = (), engine: str = "DuckDB"
) -> ModelParity:
    """One model: PostgreSQL's rows against analytics.<model> in duck (DuckDB's or Spark's).

    skip: columns left out on both sides (the Spark lake does not carry them).
    """
    from psycopg import sql

    from tracker.pipeline.duck import table_columns

    skip = set(skip)
    pg_columns = {
        column: type_
        for column, type_ in _postgres_columns(conn, model.name).items()
        if column not in skip
    }
    if not pg_columns:
        raise TrackerError(
            f"{SCHEMA}.{model.name} does not exist in PostgreSQL. "
            "Build the models first: `python cli.py run`."
        )
    duck_columns = {
        column: type_
        for column, type_ in table_columns(duck, model.name, SCHEMA).items()
        if column not in skip
    }
    differences = []
    # Compared as DuckDB's catalog names them (TIMESTAMPTZ is TIMESTAMP WITH TIME ZONE there).
    typed = {column: type_ for column, type_ in pg_columns.items() if type_ is not None}
    canonical_names = canonical_types(duck, list(typed.values()))
    canonical = dict(zip(typed, canonical_names, strict=True))
    for column in pg_columns:
        pg_type = canonical.get(column)
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
    return {column: duckdb_type(type_name, typmod) for column, type_name, typmod in rows}


def _shown(value) -> str:
    return "null" if value is None else repr(value)
