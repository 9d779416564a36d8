"""make bench, section export: `cli.py export` against psql's \\copy of the same queries.

The baseline is one psql session running `\\copy (<the export's own query>) to 'file.csv'
with (format csv, header)` for every exported model: what a person would type to get the
same CSV files by hand, with no snapshot, hashing, manifest or Parquet. Targets: the CSV
export (every CSV file plus manifest.json) at most 1.05x the baseline; the whole export
(CSV and Parquet for every model, plus manifest.json) at most 1.5x.
"""

import statistics
import subprocess
import time

from bench import Figure, paired, section
from tracker.pipeline.export import export_items, export_models, select_export_models
from tracker.pipeline.export_snapshot import SESSION_SETTINGS, export_query, plan_export
from tracker.pipeline.models import load_project
from tracker.pipeline.runner import run_models
from tracker.plumbing import db as tracker_db
from tracker.plumbing.psql import psql_command

CSV_RATIO = 1.05
FULL_RATIO = 1.5


@section("export", "export CSV <= 1.05x psql \\copy of the same queries; CSV + Parquet <= 1.5x")
def bench_export(ctx) -> list[Figure]:
    project = load_project()
    items = export_items(select_export_models(project))
    with ctx.scratch_database("export", from_dataset=True) as url:
        with tracker_db.connect(url) as conn:
            with ctx.timer("cli.py run (build the models, not part of the figures)"):
                run_models(conn, project, list(project.models.values()))
            queries = [
                (item.name, export_query(conn, item, columns))
                for item, columns in plan_export(conn, items, False, url)
            ]
            conn.rollback()
        baseline_dir = ctx.workdir / "baseline"
        baseline_dir.mkdir()
        timings: dict[str, list[float]] = {"baseline": [], "csv": [], "both": []}
        runs = max(ctx.runs, 2)
        for run in range(runs):
            timings["baseline"].append(_psql_copy(url, queries, baseline_dir))
            for variant, formats in (("csv", ("csv",)), ("both", ("csv", "parquet"))):
                started = time.perf_counter()
                result = export_models(url, items, ctx.workdir / variant, formats=formats)
                timings[variant].append(time.perf_counter() - started)
            ctx.echo(
                f"  run {run + 1}: psql \\copy {timings['baseline'][-1]:.2f} s, "
                f"export csv {timings['csv'][-1]:.2f} s, "
                f"export csv+parquet {timings['both'][-1]:.2f} s"
            )
        _check_same_csv(ctx, baseline_dir, ctx.workdir / "csv")
        fact = next(e for e in result.files if e["path"] == "csv/fact_expenses.csv")
        ctx.echo(
            f"  median of {runs}: baseline {statistics.median(timings['baseline']):.2f} s for "
            f"{len(queries)} files (fact_expenses: {fact['rows']:,} rows, "
            f"{fact['bytes'] / 1e6:.0f} MB of CSV)"
        )
    note = f"median of {runs} runs' ratios"
    return [
        Figure(
            "export",
            f"export --format csv, {len(queries)} models",
            baseline_label="psql \\copy",
            max_ratio=CSV_RATIO,
            note=note,
            **paired(timings["csv"], timings["baseline"]),
        ),
        Figure(
            "export",
            f"export csv + parquet, {len(queries)} models",
            baseline_label="psql \\copy",
            max_ratio=FULL_RATIO,
            note=note,
            **paired(timings["both"], timings["baseline"]),
        ),
    ]


def _psql_copy(url: str, queries: list[tuple[str, str]], out_dir) -> float:
    command, env = psql_command(url)
    settings = "".join(f"set {key} = '{value}';\n" for key, value in SESSION_SETTINGS)
    script = settings + "".join(
        f"\\copy ({query}) to '{out_dir / name}.csv' with (format csv, header)\n"
        for name, query in queries
    )
    started = time.perf_counter()
    subprocess.run(
        [command[0], "--no-psqlrc", "--quiet", "-v", "ON_ERROR_STOP=1", *command[1:]],
        input=script.encode("utf-8"),
        check=True,
        env=env or None,
    )
    return time.perf_counter() - started


def _check_same_csv(ctx, baseline_dir, export_dir) -> None:
    """The export's CSV files are the baseline's bytes behind the byte-order mark."""
    for path in sorted(baseline_dir.glob("*.csv")):
        exported = (export_dir / "csv" / path.name).read_bytes()
        if exported[3:] != path.read_bytes():
            raise RuntimeError(f"csv/{path.name} differs from psql's \\copy output")
    ctx.echo("  every exported CSV equals psql's output after the byte-order mark")
