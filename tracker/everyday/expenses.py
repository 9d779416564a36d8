"""Expenses: add, list with filters, update, delete.

Every write is one statement, so the budget-alert trigger (V002) sees it once: an expense
that pushes a category over its monthly budget records exactly one alert.
"""

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import date, datetime, timedelta
from decimal import Decimal

import psycopg
from psycopg.rows import class_row, dict_row

from tracker import text
from tracker.errors import InputError
from tracker.everyday import validate
from tracker.everyday.alerts import Alert, alerts_fired_now
from tracker.everyday.categories import category_id_reference, category_not_found, find_category
from tracker.everyday.users import User, find_user, user_not_found, user_reference


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


# record_expense()'s arguments after the user and the category (R__record_expense.sql), as SQL
# placeholders; the REST API calls api_record_expense() with the token before them.
RECORD_ARGUMENTS = """
    %(user_id)s, %(email)s, %(category_id)s, %(category_name)s,
    %(amount)s, %(currency)s, %(date)s, %(note)s
"""
_RECORD = f"select * from record_expense({RECORD_ARGUMENTS})"
_EXPENSE_FIELDS = [field.name for field in fields(Expense) if field.name != "alerts"]
_ALERT_FIELDS = [field.name for field in fields(Alert)]
# The user of the REST API transaction (its tracker.user_id setting), in place of a reference.
SESSION_USER = object()


@dataclass(frozen=True)
class ExpenseRecording:
    """One expense to record, checked: record_expense()'s arguments, and how to read its rows."""

    user: object
    category: object
    arguments: dict

    @classmethod
    def of(
        cls, user, category, amount, day=None, note: str | None = None, currency=None
    ) -> "ExpenseRecording":
        """Check the values by the CLI's rules (date defaults to today); user may be
        SESSION_USER."""
        amount = validate.parse_amount(amount)
        day = validate.parse_date(day) if day is not None else date.today()
        currency = validate.parse_currency(currency) if currency is not None else None
        user_id, email = (None, None) if user is SESSION_USER else user_reference(user)
        category_id = category_id_reference(str(category))
        arguments = {
            "user_id": user_id,
            "email": email,
            "category_id": category_id,
            "category_name": str(category).strip() if category_id is None else None,
            "amount": amount,
            "currency": currency,
            "date": day,
            "note": _clean_note(note),
        }
        return cls(user, category, arguments)

    def result(self, rows: list[dict]) -> Expense:
        """The recorded expense with the alerts it fired (rows as dicts: the expense once per
        alert, at least once); a refusal is an InputError worded as the CLI words it."""
        first = rows[0]
        if first["problem"] == "user":
            raise user_not_found(self.user)
        if first["problem"] == "currency":
            raise currency_refused(
                first["user_email"], first["user_currency"], self.arguments["currency"]
            )
        if first["problem"] == "category":
            raise category_not_found(self.category)
        alerts = tuple(
            Alert(**{name: row["alert_" + name] for name in _ALERT_FIELDS})
            for row in rows
            if row["alert_id"] is not None
        )
        return Expense(**{name: first[name] for name in _EXPENSE_FIELDS}, alerts=alerts)


def add_expense(
    conn: psycopg.Connection,
    user,
    category,
    amount,
    day=None,
    note: str | None = None,
    currency: str | None = None,
) -> Expense:
    """Record one expense (date defaults to today; a currency must be the user's).

    One statement, record_expense() (R__record_expense.sql): the lookups, the checks, the insert
    and the alerts it fired come back in one round trip.
    """
    recording = ExpenseRecording.of(user, category, amount, day, note, currency)
    return recording.result(record_rows(conn, recording))


def record_rows(conn: psycopg.Connection, recording: ExpenseRecording) -> list[dict]:
    """record_expense()'s rows for a recording (read them with recording.result())."""
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(_RECORD, recording.arguments).fetchall()


def check_currency(user: User, currency: str | None) -> str:
    """The user's currency; another one is refused.

    Budgets, alerts, summaries and every model add a user's amounts up with no conversion,
    so each user's expenses are kept in the user's one currency.
    """
    if currency is not None and currency != user.currency:
        raise currency_refused(user.email, user.currency, currency)
    return user.currency


def currency_refused(email: str, user_currency: str, currency: str) -> InputError:
    return InputError(
        f'currency "{currency}" differs from {email}\'s currency '
        f"{user_currency}. Budgets and totals are kept in one currency per user; record "
        f"the amount in {user_currency}."
    )


