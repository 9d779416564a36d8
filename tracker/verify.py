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
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from .errors import InputError, TrackerError

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
            f"Error: {path} does not exist. Export first (`python cli.py export`) or pass "
            "the export's folder with --dir."
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TrackerError(
            f"Error: {path} is not valid JSON ({exc}). Export again to rewrite it."
        ) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        raise TrackerError(f"Error: {path} has no list of files. Export again to rewrite it.")
    return manifest


def verify_export(url: str, out_dir: Path | str,
                  on_file: Callable[[FileCheck], None] | None = None) -> VerifyReport:
    """Check every file in out_dir's manifest against PostgreSQL and DuckDB."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    entries = manifest["files"]
    in_postgres = _postgres_stats(url, entries)
    from . import duck as duck_module

    duck = duck_module.connect()
    checks = []
    try:
        for entry in entries:
            check = _check_file(duck, out_dir, entry, in_postgres.get(entry.get("model")))
            checks.append(check)
            if on_file:
                on_file(check)
    finally:
        duck.close()
    return VerifyReport(out_dir, checks, time.perf_counter() - started)


def _money_columns(entry: dict) -> list[str]:
    return list((entry.get("money_sums") or {}).keys())


def _postgres_stats(url: str, entries: list[dict]) -> dict[str, tuple | str]:
    """model -> (rows, {money column: sum}) from one snapshot, or an error text."""
    import psycopg
    from psycopg import sql

    from .db import connect

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
                        row = conn.execute(query).fetchone()
                except psycopg.Error as exc:
                    stats[model] = _first_line(exc)
                    continue
                stats[model] = (row[0], dict(zip(columns, row[1:])))
    return stats


def _check_file(duck, out_dir: Path, entry: dict, postgres) -> FileCheck:
    import duckdb

    relative = str(entry.get("path", ""))
    check = FileCheck(relative, str(entry.get("model", "")), str(entry.get("format", "")),
                      entry.get("rows"))
    path = out_dir / relative
    money = _money_columns(entry)
    if isinstance(postgres, tuple):
        check.postgres_rows = postgres[0]
        if postgres[0] != check.manifest_rows:
            check.problems.append(
                f"PostgreSQL has {postgres[0]} rows in {SCHEMA}.{check.model}, the manifest "
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
            row = duck.execute(f"select {aggregates} from read_parquet($path)",
                               {"path": str(path)}).fetchone()
        else:
            from .duck import CSV_READER

            columns = {
                column["name"]: _csv_type(column["type"], column["name"] in money)
                for column in entry.get("columns", [])
            }
            row = duck.execute(f"select {aggregates} from {CSV_READER}",
                               {"path": str(path), "columns": columns}).fetchone()
    except duckdb.Error as exc:
        check.problems.append(f"DuckDB cannot read {relative}: {_first_line(exc)}")
        return check
    check.duckdb_rows = row[0]
    if row[0] != check.manifest_rows:
        check.problems.append(
            f"DuckDB counts {row[0]} rows in {relative}, the manifest {check.manifest_rows}"
        )
    for column, value in zip(money, row[1:]):
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
        check.problems.append(
            f"sum({column}) is {value} in {where}, {expected} in the manifest"
        )


def _csv_type(pg_type: str, is_money: bool) -> str:
    if is_money:
        return "DECIMAL(38,2)"
    if pg_type.startswith("numeric("):
        return "DECIMAL(" + pg_type[len("numeric("):].replace(" ", "")
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
