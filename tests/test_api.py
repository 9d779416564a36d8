"""The REST API over real HTTP: `python cli.py serve` on a loopback port, a real database.

One server per module, on a database copied from the seeded template; every test makes its
own users (and tokens), so tests sharing the server never see each other's rows.
"""

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from api_support import assert_problem, new_user, sql_rows, sql_value, start_server
from conftest import WORKER, _create_database, _drop_database

from tracker.plumbing import db as tracker_db


@pytest.fixture(scope="module")
def api_db(server_url, seeded_template):
    name = f"tracker_api_{WORKER}"
    url = _create_database(server_url, name, seeded_template)
    yield url
    _drop_database(server_url, name)


@pytest.fixture(scope="module")
def api(api_db, tmp_path_factory):
    server = start_server(api_db, tmp_path_factory.mktemp("api"))
    yield server
    code = server.stop()
    assert code == 0, server.log()


@pytest.fixture
def alice(api_db):
    return new_user(api_db)


@pytest.fixture
def bob(api_db):
    return new_user(api_db)


def category_id(url, name):
    return sql_value(url, "select id from categories where name = %s", [name])


def post_expense(api, user, **body):
    body.setdefault("category", "Food")
    body.setdefault("date", "2025-05-10")
    with api.client(user.token) as client:
        response = client.post("/api/v1/expenses", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def put_budget(api, user, category, month, amount):
    with api.client(user.token) as client:
        response = client.put(
            "/api/v1/budgets", json={"category": category, "month": month, "amount": amount}
        )
    assert response.status_code in (200, 201), response.text
    return response.json()


# --- start, stop, health, docs -------------------------------------------------------------


def test_serve_starts_answers_health_and_stops_cleanly_closing_its_pool(db_url, tmp_path):
    server = start_server(db_url, tmp_path, "--pool-size", "3")
    try:
        with server.client() as client:
            response = client.get("/api/health")
        assert response.json() == {"status": "ok", "database": "reachable"}
        database = sql_value(db_url, "select current_database()")
        held = sql_value(
            db_url,
            "select count(*) from pg_stat_activity where datname = %s"
            " and application_name = 'smart-spending-tracker'",
            [database],
        )
        assert 1 <= held <= 3
    finally:
        code = server.stop()
    assert code == 0, server.log()
    assert "Application shutdown complete" in server.log()
    left = sql_value(
        db_url,
        "select count(*) from pg_stat_activity where datname = %s"
        " and application_name = 'smart-spending-tracker'",
        [database],
    )
    assert left == 0


def test_serve_unreachable_database_is_one_line_without_password(run_cli):
    result = run_cli("postgresql://tracker:s3cret@127.0.0.1:1/nowhere", "serve", "--port", "1")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].startswith("Error: cannot connect")
    assert "s3cret" not in result.output


def test_serve_refuses_a_database_without_the_api_migration(run_cli, fresh_database):
    empty = fresh_database()
    result = run_cli(empty, "serve", "--port", "1")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: ") and "V008" in lines[-1] and "db-init" in lines[-1]


def test_health_says_503_when_the_database_is_gone(
    server_url, fresh_database, empty_template, tmp_path
):
    url = fresh_database(empty_template)
    server = start_server(url, tmp_path, "--pool-size", "2")
    try:
        name = sql_value(url, "select current_database()")
        _drop_database(server_url, name)
        with server.client() as client:
            body = assert_problem(client.get("/api/health"), 503)
        assert "not reachable" in body["detail"]
    finally:
        assert server.stop() == 0, server.log()


def test_docs_page_is_offline_and_its_assets_load(api):
    with api.client() as client:
        page = client.get("/docs")
        assert page.status_code == 200
        html = page.text
        # Nothing from another host: every src/href is a path on this server.
        assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", html), html
        assert "cdn" not in html.lower()
        assets = re.findall(r"(?:src|href|url)\s*[=:]\s*['\"](/[^'\"]+)['\"]", html)
        assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets), html
        assert any(asset.endswith("swagger-ui.css") for asset in assets), html
        for asset in assets:
            loaded = client.get(asset)
            assert loaded.status_code == 200, asset
            assert len(loaded.content) > 0
        schema = client.get("/openapi.json").json()
    assert schema["openapi"].startswith("3.1")
    assert "/api/v1/expenses" in schema["paths"]


