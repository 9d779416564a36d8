"""generate: reproducible synthetic data, checked with plain SQL against real PostgreSQL."""

import datetime as dt

import psycopg
import pytest

SMALL = ("--users", "30", "--expenses", "6000", "--months", "6", "--start-month", "2024-10")

# One md5 over every generated row, ordered by content; ids and timestamps left out, so two
# databases compare equal exactly when their content does.
CONTENT_MD5 = """
with content as (
    select concat_ws('|', 'user', name, email, currency) as line
    from users
    union all
    select concat_ws('|', 'category', name, description, color)
    from categories
    union all
    select concat_ws('|', 'budget', users.email, categories.name, month, amount)
    from budgets
    inner join users on users.id = budgets.user_id
    inner join categories on categories.id = budgets.category_id
    union all
    select concat_ws(
        '|', 'expense', users.email, categories.name, amount, expenses.currency, date,
        coalesce(quote_literal(note), 'null')
    )
    from expenses
    inner join users on users.id = expenses.user_id
    inner join categories on categories.id = expenses.category_id
    union all
    select concat_ws(
        '|', 'alert', users.email, categories.name, month, alert_type, message, spent,
        budget_amount
    )
    from alerts
    inner join users on users.id = alerts.user_id
    inner join categories on categories.id = alerts.category_id
)
select md5(string_agg(line, E'\\n' order by line)) as content_md5
from content
"""

CATALOG = """
select pg_get_indexdef(indexrelid) as definition
from pg_index
where indrelid = 'expenses'::regclass
union all
select conname || ' ' || pg_get_constraintdef(oid)
from pg_constraint
where conrelid = 'expenses'::regclass
order by 1
"""


def query(url, statement, params=None):
    with psycopg.connect(url) as conn:
        return conn.execute(statement, params).fetchall()


def scalar(url, statement, params=None):
    return query(url, statement, params)[0][0]


def counts(url):
    return query(
        url,
        "select (select count(*) from users), (select count(*) from categories),"
        " (select count(*) from budgets), (select count(*) from expenses),"
        " (select count(*) from alerts)",
    )[0]


@pytest.fixture
def second_url(fresh_database, empty_template):
    return fresh_database(empty_template)


def test_generate_same_seed_gives_identical_content(run_cli, db_url, second_url):
    first = run_cli(db_url, "generate", *SMALL, "--seed", "7")
    second = run_cli(second_url, "generate", *SMALL, "--seed", "7")
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert scalar(db_url, CONTENT_MD5) == scalar(second_url, CONTENT_MD5)
    assert counts(db_url) == counts(second_url)


def test_generate_different_seeds_differ(run_cli, db_url, second_url):
    assert run_cli(db_url, "generate", *SMALL, "--seed", "7").exit_code == 0
    assert run_cli(second_url, "generate", *SMALL, "--seed", "8").exit_code == 0
    assert scalar(db_url, CONTENT_MD5) != scalar(second_url, CONTENT_MD5)
    amounts = "select array_agg(amount order by amount) from expenses"
    assert scalar(db_url, amounts) != scalar(second_url, amounts)


def test_generate_counts_and_months_match_the_options(run_cli, db_url):
    result = run_cli(db_url, "generate", *SMALL, "--seed", "3")
    assert result.exit_code == 0, result.output
    users, categories, budgets, expenses, _alerts = counts(db_url)
    assert (users, categories, expenses) == (30, 9, 6000)
    # Most user/category/month keys have a budget, not all; some budgets are 0.
    assert 0.85 * 30 * 9 * 6 <= budgets < 30 * 9 * 6
    assert scalar(db_url, "select count(*) from budgets where amount = 0") > 0
    months = [
        row[0]
        for row in query(
            db_url,
            "select distinct date_trunc('month', date)::date from expenses order by 1",
        )
    ]
    assert months == [
        dt.date(2024, 10, 1),
        dt.date(2024, 11, 1),
        dt.date(2024, 12, 1),
        dt.date(2025, 1, 1),
        dt.date(2025, 2, 1),
        dt.date(2025, 3, 1),
    ]
    budget_months = query(db_url, "select distinct month from budgets order by 1")
    assert [month for (month,) in budget_months] == [
        dt.date(2024, 10, 1),
        dt.date(2024, 11, 1),
        dt.date(2024, 12, 1),
        dt.date(2025, 1, 1),
        dt.date(2025, 2, 1),
        dt.date(2025, 3, 1),
    ]
    assert scalar(db_url, "select bool_and(amount > 0 and scale(amount) <= 2) from expenses")
    assert scalar(db_url, "select bool_and(currency = 'INR') from users")
    emails = [row[0] for row in query(db_url, "select email from users order by id")]
    assert sorted(emails) == sorted(f"gen-3-{n}@example.com" for n in range(1, 31))
    assert "expenses" in result.output and "6,000" in result.output


def test_generate_amounts_are_category_typical(run_cli, db_url):
    assert run_cli(db_url, "generate", *SMALL, "--seed", "4").exit_code == 0
    averages = dict(
        query(
            db_url,
            "select categories.name, avg(amount) from expenses"
            " inner join categories on categories.id = expenses.category_id group by 1",
        )
    )
    assert averages["Rent"] > averages["Shopping"] > averages["Food"] > averages["Transport"]
    top = scalar(
        db_url,
        "select categories.name from expenses inner join categories"
        " on categories.id = expenses.category_id group by 1 order by count(*) desc limit 1",
    )
    assert top == "Food"


