"""Per-user isolation enforced by PostgreSQL: row-level security for role tracker_api (V008).

Through every endpoint user B never sees or changes user A's rows; inside the API's own
per-request context a raw query with no filter returns only the caller's rows; a pooled
connection reused right after an error carries nothing over; the CLI keeps seeing everything.
"""

import psycopg
import pytest
from api_support import assert_problem, new_user, sql_rows, sql_value, start_server

from tracker.api.context import user_session
from tracker.api.problems import ApiProblem
from tracker.plumbing import db as tracker_db

PER_USER_TABLES = (
    "expenses",
    "budgets",
    "alerts",
    "budget_transfers",
    "api_tokens",
    "api_idempotency_keys",
    "budget_spending",
)


@pytest.fixture(scope="module")
def iso_db(server_url, seeded_template):
    from conftest import WORKER, _create_database, _drop_database

    name = f"tracker_iso_{WORKER}"
    url = _create_database(server_url, name, seeded_template)
    yield url
    _drop_database(server_url, name)


@pytest.fixture(scope="module")
def api(iso_db, tmp_path_factory):
    # One connection only: every request reuses the connection of the one before.
    server = start_server(iso_db, tmp_path_factory.mktemp("iso"), "--pool-size", "1")
    yield server
    assert server.stop() == 0, server.log()


@pytest.fixture(scope="module")
def world(api, iso_db):
    """User A with an expense, a budget it crossed (an alert), a transfer; user B with a bit."""
    a, b = new_user(iso_db), new_user(iso_db)
    with api.client(a.token) as client:
        client.put("/api/v1/budgets", json={"category": "Food", "month": "2025-05", "amount": "10"})
        client.put("/api/v1/budgets", json={"category": "Rent", "month": "2025-05", "amount": "50"})
        expense = client.post(
            "/api/v1/expenses",
            json={
                "category": "Food",
                "amount": "25.00",
                "date": "2025-05-05",
                "note": "A's secret",
            },
            headers={"Idempotency-Key": "a-key"},
        ).json()
        client.post(
            "/api/v1/budget-transfers",
            json={
                "from_category": "Rent",
                "to_category": "Food",
                "month": "2025-05",
                "amount": "5",
            },
        )
    with api.client(b.token) as client:
        client.post(
            "/api/v1/expenses", json={"category": "Food", "amount": "1.00", "date": "2025-05-06"}
        )
    alert_id = sql_value(iso_db, "select id from alerts where user_id = %s", [a.id])
    budget_id = sql_value(iso_db, "select min(id) from budgets where user_id = %s", [a.id])
    return {"a": a, "b": b, "expense": expense["id"], "alert": alert_id, "budget": budget_id}


def snapshot(url):
    return {table: sql_rows(url, f"select * from {table} order by 1") for table in PER_USER_TABLES}


