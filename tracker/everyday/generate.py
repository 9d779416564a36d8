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
"""

import datetime as dt
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from tracker.errors import InputError, TrackerError
from tracker.everyday import validate
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

# The standard category set: the seed's five first (same descriptions and colors), then the
# rest. weight = expenses per hundred; low/high bound each expense's amount in INR.
CATEGORIES = (
    # name, description, color, weight, low, high
    ("Food", "Restaurants, groceries, beverages", "#FF6B6B", 32, 40, 2500),
    ("Transport", "Taxi, bus, metro, fuel", "#4ECDC4", 18, 20, 1500),
    ("Rent", "Monthly rent", "#556270", 2, 8000, 45000),
    ("Shopping", "Clothes, gadgets", "#C7F464", 12, 200, 15000),
    ("Entertainment", "Movies, subscriptions", "#95E1D3", 10, 100, 4000),
    ("Utilities", "Electricity, water, phone, internet", "#F7B32B", 8, 150, 6000),
    ("Health", "Doctor, pharmacy, insurance", "#E84A5F", 7, 100, 12000),
    ("Travel", "Flights, trains, hotels", "#6C5B7B", 4, 800, 60000),
    ("Education", "Courses, books, fees", "#355C7D", 7, 200, 20000),
)

# Notes per category. Some carry commas, double quotes, a newline and emoji on purpose:
# every export has to round-trip them.
NOTES = {
    "Food": (
        "Lunch at cafe",
        "Weekly groceries",
        "Dinner with friends, split 3 ways",
        "Chai ☕ and samosa",
        "Biryani 🍛 delivery",
        "Fruit & vegetables",
    ),
    "Transport": ("Taxi to office", "Metro card top-up", "Auto rickshaw", "Petrol, full tank"),
    "Rent": ("Monthly rent", "Rent – flat 4B", "Maintenance charges"),
    "Shopping": (
        "New headphones",
        'Said "never again", bought it anyway',
        "Birthday gift 🎁 for Priya",
        "Kurta, 2 pieces",
    ),
    "Entertainment": (
        'Movie "Inception" re-release',
        "Streaming subscription",
        "Concert 🎶 tickets",
    ),
    "Utilities": ("Electricity bill\nApril + May", "Mobile recharge", "Broadband, 100 Mbps"),
    "Health": ("Pharmacy: paracetamol, ORS", "Doctor visit", "Gym membership 💪"),
    "Travel": ("Flight BLR→DEL", "Train tickets, 3AC", 'Hotel "Sea View", 2 nights'),
    "Education": ("Online course (Python)", "Books", "Exam fee"),
}
# Share of expenses without a note (NULL), in percent.
NULL_NOTE_PERCENT = 12

FIRST_NAMES = (
    "Aarav",
    "Aditi",
    "Aman",
    "Ananya",
    "Arjun",
    "Diya",
    "Farhan",
    "Ishaan",
    "Kavya",
    "Meera",
    "Neha",
    "Nikhil",
    "Priya",
    "Rahul",
    "Riya",
    "Rohan",
    "Saanvi",
    "Sanjay",
    "Tara",
    "Vikram",
)
LAST_NAMES = (
    "Agarwal",
    "Bose",
    "Chopra",
    "Das",
    "Fernandes",
    "Gupta",
    "Iyer",
    "Joshi",
    "Khan",
    "Kumar",
    "Menon",
    "Nair",
    "Patel",
    "Pillai",
    "Rao",
    "Reddy",
    "Sharma",
    "Singh",
    "Verma",
    "Yadav",
)

# Percent of user/category/month keys without a budget, and with a budget of 0.
MISSING_BUDGET_PERCENT = 6
ZERO_BUDGET_PERCENT = 2
# Percent of user-months a user spends nothing in (on top of the guaranteed gaps).
SKIPPED_MONTH_PERCENT = 3

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
        _create_helpers(conn, options)
        categories_added = _insert_categories(conn)
        _insert_users(conn, options)
        progress.advance("users", options.users)
        budgets = _insert_budgets(conn, options)
        progress.advance("budgets", options.users * options.months * len(CATEGORIES))
        bulk_load = not scalar(conn, "select exists (select from expenses)")
        detached = _detach_expense_indexes(conn) if bulk_load else []
        alerts_before = scalar(conn, "select count(*) from alerts")
        for first in range(1, options.expenses + 1, CHUNK_ROWS):
            last = min(first + CHUNK_ROWS - 1, options.expenses)
            _insert_expenses(conn, options, first, last)
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


def _create_helpers(conn: psycopg.Connection, options: GenerateOptions) -> None:
    # gen_random(key, stream): a non-negative pseudo-random bigint for a row key; the stream
    # number keeps the choices of one row (category, day, amount, ...) independent.
    conn.execute(
        """
        create function pg_temp.gen_random(key bigint, stream integer, seed bigint)
        returns bigint
        language sql
        immutable
        parallel safe
        return hashint8extended(key * 32 + stream, seed) & 9223372036854775807
        """
    )
    conn.execute(
        """
        create temporary table gen_categories on commit drop as
        select
            spec.category_no,
            spec.name,
            spec.description,
            spec.color,
            spec.weight,
            spec.low,
            spec.high,
            coalesce(
                sum(spec.weight) over (
                    order by spec.category_no rows between unbounded preceding and 1 preceding
                ),
                0
            ) as first_ticket
        from unnest(
            %s::text[], %s::text[], %s::text[], %s::integer[], %s::numeric[], %s::numeric[]
        ) with ordinality as spec (name, description, color, weight, low, high, category_no)
        """,
        [list(column) for column in zip(*CATEGORIES, strict=True)],
    )
    # One row per ticket 0..99: picking a ticket uniformly picks a category by its weight.
    conn.execute(
        """
        create temporary table gen_category_tickets on commit drop as
        select
            gen_categories.first_ticket + offsets.ticket_offset as ticket_no,
            gen_categories.category_no,
            gen_categories.name
        from gen_categories
        cross join lateral generate_series(0, gen_categories.weight - 1) as offsets (ticket_offset)
        """
    )
    note_rows = [
        (category, note_no, note)
        for category, notes in NOTES.items()
        for note_no, note in enumerate(notes)
    ]
    conn.execute(
        """
        create temporary table gen_notes on commit drop as
        select
            notes.category,
            notes.note_no,
            notes.note,
            count(*) over (partition by notes.category) as notes_in_category
        from unnest(%s::text[], %s::integer[], %s::text[]) as notes (category, note_no, note)
        """,
        [list(column) for column in zip(*note_rows, strict=True)],
    )
    conn.execute(
        """
        create temporary table gen_months on commit drop as
        select
            month_no,
            (%(start)s::date + make_interval(months => month_no))::date as month_start,
            extract(
                day from %(start)s::date + make_interval(months => month_no + 1) - interval '1 day'
            )::integer as days
        from generate_series(0, %(months)s - 1) as month_no
        """,
        {"start": options.start_month, "months": options.months},
    )


def _insert_categories(conn: psycopg.Connection) -> int:
    cursor = conn.execute(
        """
        insert into categories (name, description, color)
        select
            name,
            description,
            color
        from gen_categories
        order by category_no
        on conflict (name) do nothing
        """
    )
    return cursor.rowcount


def _insert_users(conn: psycopg.Connection, options: GenerateOptions) -> None:
    params = {
        "users": options.users,
        "seed": options.seed,
        "first_names": list(FIRST_NAMES),
        "last_names": list(LAST_NAMES),
        "skip_percent": SKIPPED_MONTH_PERCENT,
        "months": options.months,
    }
    conn.execute(
        """
        insert into users (name, email, currency)
        select
            (%(first_names)s::text[])[
                1 + pg_temp.gen_random(user_no, 1, %(seed)s) %% cardinality(%(first_names)s::text[])
            ] || ' ' || (%(last_names)s::text[])[
                1 + pg_temp.gen_random(user_no, 2, %(seed)s) %% cardinality(%(last_names)s::text[])
            ] as name,
            format('gen-%%s-%%s@example.com', %(seed)s::bigint, user_no) as email,
            'INR' as currency
        from generate_series(1, %(users)s) as user_no
        order by user_no
        """,
        params,
    )
    # activity: how busy a user is (1-4); it scales their share of the expenses.
    conn.execute(
        """
        create temporary table gen_users on commit drop as
        select
            user_no,
            users.id as user_id,
            1 + pg_temp.gen_random(user_no, 3, %(seed)s) %% 4 as activity
        from generate_series(1, %(users)s) as user_no
        inner join users
            on users.email = format('gen-%%s-%%s@example.com', %(seed)s::bigint, user_no)
        """,
        params,
    )
    # The months a user spends in. Some user-months are skipped at random, and every tenth
    # user skips one month in the middle, so gaps exist even in a small run.
    conn.execute(
        """
        create temporary table gen_active_months on commit drop as
        select
            gen_users.user_no,
            gen_users.user_id,
            gen_users.activity,
            gen_months.month_no,
            gen_months.month_start,
            gen_months.days,
            gen_users.activity * (
                50
                + pg_temp.gen_random(gen_users.user_no * 4096 + gen_months.month_no, 7, %(seed)s)
                    %% 101
            ) as weight
        from gen_users
        cross join gen_months
        where pg_temp.gen_random(gen_users.user_no * 4096 + gen_months.month_no, 4, %(seed)s)
                %% 100 >= %(skip_percent)s
            and not (
                %(months)s >= 3
                and gen_users.user_no %% 10 = 3
                and gen_months.month_no
                    = 1 + pg_temp.gen_random(gen_users.user_no, 5, %(seed)s) %% (%(months)s - 2)
            )
        """,
        params,
    )
    # Expense numbers 1..N are dealt out to the active user-months in (user, month) order,
    # each a contiguous range sized by its weight (activity times 0.5-1.5). A chunk of
    # expense numbers then covers a few users completely, so each chunk's alert trigger
    # looks at the keys of those users only, as one COPY of the same rows would.
    conn.execute(
        """
        create temporary table gen_month_rows on commit drop as
        with running as (
            select
                user_id,
                month_start,
                days,
                sum(weight) over (order by user_no, month_no) as weight_through,
                weight,
                sum(weight) over () as total_weight
            from gen_active_months
        )

        select
            user_id,
            month_start,
            days,
            div(%(expenses)s::numeric * (weight_through - weight), total_weight)::bigint + 1
                as first_row,
            div(%(expenses)s::numeric * weight_through, total_weight)::bigint as last_row
        from running
        """,
        {**params, "expenses": options.expenses},
    )
    conn.execute("create index on gen_month_rows (first_row)")
    conn.execute("analyze gen_month_rows")
    has_months = scalar(conn, "select exists (select from gen_month_rows)")
    if options.expenses and not has_months:
        raise TrackerError(
            "every generated user skipped every month, so there is nowhere to put "
            "expenses. Give more --users or --months."
        )


def _insert_budgets(conn: psycopg.Connection, options: GenerateOptions) -> int:
    # A budget is the key's expected spending times 0.70-1.59, rounded to hundreds, so a fair
    # share of keys ends up over budget; a few keys get no budget and a few a budget of 0.
    # Expected spending = expenses a user-month gets on average (activity times the mean
    # weight factor, over all weight) times
    # the category's share times its mean amount (low + (high - low) / 4 for a cubed uniform).
    cursor = conn.execute(
        """
        with weights as (
            select sum(weight) as total_weight
            from gen_active_months
        ),

        keys as (
            select
                gen_users.user_no,
                gen_users.user_id,
                gen_users.activity,
                gen_months.month_no,
                gen_months.month_start,
                gen_categories.category_no,
                gen_categories.name as category,
                gen_categories.weight,
                gen_categories.low + (gen_categories.high - gen_categories.low) / 4 as mean_amount,
                pg_temp.gen_random(
                    (gen_users.user_no * 4096 + gen_months.month_no) * 64
                        + gen_categories.category_no,
                    6,
                    %(seed)s
                ) as draw
            from gen_users
            cross join gen_months
            cross join gen_categories
        ),

        final as (
            select
                keys.user_id,
                categories.id as category_id,
                keys.month_start as month,
                case
                    when keys.draw %% 100 < %(missing)s + %(zero)s then 0
                    else round(
                        %(expenses)s::numeric * keys.activity * 100
                            / greatest(weights.total_weight, 1)
                            * keys.weight / 100
                            * keys.mean_amount
                            * (70 + (keys.draw / 100) %% 90) / 100,
                        -2
                    )
                end as amount
            from keys
            cross join weights
            inner join categories
                on categories.name = keys.category
            where keys.draw %% 100 >= %(missing)s
        )

        insert into budgets (user_id, category_id, month, amount)
        select
            user_id,
            category_id,
            month,
            amount
        from final
        """,
        {
            "seed": options.seed,
            "expenses": options.expenses,
            "missing": MISSING_BUDGET_PERCENT,
            "zero": ZERO_BUDGET_PERCENT,
        },
    )
    conn.execute("analyze budgets")
    return cursor.rowcount


def _insert_expenses(
    conn: psycopg.Connection, options: GenerateOptions, first: int, last: int
) -> None:
    # amount: low + (high - low) * u^3 for u uniform in [0, 1) on 20 bits: most expenses are
    # small, a few large. Two in three are whole rupees.
    conn.execute(
        """
        with draws as (
            select
                gen_month_rows.user_id,
                gen_month_rows.month_start,
                gen_month_rows.days,
                expense_no,
                pg_temp.gen_random(expense_no, 11, %(seed)s) %% 100 as category_ticket,
                pg_temp.gen_random(expense_no, 12, %(seed)s) as day_draw,
                pg_temp.gen_random(expense_no, 13, %(seed)s) %% 1048576 as amount_draw,
                pg_temp.gen_random(expense_no, 14, %(seed)s) as note_draw,
                pg_temp.gen_random(expense_no, 15, %(seed)s) %% 3 as cents_draw
            from gen_month_rows
            cross join lateral generate_series(
                greatest(gen_month_rows.first_row, %(first)s::bigint),
                least(gen_month_rows.last_row, %(last)s::bigint)
            ) as expense_no
            where gen_month_rows.first_row <= %(last)s::bigint
                and gen_month_rows.last_row >= %(first)s::bigint
        ),

        final as (
            select
                draws.user_id,
                categories.id as category_id,
                round(
                    gen_categories.low
                        + (gen_categories.high - gen_categories.low)
                            * (draws.amount_draw * draws.amount_draw * draws.amount_draw)::numeric
                            / 1152921504606846976,
                    case when draws.cents_draw = 0 then 2 else 0 end
                ) as amount,
                'INR' as currency,
                draws.month_start + (draws.day_draw %% draws.days)::integer as date,
                gen_notes.note
            from draws
            inner join gen_category_tickets
                on gen_category_tickets.ticket_no = draws.category_ticket
            inner join gen_categories
                on gen_categories.category_no = gen_category_tickets.category_no
            inner join categories
                on categories.name = gen_categories.name
            left join gen_notes
                on gen_notes.category = gen_categories.name
                and draws.note_draw %% 100 >= %(null_notes)s
                and gen_notes.note_no = (draws.note_draw / 100) %% gen_notes.notes_in_category
        )

        insert into expenses (user_id, category_id, amount, currency, date, note)
        select
            user_id,
            category_id,
            amount,
            currency,
            date,
            note
        from final
        """,
        {
            "seed": options.seed,
            "first": first,
            "last": last,
            "null_notes": NULL_NOTE_PERCENT,
        },
    )


def _detach_expense_indexes(conn: psycopg.Connection) -> list[sql.SQL | sql.Composed]:
    """Drop the expenses foreign keys, unique constraints and secondary indexes.

    Returns the statements that create them again, from the catalog's own definitions.
    All of them go: the alert trigger reads each key's total from budget_spending (V010),
    never the expenses themselves.
    """
    restore: list[sql.SQL | sql.Composed] = []
    constraints = conn.execute(
        """
        select
            pg_constraint.conname,
            pg_get_constraintdef(pg_constraint.oid) as definition,
            obj_description(pg_constraint.oid, 'pg_constraint') as comment
        from pg_constraint
        where pg_constraint.conrelid = 'expenses'::regclass
            and pg_constraint.contype in ('f', 'u')
        order by pg_constraint.conname
        """
    ).fetchall()
    indexes = conn.execute(
        """
        select
            index_namespace.nspname as index_schema,
            index_class.relname as index_name,
            pg_get_indexdef(pg_index.indexrelid) as definition,
            obj_description(pg_index.indexrelid, 'pg_class') as comment
        from pg_index
        inner join pg_class as index_class
            on index_class.oid = pg_index.indexrelid
        inner join pg_namespace as index_namespace
            on index_namespace.oid = index_class.relnamespace
        where pg_index.indrelid = 'expenses'::regclass
            and not pg_index.indisprimary
            and not exists (
                select
                from pg_constraint
                where pg_constraint.conindid = pg_index.indexrelid
            )
        order by index_class.relname
        """
    ).fetchall()
    for name, definition, comment in constraints:
        conn.execute(
            sql.SQL("alter table expenses drop constraint {}").format(sql.Identifier(name))
        )
        restore.append(
            sql.SQL("alter table expenses add constraint {} ").format(sql.Identifier(name))
            + sql.SQL(definition)
        )
        if comment is not None:
            restore.append(
                sql.SQL("comment on constraint {} on expenses is {}").format(
                    sql.Identifier(name), sql.Literal(comment)
                )
            )
    for schema, name, definition, comment in indexes:
        conn.execute(sql.SQL("drop index {}").format(sql.Identifier(schema, name)))
        restore.append(sql.SQL(definition))
        if comment is not None:
            restore.append(
                sql.SQL("comment on index {} is {}").format(
                    sql.Identifier(schema, name), sql.Literal(comment)
                )
            )
    return restore


def _add_months(month: dt.date, count: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + count
    return dt.date(index // 12, index % 12 + 1, 1)
