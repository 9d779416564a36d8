"""Exports: the materialized analytics relations as CSV and Parquet files plus a manifest.

Layout of an export directory (what Power BI reads):

    csv/<model>.csv            UTF-8 (with a byte-order mark unless bom=False), RFC 4180
    parquet/<model>.parquet    typed columns: DECIMAL(p,2) money, DATE, BIGINT, TIMESTAMPTZ...
    manifest.json              per file: rows, bytes, sha256, columns and types, money sums

`export_project` is the `export` command: it builds whatever exported model is missing or
stale against queries/ (runner.ensure_built), then writes the files. Every file comes from
one snapshot (export_snapshot.py: psql copies, a worker thread hashes each file and, with
DuckDB, writes its Parquet twin and counts rows and money totals from it; a CSV-only export
has PostgreSQL count the tables in that snapshot instead, while psql copies); the folder is
replaced all or nothing (export_folder.py).

Nothing here prints or reads the environment: progress goes through callbacks.
"""

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import psycopg
from psycopg import sql

from tracker.errors import InputError, TrackerError
from tracker.pipeline.export_folder import (
    COMMITTED_MARKER,
    FORMATS,
    GENERATOR,
    LOCK_TIMEOUT_SECONDS,
    MANIFEST,
    check_replaceable,
    fsync_path,
    locked,
    make_staging,
    prepare_out_dir,
    recover,
    swap_in,
    write_durably,
)
from tracker.pipeline.export_snapshot import (
    Column,
    ExportItem,
    can_use_psql,
    copy_snapshot,
    database_error,
    export_failed,
    export_query,
    split_query,
)
from tracker.pipeline.models import SCHEMA, Project, Selection, selection_text
from tracker.pipeline.types import CSV_READER, MAX_DECIMAL_PRECISION
from tracker.plumbing import config
from tracker.plumbing.db import connect
from tracker.text import file_sha256, quote_identifier


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
    """What an export wrote: the directory, its manifest and the files it lists.

    models: the models exported; built: (name, seconds) of the models built first because
    they were missing or stale (export_project only).
    """

    out_dir: Path
    manifest: dict
    seconds: float
    files: list[dict] = field(default_factory=list)
    models: list = field(default_factory=list)
    built: list[tuple[str, float]] = field(default_factory=list)


def export_formats(choice: str | Iterable[str]) -> tuple[str, ...]:
    """The formats a choice names: "csv", "parquet", "both", or several of them."""
    chosen = (
        set(FORMATS) if choice == "both" else {choice} if isinstance(choice, str) else set(choice)
    )
    return tuple(fmt for fmt in FORMATS if fmt in chosen)


def export_project(
    url: str,
    project: Project,
    out_dir: Path | str | None = None,
    *,
    select: Selection = None,
    formats: str | Iterable[str] = FORMATS,
    include_pii: bool = False,
    bom: bool = True,
    on_model: Callable[[str, float], None] | None = None,
    on_progress: Callable[[FileWritten], None] | None = None,
    lock_timeout: float = LOCK_TIMEOUT_SECONDS,
    on_wait: Callable[[Path], None] | None = None,
    on_start: Callable[[list, Path], None] | None = None,
) -> ExportResult:
    """`export`: the exported models chosen by select, exactly as queries/ says them now.

    A chosen model (or one it reads) that is missing in schema analytics, or was built from
    SQL other than what queries/ renders now, is built first in this process, in one
    transaction (on_model after each); then every file is written from one snapshot into
    out_dir (default: exports/), as export_models does. on_start(models, out_dir) first.
    """
    from tracker.pipeline.runner import ensure_built

    models = select_export_models(project, select)
    out_dir = Path(config.EXPORTS_DIR if out_dir is None else out_dir)
    if on_start:
        on_start(models, out_dir)
    with connect(url) as conn:
        built = ensure_built(conn, project, models, on_model)
    result = export_models(
        url,
        export_items(models),
        out_dir,
        formats=export_formats(formats),
        include_pii=include_pii,
        bom=bom,
        on_progress=on_progress,
        lock_timeout=lock_timeout,
        on_wait=on_wait,
    )
    return replace(result, models=models, built=built)