def test_health_needs_no_token_and_api_refuses_missing_or_bad_tokens(api):
    with api.client() as client:
        assert client.get("/api/health").status_code == 200
        body = assert_problem(client.get("/api/v1/expenses"), 401)
        assert "Bearer" in body["detail"]
        assert_problem(client.get("/api/v1/me", headers={"Authorization": "Bearer nope"}), 401)
        assert_problem(client.get("/api/v1/me", headers={"Authorization": "Basic eDp5"}), 401)


# --- tokens ---------------------------------------------------------------------------------


def test_token_create_list_revoke_through_the_cli(run_cli, api, api_db):
    user = new_user(api_db)
    result = run_cli(api_db, "token", "create", "--user", user.email, "--name", "phone")
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert re.fullmatch(r"sst_[A-Za-z0-9_-]{40,}", token)
    stored = sql_rows(
        api_db,
        "select token_hash, name from api_tokens where user_id = %s and name = 'phone'",
        [user.id],
    )
    import hashlib

    assert stored == [(hashlib.sha256(token.encode()).hexdigest(), "phone")]
    assert token not in str(sql_rows(api_db, "select * from api_tokens"))
    with api.client(token) as client:
        assert client.get("/api/v1/me").json()["email"] == user.email
    listed = run_cli(api_db, "token", "list", "--user", user.email, "--format", "json")
    assert listed.exit_code == 0 and token not in listed.output
    assert (
        '"phone"' in listed.output
        and '"last_used_at": null' not in listed.output.split('"phone"')[1]
    )
    token_id = sql_value(
        api_db, "select id from api_tokens where user_id = %s and name = 'phone'", [user.id]
    )
    revoked = run_cli(api_db, "token", "revoke", str(token_id))
    assert revoked.exit_code == 0 and "Revoked token" in revoked.output
    with api.client(token) as client:
        assert_problem(client.get("/api/v1/me"), 401)
    again = run_cli(api_db, "token", "revoke", str(token_id))
    assert again.exit_code == 0 and "already revoked" in again.output


def test_token_refusals_are_one_line(run_cli, api_db):
    unknown_user = run_cli(api_db, "token", "create", "--user", "ghost@example.com")
    assert unknown_user.exit_code == 2 and "ghost@example.com" in unknown_user.stderr
    unknown_token = run_cli(api_db, "token", "revoke", "999999")
    assert unknown_token.exit_code == 2 and "token 999999 does not exist" in unknown_token.stderr


# --- seed-compatible endpoints --------------------------------------------------------------


def test_seed_post_expense_answers_201_with_id_and_stores_exact_amount(api, api_db, alice):
    food = category_id(api_db, "Food")
    with api.client(alice.token) as client:
        response = client.post(
            "/api/expenses",
            json={
                "user_id": alice.id,
                "category_id": food,
                "amount": 350.50,
                "date": "2025-05-15",
                "note": "Dinner with friends",
            },
        )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "ok" and body["alerts"] == []
    assert sql_rows(
        api_db,
        "select user_id, category_id, amount, date::text, note, currency"
        " from expenses where id = %s",
        [body["id"]],
    ) == [(alice.id, food, Decimal("350.50"), "2025-05-15", "Dinner with friends", "INR")]


def test_seed_post_expense_refusals_write_nothing(api, api_db, alice, bob):
    food = category_id(api_db, "Food")
    good = {"user_id": alice.id, "category_id": food, "amount": "10.00", "date": "2025-05-15"}
    with api.client(alice.token) as client:
        assert_problem(
            client.post("/api/expenses", json={**good, "user_id": bob.id}), 403, "user_id"
        )
        assert_problem(
            client.post("/api/expenses", json={**good, "amount": "12.345"}), 422, "amount"
        )
        assert_problem(client.post("/api/expenses", json={**good, "amount": -5}), 422, "amount")
        assert_problem(
            client.post("/api/expenses", json={**good, "date": "2025-02-30"}), 422, "date"
        )
        assert_problem(
            client.post("/api/expenses", json={**good, "category_id": 999999}), 422, "category_id"
        )
        assert_problem(
            client.post("/api/expenses", json={**good, "currency": "EUR"}), 422, "currency"
        )
        missing = {key: value for key, value in good.items() if key != "amount"}
        assert_problem(client.post("/api/expenses", json=missing), 422, "amount")
    assert (
        sql_value(
            api_db, "select count(*) from expenses where user_id in (%s, %s)", [alice.id, bob.id]
        )
        == 0
    )


