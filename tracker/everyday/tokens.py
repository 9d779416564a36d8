"""Personal access tokens for the REST API: create (shown once), list, revoke, authenticate.

A token is 32 random bytes (URL-safe text, prefixed `sst_`); only its sha256 is stored, so a
leaked database does not leak usable tokens. 256 bits of entropy make a slow hash unnecessary.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

import psycopg
from psycopg.rows import class_row

from tracker import text
from tracker.errors import InputError
from tracker.everyday import validate
from tracker.everyday.users import find_user
from tracker.plumbing import db

TOKEN_PREFIX = "sst_"
DEFAULT_NAME = "api"


@dataclass(frozen=True)
class ApiToken:
    id: int
    user_id: int
    user_email: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    HEADERS: ClassVar[tuple[str, ...]] = ("id", "user", "name", "created", "last used", "revoked")

    def as_row(self) -> tuple:
        times = (self.created_at, self.last_used_at, self.revoked_at)
        return (self.id, self.user_email, self.name, *(text.when(value) for value in times))

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "user": self.user_email,
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


@dataclass(frozen=True)
class NewToken:
    token: str  # the secret itself: shown once, never stored
    info: ApiToken


_SELECT = """
    select
        api_tokens.id,
        api_tokens.user_id,
        users.email as user_email,
        api_tokens.name,
        api_tokens.created_at,
        api_tokens.last_used_at,
        api_tokens.revoked_at
    from api_tokens
    inner join users
        on users.id = api_tokens.user_id
"""


def hash_token(token: str) -> str:
    """The stored form of a token: sha256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(conn: psycopg.Connection, user, name: str | None = None) -> NewToken:
    """A new token for a user; the secret is in the result only."""
    name = validate.parse_name(name if name is not None else DEFAULT_NAME, what="token name")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with conn.transaction():
        found = find_user(conn, user)
        token_id = db.scalar(
            conn,
            "insert into api_tokens (user_id, name, token_hash) values (%s, %s, %s) returning id",
            [found.id, name, hash_token(token)],
        )
        with conn.cursor(row_factory=class_row(ApiToken)) as cursor:
            info = db.one(cursor.execute(_SELECT + " where api_tokens.id = %s", [token_id]))
    return NewToken(token, info)


def list_tokens(conn: psycopg.Connection, user=None) -> list[ApiToken]:
    """Tokens (never their secrets), oldest first; only one user's when given."""
    with conn.transaction():
        user_id = find_user(conn, user).id if user is not None else None
        with conn.cursor(row_factory=class_row(ApiToken)) as cursor:
            return cursor.execute(
                _SELECT + " where (%(user_id)s::bigint is null or api_tokens.user_id = %(user_id)s)"
                " order by api_tokens.id",
                {"user_id": user_id},
            ).fetchall()


def revoke_token(conn: psycopg.Connection, token_id) -> tuple[ApiToken, bool]:
    """Revoke a token by id; (token, True when it was already revoked and nothing changed)."""
    token_id = validate.parse_id(token_id, what="token")
    with conn.transaction():
        changed = conn.execute(
            "update api_tokens set revoked_at = now()"
            " where id = %s and revoked_at is null returning id",
            [token_id],
        ).fetchone()
        with conn.cursor(row_factory=class_row(ApiToken)) as cursor:
            found = cursor.execute(_SELECT + " where api_tokens.id = %s", [token_id]).fetchone()
    if found is None:
        raise InputError(f"token {token_id} does not exist. Check the id with `token list`.")
    return found, changed is None


def authenticate(conn: psycopg.Connection, token: str, role: str) -> int | None:
    """Inside an open transaction: scope it to the token's user and switch to `role`.

    Returns the user's id, or None for an unknown or revoked token (the caller must then
    end the transaction: the role was switched all the same). One round trip: the SQL
    function api_authenticate() (R__record_expense.sql) does it all.
    """
    return db.scalar(conn, "select api_authenticate(%s, %s)", [hash_token(token), role])
