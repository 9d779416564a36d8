"""generate's rows: the SQL that writes each table, chunk by chunk, all server-side.

Each pseudo-random choice is pg_temp.gen_random(row key, stream, seed) (hashint8extended):
a pure function of the seed and the row's number, so the same seed gives the same content
whatever the plan, the chunk order or the server's parallelism. Amounts use numeric
arithmetic only (no floats), so they are exact and identical on every platform.
create_helpers makes the function and the temporary tables the inserts read (categories,
their tickets, notes, months); insert_users adds the users and their active months.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg

from tracker.errors import TrackerError
from tracker.everyday.generate_vocabulary import (
    CATEGORIES,
    FIRST_NAMES,
    LAST_NAMES,
    MISSING_BUDGET_PERCENT,
    NOTES,
    NULL_NOTE_PERCENT,
    SKIPPED_MONTH_PERCENT,
    ZERO_BUDGET_PERCENT,
)
from tracker.plumbing.db import scalar

if TYPE_CHECKING:
    from tracker.everyday.generate import GenerateOptions


def create_helpers(conn: psycopg.Connection, options: GenerateOptions) -> None:
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


def insert_categories(conn: psycopg.Connection) -> int:
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


def insert_users(conn: psycopg.Connection, options: GenerateOptions) -> None:
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


def insert_budgets(conn: psycopg.Connection, options: GenerateOptions) -> int:
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


def insert_expenses(
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
