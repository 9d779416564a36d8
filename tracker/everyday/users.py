"""Users: add, list, update, delete (with all their data), find one by e-mail or id."""

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

import psycopg
from psycopg.rows import class_row

from tracker.errors import InputError
from tracker.everyday import validate
from tracker.plumbing import db
from tracker.text import plural


@dataclass(frozen=True)
class User:
    id: int
    name: str
    email: str
    currency: str
    created_at: datetime

    HEADERS: ClassVar[tuple[str, ...]] = ("id", "name", "email", "currency")

    def as_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "email": self.email, "currency": self.currency}

    def as_row(self) -> tuple:
        return (self.id, self.name, self.email, self.currency)


_COLUMNS = "id, name, email, currency, created_at"


def add_user(conn: psycopg.Connection, name: str, email: str, currency: str = "INR") -> User:
    """Create a user; a taken e-mail is refused."""
    name = validate.parse_name(name, what="name")
    email = validate.parse_email(email)
    currency = validate.parse_currency(currency)
    with conn.transaction(), conn.cursor(row_factory=class_row(User)) as cursor:
        taken = conn.execute("select id from users where lower(email) = %s", [email]).fetchone()
        if taken:
            raise _email_taken(email, taken[0])
        try:
            with conn.transaction():
                cursor.execute(
                    f"insert into users (name, email, currency) values (%s, %s, %s)"
                    f" returning {_COLUMNS}",
                    [name, email, currency],
                )
        except psycopg.errors.UniqueViolation:
            # Someone added the same e-mail between our check and our insert.
            raise _email_taken(email, None) from None
        return db.one(cursor)


def list_users(conn: psycopg.Connection) -> list[User]:
    """Every user, oldest first."""
    with conn.cursor(row_factory=class_row(User)) as cursor:
        return cursor.execute(f"select {_COLUMNS} from users order by id").fetchall()


def user_reference(reference) -> tuple[int | None, str | None]:
    """(id, None) or (None, e-mail) for a reference to a user; anything else is an InputError."""
    text = str(reference).strip()
    if "@" in text:
        return None, text
    if validate.looks_like_id(text):
        return int(text), None
    raise InputError(
        f'user "{reference}" is neither an e-mail nor an id. '
        "Give the user's e-mail or id (see `user list`)."
    )


def user_not_found(reference) -> InputError:
    return InputError(
        f'user "{reference}" does not exist. Check `user list`, or add the user with `user add`.'
    )


def find_user(conn: psycopg.Connection, reference) -> User:
    """The user with this e-mail (any case) or id; an unknown one is an InputError."""
    user_id, email = user_reference(reference)
    with conn.cursor(row_factory=class_row(User)) as cursor:
        if email is not None:
            found = cursor.execute(
                f"select {_COLUMNS} from users where lower(email) = lower(%s) order by id",
                [email],
            ).fetchone()
        else:
            found = cursor.execute(
                f"select {_COLUMNS} from users where id = %s", [user_id]
            ).fetchone()
    if found is None:
        raise user_not_found(reference)
    return found


def _email_taken(email: str, user_id: int | None) -> InputError:
    which = f" (user {user_id})" if user_id else ""
    return InputError(
        f'e-mail "{email}" is already taken{which}. Use another e-mail, or see `user list`.'
    )


@dataclass(frozen=True)
class UserData:
    """Everything of one user's that `delete_user` removes with them."""

    user: User
    expenses: int
    budgets: int
    alerts: int
    transfers: int


def delete_user(conn: psycopg.Connection, reference, *, confirmed: bool = False) -> UserData:
    """Delete a user and all their data (expenses, budgets, alerts, budget transfers).

    Without confirmed nothing is deleted: the InputError says what would be.
    """
    with conn.transaction():
        user = find_user(conn, reference)
        # Locks the row: no expense can be added for the user while the counts are made.
        conn.execute("select id from users where id = %s for update", [user.id])
        counts = db.one(
            conn.execute(
                """
            select
                (select count(*) from expenses where user_id = %(id)s),
                (select count(*) from budgets where user_id = %(id)s),
                (select count(*) from alerts where user_id = %(id)s),
                (select count(*) from budget_transfers where user_id = %(id)s)
            """,
                {"id": user.id},
            )
        )
        data = UserData(user, *counts)
        if not confirmed:
            raise InputError(
                f"user delete removes {user.email} and all their data "
                f"({describe_user_data(data)}), for good. Run it again with --yes to do it."
            )
        # on delete cascade: the user's expenses, budgets, alerts and transfers go with them.
        conn.execute("delete from users where id = %s", [user.id])
    return data


def describe_user_data(data: UserData) -> str:
    """ "3 expenses, 1 budget, 0 alerts and 0 budget transfers" """
    parts = [
        plural(data.expenses, "expense"),
        plural(data.budgets, "budget"),
        plural(data.alerts, "alert"),
        plural(data.transfers, "budget transfer"),
    ]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def update_user(
    conn: psycopg.Connection, reference, *, name=None, email=None, currency=None
) -> User:
    """Change a user's name, e-mail or currency (only those given).

    The currency can only change while the user has no expenses or budgets: amounts are
    never converted, so relabelling them would make them wrong.
    """
    if name is None and email is None and currency is None:
        raise InputError(
            f'nothing to change for user "{reference}". '
            "Give at least one of --name, --email, --currency."
        )
    name = validate.parse_name(name, what="name") if name is not None else None
    email = validate.parse_email(email) if email is not None else None
    currency = validate.parse_currency(currency) if currency is not None else None
    with conn.transaction(), conn.cursor(row_factory=class_row(User)) as cursor:
        user = find_user(conn, reference)
        conn.execute("select id from users where id = %s for update", [user.id])
        if email is not None:
            taken = conn.execute(
                "select id from users where lower(email) = %s and id <> %s", [email, user.id]
            ).fetchone()
            if taken:
                raise _email_taken(email, taken[0])
        if currency is not None and currency != user.currency:
            used = db.scalar(
                conn,
                """
                select
                    (select count(*) from expenses where user_id = %(id)s)
                    + (select count(*) from budgets where user_id = %(id)s)
                """,
                {"id": user.id},
            )
            if used:
                raise InputError(
                    f"{user.email} already has amounts in {user.currency} "
                    f"({used:,} expenses and budgets), which are never converted. Keep "
                    f"{user.currency}, or add a new user for {currency}."
                )
        try:
            with conn.transaction():
                cursor.execute(
                    f"""
                    update users
                    set
                        name = coalesce(%s, name),
                        email = coalesce(%s, email),
                        currency = coalesce(%s, currency)
                    where id = %s
                    returning {_COLUMNS}
                    """,
                    [name, email, currency, user.id],
                )
        except psycopg.errors.UniqueViolation:
            raise _email_taken(email, None) from None
        return db.one(cursor)
