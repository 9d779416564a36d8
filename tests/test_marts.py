"""The marts against an independent computation (pandas + Decimal) from the base tables.

Every value is compared exactly, scale included ('3.10' is not '3.1'), on the sample seeds
and on hand-made data full of edge cases; the same models are then run in DuckDB and must
return exactly the same rows as PostgreSQL.
"""

import datetime as dt
import decimal
from decimal import ROUND_HALF_UP, Decimal

import duckdb
import numpy as np
import pandas as pd
import psycopg
import pytest

from tracker.pipeline.models import load_project, render_file
from tracker.pipeline.runner import run_models_duckdb

CENT = Decimal("0.01")
TENTH = Decimal("0.1")
MAX_AMOUNT = Decimal("9999999999.99")
EXACT = decimal.Context(prec=80)
MARTS = ("monthly_totals", "top_categories", "budget_vs_actual", "rolling_trend")


# --- the independent computation ---------------------------------------------------------


def half_away(value: Decimal, exponent: Decimal) -> Decimal:
    """Round half away from zero (the values here are never negative)."""
    return value.quantize(exponent, rounding=ROUND_HALF_UP, context=EXACT)


def divide(numerator: Decimal, denominator) -> Decimal:
    return EXACT.divide(numerator, Decimal(denominator))


def dsum(values) -> Decimal:
    return sum(values, Decimal(0))


def read_frames(url: str) -> dict[str, pd.DataFrame]:
    frames = {}
    with psycopg.connect(url) as conn:
        for table in ("users", "categories", "budgets", "expenses", "alerts"):
            cursor = conn.execute(f"select * from {table} order by id")
            columns = [column.name for column in cursor.description]
            frames[table] = pd.DataFrame(cursor.fetchall(), columns=columns, dtype=object)
    expenses = frames["expenses"]
    expenses["month"] = [day.replace(day=1) for day in expenses["date"]]
    return frames


def expected_monthly_totals(frames) -> list[tuple]:
    grouped = frames["expenses"].groupby(["user_id", "month"])["amount"]
    rows = [
        (user_id, month, half_away(dsum(amounts), CENT), len(amounts))
        for (user_id, month), amounts in grouped
    ]
    return sorted(rows)


def expected_top_categories(frames) -> list[tuple]:
    names = dict(zip(frames["categories"]["id"], frames["categories"]["name"], strict=True))
    rows = []
    for (user_id, month), group in frames["expenses"].groupby(["user_id", "month"]):
        per_category = [
            (category_id, names[category_id], dsum(amounts), len(amounts))
            for category_id, amounts in group.groupby("category_id")["amount"]
        ]
        month_total = dsum(total for _, _, total, _ in per_category)
        # Largest total first, ties by name in byte order.
        per_category.sort(key=lambda item: (-item[2], item[1].encode()))
        for rank, (category_id, name, total, count) in enumerate(per_category, start=1):
            share = None if month_total == 0 else half_away(divide(total * 100, month_total), TENTH)
            rows.append(
                (user_id, month, rank, category_id, name, half_away(total, CENT), count, share)
            )
    return sorted(rows, key=lambda row: (row[0], row[1], row[2]))


def expected_budget_vs_actual(frames) -> list[tuple]:
    names = dict(zip(frames["categories"]["id"], frames["categories"]["name"], strict=True))
    spending = {
        key: dsum(amounts)
        for key, amounts in frames["expenses"].groupby(["user_id", "category_id", "month"])[
            "amount"
        ]
    }
    rows = []
    for budget in frames["budgets"].to_dict("records"):
        month = budget["month"]
        amount = budget["amount"]
        spent = spending.get((budget["user_id"], budget["category_id"], month), Decimal(0))
        pct = None if amount == 0 else half_away(divide(spent * 100, amount), TENTH)
        ratio_at_least_80 = spent * 100 >= amount * 80
        status = "over" if spent > amount else ("near" if ratio_at_least_80 else "under")
        rows.append(
            (
                budget["id"],
                budget["user_id"],
                month,
                budget["category_id"],
                names[budget["category_id"]],
                amount,
                half_away(spent, CENT),
                half_away(amount - spent, CENT),
                pct,
                status,
            )
        )
    return sorted(rows, key=lambda row: (row[1], row[2], row[3]))


