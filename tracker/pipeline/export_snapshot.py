"""Reading one snapshot of the analytics relations into CSV files, fast.

How the data moves: every file is read from ONE repeatable-read, read-only snapshot. The
main connection opens it, checks the relations and reads their column types from the
catalog, then exports the snapshot (pg_export_snapshot); each file is written by the psql
client, in a session that imports that snapshot, running `copy (select ... order by ...)
to stdout (format csv, header)` with its output sent to the file (`\\o`); a large relation
is copied in two halves by two such sessions at once (split_query). psql is used
instead of psycopg's copy because PostgreSQL sends one CopyData message per row and psycopg
hands each one to Python: on a 1M-row fact that costs ~1 us per row, 1.3-1.5x psql's own
time, while psql does the same loop in C. After each file psql echoes a line; a worker
thread then converts the file (Parquet, counts, sums) while psql copies the next model.
Without a usable psql (an SSL connection and no system psql), psycopg's copy writes the
same bytes, more slowly. The export (export.py) and the lake (lake.py) both write this way.
"""

import os
import queue
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import psycopg
from psycopg import sql

from tracker.errors import TrackerError
from tracker.pipeline.models import SCHEMA
from tracker.pipeline.runner import analytics_relations
from tracker.pipeline.types import duckdb_type
from tracker.plumbing import config
from tracker.plumbing.db import connect, scalar
from tracker.plumbing.psql import psql_command
from tracker.text import CHUNK_BYTES

BOM = b"\xef\xbb\xbf"


DONE = "tracker-export-file-written"


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
        parquet_type = self.duckdb_type or ""
        return parquet_type.startswith("DECIMAL(") and parquet_type.endswith(",2)")


@dataclass(frozen=True)
class ExportItem:
    """One model to export: which relation, which columns, in which order."""

    name: str
    order_by: tuple[str, ...]
    pii_columns: tuple[str, ...] = ()


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


def copy_snapshot(
    url: str,
    items: list[ExportItem],
    *,
    include_pii: bool,
    duck,
    plan_jobs: Callable,
    convert: Callable,
    on_converted: Callable,
    bom: bool,
    use_psql: bool | Callable[[list], bool],
    more_jobs: Callable | None = None,
    workers: Callable[[list], int] | None = None,
    in_snapshot: Callable | None = None,
) -> list:
    """Copy queries from ONE repeatable-read snapshot into CSV files, converting each as it lands.

    The snapshot is opened (settings, locks, plan_export) on a read-only connection; then
    plan_jobs(conn, plans) returns (item, query, csv_path, convert_args) per file to write.
    psql (or psycopg) copies each query into its csv_path; as soon as a file is written, a
    worker thread runs convert(duck, *convert_args), whose results reach on_converted in
    order, while the next file is copied. The export and the lake both write this way.
    use_psql may be a function of the jobs (a few small files are quicker over this
    connection than through a psql process). more_jobs(conn), if given, is called once every
    planned file is converted, still in the snapshot, and returns further jobs, copied over
    this connection (the lake decides there whether dim_date must be read).
    workers(jobs), if given, is how many files are converted at once (default one; the
    lake's incremental export converts its few changed months side by side, each on its own
    DuckDB cursor, while the main thread only waits); results still arrive in order.
    in_snapshot(conn), if given, reads from this snapshot while psql copies (this connection
    is idle then), queued on the worker before any conversion, else first.
    Returns the plans: (item, columns) per item.
    """
    pending: list[Future] = []
    reading: Future | None = None
    worker: ThreadPoolExecutor | None = None
    with connect(url) as conn:
        conn.read_only = True
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        try:
            with conn.transaction():
                begin_snapshot(conn, items)
                plans = plan_export(conn, items, include_pii, config.mask_url(url))
                jobs = plan_jobs(conn, plans)
                psql = use_psql(jobs) if callable(use_psql) else use_psql
                worker = ThreadPoolExecutor(max_workers=max(1, workers(jobs) if workers else 1))
                # Exported only for psql: its session imports it (the jobs' queries were
                # planned in this transaction, whose snapshot the first SELECT fixed).
                snapshot = scalar(conn, "select pg_export_snapshot()") if psql else None
                if in_snapshot is not None and psql:
                    # Queued first: with one worker (an export), every conversion follows it.
                    reading = worker.submit(in_snapshot, conn)
                elif in_snapshot is not None:
                    in_snapshot(conn)

                def on_csv_written(index: int) -> None:
                    assert worker is not None
                    pending.append(worker.submit(convert, duck, *jobs[index][3]))
                    while pending and pending[0].done():
                        on_converted(pending.pop(0).result())

                while True:
                    copies = [(item, query, path) for item, query, path, _ in jobs]
                    # The snapshot stays open until psql has imported it; the conversions
                    # still pending below read only local files.
                    if psql and copies:
                        copy_with_psql(url, conn, snapshot, copies, bom, on_csv_written)
                    elif copies:
                        copy_with_psycopg(conn, copies, bom, on_csv_written)
                    if more_jobs is None:
                        break
                    while pending:
                        on_converted(pending.pop(0).result())
                    jobs, more_jobs, psql = more_jobs(conn), None, False
                if reading is not None:
                    reading.result()  # done with the snapshot before it is released
            while pending:
                on_converted(pending.pop(0).result())
        except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
            # LOCK names a relation that is not there: say which ones, and what to do.
            plan_export(conn, items, include_pii, config.mask_url(url))
            raise
        finally:
            for future in [*pending, *([reading] if reading else [])]:
                future.cancel()
            if worker is not None:
                worker.shutdown(wait=True)
    return plans


