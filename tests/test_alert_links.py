"""Alerts' links to their budget, category and user, kept by triggers instead of foreign keys
(V016, V017).

budgets_unlink_alerts (R__budget_alerts.sql) and categories_unlink_alerts (R__categories.sql)
set an alert's budget_id / category_id to null when what it points at is deleted, as "on
delete set null" did; users_delete_alerts (R__users.sql) deletes a deleted user's alerts, as
"on delete cascade" did; each empties alerts when its table is truncated, as the foreign
keys' cascade did. These tests check that from plain SQL, in races with the alert trigger,
from a REPEATABLE READ deleter, as the API's role, and that the alerts mart's data tests
catch a link left dangling.
"""

import time
from decimal import Decimal

import psycopg
import pytest
from api_support import new_user
from test_check import has_row
from test_trigger import add_budget, run_in_thread, session_at, spend, wait_for_lock_waiters

from tracker.api.context import user_session
from tracker.everyday.category_delete import delete_category
from tracker.plumbing import db as tracker_db


def links(conn):
    """(user_id, budget_id, category_id) of every alert, oldest first."""
    return conn.execute("select user_id, budget_id, category_id from alerts order by id").fetchall()


def dangling(conn):
    """Alerts whose budget_id, category_id or user_id points at nothing."""
    return conn.execute(
        "select id, budget_id, category_id from alerts"
        " where (budget_id is not null and budget_id not in (select id from budgets))"
        " or (category_id is not null and category_id not in (select id from categories))"
        " or user_id not in (select id from users)"
    ).fetchall()


def spent(conn, user, category, month="2025-05-01"):
    return conn.execute(
        "select spent from budget_spending where user_id = %s and category_id = %s and month = %s",
        [user, category, month],
    ).fetchone()[0]


def add_transfer(conn, user):
    """A transfer between the user's first two budgets (both must exist)."""
    conn.execute(
        "insert into budget_transfers (user_id, from_budget_id, to_budget_id, amount, month)"
        " select user_id, min(id), max(id), 1, '2025-05-01' from budgets where user_id = %s"
        " group by user_id",
        [user],
    )
    assert conn.execute("select count(*) from budget_transfers").fetchone()[0] == 1


def counts(conn):
    tables = ["categories", "budgets", "expenses", "budget_transfers", "budget_spending", "users"]
    return {table: conn.execute(f"select count(*) from {table}").fetchone()[0] for table in tables}


def alert_each(conn, world):
    """A budget of 100 and an expense of 150, so one alert, for Aman's Food, Aman's Travel and
    Priya's Food; the three budget ids, in that order."""
    u, other, food, travel = world["user"], world["other_user"], world["food"], world["travel"]
    keys = ((u, food), (u, travel), (other, food))
    budgets = [add_budget(conn, user, category, "100") for user, category in keys]
    for user, category in keys:
        spend(conn, user, category, "150")
    return budgets


# --- deletes and truncates by plain SQL -----------------------------------------------------


def test_delete_budget_keeps_its_alerts_unlinked_and_leaves_other_links(conn, world):
    u, other, food, travel = world["user"], world["other_user"], world["food"], world["travel"]
    food_budget, travel_budget, other_budget = alert_each(conn, world)
    spend(conn, u, food, "10", "2025-05-11")  # already over: no second alert
    assert links(conn) == [
        (u, food_budget, food),
        (u, travel_budget, travel),
        (other, other_budget, food),
    ]
    conn.execute("delete from budgets where id = %s", [food_budget])
    assert links(conn) == [(u, None, food), (u, travel_budget, travel), (other, other_budget, food)]
    assert dangling(conn) == []
    # The alert keeps what it recorded; only the link went.
    assert conn.execute(
        "select spent, budget_amount from alerts where user_id = %s and category_id = %s",
        [u, food],
    ).fetchall() == [(Decimal("150.00"), Decimal("100.00"))]


