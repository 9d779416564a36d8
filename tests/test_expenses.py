"""expense add / list / update / delete through the CLI against real PostgreSQL."""

import csv
import io
import json
from datetime import date
from decimal import Decimal

import pytest
from everyday_support import assert_refused, query, scalar, snapshot

AMAN = "aman@example.com"


def add(run_cli, url, *extra, amount="100", category="Food", user=AMAN):
    return run_cli(
        url, "expense", "add", "--user", user, "--category", category, "--amount", amount, *extra
    )


def test_expense_add_records_expense(run_cli, seeded_url):
    result = add(run_cli, seeded_url, "--date", "2025-05-20", "--note", "Lunch", amount="250.50")
    assert result.exit_code == 0, result.output
    assert query(
        seeded_url,
        """
        select users.email, categories.name, amount, expenses.currency, date, note
        from expenses
        inner join users on users.id = expenses.user_id
        inner join categories on categories.id = expenses.category_id
        where note = 'Lunch'""",
    ) == [(AMAN, "Food", Decimal("250.50"), "INR", date(2025, 5, 20), "Lunch")]


def test_expense_add_defaults_date_to_today_and_accepts_ids(run_cli, seeded_url):
    user_id = scalar(seeded_url, "select id from users where email = %s", [AMAN])
    rent_id = scalar(seeded_url, "select id from categories where name = 'Rent'")
    result = add(run_cli, seeded_url, "--currency", "INR", user=str(user_id), category=str(rent_id))
    assert result.exit_code == 0, result.output
    assert query(
        seeded_url, "select date, currency from expenses where category_id = %s", [rent_id]
    ) == [(date.today(), "INR")]


def test_expense_add_refuses_currency_other_than_users(run_cli, seeded_url):
    # Budgets, summaries and every model add amounts up per user: one currency each.
    before = snapshot(seeded_url)
    assert_refused(
        add(run_cli, seeded_url, "--currency", "USD", amount="20"),
        'Error: currency "USD" differs from aman@example.com\'s currency INR. '
        "Budgets and totals are kept in one currency per user; record the amount "
        "in INR.",
    )
    assert snapshot(seeded_url) == before
    assert (
        run_cli(
            seeded_url,
            "user",
            "add",
            "--name",
            "Eva",
            "--email",
            "eva@example.com",
            "--currency",
            "EUR",
        ).exit_code
        == 0
    )
    assert add(run_cli, seeded_url, user="eva@example.com").exit_code == 0
    assert_refused(
        add(run_cli, seeded_url, "--currency", "INR", user="eva@example.com"),
        "differs from eva@example.com's currency EUR",
        "record the amount in EUR",
    )
    assert query(
        seeded_url,
        """
        select users.currency, expenses.currency, count(*) from expenses
        inner join users on users.id = expenses.user_id
        group by users.currency, expenses.currency""",
    ) == [("EUR", "EUR", 1), ("INR", "INR", 5)]


def test_expense_add_crossing_budget_fires_one_alert(run_cli, seeded_url):
    # Transport: budget 2000.00, 150.00 spent in May 2025.
    first = add(run_cli, seeded_url, "--date", "2025-05-20", category="Transport", amount="1850")
    assert first.exit_code == 0 and "Alert" not in first.output
    assert scalar(seeded_url, "select count(*) from alerts") == 0
    crossing = add(run_cli, seeded_url, "--date", "2025-05-21", category="Transport", amount="0.01")
    assert crossing.exit_code == 0, crossing.output
    message = "Budget exceeded for Transport for May 2025. Spent: 2000.01 / 2000.00"
    assert message in crossing.output
    assert query(seeded_url, "select message, spent, budget_amount from alerts") == [
        (message, Decimal("2000.01"), Decimal("2000.00"))
    ]
    again = add(run_cli, seeded_url, "--date", "2025-05-22", category="Transport", amount="10")
    assert again.exit_code == 0 and "Alert" not in again.output
    assert scalar(seeded_url, "select count(*) from alerts") == 1


