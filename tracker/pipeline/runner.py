"""Building the models: views and tables in schema analytics, on PostgreSQL and on DuckDB.

`run` builds the chosen models (and whatever depends on them) in one transaction; each built
model's rendered SQL is recorded (sha256 and the vars it was rendered with) in
tracker_state.model_builds, so `export` can tell which models are missing or stale against
queries/ and build just those first (ensure_built).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from tracker.errors import TrackerError
from tracker.pipeline.models import SCHEMA, Model, Project, render, sql_literal
from tracker.text import quote_identifier, reason, text_sha256

if TYPE_CHECKING:
    import psycopg

# Serializes concurrent `run`s on one database; a different id from the migration lock.
RUN_LOCK_ID = 7_240_517_002
# work_mem of a build or test transaction: a million expenses aggregate in memory.
BUILD_WORK_MEM = "256MB"


def run_models(
    conn: psycopg.Connection,
    project: Project,
    models: Iterable[Model],
    vars: dict | None = None,
    on_model: Callable[[str, float], None] | None = None,
) -> list[tuple[str, float]]:
    """Build models in schema analytics on PostgreSQL, all in one transaction.

    A model that is rebuilt is dropped first; whatever depends on it in the database
    (views of other models) is rebuilt too, so a partial run leaves the schema whole.
    On any failure the transaction rolls back and the previous build stays as it was.
    """
    with conn.transaction():
        begin_build(conn)
        return build_models(conn, project, models, vars, on_model)


def begin_build(conn: psycopg.Connection) -> None:
    """First statements of a build transaction: one snapshot for every model, enough memory.

    REPEATABLE READ: every table model is computed from the same data, even while others
    write. work_mem: the marts aggregate every expense; in memory, not in temporary files.
    """
    conn.execute("set transaction isolation level repeatable read")
    conn.execute("select set_config('work_mem', %s, true)", [BUILD_WORK_MEM])


def build_models(
    conn: psycopg.Connection,
    project: Project,
    models: Iterable[Model],
    vars: dict | None = None,
    on_model: Callable[[str, float], None] | None = None,
) -> list[tuple[str, float]]:
    """run_models' work inside the caller's transaction (see begin_build)."""
    from psycopg import sql

    selected = [model.name for model in models]
    conn.execute("select pg_advisory_xact_lock(%s)", [RUN_LOCK_ID])
    conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(SCHEMA)))
    existing = {name: rel.kind for name, rel in analytics_relations(conn).items()}
    names = _rebuild_set(conn, project, set(selected), existing)
    rendered = {name: render(project[name], "postgres", vars) for name in names}
    for name in sorted(names & set(existing)):
        kind = _RELKIND_DROP[existing[name]]
        conn.execute(
            sql.SQL("drop {} if exists {} cascade").format(
                sql.SQL(kind), sql.Identifier(SCHEMA, name)
            )
        )
    timings = []
    for name in project.order:
        if name not in names:
            continue
        model = project[name]
        started = time.perf_counter()
        _build_postgres(conn, model, rendered[name])
        elapsed = time.perf_counter() - started
        timings.append((name, elapsed))
        if on_model:
            on_model(name, elapsed)
    _record_builds(conn, rendered, vars)
    return timings


def run_models_duckdb(
    duck,
    project: Project,
    models: Iterable[Model],
    vars: dict | None = None,
    on_model: Callable[[str, float], None] | None = None,
) -> list[tuple[str, float]]:
    """Build models in schema analytics of a DuckDB connection (base tables in main)."""
    models = list(models)
    rendered = {model.name: render(model, "duckdb", vars) for model in models}
    timings = []
    duck.execute("begin transaction")
    try:
        duck.execute(f"create schema if not exists {SCHEMA}")
        for model in models:
            started = time.perf_counter()
            build_model_duckdb(duck, model, rendered[model.name])
            elapsed = time.perf_counter() - started
            timings.append((model.name, elapsed))
            if on_model:
                on_model(model.name, elapsed)
    except BaseException:
        duck.execute("rollback")
        raise
    duck.execute("commit")
    return timings


_RELKIND_DROP = {
    "v": "view",
    "r": "table",
    "m": "materialized view",
    "p": "table",
    "f": "foreign table",
}

_DEPENDENTS = """
with recursive dependents (oid) as (
    select unnest(%s::oid[])
    union
    select rewrite.ev_class
    from pg_depend as depend
    inner join pg_rewrite as rewrite
        on rewrite.oid = depend.objid
    inner join dependents
        on depend.refobjid = dependents.oid
    where depend.classid = 'pg_rewrite'::regclass
        and rewrite.ev_class <> dependents.oid
)
select
    namespace.nspname,
    class.relname
from dependents
inner join pg_class as class
    on class.oid = dependents.oid
