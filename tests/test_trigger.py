"""The budget alert trigger (V002) on real PostgreSQL: every statement shape, and concurrency."""

import random
import threading
import time
from datetime import date
from decimal import Decimal

import psycopg
import pytest
from psycopg import sql

MAY = date(2025, 5, 1)


def add_budget(conn, user, category, amount, month="2025-05-01"):
    return conn.execute(
        "insert into budgets (user_id, category_id, month, amount)"
        " values (%s, %s, %s, %s) returning id",
        [user, category, month, Decimal(amount)],
    ).fetchone()[0]


def spend(conn, user, category, amount, day="2025-05-10"):
    return conn.execute(
        "insert into expenses (user_id, category_id, amount, date) values (%s, %s, %s, %s)"
        " returning id",
        [user, category, Decimal(amount), day],
    ).fetchone()[0]


def alerts(conn):
    """(budget_id, message, spent, budget_amount) of every alert, oldest first."""
    return conn.execute(
        "select budget_id, message, spent, budget_amount from alerts order by id"
    ).fetchall()


def messages(conn):
    return [row[1] for row in alerts(conn)]


def test_trigger_single_insert_crossing_fires_one_exact_alert(conn, world):
    budget = add_budget(conn, world["user"], world["food"], "8000")
    spend(conn, world["user"], world["food"], "8000.00", "2025-05-03")
    spend(conn, world["user"], world["food"], "1450.00", "2025-05-31")
    row = conn.execute(
        "select user_id, budget_id, category_id, month, alert_type, message, spent, budget_amount"
        " from alerts"
    ).fetchall()
    assert row == [
        (
            world["user"],
            budget,
            world["food"],
            MAY,
            "BUDGET_EXCEEDED",
            "Budget exceeded for Food for May 2025. Spent: 9450.00 / 8000.00",
            Decimal("9450.00"),
            Decimal("8000.00"),
        )
    ]


def test_trigger_later_inserts_after_crossing_do_not_fire(conn, world):
    add_budget(conn, world["user"], world["food"], "1000")
    spend(conn, world["user"], world["food"], "1200")
    spend(conn, world["user"], world["food"], "10")
    spend(conn, world["user"], world["food"], "500")
    assert messages(conn) == ["Budget exceeded for Food for May 2025. Spent: 1200.00 / 1000.00"]


def test_trigger_exactly_equal_is_not_exceeded(conn, world):
    add_budget(conn, world["user"], world["food"], "1000")
    spend(conn, world["user"], world["food"], "999.99")
    spend(conn, world["user"], world["food"], "0.01")
    assert alerts(conn) == []
    spend(conn, world["user"], world["food"], "0.01")
    assert messages(conn) == ["Budget exceeded for Food for May 2025. Spent: 1000.01 / 1000.00"]


def test_trigger_only_the_same_user_category_and_month_count(conn, world):
    add_budget(conn, world["user"], world["food"], "100")
    spend(conn, world["user"], world["food"], "90", "2025-04-30")
    spend(conn, world["user"], world["food"], "90", "2025-06-01")
    spend(conn, world["user"], world["travel"], "90", "2025-05-15")
    spend(conn, world["other_user"], world["food"], "90", "2025-05-15")
    spend(conn, world["user"], world["food"], "90", "2025-05-01")
    assert alerts(conn) == []
    spend(conn, world["user"], world["food"], "10.01", "2025-05-31")
    assert messages(conn) == ["Budget exceeded for Food for May 2025. Spent: 100.01 / 100.00"]


def test_trigger_no_budget_means_no_alert(conn, world):
    spend(conn, world["user"], world["food"], "999999")
    add_budget(conn, world["user"], world["travel"], "10")
    assert alerts(conn) == []


def test_trigger_multi_row_insert_crossing_fires_once(conn, world):
    add_budget(conn, world["user"], world["food"], "1000")
    conn.execute(
        "insert into expenses (user_id, category_id, amount, date) values"
        " (%(u)s, %(c)s, 600, '2025-05-01'), (%(u)s, %(c)s, 600, '2025-05-02'),"
        " (%(u)s, %(c)s, 600, '2025-05-03')",
        {"u": world["user"], "c": world["food"]},
    )
    assert messages(conn) == ["Budget exceeded for Food for May 2025. Spent: 1800.00 / 1000.00"]