def next_month(month: dt.date) -> dt.date:
    return dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)


def expected_rolling_trend(frames) -> list[tuple]:
    rows = []
    for user_id, group in frames["expenses"].groupby("user_id"):
        totals = {month: dsum(amounts) for month, amounts in group.groupby("month")["amount"]}
        months = [min(totals)]
        while months[-1] < max(totals):
            months.append(next_month(months[-1]))
        series = [totals.get(month, Decimal(0)) for month in months]
        for index, month in enumerate(months):
            window = series[max(0, index - 2) : index + 1]
            rows.append(
                (
                    user_id,
                    month,
                    half_away(series[index], CENT),
                    half_away(dsum(window), CENT),
                    half_away(divide(dsum(window), len(window)), CENT),
                )
            )
    return sorted(rows)


EXPECTED = {
    "monthly_totals": expected_monthly_totals,
    "top_categories": expected_top_categories,
    "budget_vs_actual": expected_budget_vs_actual,
    "rolling_trend": expected_rolling_trend,
}


def canonical(rows) -> list[tuple]:
    """Rows with Decimals as text (so the scale counts) and numpy scalars as Python ones."""

    def value(item):
        if isinstance(item, Decimal):
            return str(item)
        if isinstance(item, np.integer):
            return int(item)
        return naive_utc(item)

    return [tuple(value(item) for item in row) for row in rows]


def actual(url: str, model: str) -> list[tuple]:
    order = ", ".join(load_project()[model].order_by)
    with psycopg.connect(url) as conn:
        return conn.execute(f"select * from analytics.{model} order by {order}").fetchall()


def assert_marts_match(url: str) -> dict[str, list[tuple]]:
    frames = read_frames(url)
    results = {}
    for model in MARTS:
        got = canonical(actual(url, model))
        want = canonical(EXPECTED[model](frames))
        assert got == want, model
        results[model] = got
    return results


# --- data --------------------------------------------------------------------------------