inner join pg_namespace as namespace
    on namespace.oid = class.relnamespace
"""


@dataclass(frozen=True)
class Relation:
    """A relation in the analytics schema: its pg_class kind ('v' view, 'r' table...) and oid."""

    kind: str
    oid: int


def analytics_relations(conn) -> dict[str, Relation]:
    """The relations that exist in schema analytics, by name (the runner and the exporter)."""
    rows = conn.execute(
        """
        select class.relname, class.relkind, class.oid
        from pg_class as class
        inner join pg_namespace as namespace
            on namespace.oid = class.relnamespace
        where namespace.nspname = %s
            and class.relkind in ('r', 'v', 'm', 'p', 'f')
        """,
        [SCHEMA],
    ).fetchall()
    return {name: Relation(kind, oid) for name, kind, oid in rows}


def _rebuild_set(conn, project: Project, selected: set[str], existing: dict[str, str]) -> set[str]:
    """selected plus every existing model that depends on one of them (in the graph or the DB)."""
    names = set(selected)
    while True:
        grown = set(names)
        for name in names:
            grown |= {child for child in project.downstream(name) if child in existing}
        oids = [
            row[0]
            for row in conn.execute(
                "select oid from pg_class where relnamespace = %s::regnamespace "
                "and relname = any(%s)",
                [SCHEMA, sorted(grown & set(existing))],
            ).fetchall()
        ]
        for schema, relation in conn.execute(_DEPENDENTS, [oids]).fetchall():
            if schema != SCHEMA or relation not in project.models:
                depended = sorted(grown & set(existing))
                raise TrackerError(
                    f"{schema}.{relation} is not a model but depends on the models being "
                    f"rebuilt ({', '.join(depended)}). Drop it or move it out of the way, "
                    "then run again."
                )
            grown.add(relation)
        if grown == names:
            return names
        names = grown


def _build_postgres(conn, model: Model, rendered: str) -> None:
    import psycopg
    from psycopg import sql

    relation = sql.Identifier(SCHEMA, model.name)
    kind = sql.SQL(model.materialized)
    try:
        conn.execute(
            sql.SQL("create {} {} as\n").format(kind, relation) + sql.SQL(rendered.rstrip())
        )
    except psycopg.Error as exc:
        hint = "Fix the model and run again"
        if isinstance(exc, psycopg.errors.UndefinedTable) and model.depends_on:
            hint = f"Build what it reads first (--select +{model.name}) or fix the model"
        raise TrackerError(
            f'model "{model.name}" failed in the database ({model.display_path}): '
            f"{reason(exc)}. {hint}; the previous build is unchanged."
        ) from None
    actual = [
        row[0]
        for row in conn.execute(
            """
            select attname
            from pg_attribute
            where attrelid = %s::regclass
                and attnum > 0
                and not attisdropped
            order by attnum
            """,
            [f"{SCHEMA}.{model.name}"],
        ).fetchall()
    ]
    check_documented_columns(model, actual)
    conn.execute(
        sql.SQL("comment on {} {} is {}").format(kind, relation, sql.Literal(model.description))
    )
    for column, spec in model.columns.items():
        conn.execute(
            sql.SQL("comment on column {} is {}").format(
                sql.Identifier(SCHEMA, model.name, column), sql.Literal(spec["description"])
            )
        )


def build_model_duckdb(
    duck, model: Model, rendered: str | None = None, *, describe: bool = True
) -> None:
    """Create one model's view or table in DuckDB's analytics schema.

    describe: replace what is there, check the documented columns and write the comments, as
    `run_models_duckdb` does; `check` and `parity` build into a fresh database and check the
    columns of every model in one query, so they leave that out for speed.
    """
    import duckdb

    relation = f"{SCHEMA}.{quote_identifier(model.name)}"
    query = render(model, "duckdb") if rendered is None else rendered
    try:
        if describe:
            kind = _duckdb_relation_kind(duck, model.name)
            if kind:
                duck.execute(f"drop {kind} {relation}")
        duck.execute(f"create {model.materialized} {relation} as\n{query}")
    except duckdb.Error as exc:
        raise TrackerError(
            f'model "{model.name}" failed in DuckDB ({model.display_path}): '
            f"{reason(exc)}. Fix the model and run again."
        ) from None
    if not describe:
        return
    from tracker.pipeline.duck import table_columns

    check_documented_columns(model, list(table_columns(duck, model.name, SCHEMA)))
    duck.execute(
        f"comment on {model.materialized} {relation} is {sql_literal(model.description, 'duckdb')}"
    )
    for column, spec in model.columns.items():
        duck.execute(
            f"comment on column {relation}.{quote_identifier(column)} is "
            f"{sql_literal(spec['description'], 'duckdb')}"
        )


def _duckdb_relation_kind(duck, name: str) -> str | None:
    """'view' or 'table' for a relation in DuckDB's analytics schema; None when absent."""
    row = duck.execute(
        "select table_type from information_schema.tables "
        "where table_schema = ? and table_name = ?",
        [SCHEMA, name],
    ).fetchone()
    return None if row is None else "view" if row[0] == "VIEW" else "table"