def begin_snapshot(conn: psycopg.Connection, items: list[ExportItem]) -> None:
    """Settings, then locks, then the first SELECT (which fixes the snapshot), in that order.

    Catalog lookups always see the newest catalog, not the snapshot; so a `run` that
    replaced the views half-way through would change later files. ACCESS SHARE locks on
    every relation (and, for a view, on what it reads) make such a `run` wait until the
    export is done, and taking them before any SELECT means the snapshot already contains
    whatever `run` committed before the locks were granted.
    """
    # One round trip: the statements run in order, the settings first.
    statements = [
        sql.SQL("set local {} = {}").format(sql.SQL(name), sql.Literal(value))
        for name, value in SESSION_SETTINGS
    ]
    statements.append(
        sql.SQL("lock table {} in access share mode").format(
            sql.SQL(", ").join(sql.Identifier(SCHEMA, item.name) for item in items)
        )
    )
    conn.execute(sql.SQL("; ").join(statements))


def plan_export(conn, items: list[ExportItem], include_pii: bool, database: str):
    """Check that every relation exists; each item with the columns it exports."""
    relations = {name: relation.oid for name, relation in analytics_relations(conn).items()}
    missing = [item.name for item in items if item.name not in relations]
    if missing:
        names = ", ".join(f"{SCHEMA}.{name}" for name in missing[:3])
        if len(missing) > 3:
            names += f" and {len(missing) - 3} more"
        raise TrackerError(
            f"{names} {'does' if len(missing) == 1 else 'do'} not exist in {database}. "
            "Build the models first: `python cli.py run`."
        )
    try:
        attributes = _attributes(conn, [relations[item.name] for item in items])
    except psycopg.Error as exc:
        raise export_failed(items[0].name, str(exc)) from None
    plans = []
    for item in items:
        rows = attributes.get(relations[item.name], [])
        present = {row[0] for row in rows}
        unknown = [name for name in item.order_by if name not in present]
        if unknown:
            raise TrackerError(
                f'model "{item.name}" is ordered by "{unknown[0]}", which '
                f"{SCHEMA}.{item.name} does not have. Fix order_by in its config() and "
                "run `python cli.py run`."
            )
        pii = set(item.pii_columns)
        columns = [
            Column(name, pg_type, duckdb_type(type_name, typmod), type_name)
            for name, pg_type, type_name, typmod in rows
            if include_pii or name not in pii
        ]
        plans.append((item, columns))
    return plans


def _attributes(conn, oids: list[int]) -> dict[int, list[tuple]]:
    """Each relation's columns in order, (name, type, typname, typmod), in one catalog query."""
    rows = conn.execute(
        """
        select
            attribute.attrelid as oid,
            attribute.attname as name,
            format_type(attribute.atttypid, attribute.atttypmod) as pg_type,
            type.typname as type_name,
            attribute.atttypmod as typmod
        from pg_attribute as attribute
        inner join pg_type as type
            on type.oid = attribute.atttypid
        where attribute.attrelid = any(cast(%s as oid []))
            and attribute.attnum > 0
            and not attribute.attisdropped
        order by attribute.attrelid, attribute.attnum
        """,
        [oids],
    ).fetchall()
    attributes: dict[int, list[tuple]] = {}
    for oid, *attribute in rows:
        attributes.setdefault(oid, []).append(tuple(attribute))
    return attributes


