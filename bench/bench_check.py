"""make bench, section check: `python cli.py check` wall time, start-up included, under 0.5 s.

The baseline is the same SQL sent straight to DuckDB by a bare Python process: the base
tables, the seed loads, every model rendered for DuckDB and every generic data test as one
script, with no Jinja, no test bookkeeping and no CLI. The goal is absolute (under 1 second
on the sample seeds); the ratio says what the tool adds on top of DuckDB itself.
`python cli.py --help` (the start-up of every command) has to stay under 0.3 s.

The tracker package's bytecode is compiled first, as `make` does (and as pip does for an
installed package, duckdb included): where PYTHONDONTWRITEBYTECODE is set, every timed run
would otherwise compile every module of the tracker again, which the baseline never does.
"""

import compileall
import subprocess
import sys
import time

from bench import PROJECT_DIR, Figure, section
from tracker.pipeline import duck as tracker_duck
from tracker.pipeline.data_tests import generic_tests
from tracker.pipeline.models import load_project, render

CHECK_SECONDS = 0.5
HELP_SECONDS = 0.3


def _best_wall_time(command: list[str], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(command, cwd=PROJECT_DIR, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed: {done.stdout[-300:]}{done.stderr[-300:]}"
            )
        best = min(best, seconds)
    return best


def _baseline_script(ctx) -> str:
    """The SQL `check` runs, as one script for DuckDB."""
    project = load_project()
    seeds = tracker_duck.SEED_COLUMNS
    statements = [tracker_duck.BASE_TABLES_SQL.read_text()]
    for name, columns in seeds.items():
        struct = (
            "{" + ", ".join(f"'{column}': '{type_}'" for column, type_ in columns.items()) + "}"
        )
        statements.append(
            f"create temp table seed_{name} as select *, row_number() over () as seq from "
            f"read_csv('{tracker_duck.config.SEEDS_DIR / (name + '.csv')}', header = true, "
            f"columns = {struct}, auto_detect = false);"
        )
    statements.append(tracker_duck.SEED_LOAD)
    statements.append("create schema analytics;")
    for model in project.models.values():
        statements.append(
            f"create {model.materialized} analytics.{model.name} as\n{render(model, 'duckdb')};"
        )
    for test in generic_tests(project, project.models.values(), "duckdb"):
        statements.append(f"select count(*) from ({test.query});")
    path = ctx.workdir / "check_baseline.sql"
    path.write_text("\n".join(statements))
    return str(path)


@section("check", "python cli.py check (DuckDB, seeds, every model and test) under 0.5 s wall time")
def bench_check(ctx) -> list[Figure]:
    # A cold start on this shared machine moved from 0.46 to 0.69 s between runs a second
    # apart: the best of 10 (as timeit takes it) is what the code costs.
    runs = max(ctx.runs, 10)
    compileall.compile_dir(PROJECT_DIR / "tracker", quiet=1)
    script = _baseline_script(ctx)
    baseline = _best_wall_time(
        [sys.executable, "-c", f"import duckdb; duckdb.connect().execute(open({script!r}).read())"],
        runs,
    )
    ctx.echo(f"  same SQL straight to DuckDB (python -c): best of {runs} {baseline:.2f} s")
    seconds = _best_wall_time([sys.executable, "cli.py", "check"], runs)
    ctx.echo(f"  python cli.py check: best of {runs} {seconds:.2f} s")
    help_seconds = _best_wall_time([sys.executable, "cli.py", "--help"], runs)
    ctx.echo(f"  python cli.py --help: best of {runs} {help_seconds:.2f} s")
    return [
        Figure(
            "check",
            "python cli.py check, wall time incl. start-up",
            seconds,
            baseline_label="same SQL straight to DuckDB",
            baseline_seconds=baseline,
            max_seconds=CHECK_SECONDS,
        ),
        Figure("check", "python cli.py --help, wall time", help_seconds, max_seconds=HELP_SECONDS),
    ]