def select_export_models(project, spec: Selection = None) -> list:
    """The exported models chosen by spec (all exported models when spec is empty).

    `+name` / `name+` pull in upstream / downstream models; the staging models among them
    are left out, but a model named on its own (no +) that is not exported is an error.
    """
    spec = selection_text(spec)
    chosen = project.select(spec)
    named = {token for token in spec.replace(",", " ").split() if "+" not in token}
    for model in chosen:
        if model.name in named and not model.export:
            exported = ", ".join(m.name for m in project.models.values() if m.export)
            raise InputError(
                f'the selection names model "{model.name}", which is not exported '
                f"(export=False in its config). Choose among: {exported}."
            )
    selected = [model for model in chosen if model.export]
    if not selected:
        raise InputError(
            f'--select "{spec}" chooses no exported model. '
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
        raise InputError("no export format chosen. Use --format csv, parquet or both.")
    out_dir = prepare_out_dir(Path(out_dir))
    with locked(out_dir, lock_timeout, on_wait):
        recover(out_dir)
        check_replaceable(out_dir)
        staging = make_staging(out_dir)
        try:
            manifest, files = _write_generation(
                url,
                items,
                staging,
                formats,
                include_pii,
                bom,
                on_progress,
                can_use_psql(url) if use_psql is None else use_psql,
            )
            for directory in (staging / "new" / fmt for fmt in formats):
                fsync_path(directory)
            fsync_path(staging / "new")
            # From here on the new set is complete: a crash during the swap is rolled
            # forward by the next export (see swap_in), never left half-done.
            write_durably(staging / COMMITTED_MARKER, b"")
            fsync_path(staging)
        except BaseException as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(exc, OSError):
                raise TrackerError(
                    f"writing the export into {out_dir} failed: "
                    f"{exc.strerror or exc}{f' ({exc.filename})' if exc.filename else ''}. "
                    "Free some disk space or choose another --out; the previous export "
                    "is unchanged."
                ) from None
            if isinstance(exc, duckdb.Error):
                raise TrackerError(
                    f"writing a Parquet file failed: {database_error(str(exc))}. "
                    "Run again with --debug for details; the previous export is unchanged."
                ) from None
            raise
        swap_in(out_dir, staging)
    return ExportResult(out_dir, manifest, time.perf_counter() - started, files)


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


def _write_generation(url, items, staging, formats, include_pii, bom, on_progress, use_psql):
    new = staging / "new"
    work = staging / "work"
    for directory in (new, work, *(new / fmt for fmt in formats)):
        directory.mkdir(parents=True, exist_ok=True)
    total = len(items) * len(formats)
    files: list[dict] = []
    duck = _Duck()
    # The commit is asked of git while the files are copied, not after.
    commit: list[str | None] = []
    asking_git = threading.Thread(target=lambda: commit.append(git_commit()), daemon=True)
    asking_git.start()

    def report(entries: list[dict]) -> None:
        for entry in entries:
            files.append(entry)
            if on_progress:
                on_progress(
                    FileWritten(entry["path"], entry["rows"], entry["bytes"], len(files), total)
                )

    csv_dir = new / "csv" if "csv" in formats else work

    def plan_jobs(conn, plans):
        # Largest relation first: its Parquet file, hash and sums are then worked out while
        # psql copies the smaller ones, instead of after the last copy.
        # With psql, the largest is copied in two halves by two sessions (split_query).
        sizes = relation_sizes(conn, [item.name for item, _ in plans])
        jobs: list[tuple] = []
        for item, columns in sorted(plans, key=lambda plan: -sizes.get(plan[0].name, (0, ""))[0]):
            size, kind = sizes.get(item.name, (0, ""))
            query: str | tuple[str, str] = export_query(conn, item, columns)
            if use_psql and not jobs:
                query = split_query(conn, item, columns, size) or query
            path = csv_dir / f"{item.name}.csv"
            if stats_in_database(formats, kind, columns):
                counted.append((item, columns))
            jobs.append((item, query, path, (item, columns, path, new, formats, stats)))
        return jobs

    # CSV only: the rows and money sums of the tables are counted by PostgreSQL in the
    # export's snapshot (so exactly the files' rows) while psql copies them, instead of
    # DuckDB parsing each file again once it is written.
    counted: list[tuple] = []
    stats: dict[str, tuple[int, dict[str, str]]] = {}

    def count_in_snapshot(conn) -> None:
        stats.update(database_stats(conn, counted))

    try:
        plans = copy_snapshot(
            url,
            items,
            include_pii=include_pii,
            duck=duck,
            plan_jobs=plan_jobs,
            convert=_finish_model,
            on_converted=report,
            bom=bom,
            use_psql=use_psql,
            in_snapshot=count_in_snapshot,
        )
    finally:
        duck.close()
    shutil.rmtree(work, ignore_errors=True)
    asking_git.join()
    # The manifest lists the files in the models' order, whatever order they were written in.
    position = {item.name: index for index, (item, _) in enumerate(plans)}
    files.sort(key=lambda entry: (position[entry["model"]], FORMATS.index(entry["format"])))
    manifest = {
        "generator": GENERATOR,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": config.mask_url(url),
        "git_commit": commit[0] if commit else None,
        "formats": list(formats),
        "include_pii": include_pii,
        "csv_bom": bom if "csv" in formats else None,
        "models": [item.name for item, _ in plans],
        "files": files,
    }
    write_durably(new / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
    return manifest, files


def relation_sizes(conn, names: list[str]) -> dict[str, tuple[int, str]]:
    """Bytes on disk (0 for a view) and relkind of each analytics relation.

    The sizes put the largest first; the kind says whether counting it in the database is
    cheap (a table: r, m) or would compute it again (a view: v).
    """
    rows = conn.execute(
        "select class.relname, pg_relation_size(class.oid), class.relkind::text"
        " from pg_class as class"
        " where class.relnamespace = %s::regnamespace and class.relname = any(%s)",
        [SCHEMA, names],
    ).fetchall()
    return {name: (size, kind) for name, size, kind in rows}


def stats_in_database(formats, kind: str, columns: list[Column]) -> bool:
    """Whether a model's rows and money sums are best counted by PostgreSQL.

    Yes for a CSV-only export of a table (or materialized view) whose numeric columns all
    have a declared scale. Otherwise DuckDB counts them from the file written: the Parquet
    file is read anyway, a view would be computed twice, an unsized numeric column is sized
    from the file.
    """
    return (
        "parquet" not in formats
        and kind in ("r", "m")
        and all(column.duckdb_type is not None for column in columns)
    )


def database_stats(conn, plans: list[tuple]) -> dict[str, tuple[int, dict[str, str]]]:
    """Rows and money sums of each (item, columns) relation, in conn's snapshot: one query."""
    if not plans:
        return {}
    selects = []
    for item, columns in plans:
        sums = [
            sql.SQL("coalesce(sum({}), 0)").format(sql.Identifier(column.name))
            for column in columns
            if column.is_money
        ]
        selects.append(
            sql.SQL("select {}, count(*), cast(array[{}] as numeric []) from {}").format(
                sql.Literal(item.name), sql.SQL(", ").join(sums), sql.Identifier(SCHEMA, item.name)
            )
        )
    try:
        rows = conn.execute(sql.SQL(" union all ").join(selects)).fetchall()
    except psycopg.Error as exc:
        raise export_failed(plans[0][0].name, str(exc)) from None
    counts = {name: (count, sums) for name, count, sums in rows}
    stats = {}
    for item, columns in plans:
        count, sums = counts[item.name]
        money = [column.name for column in columns if column.is_money]
        stats[item.name] = (
            count,
            {name: _decimal_text(value) for name, value in zip(money, sums, strict=True)},
        )
    return stats


class _Duck:
    """The export's DuckDB connection, opened on first use (a CSV-only export of tables
    needs none), by the one worker thread that converts files."""

    def __init__(self) -> None:
        self.connection: duckdb.DuckDBPyConnection | None = None

    def get(self) -> duckdb.DuckDBPyConnection:
        if self.connection is None:
            # Every core: the largest relation is copied first, so its conversion (the
            # Parquet file) mostly runs once psql is done (on 2 cores, CSV + Parquet of 1M
            # expenses: best 1.14 s against 1.19 s with one DuckDB thread, 6 runs each).
            self.connection = duckdb.connect(config={"threads": os.cpu_count() or 1})
        return self.connection

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()


def _finish_model(ducks: _Duck, item, columns, csv_path, new, formats, stats) -> list[dict]:
    """Write the Parquet file (if asked) and the manifest entries of one model.

    stats: rows and money sums of the models PostgreSQL counted (stats_in_database); the
    others are counted by DuckDB from the file written.
    """

    def csv_entry(rows, sums) -> dict:
        return _entry(
            item,
            "csv",
            csv_path,
            file_sha256(csv_path, fsync=True),
            rows,
            sums,
            [(column.name, column.pg_type) for column in columns],
        )

    if item.name in stats:
        return [csv_entry(*stats[item.name])]
    duck = ducks.get()
    columns = size_decimals(duck, item, columns, csv_path)
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
        rows, sums = file_stats(duck, "read_parquet($path)", {"path": str(parquet_path)}, columns)
    else:
        rows, sums = file_stats(duck, CSV_READER, csv_params, columns)
    if "csv" in formats:
        entries.append(csv_entry(rows, sums))
    if "parquet" in formats:
        entries.append(
            _entry(
                item,
                "parquet",
                parquet_path,
                file_sha256(parquet_path, fsync=True),
                rows,
                sums,
                [(column.name, column.duckdb_type) for column in columns],
            )
        )
    return entries


def size_decimals(duck, item, columns: list[Column], csv_path: Path) -> list[Column]:
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
        for quoted in map(quote_identifier, unsized)
    )
    (row,) = duck.execute(
        f"select {measures} from {CSV_READER}", {"path": str(csv_path), "columns": as_text}
    ).fetchall()
    sized = {}
    for index, name in enumerate(unsized):
        digits, scale = row[2 * index] or 1, row[2 * index + 1] or 0
        if digits + scale > MAX_DECIMAL_PRECISION:
            raise TrackerError(
                f'column "{name}" of {SCHEMA}.{item.name} holds numbers with more than '
                f"{MAX_DECIMAL_PRECISION} digits, which Parquet's DECIMAL cannot store exactly. "
                "Cast it to numeric(p, s) with p <= 38 in the model."
            )
        sized[name] = f"DECIMAL({MAX_DECIMAL_PRECISION},{scale})"
    return [
        replace(column, duckdb_type=sized[column.name]) if column.name in sized else column
        for column in columns
    ]


def file_stats(duck, source: str, params: dict, columns: list[Column]):
    money = [column.name for column in columns if column.is_money]
    aggregates = ", ".join(
        ["count(*)"]
        + [f"coalesce(sum({quote_identifier(name)}), 0)::decimal(38, 2)" for name in money]
    )
    (row,) = duck.execute(f"select {aggregates} from {source}", params).fetchall()
    return row[0], {name: _decimal_text(value) for name, value in zip(money, row[1:], strict=True)}


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
