"""budget set / list / transfer through the CLI (the library, for concurrency) on PostgreSQL."""

import json
import random
import subprocess
import sys
import threading
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from everyday_support import assert_refused, query, scalar, snapshot

from tracker.errors import TrackerError
from tracker.everyday.budgets import transfer_budget
from tracker.plumbing import db

AMAN = "aman@example.com"
AMAN_ID = "(select id from users where email = 'aman@example.com')"
AMAN_TOTAL = f"select sum(amount) from budgets where user_id = {AMAN_ID}"


def budget_of(url, category, user=AMAN, month=date(2025, 5, 1)):
    rows = query(
        url,
        """
        select budgets.amount from budgets
        inner join users on users.id = budgets.user_id
        inner join categories on categories.id = budgets.category_id
        where users.email = %s and categories.name = %s and month = %s""",
        [user, category, month],
    )
    return rows[0][0] if rows else None


def test_budget_set_creates_then_changes(run_cli, seeded_url):
    created = run_cli(
        seeded_url,
        "budget",
        "set",
        "--user",
        AMAN,
        "--category",
        "Rent",
        "--month",
        "2025-06",
        "--amount",
        "15000",
    )
    assert created.exit_code == 0, created.output
    assert "created" in created.output
    assert budget_of(seeded_url, "Rent", month=date(2025, 6, 1)) == Decimal("15000.00")
    changed = run_cli(
        seeded_url,
        "budget",
        "set",
        "--user",
        AMAN,
        "--category",
        "Rent",
        "--month",
        "2025-06",
        "--amount",
        "0",
    )
    assert changed.exit_code == 0, changed.output
    assert "changed from 15000.00" in changed.output
    assert budget_of(seeded_url, "Rent", month=date(2025, 6, 1)) == Decimal("0.00")
    assert scalar(seeded_url, "select count(*) from budgets") == 5


def test_budget_set_below_spending_fires_alert(run_cli, seeded_url):
    # Shopping: 3200.00 spent of 5000.00.
    result = run_cli(
        seeded_url,
        "budget",
        "set",
        "--user",
        AMAN,
        "--category",
        "Shopping",
        "--month",
        "2025-05",
        "--amount",
        "3000",
    )
    assert result.exit_code == 0, result.output
    message = "Budget exceeded for Shopping for May 2025. Spent: 3200.00 / 3000.00"
    assert query(seeded_url, "select message from alerts") == [(message,)]
    assert message in result.output


@pytest.mark.parametrize(
    "option, value, fragment",
    [
        ("--amount", "-5", 'amount "-5" must be 0 or more'),
        ("--amount", "abc", 'amount "abc" is not a number'),
        ("--amount", "1.234", "more than 2 decimal places"),
        ("--amount", "NaN", 'amount "NaN"'),
        ("--amount", "Infinity", 'amount "Infinity"'),
        ("--amount", "1e9", 'amount "1e9"'),
        ("--amount", "10000000000", "too large"),
        ("--month", "2025-5", 'month "2025-5" is not a month'),
        ("--month", "2025-00", 'month "2025-00"'),
        ("--user", "nobody@example.com", 'user "nobody@example.com" does not exist'),
        ("--category", "Nope", 'category "Nope" does not exist'),
    ],
)
def test_budget_set_refuses_bad_input(run_cli, seeded_url, option, value, fragment):
    args = {"--user": AMAN, "--category": "Food", "--month": "2025-05", "--amount": "100"}
    args[option] = value
    before = snapshot(seeded_url)
    assert_refused(
        run_cli(seeded_url, "budget", "set", *[x for kv in args.items() for x in kv]), fragment
    )
    assert snapshot(seeded_url) == before


