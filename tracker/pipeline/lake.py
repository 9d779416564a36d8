"""The lake: the facts as hive-partitioned Parquet, rewritten incrementally, plus the dimensions.

Layout of a lake directory (what DuckDB, Spark and Power BI read):

    fact_expenses/year=2025/month=2025-05-01/part-00000.parquet   one file per month
    fact_budgets/year=.../month=.../part-00000.parquet
    alerts/year=.../month=.../part-00000.parquet
    dim_user.parquet, dim_category.parquet, dim_date.parquet      single files
    manifest.json     per file: rows, bytes, sha256, columns and money sums (and its partition)

The partition key is `month=<first day>`, not `month=5`: every fact has a DATE column called
month, and a hive reader (DuckDB, Spark) replaces a file's column with the directory's value
of the same name, so `month=5` would turn the DATE into the integer 5 (tested on both).
With the first day, the directory's value and the column agree and stay a DATE; `year` is
an extra column readers get for partition pruning. The files themselves hold exactly the
model's columns, with the types of the plain export (DECIMAL, DATE, BIGINT, TIMESTAMPTZ):
the type mapping, the snapshot and the copy are tracker/pipeline/export.py's.

Incremental: the database records which months a statement touched (V009, table
lake_changes, filled by statement-level triggers, with the writer's transaction id). Each
lake has an id (in its manifest) and the database keeps the snapshot of its last export
(lake_exports). An export opens one repeatable-read snapshot, reads there the change rows
whose transaction the lake's previous snapshot did not see, copies only those months of
those facts, and once the new files are in place records its own snapshot for the lake.
A writer that commits after the snapshot is invisible to it, and its change row is
invisible to the recorded snapshot too: it is in the next export, never lost, whatever
order ids were handed out in. Change rows every known lake has seen are deleted.
Each change row also carries the smallest and largest id the statement touched in that month
(V011), so a changed month is read from PostgreSQL only in that id range (by primary key) and
merged with the partition file the lake has (checked against the manifest first).

The dimensions are read only when what they are made of changed, decided in the same
snapshot without reading them: each manifest entry keeps a fingerprint, for dim_user and
dim_category the md5 of their rows as the file gets them (PostgreSQL computes it over the
export query and sends 40 bytes), for dim_date the first and last year of the facts' months
(its rows are the days of those years, and reading it scans every expense). An incremental
export that reads only id ranges copies them over its own connection (COPY TO STDOUT), not
through a psql process, and renders only the models it reads.

Crash safety: new files are written into a hidden staging folder inside the lake (readers
skip names starting with "."), flat (one folder to fsync); the files, the new manifest and
the journal listing every move and removal are fsynced together, then the journal is moved
into the lake (the commit point); each file is then moved over the old one with rename(),
so a reader sees every partition whole, old or new; the manifest is moved in last, every
changed folder fsynced, and the journal removed. An export killed before the journal leaves
the lake untouched (and its change rows unconsumed); one killed after it is rolled forward by
the next export before anything else, so the manifest always ends up describing exactly the
files that are there.

Nothing here prints or reads the environment: progress goes through a callback.
"""

import contextlib
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
from psycopg import sql

from tracker.errors import InputError, TrackerError
from tracker.pipeline.export import FileWritten, export_items, file_stats, git_commit, size_decimals
from tracker.pipeline.export_folder import fsync_directory, locked, prepare_out_dir, write_durably
from tracker.pipeline.export_snapshot import can_use_psql, copy_snapshot, export_query
from tracker.pipeline.models import inline_sql
from tracker.pipeline.types import CSV_READER
from tracker.plumbing import config
from tracker.plumbing.db import connect
from tracker.text import file_sha256
from tracker.text import quote_identifier as _duck_identifier

