"""category add / list / delete through the CLI against real PostgreSQL."""

import json

import pytest
from everyday_support import assert_refused, query, scalar, snapshot


def test_category_add_creates_category(run_cli, seeded_url):
    result = run_cli(
        seeded_url,
        "category",
        "add",
        "--name",
        "Travel",
        "--description",
        "Trains, flights",
        "--color",
        "#1e88e5",
    )
    assert result.exit_code == 0, result.output
    assert query(
        seeded_url, "select name, description, color from categories where name = 'Travel'"
    ) == [("Travel", "Trains, flights", "#1E88E5")]


def test_category_add_defaults_color(run_cli, db_url):
    assert run_cli(db_url, "category", "add", "--name", "Misc").exit_code == 0
    assert query(db_url, "select color from categories") == [("#9E9E9E",)]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--name", "Travel", "--color", "red"], 'color "red" is not a #RRGGBB color'),
        (["--name", "Travel", "--color", "#12345"], 'color "#12345"'),
        (["--name", " "], "category name is empty"),
        (["--name", "Food"], 'category "Food" already exists'),
        (["--name", "food"], 'category "Food" already exists'),
    ],
)
def test_category_add_refuses_bad_input_and_writes_nothing(run_cli, seeded_url, args, fragment):
    before = snapshot(seeded_url)
    assert_refused(run_cli(seeded_url, "category", "add", *args), fragment)
    assert snapshot(seeded_url) == before


def test_category_list_counts_expenses(run_cli, seeded_url):
    result = run_cli(seeded_url, "category", "list", "--format", "json")
    assert result.exit_code == 0, result.output
    counts = {row["name"]: row["expenses"] for row in json.loads(result.stdout)}
    expected = dict(
        query(
            seeded_url,
            """
        select categories.name, count(expenses.id)
        from categories left join expenses on expenses.category_id = categories.id
        group by categories.name""",
        )
    )
    assert counts == expected
    assert counts["Food"] == 3 and counts["Rent"] == 0
    assert "Entertainment" in run_cli(seeded_url, "category", "list").output


def test_category_delete_unused_category(run_cli, seeded_url):
    result = run_cli(seeded_url, "category", "delete", "Rent")
    assert result.exit_code == 0, result.output
    assert scalar(seeded_url, "select count(*) from categories where name = 'Rent'") == 0


def test_category_delete_by_id(run_cli, seeded_url):
    rent_id = scalar(seeded_url, "select id from categories where name = 'Rent'")
    assert run_cli(seeded_url, "category", "delete", str(rent_id)).exit_code == 0
    assert scalar(seeded_url, "select count(*) from categories where id = %s", [rent_id]) == 0


def test_category_delete_in_use_is_refused_with_reason(run_cli, seeded_url):
    before = snapshot(seeded_url)
    result = run_cli(seeded_url, "category", "delete", "Food")
    assert_refused(result, 'category "Food" is used by 3 expense(s)', "--move-to", code=1)
    assert snapshot(seeded_url) == before


def test_category_delete_move_to_moves_expenses_then_deletes(run_cli, seeded_url):
    food_total = scalar(
        seeded_url,
        """
        select sum(amount) from expenses
        where category_id in (select id from categories where name in ('Food', 'Rent'))""",
    )
    result = run_cli(seeded_url, "category", "delete", "Food", "--move-to", "Rent")
    assert result.exit_code == 0, result.output
    assert "moved 3 expenses (1,750.00) to Rent" in result.output
    assert "gave 2 budgets to Rent (months where it had none)" in result.output
    assert (
        scalar(
            seeded_url,
            """
        select count(*) from budgets
        where category_id = (select id from categories where name = 'Rent')""",
        )
        == 2
    )
    assert scalar(seeded_url, "select count(*) from categories where name = 'Food'") == 0
    assert (
        scalar(
            seeded_url,
            """
        select sum(amount) from expenses
        where category_id = (select id from categories where name = 'Rent')""",
        )
        == food_total
    )


def test_category_delete_move_to_unknown_category_changes_nothing(run_cli, seeded_url):
    before = snapshot(seeded_url)
    assert_refused(
        run_cli(seeded_url, "category", "delete", "Food", "--move-to", "Nope"),
        'category "Nope" does not exist',
    )
    assert snapshot(seeded_url) == before


def test_category_delete_move_to_itself_is_refused(run_cli, seeded_url):
    before = snapshot(seeded_url)
    assert_refused(
        run_cli(seeded_url, "category", "delete", "Food", "--move-to", "food"),
        "is the category being deleted",
    )
    assert snapshot(seeded_url) == before


def test_category_delete_unknown_category_is_refused(run_cli, seeded_url):
    assert_refused(
        run_cli(seeded_url, "category", "delete", "Nope"), 'category "Nope" does not exist'
    )