def test_trigger_copy_crossing_fires_once_per_key(conn, world):
    u, other, food, travel = world["user"], world["other_user"], world["food"], world["travel"]
    add_budget(conn, u, food, "1000")
    add_budget(conn, u, travel, "500")
    add_budget(conn, other, food, "5000")  # not crossed
    add_budget(conn, u, food, "100", month="2025-06-01")  # crossed
    spend(conn, u, travel, "400")  # travel was already at 400 before the load
    rows = [(u, food, "300.00", f"2025-05-{day:02d}") for day in range(1, 11)]  # 3000
    rows += [(u, travel, "50.00", "2025-05-20"), (u, travel, "50.01", "2025-05-21")]  # 500.01
    rows += [(other, food, "10.00", "2025-05-05")] * 5
    rows += [(u, food, "60.00", "2025-06-30")] * 2
    rows += [(other, travel, "9999.00", "2025-05-05")]  # no budget
    random.Random(7).shuffle(rows)
    with (
        conn.cursor() as cursor,
        cursor.copy("copy expenses (user_id, category_id, amount, date) from stdin") as copy,
    ):
        for row in rows:
            copy.write_row(row)
    assert sorted(messages(conn)) == [
        "Budget exceeded for Food for June 2025. Spent: 120.00 / 100.00",
        "Budget exceeded for Food for May 2025. Spent: 3000.00 / 1000.00",
        "Budget exceeded for Travel for May 2025. Spent: 500.01 / 500.00",
    ]


def test_trigger_update_amount_crossing_fires(conn, world):
    add_budget(conn, world["user"], world["food"], "1000")
    expense = spend(conn, world["user"], world["food"], "900")
    conn.execute("update expenses set amount = 1000 where id = %s", [expense])
    assert alerts(conn) == []
    conn.execute("update expenses set amount = 1000.50 where id = %s", [expense])
    conn.execute("update expenses set amount = 2000 where id = %s", [expense])
    assert messages(conn) == ["Budget exceeded for Food for May 2025. Spent: 1000.50 / 1000.00"]


def test_trigger_update_category_evaluates_the_key_left_and_the_key_entered(conn, world):
    u, food, travel = world["user"], world["food"], world["travel"]
    add_budget(conn, u, food, "1000")
    add_budget(conn, u, travel, "200")
    spend(conn, u, food, "900")
    moving = spend(conn, u, food, "300")
    conn.execute("update expenses set category_id = %s where id = %s", [travel, moving])
    conn.execute("update expenses set category_id = %s where id = %s", [food, moving])
    assert messages(conn) == [
        "Budget exceeded for Food for May 2025. Spent: 1200.00 / 1000.00",
        "Budget exceeded for Travel for May 2025. Spent: 300.00 / 200.00",
        "Budget exceeded for Food for May 2025. Spent: 1200.00 / 1000.00",
    ]


def test_trigger_update_date_into_another_month_fires_there(conn, world):
    u, food = world["user"], world["food"]
    add_budget(conn, u, food, "100", month="2025-06-01")
    expense = spend(conn, u, food, "150", "2025-05-31")
    assert alerts(conn) == []
    conn.execute("update expenses set date = '2025-06-01' where id = %s", [expense])
    conn.execute("update expenses set note = 'taxi' where id = %s", [expense])
    assert messages(conn) == ["Budget exceeded for Food for June 2025. Spent: 150.00 / 100.00"]


def test_trigger_one_update_statement_over_many_rows_fires_once(conn, world):
    u, food = world["user"], world["food"]
    add_budget(conn, u, food, "1000")
    for day in range(1, 6):
        spend(conn, u, food, "150", f"2025-05-{day:02d}")
    conn.execute("update expenses set amount = amount * 2")
    assert messages(conn) == ["Budget exceeded for Food for May 2025. Spent: 1500.00 / 1000.00"]


