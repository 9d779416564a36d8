"""Exports: the materialized analytics relations as CSV and Parquet files plus a manifest.

Layout of an export directory (what Power BI reads):

    csv/<model>.csv            UTF-8 (with a byte-order mark unless bom=False), RFC 4180
    parquet/<model>.parquet    typed columns: DECIMAL(p,2) money, DATE, BIGINT, TIMESTAMPTZ...
    manifest.json              per file: rows, bytes, sha256, columns and types, money sums

How the data moves: every file is read from ONE repeatable-read, read-only snapshot. The
main connection opens it, checks the relations and reads their column types from the
catalog, then exports the snapshot (pg_export_snapshot); each file is written by the psql
client, in one session that imports that snapshot, running `copy (select ... order by ...)
to stdout (format csv, header)` with its output sent to the file (`\\o`). psql is used
instead of psycopg's copy because PostgreSQL sends one CopyData message per row and psycopg
hands each one to Python: on a 1M-row fact that costs ~1 us per row, 1.3-1.5x psql's own
time, while psql does the same loop in C. After each file psql echoes a line; a worker
thread then hashes the file and, with DuckDB, reads it with explicit column types (from the
PostgreSQL catalog) to write the Parquet file and count rows and money totals, while psql
copies the next model. Without a usable psql (an SSL connection and no system psql),
psycopg's copy writes the same bytes, more slowly.

Nothing here prints or reads the environment: progress goes through a callback.
"""

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import psycopg
from psycopg import sql

from tracker.errors import InputError, TrackerError
from tracker.pipeline.models import SCHEMA, analytics_relations
from tracker.plumbing import config
from tracker.plumbing.db import connect, scalar
from tracker.plumbing.psql import psql_command

FORMATS = ("csv", "parquet")
MANIFEST = "manifest.json"
BOM = b"\xef\xbb\xbf"
STAGING_PREFIX = ".export-staging-"
# How long a second export into the same folder waits for the first one (--lock-timeout).
LOCK_TIMEOUT_SECONDS = 600.0
# What marks a manifest.json (and the files it lists) as written by this exporter.
GENERATOR = "smart-spending-tracker export"
COMMITTED_MARKER = "COMMITTED"
CHUNK_BYTES = 1 << 20
DONE = "tracker-export-file-written"
MAX_DECIMAL_PRECISION = 38
# How DuckDB reads an exported CSV: exactly COPY's CSV dialect, with the catalog's types.
# A UTF-8 byte-order mark is skipped by the reader; quoted fields may hold newlines; an
# unquoted empty field is NULL and a quoted one ("") the empty string, as COPY wrote them.
CSV_READER = (
    "read_csv($path, header = true, columns = $columns, auto_detect = false, delim = ',', "
    "quote = '\"', escape = '\"', nullstr = '', allow_quoted_nulls = false, "
    "encoding = 'utf-8', strict_mode = true)"
)

# Every session that reads data uses the same output settings, so files never depend on
# the server's or the user's defaults: ISO dates (YYYY-MM-DD), timestamps in UTC.
SESSION_SETTINGS = (
    ("timezone", "UTC"),
    ("datestyle", "ISO, YMD"),
    ("intervalstyle", "postgres"),
    ("extra_float_digits", "1"),
)

# Columns COPY would print in a form other tools misread: booleans as t/f (Power BI and
# DuckDB read true/false), timestamps as "2025-05-02 10:00:00+00" (ISO 8601 wants the "T"
# and a "+00:00" offset). Timestamps are printed in UTC: the session's time zone.
_TEXT_RENDERINGS = {
    "bool": "{}::text as {}",
    "timestamptz": """to_char({}, 'YYYY-MM-DD"T"HH24:MI:SS.USTZH:TZM') as {}""",
    "timestamp": """to_char({}, 'YYYY-MM-DD"T"HH24:MI:SS.US') as {}""",
}

