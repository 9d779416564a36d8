"""Per-request database context: one pooled connection, one transaction, one user.

Each request checks a connection out of the pool, opens a transaction, authenticates the token
and sets tracker.user_id for that transaction only, then switches to role tracker_api with
SET LOCAL ROLE (in the same statement). Row-level security (V008) then limits every
statement, the triggers it fires included, to that user's rows. Commit or rollback ends both
the setting and the role, so the next request on the same connection starts from nothing.
Recording an expense does all of it in one statement instead (record_as_caller).
"""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
from psycopg.rows import dict_row

from tracker.api.problems import ApiProblem
from tracker.everyday import expenses, tokens

API_ROLE = "tracker_api"


@dataclass(frozen=True)
class Session:
    """What an endpoint works with: the open connection and the caller's user id."""

    conn: psycopg.Connection
    user_id: int


def unauthorized(detail: str) -> ApiProblem:
    return ApiProblem(401, detail, headers={"WWW-Authenticate": 'Bearer realm="tracker"'})


def _require(token: str) -> None:
    if not token:
        raise unauthorized(
            "No token. Send Authorization: Bearer TOKEN (create one with "
            "`python cli.py token create --user EMAIL`)."
        )


def _refuse_unknown() -> ApiProblem:
    return unauthorized("The token is unknown or revoked. Create a new one.")


@contextlib.contextmanager
def user_session(pool, token: str) -> Iterator[Session]:
    """A transaction scoped to the token's user, as role tracker_api; commits on success."""
    _require(token)
    # Pipeline mode sends the statements whose results nobody waits for (BEGIN, SAVEPOINT,
    # RELEASE, COMMIT) together with the next query: fewer round trips per request.
    with pool.connection() as conn, conn.pipeline(), conn.transaction():
        user_id = tokens.authenticate(conn, token, API_ROLE)
        if user_id is None:
            raise _refuse_unknown()
        yield Session(conn, user_id)


_RECORD_AS_CALLER = (
    f"select * from api_record_expense(%(token_hash)s, %(role)s, {expenses.RECORD_ARGUMENTS})"
)


def record_as_caller(pool, token: str, recording: expenses.ExpenseRecording) -> list[dict]:
    """record_expense() for the token's user in ONE statement, hence one round trip.

    api_record_expense() (R__record_expense.sql) authenticates, sets tracker.user_id and role
    tracker_api for the transaction, and records; on the pool's autocommit connections the
    statement is the transaction, so the user and the role end with it as they do at a
    user_session()'s commit. The rows are record_expense()'s, for recording.result().
    """
    _require(token)
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(
            _RECORD_AS_CALLER,
            {**recording.arguments, "token_hash": tokens.hash_token(token), "role": API_ROLE},
        ).fetchall()
    if rows[0]["problem"] == "token":
        raise _refuse_unknown()
    return rows