def test_seed_user_summary_matches_sql_and_hides_other_users(api, api_db, alice, bob):
    put_budget(api, alice, "Food", "2025-05", "100.00")
    post_expense(api, alice, amount="60.25", category="Food")
    post_expense(api, alice, amount="50.00", category="Food")
    post_expense(api, alice, amount="7.10", category="Transport")
    post_expense(api, alice, amount="99.00", category="Food", date="2025-04-30")
    with api.client(alice.token) as client:
        body = client.get(f"/api/users/{alice.id}/summary", params={"month": "2025-05"}).json()
    total = sql_value(
        api_db,
        "select sum(amount) from expenses where user_id = %s"
        " and date >= '2025-05-01' and date < '2025-06-01'",
        [alice.id],
    )
    assert body["total_this_month"] == str(total) == "117.35"
    lines = {line["category"]: line for line in body["categories"]}
    assert lines["Food"]["budget"] == "100.00" and lines["Food"]["spent"] == "110.25"
    assert lines["Food"]["status"] == "over"
    assert lines["Transport"]["budget"] is None and lines["Transport"]["spent"] == "7.10"
    assert [alert["category"] for alert in body["alerts"]] == ["Food"]
    with api.client(bob.token) as client:
        assert_problem(client.get(f"/api/users/{alice.id}/summary"), 404)
        assert_problem(client.get("/api/users/999999999/summary"), 404)
        assert_problem(
            client.get(f"/api/users/{bob.id}/summary", params={"month": "2025-13"}), 422, "month"
        )


# --- expenses -------------------------------------------------------------------------------


def test_expense_create_get_update_delete(api, api_db, alice):
    with api.client(alice.token) as client:
        created = client.post(
            "/api/v1/expenses",
            json={"category": "Transport", "amount": 12.5, "date": "2025-05-03", "note": " Bus "},
        )
        assert created.status_code == 201, created.text
        expense = created.json()
        assert created.headers["location"] == f"/api/v1/expenses/{expense['id']}"
        assert expense["amount"] == "12.50" and expense["note"] == "Bus"
        assert expense["category"] == "Transport" and expense["currency"] == "INR"
        assert client.get(f"/api/v1/expenses/{expense['id']}").json()["amount"] == "12.50"
        changed = client.patch(
            f"/api/v1/expenses/{expense['id']}",
            json={"amount": "99.99", "category": "Food", "note": None},
        )
        assert changed.status_code == 200, changed.text
        assert sql_rows(
            api_db, "select amount, note from expenses where id = %s", [expense["id"]]
        ) == [(Decimal("99.99"), None)]
        assert changed.json()["category"] == "Food"
        kept = client.patch(f"/api/v1/expenses/{expense['id']}", json={"date": "2025-05-04"})
        assert kept.json()["amount"] == "99.99" and kept.json()["date"] == "2025-05-04"
        assert client.delete(f"/api/v1/expenses/{expense['id']}").status_code == 204
        assert_problem(client.get(f"/api/v1/expenses/{expense['id']}"), 404)
        assert_problem(client.delete(f"/api/v1/expenses/{expense['id']}"), 404)
    assert sql_value(api_db, "select count(*) from expenses where id = %s", [expense["id"]]) == 0


