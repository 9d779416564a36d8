"""Per-request database context: one pooled connection, one transaction, one user.

Each request checks a connection out of the pool, opens a transaction, authenticates the token
and sets tracker.user_id for that transaction only, then switches to role tracker_api with
SET LOCAL ROLE (in the same statement). Row-level security (V008) then limits every
statement, the triggers it fires included, to that user's rows. Commit or rollback ends both
the setting and the role, so the next request on the same connection starts from nothing.
"""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg

from tracker.api.problems import ApiProblem
from tracker.everyday import tokens

API_ROLE = "tracker_api"


@dataclass(frozen=True)
class Session:
    """What an endpoint works with: the open connection and the caller's user id."""

    conn: psycopg.Connection
    user_id: int


def unauthorized(detail: str) -> ApiProblem:
    return ApiProblem(401, detail, headers={"WWW-Authenticate": 'Bearer realm="tracker"'})


@contextlib.contextmanager
def user_session(pool, token: str) -> Iterator[Session]:
    """A transaction scoped to the token's user, as role tracker_api; commits on success."""
    if not token:
        raise unauthorized(
            "No token. Send Authorization: Bearer TOKEN (create one with "
            "`python cli.py token create --user EMAIL`)."
        )
    # Pipeline mode sends the statements whose results nobody waits for (BEGIN, SAVEPOINT,
    # RELEASE, COMMIT) together with the next query: fewer round trips per request.
    with pool.connection() as conn, conn.pipeline(), conn.transaction():
        user_id = tokens.authenticate(conn, token, API_ROLE)
        if user_id is None:
            raise unauthorized("The token is unknown or revoked. Create a new one.")
        yield Session(conn, user_id)
