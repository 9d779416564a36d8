"""make bench: the project's speed goals, each measured against a baseline from the same run.

Run `.venv/bin/python bench/bench.py [--only NAME] [--expenses N] [--runs N]`. Every section
works in its own scratch databases (tracker_bench_*) on the configured server (the private
one, or DATABASE_URL's) and drops them afterwards. A figure compares a timing with a
baseline timed in the same run on the same machine, so the verdict does not depend on how
fast or busy the machine is; the summary table at the end lists every figure with its
target and PASS/FAIL, and the exit code is 1 when any target is missed.

Adding a section: put a module bench/bench_<area>.py next to this file with

    from bench import Figure, section

    @section("export", "CSV + Parquet export of 1M expenses")
    def bench_export(ctx):
        with ctx.scratch_database("export", from_dataset=True) as url:
            with ctx.timer("export") as timer:
                ...
        return [Figure("export", "export 1M expenses", timer.seconds,
                       baseline_label="COPY to CSV", baseline_seconds=..., max_ratio=3.0)]

The context gives the scale (ctx.expenses, ctx.scale), ctx.dataset() (one generated database
per run, shared by the sections: users, budgets on most keys, ctx.expenses expenses, alerts),
ctx.scratch_database(), ctx.timer(), ctx.progress(), ctx.copy_file_in(), ctx.workdir (a
temporary folder) and ctx.echo().
"""

import contextlib
import importlib
import os
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

# Plug-in modules `import bench`; when this file runs as a script they must get this very
# module (and its registry), not a second copy.
if __name__ == "__main__":
    sys.modules.setdefault("bench", sys.modules[__name__])

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))

import click  # noqa: E402
import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from tracker.errors import TrackerError  # noqa: E402
from tracker.everyday.generate import GenerateResult, generate_data, parse_options  # noqa: E402
from tracker.plumbing import db as tracker_db  # noqa: E402
from tracker.plumbing.bootstrap import initialize_database  # noqa: E402

FULL_SCALE = 1_000_000
COPY_CHUNK_BYTES = 1 << 20


@dataclass
class Figure:
    """One measured figure, with its baseline and its target."""

    section: str
    label: str
    seconds: float
    baseline_label: str | None = None
    baseline_seconds: float | None = None
    max_ratio: float | None = None
    max_seconds: float | None = None
    note: str = ""
    # Set by paired(): the median of each run's own ratio, which the ratio is then.
    pair_ratio: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.pair_ratio is not None:
            return self.pair_ratio
        if self.baseline_seconds is None or self.baseline_seconds <= 0:
            return None
        return self.seconds / self.baseline_seconds

    @property
    def passed(self) -> bool | None:
        """True/False against the target; None when the figure is for information only."""
        checks = []
        if self.max_ratio is not None and self.ratio is not None:
            checks.append(self.ratio <= self.max_ratio)
        if self.max_seconds is not None:
            checks.append(self.seconds <= self.max_seconds)
        return all(checks) if checks else None

    @property
    def target(self) -> str:
        parts = []
        if self.max_ratio is not None:
            parts.append(f"ratio <= {self.max_ratio:.2f}")
        if self.max_seconds is not None:
            parts.append(f"<= {self.max_seconds:g} s")
        return ", ".join(parts) or "-"

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "info"}[self.passed]


def paired(times: list[float], baseline_times: list[float]) -> dict[str, float]:
    """Figure fields for a variant timed in turn with its baseline, run by run (A B A B ...).

    The ratio is the median of each run's own ratio (its time over the baseline's in the
    same run), as farm-bench takes it: the machine's speed drifts by a third between runs
    here, and a pair shares its moment, where the best of each side does not (taken best over
    best, the same CSV export read 0.92 in one bench run and 1.07 in the next, both decided by
    one lucky baseline run). seconds and baseline_seconds are the two sides' medians.
    """
    ratios = [time / baseline for time, baseline in zip(times, baseline_times, strict=True)]
    return {
        "seconds": statistics.median(times),
        "baseline_seconds": statistics.median(baseline_times),
        "pair_ratio": statistics.median(ratios),
    }


@dataclass(frozen=True)
class Section:
    name: str
    description: str
    run: Callable[["Context"], list[Figure]]


SECTIONS: dict[str, Section] = {}


def section(name: str, description: str):
    """Register a bench section: a function taking the Context and returning Figures."""

    def register(function):
        SECTIONS[name] = Section(name, description, function)
        return function

    return register


@dataclass
class Timer:
    label: str
    seconds: float = 0.0


@dataclass
class Dataset:
    """The run's generated database, shared by the sections (clone it, do not change it)."""

    name: str
    url: str
    result: GenerateResult
    seconds: float


