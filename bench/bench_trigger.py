"""make bench, section trigger: COPY with the budget-alert triggers vs the same COPY without.

The dataset's expenses are written to a CSV file once, then loaded with COPY into a copy of
the dataset (indexes and both foreign keys in place, budgets present), alternately with the
budget-alert triggers on expenses disabled and enabled. Only those triggers differ: the lake
change-log trigger on expenses (issue 12's, not the alert trigger) stays on in both, and its
time is printed with the function times. Target: at most 1.10x.

The two variants must differ by the triggers alone. What used to move the same COPY by a
third (9.7 s against 12.9 s at 1M) and what each run now holds equal:
- The first big COPY in a connection pays the first touch of the server's shared memory by
  that backend (measured at 1M: 142,559 page faults against about 51,000 for the same COPY
  after it, 0.6 to 0.9 s more system CPU; the whole first COPY took from 0 to 3.5 s more
  CPU in four tries): one untimed warm-up COPY, triggers on, opens the connection, and
  every timed run uses that same connection.
- Autovacuum: the freshly generated dataset, and the million rows each run commits, are
  vacuumed a minute later, in the middle of whichever run is going then (2 cores). The
  tables the runs write have autovacuum off in the scratch copy, and each run starts when
  no autovacuum worker is busy on the server (waiting at most AUTOVACUUM_WAIT seconds).
- Leftovers: `truncate expenses` empties budget_spending only through the alert trigger,
  so it depended on the state the previous run left. Each run truncates expenses, alerts,
  budget_spending and lake_changes itself, then analyzes and checkpoints.
- Order: off, on, on, off, off, on, ... so neither variant always runs right after the
  other one's commit.
On the private server the backend's own CPU time (/proc/PID/stat) is printed beside the
wall time for each run, with its ratio: the machine's other load moves it much less.
At least 5 pairs are timed (MIN_RUNS), whatever --runs says: on a shared 2-core machine one
pair's ratio was seen anywhere from 0.90 to 1.30 for the same code. Beside the target, an
information figure adds the alert trigger's own time (track_functions, its callees
included) to the COPY without it: what the trigger costs by its own clock.
"""

import contextlib
import os
import statistics
import time
from pathlib import Path

import psycopg
from psycopg import sql

from bench import EXPENSE_COLUMNS, Figure, _checkpoint, paired, section
from tracker.errors import TrackerError
from tracker.plumbing import db as tracker_db

MAX_RATIO = 1.10
MIN_RUNS = 5
# The alert trigger's function on a COPY (it calls budget_alerts_fire).
ALERT_FUNCTION = "expenses_budget_alert"
# The tables a run writes: emptied before each run, never vacuumed automatically meanwhile.
WRITTEN_TABLES = ("expenses", "alerts", "budget_spending", "lake_changes")
AUTOVACUUM_WAIT = 120.0