# PostgreSQL type name -> DuckDB/Parquet type; anything else is exported as text.
_DUCKDB_TYPES = {
    "int2": "SMALLINT",
    "int4": "INTEGER",
    "int8": "BIGINT",
    "bool": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "timestamptz": "TIMESTAMPTZ",
    "time": "TIME",
    "float4": "FLOAT",
    "float8": "DOUBLE",
    "uuid": "UUID",
}


@dataclass(frozen=True)
class Column:
    """One exported column: its PostgreSQL type and the type it gets in Parquet."""

    name: str
    pg_type: str
    duckdb_type: str | None  # None: numeric without (p, s), sized from the data
    type_name: str = ""  # pg_type.typname: int8, numeric, bool, timestamptz...

    @property
    def is_money(self) -> bool:
        # The project's convention: money is numeric with scale 2 (numeric(12,2), (38,2)).
        duckdb_type = self.duckdb_type or ""
        return duckdb_type.startswith("DECIMAL(") and duckdb_type.endswith(",2)")


@dataclass(frozen=True)
class ExportItem:
    """One model to export: which relation, which columns, in which order."""

    name: str
    order_by: tuple[str, ...]
    pii_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileWritten:
    """A progress event: one file finished (done of total)."""

    path: str
    rows: int
    bytes: int
    done: int
    total: int


@dataclass
class ExportResult:
    """What an export wrote: the directory, its manifest and the files it lists."""

    out_dir: Path
    manifest: dict
    seconds: float
    files: list[dict] = field(default_factory=list)


def select_export_models(project, spec: str | None = None) -> list:
    """The exported models chosen by spec (all exported models when spec is empty).

    `+name` / `name+` pull in upstream / downstream models; the staging models among them
    are left out, but a model named on its own (no +) that is not exported is an error.
    """
    chosen = project.select(spec)
    named = {token for token in (spec or "").replace(",", " ").split() if "+" not in token}
    for model in chosen:
        if model.name in named and not model.export:
            exported = ", ".join(m.name for m in project.models.values() if m.export)
            raise InputError(
                f'Error: --select names model "{model.name}", which is not exported '
                f"(export=False in its config). Choose among: {exported}."
            )
    selected = [model for model in chosen if model.export]
    if not selected:
        raise InputError(
            f'Error: --select "{spec}" chooses no exported model. '
            "Name one of the marts, e.g. --select monthly_totals."
        )
    return selected


def export_items(models: Iterable) -> list[ExportItem]:
    """ExportItems for models of tracker.models (name, sort columns, pii columns).

    Rows are sorted by order_by, then by any unique_key column not in it, so the order is
    total and two exports of the same data are byte-identical.
    """
    items = []
    for model in models:
        order = list(model.order_by)
        order += [column for column in model.unique_key if column not in order]
        items.append(ExportItem(model.name, tuple(order), tuple(model.pii_columns)))
    return items