def test_user_b_never_sees_or_changes_user_a_through_any_endpoint(api, iso_db, world):
    a, b = world["a"], world["b"]
    before = snapshot(iso_db)
    with api.client(b.token) as client:
        expense = f"/api/v1/expenses/{world['expense']}"
        assert_problem(client.get(expense), 404)
        assert_problem(client.patch(expense, json={"amount": "1.00"}), 404)
        assert_problem(client.delete(expense), 404)
        assert_problem(client.get(f"/api/v1/budgets/{world['budget']}"), 404)
        assert_problem(client.post(f"/api/v1/alerts/{world['alert']}/ack"), 404)
        assert_problem(client.get(f"/api/users/{a.id}/summary"), 404)
        assert_problem(
            client.post(
                "/api/expenses",
                json={"user_id": a.id, "category_id": 1, "amount": "1", "date": "2025-05-01"},
            ),
            403,
        )
        # A's idempotency key means nothing for B: B gets a new expense of B's own.
        replay = client.post(
            "/api/v1/expenses",
            json={
                "category": "Food",
                "amount": "25.00",
                "date": "2025-05-05",
                "note": "A's secret",
            },
            headers={"Idempotency-Key": "a-key"},
        )
        assert replay.status_code == 201 and replay.json()["id"] != world["expense"]
        client.delete(f"/api/v1/expenses/{replay.json()['id']}")
        listings = {
            "expenses": client.get("/api/v1/expenses", params={"limit": 200}).json()["items"],
            "budgets": client.get("/api/v1/budgets").json(),
            "alerts": client.get("/api/v1/alerts").json(),
            "summary": client.get("/api/v1/summary", params={"month": "2025-05"}).json(),
            "seed summary": client.get(
                f"/api/users/{b.id}/summary", params={"month": "2025-05"}
            ).json(),
            "categories": client.get("/api/v1/categories").json(),
            "me": client.get("/api/v1/me").json(),
        }
        for mart in ("monthly_totals", "top_categories", "budget_vs_actual", "rolling_trend"):
            listings[mart] = client.get(f"/api/v1/marts/{mart}").json()["rows"]
    assert [item["amount"] for item in listings["expenses"]] == ["1.00"]
    assert listings["budgets"] == [] and listings["alerts"] == []
    assert listings["summary"]["total_spent"] == "1.00"
    assert listings["seed summary"]["total_this_month"] == "1.00"
    assert {row["name"]: row["expense_count"] for row in listings["categories"]}["Food"] == 1
    assert listings["me"]["id"] == b.id
    for mart in ("monthly_totals", "top_categories", "rolling_trend"):
        assert {row["user_id"] for row in listings[mart]} == {b.id}, mart
    assert listings["budget_vs_actual"] == []
    text = str(listings)
    assert "A's secret" not in text and a.email not in text
    # Nothing of A's changed (B's own expense came and went).
    after = snapshot(iso_db)
    assert {t: [r for r in rows if a.id in r[:3]] for t, rows in after.items()} == {
        t: [r for r in rows if a.id in r[:3]] for t, rows in before.items()
    }


def test_raw_select_inside_the_api_context_returns_only_the_callers_rows(iso_db, world):
    a, b = world["a"], world["b"]
    pool = tracker_db.pool(iso_db, min_size=1, max_size=1, kwargs={"autocommit": True})
    try:
        for user in (a, b):
            with user_session(pool, user.token) as current:
                assert current.conn.execute("select current_user").fetchone()[0] == "tracker_api"
                for table in PER_USER_TABLES:
                    owners = {
                        row[0]
                        for row in current.conn.execute(f"select user_id from {table}").fetchall()
                    }
                    assert owners <= {user.id}, table
                rows = current.conn.execute("select * from expenses").fetchall()
                assert (
                    len(rows)
                    == sql_value(
                        iso_db, "select count(*) from expenses where user_id = %s", [user.id]
                    )
                    > 0
                )
                assert [row[0] for row in current.conn.execute("select id from users")] == [user.id]
                # Writing a row for someone else is refused by the policy's check.
                with (
                    pytest.raises(psycopg.errors.InsufficientPrivilege),
                    current.conn.transaction(),
                ):
                    other = b.id if user is a else a.id
                    current.conn.execute(
                        "insert into expenses (user_id, category_id, amount, date)"
                        " values (%s, 1, 1, '2025-05-01')",
                        [other],
                    )
    finally:
        pool.close()


def test_api_role_without_a_user_setting_sees_nothing(iso_db, world):
    with psycopg.connect(iso_db) as conn:
        conn.execute("set local role tracker_api")
        for table in (*PER_USER_TABLES, "users"):
            assert conn.execute(f"select count(*) from {table}").fetchone()[0] == 0, table
        conn.rollback()
        # An empty setting (what a finished transaction leaves behind) is no user either.
        conn.execute("select set_config('tracker.user_id', '', false)")
        conn.execute("set local role tracker_api")
        assert conn.execute("select count(*) from expenses").fetchone()[0] == 0


def test_cli_and_owner_still_see_every_user(run_cli, iso_db, world):
    total = sql_value(iso_db, "select count(distinct user_id) from expenses")
    assert total >= 3
    listed = run_cli(iso_db, "expense", "list", "--format", "json")
    assert listed.exit_code == 0, listed.output
    assert world["a"].email in listed.output and world["b"].email in listed.output
    forced = sql_rows(
        iso_db,
        "select relname from pg_class where relforcerowsecurity and relrowsecurity order by 1",
    )
    assert {row[0] for row in forced} == {*PER_USER_TABLES, "users"}