def test_delete_several_budgets_in_one_statement_unlinks_each(conn, world):
    u, other, food, travel = world["user"], world["other_user"], world["food"], world["travel"]
    *_, other_budget = alert_each(conn, world)
    conn.execute("delete from budgets where user_id = %s", [u])
    assert links(conn) == [(u, None, food), (u, None, travel), (other, other_budget, food)]


def test_truncate_budgets_cascade_empties_alerts_as_the_foreign_key_did(conn, world):
    alert_each(conn, world)
    add_transfer(conn, world["user"])
    assert all(budget is not None for _, budget, _ in links(conn))
    conn.execute("truncate budgets cascade")
    assert links(conn) == []
    # The cascade takes the transfers (they reference budgets), not expenses or totals.
    assert counts(conn) == {
        "categories": 2,
        "budgets": 0,
        "expenses": 3,
        "budget_transfers": 0,
        "budget_spending": 3,
        "users": 2,
    }


def test_delete_category_deletes_its_budgets_and_unlinks_its_alerts(conn, world):
    """A category whose expenses were deleted but which still has alerts and budgets."""
    u, other, food, travel = world["user"], world["other_user"], world["food"], world["travel"]
    _, travel_budget, other_budget = alert_each(conn, world)
    add_budget(conn, u, food, "100", month="2025-06-01")  # no alert for June
    conn.execute("delete from expenses where category_id = %s", [food])
    conn.execute("delete from categories where id = %s", [food])
    assert conn.execute("select id from budgets").fetchall() == [(travel_budget,)]
    assert links(conn) == [(u, None, None), (u, travel_budget, travel), (other, None, None)]
    assert dangling(conn) == []
    assert other_budget not in {budget for _, budget, _ in links(conn)}


def test_truncate_categories_cascade_empties_alerts_as_the_foreign_key_did(conn, world):
    alert_each(conn, world)
    add_transfer(conn, world["user"])
    conn.execute("truncate categories cascade")
    # The cascade empties what references categories (budgets, expenses) and what
    # references those (budget_transfers); the expense truncate trigger empties the totals.
    # Alerts have no foreign key to either since V016; their truncate triggers empty them.
    assert counts(conn) == {
        "categories": 0,
        "budgets": 0,
        "expenses": 0,
        "budget_transfers": 0,
        "budget_spending": 0,
        "users": 2,
    }
    assert links(conn) == []


def test_delete_user_deletes_their_alerts_and_no_one_elses(conn, world):
    u, other, food = world["user"], world["other_user"], world["food"]
    *_, other_budget = alert_each(conn, world)
    assert len(links(conn)) == 3
    conn.execute("delete from users where id = %s", [u])
    assert links(conn) == [(other, other_budget, food)]
    assert dangling(conn) == []
    # The user's expenses and budgets went by their foreign keys' cascade, as before.
    assert conn.execute(
        "select (select count(*) from expenses where user_id = %(u)s)"
        " + (select count(*) from budgets where user_id = %(u)s)",
        {"u": u},
    ).fetchone() == (0,)


def test_truncate_users_cascade_empties_alerts_as_the_foreign_key_did(conn, world):
    u, other, food = world["user"], world["other_user"], world["food"]
    for user in (u, other):
        add_budget(conn, user, food, "100")
        spend(conn, user, food, "150")
    assert len(links(conn)) == 2
    conn.execute("truncate users cascade")
    assert links(conn) == []
    assert counts(conn)["users"] == 0


# --- races with the alert trigger ----------------------------------------------------------


def test_budget_delete_waits_for_an_uncommitted_alert_then_unlinks_it(db_url, conn, world):
    """Alert writer first: the delete waits on the key's totals row, then sees the alert."""
    u, food = world["user"], world["food"]
    budget = add_budget(conn, u, food, "1000")
    spend(conn, u, food, "900")
    with psycopg.connect(db_url) as writer, psycopg.connect(db_url) as deleter:
        spend(writer, u, food, "200")  # crosses: alert written, not committed
        thread, errors = run_in_thread(
            lambda: deleter.execute("delete from budgets where id = %s", [budget])
        )
        wait_for_lock_waiters(conn, 1)
        assert links(conn) == []
        writer.commit()
        thread.join(10)
        assert not thread.is_alive() and errors == []
        deleter.commit()
    assert conn.execute("select count(*) from budgets").fetchone()[0] == 0
    assert links(conn) == [(u, None, food)]
    assert dangling(conn) == []