@pytest.mark.parametrize(
    "amount, fragment",
    [
        ("-5", 'amount "-5" must be more than 0'),
        ("0", 'amount "0" must be more than 0'),
        ("abc", 'amount "abc" is not a number'),
        ("1.234", 'amount "1.234" has more than 2 decimal places'),
        ("NaN", 'amount "NaN" is not a number'),
        ("Infinity", 'amount "Infinity" is not a number'),
        ("1e9", 'amount "1e9" is not a number'),
        ("10000000000", 'amount "10000000000" is too large'),
        ("12,50", 'amount "12,50" is not a number'),
    ],
)
def test_expense_add_refuses_bad_amount(run_cli, seeded_url, amount, fragment):
    before = snapshot(seeded_url)
    assert_refused(
        add(run_cli, seeded_url, amount=amount),
        fragment,
        "Give a plain number" if "large" not in fragment else "smaller",
    )
    assert snapshot(seeded_url) == before


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--date", "2025-02-30"], 'date "2025-02-30" is not a real day'),
        (["--date", "2025/05/01"], 'date "2025/05/01" is not a date. Use YYYY-MM-DD'),
        (["--date", "yesterday"], 'date "yesterday" is not a date'),
        (["--currency", "usd"], 'currency "usd"'),
    ],
)
def test_expense_add_refuses_bad_date_or_currency(run_cli, seeded_url, extra, fragment):
    before = snapshot(seeded_url)
    assert_refused(add(run_cli, seeded_url, *extra), fragment)
    assert snapshot(seeded_url) == before


def test_expense_add_refuses_unknown_user_and_category(run_cli, seeded_url):
    before = snapshot(seeded_url)
    assert_refused(
        add(run_cli, seeded_url, user="nobody@example.com"),
        'user "nobody@example.com" does not exist',
    )
    assert_refused(add(run_cli, seeded_url, user="999"), 'user "999" does not exist')
    assert_refused(
        add(run_cli, seeded_url, category="Groceries"), 'category "Groceries" does not exist'
    )
    assert snapshot(seeded_url) == before


def list_json(run_cli, url, *filters):
    result = run_cli(url, "expense", "list", "--format", "json", *filters)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_expense_list_is_newest_first_with_exact_amounts(run_cli, seeded_url):
    rows = list_json(run_cli, seeded_url)
    expected = query(seeded_url, "select id, amount from expenses order by date desc, id desc")
    assert [(row["id"], row["amount"]) for row in rows] == [(i, str(a)) for i, a in expected]
    assert all(isinstance(row["amount"], str) for row in rows)


@pytest.mark.parametrize(
    "filters, where",
    [
        (["--user", AMAN], "users.email = 'aman@example.com'"),
        (["--category", "Food"], "categories.name = 'Food'"),
        (["--month", "2025-05"], "date >= '2025-05-01' and date < '2025-06-01'"),
        (["--month", "2025-04"], "date >= '2025-04-01' and date < '2025-05-01'"),
        (
            ["--from", "2025-05-05", "--to", "2025-05-10"],
            "date between '2025-05-05' and '2025-05-10'",
        ),
        (["--min", "250", "--max", "1200"], "amount between 250 and 1200"),
        (
            ["--user", "priya@example.com", "--category", "Food"],
            "users.email = 'priya@example.com' and categories.name = 'Food'",
        ),
    ],
)
def test_expense_list_filters(run_cli, seeded_url, filters, where):
    expected = query(
        seeded_url,
        f"""
        select expenses.id from expenses
        inner join users on users.id = expenses.user_id
        inner join categories on categories.id = expenses.category_id
        where {where} order by date desc, expenses.id desc""",
    )
    assert [row["id"] for row in list_json(run_cli, seeded_url, *filters)] == [
        i for (i,) in expected
    ]


def test_expense_list_csv_quotes_notes(run_cli, seeded_url):
    note = 'Dinner, "fancy" place'
    assert add(run_cli, seeded_url, "--date", "2025-05-31", "--note", note).exit_code == 0
    result = run_cli(seeded_url, "expense", "list", "--format", "csv", "--month", "2025-05")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows[0]["note"] == note and rows[0]["amount"] == "100.00"
    assert len(rows) == 6


def test_expense_list_table_is_readable(run_cli, seeded_url):
    result = run_cli(seeded_url, "expense", "list", "--category", "Shopping")
    assert result.exit_code == 0, result.output
    assert "3,200.00" in result.output and "New headphones" in result.output