def test_expense_refusals_name_the_field_and_write_nothing(api, api_db, alice):
    cases = [
        ({"category": "Nope", "amount": "1"}, "category"),
        ({"category": "Food", "amount": "1.001"}, "amount"),
        ({"category": "Food", "amount": "abc"}, "amount"),
        ({"category": "Food", "amount": 0}, "amount"),
        ({"category": "Food", "amount": "10000000000"}, "amount"),
        ({"category": "Food", "amount": True}, "amount"),
        ({"category": "Food", "amount": "1", "date": "15/05/2025"}, "date"),
        ({"category": "Food", "amount": "1", "currency": "usd"}, "currency"),
        ({"category": "Food", "amount": "1", "note": "a\x00b"}, "note"),
        ({"category": "Food", "amount": "1", "colour": "red"}, "colour"),
        ({"amount": "1"}, "category"),
    ]
    with api.client(alice.token) as client:
        for body, field in cases:
            assert_problem(client.post("/api/v1/expenses", json=body), 422, field)
        # Not JSON at all, and an HTML Accept header: still a problem document.
        raw = client.post(
            "/api/v1/expenses",
            content=b"{not json",
            headers={"content-type": "application/json", "accept": "text/html"},
        )
        assert_problem(raw, 422)
        expense = post_expense(api, alice, amount="5.00")
        assert_problem(client.patch(f"/api/v1/expenses/{expense['id']}", json={}), 422)
        assert_problem(
            client.patch(f"/api/v1/expenses/{expense['id']}", json={"amount": "-1"}), 422, "amount"
        )
        assert_problem(client.get("/api/v1/expenses/0"), 422, "expense_id")
        assert_problem(client.get("/api/v1/expenses/99999999999999999999"), 422)
    assert sql_rows(api_db, "select amount from expenses where user_id = %s", [alice.id]) == [
        (Decimal("5.00"),)
    ]


def test_expense_list_filters_and_sorts_like_sql(api, api_db, alice):
    amounts = ["5.00", "120.00", "33.30", "7.77", "450.00", "12.00", "89.10", "1.01"]
    for number, amount in enumerate(amounts):
        post_expense(
            api,
            alice,
            amount=amount,
            date=f"2025-0{4 + number % 3}-1{number}",
            category="Food" if number % 2 else "Transport",
        )
    with api.client(alice.token) as client:
        biggest = client.get("/api/v1/expenses", params={"sort": "amount", "limit": 3}).json()
        assert [item["amount"] for item in biggest["items"]] == [
            str(row[0])
            for row in sql_rows(
                api_db,
                "select amount from expenses where user_id = %s"
                " order by amount desc, id desc limit 3",
                [alice.id],
            )
        ]
        assert biggest["next_cursor"]
        filtered = client.get(
            "/api/v1/expenses",
            params={
                "category": "Food",
                "from": "2025-04-01",
                "to": "2025-05-31",
                "min": "10",
                "max": "200",
            },
        ).json()
        expected = sql_rows(
            api_db,
            """
            select expenses.id from expenses inner join categories on categories.id = category_id
            where user_id = %s and categories.name = 'Food' and date between '2025-04-01'
                and '2025-05-31' and amount between 10 and 200 order by date desc, expenses.id desc
        """,
            [alice.id],
        )
        assert [item["id"] for item in filtered["items"]] == [row[0] for row in expected]
        month = client.get("/api/v1/expenses", params={"month": "2025-06", "order": "asc"}).json()
        assert [item["date"] for item in month["items"]] == sorted(
            item["date"] for item in month["items"]
        )
        assert all(item["date"].startswith("2025-06") for item in month["items"])
        assert len(month["items"]) == sql_value(
            api_db,
            "select count(*) from expenses where user_id = %s and date >= '2025-06-01'"
            " and date < '2025-07-01'",
            [alice.id],
        )
        assert_problem(client.get("/api/v1/expenses", params={"sort": "size"}), 422, "sort")
        assert_problem(client.get("/api/v1/expenses", params={"limit": 0}), 422, "limit")
        assert_problem(client.get("/api/v1/expenses", params={"min": "x"}), 422, "min")
        assert_problem(
            client.get("/api/v1/expenses", params={"from": "2025-06-01", "to": "2025-01-01"}),
            422,
            "from",
        )
        assert_problem(client.get("/api/v1/expenses", params={"cursor": "garbage"}), 422, "cursor")
        assert_problem(client.get("/api/v1/expenses", params={"category": "Nope"}), 422, "category")
        other_sort = client.get("/api/v1/expenses", params={"cursor": biggest["next_cursor"]})
        assert_problem(other_sort, 422, "cursor")