@dataclass
class Context:
    server: tracker_db.Database
    expenses: int
    runs: int
    workdir: Path
    _dataset: Dataset | None = None
    _databases: list[str] = field(default_factory=list)
    lake_expenses: int = 0  # --lake-expenses: the lake section's opt-in big lake (issue 12)

    @property
    def scale(self) -> float:
        """This run's size relative to the goals' 1,000,000 expenses."""
        return self.expenses / FULL_SCALE

    def echo(self, text: str = "") -> None:
        click.echo(text)

    def progress(self, label: str, length: int):
        """A progress bar on stderr, for steps that take more than a moment."""
        return click.progressbar(
            length=max(length, 1), label=f"  {label}", file=sys.stderr, show_eta=True, width=30
        )

    @contextlib.contextmanager
    def timer(self, label: str) -> Iterator[Timer]:
        """Time the block and print the figure."""
        timer = Timer(label)
        started = time.perf_counter()
        try:
            yield timer
        finally:
            timer.seconds = time.perf_counter() - started
        self.echo(f"  {label}: {timer.seconds:.2f} s")

    def database_name(self, name: str) -> str:
        return f"tracker_bench_{name}_{os.getpid()}"

    @contextlib.contextmanager
    def scratch_database(
        self, name: str, *, from_dataset: bool = False, migrate: bool = True
    ) -> Iterator[str]:
        """A new database (migrated, or a copy of the dataset) dropped when the block ends."""
        database = self.database_name(name)
        template = self.dataset().name if from_dataset else None
        url = self._create_database(database, template)
        try:
            if migrate and not from_dataset:
                initialize_database(url, seed=False)
            yield url
        finally:
            self._drop_database(database)

    def dataset(self) -> Dataset:
        """Generate the shared dataset on first use: ctx.expenses expenses over 12 months."""
        if self._dataset is None:
            name = self.database_name("data")
            url = self._create_database(name)
            initialize_database(url, seed=False)
            options = parse_options(
                users=max(self.expenses // 1000, 10),
                expenses=self.expenses,
                months=12,
                seed=1,
                start_month="2024-11",
            )
            self.echo(
                f"  generating the dataset: {options.users:,} users, "
                f"{options.expenses:,} expenses, {options.months} months"
            )
            with self.progress("generate", 1) as bar:

                def on_progress(label, done, total):
                    bar.length = total
                    bar.update(done - bar.pos)

                started = time.perf_counter()
                result = generate_data(url, options, on_progress)
                seconds = time.perf_counter() - started
            self._dataset = Dataset(name, url, result, seconds)
        return self._dataset

    def copy_file_in(
        self, conn: psycopg.Connection, statement: sql.Composable, path: Path, label: str
    ) -> None:
        """Stream a file into COPY ... FROM STDIN with a progress bar (the caller commits)."""
        with (
            conn.cursor() as cursor,
            self.progress(label, path.stat().st_size) as bar,
            cursor.copy(statement) as copy,
            open(path, "rb") as source,
        ):
            while chunk := source.read(COPY_CHUNK_BYTES):
                copy.write(chunk)
                bar.update(len(chunk))

    def close(self) -> None:
        for name in reversed(self._databases):
            self._drop_database(name)

    def _create_database(self, name: str, template: str | None = None) -> str:
        statement = sql.SQL("create database {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" template {}").format(sql.Identifier(template))
        with tracker_db.connect(self.server.url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )
            conn.execute(statement)
        self._databases.append(name)
        return tracker_db.with_database(self.server.url, name)

    def _drop_database(self, name: str) -> None:
        if name not in self._databases:
            return
        with tracker_db.connect(self.server.url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )
        self._databases.remove(name)


# --- generate ------------------------------------------------------------------------------


@section("generate", "python cli.py generate: 1M expenses under 15 s")
def bench_generate(ctx: Context) -> list[Figure]:
    dataset = ctx.dataset()
    result = dataset.result
    ctx.echo(
        f"  generate {result.expenses:,} expenses, {result.budgets:,} budgets, "
        f"{result.alerts:,} alerts: {dataset.seconds:.2f} s"
    )
    # Under 15 s at full scale (issue 11); smaller runs get a proportional limit with a floor.
    limit = max(15.0 * ctx.scale, 5.0)
    label = f"generate {result.expenses:,} expenses"
    return [Figure("generate", label, dataset.seconds, max_seconds=limit)]


# --- shared by sections ---------------------------------------------------------------

# The columns a person's CSV of expenses has (sections trigger and pipeline COPY them in).
EXPENSE_COLUMNS = ("user_id", "category_id", "amount", "currency", "date", "note")


def _checkpoint(conn: psycopg.Connection) -> None:
    # Starts each run without the previous run's dirty pages; needs a privilege a cloud
    # role may lack, in which case the runs just share the server's own checkpoints.
    with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
        conn.execute("checkpoint")


# --- runner --------------------------------------------------------------------------------


def load_plugins() -> list[str]:
    """Import bench/bench_*.py; returns the errors of modules that failed to import."""
    errors = []
    for path in sorted(BENCH_DIR.glob("bench_*.py")):
        try:
            importlib.import_module(path.stem)
        except Exception as exc:
            errors.append(f"{path.name}: {type(exc).__name__}: {exc}")
    return errors


def print_summary(figures: list[Figure], failures: list[tuple[str, str]]) -> None:
    headers = ["section", "figure", "seconds", "baseline", "ratio", "target", "result"]
    rows = [
        (
            figure.section,
            figure.label + (f" ({figure.note})" if figure.note else ""),
            f"{figure.seconds:.2f}",
            "-"
            if figure.baseline_seconds is None
            else f"{figure.baseline_seconds:.2f} ({figure.baseline_label})",
            "-" if figure.ratio is None else f"{figure.ratio:.2f}",
            figure.target,
            figure.verdict,
        )
        for figure in figures
    ]
    rows += [(name, reason, "-", "-", "-", "-", "ERROR") for name, reason in failures]
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    click.echo("Summary")
    click.echo(
        "  ".join(
            header.ljust(width) for header, width in zip(headers, widths, strict=True)
        ).rstrip()
    )
    click.echo("  ".join("-" * width for width in widths))
    for row in rows:
        click.echo(
            "  ".join(
                str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)
            ).rstrip()
        )


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--only",
    "only",
    multiple=True,
    metavar="NAME",
    help="Run only these sections (repeatable, or comma-separated).",
)
@click.option(
    "--expenses",
    type=click.IntRange(min=1000),
    default=FULL_SCALE,
    show_default=True,
    help="Expenses in the dataset; lower it for a quick try (targets are for 1,000,000).",
)
@click.option(
    "--runs",
    type=click.IntRange(min=1, max=5),
    default=3,
    show_default=True,
    help="Repetitions of each timed variant where a section repeats (a figure with a "
    "baseline timed in turn takes the median of each run's ratio; others the best).",
)
@click.option("--list", "list_only", is_flag=True, help="List the sections and exit.")
@click.option(
    "--lake-expenses",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="Section lake: also time the models on a lake of N generated expenses "
    "(e.g. 10000000; opt-in, minutes on 2 cores).",
)
def main(only, expenses, runs, list_only, lake_expenses):
    """Measure the speed goals against baselines from the same run; exit 1 if one is missed.

    Example:

        .venv/bin/python bench/bench.py --only trigger --expenses 200000
    """
    plugin_errors = load_plugins()
    if list_only:
        for item in SECTIONS.values():
            click.echo(f"{item.name:<12} {item.description}")
        return
    wanted = [name.strip() for value in only for name in value.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in SECTIONS]
    if unknown:
        raise click.UsageError(f"unknown section {unknown[0]!r}; known: {', '.join(SECTIONS)}")
    selected = [SECTIONS[name] for name in (wanted or SECTIONS)]
    try:
        server = tracker_db.resolve(None)
    except TrackerError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    with tracker_db.connect(server.url, autocommit=True) as conn:
        version = conn.execute("show server_version").fetchone()[0]
    click.echo(
        f"Bench on {server.masked_url} ({server.source}, PostgreSQL {version}), "
        f"{os.cpu_count()} cores, {expenses:,} expenses, {runs} run(s)"
    )
    figures: list[Figure] = []
    failures = [("plug-in", error) for error in plugin_errors]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tracker_bench_") as workdir:
        ctx = Context(server, expenses, runs, Path(workdir), lake_expenses=lake_expenses)
        try:
            for item in selected:
                click.echo(f"\n[{item.name}] {item.description}")
                try:
                    section_figures = item.run(ctx)
                except Exception as exc:
                    if not isinstance(exc, TrackerError):
                        traceback.print_exc()
                    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    failures.append((item.name, reason or type(exc).__name__))
                    continue
                for figure in section_figures:
                    ratio = "" if figure.ratio is None else f", ratio {figure.ratio:.2f}"
                    click.echo(
                        f"  => {figure.label}: {figure.seconds:.2f} s{ratio}; "
                        f"target {figure.target}: {figure.verdict}"
                    )
                figures.extend(section_figures)
        finally:
            ctx.close()
    click.echo(f"\nTotal bench time {time.perf_counter() - started:.0f} s\n")
    print_summary(figures, failures)
    if failures or any(figure.passed is False for figure in figures):
        sys.exit(1)


if __name__ == "__main__":
    main()
