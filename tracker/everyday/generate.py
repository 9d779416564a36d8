"""Synthetic data: reproducible users, budgets and expenses for demos and benchmarks.

Everything is generated server-side with INSERT ... SELECT over generate_series. Each
pseudo-random choice is hashint8extended(row key, seed): a pure function of the seed and
the row's number, so the same seed gives the same content whatever the plan, the chunk
order or the server's parallelism. Amounts use numeric arithmetic only (no floats), so they
are exact and identical on every platform. Ids and created_at are not part of the content.

The whole run is one transaction. Budgets go in before expenses so the budget alert
trigger fires on the generated spending: alerts are part of the data. Into a database
without expenses the load works the way pg_restore does: the expenses foreign keys and
secondary indexes are dropped, the rows loaded, and the same definitions (read from the
catalog, so the migrations stay their only source) created again.

This module is the command: its options, the run in order, the summary. The SQL of each
table is in generate_rows, what the data draws from in generate_vocabulary, the
drop-and-rebuild of the expenses indexes in generate_bulk_load.
"""

import datetime as dt
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from tracker.errors import InputError, TrackerError
from tracker.everyday import validate
from tracker.everyday.generate_bulk_load import detach_expense_indexes
from tracker.everyday.generate_rows import (
    create_helpers,
    insert_budgets,
    insert_categories,
    insert_expenses,
    insert_users,
)
from tracker.everyday.generate_vocabulary import CATEGORIES
from tracker.plumbing.db import connect, scalar
from tracker.text import table

# Rows per INSERT statement: the unit the progress callback advances by. Fixed, because
# the alert trigger runs once per statement and the spending it records depends on it.
CHUNK_ROWS = 100_000
MAX_USERS = 10_000_000
MAX_MONTHS = 600
MAX_EXPENSES = 1_000_000_000
MAX_SEED = 2**31 - 1
DEFAULT_START_MONTH = "2024-11"

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class GenerateOptions:
    users: int
    expenses: int
    months: int
    seed: int
    start_month: dt.date


@dataclass(frozen=True)
class GenerateResult:
    users: int
    categories_added: int
    budgets: int
    expenses: int
    alerts: int
    first_month: dt.date
    last_month: dt.date
    bulk_load: bool
    seconds: float


def describe_generated(result: GenerateResult, options: GenerateOptions, where: str) -> str:
    """Rows added per table, then which seed and months went where (`where`: a masked URL)."""
    counts = [
        ("users", result.users),
        ("categories", result.categories_added),
        ("budgets", result.budgets),
        ("expenses", result.expenses),
        ("alerts", result.alerts),
    ]
    rows = table(["table", "rows added"], [(name, f"{count:,}") for name, count in counts])
    return (
        f"{rows}\nGenerated seed {options.seed} for {result.first_month:%Y-%m} to "
        f"{result.last_month:%Y-%m} into {where} in {result.seconds:.1f} s."
    )


def parse_options(
    *, users: int, expenses: int, months: int, seed: int, start_month: str | None
) -> GenerateOptions:
    """Check the generate options; any bad value is an InputError naming it."""
    for name, value, low, high in (
        ("--users", users, 1, MAX_USERS),
        ("--expenses", expenses, 0, MAX_EXPENSES),
        ("--months", months, 1, MAX_MONTHS),
        ("--seed", seed, 0, MAX_SEED),
    ):
        if not low <= value <= high:
            raise InputError(
                f"{name} {value} is out of range. Give a whole number from {low:,} to {high:,}."
            )
    text = start_month or DEFAULT_START_MONTH
    match = re.fullmatch(r"(\d{4})-(\d{2})", text)
    if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1900:
        raise InputError(
            f'--start-month "{text}" is not a month. Give it as YYYY-MM, e.g. 2024-11.'
        )
    start = dt.date(int(match.group(1)), int(match.group(2)), 1)
    if (start.year * 12 + start.month - 1 + months - 1) // 12 > validate.LAST_DAY.year:
        raise InputError(
            f"--start-month {text} with --months {months} runs past year "
            f"{validate.LAST_DAY.year} (dates are kept from 1900 to 2100). "
            "Give fewer months or an earlier start."
        )
    return GenerateOptions(users, expenses, months, seed, start)


def generate_data(
    url: str, options: GenerateOptions, on_progress: Progress | None = None
) -> GenerateResult:
    """Add options.users users with budgets and expenses, all in one transaction."""
    started = time.perf_counter()
    progress = _ProgressTracker(options, on_progress)
    with connect(url) as conn, conn.transaction():
        _refuse_existing_users(conn, options)
        create_helpers(conn, options)
        categories_added = insert_categories(conn)
        insert_users(conn, options)
        progress.advance("users", options.users)
        budgets = insert_budgets(conn, options)
        progress.advance("budgets", options.users * options.months * len(CATEGORIES))
        bulk_load = not scalar(conn, "select exists (select from expenses)")
        detached = detach_expense_indexes(conn) if bulk_load else []
        alerts_before = scalar(conn, "select count(*) from alerts")
        for first in range(1, options.expenses + 1, CHUNK_ROWS):
            last = min(first + CHUNK_ROWS - 1, options.expenses)
            insert_expenses(conn, options, first, last)
            progress.advance("expenses", last - first + 1)
        for statement in detached:
            conn.execute(statement)
        conn.execute("analyze users, categories, budgets, expenses, alerts")
        alerts = scalar(conn, "select count(*) from alerts") - alerts_before
        progress.advance("indexes", progress.finish_units)
    return GenerateResult(
        users=options.users,
        categories_added=categories_added,
        budgets=budgets,
        expenses=options.expenses,
        alerts=alerts,
        first_month=options.start_month,
        last_month=_add_months(options.start_month, options.months - 1),
        bulk_load=bulk_load,
        seconds=time.perf_counter() - started,
    )


def generated_email(seed: int, user_no: int) -> str:
    """The e-mail of generated user number user_no (from 1) for a seed."""
    return f"gen-{seed}-{user_no}@example.com"


class _ProgressTracker:
    """Work units: one per user, budget key and expense, plus a share for rebuilding."""

    def __init__(self, options: GenerateOptions, callback: Progress | None):
        self.callback = callback
        self.finish_units = max(options.expenses // 5, 1)
        self.total = (
            options.users
            + options.users * options.months * len(CATEGORIES)
            + options.expenses
            + self.finish_units
        )
        self.done = 0

    def advance(self, label: str, units: int) -> None:
        self.done += units
        if self.callback:
            self.callback(label, self.done, self.total)


def _refuse_existing_users(conn: psycopg.Connection, options: GenerateOptions) -> None:
    (row,) = conn.execute(
        """
        select
            count(*) as existing,
            min(users.email) as example
        from generate_series(1, %(users)s) as user_no
        inner join users
            on users.email = format('gen-%%s-%%s@example.com', %(seed)s::bigint, user_no)
        """,
        {"users": options.users, "seed": options.seed},
    ).fetchall()
    if row[0]:
        raise TrackerError(
            f"{row[0]:,} generated users of seed {options.seed} already exist "
            f"(e.g. {row[1]}). Use another --seed or a fresh database; nothing was written."
        )


def _add_months(month: dt.date, count: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + count
    return dt.date(index // 12, index % 12 + 1, 1)
