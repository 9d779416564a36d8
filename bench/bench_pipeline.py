"""make bench, section pipeline: the whole main job at scale, in one process, vs plain tools.

Measured, from a migrated empty database, in this one process: `generate` (the run's dataset
again: users, budgets, ctx.expenses expenses, with the alert trigger firing) then `build`
(every model, every data and unit test in the same snapshot, the export in both formats).
Then `python cli.py test` on the result, cold, as a person runs it.

The baseline is what the same data costs with plain tools: COPY of the dataset's expenses
into a copy of its database with the triggers disabled, plus one psql session writing each
exported model's own SQL, ordered, to its CSV file (`\\o file` and `copy (...) to stdout`,
the same client-side copy as `\\copy`) from the base tables (only the staging views
built), as a person with psql would get the same CSV files. Targets: the pipeline at most 1.5x
the baseline and at most 20 s at 1,000,000 expenses (scaled for smaller runs); `test` at most
3 s.
"""

import subprocess
import sys
import time

from psycopg import sql

from bench import EXPENSE_COLUMNS, PROJECT_DIR, Figure, _checkpoint, section
from tracker.everyday.generate import generate_data, parse_options
from tracker.pipeline.build import build_project
from tracker.pipeline.export import export_items, select_export_models
from tracker.pipeline.export_snapshot import SESSION_SETTINGS
from tracker.pipeline.models import load_project, render
from tracker.pipeline.runner import run_models
from tracker.plumbing import db as tracker_db
from tracker.plumbing.psql import psql_command

PIPELINE_RATIO = 1.5
PIPELINE_SECONDS = 20.0
TEST_SECONDS = 3.0


@section(
    "pipeline", "generate + build (run, test, export) at scale <= 20 s and <= 1.5x plain tools"
)
def bench_pipeline(ctx) -> list[Figure]:
    dataset = ctx.dataset()
    project = load_project()
    csv_path = _expenses_csv(ctx, dataset.url)
    copy_seconds = _baseline_copy(ctx, csv_path)
    psql_seconds = _baseline_psql(ctx, project)
    baseline = copy_seconds + psql_seconds
    ctx.echo(
        f"  baseline: COPY without trigger {copy_seconds:.2f} s + psql \\copy "
        f"{psql_seconds:.2f} s = {baseline:.2f} s"
    )

    options = parse_options(
        users=dataset.result.users,
        expenses=dataset.result.expenses,
        months=12,
        seed=1,
        start_month="2024-11",
    )
    with ctx.scratch_database("pipeline") as url:
        started = time.perf_counter()
        generated = generate_data(url, options)
        loaded = time.perf_counter() - started
        report = build_project(url, project, ctx.workdir / "pipeline_exports")
        seconds = time.perf_counter() - started
        if not report.ok:
            raise RuntimeError("the pipeline's build failed its tests")
        built = sum(elapsed for _, elapsed in report.timings)
        ctx.echo(
            f"  pipeline {seconds:.2f} s: generate {loaded:.2f} s ({generated.alerts:,} alerts), "
            f"models {built:.2f} s, tests {report.tests.seconds:.2f} s, "
            f"export {report.export.seconds:.2f} s"
        )
        test_seconds = _cli_test_seconds(ctx, url)
    scale = ctx.scale
    return [
        Figure(
            "pipeline",
            f"generate + build, {dataset.result.expenses:,} expenses",
            seconds,
            baseline_label="COPY, no trigger + psql \\copy",
            baseline_seconds=baseline,
            max_ratio=PIPELINE_RATIO,
            max_seconds=max(PIPELINE_SECONDS * scale, 4.0),
        ),
        Figure(
            "pipeline",
            "python cli.py test, cold",
            test_seconds,
            max_seconds=max(TEST_SECONDS * scale, 1.0),
            note=f"{report.tests.count()} tests",
        ),
    ]


def _expenses_csv(ctx, url: str):
    path = ctx.workdir / "pipeline_expenses.csv"
    columns = sql.SQL(", ").join(map(sql.Identifier, EXPENSE_COLUMNS))
    statement = sql.SQL(
        "copy (select {} from expenses order by date, id) to stdout with (format csv)"
    ).format(columns)
    with (
        tracker_db.connect(url) as conn,
        open(path, "wb") as target,
        conn.cursor().copy(statement) as copy,
    ):
        for chunk in copy:
            target.write(chunk)
    return path


def _baseline_copy(ctx, csv_path) -> float:
    columns = sql.SQL(", ").join(map(sql.Identifier, EXPENSE_COLUMNS))
    copy_in = sql.SQL("copy expenses ({}) from stdin with (format csv)").format(columns)
    with (
        ctx.scratch_database("pipeline_copy", from_dataset=True) as url,
        tracker_db.connect(url, autocommit=True) as conn,
    ):
        conn.execute("truncate expenses, alerts")
        conn.execute("alter table expenses disable trigger user")
        conn.execute("analyze users, categories, budgets, expenses, alerts")
        _checkpoint(conn)
        started = time.perf_counter()
        with conn.transaction():
            ctx.copy_file_in(conn, copy_in, csv_path, "COPY, trigger off")
        return time.perf_counter() - started


def _baseline_psql(ctx, project) -> float:
    """psql \\copy of every exported model's own SQL on the dataset (staging views only)."""
    staging = [model for model in project.models.values() if model.layer == "staging"]
    items = export_items(select_export_models(project))
    out_dir = ctx.workdir / "pipeline_psql"
    out_dir.mkdir(exist_ok=True)
    with ctx.scratch_database("pipeline_psql", from_dataset=True) as url:
        with tracker_db.connect(url) as conn:
            run_models(conn, project, staging)
        lines = ["\\set ON_ERROR_STOP on"]
        lines += [f"set {key} = '{value}';" for key, value in SESSION_SETTINGS]
        for item in items:
            # A mart that reads another mart reads its SQL, inlined as a view would be.
            order = ", ".join(f'"{column}"' for column in item.order_by)
            lines += [
                f"\\o '{out_dir / item.name}.csv'",
                f"copy (select * from ({_inlined(project, item.name)}) as model order by {order})"
                " to stdout with (format csv, header);",
                "\\o",
            ]
        command, env = psql_command(url)
        started = time.perf_counter()
        subprocess.run(
            [command[0], "--no-psqlrc", "--quiet", *command[1:]],
            input="\n".join(lines).encode("utf-8"),
            check=True,
            env=env or None,
        )
        return time.perf_counter() - started


def _inlined(project, name: str) -> str:
    """The model's SQL, with refs to other marts replaced by their own SQL."""
    query = render(project[name], "postgres")
    for parent in sorted(project[name].depends_on):
        if project[parent].layer == "marts":
            query = query.replace(
                f"analytics.{parent}", f"(\n{_inlined(project, parent)}\n) as {parent}"
            )
    return query


def _cli_test_seconds(ctx, url: str) -> float:
    best = float("inf")
    for _ in range(max(ctx.runs, 2)):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "cli.py", "--database-url", url, "test"],
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"cli.py test failed: {done.stdout[-300:]}{done.stderr[-300:]}")
        best = min(best, seconds)
    ctx.echo(f"  python cli.py test on the pipeline's database: best {best:.2f} s")
    return best