def export_models(
    url: str,
    items: list[ExportItem],
    out_dir: Path | str,
    *,
    formats: Iterable[str] = FORMATS,
    include_pii: bool = False,
    bom: bool = True,
    on_progress: Callable[[FileWritten], None] | None = None,
    use_psql: bool | None = None,
    lock_timeout: float = LOCK_TIMEOUT_SECONDS,
    on_wait: Callable[[Path], None] | None = None,
) -> ExportResult:
    """Write csv/, parquet/ and manifest.json for items into out_dir, replacing the old set.

    All or nothing: on any failure the previous export in out_dir stays byte-identical.
    use_psql: copy with the psql client (fast; the default when it can reach the database)
    or with psycopg (slower; the fallback when it cannot, e.g. SSL without a system psql).
    Another export writing into out_dir is waited for, up to lock_timeout seconds. Staging
    folders of exports that were killed are removed (or, if complete, swapped in) first.
    """
    started = time.perf_counter()
    formats = tuple(fmt for fmt in FORMATS if fmt in set(formats))
    if not formats:
        raise InputError("Error: no export format chosen. Use --format csv, parquet or both.")
    out_dir = _prepare_out_dir(Path(out_dir))
    with _locked(out_dir, lock_timeout, on_wait):
        _recover(out_dir)
        _check_replaceable(out_dir)
        staging = _make_staging(out_dir)
        try:
            manifest, files = _write_generation(
                url,
                items,
                staging,
                formats,
                include_pii,
                bom,
                on_progress,
                _can_use_psql(url) if use_psql is None else use_psql,
            )
            for directory in (staging / "new" / fmt for fmt in formats):
                _fsync_directory(directory)
            _fsync_directory(staging / "new")
            # From here on the new set is complete: a crash during the swap is rolled
            # forward by the next export (see _swap_in), never left half-done.
            _write_durably(staging / COMMITTED_MARKER, b"")
            _fsync_directory(staging)
        except BaseException as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(exc, OSError):
                raise TrackerError(
                    f"Error: writing the export into {out_dir} failed: "
                    f"{exc.strerror or exc}{f' ({exc.filename})' if exc.filename else ''}. "
                    "Free some disk space or choose another --out; the previous export "
                    "is unchanged."
                ) from None
            if isinstance(exc, duckdb.Error):
                raise TrackerError(
                    f"Error: writing a Parquet file failed: {_database_error(str(exc))}. "
                    "Run again with --debug for details; the previous export is unchanged."
                ) from None
            raise
        _swap_in(out_dir, staging)
    return ExportResult(out_dir, manifest, time.perf_counter() - started, files)


def export_query(
    conn: psycopg.Connection,
    item: ExportItem,
    columns: list[Column],
    where: sql.Composable | None = None,
    source: str | None = None,
) -> str:
    """The SELECT a file is copied from: its columns, in the model's deterministic order.

    where: an optional condition (the lake exports one fact's changed months).
    source: a statement to read instead of the relation analytics.<model> (the lake reads
    the model's own SQL over the base tables, models.inline_sql, so it is always current).
    """
    select_list: list[sql.Composable] = []
    for column in columns:
        identifier = sql.Identifier(column.name)
        rendering = _TEXT_RENDERINGS.get(column.type_name)
        if rendering:
            select_list.append(sql.SQL(rendering).format(identifier, identifier))
        else:
            select_list.append(identifier)
    order_by = list(item.order_by) or [column.name for column in columns]
    query = sql.SQL("select {} from {}{} order by {}").format(
        sql.SQL(", ").join(select_list),
        (
            sql.SQL("({}) as {}").format(sql.SQL(source), sql.Identifier(item.name))
            if source is not None
            else sql.Identifier(SCHEMA, item.name)
        ),
        sql.SQL(" where {}").format(where) if where is not None else sql.SQL(""),
        sql.SQL(", ").join(sql.Identifier(name) for name in order_by),
    )
    return query.as_string(conn)


def git_commit(directory: Path = config.PROJECT_DIR) -> str | None:
    """The commit checked out in directory, or None outside git (or without git)."""
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


# --- reading the snapshot ------------------------------------------------------------------