def test_alert_writer_waits_for_an_uncommitted_budget_delete_then_fires_nothing(
    db_url, conn, world
):
    """Budget delete first: the crossing expense waits, then finds no budget."""
    u, food = world["user"], world["food"]
    budget = add_budget(conn, u, food, "1000")
    spend(conn, u, food, "900")
    with psycopg.connect(db_url) as writer, psycopg.connect(db_url) as deleter:
        deleter.execute("delete from budgets where id = %s", [budget])
        thread, errors = run_in_thread(lambda: spend(writer, u, food, "200"))
        wait_for_lock_waiters(conn, 1)
        deleter.commit()
        thread.join(10)
        assert not thread.is_alive() and errors == []
        writer.commit()
    assert conn.execute("select count(*) from budgets").fetchone()[0] == 0
    assert links(conn) == []
    assert spent(conn, u, food) == Decimal("1100.00")


def waiting_or_done(conn, thread, timeout=10.0):
    """Block until the thread has finished or some session waits on a lock."""
    deadline = time.monotonic() + timeout
    while thread.is_alive() and time.monotonic() < deadline:
        waiting = conn.execute(
            "select count(*) from pg_stat_activity where datname = current_database()"
            " and wait_event_type = 'Lock'"
        ).fetchone()[0]
        if waiting:
            return
        time.sleep(0.01)


def test_budget_moved_then_deleted_while_an_alert_for_its_old_key_is_uncommitted(
    db_url, conn, world
):
    """A budget moved to June, then deleted, while an alert for its old month (May) is
    uncommitted: the move locks May's total too, so the delete waits and unlinks the alert."""
    u, food = world["user"], world["food"]
    budget = add_budget(conn, u, food, "1000")
    spend(conn, u, food, "900")
    with psycopg.connect(db_url) as writer, psycopg.connect(db_url) as deleter:
        spend(writer, u, food, "200")  # crosses May: alert linked to the budget, uncommitted

        def move_then_delete():
            deleter.execute("update budgets set month = '2025-06-01' where id = %s", [budget])
            deleter.execute("delete from budgets where id = %s", [budget])

        thread, errors = run_in_thread(move_then_delete)
        waiting_or_done(conn, thread)
        writer.commit()
        thread.join(10)
        assert not thread.is_alive() and errors == []
        deleter.commit()
    assert conn.execute("select count(*) from budgets").fetchone()[0] == 0
    assert dangling(conn) == []
    assert links(conn) == [(u, None, food)]


@pytest.mark.parametrize("level", ["repeatable read", "serializable"])
def test_budget_delete_after_a_snapshot_older_than_an_alert_fails_to_serialize(
    db_url, conn, world, level
):
    """The deleter's snapshot cannot see the alert it would have to unlink: it must fail."""
    u, food = world["user"], world["food"]
    budget = add_budget(conn, u, food, "1000")
    spend(conn, u, food, "900")
    with session_at(db_url, level) as deleter:
        deleter.execute("select count(*) from budgets")  # the snapshot
        spend(conn, u, food, "200")  # crosses and commits (conn is autocommit)
        assert links(conn) == [(u, budget, food)]
        with pytest.raises(psycopg.errors.SerializationFailure):
            deleter.execute("delete from budgets where id = %s", [budget])
        deleter.rollback()
        assert links(conn) == [(u, budget, food)]
        assert conn.execute("select id from budgets").fetchall() == [(budget,)]
        # The retry, with a new snapshot, succeeds and unlinks the alert.
        deleter.execute("delete from budgets where id = %s", [budget])
        deleter.commit()
    assert links(conn) == [(u, None, food)]


