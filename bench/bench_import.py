"""make bench, section import: `python cli.py import` of a bank statement vs a plain COPY.

A statement of ctx.expenses rows (Date, Amount, Description; descriptions that the rules file
sorts into categories, some rows repeated so dedupe has work) is imported into a migrated
database holding one user, as a person runs it: `python cli.py import FILE --rules ...`.
The baseline is a plain COPY of the same rows, already in the expenses table's own columns
(user, category, amount, date, note), into another such database with the alert trigger on.
Memory: the import's peak RSS on the whole file against the same import of a quarter of it
(flat means the same, whatever the file size). Targets: at most 2x the COPY (the median of
PAIRS pairs' ratios, each pair a COPY then an import, in fresh databases); peak memory at
most 1.25x the quarter file's.
"""

import csv
import resource
import subprocess
import sys
import time

from bench import PROJECT_DIR, Figure, _checkpoint, paired, section
from tracker.plumbing import db as tracker_db

IMPORT_RATIO = 2.0
PAIRS = 2
MEMORY_RATIO = 1.25
MERCHANTS = (
    ("SWIGGY ORDER", "Food"),
    ("UBER TRIP", "Transport"),
    ("AMAZON RETAIL", "Shopping"),
    ("NETFLIX.COM", "Entertainment"),
    ("APOLLO PHARMACY", "Health"),
    ("BESCOM BILL", "Utilities"),
    ("CORNER SHOP", None),  # no rule: the default category
)
RULES = (
    "pattern,category\nswiggy,Food\n/^(uber|ola)\\b/,Transport\namazon,Shopping\n"
    "netflix,Entertainment\n/pharmacy|clinic/,Health\nbescom,Utilities\n"
)


def _rows(count: int):
    """date, amount, description: deterministic; every 50th row repeats the one before it
    (two identical coffees on one day: both are imported, dedupe must not merge them)."""
    for number in range(count):
        base = number - 1 if number % 50 == 49 else number
        merchant = MERCHANTS[base * 7 % len(MERCHANTS)]
        day = f"2025-{1 + base // 100_000 % 12:02d}-{1 + base % 28:02d}"
        amount = f"{10 + base * 37 % 5000}.{base % 100:02d}"
        yield day, amount, f"{merchant[0]} {base % 9973}", merchant[1]


@section("import", "import of a bank statement (rules, dedupe) <= 2x a plain COPY; memory flat")
def bench_import(ctx) -> list[Figure]:
    rows = ctx.expenses
    workdir = ctx.workdir
    statement = workdir / "statement.csv"
    quarter = workdir / "statement_quarter.csv"
    rules = workdir / "rules.csv"
    rules.write_text(RULES)
    for path, count in ((statement, rows), (quarter, rows // 4)):
        with open(path, "w", newline="") as target:
            writer = csv.writer(target)
            writer.writerow(["Date", "Amount", "Description"])
            writer.writerows(row[:3] for row in _rows(count))
    ctx.echo(f"  wrote a statement of {rows:,} rows ({statement.stat().st_size / 1e6:.0f} MB)")

    with ctx.scratch_database("import_copy") as url:
        category_ids = _prepare(url)
    plain = workdir / "statement_expenses.csv"
    with open(plain, "w", newline="") as target:
        writer = csv.writer(target)
        for day, amount, note, category in _rows(rows):
            writer.writerow([1, category_ids[category or "Shopping"], amount, day, note])

    # Pairs, each a COPY then an import into fresh databases, and the median of the pairs'
    # ratios: a single COPY of a million rows was seen taking anywhere from 13 to 25 s here.
    copies: list[float] = []
    imports: list[float] = []
    memory = {}
    for number in range(PAIRS):
        copies.append(_copy_seconds(ctx, plain))
        with ctx.scratch_database("import_whole") as url:
            _prepare(url)
            with tracker_db.connect(url, autocommit=True) as conn:
                _checkpoint(conn)
            seconds, peak = _run_import(url, statement, rules)
        imports.append(seconds)
        memory["whole"] = max(memory.get("whole", 0), peak)
        ctx.echo(
            f"  pair {number + 1}: plain COPY of the same rows, trigger on {copies[-1]:.2f} s; "
            f"import of the whole file {seconds:.2f} s, peak memory {peak / 1e6:.0f} MB"
        )
    with ctx.scratch_database("import_quarter") as url:
        _prepare(url)
        with tracker_db.connect(url, autocommit=True) as conn:
            _checkpoint(conn)
        seconds, memory["quarter"] = _run_import(url, quarter, rules)
    ctx.echo(
        f"  import of the quarter file: {seconds:.2f} s, peak memory "
        f"{memory['quarter'] / 1e6:.0f} MB"
    )
    return [
        Figure(
            "import",
            f"python cli.py import, {rows:,} rows",
            baseline_label="COPY of the same rows, trigger on",
            max_ratio=IMPORT_RATIO,
            note=f"median of {PAIRS} pairs' ratios",
            **paired(imports, copies),
        ),
        Figure(
            "import",
            "import peak memory, whole file (MB, as seconds column)",
            memory["whole"] / 1e6,
            baseline_label="a quarter of the file",
            baseline_seconds=memory["quarter"] / 1e6,
            max_ratio=MEMORY_RATIO,
        ),
    ]


def _copy_seconds(ctx, plain) -> float:
    """A plain COPY of the statement's rows into a fresh database, trigger on."""
    with (
        ctx.scratch_database("import_copy") as url,
        tracker_db.connect(url, autocommit=True) as conn,
    ):
        _prepare(url)
        _checkpoint(conn)
        started = time.perf_counter()
        with conn.transaction():
            ctx.copy_file_in(
                conn,
                "copy expenses (user_id, category_id, amount, date, note) "
                "from stdin with (format csv)",
                plain,
                "COPY, trigger on",
            )
        return time.perf_counter() - started


def _prepare(url: str) -> dict[str, int]:
    with tracker_db.connect(url, autocommit=True) as conn:
        conn.execute("insert into users (id, name, email) values (1, 'Bench', 'bench@example.com')")
        names = [name for _, name in MERCHANTS if name] + ["Shopping"]
        for name in dict.fromkeys(names):
            conn.execute("insert into categories (name) values (%s)", [name])
        return dict(conn.execute("select name, id from categories").fetchall())


def _run_import(url: str, path, rules) -> tuple[float, int]:
    """Wall time and peak RSS (bytes) of `python cli.py import` in a child process."""
    command = [
        sys.executable,
        "-c",
        "import resource, runpy, sys; sys.argv = sys.argv[1:]; "
        "code = 0\n"
        "try:\n    runpy.run_path('cli.py', run_name='__main__')\n"
        "except SystemExit as exc:\n    code = exc.code or 0\n"
        "print('peak', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(code)",
        "cli.py",
        "--database-url",
        url,
        "import",
        str(path),
        "--user",
        "bench@example.com",
        "--mapping",
        "date=Date,amount=Amount,note=Description",
        "--rules",
        str(rules),
        "--default-category",
        "Shopping",
    ]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=PROJECT_DIR, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"import failed: {done.stdout[-300:]}{done.stderr[-300:]}")
    peak = [line for line in done.stderr.splitlines() if line.startswith("peak ")]
    kilobytes = (
        int(peak[-1].split()[1]) if peak else resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    )
    return seconds, kilobytes * 1024