@pytest.mark.parametrize("sort", ["date", "amount"])
def test_expense_pages_stay_correct_while_rows_are_added(api, api_db, alice, sort):
    for number in range(20):
        post_expense(
            api, alice, amount=f"{(number * 7) % 13 + 1}.00", date=f"2025-05-{number % 9 + 10}"
        )
    original = {
        row[0] for row in sql_rows(api_db, "select id from expenses where user_id = %s", [alice.id])
    }
    seen, cursor, pages = [], None, 0
    with api.client(alice.token) as client:
        while True:
            params = {"sort": sort, "limit": 6, **({"cursor": cursor} if cursor else {})}
            page = client.get("/api/v1/expenses", params=params).json()
            seen += [item["id"] for item in page["items"]]
            pages += 1
            # Rows added between pages, both before and after the reading position.
            post_expense(api, alice, amount="50.00", date="2025-05-31")
            post_expense(api, alice, amount="1.00", date="2025-05-01")
            cursor = page["next_cursor"]
            if not cursor:
                break
    assert len(seen) == len(set(seen)), "an expense came twice"
    assert original <= set(seen), "an expense that existed was skipped"
    assert pages >= 4


def test_idempotency_key_replays_the_first_answer_and_creates_nothing_new(api, api_db, alice):
    body = {"category": "Food", "amount": "42.00", "date": "2025-05-20"}
    with api.client(alice.token) as client:
        first = client.post("/api/v1/expenses", json=body, headers={"Idempotency-Key": "k-1"})
        again = client.post("/api/v1/expenses", json=body, headers={"Idempotency-Key": "k-1"})
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        other = client.post(
            "/api/v1/expenses", json={**body, "amount": "43.00"}, headers={"Idempotency-Key": "k-1"}
        )
        assert_problem(other, 422, "Idempotency-Key")
        fresh = client.post("/api/v1/expenses", json=body, headers={"Idempotency-Key": "k-2"})
        assert fresh.json()["id"] != first.json()["id"]
    assert sql_value(api_db, "select count(*) from expenses where user_id = %s", [alice.id]) == 2

    def retry(_):
        with api.client(alice.token) as client:
            return client.post("/api/v1/expenses", json=body, headers={"Idempotency-Key": "k-3"})

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(retry, range(10)))
    assert {answer.status_code for answer in answers} == {201}
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert sql_value(api_db, "select count(*) from expenses where user_id = %s", [alice.id]) == 3


def test_idempotency_keys_are_per_user(api, alice, bob):
    body = {"category": "Food", "amount": "1.00", "date": "2025-05-20"}
    with api.client(alice.token) as client:
        mine = client.post("/api/v1/expenses", json=body, headers={"Idempotency-Key": "same"})
    with api.client(bob.token) as client:
        theirs = client.post("/api/v1/expenses", json=body, headers={"Idempotency-Key": "same"})
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]


# --- budgets, alerts, summary, categories, marts --------------------------------------------