FACTS = ("fact_expenses", "fact_budgets", "alerts")
# Each fact's key: the id of its base table, the id the change log's ranges are made of.
FACT_KEYS = {"fact_expenses": "expense_id", "fact_budgets": "budget_id", "alerts": "alert_id"}
DIMENSIONS = ("dim_user", "dim_category", "dim_date")
LAKE_MODELS = FACTS + DIMENSIONS
PARTITION_COLUMN = "month"
MANIFEST = "manifest.json"
JOURNAL = ".lake-journal.json"
STAGING_PREFIX = ".lake-staging-"
LAYOUT = 1
PART_FILE = "part-00000.parquet"
# The dimension whose rows follow the years the date facts span (see _years_fingerprint).
YEARS_DIMENSION = "dim_date"
DATE_FACTS = ("fact_expenses", "fact_budgets")
GENERATOR = "smart-spending-tracker export --lake"


@dataclass
class LakeResult:
    """What a lake export did: full or incremental, which files it wrote and removed."""

    lake_dir: Path
    manifest: dict
    full: bool
    written: list[str]
    removed: list[str]
    unchanged_dimensions: list[str]
    changes_consumed: int
    seconds: float


def partition_path(model: str, month: date) -> str:
    """The lake path of one fact's month: fact/year=YYYY/month=YYYY-MM-01/part-00000.parquet."""
    return f"{model}/year={month.year}/month={month.isoformat()}/{PART_FILE}"


def is_lake_manifest(manifest: dict) -> bool:
    """True for a manifest written by export --lake (the plain export's has no layout)."""
    return manifest.get("generator") == GENERATOR


def export_lake(
    url: str,
    project,
    lake_dir: Path | str,
    *,
    full: bool = False,
    include_pii: bool = False,
    on_progress: Callable[[FileWritten], None] | None = None,
    use_psql: bool | None = None,
) -> LakeResult:
    """Write (or bring up to date) the lake in lake_dir; only changed partitions unless full."""
    started = time.perf_counter()
    missing = [name for name in LAKE_MODELS if name not in project.models]
    if missing:
        raise TrackerError(
            f'the lake needs model "{missing[0]}", which queries/ does not have. '
            "Restore it from git."
        )
    # Opening DuckDB costs tens of milliseconds of CPU (its catalog), asking git for the
    # commit a process: both done in threads while the lake is locked, recovered and the
    # snapshot read, not after.
    opener = ThreadPoolExecutor(max_workers=2)
    duck_ready = opener.submit(_open_duckdb)
    commit = opener.submit(git_commit)
    opener.shutdown(wait=False)
    try:
        return _export_lake(
            url,
            project,
            lake_dir,
            full,
            include_pii,
            on_progress,
            use_psql,
            duck_ready,
            started,
            commit,
        )
    finally:
        with contextlib.suppress(duckdb.Error):
            duck_ready.result().close()