@pytest.mark.parametrize(
    "filters, fragment",
    [
        (["--month", "2025-13"], 'month "2025-13" is not a month'),
        (["--month", "May"], 'month "May"'),
        (["--from", "2025-04-31"], '--from date "2025-04-31" is not a real day'),
        (["--min", "abc"], '--min amount "abc"'),
        (["--user", "ghost@example.com"], 'user "ghost@example.com" does not exist'),
        (["--from", "2025-05-10", "--to", "2025-05-01"], "--from 2025-05-10 is after --to"),
        (["--min", "100", "--max", "10"], "--min 100.00 is above --max 10.00"),
    ],
)
def test_expense_list_refuses_bad_filters(run_cli, seeded_url, filters, fragment):
    assert_refused(run_cli(seeded_url, "expense", "list", *filters), fragment)


def first_expense(url):
    return scalar(url, "select id from expenses where note = 'Taxi to office'")


def test_expense_update_changes_only_given_fields(run_cli, seeded_url):
    expense_id = first_expense(seeded_url)
    result = run_cli(
        seeded_url,
        "expense",
        "update",
        str(expense_id),
        "--amount",
        "180",
        "--description",
        "Taxi to airport",
    )
    assert result.exit_code == 0, result.output
    assert query(
        seeded_url, "select amount, note, date from expenses where id = %s", [expense_id]
    ) == [(Decimal("180.00"), "Taxi to airport", date(2025, 5, 10))]
    result = run_cli(
        seeded_url,
        "expense",
        "update",
        str(expense_id),
        "--category",
        "Food",
        "--date",
        "2025-06-01",
    )
    assert result.exit_code == 0, result.output
    assert query(
        seeded_url,
        """
        select categories.name, expenses.date, expenses.amount, expenses.note from expenses
        inner join categories on categories.id = expenses.category_id
        where expenses.id = %s""",
        [expense_id],
    ) == [("Food", date(2025, 6, 1), Decimal("180.00"), "Taxi to airport")]


def test_expense_update_moving_into_a_full_budget_fires_alert(run_cli, seeded_url):
    expense_id = scalar(seeded_url, "select id from expenses where note = 'New headphones'")
    # 3200 of Shopping moved to Transport (150 of 2000 spent) crosses Transport's budget.
    result = run_cli(seeded_url, "expense", "update", str(expense_id), "--category", "Transport")
    assert result.exit_code == 0, result.output
    message = "Budget exceeded for Transport for May 2025. Spent: 3350.00 / 2000.00"
    assert query(seeded_url, "select message from alerts") == [(message,)]
    assert message in result.output


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["{id}"], "nothing to change"),
        (["{id}", "--amount", "-1"], 'amount "-1"'),
        (["{id}", "--date", "2025-02-29"], 'date "2025-02-29" is not a real day'),
        (["{id}", "--category", "Nope"], 'category "Nope" does not exist'),
        (["999999", "--note", "x"], "expense 999999 does not exist"),
        (["abc", "--note", "x"], 'expense id "abc" is not an id'),
    ],
)
def test_expense_update_refuses_bad_input(run_cli, seeded_url, args, fragment):
    expense_id = first_expense(seeded_url)
    before = snapshot(seeded_url)
    args = [arg.format(id=expense_id) for arg in args]
    assert_refused(run_cli(seeded_url, "expense", "update", *args), fragment)
    assert snapshot(seeded_url) == before


def test_expense_delete_removes_one_expense(run_cli, seeded_url):
    expense_id = first_expense(seeded_url)
    result = run_cli(seeded_url, "expense", "delete", str(expense_id))
    assert result.exit_code == 0, result.output
    assert scalar(seeded_url, "select count(*) from expenses where id = %s", [expense_id]) == 0
    assert scalar(seeded_url, "select count(*) from expenses") == 4


def test_expense_delete_unknown_id_is_refused(run_cli, seeded_url):
    before = snapshot(seeded_url)
    assert_refused(
        run_cli(seeded_url, "expense", "delete", "424242"), "expense 424242 does not exist"
    )
    assert snapshot(seeded_url) == before
