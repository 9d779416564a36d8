"""What an export of the lake reads, and reading it: one snapshot, the change log's months and
id ranges, the dimensions' fingerprints, and the copy of what changed into the staging folder
(tracker/pipeline/lake.py explains the design)."""

import os
import threading
from datetime import date
from pathlib import Path

from psycopg import sql

from tracker.errors import TrackerError
from tracker.pipeline.export import FileWritten
from tracker.pipeline.export_snapshot import copy_snapshot, export_query
from tracker.pipeline.lake_layout import (
    DATE_FACTS,
    DIMENSIONS,
    FACT_KEYS,
    FACTS,
    PARTITION_COLUMN,
    YEARS_DIMENSION,
    partition_path,
    staging_name,
)
from tracker.pipeline.lake_parquet import finish_lake_model
from tracker.pipeline.models import inline_sql
from tracker.plumbing import config
from tracker.text import file_sha256


def write_staging(
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

    # Each converting thread has its own cursor on the one DuckDB database: an incremental
    # export converts its changed facts side by side (a month of fact_expenses and one of
    # alerts), while the main thread only waits; a full one converts one model at a time.
    cursors = threading.local()
    opened: list = []

    def convert(_duck, *args):
        duck = getattr(cursors, "duck", None)
        if duck is None:
            duck = cursors.duck = duck_ready.result().cursor()
            opened.append(duck)
            duck.execute("set TimeZone = 'UTC'")
        return finish_lake_model(duck, *args)

    try:
        copy_snapshot(
            url,
            items,
            include_pii=include_pii,
            duck=None,
            plan_jobs=plan_jobs,
            convert=convert,
            on_converted=report,
            bom=False,
            # A few merged months go over this connection; psql pays off for whole reads.
            use_psql=lambda _jobs: use_psql and (full or whole_reads[0]),
            more_jobs=more_jobs,
            workers=lambda jobs: 1 if full else min(len(jobs), os.cpu_count() or 1),
        )
    finally:
        for duck in opened:
            duck.close()
    # The copied CSVs (staging/work) go with the staging folder, once the files are moved.
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
            (staging / staging_name(path)).unlink()
        else:
            moves.append([staging_name(path), path])
    for item, _columns, wanted, _merges in job_plans:
        if item.name in DIMENSIONS:
            continue
        new_paths = {entry["path"] for entry in written_tables.get(item.name, [])}
        for path in sorted(new_paths):
            moves.append([staging_name(path), path])
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
