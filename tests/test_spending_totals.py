"""V010's per-key spending totals (budget_spending) never drift from sum(expenses).

Each check compares the table the triggers keep with an aggregate of expenses computed here,
after every statement shape, under concurrent writers, after a backfill, and for a role that
may write expenses but not the totals or alerts.
"""

import random
import shutil
import threading
import uuid
from decimal import Decimal

import psycopg
import pytest
from psycopg import sql

from tracker.plumbing import config
from tracker.plumbing.bootstrap import initialize_database


def recorded(conn) -> dict:
    """budget_spending as {(user, category, month): spent}, keys at 0 left out."""
    rows = conn.execute(
        "select user_id, category_id, month, spent from budget_spending where spent <> 0"
    ).fetchall()
    return {(user, category, month): spent for user, category, month, spent in rows}


def expected(conn) -> dict:
    """The same, summed from the expenses themselves."""
    rows = conn.execute(
        """
        select user_id, category_id, date_trunc('month', date)::date, sum(amount)
        from expenses
        group by 1, 2, 3
        having sum(amount) <> 0
        """
    ).fetchall()
    return {(user, category, month): spent for user, category, month, spent in rows}


def assert_no_drift(conn) -> None:
    assert recorded(conn) == expected(conn)
    negative = conn.execute("select count(*) from budget_spending where spent < 0").fetchone()[0]
    assert negative == 0


@pytest.fixture
def people(conn):
    users = [
        row[0]
        for row in conn.execute(
            "insert into users (name, email) values ('Aman', 'aman@example.com'),"
            " ('Priya', 'priya@example.com') returning id"
        ).fetchall()
    ]
    categories = [
        row[0]
        for row in conn.execute(
            "insert into categories (name) values ('Food'), ('Travel'), ('Rent') returning id"
        ).fetchall()
    ]
    return users, categories


def test_spending_totals_follow_every_statement_shape(conn, people):
    (aman, priya), (food, travel, rent) = people
    insert = "insert into expenses (user_id, category_id, amount, date) values (%s, %s, %s, %s)"
    conn.execute(insert, [aman, food, Decimal("10.50"), "2024-12-31"])
    conn.execute(insert, [aman, food, Decimal("0.00"), "2025-01-01"])
    conn.execute(
        "insert into expenses (user_id, category_id, amount, date) values"
        " (%(a)s, %(f)s, 1, '2024-02-29'), (%(a)s, %(f)s, 2, '2024-02-01'),"
        " (%(p)s, %(t)s, 9999999999.99, '2025-03-15'), (%(p)s, %(t)s, 9999999999.99, '2025-03-16')",
        {"a": aman, "p": priya, "f": food, "t": travel},
    )
    assert_no_drift(conn)
    with (
        conn.cursor() as cursor,
        cursor.copy("copy expenses (user_id, category_id, amount, date) from stdin") as copy,
    ):
        for day in range(1, 29):
            copy.write_row((priya, rent, f"{day}.{day:02d}", f"2025-02-{day:02d}"))
    assert_no_drift(conn)
    # Updates that move amounts, categories and dates across keys, and one that moves nothing.
    conn.execute("update expenses set amount = amount * 3 where category_id = %s", [rent])
    conn.execute("update expenses set category_id = %s where amount = 2", [travel])
    conn.execute("update expenses set date = date + 1 where date = '2024-12-31'")
    conn.execute("update expenses set note = 'checked'")
    assert_no_drift(conn)
    conn.execute("delete from expenses where date between '2025-02-10' and '2025-02-20'")
    assert_no_drift(conn)
    # A category emptied by moving its expenses, then deleted; a user deleted with cascade.
    conn.execute("update expenses set category_id = %s where category_id = %s", [food, rent])
    conn.execute("delete from categories where id = %s", [rent])
    conn.execute("delete from users where id = %s", [priya])
    assert_no_drift(conn)
    conn.execute("truncate expenses")
    assert recorded(conn) == {}
    conn.execute(insert, [aman, food, Decimal("5"), "2025-05-05"])
    assert_no_drift(conn)