def test_budget_list_shows_spent_remaining_and_status(run_cli, seeded_url):
    # Food 1450/8000 under; make Transport exactly 80 % (near) and Shopping exactly 100 % (near).
    for category, amount in (("Transport", "187.50"), ("Shopping", "3200")):
        assert (
            run_cli(
                seeded_url,
                "budget",
                "set",
                "--user",
                AMAN,
                "--category",
                category,
                "--month",
                "2025-05",
                "--amount",
                amount,
            ).exit_code
            == 0
        )
    result = run_cli(
        seeded_url, "budget", "list", "--user", AMAN, "--month", "2025-05", "--format", "json"
    )
    assert result.exit_code == 0, result.output
    rows = {row["category"]: row for row in json.loads(result.stdout)}
    assert rows["Food"]["spent"] == "1450.00" and rows["Food"]["remaining"] == "6550.00"
    assert rows["Food"]["status"] == "under"
    assert rows["Transport"]["status"] == "near" and rows["Transport"]["percent_used"] == "80.0"
    assert rows["Shopping"]["status"] == "near" and rows["Shopping"]["remaining"] == "0.00"
    assert (
        run_cli(
            seeded_url,
            "expense",
            "add",
            "--user",
            AMAN,
            "--category",
            "Shopping",
            "--amount",
            "0.01",
            "--date",
            "2025-05-30",
        ).exit_code
        == 0
    )
    table = run_cli(seeded_url, "budget", "list", "--user", AMAN)
    assert table.exit_code == 0, table.output
    shopping = next(line for line in table.output.splitlines() if "Shopping" in line)
    assert shopping.split()[-1] == "over" and "-0.01" in shopping


def test_budget_list_matches_independent_sum(run_cli, seeded_url):
    rows = json.loads(
        run_cli(
            seeded_url, "budget", "list", "--user", "priya@example.com", "--format", "json"
        ).stdout
    )
    spent = scalar(
        seeded_url,
        """
        select sum(amount) from expenses
        where user_id = (select id from users where email = 'priya@example.com')""",
    )
    assert [(row["category"], row["spent"]) for row in rows] == [("Food", str(spent))]


def test_budget_list_refuses_bad_month(run_cli, seeded_url):
    assert_refused(
        run_cli(seeded_url, "budget", "list", "--user", AMAN, "--month", "05-2025"),
        'month "05-2025"',
    )


def transfer(run_cli, url, source, destination, amount, month="2025-05", user=AMAN):
    return run_cli(
        url,
        "budget",
        "transfer",
        "--user",
        user,
        "--from",
        source,
        "--to",
        destination,
        "--month",
        month,
        "--amount",
        amount,
    )


def test_budget_transfer_moves_amount_and_records_history(run_cli, seeded_url):
    result = transfer(run_cli, seeded_url, "Shopping", "Food", "1000")
    assert result.exit_code == 0, result.output
    assert "Shopping now 4000.00, Food now 9000.00" in result.output
    assert budget_of(seeded_url, "Shopping") == Decimal("4000.00")
    assert budget_of(seeded_url, "Food") == Decimal("9000.00")
    assert query(
        seeded_url,
        """
        select source.category_id = (select id from categories where name = 'Shopping'),
            destination.category_id = (select id from categories where name = 'Food'),
            budget_transfers.amount, budget_transfers.month::text
        from budget_transfers
        inner join budgets as source on source.id = budget_transfers.from_budget_id
        inner join budgets as destination on destination.id = budget_transfers.to_budget_id
        """,
    ) == [(True, True, Decimal("1000.00"), "2025-05-01")]


def test_budget_transfer_creates_missing_destination_and_says_so(run_cli, seeded_url):
    result = transfer(run_cli, seeded_url, "Food", "Entertainment", "500")
    assert result.exit_code == 0, result.output
    assert "Created the Entertainment budget for 2025-05 (there was none)" in result.output
    assert budget_of(seeded_url, "Entertainment") == Decimal("500.00")
    assert budget_of(seeded_url, "Food") == Decimal("7500.00")
    assert scalar(seeded_url, "select count(*) from alerts") == 0


def test_budget_transfer_lowering_below_spending_fires_alert(run_cli, seeded_url):
    # Shopping holds 5000.00 with 3200.00 spent: taking 2000 leaves 3000 < 3200.
    result = transfer(run_cli, seeded_url, "Shopping", "Food", "2000")
    assert result.exit_code == 0, result.output
    message = "Budget exceeded for Shopping for May 2025. Spent: 3200.00 / 3000.00"
    assert query(seeded_url, "select message from alerts") == [(message,)]
    assert f"Alert {scalar(seeded_url, 'select id from alerts')}: {message}" in result.output


def test_budget_transfer_whole_budget_leaves_zero(run_cli, seeded_url):
    assert transfer(run_cli, seeded_url, "Transport", "Food", "2000").exit_code == 0
    assert budget_of(seeded_url, "Transport") == Decimal("0.00")


