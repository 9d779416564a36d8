"""POST /api/v1/expenses's plain path (tracker/api/fast_create.py) answers as the FastAPI route.

`serve` runs the app behind fast_create.PlainCreate, so every test here talks to both.

The plain path takes `Content-Type: application/json` exactly; any other JSON content type
(`; charset=utf-8`) goes to the FastAPI route, so the same request can be sent both ways over
real HTTP and the answers compared. Refusals are handed on to the route and write nothing.
"""

from decimal import Decimal

import pytest
from api_support import assert_problem, new_user, sql_rows, sql_value, start_server
from conftest import WORKER, _create_database, _drop_database

from tracker.plumbing import db as tracker_db

PLAIN = {"content-type": "application/json"}  # the plain path
ROUTE = {"content-type": "application/json; charset=utf-8"}  # handed to the FastAPI route


@pytest.fixture(scope="module")
def fast_db(server_url, seeded_template):
    name = f"tracker_api_fast_{WORKER}"
    url = _create_database(server_url, name, seeded_template)
    yield url
    _drop_database(server_url, name)


@pytest.fixture(scope="module")
def api(fast_db, tmp_path_factory):
    server = start_server(fast_db, tmp_path_factory.mktemp("api_fast"))
    yield server
    assert server.stop() == 0, server.log()


def _without_ids(answer: dict) -> dict:
    """An answer without what differs between two expenses (ids and times)."""
    kept = {key: value for key, value in answer.items() if key not in ("id", "created_at")}
    kept["alerts"] = [
        {key: value for key, value in alert.items() if key not in ("id", "fired_at")}
        for alert in answer["alerts"]
    ]
    return kept


def test_a_database_error_is_the_same_problem_either_way_and_writes_nothing(api, fast_db):
    user = new_user(fast_db)
    body = b'{"category": "Food", "amount": "2.00", "date": "2025-05-02"}'
    with tracker_db.connect(fast_db, autocommit=True) as conn:
        conn.execute("revoke insert on expenses from tracker_api")
        try:
            with api.client(user.token) as client:
                plain, route = (
                    assert_problem(client.post("/api/v1/expenses", content=body, headers=h), 500)
                    for h in (PLAIN, ROUTE)
                )
                assert plain == route
        finally:
            conn.execute("grant insert on expenses to tracker_api")
    assert "permission" not in plain["detail"] and "expenses" not in plain["detail"]
    assert sql_value(fast_db, "select count(*) from expenses where user_id = %s", [user.id]) == 0
    with api.client(user.token) as client:  # the pool's connection works again
        assert client.post("/api/v1/expenses", content=body, headers=PLAIN).status_code == 201


def test_plain_path_and_route_give_the_same_answer_alerts_included(api, fast_db):
    answers = []
    for headers in (PLAIN, ROUTE):
        user = new_user(fast_db)
        with api.client(user.token) as client:
            budget = client.put(
                "/api/v1/budgets", json={"category": "Food", "month": "2025-05", "amount": "10"}
            )
            assert budget.status_code == 201, budget.text
            response = client.post(
                "/api/v1/expenses",
                content=b'{"category": "Food", "amount": 12.5, "date": "2025-05-03", '
                b'"note": " Lunch ", "currency": "INR"}',
                headers=headers,
            )
        assert response.status_code == 201, response.text
        answer = response.json()
        assert response.headers["location"] == f"/api/v1/expenses/{answer['id']}"
        assert response.headers["content-type"] == "application/json"
        assert sql_rows(
            fast_db, "select user_id, amount, note from expenses where id = %s", [answer["id"]]
        ) == [(user.id, Decimal("12.50"), "Lunch")]
        answers.append(_without_ids(answer))
    plain, route = answers
    assert plain == route
    assert plain["amount"] == "12.50" and len(plain["alerts"]) == 1
    assert plain["alerts"][0]["spent"] == "12.50" and plain["alerts"][0]["budget"] == "10.00"


def test_a_body_in_chunks_is_read_whole(api, fast_db):
    user = new_user(fast_db)
    chunks = [b'{"category": "Food", ', b'"amount": "1.25", ', b'"date": "2025-05-01"}']
    with api.client(user.token) as client:
        response = client.post("/api/v1/expenses", content=iter(chunks), headers=PLAIN)
    assert response.status_code == 201, response.text
    assert response.json()["amount"] == "1.25"


def test_refusals_are_the_routes_problems_and_write_nothing(api, fast_db):
    user = new_user(fast_db, currency="INR")
    body = {"category": "Food", "amount": "3.00", "date": "2025-05-02"}
    with api.client("not-a-token") as client:
        refused = assert_problem(client.post("/api/v1/expenses", json=body), 401)
        assert "unknown or revoked" in refused["detail"]
    with api.client(user.token) as client:
        post = client.post
        assert_problem(post("/api/v1/expenses", json={**body, "category": "Nope"}), 422, "category")
        assert_problem(post("/api/v1/expenses", json={**body, "currency": "USD"}), 422, "currency")
        assert_problem(post("/api/v1/expenses", json={**body, "amount": "0"}), 422, "amount")
        assert_problem(post("/api/v1/expenses", json={**body, "extra": 1}), 422, "extra")
        assert_problem(post("/api/v1/expenses", content=b"[1, 2]", headers=PLAIN), 422)
        assert_problem(post("/api/v1/expenses", content=b"{", headers=PLAIN), 422)
        # With an Idempotency-Key the route answers, and a retry replays its answer.
        first = post("/api/v1/expenses", json=body, headers={"Idempotency-Key": "k1"})
        again = post("/api/v1/expenses", json=body, headers={"Idempotency-Key": "k1"})
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert sql_value(fast_db, "select count(*) from expenses where user_id = %s", [user.id]) == 1