def test_spending_totals_concurrent_writers_never_drift_or_deadlock(db_url, conn, people):
    """Six sessions insert, move and delete on the same few keys; totals stay exact.

    Each statement takes its keys' row locks in sorted order, so single statements never
    deadlock on them; a transaction of several statements only touches keys its first took.
    """
    (aman, priya), (food, travel, rent) = people
    for user in (aman, priya):
        for category in (food, travel):
            conn.execute(
                "insert into budgets (user_id, category_id, month, amount)"
                " values (%s, %s, '2025-05-01', 200)",
                [user, category],
            )
    barrier = threading.Barrier(6)
    errors = []

    def worker(seed):
        rng = random.Random(seed)
        keys = [(user, category) for user in (aman, priya) for category in (food, travel, rent)]
        try:
            with psycopg.connect(db_url, autocommit=True) as session:
                barrier.wait()
                for _ in range(30):
                    action = rng.random()
                    if action < 0.5:  # one statement over several keys, in random order
                        picked = rng.sample(keys, 3)
                        session.execute(
                            "insert into expenses (user_id, category_id, amount, date)"
                            " select * from unnest(%s::bigint[], %s::bigint[], %s::numeric[],"
                            " %s::date[])",
                            [
                                [user for user, _ in picked],
                                [category for _, category in picked],
                                [rng.randint(1, 40) for _ in picked],
                                [rng.choice(["2025-05-02", "2025-06-03"]) for _ in picked],
                            ],
                        )
                    elif action < 0.7:  # moves one expense to another key (and raises it)
                        session.execute(
                            "update expenses set category_id = %s, amount = amount + 1"
                            " where id = (select id from expenses order by random() limit 1)",
                            [rng.choice([food, travel, rent])],
                        )
                    elif action < 0.85:
                        session.execute(
                            "delete from expenses where id ="
                            " (select id from expenses order by random() limit 1)"
                        )
                    else:  # lower a user's budgets and spend there, in one transaction
                        user = rng.choice([aman, priya])
                        with session.transaction():
                            session.execute(
                                "update budgets set amount = amount - 5 where user_id = %s",
                                [user],
                            )
                            session.execute(
                                "insert into expenses (user_id, category_id, amount, date)"
                                " values (%s, %s, 3, '2025-05-09')",
                                [user, rng.choice([food, travel])],
                            )
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert_no_drift(conn)
    # Every key that ended over its budget crossed it at some point, so it has an alert.
    unalerted = conn.execute(
        """
        select budgets.user_id, budgets.category_id
        from budgets
        inner join budget_spending as totals
            on totals.user_id = budgets.user_id
            and totals.category_id = budgets.category_id
            and totals.month = budgets.month
        where totals.spent > budgets.amount
            and not exists (
                select
                from alerts
                where alerts.user_id = budgets.user_id
                    and alerts.category_id = budgets.category_id
                    and alerts.month = totals.month
            )
        """
    ).fetchall()
    assert unalerted == []


def test_spending_totals_are_backfilled_from_existing_expenses(fresh_database, tmp_path):
    before = tmp_path / "migrations"
    shutil.copytree(config.MIGRATIONS_DIR, before)
    for path in before.glob("V*.sql"):
        if int(path.name[1:4]) >= 10:
            path.unlink()
    for path in before.glob("R__*.sql"):  # current definitions, for the newest schema only
        path.unlink()
    url = fresh_database()
    # No seeds: database/seeds fit the newest schema (budgets.month a date since V015).
    initialize_database(url, seed=False, migrations_dir=before)
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("select to_regclass('budget_spending')").fetchone()[0] is None
        conn.execute("insert into users (id, name, email) values (1, 'A', 'a@example.com')")
        conn.execute("insert into categories (id, name) values (1, 'Food'), (2, 'Travel')")
        conn.execute(
            "insert into budgets (user_id, category_id, year, month, amount)"
            " values (1, 1, 2025, 1, 100)"
        )
        conn.execute(
            "insert into expenses (user_id, category_id, amount, date)"
            " select 1, 1, 0.01 * n, date '2024-12-01' + n from generate_series(1, 90) as n"
        )
    initialize_database(url, seed=False)
    with psycopg.connect(url, autocommit=True) as conn:
        assert len(recorded(conn)) > 3
        assert_no_drift(conn)
        # And from then on the triggers keep it.
        conn.execute(
            "insert into expenses (user_id, category_id, amount, date)"
            " values (1, 2, 7, '2025-01-31')"
        )
        assert_no_drift(conn)


def test_spending_totals_and_alerts_work_for_a_role_without_rights_on_them(conn, people):
    """An API role may write expenses and budgets; the triggers still keep totals and alerts."""
    (aman, _), (food, _, _) = people
    role = f"tracker_t_role_{uuid.uuid4().hex[:8]}"
    identifier = sql.Identifier(role)
    conn.execute(sql.SQL("create role {} nologin").format(identifier))
    try:
        conn.execute(
            sql.SQL(
                "grant select, insert, update, delete on expenses, budgets to {0};"
                " grant select on users, categories to {0};"
                " grant usage on all sequences in schema public to {0}"
            ).format(identifier)
        )
        conn.execute(sql.SQL("set role {}").format(identifier))
        conn.execute(
            "insert into budgets (user_id, category_id, month, amount)"
            " values (%s, %s, '2025-05-01', 100)",
            [aman, food],
        )
        conn.execute(
            "insert into expenses (user_id, category_id, amount, date)"
            " values (%s, %s, 150, '2025-05-05')",
            [aman, food],
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select * from alerts")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "select budget_alerts_fire(array[1]::bigint[], array[1]::bigint[],"
                " array['2025-05-01']::date[], array[1]::numeric[], null)"
            )
        conn.execute("reset role")
        assert conn.execute("select message from alerts").fetchall() == [
            ("Budget exceeded for Food for May 2025. Spent: 150.00 / 100.00",)
        ]
        assert_no_drift(conn)
    finally:
        conn.execute("reset role")
        conn.execute(sql.SQL("drop owned by {}").format(identifier))
        conn.execute(sql.SQL("drop role {}").format(identifier))
