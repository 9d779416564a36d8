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

Here: the export as a whole. Its parts: lake_layout (names and paths), lake_read (the
snapshot, what changed, the copy), lake_parquet (the files), lake_journal (the commit point,
recovery, fsyncs) and lake_manifest (the manifest and the record of what a lake has seen).
Nothing here prints or reads the environment: progress goes through a callback.
"""

import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb

from tracker.errors import TrackerError
from tracker.pipeline.export import FileWritten, export_items, git_commit
from tracker.pipeline.export_folder import locked, prepare_out_dir
from tracker.pipeline.export_snapshot import can_use_psql
from tracker.pipeline.lake_journal import JOURNAL, commit_journal, recover_lake
from tracker.pipeline.lake_layout import LAKE_MODELS, LAYOUT, STAGING_PREFIX
from tracker.pipeline.lake_manifest import (
    models_fingerprint,
    next_manifest,
    previous_manifest,
    record_export,
)
from tracker.pipeline.lake_read import write_staging

__all__ = ["JOURNAL", "LakeResult", "export_lake", "recover_lake"]


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
    fingerprint = models_fingerprint(project, models)
    lake_dir = prepare_out_dir(Path(lake_dir))
    with locked(lake_dir):
        recover_lake(lake_dir)
        previous = previous_manifest(lake_dir)
        reason = None
        if full:
            reason = "--full"
        elif previous is None:
            reason = "no lake yet"
        elif previous.get("layout") != LAYOUT:
            reason = "the lake's layout changed"
        elif previous.get("models_sha256") != fingerprint:
            reason = "the models changed"
        elif bool(previous.get("include_pii")) != include_pii:
            reason = "--include-pii changed"
        staging = lake_dir / f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
        staging.mkdir()
        try:
            lake_id = (previous or {}).get("lake_id") or uuid.uuid4().hex
            plan = write_staging(
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
            manifest = next_manifest(
                url, previous, plan, fingerprint, include_pii, lake_id, commit.result()
            )
            # The commit point: from here on the next export rolls this one forward.
            commit_journal(staging, plan["moves"], plan["removals"], manifest)
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
        # Past the commit point the files are as good as in place (an interrupted move is
        # rolled forward before anything else), so the database records what this lake has
        # seen while they are moved, not after.
        with ThreadPoolExecutor(max_workers=1) as recorder:
            recorded = recorder.submit(record_export, url, manifest["lake_id"], plan["snapshot"])
            recover_lake(lake_dir)
        recorded.result()
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