@section("trigger", "COPY with the budget alert trigger <= 1.10x the same COPY without it")
def bench_trigger(ctx) -> list[Figure]:
    dataset = ctx.dataset()
    columns = sql.SQL(", ").join(sql.Identifier(column) for column in EXPENSE_COLUMNS)
    csv_path = ctx.workdir / "expenses.csv"
    with tracker_db.connect(dataset.url) as conn, open(csv_path, "wb") as target:
        statement = sql.SQL(
            "copy (select {} from expenses order by date, id) to stdout with (format csv)"
        ).format(columns)
        with conn.cursor().copy(statement) as copy:
            for chunk in copy:
                target.write(chunk)
    rows = dataset.result.expenses
    ctx.echo(f"  wrote {rows:,} expenses to a CSV file ({csv_path.stat().st_size / 1e6:.0f} MB)")

    copy_in = sql.SQL("copy expenses ({}) from stdin with (format csv)").format(columns)
    # At least 5 pairs: on a shared machine one pair's ratio can be off by 0.3 either way.
    runs = max(ctx.runs, MIN_RUNS)
    walls: dict[bool, list[float]] = {False: [], True: []}
    function_seconds: list[float] = []
    cpus: dict[bool, list[float]] = {False: [], True: []}
    alerts_fired = set()
    with (
        ctx.scratch_database("trigger", from_dataset=True) as url,
        tracker_db.connect(url, autocommit=True) as conn,
    ):
        _track_functions(conn)
        for table in WRITTEN_TABLES:
            conn.execute(
                sql.SQL("alter table {} set (autovacuum_enabled = off)").format(
                    sql.Identifier(table)
                )
            )
        alert_triggers = _alert_triggers(conn)
        ctx.echo(
            f"  alert triggers switched: {', '.join(alert_triggers)} "
            "(the lake change-log trigger stays on)"
        )
        backend_stat = _backend_stat_file(ctx, conn)

        def switch(enable: bool) -> None:
            action = sql.SQL("enable" if enable else "disable")
            for name in alert_triggers:
                conn.execute(
                    sql.SQL("alter table expenses {} trigger {}").format(
                        action, sql.Identifier(name)
                    )
                )

        def run(trigger_on: bool, label: str) -> tuple[float, float | None, int]:
            # Emptied with the alert triggers off (their truncate trigger would empty
            # budget_spending a second time inside the same statement), then switched.
            switch(False)
            conn.execute(
                sql.SQL("truncate {}").format(
                    sql.SQL(", ").join(sql.Identifier(table) for table in WRITTEN_TABLES)
                )
            )
            switch(trigger_on)
            conn.execute("analyze users, categories, budgets, expenses, alerts, budget_spending")
            waited = _wait_for_autovacuum(conn)
            _checkpoint(conn)
            cpu_before = _cpu_seconds(backend_stat)
            started = time.perf_counter()
            with conn.transaction():
                ctx.copy_file_in(conn, copy_in, csv_path, label)
                functions, alert_seconds = _function_times(conn)
            seconds = time.perf_counter() - started
            cpu = _cpu_seconds(backend_stat)
            cpu_seconds = None if cpu is None or cpu_before is None else cpu - cpu_before
            alerts = conn.execute("select count(*) from alerts").fetchone()[0]
            cpu_text = "" if cpu_seconds is None else f", backend CPU {cpu_seconds:.2f} s"
            wait_text = f", waited {waited:.0f} s for autovacuum" if waited >= 1 else ""
            ctx.echo(
                f"  {label}: {seconds:.2f} s{cpu_text}, {alerts:,} alerts, "
                f"load {os.getloadavg()[0]:.1f}{wait_text}{functions}"
            )
            if trigger_on and alert_seconds and not label.startswith("warm-up"):
                function_seconds.append(alert_seconds)
            return seconds, cpu_seconds, alerts

        try:
            *_, alerts = run(True, "warm-up (not counted), alert triggers on")
            alerts_fired.add(alerts)
            for number in range(runs):
                order = (False, True) if number % 2 == 0 else (True, False)
                for trigger_on in order:
                    variant = "alert triggers on " if trigger_on else "alert triggers off"
                    seconds, cpu_seconds, alerts = run(trigger_on, f"run {number + 1}, {variant}")
                    walls[trigger_on].append(seconds)
                    if cpu_seconds is not None:
                        cpus[trigger_on].append(cpu_seconds)
                    if trigger_on:
                        alerts_fired.add(alerts)
        finally:
            conn.execute("alter table expenses enable trigger user")
    if alerts_fired == {0}:
        raise TrackerError("Error: the trigger run fired no alerts. Check the dataset's budgets.")
    if len(alerts_fired) != 1:
        raise TrackerError(
            f"Error: the runs with the trigger fired different numbers of alerts "
            f"({sorted(alerts_fired)}); each run must start from the same state."
        )
    fired = alerts_fired.pop()
    # Each run number timed both variants back to back: its two COPYs are a pair.
    figure = paired(walls[True], walls[False])
    spread = " ".join(
        f"{name} {min(values):.2f}-{max(values):.2f} s"
        for name, values in (("off", walls[False]), ("on", walls[True]))
    )
    ctx.echo(
        f"  median of {runs}: {figure['baseline_seconds']:.2f} s with the alert triggers "
        f"off, {figure['seconds']:.2f} s with them on (median of the runs' ratios "
        f"{figure['pair_ratio']:.2f}, {fired:,} alerts; range {spread}; best of each "
        f"{min(walls[True]) / min(walls[False]):.2f})"
    )
    figures = [
        Figure(
            "trigger",
            f"COPY {rows:,} expenses, alert trigger on",
            baseline_label="same COPY, alert triggers disabled, lake trigger on",
            max_ratio=MAX_RATIO,
            note=f"{fired:,} alerts, median of {runs} runs' ratios",
            **figure,
        )
    ]
    if cpus[True] and cpus[False]:
        cpu = paired(cpus[True], cpus[False])
        ctx.echo(
            f"  backend CPU, median of {runs}: {cpu['baseline_seconds']:.2f} s off, "
            f"{cpu['seconds']:.2f} s on (median of the runs' ratios {cpu['pair_ratio']:.2f})"
        )
        figures.append(
            Figure(
                "trigger",
                "backend CPU time of that COPY, alert trigger on",
                baseline_label="same, alert triggers disabled",
                **cpu,
            )
        )
    if function_seconds:
        own = statistics.median(function_seconds)
        off = figure["baseline_seconds"]
        ctx.echo(
            f"  the alert trigger's own time (track_functions), median of {runs}: {own:.2f} s,"
            f" {own / off:.1%} of the COPY without it"
        )
        figures.append(
            Figure(
                "trigger",
                "COPY without the alert trigger + the trigger functions' own time",
                off + own,
                baseline_label="same COPY, alert triggers disabled",
                baseline_seconds=off,
            )
        )
    return figures


