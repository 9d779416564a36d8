"""verify: prove an export right by recounting it three ways, independently of the exporter.

For every file listed in DIR/manifest.json the row count and the money sums are computed
again (1) in PostgreSQL from the analytics relation, (2) in DuckDB from the exported file
itself (CSV read with the manifest's column types, or Parquet), and compared with (3) the
manifest; the file's sha256 and size are checked against the manifest too. A missing,
truncated or edited file, or a database that changed since the export, is a problem that
names the file and both numbers. scripts/verify.sh does the same with psql, awk and sha256sum.
"""

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from tracker.errors import InputError, TrackerError

SCHEMA = "analytics"
MANIFEST = "manifest.json"
CHUNK_BYTES = 1 << 20

# format_type() names in a CSV entry of the manifest -> the DuckDB type to read them as.
_CSV_TYPES = {
    "bigint": "BIGINT",
    "integer": "INTEGER",
    "smallint": "SMALLINT",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp with time zone": "TIMESTAMPTZ",
    "timestamp without time zone": "TIMESTAMP",
    "double precision": "DOUBLE",
}


@dataclass
class FileCheck:
    """One exported file recounted: the three counts and any problem found."""

    path: str
    model: str
    format: str
    manifest_rows: int | None
    postgres_rows: int | None = None
    duckdb_rows: int | None = None
    sha256_ok: bool | None = None
    sums_ok: bool | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class VerifyReport:
    """Every file of the manifest, checked."""

    out_dir: Path
    files: list[FileCheck]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.files)