def test_generate_notes_include_special_characters(run_cli, db_url):
    assert run_cli(db_url, "generate", *SMALL, "--seed", "5").exit_code == 0
    notes = [row[0] for row in query(db_url, "select distinct note from expenses")]
    texts = [note for note in notes if note is not None]
    assert None in notes
    assert any("," in note for note in texts)
    assert any('"' in note for note in texts)
    assert any("\n" in note for note in texts)
    assert any(any(ord(char) > 0xFFFF for char in note) for note in texts)


def test_generate_leaves_month_gaps(run_cli, db_url):
    assert run_cli(db_url, "generate", *SMALL, "--seed", "6").exit_code == 0
    # A gap: a user with spending before and after a month without any.
    gaps = scalar(
        db_url,
        """
        with spent_months as (
            select distinct user_id, date_trunc('month', date)::date as month
            from expenses
        )
        select count(*)
        from spent_months as before
        inner join spent_months as after
            on after.user_id = before.user_id
            and after.month = (before.month + interval '2 months')::date
        where not exists (
            select
            from spent_months as between_month
            where between_month.user_id = before.user_id
                and between_month.month = (before.month + interval '1 month')::date
        )
        """,
    )
    assert gaps > 0


def test_generate_alerts_match_keys_over_budget(run_cli, db_url):
    result = run_cli(db_url, "generate", *SMALL, "--seed", "9")
    assert result.exit_code == 0, result.output
    # Spending only grows while generating and budgets exist first, so each key over its
    # budget crossed it exactly once.
    over_budget = scalar(
        db_url,
        """
        select count(*)
        from budgets
        inner join (
            select
                user_id,
                category_id,
                date_trunc('month', date::timestamp)::date as month,
                sum(amount) as spent
            from expenses
            group by 1, 2, 3
        ) as spending
            on spending.user_id = budgets.user_id
            and spending.category_id = budgets.category_id
            and spending.month = budgets.month
        where spending.spent > budgets.amount
        """,
    )
    assert over_budget > 0
    assert scalar(db_url, "select count(*) from alerts") == over_budget
    assert f"{over_budget:,}" in result.output


def test_generate_restores_expense_indexes_and_constraints(run_cli, db_url):
    before = query(db_url, CATALOG)
    assert run_cli(db_url, "generate", *SMALL, "--seed", "10").exit_code == 0
    assert query(db_url, CATALOG) == before
    # The re-created foreign keys are enforced.
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        query(
            db_url,
            "insert into expenses (user_id, category_id, amount, date)"
            " values (-1, -1, 1, '2025-01-01')",
        )


def test_generate_adds_to_a_database_with_data(run_cli, seeded_url):
    before = counts(seeded_url)
    result = run_cli(seeded_url, "generate", *SMALL, "--seed", "11")
    assert result.exit_code == 0, result.output
    users, categories, _budgets, expenses, _alerts = counts(seeded_url)
    # The seed's five categories are reused; the four others are added.
    assert (users, categories, expenses) == (before[0] + 30, 9, before[3] + 6000)
    assert "categories  4" in result.output
    assert (
        scalar(
            seeded_url,
            "select count(*) from expenses inner join users on users.id = expenses.user_id"
            " where users.email = 'aman@example.com'",
        )
        > 0
    )


def test_generate_same_seed_twice_fails_and_writes_nothing(run_cli, db_url):
    assert run_cli(db_url, "generate", *SMALL, "--seed", "12").exit_code == 0
    before = counts(db_url)
    content = scalar(db_url, CONTENT_MD5)
    again = run_cli(db_url, "generate", *SMALL, "--seed", "12")
    assert again.exit_code == 1
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error: 30 generated users of seed 12")
    assert "Use another --seed" in again.stderr
    assert counts(db_url) == before
    assert scalar(db_url, CONTENT_MD5) == content
    # Another seed coexists with the first.
    other = run_cli(db_url, "generate", *SMALL, "--seed", "13")
    assert other.exit_code == 0, other.output
    assert counts(db_url)[0] == before[0] + 30


def test_generate_shows_progress_on_stderr(run_cli, db_url):
    result = run_cli(db_url, "generate", *SMALL, "--seed", "14")
    assert result.exit_code == 0, result.output
    assert "Generating" in result.stderr
    assert "Generating" not in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--users", "-1"), "--users -1 is out of range"),
        (("--users", "0"), "--users 0 is out of range"),
        (("--expenses", "-5"), "--expenses -5 is out of range"),
        (("--months", "0"), "--months 0 is out of range"),
        (("--seed", "-3"), "--seed -3 is out of range"),
        (("--start-month", "2025-13"), '--start-month "2025-13" is not a month'),
        (("--start-month", "May 2025"), '--start-month "May 2025" is not a month'),
        (("--start-month", "2100-12", "--months", "2"), "runs past year 2100"),
    ],
)
def test_generate_bad_options_exit_2_with_one_line(run_cli, db_url, args, message):
    before = counts(db_url)
    result = run_cli(db_url, "generate", *args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error: ") and message in lines[0]
    assert counts(db_url) == before