def check_documented_columns(model: Model, actual: list[str]) -> None:
    """A model whose config() documents a column its SELECT does not return is an error."""
    missing = [column for column in model.columns if column not in actual]
    if missing:
        raise TrackerError(
            f'model "{model.name}" documents column "{missing[0]}" that its SELECT does '
            f"not return ({model.display_path}; it returns {', '.join(actual)}). "
            "Fix the config() or the SELECT."
        )


# --- what was built from which SQL: missing and stale models --------------------------------

# Where each build records the SQL it ran; created on first use, like schema analytics.
STATE_SCHEMA = "tracker_state"
_STATE_DDL = (
    f"create schema if not exists {STATE_SCHEMA}",
    f"""create table if not exists {STATE_SCHEMA}.model_builds (
        model text primary key,
        sql_sha256 text not null,
        vars jsonb not null,
        built_at timestamptz not null default now()
    )""",
)


def _record_builds(conn, rendered: dict[str, str], vars: dict | None) -> None:
    """Record the sha256 of each rebuilt model's SQL (and the vars), in the build's transaction."""
    for statement in _STATE_DDL:
        conn.execute(statement)
    names = sorted(rendered)
    conn.execute(
        f"""
        insert into {STATE_SCHEMA}.model_builds as builds (model, sql_sha256, vars)
        select model, sql_sha256, %s::jsonb
        from unnest(%s::text[], %s::text[]) as built (model, sql_sha256)
        on conflict (model) do update
            set sql_sha256 = excluded.sql_sha256, vars = excluded.vars, built_at = now()
        """,
        [_vars_json(vars), names, [text_sha256(rendered[name]) for name in names]],
    )


def _vars_json(vars: dict | None) -> str:
    """vars as JSON text with every number exact (a Decimal is written as its digits)."""
    return (
        "{"
        + ", ".join(
            f"{json.dumps(name)}: "
            + (str(value) if isinstance(value, Decimal) else json.dumps(value))
            for name, value in (vars or {}).items()
        )
        + "}"
    )


def _vars_from_json(text: str | None) -> dict | None:
    """The vars _vars_json wrote, numbers with a fraction back as Decimal; None when empty."""
    return json.loads(text, parse_float=Decimal) or None if text else None


def stale_models(conn, project: Project, models: Iterable[Model]) -> list[str]:
    """The models (and what they read) that are missing in analytics, or were built from SQL
    other than what queries/ renders now (with the vars they were built with)."""
    needed = set()
    for model in models:
        needed |= project.upstream(model.name) | {model.name}
    existing = analytics_relations(conn)
    recorded: dict[str, tuple[str, str]] = {}
    if conn.execute("select to_regclass(%s)", [f"{STATE_SCHEMA}.model_builds"]).fetchone()[0]:
        recorded = {
            name: (digest, model_vars)
            for name, digest, model_vars in conn.execute(
                f"select model, sql_sha256, cast(vars as text) from {STATE_SCHEMA}.model_builds"
            ).fetchall()
        }
    stale = []
    for name in project.order:
        if name not in needed:
            continue
        if name not in existing or name not in recorded:
            stale.append(name)
            continue
        digest, model_vars = recorded[name]
        if text_sha256(render(project[name], "postgres", _vars_from_json(model_vars))) != digest:
            stale.append(name)
    return stale


def ensure_built(
    conn,
    project: Project,
    models: Iterable[Model],
    on_model: Callable[[str, float], None] | None = None,
) -> list[tuple[str, float]]:
    """Build whatever models (or what they read) are missing or stale, in one transaction.

    A stale model is rebuilt with the vars it was last built with. Nothing to do: no change.
    """
    models = list(models)
    with conn.transaction():
        begin_build(conn)
        conn.execute("select pg_advisory_xact_lock(%s)", [RUN_LOCK_ID])
        stale = stale_models(conn, project, models)
        if not stale:
            return []
        recorded_vars = _recorded_vars(conn, stale)
        return build_models(
            conn, project, [project[name] for name in stale], recorded_vars, on_model
        )


def _recorded_vars(conn, names: list[str]) -> dict | None:
    if not conn.execute("select to_regclass(%s)", [f"{STATE_SCHEMA}.model_builds"]).fetchone()[0]:
        return None
    row = conn.execute(
        f"select cast(vars as text) from {STATE_SCHEMA}.model_builds where model = any(%s) "
        "order by built_at desc limit 1",
        [names],
    ).fetchone()
    return _vars_from_json(row[0]) if row else None