@pytest.mark.parametrize(
    "source, destination, amount, fragment, code",
    [
        ("Transport", "Food", "2000.01", "holds only 2000.00, less than 2000.01", 1),
        ("Rent", "Food", "10", "has no Rent budget for 2025-05", 1),
        ("Food", "food", "10", 'both "Food"', 2),
        ("Food", "Nope", "10", 'category "Nope" does not exist', 2),
        ("Food", "Rent", "0", 'amount "0" must be more than 0', 2),
        ("Food", "Rent", "-5", 'amount "-5"', 2),
        ("Food", "Rent", "1.234", "more than 2 decimal places", 2),
        ("Food", "Rent", "1e3", 'amount "1e3"', 2),
    ],
)
def test_budget_transfer_refusals_change_nothing(
    run_cli, seeded_url, source, destination, amount, fragment, code
):
    before = snapshot(seeded_url)
    assert_refused(transfer(run_cli, seeded_url, source, destination, amount), fragment, code=code)
    assert snapshot(seeded_url) == before


def test_budget_transfer_failing_history_insert_changes_nothing(run_cli, seeded_url):
    # A real failure after both budgets were updated: the history row violates a constraint.
    with psycopg.connect(seeded_url, autocommit=True) as conn:
        conn.execute("alter table budget_transfers add constraint test_small check (amount < 100)")
    before = snapshot(seeded_url)
    result = transfer(run_cli, seeded_url, "Shopping", "Food", "1000")
    assert result.exit_code == 1
    assert "test_small" in result.stderr and "Traceback" not in result.output
    assert snapshot(seeded_url) == before
    # The same failure when the destination budget had to be created first.
    result = transfer(run_cli, seeded_url, "Shopping", "Rent", "1000")
    assert result.exit_code == 1
    assert snapshot(seeded_url) == before


def test_budget_transfer_destination_overflow_changes_nothing(run_cli, seeded_url):
    assert (
        run_cli(
            seeded_url,
            "budget",
            "set",
            "--user",
            AMAN,
            "--category",
            "Food",
            "--month",
            "2025-05",
            "--amount",
            "9999999999.99",
        ).exit_code
        == 0
    )
    before = snapshot(seeded_url)
    result = transfer(run_cli, seeded_url, "Shopping", "Food", "1")
    assert_refused(result, "Food budget for 2025-05 would exceed 9999999999.99", code=1)
    assert snapshot(seeded_url) == before