USERS = [(1, "Asha"), (2, "Ben"), (3, "Cy"), (4, "Dee"), (5, "Eve"), (6, "Fay")]
CATEGORIES = [(1, "Food"), (2, "Transport"), (3, "Rent"), (4, "alpha"), (5, "Zeta")]
EXPENSES = [
    # Asha: December to January, 29 February, a gap (March, April), shares of 1/3 and 2/3,
    # a tie decided by name in byte order, and shares on the .x5 boundaries.
    (1, 1, "10.00", "2023-12-15"),
    (1, 1, "20.00", "2024-01-03"),
    (1, 2, "5.00", "2024-02-29"),
    (1, 1, "1.00", "2024-05-10"),
    (1, 2, "2.00", "2024-05-11"),
    (1, 5, "5.00", "2024-06-01"),
    (1, 4, "5.00", "2024-06-30"),
    (1, 1, "19.97", "2024-07-01"),
    (1, 2, "0.03", "2024-07-31"),
    (1, 3, "0.01", "2024-08-01"),
    (1, 1, "1999.99", "2024-08-02"),
    # Ben: spending against budgets (see BUDGETS) and a category without a budget.
    (2, 2, "0.01", "2024-03-02"),
    (2, 3, "100.00", "2024-03-03"),
    (2, 4, "63.99", "2024-03-04"),
    (2, 5, "64.00", "2024-03-05"),
    (2, 1, "100.01", "2024-04-01"),
    (2, 2, "1.00", "2024-04-02"),
    (2, 3, "2.00", "2024-04-03"),
    (2, 4, "3.00", "2024-04-04"),
    (2, 5, "1.00", "2024-04-05"),
    (2, 2, "7.00", "2024-06-06"),
    # Dee: a month of zero amounts.
    (4, 1, "0.00", "2024-02-10"),
    (4, 2, "0.00", "2024-02-11"),
    # Eve: rolling averages of half a cent and two thirds of a cent.
    (5, 1, "0.01", "2024-01-31"),
    (5, 1, "0.00", "2024-03-01"),
    (5, 1, "0.02", "2024-04-15"),
]
BUDGETS = [
    (2, 1, "2024-03-01", "0.00"),  # 0, nothing spent: near, pct null
    (2, 2, "2024-03-01", "0.00"),  # 0, 0.01 spent: over, pct null
    (2, 3, "2024-03-01", "100.00"),  # exactly spent: near, 100.0
    (2, 4, "2024-03-01", "80.00"),  # 63.99: under although pct rounds to 80.0
    (2, 5, "2024-03-01", "80.00"),  # 64.00: exactly 80 %: near
    (2, 1, "2024-04-01", "100.00"),  # 100.01: over, pct 100.0
    (2, 2, "2024-04-01", "3.00"),  # 1/3 -> 33.3
    (2, 3, "2024-04-01", "3.00"),  # 2/3 -> 66.7
    (2, 4, "2024-04-01", "2000.00"),  # 0.15 % -> 0.2
    (2, 5, "2024-04-01", "2000.00"),  # 0.05 % -> 0.1
    (2, 1, "2024-05-01", "50.00"),  # a budget without spending
    (3, 1, "2024-01-01", str(MAX_AMOUNT)),
    (4, 1, "2024-02-01", "0.00"),  # 0 budget, only zero amounts spent: near
]
# Cy: 200, 100 and 300 maximal amounts in three months, far beyond 12 digits in total.
BIG = [(3, 1, 200, "2024-01-20"), (3, 2, 100, "2024-02-20"), (3, 3, 300, "2024-03-20")]


def load_edge_cases(url: str) -> None:
    with psycopg.connect(url) as conn, conn.cursor() as cursor:
        cursor.executemany(
            "insert into users (id, name, email) values (%s, %s, %s)",
            [(user_id, name, f"{name.lower()}@example.com") for user_id, name in USERS],
        )
        cursor.executemany("insert into categories (id, name) values (%s, %s)", CATEGORIES)
        cursor.executemany(
            "insert into budgets (user_id, category_id, month, amount) values (%s, %s, %s, %s)",
            BUDGETS,
        )
        cursor.executemany(
            "insert into expenses (user_id, category_id, amount, date) values (%s, %s, %s, %s)",
            EXPENSES,
        )
        for user_id, category_id, count, day in BIG:
            cursor.execute(
                "insert into expenses (user_id, category_id, amount, date) "
                "select %s, %s, %s, %s from generate_series(1, %s)",
                [user_id, category_id, MAX_AMOUNT, day, count],
            )


@pytest.fixture
def edge_url(db_url, run_cli):
    load_edge_cases(db_url)
    result = run_cli(db_url, "run")
    assert result.exit_code == 0, result.output
    return db_url


# --- tests -------------------------------------------------------------------------------


def test_run_marts_match_independent_computation_on_sample_seeds(seeded_url, run_cli):
    assert run_cli(seeded_url, "run").exit_code == 0
    results = assert_marts_match(seeded_url)
    assert len(results["budget_vs_actual"]) == 4
    assert {row[0] for row in results["monthly_totals"]} == {1, 2}