def get_expense(conn: psycopg.Connection, expense_id) -> Expense:
    """One expense by id; an unknown id is an InputError."""
    expense_id = validate.parse_id(expense_id, what="expense")
    with conn.cursor(row_factory=class_row(Expense)) as cursor:
        found = cursor.execute(_SELECT + " where expenses.id = %s", [expense_id]).fetchone()
    if found is None:
        raise InputError(f"expense {expense_id} does not exist. Check the id with `expense list`.")
    return found


SORTS = ("date", "amount")
# Newest first, or largest first; the id breaks ties so the order is total.
_ORDER = {
    "date": "expenses.date desc, expenses.id desc",
    "amount": "expenses.amount desc, expenses.id desc",
}
# The filters reach the query as bound parameters: set_config() binds them into settings
# local to the transaction, which the fixed query text reads. COPY cannot take parameters.
_FILTERS = """
    where true
        and (nullif(current_setting('tracker.user_id'), '')::bigint is null
            or expenses.user_id = nullif(current_setting('tracker.user_id'), '')::bigint)
        and (nullif(current_setting('tracker.category_id'), '')::bigint is null
            or expenses.category_id
                = nullif(current_setting('tracker.category_id'), '')::bigint)
        and (nullif(current_setting('tracker.date_from'), '')::date is null
            or expenses.date >= nullif(current_setting('tracker.date_from'), '')::date)
        and (nullif(current_setting('tracker.date_before'), '')::date is null
            or expenses.date < nullif(current_setting('tracker.date_before'), '')::date)
        and (nullif(current_setting('tracker.min_amount'), '')::numeric is null
            or expenses.amount >= nullif(current_setting('tracker.min_amount'), '')::numeric)
        and (nullif(current_setting('tracker.max_amount'), '')::numeric is null
            or expenses.amount <= nullif(current_setting('tracker.max_amount'), '')::numeric)
"""


@dataclass(frozen=True)
class ExpenseFilter:
    """Checked filters of `expense list`; every one optional."""

    user_id: int | None = None
    category_id: int | None = None
    date_from: date | None = None  # inclusive
    date_before: date | None = None  # exclusive
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    sort: str = "date"


def expense_filter(
    conn: psycopg.Connection,
    *,
    user=None,
    category=None,
    month=None,
    date_from=None,
    date_to=None,
    min_amount=None,
    max_amount=None,
    sort: str = "date",
) -> ExpenseFilter:
    """The filters as typed, parsed and checked (user and category looked up)."""
    month = validate.parse_month(month) if month is not None else None
    if date_from is not None:
        date_from = validate.parse_date(date_from, what="--from date")
    date_to = validate.parse_date(date_to, what="--to date") if date_to is not None else None
    if min_amount is not None:
        min_amount = validate.parse_amount(min_amount, what="--min amount", allow_zero=True)
    if max_amount is not None:
        max_amount = validate.parse_amount(max_amount, what="--max amount", allow_zero=True)
    if sort not in SORTS:
        raise InputError(
            f'--sort "{sort}" is not one of {", ".join(SORTS)}. Use --sort date or --sort amount.'
        )
    if date_from and date_to and date_from > date_to:
        raise InputError(f"--from {date_from} is after --to {date_to}. Swap them.")
    if min_amount is not None and max_amount is not None and min_amount > max_amount:
        raise InputError(f"--min {min_amount} is above --max {max_amount}. Swap them.")
    starts = [day for day in (date_from, month.first_day if month else None) if day]
    ends = [day + timedelta(days=1) for day in (date_to,) if day]
    if month:
        ends.append(month.next_first_day)
    with conn.transaction():
        user_id = find_user(conn, user).id if user is not None else None
        category_id = find_category(conn, category).id if category is not None else None
    return ExpenseFilter(
        user_id,
        category_id,
        max(starts) if starts else None,
        min(ends) if ends else None,
        min_amount,
        max_amount,
        sort,
    )


_LIMIT = " limit nullif(current_setting('tracker.limit'), '')::bigint"


def _bind_filter(conn: psycopg.Connection, chosen: ExpenseFilter, limit: int | None) -> None:
    """Set the filter's settings for the current transaction (every value bound)."""
    values = {
        "tracker.limit": limit,
        "tracker.user_id": chosen.user_id,
        "tracker.category_id": chosen.category_id,
        "tracker.date_from": chosen.date_from,
        "tracker.date_before": chosen.date_before,
        "tracker.min_amount": chosen.min_amount,
        "tracker.max_amount": chosen.max_amount,
    }
    for name, value in values.items():
        conn.execute("select set_config(%s, %s, true)", [name, "" if value is None else str(value)])
    conn.execute("set local datestyle = 'ISO, YMD'")


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
    sort: str = "date",
    limit: int | None = None,
) -> list[Expense]:
    """Expenses matching every given filter, newest (or largest) first, at most `limit`."""
    chosen = expense_filter(
        conn,
        user=user,
        category=category,
        month=month,
        date_from=date_from,
        date_to=date_to,
        min_amount=min_amount,
        max_amount=max_amount,
        sort=sort,
    )
    return fetch_expenses(conn, chosen, limit)


