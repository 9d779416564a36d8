"""The model graph: discover the Jinja SQL models in queries/, render them, build them.

A model is one SELECT in queries/<layer>/<name>.sql (layers: staging, marts). Its name is
the file stem, the relation it becomes (analytics.<name>) and its export file name. The
template may call:

    {{ config(materialized='view'|'table', description=..., columns={...}, unique_key=[...],
              order_by=[...], export=True|False) }}   settings, renders to nothing
    {{ ref('model') }}        another model's relation: analytics.model
    {{ source('table') }}     a base table: public.table (PostgreSQL) or main.table (DuckDB)
    {{ var('name', default) }} a run-time value, always rendered as a quoted SQL literal
    {{ target.engine }}       'postgres' or 'duckdb'; macros from queries/macros/*.sql branch on it

Dependencies are discovered by rendering each template once with a recording ref() (as
carbonfact/lea does), and ordered with graphlib.TopologicalSorter.

API (shared with the exporter and the checks):
    load_project(queries_dir=config.QUERIES_DIR) -> Project
        Project.models (name -> Model, in dependency order), Project.order, Project.select(spec)
        Model: .name .path .layer .config .depends_on .sources .description .materialized
               .columns (name -> {'description', 'tests', 'pii'}) .unique_key .order_by .export
    render(model, engine='postgres', vars=None) -> str           plain SQL, one SELECT
    render_file(project, path, engine='postgres', vars=None) -> str   any other template
    run_models(conn, project, models, vars=None, on_model=None)   PostgreSQL, one transaction
        -> list of (name, seconds); on_model(name, seconds) after each model is built
    run_models_duckdb(duck, project, models, vars=None, on_model=None)   the same for DuckDB
    compile_models(project, models, out_dir, engine='postgres', vars=None) -> list of paths
"""

from __future__ import annotations

import difflib
import graphlib
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

from tracker.errors import InputError, TrackerError
from tracker.plumbing import config

if TYPE_CHECKING:  # psycopg is imported where a database is used: DuckDB-only runs start faster
    import psycopg

SCHEMA = "analytics"
ENGINES = ("postgres", "duckdb", "spark")
LAYERS = ("staging", "marts")
SOURCE_TABLES = ("users", "categories", "budgets", "expenses", "alerts", "budget_spending")
SOURCE_SCHEMAS = {"postgres": "public", "duckdb": "main", "spark": "lake"}
CONFIG_KEYS = ("materialized", "description", "columns", "unique_key", "order_by", "export")
COLUMN_KEYS = ("description", "tests", "pii")
MATERIALIZATIONS = ("view", "table")
NAME_PATTERN = re.compile(r"^[a-z_][a-z0-9_]*$")
# Serializes concurrent `run`s on one database; a different id from the migration lock.
RUN_LOCK_ID = 7_240_517_002
# work_mem of a build or test transaction: a million expenses aggregate in memory.
BUILD_WORK_MEM = "256MB"

_MISSING = object()


@dataclass
class Target:
    """What a template sees as `target`."""

    engine: str
    schema: str = SCHEMA


@dataclass(eq=False)
class Model:
    """One model file: its settings and what it refers to."""

    name: str
    path: Path
    layer: str
    config: dict
    depends_on: frozenset[str]
    sources: frozenset[str]
    display_path: str
    project: Project = field(repr=False)

    @property
    def description(self) -> str:
        return self.config.get("description", "")

    @property
    def materialized(self) -> str:
        return self.config.get("materialized", "view")

    @property
    def columns(self) -> dict[str, dict]:
        return self.config.get("columns", {})

    @property
    def unique_key(self) -> list[str]:
        return list(self.config.get("unique_key", []))

    @property
    def order_by(self) -> list[str]:
        return list(self.config.get("order_by") or self.config.get("unique_key") or [])

    @property
    def export(self) -> bool:
        return bool(self.config.get("export", self.layer == "marts"))

    @property
    def pii_columns(self) -> list[str]:
        return [name for name, column in self.columns.items() if column.get("pii")]

    @property
    def relation(self) -> str:
        return f"{SCHEMA}.{self.name}"


