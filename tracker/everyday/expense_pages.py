"""One user's expenses a page at a time, sorted by date or amount, with keyset cursors.

A page ends at a (sort value, id) position and the next page starts strictly after it, so
rows added or removed meanwhile never shift the pages: nothing is returned twice and nothing
that existed is skipped (an OFFSET would do both). The filters are `expense list`'s.
"""

import base64
import json
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from tracker.errors import InputError
from tracker.everyday import validate
from tracker.everyday.categories import find_category
from tracker.everyday.expenses import _SELECT, Expense

SORTS = ("date", "amount")
MAX_LIMIT = 200


@dataclass(frozen=True)
class ExpensePage:
    items: list[Expense]
    next_cursor: str | None


def encode_cursor(sort: str, descending: bool, expense: Expense) -> str:
    value = getattr(expense, sort)
    payload = [sort, "desc" if descending else "asc", str(value), expense.id]
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str, descending: bool):
    """(sort value, id) from a cursor made for the same sort and order; else an InputError."""
    problem = InputError(
        f'cursor "{cursor[:40]}" is not a cursor of this listing. Pass the next_cursor '
        "of the previous page unchanged, with the same sort and order."
    )
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        kind, order, value, expense_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if kind != sort or order != ("desc" if descending else "asc"):
            raise problem
        position = date.fromisoformat(value) if sort == "date" else Decimal(value)
        if not isinstance(expense_id, int) or not 0 < expense_id < 2**63:
            raise problem
    except InputError:
        raise
    except Exception:
        raise problem from None
    return position, expense_id


def list_expense_page(
    conn: psycopg.Connection,
    user_id: int,
    *,
    category=None,
    month=None,
    date_from=None,
    date_to=None,
    min_amount=None,
    max_amount=None,
    sort: str = "date",
    descending: bool = True,
    limit: int = 50,
    cursor: str | None = None,
) -> ExpensePage:
    """A page of a user's expenses matching every filter, and the cursor of the next page."""
    if sort not in SORTS:
        raise InputError(f'sort "{sort}" is unknown. Use one of: {", ".join(SORTS)}.')
    if not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"limit {limit} is out of range. Give 1 to {MAX_LIMIT}.")
    month = validate.parse_month(month) if month is not None else None
    if date_from is not None:
        date_from = validate.parse_date(date_from, what="from date")
    date_to = validate.parse_date(date_to, what="to date") if date_to is not None else None
    if min_amount is not None:
        min_amount = validate.parse_amount(min_amount, what="min amount", allow_zero=True)
    if max_amount is not None:
        max_amount = validate.parse_amount(max_amount, what="max amount", allow_zero=True)
    if date_from and date_to and date_from > date_to:
        raise InputError(f"from {date_from} is after to {date_to}. Swap them.")
    if min_amount is not None and max_amount is not None and min_amount > max_amount:
        raise InputError(f"min {min_amount} is above max {max_amount}. Swap them.")
    after = decode_cursor(cursor, sort, descending) if cursor else (None, None)
    column = sql.Identifier("expenses", sort)
    direction = sql.SQL("desc" if descending else "asc")
    comparison = sql.SQL("<" if descending else ">")
    statement = sql.SQL(_SELECT) + sql.SQL(
        """
        where true
            and expenses.user_id = %(user_id)s
            and (%(category_id)s::bigint is null or expenses.category_id = %(category_id)s)
            and (%(month_start)s::date is null or expenses.date >= %(month_start)s)
            and (%(month_end)s::date is null or expenses.date < %(month_end)s)
            and (%(date_from)s::date is null or expenses.date >= %(date_from)s)
            and (%(date_to)s::date is null or expenses.date <= %(date_to)s)
            and (%(min_amount)s::numeric is null or expenses.amount >= %(min_amount)s)
            and (%(max_amount)s::numeric is null or expenses.amount <= %(max_amount)s)
            and (%(after_id)s::bigint is null
                or ({column}, expenses.id) {comparison} (%(after_value)s, %(after_id)s))
        order by {column} {direction}, expenses.id {direction}
        limit %(limit)s
        """
    ).format(column=column, comparison=comparison, direction=direction)
    with conn.transaction():
        category_id = find_category(conn, category).id if category is not None else None
        with conn.cursor(row_factory=class_row(Expense)) as rows:
            found = rows.execute(
                statement,
                {
                    "user_id": user_id,
                    "category_id": category_id,
                    "month_start": month.first_day if month else None,
                    "month_end": month.next_first_day if month else None,
                    "date_from": date_from,
                    "date_to": date_to,
                    "min_amount": min_amount,
                    "max_amount": max_amount,
                    "after_value": after[0],
                    "after_id": after[1],
                    # One row more than asked says whether there is a next page.
                    "limit": limit + 1,
                },
            ).fetchall()
    items = found[:limit]
    more = len(found) > limit
    return ExpensePage(items, encode_cursor(sort, descending, items[-1]) if more else None)