def test_budget_transfer_concurrent_transfers_keep_total_and_never_go_negative(seeded_url):
    categories = ["Food", "Transport", "Shopping"]
    total_before = scalar(seeded_url, AMAN_TOTAL)
    rng = random.Random(7)
    plan = []
    for _ in range(120):
        source, destination = rng.sample(categories, 2)
        plan.append((source, destination, Decimal(rng.choice(["250", "900", "1500", "3100"]))))
    done, refused, errors = [], [], []
    lock = threading.Lock()

    def worker(jobs, connection_pool):
        for source, destination, amount in jobs:
            with connection_pool.connection() as conn:
                try:
                    moved = transfer_budget(conn, AMAN, source, destination, "2025-05", amount)
                    with lock:
                        done.append(moved)
                except TrackerError as exc:
                    with lock:
                        refused.append(str(exc))
                except Exception as exc:
                    with lock:
                        errors.append(repr(exc))

    with db.pool(seeded_url, min_size=8, max_size=8) as connection_pool:
        threads = [
            threading.Thread(target=worker, args=(plan[i::8], connection_pool)) for i in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert errors == []
    assert len(done) + len(refused) == len(plan)
    assert done and refused, "the plan should both succeed and be refused"
    assert all("transfer refused" in message and "holds only" in message for message in refused)
    assert scalar(seeded_url, AMAN_TOTAL) == total_before
    assert scalar(seeded_url, "select min(amount) from budgets") >= 0
    assert scalar(seeded_url, "select count(*) from budget_transfers") == len(done)
    # Each budget ends at its start plus what the history says came in minus what went out.
    assert query(
        seeded_url,
        f"""
        select count(*) from budgets
        where budgets.amount <> (
            case budgets.category_id
                when (select id from categories where name = 'Food') then 8000
                when (select id from categories where name = 'Transport') then 2000
                when (select id from categories where name = 'Shopping') then 5000
                else budgets.amount
            end
            + coalesce((select sum(amount) from budget_transfers
                        where to_budget_id = budgets.id), 0)
            - coalesce((select sum(amount) from budget_transfers
                        where from_budget_id = budgets.id), 0)
        ) and budgets.user_id = {AMAN_ID}""",
    ) == [(0,)]


def test_budget_transfer_parallel_cli_processes_report_refusals(seeded_url):
    # Six processes each try to move 1500 out of Transport (2000): exactly one can succeed;
    # the others must say they were refused, and nothing may go below zero.
    cli_path = str(Path(__file__).resolve().parent.parent / "cli.py")
    command = [
        sys.executable,
        cli_path,
        "--database-url",
        seeded_url,
        "budget",
        "transfer",
        "--user",
        AMAN,
        "--from",
        "Transport",
        "--to",
        "Food",
        "--month",
        "2025-05",
        "--amount",
        "1500",
    ]
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    outcomes = [
        (process.wait(timeout=120), process.stdout.read(), process.stderr.read())
        for process in processes
    ]
    assert sorted(code for code, _, _ in outcomes) == [0, 1, 1, 1, 1, 1], outcomes
    for code, stdout, stderr in outcomes:
        if code:
            assert stderr.startswith(
                "Error: transfer refused: the Transport budget for 2025-05 "
                "holds only 500.00, less than 1500.00."
            ), stderr
        else:
            assert "Transport now 500.00, Food now 9500.00" in stdout
    assert budget_of(seeded_url, "Transport") == Decimal("500.00")
    assert budget_of(seeded_url, "Food") == Decimal("9500.00")
    assert scalar(seeded_url, "select count(*) from budget_transfers") == 1


def test_budget_transfer_concurrent_creation_of_destination_adds_up(seeded_url):
    # Entertainment has no budget: eight parallel transfers race to create it.
    results, errors = [], []

    def worker(connection_pool):
        with connection_pool.connection() as conn:
            try:
                results.append(
                    transfer_budget(conn, AMAN, "Food", "Entertainment", "2025-05", "100")
                )
            except Exception as exc:
                errors.append(repr(exc))

    with db.pool(seeded_url, min_size=8, max_size=8) as connection_pool:
        threads = [threading.Thread(target=worker, args=(connection_pool,)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert errors == []
    assert sum(result.created_destination for result in results) == 1
    assert budget_of(seeded_url, "Entertainment") == Decimal("800.00")
    assert budget_of(seeded_url, "Food") == Decimal("7200.00")
    assert scalar(seeded_url, "select count(distinct to_budget_id) from budget_transfers") == 1
    assert scalar(seeded_url, "select count(*) from budget_transfers") == 8


# (month, budget, spent) at the edges of the status rule: 0 of 0, spending on a 0 budget,
# 79.99 %, 80 %, 100 % and 100.01 % of the budget.
STATUS_EDGES = [
    ("2026-01", "0", None, "near"),
    ("2026-02", "0", "0.01", "over"),
    ("2026-03", "10000", "7999", "under"),
    ("2026-04", "10000", "8000", "near"),
    ("2026-05", "10000", "10000", "near"),
    ("2026-06", "10000", "10001", "over"),
]


def test_budget_list_status_agrees_with_budget_vs_actual_mart(run_cli, seeded_url):
    for month, budget, spent, _ in STATUS_EDGES:
        assert (
            run_cli(
                seeded_url,
                "budget",
                "set",
                "--user",
                AMAN,
                "--category",
                "Food",
                "--month",
                month,
                "--amount",
                budget,
            ).exit_code
            == 0
        )
        if spent is not None:
            assert (
                run_cli(
                    seeded_url,
                    "expense",
                    "add",
                    "--user",
                    AMAN,
                    "--category",
                    "Food",
                    "--amount",
                    spent,
                    "--date",
                    f"{month}-15",
                ).exit_code
                == 0
            )
    listed = run_cli(seeded_url, "budget", "list", "--user", AMAN, "--format", "json")
    assert listed.exit_code == 0, listed.output
    statuses = {row["id"]: row["status"] for row in json.loads(listed.stdout)}
    assert run_cli(seeded_url, "run").exit_code == 0
    mart = dict(
        query(
            seeded_url,
            f"""
        select budget_id, status from analytics.budget_vs_actual
        where user_id = {AMAN_ID}""",
        )
    )
    assert statuses == mart
    by_month = {
        row["month"]: row["status"]
        for row in json.loads(listed.stdout)
        if row["category"] == "Food"
    }
    assert [by_month[month] for month, *_ in STATUS_EDGES] == [
        status for *_, status in STATUS_EDGES
    ]
