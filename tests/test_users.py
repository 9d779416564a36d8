"""user add / user list through the CLI against real PostgreSQL."""

import json

import pytest
from everyday_support import assert_refused, query, snapshot


def test_user_add_creates_user_with_currency(run_cli, seeded_url):
    result = run_cli(
        seeded_url,
        "user",
        "add",
        "--name",
        "Asha Rao",
        "--email",
        "Asha@Example.com",
        "--currency",
        "EUR",
    )
    assert result.exit_code == 0, result.output
    assert "asha@example.com" in result.output
    assert query(
        seeded_url, "select name, email, currency from users where email = %s", ["asha@example.com"]
    ) == [("Asha Rao", "asha@example.com", "EUR")]


def test_user_add_defaults_currency_to_inr(run_cli, db_url):
    assert run_cli(db_url, "user", "add", "--name", "A", "--email", "a@b.co").exit_code == 0
    assert query(db_url, "select currency from users") == [("INR",)]


def test_user_list_shows_every_user_as_table_and_json(run_cli, seeded_url):
    table = run_cli(seeded_url, "user", "list")
    assert table.exit_code == 0, table.output
    assert "aman@example.com" in table.output and "priya@example.com" in table.output
    data = json.loads(run_cli(seeded_url, "user", "list", "--format", "json").stdout)
    assert [row["email"] for row in data] == [
        email for (email,) in query(seeded_url, "select email from users order by id")
    ]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--name", "X", "--email", "not-an-email"], '"not-an-email" does not look like an e-mail'),
        (["--name", "X", "--email", "x@example.com", "--currency", "inr"], 'currency "inr"'),
        (["--name", "X", "--email", "x@example.com", "--currency", "EURO"], 'currency "EURO"'),
        (["--name", "  ", "--email", "x@example.com"], "name is empty"),
        (["--name", "Dup", "--email", "AMAN@example.com"], '"aman@example.com" is already taken'),
    ],
)
def test_user_add_refuses_bad_input_and_writes_nothing(run_cli, seeded_url, args, fragment):
    before = snapshot(seeded_url)
    result = run_cli(seeded_url, "user", "add", *args)
    assert_refused(result, fragment)
    assert snapshot(seeded_url) == before