def read_manifest(out_dir: Path | str) -> dict:
    """DIR/manifest.json as a dict; a missing or unreadable one is an error."""
    path = Path(out_dir) / MANIFEST
    if not path.exists():
        raise InputError(
            f"{path} does not exist. Export first (`python cli.py export`) or pass "
            "the export's folder with --dir."
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TrackerError(
            f"{path} is not valid JSON ({exc}). Export again to rewrite it."
        ) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        raise TrackerError(f"{path} has no list of files. Export again to rewrite it.")
    return manifest


def verify_export(
    url: str,
    out_dir: Path | str,
    on_file: Callable[[FileCheck], None] | None = None,
    only: list[str] | tuple[str, ...] = (),
) -> VerifyReport:
    """Check every file in out_dir's manifest against PostgreSQL and DuckDB.

    A lake (export --lake) is checked per partition: PostgreSQL recounts the partition's
    month of the fact. only: manifest paths or folder prefixes (one partition, one fact) to
    check on their own; the rest of the manifest is not read from disk.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    entries = manifest["files"]
    lake = manifest.get("generator") == LAKE_GENERATOR
    if only:
        entries = [
            entry
            for entry in entries
            if any(_under(entry.get("path", ""), prefix) for prefix in only)
        ]
        if not entries:
            raise InputError(
                f"{', '.join(only)} names no file in {out_dir / MANIFEST}. Pass a path "
                "as the manifest lists it, e.g. fact_expenses/year=2025/month=2025-05-01."
            )
    checks = []
    # path -> (rows, sums), or why PostgreSQL could not count it (None: no such model there)
    in_postgres: Mapping[Any, tuple | str | None]
    if lake:
        checks += _lake_layout_problems(out_dir, manifest, bool(only))
        in_postgres = _lake_postgres_stats(url, entries)
    else:
        model_stats = _postgres_stats(url, entries)
        in_postgres = {entry.get("path"): model_stats.get(entry.get("model")) for entry in entries}
    from tracker.pipeline import duck as duck_module

    duck = duck_module.connect()
    try:
        for check in checks:
            if on_file:
                on_file(check)
        for entry in entries:
            check = _check_file(duck, out_dir, entry, in_postgres.get(entry.get("path")))
            checks.append(check)
            if on_file:
                on_file(check)
    finally:
        duck.close()
    return VerifyReport(out_dir, checks, time.perf_counter() - started)


# --- the lake: per partition ------------------------------------------------------------------

LAKE_GENERATOR = "smart-spending-tracker export --lake"
LAKE_JOURNAL = ".lake-journal.json"


def _under(path: str, prefix: str) -> bool:
    prefix = prefix.strip().strip("/")
    return bool(prefix) and (path == prefix or path.startswith(prefix + "/"))


def _lake_layout_problems(out_dir: Path, manifest: dict, partial: bool) -> list[FileCheck]:
    """An unfinished export, and (for a whole-lake check) Parquet files the manifest lacks."""
    problems = []
    if (out_dir / LAKE_JOURNAL).exists():
        check = FileCheck(LAKE_JOURNAL, "", "journal", None)
        check.problems.append(
            "a lake export was interrupted after it committed; run `python cli.py export "
            "--lake` again to finish it"
        )
        problems.append(check)
    if partial:
        return problems
    listed = {entry.get("path") for entry in manifest["files"]}
    tables = manifest.get("tables") or {}
    for name, table in tables.items():
        root = out_dir / table.get("path", name)
        found = root.rglob("*.parquet") if root.is_dir() else []
        for path in sorted(found):
            relative = str(path.relative_to(out_dir))
            if relative not in listed and not any(part.startswith(".") for part in path.parts):
                check = FileCheck(relative, name, "parquet", None)
                check.problems.append(
                    f"{relative} is not in the manifest: readers would count "
                    "its rows; export the lake again with --full"
                )
                problems.append(check)
    return problems


def _lake_postgres_stats(url: str, entries: list[dict]) -> dict[str, tuple | str]:
    """path -> (rows, {money column: sum}) of that partition (or dimension) in PostgreSQL."""
    import psycopg
    from psycopg import sql

    from tracker.pipeline.models import inline_sql, load_project
    from tracker.plumbing.db import connect

    by_model: dict[str, list[dict]] = {}
    for entry in entries:
        by_model.setdefault(entry.get("model", ""), []).append(entry)
    project = load_project()

    def relation(model: str) -> sql.Composable:
        # The lake is written from each model's own SQL over the base tables (the marts are
        # tables `run` may not have rebuilt since), so it is recounted from the same SQL.
        if model not in project.models:
            return sql.Identifier(SCHEMA, model)
        statement = inline_sql(project, model).replace("%", "%%")
        return sql.SQL("({}) as {}").format(sql.SQL(statement), sql.Identifier(model))

    stats: dict[str, tuple | str] = {}
    with connect(url) as conn:
        conn.read_only = True
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with conn.transaction():
            for model, model_entries in by_model.items():
                columns: list[str] = []
                for entry in model_entries:
                    columns += [name for name in _money_columns(entry) if name not in columns]
                aggregates = [sql.SQL("count(*)")] + [
                    sql.SQL("cast(coalesce(sum({}), 0) as numeric(38, 2))").format(
                        sql.Identifier(column)
                    )
                    for column in columns
                ]
                partitioned = [entry for entry in model_entries if entry.get("partition")]
                if partitioned:
                    months = sorted({entry["partition"]["month"] for entry in partitioned})
                    query = sql.SQL(
                        "select cast(month as text), {} from {} "
                        "where month = any(cast({} as date[])) group by month"
                    ).format(sql.SQL(", ").join(aggregates), relation(model), sql.Placeholder())
                    params = [months]
                else:
                    query = sql.SQL("select null, {} from {}").format(
                        sql.SQL(", ").join(aggregates), relation(model)
                    )
                    params = []
                try:
                    with conn.transaction():
                        rows = conn.execute(query, params).fetchall()
                except psycopg.Error as exc:
                    for entry in model_entries:
                        stats[entry["path"]] = _first_line(exc)
                    continue
                found = {
                    month: (row[0], dict(zip(columns, row[1:], strict=True)))
                    for month, *row in rows
                }
                empty = (0, dict.fromkeys(columns, 0))
                for entry in model_entries:
                    month = (entry.get("partition") or {}).get("month")
                    stats[entry["path"]] = found.get(month, empty)
    return stats


def _money_columns(entry: dict) -> list[str]:
    return list((entry.get("money_sums") or {}).keys())


def _postgres_stats(url: str, entries: list[dict]) -> dict[str, tuple | str]:
    """model -> (rows, {money column: sum}) from one snapshot, or an error text."""
    import psycopg
    from psycopg import sql

    from tracker.plumbing.db import connect

    money: dict[str, list[str]] = {}
    for entry in entries:
        columns = money.setdefault(entry.get("model", ""), [])
        columns += [name for name in _money_columns(entry) if name not in columns]
    stats: dict[str, tuple | str] = {}
    with connect(url) as conn:
        conn.read_only = True
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with conn.transaction():
            for model, columns in money.items():
                aggregates = [sql.SQL("count(*)")] + [
                    sql.SQL("cast(coalesce(sum({}), 0) as numeric(38, 2))").format(
                        sql.Identifier(column)
                    )
                    for column in columns
                ]
                query = sql.SQL("select {} from {}").format(
                    sql.SQL(", ").join(aggregates), sql.Identifier(SCHEMA, model)
                )
                try:
                    with conn.transaction():
                        (row,) = conn.execute(query).fetchall()
                except psycopg.Error as exc:
                    stats[model] = _first_line(exc)
                    continue
                stats[model] = (row[0], dict(zip(columns, row[1:], strict=True)))
    return stats


def _check_file(duck, out_dir: Path, entry: dict, postgres) -> FileCheck:
    import duckdb

    relative = str(entry.get("path", ""))
    check = FileCheck(
        relative, str(entry.get("model", "")), str(entry.get("format", "")), entry.get("rows")
    )
    path = out_dir / relative
    money = _money_columns(entry)
    month = (entry.get("partition") or {}).get("month")
    where = f" for month {month}" if month else ""
    if isinstance(postgres, tuple):
        check.postgres_rows = postgres[0]
        if postgres[0] != check.manifest_rows:
            check.problems.append(
                f"PostgreSQL has {postgres[0]} rows in {SCHEMA}.{check.model}{where}, the manifest "
                f"{check.manifest_rows}: the data changed since the export; export again"
            )
        for column in money:
            _compare_sum(check, column, "PostgreSQL", postgres[1].get(column), entry)
    else:
        check.problems.append(f"PostgreSQL cannot read {SCHEMA}.{check.model}: {postgres}")
    if not path.is_file():
        check.problems.append(f"{relative} is missing")
        return check
    check.sha256_ok = _sha256(path) == entry.get("sha256")
    if not check.sha256_ok:
        check.problems.append(
            f"{relative} does not match its sha256 in the manifest: the file was changed "
            "after the export"
        )
    if path.stat().st_size != entry.get("bytes"):
        check.problems.append(
            f"{relative} has {path.stat().st_size} bytes, the manifest says {entry.get('bytes')}"
        )
    aggregates = ", ".join(
        ["count(*)"]
        + [f"cast(coalesce(sum({_quote(column)}), 0) as decimal(38, 2))" for column in money]
    )
    try:
        if check.format == "parquet":
            row = duck.execute(
                f"select {aggregates} from read_parquet($path)", {"path": str(path)}
            ).fetchone()
        else:
            from tracker.pipeline.duck import CSV_READER

            columns = {
                column["name"]: _csv_type(column["type"], column["name"] in money)
                for column in entry.get("columns", [])
            }
            row = duck.execute(
                f"select {aggregates} from {CSV_READER}", {"path": str(path), "columns": columns}
            ).fetchone()
    except duckdb.Error as exc:
        check.problems.append(f"DuckDB cannot read {relative}: {_first_line(exc)}")
        return check
    check.duckdb_rows = row[0]
    if row[0] != check.manifest_rows:
        check.problems.append(
            f"DuckDB counts {row[0]} rows in {relative}, the manifest {check.manifest_rows}"
        )
    for column, value in zip(money, row[1:], strict=True):
        _compare_sum(check, column, f"DuckDB ({relative})", value, entry)
    if check.sums_ok is None:
        check.sums_ok = True
    return check


def _compare_sum(check: FileCheck, column: str, where: str, value, entry: dict) -> None:
    expected = (entry.get("money_sums") or {}).get(column)
    try:
        same = value is not None and Decimal(str(value)) == Decimal(str(expected))
    except InvalidOperation:
        same = False
    if not same:
        check.sums_ok = False
        check.problems.append(f"sum({column}) is {value} in {where}, {expected} in the manifest")


def _csv_type(pg_type: str, is_money: bool) -> str:
    if is_money:
        return "DECIMAL(38,2)"
    if pg_type.startswith("numeric("):
        return "DECIMAL(" + pg_type[len("numeric(") :].replace(" ", "")
    return _CSV_TYPES.get(pg_type, "VARCHAR")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while block := source.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0].strip().rstrip(".")