@pytest.mark.parametrize("write", ["insert", "update"])
def test_user_delete_waits_for_an_uncommitted_alert_then_deletes_it(db_url, conn, world, write):
    """Alert writer first. An expense insert holds a key-share lock on the users row (its
    foreign key check), which the delete waits for; an update of an amount locks only the
    expense row, which the delete's cascade waits for. Either way the alert is gone after."""
    u, other, food = world["user"], world["other_user"], world["food"]
    add_budget(conn, u, food, "1000")
    expense = spend(conn, u, food, "900")
    other_budget = add_budget(conn, other, food, "100")
    spend(conn, other, food, "150")
    with psycopg.connect(db_url) as writer, psycopg.connect(db_url) as deleter:
        if write == "insert":
            spend(writer, u, food, "200")
        else:
            writer.execute("update expenses set amount = 1100 where id = %s", [expense])
        assert len(links(writer)) == 2  # the crossing fired, uncommitted
        thread, errors = run_in_thread(
            lambda: deleter.execute("delete from users where id = %s", [u])
        )
        wait_for_lock_waiters(conn, 1)
        writer.commit()
        thread.join(10)
        assert not thread.is_alive() and errors == []
        deleter.commit()
    assert links(conn) == [(other, other_budget, food)]
    assert dangling(conn) == []


@pytest.mark.parametrize("write", ["insert", "update"])
def test_alert_writer_waits_for_an_uncommitted_user_delete_then_writes_nothing(
    db_url, conn, world, write
):
    """User delete first: the insert waits on the users row and fails its foreign key; the
    update waits on the expense row, then finds it deleted. No alert is left behind."""
    u, food = world["user"], world["food"]
    add_budget(conn, u, food, "1000")
    expense = spend(conn, u, food, "900")
    with psycopg.connect(db_url) as writer, psycopg.connect(db_url) as deleter:
        deleter.execute("delete from users where id = %s", [u])
        if write == "insert":
            thread, errors = run_in_thread(lambda: spend(writer, u, food, "200"))
        else:
            thread, errors = run_in_thread(
                lambda: writer.execute("update expenses set amount = 1100 where id = %s", [expense])
            )
        wait_for_lock_waiters(conn, 1)
        deleter.commit()
        thread.join(10)
        assert not thread.is_alive()
        if write == "insert":
            assert [type(error) for error in errors] == [psycopg.errors.ForeignKeyViolation]
            writer.rollback()
        else:
            assert errors == []
            writer.commit()
    assert links(conn) == []
    assert conn.execute("select count(*) from users where id = %s", [u]).fetchone() == (0,)


@pytest.mark.parametrize("level", ["repeatable read", "serializable"])
def test_user_delete_after_a_snapshot_older_than_an_alert_fails_to_serialize(
    db_url, conn, world, level
):
    """The deleter's snapshot cannot see the alert it would have to delete: its cascade
    meets the newer expense and fails, and nothing is deleted."""
    u, food = world["user"], world["food"]
    add_budget(conn, u, food, "1000")
    spend(conn, u, food, "900")
    with session_at(db_url, level) as deleter:
        deleter.execute("select count(*) from users")  # the snapshot
        spend(conn, u, food, "200")  # crosses and commits (conn is autocommit)
        assert len(links(conn)) == 1
        with pytest.raises(psycopg.errors.SerializationFailure):
            deleter.execute("delete from users where id = %s", [u])
        deleter.rollback()
        assert len(links(conn)) == 1
        deleter.execute("delete from users where id = %s", [u])
        deleter.commit()
    assert links(conn) == []


# --- the API's role ------------------------------------------------------------------------