def test_run_marts_match_independent_computation_on_edge_cases(edge_url):
    results = assert_marts_match(edge_url)
    # Spot checks of the contract, in case both computations shared a misreading.
    budgets = {(row[2], row[3], row[1]): row for row in results["budget_vs_actual"]}
    march, april = dt.date(2024, 3, 1), dt.date(2024, 4, 1)
    assert budgets[(march, 1, 2)][6:] == ("0.00", "0.00", None, "near")
    assert budgets[(march, 2, 2)][6:] == ("0.01", "-0.01", None, "over")
    assert budgets[(march, 3, 2)][6:] == ("100.00", "0.00", "100.0", "near")
    assert budgets[(march, 4, 2)][6:] == ("63.99", "16.01", "80.0", "under")
    assert budgets[(march, 5, 2)][8:] == ("80.0", "near")
    assert budgets[(april, 1, 2)][8:] == ("100.0", "over")
    assert [budgets[(april, category, 2)][8] for category in (2, 3, 4, 5)] == [
        "33.3",
        "66.7",
        "0.2",
        "0.1",
    ]
    assert budgets[(dt.date(2024, 5, 1), 1, 2)][6:] == ("0.00", "50.00", "0.0", "under")
    assert budgets[(dt.date(2024, 1, 1), 1, 3)][6:] == (
        "1999999999998.00",
        "-1989999999998.01",
        "20000.0",
        "over",
    )
    assert budgets[(dt.date(2024, 2, 1), 1, 4)][6:] == ("0.00", "0.00", None, "near")

    top = {(row[0], row[1], row[2]): row for row in results["top_categories"]}
    assert [top[(1, dt.date(2024, 5, 1), rank)][7] for rank in (1, 2)] == ["66.7", "33.3"]
    assert [top[(1, dt.date(2024, 6, 1), rank)][4] for rank in (1, 2)] == ["Zeta", "alpha"]
    assert [top[(1, dt.date(2024, 7, 1), rank)][7] for rank in (1, 2)] == ["99.9", "0.2"]
    assert [top[(1, dt.date(2024, 8, 1), rank)][7] for rank in (1, 2)] == ["100.0", "0.0"]
    assert [top[(4, dt.date(2024, 2, 1), rank)][4:] for rank in (1, 2)] == [
        ("Food", "0.00", 1, None),
        ("Transport", "0.00", 1, None),
    ]

    trend = {(row[0], row[1]): row[2:] for row in results["rolling_trend"]}
    asha_months = sorted(month for user_id, month in trend if user_id == 1)
    assert asha_months[0] == dt.date(2023, 12, 1) and len(asha_months) == 9
    assert trend[(1, dt.date(2024, 3, 1))] == ("0.00", "25.00", "8.33")
    assert trend[(1, dt.date(2024, 4, 1))] == ("0.00", "5.00", "1.67")
    assert trend[(1, dt.date(2024, 5, 1))] == ("3.00", "3.00", "1.00")
    assert trend[(5, dt.date(2024, 2, 1))] == ("0.00", "0.01", "0.01")
    assert trend[(5, dt.date(2024, 3, 1))] == ("0.00", "0.01", "0.00")
    assert trend[(5, dt.date(2024, 4, 1))] == ("0.02", "0.02", "0.01")
    assert trend[(3, dt.date(2024, 3, 1))] == (
        "2999999999997.00",
        "5999999999994.00",
        "1999999999998.00",
    )
    assert not any(user_id == 6 for user_id, _ in trend)


def test_run_star_schema_matches_base_tables(edge_url):
    frames = read_frames(edge_url)
    expenses = frames["expenses"]
    want = sorted(
        zip(
            expenses["id"],
            expenses["user_id"],
            expenses["category_id"],
            expenses["date"],
            expenses["month"],
            expenses["amount"],
            [currency.strip() for currency in expenses["currency"]],
            expenses["note"],
            strict=True,
        )
    )
    assert canonical(actual(edge_url, "fact_expenses")) == canonical(want)
    budgets = frames["budgets"]
    want = sorted(
        (
            row["id"],
            row["user_id"],
            row["category_id"],
            row["month"],
            row["amount"],
        )
        for row in budgets.to_dict("records")
    )
    assert canonical(actual(edge_url, "fact_budgets")) == canonical(want)
    users = actual(edge_url, "dim_user")
    assert [(row[0], row[1], row[2]) for row in users] == [
        (user_id, name, f"{name.lower()}@example.com") for user_id, name in USERS
    ]
    categories = actual(edge_url, "dim_category")
    assert [(row[0], row[1], row[3]) for row in categories] == [
        (category_id, name, "#9E9E9E") for category_id, name in CATEGORIES
    ]
    alerts = frames["alerts"]
    assert len(alerts) > 0
    assert [row[0] for row in actual(edge_url, "alerts")] == sorted(alerts["id"])


