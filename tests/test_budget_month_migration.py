"""V015: a database holding budgets, transfers and alerts at V014 migrates to one month shape.

The database is built as it stood at V014: the versioned files up to V014 and the repeatable
files of that time. The two repeatable files that read budgets.year (the alert trigger and the
lake's change log) are kept, as they were at V014, in tests/migrations_v014/; the others did not
depend on the budget month. Then db-init applies V015 and the current repeatable files, as it
would on a user's database.
"""

import datetime as dt
import shutil
from decimal import Decimal

import psycopg
import pytest

from tracker.plumbing import config
from tracker.plumbing.bootstrap import initialize_database

V014_REPEATABLES = config.PROJECT_DIR / "tests" / "migrations_v014"


def v014_migrations(directory):
    """database/migrations as it was at V014, in directory."""
    shutil.copytree(config.MIGRATIONS_DIR, directory)
    for path in directory.glob("V*.sql"):
        if int(path.name[1:4]) > 14:
            path.unlink()
    for path in V014_REPEATABLES.glob("R__*.sql"):
        shutil.copy(path, directory / path.name)
    return directory


def rows(conn, statement, params=None):
    return conn.execute(statement, params).fetchall()


def test_v015_carries_budgets_transfers_and_alerts_over(fresh_database, tmp_path, run_cli):
    url = fresh_database()
    initialize_database(url, seed=False, migrations_dir=v014_migrations(tmp_path / "v014"))
    with psycopg.connect(url, autocommit=True) as conn:
        assert rows(
            conn,
            "select column_name from information_schema.columns"
            " where table_name = 'budgets' and column_name in ('year', 'month') order by 1",
        ) == [("month",), ("year",)]
        conn.execute(
            "insert into users (id, name, email) values"
            " (1, 'Asha', 'asha@example.com'), (2, 'Ben', 'ben@example.com')"
        )
        conn.execute("insert into categories (id, name) values (1, 'Food'), (2, 'Travel')")
        # V014's shape: two smallints. A year boundary, both ends of V007's range, two users.
        conn.execute(
            """
            insert into budgets (user_id, category_id, year, month, amount) values
                (1, 1, 2024, 12, 100.00),
                (1, 1, 2025, 1, 50.00),
                (1, 2, 2025, 1, 0.00),
                (2, 1, 2025, 1, 300.00),
                (2, 2, 1900, 1, 1.00),
                (2, 2, 2100, 12, 2.00)
            """
        )
        assert rows(conn, "select id from budgets order by id") == [(n,) for n in range(1, 7)]
        # Crossed by the V014 trigger: Food December (120 > 100), Ben's Food January.
        conn.execute(
            """
            insert into expenses (user_id, category_id, amount, date) values
                (1, 1, 120.00, '2024-12-31'),
                (1, 1, 40.00, '2025-01-01'),
                (2, 1, 301.00, '2025-01-15')
            """
        )
        # A transfer of 10 from Asha's January Food to Travel, both sides and its history,
        # as `budget transfer` writes it.
        conn.execute("update budgets set amount = amount + 10 where id = 3")
        conn.execute("update budgets set amount = amount - 10 where id = 2")
        conn.execute(
            "insert into budget_transfers (user_id, from_budget_id, to_budget_id, amount, month)"
            " values (1, 2, 3, 10.00, '2025-01-01')"
        )
        # The models as `run` built them at V014: views reading the two smallints, and a
        # view over one of them. PostgreSQL refuses to retype a column a view reads.
        conn.execute("create schema if not exists analytics")
        conn.execute(
            "create view analytics.stg_budgets as select id as budget_id,"
            " make_date(year, month, 1) as month, amount as budget_amount from budgets"
        )
        conn.execute("create view analytics.budget_months as select * from analytics.stg_budgets")
        budgets_before = rows(
            conn,
            "select id, user_id, category_id, year, month, amount, created_at, updated_at"
            " from budgets order by id",
        )
        alerts_before = rows(conn, "select * from alerts order by id")
        transfers_before = rows(conn, "select * from budget_transfers order by id")
        totals_before = rows(conn, "select * from budget_spending order by 1, 2, 3")
        lake_changes_before = rows(conn, "select count(*), max(id) from lake_changes")
    assert [(alert[1], alert[2], alert[4]) for alert in alerts_before] == [
        (1, 1, dt.date(2024, 12, 1)),
        (2, 4, dt.date(2025, 1, 1)),
    ]

    applied = initialize_database(url, seed=False).applied
    assert [m.filename for m in applied][:1] == ["V015__budget_month_date.sql"]
    assert {"R__budget_alerts.sql", "R__lake_change_log.sql"} <= {m.filename for m in applied}

    with psycopg.connect(url, autocommit=True) as conn:
        # One month column, a date; the same rows, ids and timestamps.
        assert rows(
            conn,
            "select column_name, data_type from information_schema.columns"
            " where table_name = 'budgets' and column_name in ('year', 'month')",
        ) == [("month", "date")]
        assert rows(
            conn,
            "select id, user_id, category_id, month, amount, created_at, updated_at"
            " from budgets order by id",
        ) == [
            (id_, user, category, dt.date(year, month, 1), amount, created, updated)
            for id_, user, category, year, month, amount, created, updated in budgets_before
        ]
        # The migration fired nothing and logged nothing: a rewrite, not an update.
        assert rows(conn, "select * from alerts order by id") == alerts_before
        assert rows(conn, "select * from budget_spending order by 1, 2, 3") == totals_before
        assert rows(conn, "select count(*), max(id) from lake_changes") == lake_changes_before
        # Transfers and alerts still point at the budgets of their month.
        assert rows(conn, "select * from budget_transfers order by id") == transfers_before
        assert rows(
            conn,
            "select count(*) from budget_transfers"
            " inner join budgets as source on source.id = budget_transfers.from_budget_id"
            " inner join budgets as target on target.id = budget_transfers.to_budget_id"
            " where source.month = budget_transfers.month"
            " and target.month = budget_transfers.month",
        ) == [(1,)]
        assert rows(
            conn,
            "select count(*) from alerts inner join budgets on budgets.id = alerts.budget_id"
            " where budgets.month = alerts.month and budgets.category_id = alerts.category_id",
        ) == [(2,)]

        # The keys: one budget per user, category and month; first days from 1900 to 2100.
        with pytest.raises(psycopg.errors.UniqueViolation, match="budgets_user_id_category_id"):
            conn.execute(
                "insert into budgets (user_id, category_id, month, amount)"
                " values (1, 1, '2024-12-01', 5)"
            )
        with pytest.raises(psycopg.errors.CheckViolation, match="budgets_month_first_day"):
            conn.execute(
                "insert into budgets (user_id, category_id, month, amount)"
                " values (1, 1, '2025-03-02', 5)"
            )
        for month in ("1899-12-01", "2101-01-01"):
            with pytest.raises(psycopg.errors.CheckViolation, match="budgets_month_range"):
                conn.execute(
                    "insert into budgets (user_id, category_id, month, amount)"
                    " values (1, 1, %s, 5)",
                    [month],
                )

        # The current triggers read the date. January Food holds 40.00 after the transfer and
        # 40.00 is spent: one more cent crosses it, once...
        conn.execute(
            "insert into expenses (user_id, category_id, amount, date)"
            " values (1, 1, 0.01, '2025-01-20')"
        )
        assert rows(conn, "select message from alerts where id > %s", [alerts_before[-1][0]]) == [
            ("Budget exceeded for Food for January 2025. Spent: 40.01 / 40.00",)
        ]
        # ...and a budget is found by its month at the range's end: lowered to 0, then crossed.
        conn.execute("update budgets set amount = 0 where id = 6")
        conn.execute(
            "insert into expenses (user_id, category_id, amount, date)"
            " values (2, 2, 1.00, '2100-12-31')"
        )
        assert rows(
            conn,
            "select budget_id, month, spent from alerts where id > %s order by id",
            [alerts_before[-1][0]],
        ) == [
            (2, dt.date(2025, 1, 1), Decimal("40.01")),
            (6, dt.date(2100, 12, 1), Decimal("1.00")),
        ]
        # The lake's change log records a budget's month as the date itself.
        conn.execute("update budgets set amount = 3 where id = 5")
        assert rows(
            conn,
            "select fact, month, first_id, last_id from lake_changes"
            " where fact = 'fact_budgets' order by id desc limit 1",
        ) == [("fact_budgets", dt.date(1900, 1, 1), 5, 5)]

    # The old models' views went with the old columns; the next build makes them again.
    with psycopg.connect(url) as conn:
        assert (
            rows(
                conn,
                "select table_name from information_schema.views where table_schema = 'analytics'",
            )
            == []
        )
    built = run_cli(url, "run", "--select", "stg_budgets")
    assert built.exit_code == 0, built.output
    with psycopg.connect(url) as conn:
        assert rows(
            conn, "select budget_id, month from analytics.stg_budgets where budget_id = 1"
        ) == [(1, dt.date(2024, 12, 1))]

    # The CLI reads the migrated budgets with the same options and output as before.
    listed = run_cli(url, "budget", "list", "--user", "asha@example.com", "--month", "2025-01")
    assert listed.exit_code == 0, listed.output
    assert "2025-01" in listed.output and "40.00" in listed.output
    moved = run_cli(
        url,
        "budget",
        "transfer",
        "--user",
        "asha@example.com",
        "--from",
        "Travel",
        "--to",
        "Food",
        "--month",
        "2025-01",
        "--amount",
        "5",
    )
    assert moved.exit_code == 0, moved.output
    with psycopg.connect(url) as conn:
        assert rows(conn, "select amount from budgets where id in (2, 3) order by id") == [
            (Decimal("45.00"),),
            (Decimal("5.00"),),
        ]
        assert rows(conn, "select month from budget_transfers order by id desc limit 1") == [
            (dt.date(2025, 1, 1),)
        ]