def can_use_psql(url: str) -> bool:
    try:
        psql_command(url)
    except TrackerError:
        return False
    return True


def copy_with_psycopg(conn, jobs, bom: bool, on_written: Callable[[int], None]) -> None:
    """The same files through psycopg, in this connection's snapshot; ~1.5x slower.

    A job split in parts (see split_query) copies its parts one after the other.
    """
    for index, (item, query, path) in enumerate(jobs):
        parts = query if isinstance(query, tuple) else (query,)
        try:
            with open(path, "wb") as out:
                if bom:
                    out.write(BOM)
                for number, part in enumerate(parts):
                    header = sql.SQL(", header" if number == 0 else "")
                    statement = sql.SQL("copy ({}) to stdout (format csv{})").format(
                        sql.SQL(part), header
                    )
                    with conn.cursor().copy(statement) as copy:
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
            raise export_failed(item.name, str(exc)) from None
        on_written(index)


def split_query(conn, item: ExportItem, columns: list[Column], size: int) -> tuple[str, str] | None:
    """The export query of a large relation as two halves psql can copy side by side.

    Split on the first sort column (an integer) at the middle of its range: every row of the
    first half sorts before every row of the second, so the two outputs, one after the
    other, are byte for byte the whole query's. None when it is not worth a second session
    (a small relation, one core) or cannot be split so (no integer first sort column).
    """
    if size < SPLIT_MIN_BYTES or (os.cpu_count() or 1) < 2:
        return None
    types = {column.name: column.type_name for column in columns}
    first = (list(item.order_by) or [column.name for column in columns])[0]
    if types.get(first) not in ("int2", "int4", "int8"):
        return None
    key, relation = sql.Identifier(first), sql.Identifier(SCHEMA, item.name)
    middle = sql.SQL("(select (min({key}) + max({key})) / 2 from {relation})").format(
        key=key, relation=relation
    )
    return (
        export_query(conn, item, columns, sql.SQL("{} <= {}").format(key, middle)),
        export_query(
            conn, item, columns, sql.SQL("({} > {} or {} is null)").format(key, middle, key)
        ),
    )


# A relation this large (on disk) is copied as two halves in two psql sessions.
SPLIT_MIN_BYTES = 16 << 20


def copy_with_psql(url, conn, snapshot, jobs, bom: bool, on_written: Callable[[int], None]):
    """psql sessions inside the exported snapshot copy each query into its file.

    psql writes the files itself (`\\o file`, then COPY TO STDOUT goes there), exactly as
    `\\copy` would, and after each file echoes a line on its stdout that calls on_written.
    One session, or two when a job is split in halves (split_query): each copies one half
    (the second into a side file, appended to the first when both are written), then the
    other jobs alternately, so both cores work on the largest file.
    """
    literal = lambda value: sql.Literal(value).as_string(conn)  # noqa: E731
    begin = [
        "\\set ON_ERROR_STOP on",
        "set client_encoding = 'UTF8';",
        "begin transaction isolation level repeatable read read only;",
        f"set transaction snapshot {literal(snapshot)};",
        *(f"set local {key} = {literal(value)};" for key, value in SESSION_SETTINGS),
    ]
    count = 2 if any(isinstance(query, tuple) for _, query, _ in jobs) else 1
    scripts: list[list[str]] = [list(begin) for _ in range(count)]
    indexes: list[list[int]] = [[] for _ in range(count)]
    parts_left: dict[int, int] = {}
    turn = 0
    for index, (_, query, path) in enumerate(jobs):
        parts = query if isinstance(query, tuple) else (query,)
        parts_left[index] = len(parts)
        for number, part in enumerate(parts):
            slot = number % count if len(parts) > 1 else turn
            target = path if number == 0 else _side_file(path, number)
            scripts[slot] += _copy_lines(index, part, target, number == 0, bom)
            indexes[slot].append(index)
        if len(parts) == 1:
            turn = (turn + 1) % count
    sessions: list[_PsqlSession] = []
    events: queue.Queue = queue.Queue()
    readers: list[threading.Thread] = []
    finished = 0
    try:
        for script, wanted in zip(scripts, indexes, strict=True):
            sessions.append(_PsqlSession(url, [*script, "commit;"], wanted))
            reader = threading.Thread(target=sessions[-1].read_done, args=(events,), daemon=True)
            readers.append(reader)
            reader.start()
        running = len(sessions)
        while running:
            session, index = events.get()
            if index is None:
                running -= 1
                if session.current is not None:
                    break  # it stopped before its last file: an error
                continue
            session.done += 1
            parts_left[index] -= 1
            if parts_left[index] == 0:
                if isinstance(jobs[index][1], tuple):
                    _append_parts(jobs[index][2], len(jobs[index][1]))
                finished += 1
                on_written(index)
    finally:
        for session in sessions:
            session.stop(kill=finished < len(jobs))
        for reader in readers:
            reader.join()
    failed = [s for s in sessions if s.current is not None or s.process.returncode != 0]
    if failed or finished < len(jobs):
        # The session that failed on its own, not one stopped because of it.
        session = next((s for s in failed if not s.killed), (failed or sessions)[0])
        index = session.current if session.current is not None else session.indexes[-1]
        raise export_failed(jobs[index][0].name, session.errors or "psql stopped")