def test_run_dim_date_covers_whole_years_day_by_day(edge_url):
    rows = actual(edge_url, "dim_date")
    first, last = dt.date(2023, 1, 1), dt.date(2024, 12, 31)
    assert len(rows) == (last - first).days + 1 == 731
    for offset, row in enumerate(rows):
        day = first + dt.timedelta(days=offset)
        iso = day.isocalendar()
        assert row == (
            day,
            day.year,
            (day.month - 1) // 3 + 1,
            day.month,
            day.strftime("%B"),
            day.replace(day=1),
            iso.week,
            iso.weekday,
            day.strftime("%A"),
            iso.weekday >= 6,
        )
    assert dt.date(2024, 2, 29) in {row[0] for row in rows}


def test_run_dim_date_and_marts_are_empty_without_data(db_url, run_cli):
    result = run_cli(db_url, "run")
    assert result.exit_code == 0, result.output
    for model in (*MARTS, "dim_date", "fact_expenses"):
        assert actual(db_url, model) == [], model


DUCKDB_DDL = """
create table users (id bigint, name varchar, email varchar, currency varchar,
    created_at timestamp);
create table categories (id bigint, name varchar, description varchar, color varchar);
create table budgets (id bigint, user_id bigint, category_id bigint, month date,
    amount decimal(12, 2), created_at timestamp, updated_at timestamp);
create table expenses (id bigint, user_id bigint, category_id bigint, amount decimal(12, 2),
    currency varchar, date date, note varchar, created_at timestamp);
create table alerts (id bigint, user_id bigint, budget_id bigint, category_id bigint,
    month date, alert_type varchar, message varchar, spent decimal(38, 2),
    budget_amount decimal(12, 2), fired_at timestamp, acknowledged_at timestamp);
"""


DUCKDB_TYPE_NAMES = {
    "bigint": "BIGINT",
    "integer": "INTEGER",
    "date": "DATE",
    "text": "VARCHAR",
    "boolean": "BOOLEAN",
    "numeric(38,2)": "DECIMAL(38,2)",
    "numeric(38,1)": "DECIMAL(38,1)",
    # TIMESTAMP only because this test's DuckDB base tables hold naive UTC (see naive_utc).
    "numeric(12,2)": "DECIMAL(12,2)",
    "timestamp with time zone": "TIMESTAMP",
}


