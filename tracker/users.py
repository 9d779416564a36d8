"""Users: add, list, and find one by e-mail or id."""

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import class_row

from . import validate
from .errors import InputError


@dataclass(frozen=True)
class User:
    id: int
    name: str
    email: str
    currency: str
    created_at: datetime


_COLUMNS = "id, name, email, currency, created_at"


def add_user(conn: psycopg.Connection, name: str, email: str, currency: str = "INR") -> User:
    """Create a user; a taken e-mail is refused."""
    name = validate.parse_name(name, what="name")
    email = validate.parse_email(email)
    currency = validate.parse_currency(currency)
    with conn.transaction(), conn.cursor(row_factory=class_row(User)) as cursor:
        taken = conn.execute(
            "select id from users where lower(email) = %s", [email]
        ).fetchone()
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
        return cursor.fetchone()


def list_users(conn: psycopg.Connection) -> list[User]:
    """Every user, oldest first."""
    with conn.cursor(row_factory=class_row(User)) as cursor:
        return cursor.execute(f"select {_COLUMNS} from users order by id").fetchall()


def find_user(conn: psycopg.Connection, reference) -> User:
    """The user with this e-mail (any case) or id; an unknown one is an InputError."""
    text = str(reference).strip()
    with conn.cursor(row_factory=class_row(User)) as cursor:
        if "@" in text:
            found = cursor.execute(
                f"select {_COLUMNS} from users where lower(email) = lower(%s) order by id",
                [text],
            ).fetchone()
        elif validate.looks_like_id(text):
            found = cursor.execute(
                f"select {_COLUMNS} from users where id = %s", [int(text)]
            ).fetchone()
        else:
            raise InputError(
                f'Error: user "{reference}" is neither an e-mail nor an id. '
                "Give the user's e-mail or id (see `user list`)."
            )
    if found is None:
        raise InputError(
            f'Error: user "{reference}" does not exist. '
            "Check `user list`, or add the user with `user add`."
        )
    return found


def _email_taken(email: str, user_id: int | None) -> InputError:
    which = f" (user {user_id})" if user_id else ""
    return InputError(
        f'Error: e-mail "{email}" is already taken{which}. '
        "Use another e-mail, or see `user list`."
    )