class Project:
    """All models of a queries/ directory, in dependency order."""

    def __init__(
        self,
        queries_dir: Path,
        models: dict[str, Model],
        order: list[str],
        environment: jinja2.Environment,
        macros: jinja2.Template | None,
    ):
        self.queries_dir = queries_dir
        self.models = {name: models[name] for name in order}
        self.order = order
        self.environment = environment
        self.macros = macros
        # Compiled templates by source text: a file is compiled once, not on every render.
        self.templates: dict[str, jinja2.Template] = {}

    def __getitem__(self, name: str) -> Model:
        return self.models[name]

    def upstream(self, name: str) -> set[str]:
        """Every model `name` reads from, directly or not."""
        seen: set[str] = set()
        pending = list(self.models[name].depends_on)
        while pending:
            current = pending.pop()
            if current not in seen:
                seen.add(current)
                pending.extend(self.models[current].depends_on)
        return seen

    def downstream(self, name: str) -> set[str]:
        """Every model that reads from `name`, directly or not."""
        children: dict[str, set[str]] = {other: set() for other in self.models}
        for model in self.models.values():
            for parent in model.depends_on:
                children[parent].add(model.name)
        seen: set[str] = set()
        pending = list(children[name])
        while pending:
            current = pending.pop()
            if current not in seen:
                seen.add(current)
                pending.extend(children[current])
        return seen

    def select(self, spec: str | None = None) -> list[Model]:
        """Models chosen by spec, in dependency order; None or '' means all.

        spec is a comma or space separated list of `name`, `+name` (with everything it
        reads from) or `name+` (with everything that reads from it).
        """
        tokens = [token for token in re.split(r"[,\s]+", spec or "") if token]
        if not tokens:
            return list(self.models.values())
        chosen: set[str] = set()
        for token in tokens:
            name = token.strip("+")
            if name not in self.models:
                raise InputError(
                    f'Error: --select "{spec}" names unknown model "{name}".'
                    f" {_did_you_mean(name, self.models)}"
                )
            chosen.add(name)
            if token.startswith("+"):
                chosen |= self.upstream(name)
            if token.endswith("+"):
                chosen |= self.downstream(name)
        return [self.models[name] for name in self.order if name in chosen]


def load_project(queries_dir: Path | str | None = None) -> Project:
    """Discover, configure and order every model under queries_dir."""
    queries_dir = Path(queries_dir or config.QUERIES_DIR)
    environment = _environment()
    macros = _load_macros(environment, queries_dir)
    project = Project(queries_dir, {}, [], environment, macros)
    models: dict[str, Model] = {}
    for layer in LAYERS:
        for path in sorted((queries_dir / layer).glob("*.sql")):
            model = _discover_model(project, path, layer)
            if model.name in models:
                raise TrackerError(
                    f'Error: two models are named "{model.name}" '
                    f"({models[model.name].display_path} and {model.display_path}). "
                    "Rename one of the files."
                )
            models[model.name] = model
    for model in models.values():
        for name in sorted(model.depends_on):
            if name not in models:
                raise TrackerError(
                    f'Error: model "{model.name}" refers to unknown model "{name}" '
                    f"({model.display_path}). {_did_you_mean(name, models)}"
                )
    order = _dependency_order(models)
    project.models = {name: models[name] for name in order}
    project.order = order
    return project


def render(model: Model, engine: str = "postgres", vars: dict | None = None) -> str:
    """The model as plain SQL for engine, with vars rendered as quoted literals."""
    if engine not in ENGINES:
        raise InputError(f'Error: unknown engine "{engine}". Use one of: {", ".join(ENGINES)}.')
    return _render(model.project, model.path, model.name, engine, vars or {}, recorder=None)