def test_budgets_set_list_get_and_transfer(api, api_db, alice):
    created = put_budget(api, alice, "Food", "2025-05", "300")
    assert created["previous_amount"] is None and created["amount"] == "300.00"
    changed = put_budget(api, alice, "Food", "2025-05", 250.5)
    assert changed["previous_amount"] == "300.00" and changed["amount"] == "250.50"
    put_budget(api, alice, "Transport", "2025-05", "100.00")
    post_expense(api, alice, amount="225.45", category="Food", date="2025-05-02")
    with api.client(alice.token) as client:
        rows = {
            row["category"]: row
            for row in client.get("/api/v1/budgets", params={"month": "2025-05"}).json()
        }
        assert rows["Food"] == {
            **rows["Food"],
            "budget": "250.50",
            "spent": "225.45",
            "remaining": "25.05",
            "status": "near",
        }
        assert rows["Transport"]["status"] == "under" and rows["Transport"]["spent"] == "0.00"
        one = client.get(f"/api/v1/budgets/{created['id']}").json()
        assert one["id"] == created["id"] and one["budget"] == "250.50"
        moved = client.post(
            "/api/v1/budget-transfers",
            json={
                "from_category": "Transport",
                "to_category": "Food",
                "month": "2025-05",
                "amount": "40.00",
            },
        )
        assert moved.status_code == 201, moved.text
        assert moved.json()["from_amount"] == "60.00" and moved.json()["to_amount"] == "290.50"
        assert sql_rows(
            api_db,
            "select categories.name, amount from budgets inner join categories"
            " on categories.id = category_id where user_id = %s order by 1",
            [alice.id],
        ) == [("Food", Decimal("290.50")), ("Transport", Decimal("60.00"))]
        assert (
            sql_value(
                api_db, "select count(*) from budget_transfers where user_id = %s", [alice.id]
            )
            == 1
        )
        too_much = client.post(
            "/api/v1/budget-transfers",
            json={
                "from_category": "Transport",
                "to_category": "Food",
                "month": "2025-05",
                "amount": "60.01",
            },
        )
        assert "60.00" in assert_problem(too_much, 409)["detail"]
        assert_problem(
            client.post(
                "/api/v1/budget-transfers",
                json={
                    "from_category": "Rent",
                    "to_category": "Food",
                    "month": "2025-05",
                    "amount": "1",
                },
            ),
            409,
        )
        assert_problem(
            client.post(
                "/api/v1/budget-transfers",
                json={
                    "from_category": "Food",
                    "to_category": "Food",
                    "month": "2025-05",
                    "amount": "1",
                },
            ),
            422,
            "to_category",
        )
        assert_problem(
            client.put("/api/v1/budgets", json={"category": "Food", "month": "May", "amount": "1"}),
            422,
            "month",
        )
        assert_problem(
            client.put(
                "/api/v1/budgets", json={"category": "Food", "month": "2025-05", "amount": "-1"}
            ),
            422,
            "amount",
        )
        assert_problem(client.get("/api/v1/budgets/999999999"), 404)
    assert sql_rows(api_db, "select sum(amount) from budgets where user_id = %s", [alice.id]) == [
        (Decimal("350.50"),)
    ]


def test_alerts_fire_through_the_api_list_and_acknowledge(api, api_db, alice):
    put_budget(api, alice, "Shopping", "2025-05", "100.00")
    quiet = post_expense(api, alice, amount="60.00", category="Shopping")
    assert quiet["alerts"] == []
    loud = post_expense(api, alice, amount="40.01", category="Shopping")
    assert len(loud["alerts"]) == 1
    alert = loud["alerts"][0]
    assert alert["spent"] == "100.01" and alert["budget"] == "100.00"
    assert sql_rows(api_db, "select user_id, spent from alerts where id = %s", [alert["id"]]) == [
        (alice.id, Decimal("100.01"))
    ]
    with api.client(alice.token) as client:
        listed = client.get("/api/v1/alerts", params={"unread": "true"}).json()
        assert [row["id"] for row in listed] == [alert["id"]]
        first = client.post(f"/api/v1/alerts/{alert['id']}/ack").json()
        assert first["already"] is False and first["alert"]["acknowledged_at"]
        second = client.post(f"/api/v1/alerts/{alert['id']}/ack").json()
        assert second["already"] is True
        assert client.get("/api/v1/alerts", params={"unread": "true"}).json() == []
        assert len(client.get("/api/v1/alerts", params={"month": "2025-05"}).json()) == 1
        assert_problem(client.post("/api/v1/alerts/999999999/ack"), 404)
        assert_problem(client.get("/api/v1/alerts", params={"month": "x"}), 422, "month")


def test_summary_matches_sql(api, api_db, alice):
    put_budget(api, alice, "Food", "2025-05", "500.00")
    for amount in ("10.10", "20.20", "30.30", "40.40", "50.50", "60.60"):
        post_expense(api, alice, amount=amount, category="Food", date="2025-05-07")
    with api.client(alice.token) as client:
        body = client.get("/api/v1/summary", params={"month": "2025-05"}).json()
    assert body["user_id"] == alice.id and body["month"] == "2025-05"
    assert body["total_spent"] == "212.10" and body["total_budget"] == "500.00"
    assert [top["amount"] for top in body["top_expenses"]] == [
        "60.60",
        "50.50",
        "40.40",
        "30.30",
        "20.20",
    ]
    assert body["categories"][0]["remaining"] == "287.90"