def test_api_role_may_only_acknowledge_its_alerts(db_url, conn, world):
    api_user = new_user(db_url)
    budget = add_budget(conn, api_user.id, world["food"], "100")
    spend(conn, api_user.id, world["food"], "150")
    alert = conn.execute("select id from alerts").fetchone()[0]
    insert = (
        "insert into alerts (user_id, budget_id, category_id, month, alert_type, message,"
        " spent, budget_amount) values (%s, %s, %s, '2025-05-01', 'BUDGET_EXCEEDED',"
        " 'made up', 200, 100)"
    )
    pool = tracker_db.pool(db_url, min_size=1, max_size=1, kwargs={"autocommit": True})
    try:
        with user_session(pool, api_user.token) as current:
            assert current.conn.execute("select current_user").fetchone()[0] == "tracker_api"
            with (
                pytest.raises(psycopg.errors.InsufficientPrivilege, match="alerts"),
                current.conn.transaction(),
            ):
                current.conn.execute(insert, [api_user.id, budget, world["food"]])
            with (
                pytest.raises(psycopg.errors.InsufficientPrivilege, match="alerts"),
                current.conn.transaction(),
            ):
                current.conn.execute("update alerts set budget_id = null where id = %s", [alert])
            with (
                pytest.raises(psycopg.errors.InsufficientPrivilege, match="alerts"),
                current.conn.transaction(),
            ):
                current.conn.execute(
                    "update alerts set category_id = %s where id = %s", [world["travel"], alert]
                )
            acknowledged = current.conn.execute(
                "update alerts set acknowledged_at = now() where id = %s returning id", [alert]
            ).fetchall()
            assert acknowledged == [(alert,)]
    finally:
        pool.close()
    rows = conn.execute(
        "select id, budget_id, category_id, acknowledged_at is not null from alerts"
    ).fetchall()
    assert rows == [(alert, budget, world["food"], True)]


# --- the alerts mart's data tests ----------------------------------------------------------


def test_data_tests_name_an_alert_whose_budget_link_dangles(seeded_url, run_cli):
    with psycopg.connect(seeded_url, autocommit=True) as conn:
        user, food = conn.execute(
            "select users.id, categories.id from users, categories"
            " where users.email = 'aman@example.com' and categories.name = 'Food'"
        ).fetchone()
        add_budget(conn, user, food, "10", month="2030-01-01")
        spend(conn, user, food, "20", "2030-01-05")
        alert, missing = conn.execute(
            "select max(id), (select max(id) + 1000 from budgets) from alerts"
        ).fetchone()
        assert run_cli(seeded_url, "run").exit_code == 0
        assert run_cli(seeded_url, "test").exit_code == 0
        # Only the owner can write this: no foreign key refuses it since V016.
        conn.execute("update alerts set budget_id = %s where id = %s", [missing, alert])
    # The marts are tables: built from the bad data, as `build` would.
    assert run_cli(seeded_url, "run").exit_code == 0
    result = run_cli(seeded_url, "test")
    assert result.exit_code == 1, result.output
    name = "relationships(alerts.budget_id -> fact_budgets.budget_id)"
    assert has_row(result.output, "FAIL", "test", name), result.output
    assert (
        f"FAIL test {name}: 1 failing row(s) (queries/marts/alerts.sql)\n    budget_id={missing}\n"
    ) in result.output
    # Nothing else notices: the alert still has its user, category and month.
    assert " 1 failed, 0 skipped" in result.output


def test_category_move_waits_for_an_alert_fired_by_an_amount_update_in_that_category(
    db_url, conn, world
):
    """`category delete Food --move-to Travel` while an uncommitted update of a Food expense's
    amount has fired an alert: the update locked no category row (its foreign keys did not
    change), so the move must wait on the spending total instead, then move the alert to
    Travel and to Travel's budget, not leave it unlinked."""
    u, food, travel = world["user"], world["food"], world["travel"]
    add_budget(conn, u, food, "1000")
    travel_budget = add_budget(conn, u, travel, "500")
    expense = spend(conn, u, food, "900")
    with psycopg.connect(db_url) as writer, psycopg.connect(db_url) as mover:
        writer.execute("update expenses set amount = 1100 where id = %s", [expense])
        assert len(links(writer)) == 1  # the crossing fired, uncommitted

        thread, errors = run_in_thread(lambda: delete_category(mover, "Food", "Travel"))
        wait_for_lock_waiters(conn, 1)
        writer.commit()
        thread.join(10)
        assert not thread.is_alive() and errors == []
        mover.commit()
    assert links(conn) == [(u, travel_budget, travel)]
    assert dangling(conn) == []