def inline_sql(
    project: Project, name: str, engine: str = "postgres", vars: dict | None = None
) -> str:
    """One statement computing model `name` straight from the base tables.

    The model and every model it reads from are rendered and inlined as CTEs (each ref()
    pointed at its CTE), so the result is current whatever `run` last built: the marts are
    tables, and a reader that must see the newest rows (the lake, the API) uses this.
    """
    needed = project.upstream(name) | {name}
    pattern = re.compile(rf"\b{re.escape(SCHEMA)}\.([a-z_][a-z0-9_]*)\b")
    parts = []
    for model_name in project.order:
        if model_name not in needed:
            continue
        rendered = pattern.sub(
            lambda match: (
                f'"model__{match.group(1)}"' if match.group(1) in needed else match.group(0)
            ),
            render(project[model_name], engine, vars),
        )
        parts.append(f'"model__{model_name}" as (\n{rendered}\n)')
    return "with " + ",\n".join(parts) + f'\nselect * from "model__{name}"'


def render_file(
    project: Project, path: Path | str, engine: str = "postgres", vars: dict | None = None
) -> str:
    """Any template (e.g. a data test in queries/tests/) rendered with the project's macros and
    models; an unknown ref() is an error naming the file."""
    if engine not in ENGINES:
        raise InputError(f'Error: unknown engine "{engine}". Use one of: {", ".join(ENGINES)}.')
    path = Path(path)
    return _render(project, path, path.stem, engine, vars or {}, recorder=None)


def compile_models(
    project: Project,
    models: Iterable[Model],
    out_dir: Path | str,
    engine: str = "postgres",
    vars: dict | None = None,
) -> list[Path]:
    """Write each model's rendered SQL to out_dir/<name>.sql; the paths written."""
    rendered = [(model, render(model, engine, vars)) for model in models]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for model, text in rendered:
        path = out_dir / f"{model.name}.sql"
        header = f"-- Compiled from {model.display_path} for {engine}; do not edit.\n"
        path.write_text(header + text, encoding="utf-8")
        paths.append(path)
    return paths


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
            _build_duckdb(duck, model, rendered[model.name])
            elapsed = time.perf_counter() - started
            timings.append((model.name, elapsed))
            if on_model:
                on_model(model.name, elapsed)
    except BaseException:
        duck.execute("rollback")
        raise
    duck.execute("commit")
    return timings


def sql_literal(value, engine: str = "postgres") -> str:
    """value as a quoted SQL literal for engine; only scalars are accepted."""
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"Error: var value {value!r} is not a finite number. Pass a number.")
    if not (value is None or isinstance(value, (str, bool, int, float, Decimal))):
        raise InputError(
            f"Error: var value {value!r} is not a string, number, boolean or null. "
            "Pass a scalar JSON value for each var."
        )
    if engine == "postgres":
        from psycopg import sql

        return sql.Literal(value).as_string(None).strip()
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    if "\x00" in value:
        raise InputError("Error: a var value contains a NUL character. Remove it.")
    if engine == "spark":
        # Spark reads backslash escapes in string literals: escape the backslash itself too.
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    # DuckDB string literals have no backslash escapes: doubling quotes is the whole rule.
    return "'" + value.replace("'", "''") + "'"


# --- discovery ---------------------------------------------------------------------------


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _load_macros(environment: jinja2.Environment, queries_dir: Path) -> jinja2.Template | None:
    paths = sorted((queries_dir / "macros").glob("*.sql"))
    texts = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        try:
            environment.parse(text)
        except jinja2.TemplateSyntaxError as exc:
            raise TrackerError(
                f"Error: macro file {_display(path, queries_dir)} has a template error on line "
                f"{exc.lineno}: {exc.message}. Fix the Jinja syntax."
            ) from None
        texts.append(text)
    # One module for all files, so a macro can call a macro from another file.
    return environment.from_string("\n".join(texts)) if texts else None


def _discover_model(project: Project, path: Path, layer: str) -> Model:
    name = path.stem
    display = _display(path, project.queries_dir)
    if not NAME_PATTERN.match(name):
        raise TrackerError(
            f"Error: model file {display} is not a valid model name (lowercase letters, digits "
            "and underscores, not starting with a digit). Rename the file."
        )
    recorder: dict = {"refs": set(), "sources": set(), "config": None}
    _render(project, path, name, "postgres", {}, recorder=recorder)
    model_config = _normalize_config(recorder["config"] or {}, name, display)
    return Model(
        name=name,
        path=path,
        layer=layer,
        config=model_config,
        depends_on=frozenset(recorder["refs"]),
        sources=frozenset(recorder["sources"]),
        display_path=display,
        project=project,
    )