def test_categories_list_counts_only_the_callers_expenses(api, api_db, alice, bob):
    post_expense(api, alice, category="Rent", amount="1.00")
    post_expense(api, alice, category="Rent", amount="2.00")
    post_expense(api, bob, category="Rent", amount="3.00")
    with api.client(alice.token) as client:
        rows = {row["name"]: row for row in client.get("/api/v1/categories").json()}
        assert set(rows) == {row[0] for row in sql_rows(api_db, "select name from categories")}
        assert rows["Rent"]["expense_count"] == 2
        rent = category_id(api_db, "Rent")
        assert client.get(f"/api/v1/categories/{rent}").json()["name"] == "Rent"
        assert_problem(client.get("/api/v1/categories/999999999"), 404)


def test_me_is_the_tokens_user(api, alice):
    with api.client(alice.token) as client:
        assert client.get("/api/v1/me").json() == {
            "id": alice.id,
            "name": "Test User",
            "email": alice.email,
            "currency": "INR",
        }


def test_marts_give_the_callers_rows_of_each_model(run_cli, api, api_db, alice, bob):
    put_budget(api, alice, "Food", "2025-03", "100.00")
    for date, amount, category in [
        ("2025-01-05", "10.00", "Food"),
        ("2025-03-09", "150.00", "Food"),
        ("2025-03-10", "5.55", "Rent"),
    ]:
        post_expense(api, alice, amount=amount, date=date, category=category)
    post_expense(api, bob, amount="999.00", date="2025-03-01")
    assert run_cli(api_db, "run").exit_code == 0
    with api.client(alice.token) as client:
        for mart in ("monthly_totals", "top_categories", "budget_vs_actual", "rolling_trend"):
            response = client.get(f"/api/v1/marts/{mart}")
            assert response.status_code == 200, response.text
            rows = response.json()["rows"]
            assert rows and {row["user_id"] for row in rows} == {alice.id}, mart
            # The same model, built by `run` in the analytics schema, filtered to alice.
            built = sql_rows(
                api_db, f"select * from analytics.{mart} where user_id = %s", [alice.id]
            )
            assert len(rows) == len(built), mart
        monthly = client.get("/api/v1/marts/monthly_totals").json()["rows"]
    assert [(row["month"], row["total_spent"]) for row in monthly] == [
        ("2025-01-01", "10.00"),
        ("2025-03-01", "155.55"),
    ]


# --- errors ---------------------------------------------------------------------------------


def test_unknown_paths_and_methods_are_problems(api, alice):
    with api.client(alice.token) as client:
        assert_problem(client.get("/api/v1/nothing"), 404)
        not_allowed = client.delete("/api/v1/me")
        assert_problem(not_allowed, 405)
        assert "GET" in not_allowed.headers["allow"]


def test_database_failure_is_a_500_problem_with_no_sql(api, api_db, alice):
    with tracker_db.connect(api_db, autocommit=True) as conn:
        conn.execute("revoke select on categories from tracker_api")
        try:
            with api.client(alice.token) as client:
                body = assert_problem(client.get("/api/v1/categories"), 500)
                # The next request on the pool works again.
                assert client.get("/api/v1/me").status_code == 200
        finally:
            conn.execute("grant select on categories to tracker_api")
    assert "permission" not in body["detail"] and "categories" not in body["detail"]
    assert "permission denied" in api.log()  # logged for the operator instead


# --- concurrency ----------------------------------------------------------------------------


def test_fifty_concurrent_posts_crossing_a_budget_fire_exactly_one_alert(api, api_db, alice):
    put_budget(api, alice, "Entertainment", "2025-05", "100.00")
    start = threading.Barrier(50)

    def spend(_):
        with api.client(alice.token) as client:
            start.wait()
            return client.post(
                "/api/v1/expenses",
                json={"category": "Entertainment", "amount": "3.00", "date": "2025-05-18"},
            )

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(spend, range(50)))
    assert [answer.status_code for answer in answers] == [201] * 50
    fired = [alert for answer in answers for alert in answer.json()["alerts"]]
    assert len(fired) == 1
    assert sql_value(
        api_db, "select sum(amount) from expenses where user_id = %s", [alice.id]
    ) == Decimal("150.00")
    assert sql_rows(
        api_db, "select id, budget_amount from alerts where user_id = %s", [alice.id]
    ) == [(fired[0]["id"], Decimal("100.00"))]
    spent = Decimal(fired[0]["spent"])
    assert Decimal("100.00") < spent <= Decimal("103.00")