def _open_duckdb():
    duck = duckdb.connect(config={"threads": max(1, (os.cpu_count() or 2) // 2)})
    duck.execute("set TimeZone = 'UTC'")
    return duck


def _export_lake(
    url, project, lake_dir, full, include_pii, on_progress, use_psql, duck_ready, started, commit
) -> LakeResult:
    models = [project[name] for name in LAKE_MODELS]
    items = export_items(models)
    fingerprint = _models_fingerprint(project, models)
    lake_dir = prepare_out_dir(Path(lake_dir))
    with locked(lake_dir):
        recover_lake(lake_dir)
        previous = _previous_manifest(lake_dir)
        reason = None
        if full:
            reason = "--full"
        elif previous is None:
            reason = "no lake yet"
        elif previous.get("layout") != LAYOUT or previous.get("models_sha256") != fingerprint:
            reason = "the models changed"
        elif bool(previous.get("include_pii")) != include_pii:
            reason = "--include-pii changed"
        staging = lake_dir / f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
        staging.mkdir()
        try:
            lake_id = (previous or {}).get("lake_id") or uuid.uuid4().hex
            plan = _write_staging(
                url,
                items,
                staging,
                previous,
                reason,
                lake_id,
                include_pii,
                on_progress,
                can_use_psql(url) if use_psql is None else use_psql,
                project,
                duck_ready,
            )
            manifest = _next_manifest(
                url, previous, plan, fingerprint, include_pii, lake_id, commit.result()
            )
            journal = {
                "staging": staging.name,
                "moves": plan["moves"],
                "removals": plan["removals"],
                "manifest": manifest,
            }
            # Every staged file, the new manifest (staged too, moved in last) and the journal
            # are made durable together (one batch of fsyncs, not one after the other), and
            # the staging folder's names with them; then the commit point: from here on the
            # next export rolls this one forward. The journal is compact JSON (the C encoder).
            (staging / MANIFEST).write_bytes(_json_bytes(manifest))
            (staging / "journal.tmp").write_bytes(json.dumps(journal).encode("utf-8"))
            fsync_all(
                [staging / source for source, _ in plan["moves"]]
                + [staging / MANIFEST, staging / "journal.tmp", staging]
            )
            os.replace(staging / "journal.tmp", lake_dir / JOURNAL)
            fsync_directory(lake_dir)
        except BaseException as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(exc, OSError):
                raise TrackerError(
                    f"writing the lake into {lake_dir} failed: "
                    f"{exc.strerror or exc}{f' ({exc.filename})' if exc.filename else ''}. "
                    "Free some disk space or choose another folder; the lake is unchanged."
                ) from None
            if isinstance(exc, duckdb.Error):
                raise TrackerError(
                    f"writing a Parquet file of the lake failed: {exc}. "
                    "Run again with --debug for details; the lake is unchanged."
                ) from None
            raise
        recover_lake(lake_dir)
    _record_export(url, manifest["lake_id"], plan["snapshot"])
    return LakeResult(
        lake_dir,
        manifest,
        manifest["last_export"]["kind"] == "full",
        [move[1] for move in plan["moves"]],
        plan["removals"],
        plan["unchanged"],
        plan["changes_read"],
        time.perf_counter() - started,
    )


def recover_lake(lake_dir: Path) -> bool:
    """Finish an export that committed its journal; drop staging folders that never did.

    Safe to repeat after a crash at any step: a move whose source is gone was done, a
    removal of a missing file was done. Returns True when a journal was rolled forward.
    """
    journal_path = lake_dir / JOURNAL
    rolled = False
    if journal_path.exists():
        journal = json.loads(journal_path.read_text(encoding="utf-8"))
        staging = lake_dir / journal["staging"]
        touched: set[Path] = set()
        for source, target in journal["moves"]:
            source_path, target_path = staging / source, lake_dir / target
            if source_path.exists():
                folder = target_path.parent
                # A new month (year, fact) folder: the folder holding it is changed too.
                while not folder.is_dir():
                    touched.add(folder.parent)
                    folder = folder.parent
                target_path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source_path, target_path)
                touched.add(target_path.parent)
        for relative in journal["removals"]:
            path = lake_dir / relative
            if path.exists():
                path.unlink()
            touched.add(path.parent)
            # An emptied month (and year) folder goes too, so readers see no empty partition.
            for folder in (path.parent, path.parent.parent):
                if folder.is_dir() and folder != lake_dir and not any(folder.iterdir()):
                    folder.rmdir()
                    touched.add(folder.parent)
        # The manifest last: staged (and fsynced) with the files, or, for a journal whose
        # manifest was already moved in (or an older journal), written from the journal.
        if (staging / MANIFEST).exists():
            os.replace(staging / MANIFEST, lake_dir / MANIFEST)
        else:
            write_durably(lake_dir / f"{MANIFEST}.tmp", _json_bytes(journal["manifest"]))
            os.replace(lake_dir / f"{MANIFEST}.tmp", lake_dir / MANIFEST)
        # Every changed folder durable, in one batch, before the journal goes.
        touched.add(lake_dir)
        fsync_all(sorted(folder for folder in touched if folder.is_dir()))
        # Not fsynced: should the journal come back after a power cut, rolling it forward
        # again changes nothing, and the next export's commit point makes its removal durable.
        journal_path.unlink()
        rolled = True
    for staging in lake_dir.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(staging, ignore_errors=True)
    stale = lake_dir / f"{MANIFEST}.tmp"
    if stale.exists():
        stale.unlink()
    return rolled


# --- reading the snapshot --------------------------------------------------------------------


def _write_staging(
    url,
    items,
    staging,
    previous,
    reason,
    lake_id,
    include_pii,
    on_progress,
    use_psql,
    project,
    duck_ready,
):
    """Copy what changed into staging; the moves, removals and snapshot of this export.

    Each model is read from its own SQL over the base tables (models.inline_sql, rendered
    only for the models read), not from the table `run` built, so the lake holds the
    snapshot's rows even when `run` has not been run since the last write: the change log
    and the files always describe the same rows. A dimension is read only when its
    fingerprint (see _dimension_fingerprints) differs from the one its manifest entry keeps.
    """
    lake_dir = staging.parent
    work = staging / "work"
    work.mkdir()
    old_files = {entry["path"]: entry for entry in (previous or {}).get("files", [])}
    moves: list[list[str]] = []
    removals: list[str] = []
    unchanged: list[str] = []
    entries: dict[str, dict] = {}
    written_tables: dict[str, list[dict]] = {}
    columns_by_model: dict[str, list] = {}
    total_files = [0]
    rendered: dict[str, str] = {}

    def source(name: str) -> str:
        if name not in rendered:
            rendered[name] = inline_sql(project, name)
        return rendered[name]

    def report(result) -> None:
        name, new_entries = result
        for entry in new_entries:
            entries[entry["path"]] = entry
            total_files[0] += 1
            if on_progress:
                on_progress(
                    FileWritten(
                        entry["path"], entry["rows"], entry["bytes"], total_files[0], total_files[0]
                    )
                )
        written_tables[name] = new_entries

    # Set by plan_jobs, inside the snapshot; read below once the copy is done.
    full = False
    job_plans: list = []
    snapshot_seen: str | None = None
    changes: list = []
    months: dict = {}
    fingerprints: dict[str, str] = {}
    plans_by_name: dict = {}
    whole_reads = [False]

    def job(conn, item, columns, wanted):
        merges = _merge_sources(lake_dir, item.name, columns, wanted, old_files)
        where = _changed_rows(item.name, wanted, merges)
        if item.name in FACTS and (wanted is None or len(merges) < len(wanted)):
            whole_reads[0] = True
        query = export_query(conn, item, columns, where, source(item.name))
        path = work / f"{item.name}.csv"
        job_plans.append((item, columns, wanted, merges))
        return (item, query, path, (item, columns, path, staging, wanted, merges))

    def plan_jobs(conn, plans):
        nonlocal reason, full, snapshot_seen, changes, months
        (snapshot_seen, migrated) = conn.execute(
            "select cast(pg_current_snapshot() as text), "
            "to_regclass('public.lake_exports') is not null"
        ).fetchone()
        if not migrated:
            raise TrackerError(
                f"{config.mask_url(url)} has no lake change log (migration "
                "V009). Run `python cli.py db-init` to migrate it, then export again."
            )
        row = conn.execute(
            "select cast(snapshot as text) from lake_exports where lake_id = %s",
            [lake_id],
        ).fetchone()
        if reason is None and row is None:
            reason = "the database has no record of this lake"
        changes = (
            []
            if reason is not None
            else conn.execute(
                "select fact, month, min(first_id), max(last_id), "
                "bool_or(first_id is null) from lake_changes "
                "where not pg_visible_in_snapshot(txid, cast(%s as pg_snapshot)) "
                "group by fact, month",
                [row[0]],
            ).fetchall()
        )
        full = reason is not None
        months = dict.fromkeys(FACTS) if full else _changed_months(changes)
        plans_by_name.update((item.name, (item, columns)) for item, columns in plans)
        fingerprints.update(_dimension_fingerprints(conn, plans_by_name, source))
        jobs = []
        for item, columns in plans:
            columns_by_model[item.name] = columns
            wanted = months.get(item.name) if item.name in FACTS else None
            if item.name in FACTS and wanted is not None and not wanted:
                continue
            # dim_date's fingerprint needs the facts' months: decided in more_jobs.
            if (
                item.name in DIMENSIONS
                and not full
                and (
                    item.name == YEARS_DIMENSION
                    or _unchanged_dimension(item.name, columns, fingerprints, old_files, lake_dir)
                )
            ):
                continue
            jobs.append(job(conn, item, columns, wanted))
        return jobs

    def more_jobs(conn):
        """dim_date, once the facts are written, if the years they span moved (incremental)."""
        if full or YEARS_DIMENSION not in plans_by_name:
            return []
        fingerprints[YEARS_DIMENSION] = _years_fingerprint(
            _fact_months(old_files, written_tables, months)
        )
        item, columns = plans_by_name[YEARS_DIMENSION]
        if _unchanged_dimension(item.name, columns, fingerprints, old_files, lake_dir):
            return []
        return [job(conn, item, columns, None)]

    copy_snapshot(
        url,
        items,
        include_pii=include_pii,
        duck=None,
        plan_jobs=plan_jobs,
        convert=lambda _duck, *args: _finish_lake_model(duck_ready.result(), *args),
        on_converted=report,
        bom=False,
        # A few merged months go over this connection; psql pays off for whole reads.
        use_psql=lambda _jobs: use_psql and (full or whole_reads[0]),
        more_jobs=more_jobs,
    )
    shutil.rmtree(work, ignore_errors=True)
    if YEARS_DIMENSION not in fingerprints:
        fingerprints[YEARS_DIMENSION] = _years_fingerprint(
            _fact_months(old_files, written_tables, months)
        )

    # Which files move in, which old ones go: per fact, the months it re-read.
    read = {item.name for item, *_ in job_plans}
    for name in DIMENSIONS:
        path = f"{name}.parquet"
        if name not in read:
            if name in plans_by_name:
                unchanged.append(path)
                entries[path] = old_files[path]
            continue
        (entry,) = written_tables[name]
        entry["source_fingerprint"] = fingerprints.get(name)
        old = old_files.get(path)
        if old and old.get("sha256") == entry["sha256"] and not full:
            unchanged.append(path)
            entries[path] = {**old, "source_fingerprint": entry["source_fingerprint"]}
            (staging / _staging_name(path)).unlink()
        else:
            moves.append([_staging_name(path), path])
    for item, _columns, wanted, _merges in job_plans:
        if item.name in DIMENSIONS:
            continue
        new_paths = {entry["path"] for entry in written_tables.get(item.name, [])}
        for path in sorted(new_paths):
            moves.append([_staging_name(path), path])
        for path, old in old_files.items():
            if old.get("model") != item.name or path in new_paths:
                continue
            month = date.fromisoformat(old["partition"]["month"])
            if wanted is None or month in wanted:
                removals.append(path)
    return {
        "moves": moves,
        "removals": sorted(removals),
        "unchanged": unchanged,
        "entries": entries,
        "columns": columns_by_model,
        "snapshot": snapshot_seen,
        "changes_read": len(changes),
        "reason": reason,
        "old_files": old_files,
    }


def _dimension_fingerprints(conn, plans_by_name: dict, source) -> dict[str, str]:
    """What each small dimension's file is made of, read cheaply in the snapshot.

    dim_user and dim_category: the md5 of their rows as the file would get them (the export
    query, in order), computed by PostgreSQL without sending them; equal fingerprint and
    columns, same bytes. dim_date is not read here: see _years_fingerprint.
    """
    names = [name for name in DIMENSIONS if name in plans_by_name and name != YEARS_DIMENSION]
    if not names:
        return {}
    terms = []
    for name in names:
        item, columns = plans_by_name[name]
        query = export_query(conn, item, columns, None, source(name))
        order = sql.SQL(", ").join(
            sql.SQL("q.{}").format(sql.Identifier(key))
            for key in (item.order_by or [column.name for column in columns])
        )
        terms.append(
            sql.SQL(
                "(select 'rows ' || count(*) || ' md5 ' || "
                "md5(coalesce(string_agg(cast(q as text), E'\\n' order by {}), '')) "
                "from ({}) as q)"
            ).format(order, sql.SQL(query))
        )
    row = conn.execute(sql.SQL("select {}").format(sql.SQL(", ").join(terms))).fetchone()
    return dict(zip(names, row, strict=True))


def _years_fingerprint(fact_months: set[date]) -> str:
    """dim_date's fingerprint: the first and last year holding an expense date or a budget
    month. queries/marts/dim_date.sql makes one row per day of those whole years and reads
    nothing else, and the lake's fact_expenses and fact_budgets partitions (one per month of
    those dates) say which years they are, so no table is read to decide (its full read
    scans every expense). A change of dim_date.sql changes the models' fingerprint: --full.
    """
    years = sorted({month.year for month in fact_months})
    return f"years {years[0]}-{years[-1]}" if years else "years none"


def _fact_months(old_files: dict, written_tables: dict, months: dict) -> set[date]:
    """The months of fact_expenses and fact_budgets the lake holds after this export."""
    held = set()
    for fact in DATE_FACTS:
        wanted = months.get(fact, {})
        for entry in written_tables.get(fact, []):
            held.add(date.fromisoformat(entry["partition"]["month"]))
        if wanted is None:
            continue  # every month was re-read: only the files just written
        for entry in old_files.values():
            if entry.get("model") == fact:
                month = date.fromisoformat(entry["partition"]["month"])
                if month not in wanted:
                    held.add(month)
    return held


def _unchanged_dimension(name, columns, fingerprints, old_files, lake_dir: Path) -> bool:
    """True when the lake's file of the dimension already holds what the snapshot would give."""
    path = f"{name}.parquet"
    old = old_files.get(path)
    names = [{"name": column.name, "type": column.duckdb_type} for column in columns]
    return (
        old is not None
        and name in fingerprints
        and old.get("source_fingerprint") == fingerprints[name]
        and old.get("columns") == names
        and (lake_dir / path).exists()
    )


def fsync_all(paths: list[Path]) -> None:
    """fsync files and folders at once, from threads: the file system writes its journal once
    for the lot instead of once per path (the export's fsyncs were a good part of a small
    incremental export's time)."""
    if len(paths) <= 1:
        for path in paths:
            _fsync_path(path)
        return
    with ThreadPoolExecutor(max_workers=min(len(paths), 8)) as pool:
        for done in [pool.submit(_fsync_path, path) for path in paths]:
            done.result()


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _staging_name(relative: str) -> str:
    """A lake file's name in the staging folder: flat, so one fsync of the folder makes every
    staged name durable (fact/year=/month=/part -> fact.year=.month=.part)."""
    return relative.replace("/", ".")


def _changed_months(changes) -> dict[str, dict[date, tuple[int, int] | None] | None]:
    """Per fact, the months to rewrite and the id range of their changed rows.

    None for a fact: every month (a TRUNCATE); None for a month: all its rows (a change
    logged without ids, before V011). Otherwise only rows with an id in the range can
    differ from the partition file the lake has.
    """
    months: dict[str, dict[date, tuple[int, int] | None] | None] = {fact: {} for fact in FACTS}
    for fact, month, first_id, last_id, whole in changes:
        fact_months = months.get(fact)
        if fact_months is None:
            continue
        if month is None:
            months[fact] = None
        else:
            fact_months[month] = None if whole else (first_id, last_id)
    return months


def _merge_sources(lake_dir: Path, fact: str, columns, wanted, old_files) -> dict:
    """The changed months that can be merged: month -> (the lake's file, first id, last id).

    Such a month is its partition file without the rows in the id range, plus the rows in
    that range read from the snapshot. Only when the file is the one the manifest describes
    (same columns and types, same sha256); otherwise the month is read whole.
    """
    if not wanted:
        return {}
    names = [{"name": column.name, "type": column.duckdb_type} for column in columns]
    merges = {}
    for month, ids in wanted.items():
        if ids is None:
            continue
        entry = old_files.get(partition_path(fact, month))
        path = lake_dir / partition_path(fact, month)
        if entry is None:
            merges[month] = (None, *ids)  # a new month: the lake has no row of it
        elif (
            entry.get("columns") == names and path.exists() and file_sha256(path) == entry["sha256"]
        ):
            merges[month] = (path, *ids)
    return merges


def _changed_rows(fact: str, wanted, merges) -> sql.Composable | None:
    """The WHERE of a fact's incremental read: its whole changed months, the id ranges of the
    merged ones (the primary key finds those rows without reading the month)."""
    if wanted is None:
        return None
    key = sql.Identifier(FACT_KEYS[fact])
    month = sql.Identifier(PARTITION_COLUMN)
    terms = [
        sql.SQL("({} = {} and {} between {} and {})").format(
            month, sql.Literal(changed), key, sql.Literal(first), sql.Literal(last)
        )
        for changed, (_path, first, last) in sorted(merges.items())
    ]
    whole = sorted(changed for changed in wanted if changed not in merges)
    if whole:
        terms.append(sql.SQL("{} = any({})").format(month, sql.Literal(whole)))
    return sql.SQL(" or ").join(terms)


def _finish_lake_model(duck, item, columns, csv_path: Path, staging: Path, wanted, merges):
    """Write one model's Parquet file(s) into staging: one per month for a fact.

    A merged month (see _merge_sources) is the lake's old file without the id range, plus
    the range's rows just read; every other month is the rows just read.
    """
    columns = size_decimals(duck, item, columns, csv_path)
    params = {
        "path": str(csv_path),
        "columns": {column.name: column.duckdb_type for column in columns},
    }
    order = ", ".join(_duck_identifier(name) for name in item.order_by)
    names = [(column.name, column.duckdb_type) for column in columns]
    if item.name in DIMENSIONS:
        target = staging / f"{item.name}.parquet"
        duck.sql(f"select * from {CSV_READER} order by {order}", params=params).write_parquet(
            str(target), compression="snappy"
        )
        rows, sums = file_stats(duck, "read_parquet($path)", {"path": str(target)}, columns)
        return item.name, [_lake_entry(item.name, target.name, target, rows, sums, names, None)]
    table = f"lake_{item.name}"
    duck.execute(f"create or replace temp table {table} as select * from {CSV_READER}", params)
    months = {
        row[0]
        for row in duck.execute(f"select distinct {PARTITION_COLUMN} from {table}").fetchall()
    }
    select_list = ", ".join(_duck_identifier(column.name) for column in columns)
    key = _duck_identifier(FACT_KEYS[item.name])
    # Every month is written through the same union with an empty Parquet file (and, for a
    # merged month, the lake's old one). DuckDB marks a column REQUIRED when the statistics
    # of what it reads show no null, and an empty Parquet file brings none; so every column is
    # OPTIONAL and a file's bytes depend on its rows alone: an incremental export writes the
    # very bytes a full one would (tests/test_lake.py compares the sha256).
    empty = csv_path.with_suffix(".empty.parquet")
    duck.sql(f"select * from {table} limit 0").write_parquet(str(empty))
    query = (
        f"select * from (select * from {table} where {PARTITION_COLUMN} = $month union all "
        f"select {select_list} from read_parquet($old) where {key} not between $first and $last "
        f"union all select {select_list} from read_parquet($empty)) order by {order}"
    )
    entries = []
    for month in sorted(months | {month for month, merge in merges.items() if merge[0]}):
        relative = partition_path(item.name, month)
        target = staging / _staging_name(relative)
        old_path, first, last = merges.get(month, (None, 0, 0))
        relation = duck.sql(
            query,
            params={
                "month": month,
                "old": str(old_path or empty),
                "first": first,
                "last": last,
                "empty": str(empty),
            },
        )
        if month not in months and relation.aggregate("count(*)").fetchall() == [(0,)]:
            continue  # every row of a merged month was deleted: its old file is removed
        relation.write_parquet(str(target), compression="snappy")
        rows, sums = file_stats(duck, "read_parquet($path)", {"path": str(target)}, columns)
        entries.append(_lake_entry(item.name, relative, target, rows, sums, names, month))
    duck.execute(f"drop table {table}")
    return item.name, entries


def _lake_entry(model, relative, path: Path, rows, sums, columns, month) -> dict:
    entry = {
        "path": relative,
        "model": model,
        "format": "parquet",
        "rows": rows,
        "bytes": path.stat().st_size,
        "sha256": file_sha256(path),
        "columns": [{"name": name, "type": type_} for name, type_ in columns],
        "money_sums": sums,
    }
    if month is not None:
        entry["partition"] = {"year": month.year, "month": month.isoformat()}
    return entry


# --- the manifest and the change log ---------------------------------------------------------


def _next_manifest(url, previous, plan, fingerprint, include_pii, lake_id, commit) -> dict:
    """The manifest after this export: old entries of untouched files, new ones of the rest."""
    reason = plan["reason"]
    removed = set(plan["removals"])
    files = {path: entry for path, entry in plan["old_files"].items() if path not in removed}
    if reason is not None:
        # A full export describes only what it wrote.
        files = {}
    files.update(plan["entries"])
    ordered = sorted(
        files.values(),
        key=lambda entry: (
            LAKE_MODELS.index(entry["model"]) if entry["model"] in LAKE_MODELS else 99,
            entry["path"],
        ),
    )
    return {
        "generator": GENERATOR,
        "layout": LAYOUT,
        "lake_id": lake_id,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": config.mask_url(url),
        "git_commit": commit,
        "include_pii": include_pii,
        "models_sha256": fingerprint,
        "last_export": {
            "kind": "full" if reason is not None else "incremental",
            "reason": reason,
            "files_written": len(plan["moves"]),
            "files_removed": len(plan["removals"]),
            "changed_months_read": plan["changes_read"],
        },
        "tables": {
            name: {
                "kind": "fact" if name in FACTS else "dimension",
                "path": name if name in FACTS else f"{name}.parquet",
                "partitioned_by": ["year", "month"] if name in FACTS else [],
                "columns": [
                    {"name": column.name, "type": column.duckdb_type}
                    for column in plan["columns"].get(name, [])
                ],
            }
            for name in LAKE_MODELS
        },
        "files": ordered,
    }


def _record_export(url: str, lake_id: str, snapshot: str) -> None:
    """Remember what this lake has seen; drop change rows that every known lake has seen."""
    with connect(url) as conn, conn.transaction():
        conn.execute(
            "insert into lake_exports (lake_id, snapshot) values (%s, cast(%s as pg_snapshot)) "
            "on conflict (lake_id) do update set snapshot = excluded.snapshot, "
            "exported_at = now()",
            [lake_id, snapshot],
        )
        conn.execute(
            """
                delete from lake_changes
                where not exists (
                    select 1
                    from lake_exports
                    where not pg_visible_in_snapshot(lake_changes.txid, lake_exports.snapshot)
                )
                """
        )


def _previous_manifest(lake_dir: Path) -> dict | None:
    path = lake_dir / MANIFEST
    if not path.exists():
        foreign = [
            name
            for name in LAKE_MODELS
            if (lake_dir / name).exists() or (lake_dir / f"{name}.parquet").exists()
        ]
        if foreign or (lake_dir / "csv").exists() or (lake_dir / "parquet").exists():
            raise InputError(
                f"{lake_dir} holds data but no {MANIFEST}, so it was not written by "
                "`export --lake`. Choose an empty folder or an existing lake for --lake."
            )
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise TrackerError(
            f"{path} is not valid JSON. Rebuild the lake: `python cli.py export --lake "
            f"{lake_dir} --full`."
        ) from None
    if not is_lake_manifest(manifest):
        raise InputError(
            f"{lake_dir} holds a plain export ({MANIFEST} of `cli.py export`), not a "
            "lake. Choose another folder for --lake, e.g. exports/lake."
        )
    return manifest


def _models_fingerprint(project, models) -> str:
    """sha256 of the lake's model files, what they read and the macros: a change means --full.

    The template bytes, not the rendered SQL: rendering every model costs more than a small
    incremental export itself.
    """
    names = set()
    for model in models:
        names.add(model.name)
        names |= project.upstream(model.name)
    paths = [project[name].path for name in sorted(names)]
    paths += sorted((project.queries_dir / "macros").glob("*.sql"))
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _json_bytes(manifest: dict) -> bytes:
    """The manifest indented, each file's entry on one line: json's indenting encoder is
    pure Python, and a lake's manifest lists hundreds of files, rewritten by every export."""
    fields = []
    for key, value in manifest.items():
        if key == "files" and value:
            text = "[\n" + ",\n".join(f"    {json.dumps(entry)}" for entry in value) + "\n  ]"
        else:
            text = json.dumps(value, indent=2).replace("\n", "\n  ")
        fields.append(f"  {json.dumps(key)}: {text}")
    return ("{\n" + ",\n".join(fields) + "\n}\n").encode("utf-8")
