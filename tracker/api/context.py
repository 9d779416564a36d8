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


@dataclass(frozen=True)
class QueuedSession:
    """What a one-round-trip endpoint works with: the connection, in pipeline mode."""

    conn: psycopg.Connection
    authentication: psycopg.Cursor

    def user_id(self) -> int:
        """The caller's id, read after the block; an unknown or revoked token is a 401."""
        user_id = tokens.authenticated_user(self.authentication)
        if user_id is None:
            raise _refuse_unknown()
        return user_id


@contextlib.contextmanager
def queued_session(pool, token: str) -> Iterator[QueuedSession]:
    """user_session() in one round trip: BEGIN, authentication, what the block queues, COMMIT.

    The block only queues statements (their results are not there yet); it reads them after
    it ends, user_id() first: with an unknown token the queued statements ran as
    tracker_api for no user, so row-level security let them see and write nothing. A
    statement's error ends the pipeline, rolls the transaction back and is raised here.
    """
    _require(token)
    with pool.connection() as conn, conn.pipeline(), conn.transaction():
        yield QueuedSession(conn, tokens.queue_authenticate(conn, token, API_ROLE))
