"""Expenses: add, list with filters, update, delete.

Every write is one statement, so the budget-alert trigger (V002) sees it once: an expense
that pushes a category over its monthly budget records exactly one alert.
"""

from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal

import psycopg
from psycopg.rows import class_row

from . import validate
from .alerts import Alert, alerts_fired_now
from .categories import find_category
from .errors import InputError
from .users import User, find_user


@dataclass(frozen=True)
class Expense:
    id: int
    date: date
    user_id: int
    user_email: str
    category_id: int
    category: str
    amount: Decimal
    currency: str
    note: str | None
    created_at: datetime
    alerts: tuple[Alert, ...] = ()  # budget alerts this change fired

    def as_dict(self) -> dict:
        """JSON-ready: amounts as strings so they stay exact, dates as ISO text."""
        return {
            "id": self.id,
            "date": self.date.isoformat(),
            "user": self.user_email,
            "category": self.category,
            "amount": str(self.amount),
            "currency": self.currency,
            "note": self.note,
        }


_SELECT = """
    select
        expenses.id,
        expenses.date,
        expenses.user_id,
        users.email as user_email,
        expenses.category_id,
        categories.name as category,
        expenses.amount,
        expenses.currency,
        expenses.note,
        expenses.created_at
    from expenses
    inner join users
        on users.id = expenses.user_id
    inner join categories
        on categories.id = expenses.category_id
"""


def add_expense(
    conn: psycopg.Connection,
    user,
    category,
    amount,
    day=None,
    note: str | None = None,
    currency: str | None = None,
) -> Expense:
    """Record one expense (date defaults to today; a currency must be the user's)."""
    amount = validate.parse_amount(amount)
    day = validate.parse_date(day) if day is not None else date.today()
    currency = validate.parse_currency(currency) if currency is not None else None
    with conn.transaction():
        found_user = find_user(conn, user)
        currency = check_currency(found_user, currency)
        found_category = find_category(conn, category)
        expense_id = conn.execute(
            """
            insert into expenses (user_id, category_id, amount, currency, date, note)
            values (%s, %s, %s, %s, %s, %s)
            returning id
            """,
            [
                found_user.id,
                found_category.id,
                amount,
                currency,
                day,
                _clean_note(note),
            ],
        ).fetchone()[0]
        return replace(get_expense(conn, expense_id), alerts=alerts_fired_now(conn, found_user.id))


def check_currency(user: User, currency: str | None) -> str:
    """The user's currency; another one is refused.

    Budgets, alerts, summaries and every model add a user's amounts up with no conversion,
    so each user's expenses are kept in the user's one currency.
    """
    if currency is not None and currency != user.currency:
        raise InputError(
            f'Error: currency "{currency}" differs from {user.email}\'s currency '
            f"{user.currency}. Budgets and totals are kept in one currency per user; record "
            f"the amount in {user.currency}."
        )
    return user.currency


def get_expense(conn: psycopg.Connection, expense_id) -> Expense:
    """One expense by id; an unknown id is an InputError."""
    expense_id = validate.parse_id(expense_id, what="expense")
    with conn.cursor(row_factory=class_row(Expense)) as cursor:
        found = cursor.execute(_SELECT + " where expenses.id = %s", [expense_id]).fetchone()
    if found is None:
        raise InputError(
            f"Error: expense {expense_id} does not exist. Check the id with `expense list`."
        )
    return found


def list_expenses(
    conn: psycopg.Connection,
    *,
    user=None,
    category=None,
    month=None,
    date_from=None,
    date_to=None,
    min_amount=None,
    max_amount=None,
) -> list[Expense]:
    """Expenses matching every given filter, newest first."""
    month = validate.parse_month(month) if month is not None else None
    if date_from is not None:
        date_from = validate.parse_date(date_from, what="--from date")
    date_to = validate.parse_date(date_to, what="--to date") if date_to is not None else None
    if min_amount is not None:
        min_amount = validate.parse_amount(min_amount, what="--min amount", allow_zero=True)
    if max_amount is not None:
        max_amount = validate.parse_amount(max_amount, what="--max amount", allow_zero=True)
    if date_from and date_to and date_from > date_to:
        raise InputError(
            f"Error: --from {date_from} is after --to {date_to}. Swap them."
        )
    if min_amount is not None and max_amount is not None and min_amount > max_amount:
        raise InputError(
            f"Error: --min {min_amount} is above --max {max_amount}. Swap them."
        )
    with conn.transaction():
        user_id = find_user(conn, user).id if user is not None else None
        category_id = find_category(conn, category).id if category is not None else None
        with conn.cursor(row_factory=class_row(Expense)) as cursor:
            return cursor.execute(
                _SELECT
                + """
                where true
                    and (%(user_id)s::bigint is null or expenses.user_id = %(user_id)s)
                    and (%(category_id)s::bigint is null
                        or expenses.category_id = %(category_id)s)
                    and (%(month_start)s::date is null or expenses.date >= %(month_start)s)
                    and (%(month_end)s::date is null or expenses.date < %(month_end)s)
                    and (%(date_from)s::date is null or expenses.date >= %(date_from)s)
                    and (%(date_to)s::date is null or expenses.date <= %(date_to)s)
                    and (%(min_amount)s::numeric is null or expenses.amount >= %(min_amount)s)
                    and (%(max_amount)s::numeric is null or expenses.amount <= %(max_amount)s)
                order by expenses.date desc, expenses.id desc
                """,
                {
                    "user_id": user_id,
                    "category_id": category_id,
                    "month_start": month.first_day if month else None,
                    "month_end": month.next_first_day if month else None,
                    "date_from": date_from,
                    "date_to": date_to,
                    "min_amount": min_amount,
                    "max_amount": max_amount,
                },
            ).fetchall()


_UNSET = object()


def update_expense(
    conn: psycopg.Connection,
    expense_id,
    *,
    note=_UNSET,
    amount=None,
    category=None,
    day=None,
) -> Expense:
    """Change an expense's note, amount, category or date (only those); returns the new row."""
    expense_id = validate.parse_id(expense_id, what="expense")
    if note is _UNSET and amount is None and category is None and day is None:
        raise InputError(
            f"Error: nothing to change for expense {expense_id}. "
            "Give at least one of --note, --amount, --category, --date."
        )
    amount = validate.parse_amount(amount) if amount is not None else None
    day = validate.parse_date(day) if day is not None else None
    with conn.transaction():
        get_expense(conn, expense_id)
        category_id = find_category(conn, category).id if category is not None else None
        conn.execute(
            """
            update expenses
            set
                note = case when %(set_note)s then %(note)s else note end,
                amount = coalesce(%(amount)s, amount),
                category_id = coalesce(%(category_id)s, category_id),
                date = coalesce(%(date)s, date)
            where id = %(id)s
            """,
            {
                "set_note": note is not _UNSET,
                "note": _clean_note(note) if note is not _UNSET else None,
                "amount": amount,
                "category_id": category_id,
                "date": day,
                "id": expense_id,
            },
        )
        updated = get_expense(conn, expense_id)
        return replace(updated, alerts=alerts_fired_now(conn, updated.user_id))


def delete_expense(conn: psycopg.Connection, expense_id) -> Expense:
    """Delete one expense; returns what was deleted."""
    with conn.transaction():
        expense = get_expense(conn, expense_id)
        conn.execute("delete from expenses where id = %s", [expense.id])
    return expense


def _clean_note(note: str | None) -> str | None:
    if note is None:
        return None
    return note.strip() or None