def _alert_triggers(conn: psycopg.Connection) -> list[str]:
    """The budget-alert triggers on expenses (R__budget_alerts.sql), by their functions."""
    names = [
        name
        for (name,) in conn.execute(
            """
            select trigger.tgname
            from pg_trigger as trigger
            inner join pg_proc as function on function.oid = trigger.tgfoid
            where trigger.tgrelid = 'public.expenses'::regclass
                and not trigger.tgisinternal
                and function.proname in (
                    'expenses_budget_alert', 'expenses_budget_spending_truncate'
                )
            order by trigger.tgname
            """
        ).fetchall()
    ]
    if not names:
        raise TrackerError("Error: expenses has no budget-alert trigger. Run `make db-init`.")
    return names


def _wait_for_autovacuum(conn: psycopg.Connection) -> float:
    """Wait until no autovacuum worker is busy on the server; returns the seconds waited."""
    started = time.perf_counter()
    while time.perf_counter() - started < AUTOVACUUM_WAIT:
        busy = conn.execute(
            """
            select count(*)
            from pg_stat_activity
            where backend_type = 'autovacuum worker'
            """
        ).fetchone()[0]
        if not busy:
            break
        time.sleep(0.5)
    return time.perf_counter() - started


def _backend_stat_file(ctx, conn: psycopg.Connection) -> Path | None:
    """/proc/PID/stat of this connection's server process, when it is on this machine."""
    if not ctx.server.is_private:
        return None
    pid = conn.execute("select pg_backend_pid()").fetchone()[0]
    path = Path(f"/proc/{pid}/stat")
    return path if _cpu_seconds(path) is not None else None


def _cpu_seconds(path: Path | None) -> float | None:
    """User + system CPU seconds of a process, from /proc (Linux)."""
    if path is None:
        return None
    with contextlib.suppress(OSError, ValueError, IndexError):
        # Fields after the command name: utime and stime are the 12th and 13th.
        fields = path.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return None


def _function_times(conn: psycopg.Connection) -> tuple[str, float | None]:
    """Where the trigger's time went, from the transaction's function statistics: the text
    printed, and the alert trigger's own seconds (callees included; None if not tracked)."""
    rows = conn.execute(
        """
        select
            funcname,
            total_time
        from pg_stat_xact_user_functions
        order by total_time desc
        """
    ).fetchall()
    if not rows:
        return "", None
    times = ", ".join(f"{name} {ms / 1000:.2f} s" for name, ms in rows)
    alert = sum(ms for name, ms in rows if name == ALERT_FUNCTION) / 1000
    return f" (function time, callees included: {times})", alert


def _track_functions(conn: psycopg.Connection) -> None:
    # Per-function timings for the report; a role that may not change the setting just
    # gets the figures without them.
    with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
        conn.execute("set track_functions = 'pl'")