def test_trigger_delete_never_fires_and_crossing_again_fires_again(conn, world):
    u, food = world["user"], world["food"]
    add_budget(conn, u, food, "1000")
    spend(conn, u, food, "700")
    big = spend(conn, u, food, "400")
    conn.execute("delete from expenses where id = %s", [big])
    assert len(alerts(conn)) == 1
    spend(conn, u, food, "300")
    spend(conn, u, food, "1")
    assert messages(conn) == [
        "Budget exceeded for Food for May 2025. Spent: 1100.00 / 1000.00",
        "Budget exceeded for Food for May 2025. Spent: 1001.00 / 1000.00",
    ]


def test_trigger_budget_inserted_below_spending_fires(conn, world):
    u, food, travel = world["user"], world["food"], world["travel"]
    spend(conn, u, food, "1500")
    spend(conn, u, travel, "100")
    budget = add_budget(conn, u, food, "1000")
    add_budget(conn, u, travel, "100")
    assert alerts(conn) == [
        (
            budget,
            "Budget exceeded for Food for May 2025. Spent: 1500.00 / 1000.00",
            Decimal("1500.00"),
            Decimal("1000.00"),
        )
    ]


def test_trigger_budget_lowered_fires_raised_does_not(conn, world):
    u, food = world["user"], world["food"]
    budget = add_budget(conn, u, food, "1000")
    spend(conn, u, food, "900")
    conn.execute("update budgets set amount = 900 where id = %s", [budget])
    assert alerts(conn) == []
    conn.execute("update budgets set amount = 800 where id = %s", [budget])
    conn.execute("update budgets set amount = 850 where id = %s", [budget])
    conn.execute("update budgets set amount = 700 where id = %s", [budget])
    conn.execute("update budgets set amount = 2000 where id = %s", [budget])
    conn.execute("update budgets set amount = 899.99 where id = %s", [budget])
    assert messages(conn) == [
        "Budget exceeded for Food for May 2025. Spent: 900.00 / 800.00",
        "Budget exceeded for Food for May 2025. Spent: 900.00 / 899.99",
    ]


def test_trigger_budget_upsert_lowering_fires_once(conn, world):
    u, food = world["user"], world["food"]
    add_budget(conn, u, food, "1000")
    spend(conn, u, food, "900")
    upsert = (
        "insert into budgets (user_id, category_id, month, amount)"
        " values (%s, %s, '2025-05-01', %s) on conflict (user_id, category_id, month)"
        " do update set amount = excluded.amount"
    )
    conn.execute(upsert, [u, food, Decimal("500")])
    conn.execute(upsert, [u, food, Decimal("400")])
    assert messages(conn) == ["Budget exceeded for Food for May 2025. Spent: 900.00 / 500.00"]


def test_trigger_budget_moved_to_another_month_is_a_new_budget_there(conn, world):
    u, food = world["user"], world["food"]
    budget = add_budget(conn, u, food, "100", month="2025-04-01")
    spend(conn, u, food, "150", "2025-05-05")
    conn.execute("update budgets set month = '2025-05-01' where id = %s", [budget])
    assert messages(conn) == ["Budget exceeded for Food for May 2025. Spent: 150.00 / 100.00"]


def test_trigger_spent_beyond_twelve_digits_keeps_two_decimals(conn, world):
    u, food = world["user"], world["food"]
    budget = add_budget(conn, u, food, "9999999999.99")
    spend(conn, u, food, "9999999999.99")
    spend(conn, u, food, "9999999999.99")
    assert alerts(conn) == [
        (
            budget,
            "Budget exceeded for Food for May 2025. Spent: 19999999999.98 / 9999999999.99",
            Decimal("19999999999.98"),
            Decimal("9999999999.99"),
        )
    ]


def test_trigger_alert_rolls_back_with_its_transaction(db_url, conn, world):
    add_budget(conn, world["user"], world["food"], "1000")
    with psycopg.connect(db_url) as session:
        spend(session, world["user"], world["food"], "600")
        spend(session, world["user"], world["food"], "600")
        assert len(alerts(session)) == 1
        session.rollback()
    assert alerts(conn) == []
    spend(conn, world["user"], world["food"], "1001")
    assert len(alerts(conn)) == 1