def _write_generation(url, items, staging, formats, include_pii, bom, on_progress, use_psql):
    new = staging / "new"
    work = staging / "work"
    for directory in (new, work, *(new / fmt for fmt in formats)):
        directory.mkdir(parents=True, exist_ok=True)
    total = len(items) * len(formats)
    files: list[dict] = []
    pending: list[Future] = []
    # DuckDB works while PostgreSQL and psql produce the next file: leave them half the
    # cores (on 2 cores a second DuckDB thread made the whole export slower, not faster).
    duck = duckdb.connect(config={"threads": max(1, (os.cpu_count() or 2) // 2)})

    def report(entries: list[dict]) -> None:
        for entry in entries:
            files.append(entry)
            if on_progress:
                on_progress(
                    FileWritten(entry["path"], entry["rows"], entry["bytes"], len(files), total)
                )

    with connect(url) as conn, ThreadPoolExecutor(max_workers=1) as worker:
        conn.read_only = True
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        try:
            with conn.transaction():
                _begin_snapshot(conn, items)
                plans = plan_export(conn, items, include_pii, config.mask_url(url))
                snapshot = scalar(conn, "select pg_export_snapshot()")
                csv_dir = new / "csv" if "csv" in formats else work
                jobs = [
                    (item, export_query(conn, item, columns), csv_dir / f"{item.name}.csv")
                    for item, columns in plans
                ]

                def on_csv_written(index: int) -> None:
                    (item, columns), csv_path = plans[index], jobs[index][2]
                    pending.append(
                        worker.submit(_finish_model, duck, item, columns, csv_path, new, formats)
                    )
                    while pending and pending[0].done():
                        report(pending.pop(0).result())

                # The snapshot stays open until psql has imported it; the conversions
                # still pending below read only local files.
                if use_psql:
                    _copy_with_psql(url, conn, snapshot, jobs, bom, on_csv_written)
                else:
                    _copy_with_psycopg(conn, jobs, bom, on_csv_written)
            while pending:
                report(pending.pop(0).result())
        except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
            # LOCK names a relation that is not there: say which ones, and what to do.
            plan_export(conn, items, include_pii, config.mask_url(url))
            raise
        finally:
            for future in pending:
                future.cancel()
            worker.shutdown(wait=True)
            duck.close()
    shutil.rmtree(work, ignore_errors=True)
    manifest = {
        "generator": GENERATOR,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": config.mask_url(url),
        "git_commit": git_commit(),
        "formats": list(formats),
        "include_pii": include_pii,
        "csv_bom": bom if "csv" in formats else None,
        "models": [item.name for item, _ in plans],
        "files": files,
    }
    _write_durably(new / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
    return manifest, files


def _begin_snapshot(conn: psycopg.Connection, items: list[ExportItem]) -> None:
    """Settings, then locks, then the first SELECT (which fixes the snapshot), in that order.

    Catalog lookups always see the newest catalog, not the snapshot; so a `run` that
    replaced the views half-way through would change later files. ACCESS SHARE locks on
    every relation (and, for a view, on what it reads) make such a `run` wait until the
    export is done, and taking them before any SELECT means the snapshot already contains
    whatever `run` committed before the locks were granted.
    """
    for name, value in SESSION_SETTINGS:
        conn.execute(sql.SQL("set local {} = {}").format(sql.SQL(name), sql.Literal(value)))
    conn.execute(
        sql.SQL("lock table {} in access share mode").format(
            sql.SQL(", ").join(sql.Identifier(SCHEMA, item.name) for item in items)
        )
    )


def plan_export(conn, items: list[ExportItem], include_pii: bool, database: str):
    """Check that every relation exists; each item with the columns it exports."""
    relations = {name: relation.oid for name, relation in analytics_relations(conn).items()}
    missing = [item.name for item in items if item.name not in relations]
    if missing:
        names = ", ".join(f"{SCHEMA}.{name}" for name in missing[:3])
        if len(missing) > 3:
            names += f" and {len(missing) - 3} more"
        raise TrackerError(
            f"Error: {names} {'does' if len(missing) == 1 else 'do'} not exist in {database}. "
            "Build the models first: `python cli.py run`."
        )
    plans = []
    for item in items:
        try:
            columns = _columns(conn, item, relations[item.name], include_pii)
        except psycopg.Error as exc:
            raise _failed(item.name, str(exc)) from None
        present = _all_columns(conn, relations[item.name])
        unknown = [name for name in item.order_by if name not in present]
        if unknown:
            raise TrackerError(
                f'Error: model "{item.name}" is ordered by "{unknown[0]}", which '
                f"{SCHEMA}.{item.name} does not have. Fix order_by in its config() and "
                "run `python cli.py run`."
            )
        plans.append((item, columns))
    return plans


def _all_columns(conn, oid: int) -> set[str]:
    rows = conn.execute(
        "select attname from pg_attribute where attrelid = %s and attnum > 0 and not attisdropped",
        [oid],
    ).fetchall()
    return {name for (name,) in rows}


def _columns(conn, item: ExportItem, oid: int, include_pii: bool) -> list[Column]:
    rows = conn.execute(
        """
        select
            attribute.attname as name,
            format_type(attribute.atttypid, attribute.atttypmod) as pg_type,
            type.typname as type_name,
            attribute.atttypmod as typmod
        from pg_attribute as attribute
        inner join pg_type as type
            on type.oid = attribute.atttypid
        where attribute.attrelid = %s
            and attribute.attnum > 0
            and not attribute.attisdropped
        order by attribute.attnum
        """,
        [oid],
    ).fetchall()
    pii = set(item.pii_columns)
    columns = []
    for name, pg_type, type_name, typmod in rows:
        if name in pii and not include_pii:
            continue
        if type_name == "numeric":
            duckdb_type = _decimal_type(typmod)
        else:
            duckdb_type = _DUCKDB_TYPES.get(type_name, "VARCHAR")
        columns.append(Column(name, pg_type, duckdb_type, type_name))
    return columns


def _decimal_type(typmod: int) -> str | None:
    """DECIMAL(p,s) for numeric(p,s); None when the data must decide (plain numeric)."""
    if typmod >= 4:
        precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
        if precision <= MAX_DECIMAL_PRECISION:
            return f"DECIMAL({precision},{scale})"
    return None


def _can_use_psql(url: str) -> bool:
    try:
        psql_command(url)
    except TrackerError:
        return False
    return True


def _copy_with_psycopg(conn, jobs, bom: bool, on_written: Callable[[int], None]) -> None:
    """The same files through psycopg, in this connection's snapshot; ~1.5x slower."""
    for index, (item, query, path) in enumerate(jobs):
        statement = sql.SQL("copy ({}) to stdout (format csv, header)").format(sql.SQL(query))
        try:
            with conn.cursor().copy(statement) as copy, open(path, "wb") as out:
                if bom:
                    out.write(BOM)
                # One message per row: gather them so the file sees 1 MiB writes.
                block, size = [], 0
                for row in copy:
                    block.append(row)
                    size += len(row)
                    if size >= CHUNK_BYTES:
                        out.write(b"".join(block))
                        block, size = [], 0
                out.write(b"".join(block))
        except psycopg.Error as exc:
            raise _failed(item.name, str(exc)) from None
        on_written(index)


def _copy_with_psql(url, conn, snapshot, jobs, bom: bool, on_written: Callable[[int], None]):
    """One psql session, inside the exported snapshot, copies each query into its file.

    psql writes the files itself (`\\o file`, then COPY TO STDOUT goes there), exactly as
    `\\copy` would, and after each file echoes a line on its stdout that calls on_written.
    """
    command, env = psql_command(url)
    literal = lambda value: sql.Literal(value).as_string(conn)  # noqa: E731
    lines = [
        "\\set ON_ERROR_STOP on",
        "set client_encoding = 'UTF8';",
        "begin transaction isolation level repeatable read read only;",
        f"set transaction snapshot {literal(snapshot)};",
        *(f"set local {key} = {literal(value)};" for key, value in SESSION_SETTINGS),
    ]
    for index, (_, query, path) in enumerate(jobs):
        lines.append(f"\\o {_psql_quote(str(path))}")
        if bom:
            lines.append("\\qecho -n \ufeff")
        lines += [
            f"copy ({query}) to stdout (format csv, header);",
            "\\o",
            f"\\echo {DONE} {index}",
        ]
    lines.append("commit;")
    script = ("\n".join(lines) + "\n").encode("utf-8")
    # psql gets the password through its environment, never on the command line.
    child_env = {**os.environ, **env} if env else None
    done = 0
    with tempfile.TemporaryFile() as errors:
        try:
            process = subprocess.Popen(
                [command[0], "--no-psqlrc", "--quiet", *command[1:]],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                env=child_env,
            )
        except OSError as exc:
            raise TrackerError(
                f"Error: cannot start psql ({command[0]}): {exc.strerror}. "
                "Run `make venv` to reinstall the pgserver wheel."
            ) from None
        # Fed from a thread: a long script must not block on a full pipe while psql waits
        # for its stdout to be read.
        feeder = threading.Thread(target=_feed, args=(process.stdin, script), daemon=True)
        feeder.start()
        try:
            assert process.stdout is not None  # stdout=PIPE
            for line in process.stdout:
                marker, _, job = line.decode("utf-8", "replace").strip().partition(" ")
                if marker == DONE:
                    done += 1
                    on_written(int(job))
        finally:
            if done < len(jobs):
                process.kill()
            returncode = process.wait()
            feeder.join()
        if returncode != 0 or done < len(jobs):
            errors.seek(0)
            failed = jobs[min(done, len(jobs) - 1)][0].name
            raise _failed(failed, errors.read().decode("utf-8", "replace") or "psql stopped")


def _feed(stream, data: bytes) -> None:
    try:
        stream.write(data)
        stream.close()
    except OSError:
        # psql exited early (an error); its stderr says why.
        pass


def _psql_quote(text: str) -> str:
    """A psql meta-command argument: single quotes, with psql's own escapes."""
    escaped = text.replace("\\", "\\\\").replace("'", "''")
    return "'" + escaped.replace("\n", "\\n").replace("\r", "\\r") + "'"


def _failed(name: str, message: str) -> TrackerError:
    return TrackerError(
        f"Error: exporting {SCHEMA}.{name} failed: {_database_error(message)}. "
        "Fix the model (or the data), run `python cli.py run`, then export again."
    )


def _database_error(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if "ERROR:" in line:
            return line.split("ERROR:", 1)[1].strip().rstrip(".")
    return (lines[0] if lines else "psql failed").rstrip(".")


# --- Parquet and the manifest ----------------------------------------------------------------


def _finish_model(duck, item, columns, csv_path, new, formats) -> list[dict]:
    """Write the Parquet file (if asked) and the manifest entries of one model."""
    columns = _size_decimals(duck, item, columns, csv_path)
    csv_params = {
        "path": str(csv_path),
        "columns": {column.name: column.duckdb_type for column in columns},
    }
    entries = []
    if "parquet" in formats:
        parquet_path = new / "parquet" / f"{item.name}.parquet"
        duck.sql(f"select * from {CSV_READER}", params=csv_params).write_parquet(
            str(parquet_path), compression="snappy"
        )
        # Counted from the Parquet file just written: cheap, and it checks that file.
        rows, sums = _stats(duck, "read_parquet($path)", {"path": str(parquet_path)}, columns)
    else:
        rows, sums = _stats(duck, CSV_READER, csv_params, columns)
    if "csv" in formats:
        entries.append(
            _entry(
                item,
                "csv",
                csv_path,
                _sha256(csv_path),
                rows,
                sums,
                [(column.name, column.pg_type) for column in columns],
            )
        )
    if "parquet" in formats:
        entries.append(
            _entry(
                item,
                "parquet",
                parquet_path,
                _sha256(parquet_path),
                rows,
                sums,
                [(column.name, column.duckdb_type) for column in columns],
            )
        )
    return entries


def _size_decimals(duck, item, columns: list[Column], csv_path: Path) -> list[Column]:
    """Give numeric columns without (p, s) (e.g. round(avg(x), 2) in a view) a DECIMAL.

    Sized from the CSV just written, so the database does not compute the view twice.
    """
    unsized = [column.name for column in columns if column.duckdb_type is None]
    if not unsized:
        return columns
    as_text = {column.name: column.duckdb_type or "VARCHAR" for column in columns}
    measures = ", ".join(
        f"max(length(split_part(ltrim({quoted}, '-'), '.', 1))), "
        f"max(length(split_part({quoted}, '.', 2)))"
        for quoted in map(_duck_identifier, unsized)
    )
    (row,) = duck.execute(
        f"select {measures} from {CSV_READER}", {"path": str(csv_path), "columns": as_text}
    ).fetchall()
    sized = {}
    for index, name in enumerate(unsized):
        digits, scale = row[2 * index] or 1, row[2 * index + 1] or 0
        if digits + scale > MAX_DECIMAL_PRECISION:
            raise TrackerError(
                f'Error: column "{name}" of {SCHEMA}.{item.name} holds numbers with more than '
                f"{MAX_DECIMAL_PRECISION} digits, which Parquet's DECIMAL cannot store exactly. "
                "Cast it to numeric(p, s) with p <= 38 in the model."
            )
        sized[name] = f"DECIMAL({MAX_DECIMAL_PRECISION},{scale})"
    return [
        replace(column, duckdb_type=sized[column.name]) if column.name in sized else column
        for column in columns
    ]


def _stats(duck, source: str, params: dict, columns: list[Column]):
    money = [column.name for column in columns if column.is_money]
    aggregates = ", ".join(
        ["count(*)"]
        + [f"coalesce(sum({_duck_identifier(name)}), 0)::decimal(38, 2)" for name in money]
    )
    (row,) = duck.execute(f"select {aggregates} from {source}", params).fetchall()
    return row[0], {name: _decimal_text(value) for name, value in zip(money, row[1:], strict=True)}


def _duck_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _decimal_text(value: Decimal) -> str:
    return format(Decimal(value).quantize(Decimal("0.01")), "f")


def _entry(item, fmt, path: Path, sha256: str, rows: int, sums: dict, columns) -> dict:
    return {
        "path": f"{fmt}/{path.name}",
        "model": item.name,
        "format": fmt,
        "rows": rows,
        "bytes": path.stat().st_size,
        "sha256": sha256,
        "columns": [{"name": name, "type": type_} for name, type_ in columns],
        "money_sums": sums,
    }


def _sha256(path: Path) -> str:
    """The file's sha256, after making sure its bytes are on disk.

    The fsync is what lets the COMMITTED marker promise a complete set even after a power
    cut; it runs here, in the worker thread, while psql writes the next file.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while block := source.read(CHUNK_BYTES):
            digest.update(block)
        os.fsync(source.fileno())
    return digest.hexdigest()


# --- the output directory: staging, locking, the swap ----------------------------------------


def _prepare_out_dir(out_dir: Path) -> Path:
    out_dir = out_dir.expanduser().absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(
            f"Error: --out {out_dir} is a file, not a directory. Choose a directory for --out."
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f"{STAGING_PREFIX}probe-{uuid.uuid4().hex[:8]}"
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        raise InputError(
            f"Error: cannot write to --out {out_dir}: {exc.strerror or exc}. "
            "Choose a directory you can write to (its parents must be directories)."
        ) from None
    return out_dir


class _locked:
    """An exclusive lock on the output directory, so two exports never interleave.

    A second export waits for the first (polling, so it can give up): up to
    `timeout` seconds, then it fails with one line. on_wait is told once when it starts
    waiting.
    """

    POLL_SECONDS = 0.2

    def __init__(
        self,
        out_dir: Path,
        timeout: float = LOCK_TIMEOUT_SECONDS,
        on_wait: Callable[[Path], None] | None = None,
    ):
        self.out_dir = out_dir
        self.timeout = timeout
        self.on_wait = on_wait

    def __enter__(self):
        self.fd = os.open(self.out_dir, os.O_RDONLY)
        deadline = time.monotonic() + self.timeout
        waited = False
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(self.fd)
                    raise TrackerError(
                        f"Error: another export is still writing to {self.out_dir} after "
                        f"waiting {self.timeout:g} s. Wait for it to finish (or raise "
                        "--lock-timeout), or choose another --out."
                    ) from None
                if not waited and self.on_wait is not None:
                    self.on_wait(self.out_dir)
                waited = True
                time.sleep(self.POLL_SECONDS)
            except BaseException:
                os.close(self.fd)
                raise

    def __exit__(self, *exc_info):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _make_staging(out_dir: Path) -> Path:
    # Inside out_dir, so the final moves are renames on one filesystem.
    staging = out_dir / f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    return staging


def _check_replaceable(out_dir: Path) -> None:
    """Refuse to replace anything an earlier export of this tool did not write.

    An export replaces manifest.json, csv/ and parquet/. That is only safe when
    manifest.json is this exporter's (its "generator") and every file now in csv/ and
    parquet/ is one it lists: a folder of the user's own files with an unrelated
    manifest.json, or a file of theirs dropped into csv/, is never deleted.
    """
    manifest_path = out_dir / MANIFEST
    if not manifest_path.exists():
        foreign = [name for name in FORMATS if (out_dir / name).exists()]
        if foreign:
            raise InputError(
                f"Error: {out_dir / foreign[0]} exists but {out_dir} has no {MANIFEST}, so it "
                "was not written by `cli.py export` and would be replaced. Choose an empty or "
                "export directory for --out, or move that folder away."
            )
        return
    listed = _exported_files(manifest_path)
    if listed is None:
        raise InputError(
            f"Error: {manifest_path} was not written by `cli.py export`, and an export would "
            f"replace it (and {out_dir}'s csv/ and parquet/ folders). Choose an empty or "
            "export directory for --out, or move those files away."
        )
    for name in FORMATS:
        folder = out_dir / name
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise InputError(
                f"Error: {folder} is not a folder an export wrote, and an export would replace "
                "it. Choose another --out, or move it away."
            )
        if not folder.exists():
            continue
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(out_dir).as_posix()
            if path.is_dir() and not path.is_symlink():
                continue
            if relative not in listed:
                raise InputError(
                    f"Error: {path} was not written by `cli.py export` (it is not in "
                    f"{manifest_path}), and an export replaces {folder}. Move it away, or "
                    "choose another --out."
                )


def _exported_files(manifest_path: Path) -> set[str] | None:
    """The paths an export's manifest lists; None when it is not this exporter's manifest."""
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("generator") != GENERATOR:
        return None
    files = manifest.get("files")
    if not isinstance(files, list):
        return None
    return {
        entry["path"]
        for entry in files
        if isinstance(entry, dict) and isinstance(entry.get("path"), str)
    }


def _recover(out_dir: Path) -> None:
    """Finish a swap that a crash interrupted; drop staging folders that never committed."""
    for staging in sorted(out_dir.glob(f"{STAGING_PREFIX}*")):
        if staging.is_dir() and (staging / COMMITTED_MARKER).exists():
            _swap_in(out_dir, staging)
        else:
            shutil.rmtree(staging, ignore_errors=True)


def _swap_in(out_dir: Path, staging: Path) -> None:
    """Move a committed staging set into out_dir; safe to repeat after a crash at any step.

    Why not one rename: readers want stable paths (exports/csv/x.csv), so the set spans
    two folders and a file, and no single rename replaces them together. So the swap is
    a roll-forward journal: the staging folder is complete and marked COMMITTED before
    anything in out_dir changes; the old manifest.json is moved out first, so while the
    folders move no manifest describes them (a reader sees "export in progress"); the new
    manifest.json goes in last. Each step checks what is already done, so if the process
    dies half-way the next export (even one that fails later) finishes the swap before
    doing anything else, and out_dir ends with one consistent set either way. An export
    that fails before COMMITTED never touches out_dir.
    """
    new, old = staging / "new", staging / "old"
    if (new / MANIFEST).exists():
        old.mkdir(exist_ok=True)
        produced = json.loads((new / MANIFEST).read_text(encoding="utf-8"))["formats"]
        if (out_dir / MANIFEST).exists():
            os.replace(out_dir / MANIFEST, old / MANIFEST)
        for fmt in FORMATS:
            if (new / fmt).exists():
                if (out_dir / fmt).exists():
                    os.replace(out_dir / fmt, old / fmt)
                os.replace(new / fmt, out_dir / fmt)
            elif fmt not in produced and (out_dir / fmt).exists():
                # A csv-only export replaces the whole set: stale Parquet files would
                # disagree with the manifest.
                os.replace(out_dir / fmt, old / fmt)
        os.replace(new / MANIFEST, out_dir / MANIFEST)
        _fsync_directory(out_dir)
    shutil.rmtree(staging, ignore_errors=True)


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as target:
        target.write(data)
        target.flush()
        os.fsync(target.fileno())


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