def pg_fetch(url: str, query: str, params=None) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def naive_utc(value):
    """Timestamps as naive UTC: reading DuckDB's TIMESTAMPTZ into Python needs pytz."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def copy_to_duckdb(url: str, duck) -> None:
    duck.execute(DUCKDB_DDL)
    with psycopg.connect(url) as conn:
        for table in ("users", "categories", "budgets", "expenses", "alerts"):
            # Only the columns the models read: later migrations may add others.
            columns = [
                row[0]
                for row in duck.execute(
                    "select column_name from information_schema.columns where table_name = ? "
                    "order by ordinal_position",
                    [table],
                ).fetchall()
            ]
            rows = conn.execute(f"select {', '.join(columns)} from {table}").fetchall()
            if rows:
                placeholders = ", ".join("?" for _ in columns)
                duck.executemany(
                    f"insert into {table} ({', '.join(columns)}) values ({placeholders})",
                    [
                        [
                            naive_utc(
                                value.strip()
                                if isinstance(value, str) and column == "currency"
                                else value
                            )
                            for column, value in zip(columns, row, strict=True)
                        ]
                        for row in rows
                    ],
                )


@pytest.mark.parametrize("dataset", ["seeds", "edge cases"])
def test_run_duckdb_returns_the_same_rows_as_postgresql(
    dataset, seeded_url, db_url, run_cli, tmp_path
):
    url = seeded_url if dataset == "seeds" else db_url
    if dataset == "edge cases":
        load_edge_cases(url)
    assert run_cli(url, "run").exit_code == 0
    duck = duckdb.connect(str(tmp_path / "check.duckdb"))
    copy_to_duckdb(url, duck)
    project = load_project()
    run_models_duckdb(duck, project, project.select(None))
    for model in project.models.values():
        order = ", ".join(model.order_by)
        in_duckdb = duck.execute(
            f"select * from analytics.{model.name} order by {order}"
        ).fetchall()
        assert canonical(in_duckdb) == canonical(actual(url, model.name)), model.name
    for model in project.models:
        pg_types = [
            row[0]
            for row in pg_fetch(
                url,
                "select format_type(atttypid, atttypmod) from pg_attribute "
                "where attrelid = %s::regclass and attnum > 0 and not attisdropped order by attnum",
                [f"analytics.{model}"],
            )
        ]
        duck_types = [row[1] for row in duck.execute(f"describe analytics.{model}").fetchall()]
        assert duck_types == [DUCKDB_TYPE_NAMES.get(name, name) for name in pg_types], model
    comment = duck.execute(
        # The marts are tables (issue 11).
        "select comment from duckdb_tables() where schema_name = 'analytics' "
        "and table_name = 'budget_vs_actual'"
    ).fetchone()
    assert comment == (project["budget_vs_actual"].description,)


ROUNDING_CASES = [
    ("1.00", "3.00"),
    ("2.00", "3.00"),
    ("0.03", "20.00"),
    ("0.01", "20.00"),
    ("3.00", "2000.00"),
    ("1.00", "2000.00"),
    ("0.01", "2000.00"),
    ("-1.00", "3.00"),
    ("-0.03", "20.00"),
    ("1.00", "-8.00"),
    ("0.00", "5.00"),
    ("5.00", "0.00"),
    ("0.01", "2"),
    ("0.05", "3"),
    (str(MAX_AMOUNT * 600), "3"),
    ("99.99", "100.00"),
    ("999.95", "1000.00"),
]


def test_macros_round_half_away_from_zero_on_both_engines(db_url, tmp_path):
    """round_div and money against Decimal, in PostgreSQL and DuckDB, on the .5 boundaries."""
    columns, want = [], []
    for index, (numerator, denominator) in enumerate(ROUNDING_CASES):
        n_sql = f"'cast({numerator} as numeric(38, 2))'"
        d_sql = f"'cast({denominator} as numeric(38, 2))'"
        for scale, exponent in ((1, TENTH), (2, CENT)):
            columns.append(f"{{{{ round_div({n_sql}, {d_sql}, {scale}) }}}} as c{index}_{scale}")
            quotient = (
                None
                if Decimal(denominator) == 0
                else half_away(abs(divide(Decimal(numerator), denominator)), exponent)
            )
            negative = (Decimal(numerator) < 0) != (Decimal(denominator) < 0)
            # SQL numerics have no negative zero.
            want.append(
                None if quotient is None else str(-quotient if negative and quotient else quotient)
            )
    columns += [
        "{{ money('cast(0.125 as numeric(38, 3))') }} as up",
        "{{ money('cast(-0.125 as numeric(38, 3))') }} as down",
    ]
    want += ["0.13", "-0.13"]
    template = tmp_path / "rounding.sql"
    template.write_text("select\n    " + ",\n    ".join(columns) + "\n")
    project = load_project()

    def as_text(row):
        return [None if value is None else str(value) for value in row]

    with psycopg.connect(db_url) as conn:
        assert as_text(conn.execute(render_file(project, template, "postgres")).fetchone()) == want
    assert (
        as_text(duckdb.connect().execute(render_file(project, template, "duckdb")).fetchone())
        == want
    )