def _normalize_config(raw: dict, name: str, display: str) -> dict:
    def fail(what: str) -> TrackerError:
        return TrackerError(f'Error: model "{name}" has {what} ({display}). Fix its config().')

    unknown = [key for key in raw if key not in CONFIG_KEYS]
    if unknown:
        raise fail(f'an unknown config key "{unknown[0]}" (known: {", ".join(CONFIG_KEYS)})')
    result = dict(raw)
    if result.get("materialized", "view") not in MATERIALIZATIONS:
        raise fail(f'materialized="{result["materialized"]}" (use view or table)')
    columns = {}
    for column, spec in (raw.get("columns") or {}).items():
        if isinstance(spec, str):
            spec = {"description": spec}
        if not isinstance(spec, dict):
            raise fail(f'a column "{column}" that is neither a description nor a dict')
        bad = [key for key in spec if key not in COLUMN_KEYS]
        if bad:
            raise fail(f'an unknown key "{bad[0]}" in column "{column}"')
        columns[column] = {
            "description": spec.get("description", ""),
            "tests": list(spec.get("tests", [])),
            "pii": bool(spec.get("pii", False)),
        }
    result["columns"] = columns
    for key in ("unique_key", "order_by"):
        if key in result:
            value = result[key]
            result[key] = [value] if isinstance(value, str) else list(value)
            missing = [column for column in result[key] if columns and column not in columns]
            if missing:
                raise fail(f'{key} column "{missing[0]}" that is not among its columns')
    return result


def _dependency_order(models: dict[str, Model]) -> list[str]:
    sorter = graphlib.TopologicalSorter({name: model.depends_on for name, model in models.items()})
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = exc.args[1]
        chain = " -> ".join(f'"{name}" ({models[name].display_path})' for name in cycle[:-1])
        raise TrackerError(
            f'Error: models refer to each other in a cycle: {chain} -> "{cycle[-1]}". '
            "Remove one of these ref() calls."
        ) from None
    order = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        order.extend(ready)
        sorter.done(*ready)
    return order


# --- rendering ---------------------------------------------------------------------------


def _render(
    project: Project, path: Path, name: str, engine: str, vars: dict, recorder: dict | None
) -> str:
    display = _display(path, project.queries_dir)
    target = Target(engine)

    def ref(model_name: str) -> str:
        if recorder is not None:
            recorder["refs"].add(model_name)
        elif model_name not in project.models:
            raise TrackerError(
                f'Error: model "{name}" refers to unknown model "{model_name}" ({display}). '
                f"{_did_you_mean(model_name, project.models)}"
            )
        return f"{SCHEMA}.{model_name}"

    def source(table: str) -> str:
        if table not in SOURCE_TABLES:
            raise TrackerError(
                f'Error: model "{name}" refers to unknown source table "{table}" ({display}). '
                f"{_did_you_mean(table, SOURCE_TABLES)}"
            )
        if recorder is not None:
            recorder["sources"].add(table)
        return f"{SOURCE_SCHEMAS[engine]}.{table}"

    def config_(**settings) -> str:
        if recorder is not None:
            if recorder["config"] is not None:
                raise TrackerError(
                    f'Error: model "{name}" calls config() twice ({display}). '
                    "Merge the settings into one call."
                )
            recorder["config"] = settings
        return ""

    def var(var_name: str, default=_MISSING) -> str:
        if recorder is not None:
            # Discovery keeps only refs and config; the text (and quoting) is thrown away.
            return "null"
        if var_name in vars:
            return sql_literal(vars[var_name], engine)
        if default is not _MISSING:
            return sql_literal(default, engine)
        if recorder is not None:
            return "null"
        raise InputError(
            f'Error: model "{name}" needs var "{var_name}" ({display}). '
            f"Pass it with --vars '{{\"{var_name}\": ...}}'."
        )

    context = {
        "ref": ref,
        "source": source,
        "config": config_,
        "var": var,
        "target": target,
        "this": f"{SCHEMA}.{name}",
    }
    try:
        text = path.read_text(encoding="utf-8")
        template = project.templates.get(text)
        if template is None:
            template = project.environment.from_string(text)
            project.templates[text] = template
        if project.macros is not None:
            module = project.macros.make_module({"target": target, "var": var})
            macros = {key: getattr(module, key) for key in dir(module) if not key.startswith("_")}
            context = {**macros, **context}
        text = template.render(context)
    except jinja2.TemplateSyntaxError as exc:
        raise TrackerError(
            f'Error: model "{name}" has a template error on line {exc.lineno} ({display}): '
            f"{exc.message}. Fix the Jinja syntax."
        ) from None
    except TrackerError:
        raise
    except jinja2.UndefinedError as exc:
        raise TrackerError(
            f'Error: model "{name}" uses something undefined ({display}): {exc.message}. '
            "Check the spelling of macros and variables."
        ) from None
    except Exception as exc:
        raise TrackerError(
            f'Error: model "{name}" failed to render ({display}): {type(exc).__name__}: {exc}. '
            "Fix the template."
        ) from None
    return _tidy(text)


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    tidy: list[str] = []
    for line in lines:
        if line or (tidy and tidy[-1]):
            tidy.append(line)
    return "\n".join(tidy) + "\n"