def fetch_expenses(
    conn: psycopg.Connection, chosen: ExpenseFilter, limit: int | None = None
) -> list[Expense]:
    """At most `limit` expenses matching the filter, in its order."""
    if limit is not None and limit < 1:
        raise InputError(f"--limit {limit} must be 1 or more. Give a positive number.")
    with conn.transaction():
        _bind_filter(conn, chosen, limit)
        with conn.cursor(row_factory=class_row(Expense)) as cursor:
            return cursor.execute(
                _SELECT + _FILTERS + f" order by {_ORDER[chosen.sort]}" + _LIMIT
            ).fetchall()


# One JSON object per expense, built by PostgreSQL; amounts as exact strings.
_JSON_ROW = """
    json_build_object(
        'id', expenses.id,
        'date', expenses.date::text,
        'user', users.email,
        'category', categories.name,
        'amount', expenses.amount::text,
        'currency', expenses.currency,
        'note', expenses.note
    )::text
"""
_CSV_COLUMNS = """
    expenses.id,
    expenses.date,
    users.email as "user",
    categories.name as category,
    expenses.amount,
    expenses.currency,
    expenses.note
"""
_FROM = """
    from expenses
    inner join users
        on users.id = expenses.user_id
    inner join categories
        on categories.id = expenses.category_id
"""
JSON_BATCH_ROWS = 2000


def stream_expenses(
    conn: psycopg.Connection,
    chosen: ExpenseFilter,
    fmt: str,
    write: Callable[[bytes], object],
    limit: int | None = None,
) -> None:
    """Write the matching expenses as CSV (header first) or as a JSON array, streamed.

    CSV is PostgreSQL's own COPY output, passed through in blocks; JSON objects are built
    by PostgreSQL and read through a server-side cursor in batches. Memory stays flat
    however many rows match.
    """
    if limit is not None and limit < 1:
        raise InputError(f"--limit {limit} must be 1 or more. Give a positive number.")
    order = f" order by {_ORDER[chosen.sort]}"
    limited = _LIMIT
    with conn.transaction():
        _bind_filter(conn, chosen, limit)
        if fmt == "csv":
            statement = (
                "copy (select"
                + _CSV_COLUMNS
                + _FROM
                + _FILTERS
                + order
                + limited
                + ") to stdout (format csv, header)"
            )
            with conn.cursor() as cursor, cursor.copy(statement) as copy:
                for block in copy:
                    write(bytes(block))
            return
        with conn.cursor(name="expense_list") as cursor:
            cursor.itersize = JSON_BATCH_ROWS
            cursor.execute("select" + _JSON_ROW + _FROM + _FILTERS + order + limited)
            first = True
            write(b"[")
            while rows := cursor.fetchmany(JSON_BATCH_ROWS):
                objects = ",\n  ".join(row[0] for row in rows)
                write((("\n  " if first else ",\n  ") + objects).encode("utf-8"))
                first = False
            write(b"\n]\n" if not first else b"]\n")


# The table shows this many expenses unless a limit says otherwise (it is for people).
TABLE_LIMIT = 50


def write_expenses(
    conn: psycopg.Connection,
    fmt: str,
    write: Callable[[bytes], object],
    *,
    limit: int | None = None,
    **filters,
) -> None:
    """Write the expenses matching `filters` (see `expense_filter`) in fmt.

    csv and json stream every match (or `limit`); the table shows the first TABLE_LIMIT (or
    `limit`) and says when more match.
    """
    chosen = expense_filter(conn, **filters)
    if fmt != "table":
        stream_expenses(conn, chosen, fmt, write, limit=limit)
        return
    shown = limit if limit is not None else TABLE_LIMIT
    if shown < 1:
        raise InputError(f"--limit {shown} must be 1 or more. Give a positive number.")
    rows = fetch_expenses(conn, chosen, shown + 1)
    lines = [
        text.table(
            ["id", "date", "user", "category", "amount", "currency", "note"],
            [
                (e.id, e.date, e.user_email, e.category, text.money(e.amount), e.currency, e.note)
                for e in rows[:shown]
            ],
        )
    ]
    if len(rows) > shown:
        lines.append(
            f"Showing the first {text.plural(shown, 'expense')}; more match. Raise --limit, "
            "or use --format csv for all of them."
        )
    write(("\n".join(lines) + "\n").encode("utf-8"))


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
            f"nothing to change for expense {expense_id}. "
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