def _copy_lines(index: int, query: str, path, header: bool, bom: bool) -> list[str]:
    lines = [f"\\o {_psql_quote(str(path))}"]
    if bom and header:
        lines.append("\\qecho -n \ufeff")
    options = "format csv, header" if header else "format csv"
    return [*lines, f"copy ({query}) to stdout ({options});", "\\o", f"\\echo {DONE} {index}"]


def _side_file(path, number: int):
    return path.with_name(f"{path.name}.part{number}")


def _append_parts(path, count: int) -> None:
    """Append the side files of a split job to its first half, in order, and remove them."""
    with open(path, "ab") as target:
        for number in range(1, count):
            side = _side_file(path, number)
            with open(side, "rb") as source:
                shutil.copyfileobj(source, target, CHUNK_BYTES)
            side.unlink()


class _PsqlSession:
    """One psql process running a script that writes the files of `indexes`, in that order."""

    def __init__(self, url: str, lines: list[str], indexes: list[int]):
        command, env = psql_command(url)
        # psql gets the password through its environment, never on the command line.
        child_env = {**os.environ, **env} if env else None
        self.indexes = indexes
        self.done = 0
        self.killed = False
        self.errors = ""
        # Closed in stop(); psql writes its errors here.
        self.error_file = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                [command[0], "--no-psqlrc", "--quiet", *command[1:]],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.error_file,
                env=child_env,
            )
        except OSError as exc:
            self.error_file.close()
            raise TrackerError(
                f"cannot start psql ({command[0]}): {exc.strerror}. "
                "Run `make venv` to reinstall the pgserver wheel."
            ) from None
        # Fed from a thread: a long script must not block on a full pipe while psql waits
        # for its stdout to be read.
        script = ("\n".join(lines) + "\n").encode("utf-8")
        self.feeder = threading.Thread(target=_feed, args=(self.process.stdin, script), daemon=True)
        self.feeder.start()

    @property
    def current(self) -> int | None:
        """The job it is writing now (None once it wrote them all)."""
        return self.indexes[self.done] if self.done < len(self.indexes) else None

    def read_done(self, events: queue.Queue) -> None:
        """Put (self, index) on events as each file is written, then (self, None)."""
        assert self.process.stdout is not None  # stdout=subprocess.PIPE
        for line in self.process.stdout:
            marker, _, written = line.decode("utf-8", "replace").strip().partition(" ")
            if marker == DONE:
                events.put((self, int(written)))
        events.put((self, None))

    def stop(self, kill: bool) -> None:
        """Wait for psql to exit (kill it first when the export is failing)."""
        if kill and self.process.poll() is None:
            self.process.kill()
            self.killed = True
        self.process.wait()
        self.feeder.join()
        self.error_file.seek(0)
        self.errors = self.error_file.read().decode("utf-8", "replace")
        self.error_file.close()


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


def export_failed(name: str, message: str) -> TrackerError:
    return TrackerError(
        f"exporting {SCHEMA}.{name} failed: {database_error(message)}. "
        "Fix the model (or the data), run `python cli.py run`, then export again."
    )


def database_error(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if "ERROR:" in line:
            return line.split("ERROR:", 1)[1].strip().rstrip(".")
    return (lines[0] if lines else "psql failed").rstrip(".")