def wait_for_lock_waiters(conn, count, timeout=10.0):
    """Block until `count` sessions of this database wait on a lock (V010: a totals row)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = conn.execute(
            "select count(*) from pg_stat_activity where datname = current_database()"
            " and wait_event_type = 'Lock'"
        ).fetchone()[0]
        if waiting >= count:
            return
        time.sleep(0.01)
    raise AssertionError(f"expected {count} session(s) waiting on the alert lock")


def run_in_thread(target):
    errors = []

    def wrapped():
        try:
            target()
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=wrapped)
    thread.start()
    return thread, errors


@pytest.mark.parametrize("first", ["a", "b"])
def test_trigger_concurrent_inserts_fire_exactly_once(db_url, conn, world, first):
    """Two open transactions each add budget/2 + 1: whichever commits last fires, once."""
    u, food = world["user"], world["food"]
    add_budget(conn, u, food, "1000")
    with psycopg.connect(db_url) as a, psycopg.connect(db_url) as b:
        # A different DateStyle must not change which lock bucket the key maps to.
        b.execute("set datestyle = 'SQL, DMY'")
        b.commit()
        leader, follower = (a, b) if first == "a" else (b, a)
        spend(leader, u, food, "501", "2025-05-01")
        thread, errors = run_in_thread(lambda: spend(follower, u, food, "501", "2025-05-02"))
        wait_for_lock_waiters(conn, 1)
        assert alerts(conn) == []
        leader.commit()
        thread.join(10)
        assert not thread.is_alive() and errors == []
        follower.commit()
    assert messages(conn) == ["Budget exceeded for Food for May 2025. Spent: 1002.00 / 1000.00"]


def test_trigger_concurrent_insert_and_rollback_fires_nothing(db_url, conn, world):
    u, food = world["user"], world["food"]
    add_budget(conn, u, food, "1000")
    with psycopg.connect(db_url) as a, psycopg.connect(db_url) as b:
        spend(a, u, food, "501")
        thread, errors = run_in_thread(lambda: spend(b, u, food, "501"))
        wait_for_lock_waiters(conn, 1)
        a.rollback()
        thread.join(10)
        assert not thread.is_alive() and errors == []
        b.commit()
    assert alerts(conn) == []


@pytest.mark.parametrize("first", ["expense", "budget"])
def test_trigger_concurrent_budget_and_expense_fire_exactly_once(db_url, conn, world, first):
    u, food = world["user"], world["food"]
    spend(conn, u, food, "700")
    with psycopg.connect(db_url) as expense_session, psycopg.connect(db_url) as budget_session:
        steps = {
            "expense": (expense_session, lambda: spend(expense_session, u, food, "500")),
            "budget": (budget_session, lambda: add_budget(budget_session, u, food, "1000")),
        }
        second = "budget" if first == "expense" else "expense"
        steps[first][1]()
        thread, errors = run_in_thread(steps[second][1])
        wait_for_lock_waiters(conn, 1)
        steps[first][0].commit()
        thread.join(10)
        assert not thread.is_alive() and errors == []
        steps[second][0].commit()
    assert messages(conn) == ["Budget exceeded for Food for May 2025. Spent: 1200.00 / 1000.00"]


def test_trigger_stress_many_concurrent_small_inserts_fire_once_per_key(db_url, conn, world):
    """Serially, inserts only ever cross a budget once, so concurrently they must too."""
    u, food, travel = world["user"], world["food"], world["travel"]
    budgets = {food: Decimal("300"), travel: Decimal("320")}
    for category, amount in budgets.items():
        add_budget(conn, u, category, amount)
    barrier = threading.Barrier(6)

    def worker(seed):
        rng = random.Random(seed)
        with psycopg.connect(db_url, autocommit=True) as session:
            barrier.wait()
            for _ in range(25):
                if rng.random() < 0.3:  # one statement touching both keys
                    session.execute(
                        "insert into expenses (user_id, category_id, amount, date) values"
                        " (%s, %s, %s, '2025-05-07'), (%s, %s, %s, '2025-05-08')",
                        [u, food, rng.randint(1, 9), u, travel, rng.randint(1, 9)],
                    )
                else:
                    spend(session, u, rng.choice([food, travel]), rng.randint(1, 9))

    started = [run_in_thread(lambda seed=seed: worker(seed)) for seed in range(6)]
    for thread, errors in started:
        thread.join(30)
        assert not thread.is_alive() and errors == []
    fired = conn.execute(
        "select category_id, count(*), min(spent), max(spent), min(budget_amount)"
        " from alerts group by category_id"
    ).fetchall()
    totals = dict(
        conn.execute(
            "select category_id, sum(amount) from expenses group by category_id"
        ).fetchall()
    )
    assert (
        {category for category, *_ in fired}
        == {category for category, budget in budgets.items() if totals[category] > budget}
        == {food, travel}
    )
    for category, count, low, high, budget_amount in fired:
        # one alert, fired by the statement that crossed (at most 9 over the budget)
        assert count == 1
        assert budget_amount == budgets[category]
        assert budget_amount < low == high <= budget_amount + 9


def test_trigger_alert_check_is_replanned_on_every_call(conn):
    # A cached generic plan from small tables made a later bulk load in the same session
    # scan the whole table once per key (V005); the setting must stay on the function.
    config = conn.execute(
        "select proconfig from pg_proc where proname = 'budget_alerts_fire'"
    ).fetchone()[0]
    assert "plan_cache_mode=force_custom_plan" in config


# V006: the lock-then-read guarantee needs READ COMMITTED's fresh snapshot per statement.
LEVELS = {
    "read uncommitted": psycopg.IsolationLevel.READ_UNCOMMITTED,
    "read committed": psycopg.IsolationLevel.READ_COMMITTED,
    "repeatable read": psycopg.IsolationLevel.REPEATABLE_READ,
    "serializable": psycopg.IsolationLevel.SERIALIZABLE,
}


def session_at(db_url, level):
    session = psycopg.connect(db_url)
    session.isolation_level = LEVELS[level]
    return session


def refusal(level):
    return f"budget alerts need READ COMMITTED isolation, not {level.upper()}"


def expense_count(conn):
    return conn.execute("select count(*) from expenses").fetchone()[0]


@pytest.mark.parametrize("level", ["repeatable read", "serializable"])
def test_trigger_crossing_insert_outside_read_committed_is_refused_and_writes_nothing(
    db_url, conn, world, level
):
    add_budget(conn, world["user"], world["food"], "1000")
    spend(conn, world["user"], world["food"], "900")
    with session_at(db_url, level) as session:
        with pytest.raises(psycopg.errors.FeatureNotSupported) as refused:
            spend(session, world["user"], world["food"], "200")
        session.rollback()
    # A retry loop keyed on 40001 must not spin on a statement that can never succeed here.
    assert refused.value.sqlstate == "0A000"
    assert refused.value.diag.message_primary == refusal(level)
    assert refused.value.diag.message_hint == (
        "Run the statement in a READ COMMITTED transaction (the default)."
    )
    assert expense_count(conn) == 1
    assert alerts(conn) == []


@pytest.mark.parametrize("level", ["read committed", "read uncommitted"])
def test_trigger_read_committed_transaction_fires_exactly_once(db_url, conn, world, level):
    add_budget(conn, world["user"], world["food"], "1000")
    with session_at(db_url, level) as session:
        spend(session, world["user"], world["food"], "600")
        spend(session, world["user"], world["food"], "600")
        spend(session, world["user"], world["food"], "600")
        session.commit()
    assert messages(conn) == ["Budget exceeded for Food for May 2025. Spent: 1200.00 / 1000.00"]


@pytest.mark.parametrize("level", ["repeatable read", "serializable"])
def test_trigger_any_increase_or_budget_change_outside_read_committed_is_refused(
    db_url, conn, world, level
):
    """Even with no budget on the key: a budget committed concurrently would be missed."""
    u, food, travel = world["user"], world["food"], world["travel"]
    add_budget(conn, u, food, "1000")
    statements = [
        lambda session: spend(session, u, travel, "5"),  # no budget on this key
        lambda session: spend(session, u, food, "5"),  # far below the budget
        lambda session: add_budget(session, u, travel, "100"),
        lambda session: session.execute("update budgets set amount = 2000"),
    ]
    with session_at(db_url, level) as session:
        for statement in statements:
            with pytest.raises(psycopg.errors.FeatureNotSupported, match=refusal(level)):
                statement(session)
            session.rollback()
    assert expense_count(conn) == 0
    assert conn.execute("select count(*), sum(amount) from budgets").fetchone() == (
        1,
        Decimal("1000.00"),
    )


@pytest.mark.parametrize("level", ["repeatable read", "serializable"])
def test_trigger_statements_that_only_lower_spending_run_at_any_level(db_url, conn, world, level):
    """No key to judge, so no check: read-only snapshots and clean-ups keep working."""
    u, food = world["user"], world["food"]
    add_budget(conn, u, food, "1000")
    spend(conn, u, food, "1200")
    kept = spend(conn, u, food, "300")
    with session_at(db_url, level) as session:
        session.execute("update expenses set note = 'checked'")
        session.execute("update expenses set amount = amount - 100")
        session.execute("delete from expenses where id <> %s", [kept])
        assert session.execute("select count(*) from alerts").fetchone()[0] == 1
        session.commit()
    assert conn.execute("select amount, note from expenses").fetchall() == [
        (Decimal("200.00"), "checked")
    ]
    assert messages(conn) == ["Budget exceeded for Food for May 2025. Spent: 1200.00 / 1000.00"]


@pytest.mark.parametrize("first_level", ["read committed", "serializable"])
def test_trigger_serializable_writer_never_loses_a_concurrent_alert(
    db_url, conn, world, first_level
):
    """Both snapshots taken, then each inserts budget/2 + 1 and commits in turn.

    Measured before V006 (which refuses serializable writers): two serializable sessions ended
    with one serialization failure, but a serializable session after a read-committed one
    (the default, used by the CLI) committed both with spent 1002 and no alert.
    """
    u, food = world["user"], world["food"]
    add_budget(conn, u, food, "1000")
    outcomes = []
    with session_at(db_url, first_level) as first, session_at(db_url, "serializable") as second:
        first.execute("select 1")
        second.execute("select 1")
        for session, day in ((first, "2025-05-01"), (second, "2025-05-02")):
            try:
                spend(session, u, food, "501", day)
                session.commit()
                outcomes.append("committed")
            except (psycopg.errors.SerializationFailure, psycopg.errors.FeatureNotSupported) as exc:
                session.rollback()
                outcomes.append(type(exc).__name__)
    spent = conn.execute("select coalesce(sum(amount), 0) from expenses").fetchone()[0]
    assert spent == Decimal("501") * outcomes.count("committed")
    assert len(alerts(conn)) == (1 if spent > 1000 else 0)
    assert outcomes.count("committed") <= 1 and "FeatureNotSupported" in outcomes


def test_trigger_database_defaulting_to_repeatable_read_refuses_cli_expense(
    db_url, conn, world, run_cli
):
    add_budget(conn, world["user"], world["food"], "1000")
    conn.execute(
        sql.SQL("alter database {} set default_transaction_isolation = 'repeatable read'").format(
            sql.Identifier(conn.info.dbname)
        )
    )
    result = run_cli(
        db_url,
        "expense",
        "add",
        "--user",
        "aman@example.com",
        "--category",
        "Food",
        "--amount",
        "1500",
        "--date",
        "2025-05-10",
    )
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        "Error: the database refused the command: budget alerts need READ COMMITTED isolation,"
        " not REPEATABLE READ. Run again with --debug for details.\n"
    )
    assert expense_count(conn) == 0
    assert alerts(conn) == []
