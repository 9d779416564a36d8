"""Issue 8: nothing lost, nothing let in. One section per numbered item, through the CLI.

Each test failed on the code before its fix; the effect is checked with plain SQL.
"""

import psycopg
import pytest

from everyday_support import assert_refused, query, scalar, snapshot

AMAN = "aman@example.com"


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_text(text, encoding=encoding)
    return str(path)


# --- 7. one date range, 1900 to 2100, for everything ----------------------------------------


@pytest.mark.parametrize("day", ["0001-01-01", "1899-12-31", "2101-01-01", "9999-12-31"])
def test_expense_add_refuses_dates_outside_1900_2100(run_cli, seeded_url, day):
    before = snapshot(seeded_url)
    assert_refused(run_cli(seeded_url, "expense", "add", "--user", AMAN, "--category", "Food",
                           "--amount", "10", "--date", day),
                   f'date "{day}" is outside the years 1900 to 2100')
    assert snapshot(seeded_url) == before


def test_date_range_edges_are_accepted(run_cli, seeded_url):
    for day in ("1900-01-01", "2100-12-31"):
        result = run_cli(seeded_url, "expense", "add", "--user", AMAN, "--category", "Food",
                         "--amount", "10", "--date", day)
        assert result.exit_code == 0, result.output
    assert run_cli(seeded_url, "budget", "set", "--user", AMAN, "--category", "Food",
                   "--month", "2100-12", "--amount", "5").exit_code == 0


@pytest.mark.parametrize("args, fragment", [
    (("expense", "list", "--month", "0001-01"), 'month "0001-01" is outside the years'),
    (("expense", "list", "--from", "0001-01-01"), '--from date "0001-01-01" is outside'),
    (("budget", "set", "--user", AMAN, "--category", "Food", "--month", "2101-01",
      "--amount", "5"), 'month "2101-01" is outside the years 1900 to 2100'),
])
def test_other_commands_refuse_the_same_range(run_cli, seeded_url, args, fragment):
    assert_refused(run_cli(seeded_url, *args), fragment)


def test_import_refuses_a_date_outside_the_range_with_its_line(run_cli, seeded_url, tmp_path):
    path = write(tmp_path, "s.csv", "Date,Amount,Note\n2025-05-01,10.00,a\n0001-05-02,5.00,b\n")
    before = snapshot(seeded_url)
    assert_refused(run_cli(seeded_url, "import", path, "--user", AMAN, "--mapping",
                           "date=Date,amount=Amount,note=Note", "--default-category", "Food"),
                   "s.csv line 3", 'date "0001-05-02" is outside the years 1900 to 2100')
    assert snapshot(seeded_url) == before


def test_database_refuses_dates_outside_the_range_whoever_writes(seeded_url):
    with psycopg.connect(seeded_url) as conn:
        with pytest.raises(psycopg.errors.CheckViolation, match="expenses_date_range"):
            conn.execute("insert into expenses (user_id, category_id, amount, date)"
                         " select 1, id, 1, '0001-01-01' from categories limit 1")
    with psycopg.connect(seeded_url) as conn:
        with pytest.raises(psycopg.errors.CheckViolation, match="budgets_year_range"):
            conn.execute("insert into budgets (user_id, category_id, year, month, amount)"
                         " select 1, id, 2101, 1, 1 from categories limit 1")


def test_budget_delete_undoes_a_mistaken_budget(run_cli, seeded_url):
    assert run_cli(seeded_url, "budget", "set", "--user", AMAN, "--category", "Food",
                   "--month", "2099-05", "--amount", "100").exit_code == 0
    before = scalar(seeded_url, "select count(*) from budgets")
    result = run_cli(seeded_url, "budget", "delete", "--user", AMAN, "--category", "Food",
                     "--month", "2099-05")
    assert result.exit_code == 0, result.output
    assert "Deleted the Food budget for 2099-05 of aman@example.com (100.00)" in result.output
    assert "kept 0 alerts and 0 transfers" in result.output
    assert scalar(seeded_url, "select count(*) from budgets") == before - 1
    assert scalar(seeded_url, "select count(*) from budgets where year = 2099") == 0
    assert_refused(run_cli(seeded_url, "budget", "delete", "--user", AMAN, "--category", "Food",
                           "--month", "2099-05"), "has no Food budget for 2099-05")


def test_budget_delete_keeps_its_alerts_as_history(run_cli, seeded_url):
    run_cli(seeded_url, "budget", "set", "--user", AMAN, "--category", "Food",
            "--month", "2030-01", "--amount", "10")
    run_cli(seeded_url, "expense", "add", "--user", AMAN, "--category", "Food",
            "--amount", "20", "--date", "2030-01-05")
    assert scalar(seeded_url, "select count(*) from alerts where month = '2030-01-01'") == 1
    result = run_cli(seeded_url, "budget", "delete", "--user", AMAN, "--category", "Food",
                     "--month", "2030-01")
    assert result.exit_code == 0, result.output
    assert "kept 1 alert and 0 transfers" in result.output
    assert query(seeded_url, "select budget_id, category_id is not null from alerts"
                             " where month = '2030-01-01'") == [(None, True)]


# --- 3. a name is never read as an id ------------------------------------------------------


@pytest.mark.parametrize("name", ["9", " 42 ", "007"])
def test_category_add_refuses_digit_only_names(run_cli, seeded_url, name):
    before = snapshot(seeded_url)
    assert_refused(run_cli(seeded_url, "category", "add", "--name", name),
                   "is all digits, which reads as a category id")
    assert snapshot(seeded_url) == before


def test_category_delete_of_digits_means_the_id_only(run_cli, seeded_url):
    rent = scalar(seeded_url, "select id from categories where name = 'Rent'")
    missing = scalar(seeded_url, "select max(id) + 100 from categories")
    before = snapshot(seeded_url)
    assert_refused(run_cli(seeded_url, "category", "delete", str(missing)),
                   f"category id {missing} does not exist")
    assert snapshot(seeded_url) == before
    result = run_cli(seeded_url, "category", "delete", f"#{rent}")
    assert result.exit_code == 0, result.output
    assert scalar(seeded_url, "select count(*) from categories where name = 'Rent'") == 0


def test_database_refuses_digit_only_category_names(seeded_url):
    with psycopg.connect(seeded_url) as conn:
        with pytest.raises(psycopg.errors.CheckViolation, match="categories_name_not_a_number"):
            conn.execute("insert into categories (name) values ('9')")