# --- building ----------------------------------------------------------------------------

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
                    f"Error: {schema}.{relation} is not a model but depends on the models being "
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
            f'Error: model "{model.name}" failed in the database ({model.display_path}): '
            f"{_first_line(exc)}. {hint}; the previous build is unchanged."
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
    _check_documented_columns(model, actual)
    conn.execute(
        sql.SQL("comment on {} {} is {}").format(kind, relation, sql.Literal(model.description))
    )
    for column, spec in model.columns.items():
        conn.execute(
            sql.SQL("comment on column {} is {}").format(
                sql.Identifier(SCHEMA, model.name, column), sql.Literal(spec["description"])
            )
        )


def _build_duckdb(duck, model: Model, rendered: str) -> None:
    import duckdb

    row = duck.execute(
        "select table_type from information_schema.tables "
        "where table_schema = ? and table_name = ?",
        [SCHEMA, model.name],
    ).fetchone()
    try:
        if row:
            duck.execute(f"drop {'view' if row[0] == 'VIEW' else 'table'} {SCHEMA}.{model.name}")
        duck.execute(f"create {model.materialized} {SCHEMA}.{model.name} as\n{rendered}")
    except duckdb.Error as exc:
        raise TrackerError(
            f'Error: model "{model.name}" failed in DuckDB ({model.display_path}): '
            f"{_first_line(exc)}. Fix the model and run again."
        ) from None
    actual = [
        row[0]
        for row in duck.execute(
            "select column_name from information_schema.columns "
            "where table_schema = ? and table_name = ? order by ordinal_position",
            [SCHEMA, model.name],
        ).fetchall()
    ]
    _check_documented_columns(model, actual)
    duck.execute(
        f"comment on {model.materialized} {SCHEMA}.{model.name} is "
        f"{sql_literal(model.description, 'duckdb')}"
    )
    for column, spec in model.columns.items():
        quoted = '"' + column.replace('"', '""') + '"'
        duck.execute(
            f"comment on column {SCHEMA}.{model.name}.{quoted} is "
            f"{sql_literal(spec['description'], 'duckdb')}"
        )


def _check_documented_columns(model: Model, actual: list[str]) -> None:
    missing = [column for column in model.columns if column not in actual]
    if missing:
        raise TrackerError(
            f'Error: model "{model.name}" documents column "{missing[0]}" that its SELECT does '
            f"not return ({model.display_path}; it returns {', '.join(actual)}). "
            "Fix the config() or the SELECT."
        )


# --- helpers -----------------------------------------------------------------------------


def _did_you_mean(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    if close:
        return f'Did you mean "{close[0]}"?'
    return "Check the name against the files in queries/."


def _display(path: Path, queries_dir: Path) -> str:
    try:
        return str(path.relative_to(queries_dir.parent))
    except ValueError:
        return str(path)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0].strip().rstrip(".")