def test_pooled_connection_reused_after_an_error_leaks_nothing(api, iso_db, world):
    a, b = world["a"], world["b"]
    # The pool has one connection: A's failing requests and B's next ones share it.
    with api.client(a.token) as client:
        assert_problem(
            client.post(
                "/api/v1/budget-transfers",
                json={
                    "from_category": "Food",
                    "to_category": "Rent",
                    "month": "2025-05",
                    "amount": "999",
                },
            ),
            409,
        )
    with api.client(b.token) as client:
        items = client.get("/api/v1/expenses").json()["items"]
        assert {item["amount"] for item in items} == {"1.00"}
    with tracker_db.connect(iso_db, autocommit=True) as admin:
        admin.execute("revoke select on categories from tracker_api")
        try:
            with api.client(a.token) as client:
                assert_problem(client.get("/api/v1/categories"), 500)
        finally:
            admin.execute("grant select on categories to tracker_api")
    with api.client(b.token) as client:
        assert client.get("/api/v1/me").json()["id"] == b.id
        assert client.get("/api/v1/alerts").json() == []
    with api.client() as client:
        assert_problem(client.get("/api/v1/expenses"), 401)
    # And the session itself: after an error the connection is back to the login role with
    # no user set.
    pool = tracker_db.pool(iso_db, min_size=1, max_size=1, kwargs={"autocommit": True})
    try:
        with pytest.raises(ApiProblem), user_session(pool, a.token) as current:
            current.conn.execute("select 1")
            raise ApiProblem(409, "refused")
        with pool.connection() as conn:
            role, setting = conn.execute(
                "select current_user, current_setting('tracker.user_id', true)"
            ).fetchone()
            assert role != "tracker_api" and setting in ("", None)
        with user_session(pool, b.token) as current:
            assert {row[0] for row in current.conn.execute("select user_id from expenses")} == {
                b.id
            }
    finally:
        pool.close()


def test_tables_added_later_are_usable_by_api_triggers(api, iso_db, world):
    """A later migration's table in public, written by a trigger (like V009's change log or
    V010's totals), works for the API's statements without a grant of its own."""
    with tracker_db.connect(iso_db, autocommit=True) as admin:
        admin.execute("""
            create table later_change_log (
                id bigint generated by default as identity primary key,
                expense_id bigint not null,
                user_id bigint not null
            );
            create function later_log() returns trigger language plpgsql as $$
            begin
                insert into later_change_log (expense_id, user_id)
                select id, user_id from new_rows;
                return null;
            end;
            $$;
            create trigger later_log after insert on expenses
                referencing new table as new_rows for each statement execute function later_log();
        """)
    try:
        with api.client(world["b"].token) as client:
            created = client.post(
                "/api/v1/expenses",
                json={"category": "Food", "amount": "2.00", "date": "2025-05-07"},
            )
        assert created.status_code == 201, created.text
        assert sql_rows(
            iso_db,
            "select user_id from later_change_log where expense_id = %s",
            [created.json()["id"]],
        ) == [(world["b"].id,)]
    finally:
        with tracker_db.connect(iso_db, autocommit=True) as admin:
            admin.execute(
                "drop trigger later_log on expenses; drop function later_log();"
                " drop table later_change_log"
            )


def test_api_role_cannot_read_the_analytics_schema(run_cli, iso_db, world):
    """`run`'s views execute with their owner's rights, which row-level security does not bind:
    the API's role has no access to them at all (its marts come from the base tables)."""
    assert run_cli(iso_db, "run").exit_code == 0
    assert sql_value(iso_db, "select count(distinct user_id) from analytics.monthly_totals") >= 2
    pool = tracker_db.pool(iso_db, min_size=1, max_size=1, kwargs={"autocommit": True})
    try:
        with (
            pytest.raises(psycopg.errors.InsufficientPrivilege),
            user_session(pool, world["a"].token) as current,
        ):
            current.conn.execute("select * from analytics.monthly_totals").fetchall()
    finally:
        pool.close()
