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
    (building them: tracker.pipeline.runner: run_models, run_models_duckdb, ensure_built)
    compile_models(project, models, out_dir, engine='postgres', vars=None) -> list of paths
"""

from __future__ import annotations

import difflib
import graphlib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from tracker.errors import InputError, TrackerError
from tracker.pipeline import template_cache
from tracker.plumbing import config

if TYPE_CHECKING:  # psycopg is imported where a database is used: DuckDB-only runs start faster
    pass

SCHEMA = "analytics"
ENGINES = ("postgres", "duckdb", "spark")
LAYERS = ("staging", "marts")
SOURCE_TABLES = ("users", "categories", "budgets", "expenses", "alerts", "budget_spending")
SOURCE_SCHEMAS = {"postgres": "public", "duckdb": "main", "spark": "lake"}
CONFIG_KEYS = ("materialized", "description", "columns", "unique_key", "order_by", "export")
COLUMN_KEYS = ("description", "tests", "pii")
MATERIALIZATIONS = ("view", "table")
NAME_PATTERN = re.compile(r"^[a-z_][a-z0-9_]*$")
_MISSING = object()

# What chooses models: one spec string, or several (a repeated --select); None means all.
Selection = str | Iterable[str] | None


def selection_text(spec: Selection) -> str:
    """A Selection as one spec string ('' for all)."""
    if spec is None or isinstance(spec, str):
        return spec or ""
    return " ".join(spec)


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

    def select(self, spec: Selection = None) -> list[Model]:
        """Models chosen by spec, in dependency order; None, '' or () means all.

        spec is a comma or space separated list of `name`, `+name` (with everything it
        reads from) or `name+` (with everything that reads from it), or several such
        strings (a repeated --select).
        """
        spec = selection_text(spec)
        tokens = [token for token in re.split(r"[,\s]+", spec) if token]
        if not tokens:
            return list(self.models.values())
        chosen: set[str] = set()
        for token in tokens:
            name = token.strip("+")
            if name not in self.models:
                raise InputError(
                    f'--select "{spec}" names unknown model "{name}".'
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
                    f'two models are named "{model.name}" '
                    f"({models[model.name].display_path} and {model.display_path}). "
                    "Rename one of the files."
                )
            models[model.name] = model
    for model in models.values():
        for name in sorted(model.depends_on):
            if name not in models:
                raise TrackerError(
                    f'model "{model.name}" refers to unknown model "{name}" '
                    f"({model.display_path}). {_did_you_mean(name, models)}"
                )
    order = _dependency_order(models)
    project.models = {name: models[name] for name in order}
    project.order = order
    return project


def render(model: Model, engine: str = "postgres", vars: dict | None = None) -> str:
    """The model as plain SQL for engine, with vars rendered as quoted literals."""
    if engine not in ENGINES:
        raise InputError(f'unknown engine "{engine}". Use one of: {", ".join(ENGINES)}.')
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
        raise InputError(f'unknown engine "{engine}". Use one of: {", ".join(ENGINES)}.')
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


def sql_literal(value, engine: str = "postgres") -> str:
    """value as a quoted SQL literal for engine; only scalars are accepted."""
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"var value {value!r} is not a finite number. Pass a number.")
    if not (value is None or isinstance(value, (str, bool, int, float, Decimal))):
        raise InputError(
            f"var value {value!r} is not a string, number, boolean or null. "
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
        raise InputError("a var value contains a NUL character. Remove it.")
    if engine == "spark":
        # Spark reads backslash escapes in string literals: escape the backslash itself too.
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    # DuckDB string literals have no backslash escapes: doubling quotes is the whole rule.
    return "'" + value.replace("'", "''") + "'"


# --- discovery ---------------------------------------------------------------------------


# Every option of the Environment: they shape the compiled code, so they key its cache too.
ENVIRONMENT_OPTIONS: dict[str, Any] = {
    "undefined": jinja2.StrictUndefined,
    "autoescape": False,
    "keep_trailing_newline": True,
    "trim_blocks": True,
    "lstrip_blocks": True,
}


def _environment() -> jinja2.Environment:
    return jinja2.Environment(**ENVIRONMENT_OPTIONS)


def _load_macros(environment: jinja2.Environment, queries_dir: Path) -> jinja2.Template | None:
    paths = sorted((queries_dir / "macros").glob("*.sql"))
    texts = [path.read_text(encoding="utf-8") for path in paths]
    if not texts:
        return None

    def check_each_file() -> None:
        for path, text in zip(paths, texts, strict=True):
            try:
                environment.parse(text)
            except jinja2.TemplateSyntaxError as exc:
                raise TrackerError(
                    f"macro file {display_path(path, queries_dir)} has a template error on "
                    f"line {exc.lineno}: {exc.message}. Fix the Jinja syntax."
                ) from None

    # One module for all files, so a macro can call a macro from another file.
    return template_cache.compiled(environment, ENVIRONMENT_OPTIONS, texts, check_each_file)


def _discover_model(project: Project, path: Path, layer: str) -> Model:
    name = path.stem
    display = display_path(path, project.queries_dir)
    if not NAME_PATTERN.match(name):
        raise TrackerError(
            f"model file {display} is not a valid model name (lowercase letters, digits "
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
        return TrackerError(f'model "{name}" has {what} ({display}). Fix its config().')

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
            f'models refer to each other in a cycle: {chain} -> "{cycle[-1]}". '
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
    display = display_path(path, project.queries_dir)
    target = Target(engine)

    def ref(model_name: str) -> str:
        if recorder is not None:
            recorder["refs"].add(model_name)
        elif model_name not in project.models:
            raise TrackerError(
                f'model "{name}" refers to unknown model "{model_name}" ({display}). '
                f"{_did_you_mean(model_name, project.models)}"
            )
        return f"{SCHEMA}.{model_name}"

    def source(table: str) -> str:
        if table not in SOURCE_TABLES:
            raise TrackerError(
                f'model "{name}" refers to unknown source table "{table}" ({display}). '
                f"{_did_you_mean(table, SOURCE_TABLES)}"
            )
        if recorder is not None:
            recorder["sources"].add(table)
        return f"{SOURCE_SCHEMAS[engine]}.{table}"

    def config_(**settings) -> str:
        if recorder is not None:
            if recorder["config"] is not None:
                raise TrackerError(
                    f'model "{name}" calls config() twice ({display}). '
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
            f'model "{name}" needs var "{var_name}" ({display}). '
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
            template = template_cache.compiled(project.environment, ENVIRONMENT_OPTIONS, [text])
            project.templates[text] = template
        if project.macros is not None:
            module = project.macros.make_module({"target": target, "var": var})
            macros = {key: getattr(module, key) for key in dir(module) if not key.startswith("_")}
            context = {**macros, **context}
        text = template.render(context)
    except jinja2.TemplateSyntaxError as exc:
        raise TrackerError(
            f'model "{name}" has a template error on line {exc.lineno} ({display}): '
            f"{exc.message}. Fix the Jinja syntax."
        ) from None
    except TrackerError:
        raise
    except jinja2.UndefinedError as exc:
        raise TrackerError(
            f'model "{name}" uses something undefined ({display}): {exc.message}. '
            "Check the spelling of macros and variables."
        ) from None
    except Exception as exc:
        raise TrackerError(
            f'model "{name}" failed to render ({display}): {type(exc).__name__}: {exc}. '
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


# --- helpers -----------------------------------------------------------------------------


def _did_you_mean(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    if close:
        return f'Did you mean "{close[0]}"?'
    return "Check the name against the files in queries/."


def display_path(path: Path, queries_dir: Path) -> str:
    """path relative to the project folder (queries_dir's parent), for messages."""
    try:
        return str(path.relative_to(queries_dir.parent))
    except ValueError:
        return str(path)
