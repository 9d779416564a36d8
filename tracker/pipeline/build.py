"""build: the main job in one process: build the models, test them, export them.

One REPEATABLE READ transaction builds every model (the marts are tables) from one snapshot
of the base tables, then runs the data tests and the unit tests against what it just built,
in that same snapshot. Only when every test passes is the build committed; a failing test
rolls it back, so the previous build (and the previous export) stay exactly as they were.
The export then reads the committed tables: the files are that same snapshot, whatever was
written meanwhile.

Nothing here prints or reads the environment: progress goes through callbacks.
"""

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tracker.pipeline.data_tests import run_postgres_data_tests
from tracker.pipeline.export import (
    FORMATS,
    LOCK_TIMEOUT_SECONDS,
    ExportResult,
    FileWritten,
    export_formats,
    export_items,
    export_models,
    select_export_models,
)
from tracker.pipeline.models import Project
from tracker.pipeline.results import CheckReport, Result
from tracker.pipeline.runner import begin_build, build_models
from tracker.pipeline.unit_tests import PostgresUnitEngine, run_unit_tests
from tracker.plumbing import config
from tracker.plumbing.db import connect


@dataclass
class BuildReport:
    """What a build did: model timings, the test report, and the export (None if not run)."""

    timings: list[tuple[str, float]]
    tests: CheckReport
    export: ExportResult | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.tests.ok and self.export is not None


class _TestsFailed(Exception):
    """Raised inside the build transaction to roll it back."""


def build_project(
    url: str,
    project: Project,
    out_dir: Path | str | None = None,
    *,
    vars: dict | None = None,
    formats: str | Iterable[str] = FORMATS,
    include_pii: bool = False,
    bom: bool = True,
    on_model: Callable[[str, float], None] | None = None,
    on_result: Callable[[Result], None] | None = None,
    on_file: Callable[[FileWritten], None] | None = None,
    lock_timeout: float = LOCK_TIMEOUT_SECONDS,
    on_wait: Callable[[Path], None] | None = None,
) -> BuildReport:
    """Build every model, run every test on the build, export it if all tests pass.

    The export has the same safety as `export`: all or nothing, only files an earlier
    export wrote are replaced, and another export into out_dir is waited for (up to
    lock_timeout seconds, on_wait called once when it has to wait).
    """
    started = time.perf_counter()
    items = export_items(select_export_models(project))
    timings: list[tuple[str, float]] = []
    results: list[Result] = []
    with connect(url) as conn:
        try:
            with conn.transaction():
                begin_build(conn)
                timings = build_models(conn, project, project.models.values(), vars, on_model)
                tests_started = time.perf_counter()
                results += run_postgres_data_tests(conn, project, None, on_result)
                results += run_unit_tests(PostgresUnitEngine(conn), project, on_result=on_result)
                report = CheckReport(results, time.perf_counter() - tests_started, "postgres")
                if not report.ok:
                    raise _TestsFailed
        except _TestsFailed:
            return BuildReport(timings, report, None, time.perf_counter() - started)
    exported = export_models(
        url,
        items,
        config.EXPORTS_DIR if out_dir is None else out_dir,
        formats=export_formats(formats),
        include_pii=include_pii,
        bom=bom,
        on_progress=on_file,
        lock_timeout=lock_timeout,
        on_wait=on_wait,
    )
    return BuildReport(timings, report, exported, time.perf_counter() - started)
