"""Issue 8: nothing lost, nothing let in. One section per numbered item, through the CLI.

Each test failed on the code before its fix; the effect is checked with plain SQL.
"""

import re

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
    assert_refused(
        run_cli(
            seeded_url,
            "expense",
            "add",
            "--user",
            AMAN,
            "--category",
            "Food",
            "--amount",
            "10",
            "--date",
            day,
        ),
        f'date "{day}" is outside the years 1900 to 2100',
    )
    assert snapshot(seeded_url) == before


def test_date_range_edges_are_accepted(run_cli, seeded_url):
    for day in ("1900-01-01", "2100-12-31"):
        result = run_cli(
            seeded_url,
            "expense",
            "add",
            "--user",
            AMAN,
            "--category",
            "Food",
            "--amount",
            "10",
            "--date",
            day,
        )
        assert result.exit_code == 0, result.output
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
            "2100-12",
            "--amount",
            "5",
        ).exit_code
        == 0
    )


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("expense", "list", "--month", "0001-01"), 'month "0001-01" is outside the years'),
        (("expense", "list", "--from", "0001-01-01"), '--from date "0001-01-01" is outside'),
        (
            (
                "budget",
                "set",
                "--user",
                AMAN,
                "--category",
                "Food",
                "--month",
                "2101-01",
                "--amount",
                "5",
            ),
            'month "2101-01" is outside the years 1900 to 2100',
        ),
    ],
)
def test_other_commands_refuse_the_same_range(run_cli, seeded_url, args, fragment):
    assert_refused(run_cli(seeded_url, *args), fragment)


def test_import_refuses_a_date_outside_the_range_with_its_line(run_cli, seeded_url, tmp_path):
    path = write(tmp_path, "s.csv", "Date,Amount,Note\n2025-05-01,10.00,a\n0001-05-02,5.00,b\n")
    before = snapshot(seeded_url)
    assert_refused(
        run_cli(
            seeded_url,
            "import",
            path,
            "--user",
            AMAN,
            "--mapping",
            "date=Date,amount=Amount,note=Note",
            "--default-category",
            "Food",
        ),
        "s.csv line 3",
        'date "0001-05-02" is outside the years 1900 to 2100',
    )
    assert snapshot(seeded_url) == before


def test_database_refuses_dates_outside_the_range_whoever_writes(seeded_url):
    with (
        psycopg.connect(seeded_url) as conn,
        pytest.raises(psycopg.errors.CheckViolation, match="expenses_date_range"),
    ):
        conn.execute(
            "insert into expenses (user_id, category_id, amount, date)"
            " select 1, id, 1, '0001-01-01' from categories limit 1"
        )
    with (
        psycopg.connect(seeded_url) as conn,
        pytest.raises(psycopg.errors.CheckViolation, match="budgets_month_range"),
    ):
        conn.execute(
            "insert into budgets (user_id, category_id, month, amount)"
            " select 1, id, '2101-01-01', 1 from categories limit 1"
        )


def test_budget_delete_undoes_a_mistaken_budget(run_cli, seeded_url):
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
            "2099-05",
            "--amount",
            "100",
        ).exit_code
        == 0
    )
    before = scalar(seeded_url, "select count(*) from budgets")
    result = run_cli(
        seeded_url, "budget", "delete", "--user", AMAN, "--category", "Food", "--month", "2099-05"
    )
    assert result.exit_code == 0, result.output
    assert "Deleted the Food budget for 2099-05 of aman@example.com (100.00)" in result.output
    assert "kept 0 alerts and 0 transfers" in result.output
    assert scalar(seeded_url, "select count(*) from budgets") == before - 1
    assert scalar(seeded_url, "select count(*) from budgets where month = '2099-05-01'") == 0
    assert_refused(
        run_cli(
            seeded_url,
            "budget",
            "delete",
            "--user",
            AMAN,
            "--category",
            "Food",
            "--month",
            "2099-05",
        ),
        "has no Food budget for 2099-05",
    )


def test_budget_delete_keeps_its_alerts_as_history(run_cli, seeded_url):
    run_cli(
        seeded_url,
        "budget",
        "set",
        "--user",
        AMAN,
        "--category",
        "Food",
        "--month",
        "2030-01",
        "--amount",
        "10",
    )
    run_cli(
        seeded_url,
        "expense",
        "add",
        "--user",
        AMAN,
        "--category",
        "Food",
        "--amount",
        "20",
        "--date",
        "2030-01-05",
    )
    assert scalar(seeded_url, "select count(*) from alerts where month = '2030-01-01'") == 1
    result = run_cli(
        seeded_url, "budget", "delete", "--user", AMAN, "--category", "Food", "--month", "2030-01"
    )
    assert result.exit_code == 0, result.output
    assert "kept 1 alert and 0 transfers" in result.output
    assert query(
        seeded_url,
        "select budget_id, category_id is not null from alerts where month = '2030-01-01'",
    ) == [(None, True)]


# --- 3. a name is never read as an id ------------------------------------------------------


@pytest.mark.parametrize("name", ["9", " 42 ", "007"])
def test_category_add_refuses_digit_only_names(run_cli, seeded_url, name):
    before = snapshot(seeded_url)
    assert_refused(
        run_cli(seeded_url, "category", "add", "--name", name),
        "is all digits, which reads as a category id",
    )
    assert snapshot(seeded_url) == before


def test_category_delete_of_digits_means_the_id_only(run_cli, seeded_url):
    rent = scalar(seeded_url, "select id from categories where name = 'Rent'")
    missing = scalar(seeded_url, "select max(id) + 100 from categories")
    before = snapshot(seeded_url)
    assert_refused(
        run_cli(seeded_url, "category", "delete", str(missing)),
        f"category id {missing} does not exist",
    )
    assert snapshot(seeded_url) == before
    result = run_cli(seeded_url, "category", "delete", f"#{rent}")
    assert result.exit_code == 0, result.output
    assert scalar(seeded_url, "select count(*) from categories where name = 'Rent'") == 0


def test_database_refuses_digit_only_category_names(seeded_url):
    with (
        psycopg.connect(seeded_url) as conn,
        pytest.raises(psycopg.errors.CheckViolation, match="categories_name_not_a_number"),
    ):
        conn.execute("insert into categories (name) values ('9')")


# --- 5, 6, 10. import: every malformed record is refused with its line --------------------

IMPORT = (
    "--user",
    AMAN,
    "--mapping",
    "date=Date,amount=Amount,note=Note",
    "--default-category",
    "Food",
)


def import_text(run_cli, url, tmp_path, text, *extra, name="s.csv"):
    return run_cli(url, "import", write(tmp_path, name, text), *IMPORT, *extra)


def test_import_refuses_a_row_with_more_cells_than_the_header(run_cli, seeded_url, tmp_path):
    text = "Date,Amount,Note\n2025-06-13,10.00,Lunch\n2025-06-14,1,234.00,Laptop\n"
    before = snapshot(seeded_url)
    assert_refused(
        import_text(run_cli, seeded_url, tmp_path, text),
        "s.csv line 3: 4 cells, the header has 3",
        'Quote the value: "1,234.00"',
    )
    assert snapshot(seeded_url) == before


def test_import_accepts_trailing_empty_cells_and_quoted_thousands(run_cli, seeded_url, tmp_path):
    text = 'Date,Amount,Note\n2025-06-13,10.00,Lunch,,\n2025-06-14,"1,234.00",Laptop\n'
    result = import_text(run_cli, seeded_url, tmp_path, text)
    assert result.exit_code == 0, result.output
    assert query(
        seeded_url,
        "select amount::text, note from expenses where import_account is not null order by date",
    ) == [("10.00", "Lunch"), ("1234.00", "Laptop")]


@pytest.mark.parametrize(
    "text, line",
    [
        # the quote closes at the end of a later line: rows 3 and 4 would become one note
        (
            'Date,Amount,Note\n2025-06-01,5.00,ok\n2025-06-02,10.00,"Lunch\n2025-06-03,20.00,Taxi\n'
            '2025-06-04,30.00,Cafe"\n',
            3,
        ),
        # the quote never closes: the file ends inside it
        (
            'Date,Amount,Note\n2025-06-02,10.00,"Lunch\n2025-06-03,20.00,Taxi\n2025-06-04,30.00,Cafe\n',
            2,
        ),
        # a quote closes and text follows before the separator
        ('Date,Amount,Note\n2025-06-02,10.00,"Lunch\n2025-06-03,20.00,"Taxi"\n', 2),
    ],
)
def test_import_refuses_an_unclosed_quote_at_the_line_it_opened(
    run_cli, seeded_url, tmp_path, text, line
):
    before = snapshot(seeded_url)
    result = import_text(run_cli, seeded_url, tmp_path, text)
    assert_refused(result, f"s.csv line {line}: a quote")
    assert snapshot(seeded_url) == before


def test_import_keeps_a_real_multi_line_note(run_cli, seeded_url, tmp_path):
    text = 'Date,Amount,Note\n2025-06-02,10.00,"Rent\nfor June, flat 4"\n2025-06-03,20.00,Taxi\n'
    result = import_text(run_cli, seeded_url, tmp_path, text)
    assert result.exit_code == 0, result.output
    assert "Imported 2 of 2 rows" in result.output
    assert (
        scalar(
            seeded_url,
            "select note from expenses where amount = 10.00 and import_account is not null",
        )
        == "Rent\nfor June, flat 4"
    )


def test_import_refuses_a_nul_byte_with_its_line(run_cli, seeded_url, tmp_path):
    text = "Date,Amount,Note\n2025-06-02,10.00,Lunch\n2025-06-03,20.00,Ta\x00xi\n"
    before = snapshot(seeded_url)
    assert_refused(
        import_text(run_cli, seeded_url, tmp_path, text), "s.csv line 3: the note holds a NUL byte"
    )
    assert snapshot(seeded_url) == before


@pytest.mark.parametrize(
    "path, fragment",
    [
        ("/dev/zero", "is not a regular file"),
        ("/tmp", "is a folder"),
        ("/nonexistent/statement.csv", "does not exist"),
    ],
)
def test_import_refuses_what_is_not_a_file(run_cli, seeded_url, path, fragment):
    assert_refused(run_cli(seeded_url, "import", path, *IMPORT), fragment)


# --- 9. the fingerprint is scoped to the account -------------------------------------------


def test_import_same_purchase_on_two_accounts_is_two_expenses(run_cli, seeded_url, tmp_path):
    text = "Date,Amount,Note\n2025-06-02,499.00,AMAZON\n"
    first = import_text(
        run_cli, seeded_url, tmp_path, text, "--account", "hdfc-credit", name="hdfc.csv"
    )
    assert first.exit_code == 0, first.output
    assert "from hdfc.csv (account hdfc-credit)" in first.output
    second = import_text(
        run_cli, seeded_url, tmp_path, text, "--account", "icici-debit", name="icici.csv"
    )
    assert "Imported 1 of 1 row" in second.output, second.output
    again = import_text(
        run_cli, seeded_url, tmp_path, text, "--account", "hdfc-credit", name="hdfc-again.csv"
    )
    assert "Imported 0 of 1 row" in again.output and "1 already imported" in again.output
    assert query(
        seeded_url,
        "select import_account from expenses where note = 'AMAZON' order by import_account",
    ) == [("hdfc-credit",), ("icici-debit",)]


def test_import_default_account_keeps_fingerprints_made_before_accounts(
    run_cli, seeded_url, tmp_path
):
    # A row imported before V007: fingerprint of user|date|amount|note|occurrence.
    with psycopg.connect(seeded_url) as conn:
        conn.execute(
            """
            insert into expenses (user_id, category_id, amount, date, note, import_fingerprint,
                                  import_account)
            select users.id, categories.id, 499.00, '2025-06-02', 'AMAZON',
                   encode(sha256(convert_to(concat_ws('|', users.id, '2025-06-02'::date,
                          499.00::numeric(12, 2), 'amazon', 1), 'UTF8')), 'hex'), 'default'
            from users, categories
            where users.email = %s and categories.name = 'Food'""",
            [AMAN],
        )
    result = import_text(
        run_cli,
        seeded_url,
        tmp_path,
        "Date,Amount,Note\n2025-06-02,499.00,AMAZON\n2025-06-03,1.00,new\n",
    )
    assert "Imported 1 of 2 rows from s.csv; 1 already imported." in result.output, result.output


# --- 11. rules cannot stall an import; no transaction while the file is read ---------------


def test_import_catastrophic_regex_rule_finishes(seeded_url, tmp_path):
    import subprocess
    import sys

    rules = write(tmp_path, "rules.csv", "pattern,category\n/(a+)+$/,Transport\n")
    note = "a" * 40 + "!"
    path = write(tmp_path, "s.csv", f"Date,Amount,Note\n2025-06-02,10.00,{note}\n")
    # Python's backtracking engine needs hours here; the bound only keeps a regression from
    # hanging the suite.
    done = subprocess.run(
        [
            sys.executable,
            "cli.py",
            "--database-url",
            seeded_url,
            "import",
            path,
            *IMPORT,
            "--rules",
            rules,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (
        scalar(
            seeded_url,
            "select categories.name from expenses inner join categories"
            " on categories.id = expenses.category_id where note = %s",
            [note],
        )
        == "Food"
    )


def test_import_rules_with_unsupported_syntax_are_refused(run_cli, seeded_url, tmp_path):
    rules = write(tmp_path, "rules.csv", "pattern,category\n/(a)\\1/,Transport\n")
    assert_refused(
        import_text(run_cli, seeded_url, tmp_path, "Date,Amount,Note\n", "--rules", rules),
        "rules file rules.csv line 2: /(a)\\1/ is not a valid regular expression",
    )


def test_import_holds_no_transaction_while_reading_the_file(seeded_url, tmp_path):
    from tracker.everyday.importer import PROGRESS_EVERY_ROWS, import_statement, parse_mapping

    rows = "".join(
        f"2025-06-{day % 28 + 1:02d},1.00,row {day}\n" for day in range(3 * PROGRESS_EVERY_ROWS)
    )
    path = write(tmp_path, "s.csv", "Date,Amount,Note\n" + rows)
    seen = []

    def on_progress(done, total):
        seen.append(conn.info.transaction_status)
        # Another session can take every table's strongest lock at once: nothing is held.
        with psycopg.connect(seeded_url) as other:
            other.execute("set lock_timeout = '2s'")
            other.execute(
                "lock table users, categories, expenses, budgets, alerts in access exclusive mode"
            )

    with psycopg.connect(seeded_url) as conn:
        result = import_statement(
            conn,
            path,
            AMAN,
            parse_mapping("date=Date,amount=Amount,note=Note"),
            default_category="Food",
            on_progress=on_progress,
        )
    assert result.inserted == 3 * PROGRESS_EVERY_ROWS
    assert len(seen) >= 3
    assert set(seen[:-1]) == {psycopg.pq.TransactionStatus.IDLE}


# --- everyday: Indian grouping, debit/credit columns, alerts printed -----------------------


def test_import_indian_grouping_and_debit_credit_columns(run_cli, seeded_url, tmp_path):
    text = (
        "Date,Narration,Withdrawal,Deposit\n"
        '2025-06-01,Laptop,"1,23,456.00",\n'
        '2025-06-02,Salary,,"12,00,000.00"\n'
        '2025-06-03,Phone,"12,345.50",\n'
    )
    path = write(tmp_path, "s.csv", text)
    result = run_cli(
        seeded_url,
        "import",
        path,
        "--user",
        AMAN,
        "--mapping",
        "date=Date,debit=Withdrawal,credit=Deposit,note=Narration",
        "--default-category",
        "Shopping",
    )
    assert result.exit_code == 0, result.output
    assert (
        "Imported 2 of 2 rows from s.csv; 0 already imported, skipped 1 credit row."
        in result.output
    )
    assert query(
        seeded_url,
        "select note, amount::text from expenses where import_account is not null order by date",
    ) == [("Laptop", "123456.00"), ("Phone", "12345.50")]


def test_import_refuses_a_row_with_both_debit_and_credit(run_cli, seeded_url, tmp_path):
    path = write(tmp_path, "s.csv", "Date,Out,In\n2025-06-01,5.00,6.00\n")
    assert_refused(
        run_cli(
            seeded_url,
            "import",
            path,
            "--user",
            AMAN,
            "--mapping",
            "date=Date,debit=Out,credit=In",
            "--default-category",
            "Food",
        ),
        "s.csv line 2: both debit",
    )


def test_import_prints_the_alerts_it_fired(run_cli, seeded_url, tmp_path):
    rows = "".join(f"2025-05-{day:02d},100.00,Metro\n" for day in range(1, 31))
    result = run_cli(
        seeded_url,
        "import",
        write(tmp_path, "s.csv", "Date,Amount,Note\n" + rows),
        "--user",
        AMAN,
        "--mapping",
        "date=Date,amount=Amount,note=Note",
        "--default-category",
        "Transport",
    )
    assert result.exit_code == 0, result.output
    alert_id = scalar(seeded_url, "select id from alerts")
    assert (
        f"Alert {alert_id}: Budget exceeded for Transport for May 2025. Spent: 3150.00 / 2000.00"
    ) in result.output


# --- 1, 13. export replaces only what an export wrote; waits for another export ----------


@pytest.fixture
def built(seeded_url, run_cli):
    assert run_cli(seeded_url, "run").exit_code == 0
    return seeded_url


def last_error(result, fragment, code=2):
    """The export's progress lines go to stderr first; its error is the last line."""
    assert result.exit_code == code, result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and fragment in last, last


def files_under(directory):
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def test_export_never_deletes_a_folder_with_an_unrelated_manifest(built, run_cli, tmp_path):
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "tax-2024.csv").write_text("my own data\n")
    (tmp_path / "manifest.json").write_text('{"name": "my project", "version": 3}\n')
    before = files_under(tmp_path)
    result = run_cli(built, "export", "--out", str(tmp_path), "--format", "csv")
    last_error(result, f"{tmp_path / 'manifest.json'} was not written by `cli.py export`")
    assert files_under(tmp_path) == before


def test_export_never_deletes_a_file_dropped_into_its_folder(built, run_cli, tmp_path):
    assert (
        run_cli(
            built, "export", "--out", str(tmp_path), "--format", "csv", "--select", "dim_date"
        ).exit_code
        == 0
    )
    (tmp_path / "csv" / "notes.txt").write_text("mine\n")
    before = files_under(tmp_path)
    result = run_cli(built, "export", "--out", str(tmp_path), "--format", "csv")
    last_error(result, f"{tmp_path / 'csv' / 'notes.txt'} was not written by `cli.py export`")
    assert files_under(tmp_path) == before
    (tmp_path / "csv" / "notes.txt").unlink()
    result = run_cli(built, "export", "--out", str(tmp_path), "--format", "csv")
    assert result.exit_code == 0, result.output
    assert "Wrote 10 files" in result.output


def test_export_of_one_model_says_1_file(built, run_cli, tmp_path):
    result = run_cli(
        built, "export", "--out", str(tmp_path), "--format", "csv", "--select", "dim_date"
    )
    assert result.exit_code == 0, result.output
    assert "Wrote 1 file and" in result.output and "Exporting 1 model from" in result.stderr
    result = run_cli(built, "run", "--select", "dim_user")
    assert "Built 1 model in" in result.output


def _hold_lock(directory):
    import fcntl
    import os

    fd = os.open(directory, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_export_waits_for_another_export_then_writes(built, tmp_path):
    import json
    import os
    import queue
    import subprocess
    import sys
    import threading

    fd = _hold_lock(tmp_path)
    lines: queue.Queue = queue.Queue()
    try:
        child = subprocess.Popen(
            [
                sys.executable,
                "cli.py",
                "--database-url",
                built,
                "export",
                "--out",
                str(tmp_path),
                "--format",
                "csv",
                "--select",
                "dim_date",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stderr is not None

        def read_stderr(stream=child.stderr):
            for line in stream:
                lines.put(line)
            lines.put(None)

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        # Wait for the observable event, however slow the machine: the child has found the
        # folder locked and said it is waiting (not a sleep that a loaded machine outruns).
        seen: list[str] = []
        while not any("Another export is writing to" in line for line in seen):
            line = lines.get(timeout=120)
            assert line is not None, f"the export ended without waiting: {''.join(seen)}"
            seen.append(line)
        assert "waiting for it" in seen[-1]
        # Still waiting (not failed at once), and nothing written while the lock is held.
        assert child.poll() is None, "".join(seen)
        assert not (tmp_path / "manifest.json").exists()
        assert files_under(tmp_path) == {}
    finally:
        os.close(fd)
    assert child.wait(timeout=120) == 0, "".join(seen)
    reader.join(timeout=10)
    assert (tmp_path / "csv" / "dim_date.csv").exists()
    assert json.loads((tmp_path / "manifest.json").read_text())["models"] == ["dim_date"]


def test_export_gives_up_after_the_lock_timeout(built, run_cli, tmp_path):
    import os

    fd = _hold_lock(tmp_path)
    try:
        result = run_cli(built, "export", "--out", str(tmp_path), "--lock-timeout", "0.5")
    finally:
        os.close(fd)
    last_error(result, f"another export is still writing to {tmp_path} after waiting 0.5 s", code=1)
    assert files_under(tmp_path) == {}


def test_export_killed_with_sigterm_leaves_no_staging_folder(built, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    child = subprocess.Popen(
        [sys.executable, "cli.py", "--database-url", built, "export", "--out", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while (
        not list(tmp_path.glob(".export-staging-*/new/csv/*"))
        and child.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.01)
    assert child.poll() is None, "the export finished before it could be stopped"
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 128 + signal.SIGTERM, err
    assert list(tmp_path.iterdir()) == []


def test_export_removes_a_killed_exports_staging_folder(built, run_cli, tmp_path):
    stale = tmp_path / ".export-staging-0123456789ab" / "new" / "csv"
    stale.mkdir(parents=True)
    (stale / "fact_expenses.csv").write_bytes(b"x" * 100_000)
    result = run_cli(built, "export", "--out", str(tmp_path), "--format", "csv")
    assert result.exit_code == 0, result.output
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# --- 4. category delete --move-to keeps history ------------------------------------------


def _history_for_move(run_cli, url):
    """Entertainment with an alert in April, spending in May, a lone budget in June."""
    steps = [
        (
            "budget",
            "set",
            "--user",
            AMAN,
            "--category",
            "Entertainment",
            "--month",
            "2025-04",
            "--amount",
            "150",
        ),
        (
            "expense",
            "add",
            "--user",
            AMAN,
            "--category",
            "Entertainment",
            "--amount",
            "160",
            "--date",
            "2025-04-10",
        ),
        (
            "budget",
            "set",
            "--user",
            AMAN,
            "--category",
            "Shopping",
            "--month",
            "2025-04",
            "--amount",
            "1000",
        ),
        (
            "expense",
            "add",
            "--user",
            AMAN,
            "--category",
            "Shopping",
            "--amount",
            "950",
            "--date",
            "2025-04-12",
        ),
        (
            "budget",
            "transfer",
            "--user",
            AMAN,
            "--from",
            "Entertainment",
            "--to",
            "Shopping",
            "--month",
            "2025-04",
            "--amount",
            "50",
        ),
        (
            "expense",
            "add",
            "--user",
            AMAN,
            "--category",
            "Entertainment",
            "--amount",
            "500",
            "--date",
            "2025-05-03",
        ),
        (
            "budget",
            "set",
            "--user",
            AMAN,
            "--category",
            "Entertainment",
            "--month",
            "2025-06",
            "--amount",
            "300",
        ),
        (
            "expense",
            "add",
            "--user",
            AMAN,
            "--category",
            "Entertainment",
            "--amount",
            "200",
            "--date",
            "2025-06-02",
        ),
        (
            "expense",
            "add",
            "--user",
            AMAN,
            "--category",
            "Shopping",
            "--amount",
            "250",
            "--date",
            "2025-06-03",
        ),
    ]
    for step in steps:
        result = run_cli(url, *step)
        assert result.exit_code == 0, (step, result.output)


def test_category_delete_move_to_keeps_budgets_alerts_and_fires_nothing(run_cli, seeded_url):
    _history_for_move(run_cli, seeded_url)
    # Entertainment April: 160 of 150 crossed: one alert (the transfer left it at 100).
    alerts_before = query(seeded_url, "select id, message, fired_at from alerts order by id")
    assert len(alerts_before) == 1
    june_budget = scalar(
        seeded_url,
        "select budgets.id from budgets inner join categories"
        " on categories.id = category_id where name ="
        " 'Entertainment' and month = '2025-06-01'",
    )
    spent_before = scalar(seeded_url, "select sum(amount) from expenses")
    before = snapshot(seeded_url)
    planned = run_cli(
        seeded_url, "category", "delete", "Entertainment", "--move-to", "Shopping", "--dry-run"
    )
    assert planned.exit_code == 0, planned.output
    assert snapshot(seeded_url) == before

    result = run_cli(seeded_url, "category", "delete", "Entertainment", "--move-to", "Shopping")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "Deleted category Entertainment:",
        "  moved 3 expenses (860.00) to Shopping",
        "  gave 1 budget to Shopping (months where it had none)",
        "  added 1 budget to Shopping's budget for the same month:",
        "    aman@example.com 2025-04: 1,050.00 + 100.00 = 1,150.00",
        "  pointed 1 alert at Shopping (their messages are kept as they were)",
        "  kept 1 transfer between Entertainment and Shopping in a merged month, with its "
        "Entertainment side unlinked",
        "  recorded no new alert (a move spends nothing)",
        "  Shopping is over budget for aman@example.com in 2025-06: spent 450.00 of 300.00",
    ]
    # The dry run said exactly the same, in the future tense.
    assert (
        planned.output.splitlines()[0]
        == "Would delete category Entertainment (dry run: nothing was changed):"
    )
    assert len(planned.output.splitlines()) == len(result.output.splitlines())
    for said, done in zip(
        planned.output.splitlines()[1:], result.output.splitlines()[1:], strict=True
    ):
        assert said.split()[-3:] == done.split()[-3:], (said, done)

    shopping = scalar(seeded_url, "select id from categories where name = 'Shopping'")
    # No alert was added, none lost its category or budget, and the April one is Shopping's.
    assert (
        query(seeded_url, "select id, message, fired_at from alerts order by id") == alerts_before
    )
    assert query(
        seeded_url,
        "select alerts.category_id, to_char(budgets.month, 'YYYY-MM'), budgets.amount"
        " from alerts inner join budgets on budgets.id = alerts.budget_id",
    ) == [(shopping, "2025-04", 1150)]
    assert query(
        seeded_url,
        "select to_char(month, 'YYYY-MM'), amount::text from budgets"
        " where category_id = %s order by month",
        [shopping],
    ) == [("2025-04", "1150.00"), ("2025-05", "5000.00"), ("2025-06", "300.00")]
    assert (
        scalar(seeded_url, "select category_id from budgets where id = %s", [june_budget])
        == shopping
    )
    assert query(
        seeded_url,
        "select from_budget_id is null, to_budget_id is not null, amount from budget_transfers",
    ) == [(True, True, 50)]
    assert scalar(seeded_url, "select sum(amount) from expenses") == spent_before
    assert scalar(seeded_url, "select count(*) from categories where name = 'Entertainment'") == 0


def test_category_delete_dry_run_writes_nothing(run_cli, seeded_url):
    _history_for_move(run_cli, seeded_url)
    before = snapshot(seeded_url)
    result = run_cli(
        seeded_url, "category", "delete", "Entertainment", "--move-to", "Shopping", "--dry-run"
    )
    assert result.exit_code == 0, result.output
    assert "  move 3 expenses (860.00) to Shopping" in result.output
    assert "Shopping will be over budget for aman@example.com in 2025-06" in result.output
    assert snapshot(seeded_url) == before


def test_category_delete_without_move_keeps_alerts_by_refusing(run_cli, seeded_url):
    _history_for_move(run_cli, seeded_url)
    run_cli(
        seeded_url,
        "expense",
        "delete",
        str(scalar(seeded_url, "select max(id) from expenses where date = '2025-06-02'")),
    )
    with psycopg.connect(seeded_url) as conn:
        conn.execute(
            "delete from expenses where category_id = (select id from categories"
            " where name = 'Entertainment')"
        )
    before = snapshot(seeded_url)
    assert_refused(
        run_cli(seeded_url, "category", "delete", "Entertainment"),
        "has 1 budget alert that would lose its category",
        "--move-to",
        code=1,
    )
    assert snapshot(seeded_url) == before


# --- 8. --vars: declared names, types and ranges ------------------------------------------


@pytest.mark.parametrize(
    "vars_json, fragment",
    [
        (
            '{"near_threshold_pct": null}',
            '"near_threshold_pct" is null; it must be a number from 0 to 100',
        ),
        (
            '{"near_threshold_pct": -5}',
            '"near_threshold_pct" is -5; it must be a number from 0 to 100',
        ),
        ('{"near_threshold_pct": 101}', '"near_threshold_pct" is 101'),
        ('{"near_threshold_pct": "80"}', '"near_threshold_pct" is "80"; it must be a number'),
        ('{"near_threshold_pct": true}', '"near_threshold_pct" is true'),
        ('{"near_treshold_pct": 75}', '--vars names "near_treshold_pct", which no model declares'),
    ],
)
def test_run_refuses_unknown_or_invalid_vars(run_cli, seeded_url, vars_json, fragment):
    assert run_cli(seeded_url, "run").exit_code == 0
    before = query(
        seeded_url, "select budget_id, status from analytics.budget_vs_actual order by budget_id"
    )
    assert_refused(run_cli(seeded_url, "run", "--vars", vars_json), fragment)
    assert_refused(run_cli(None, "compile", "--vars", vars_json), fragment)
    assert (
        query(
            seeded_url,
            "select budget_id, status from analytics.budget_vs_actual order by budget_id",
        )
        == before
    )


def test_run_accepts_a_declared_var_in_range(run_cli, seeded_url):
    # Aman's Shopping: 3200.00 of 5000.00 is 64 %: near from 60 %, under at the default 80 %.
    assert run_cli(seeded_url, "run", "--vars", '{"near_threshold_pct": 60.5}').exit_code == 0
    assert (
        scalar(
            seeded_url, "select status from analytics.budget_vs_actual where category = 'Shopping'"
        )
        == "near"
    )


def test_every_var_a_model_reads_is_declared():
    import json
    import re
    from pathlib import Path

    queries = Path(__file__).resolve().parent.parent / "queries"
    declared = json.loads((queries / "vars.json").read_text(encoding="utf-8"))
    used = {
        match
        for path in queries.rglob("*.sql")
        for match in re.findall(r"var\(\s*['\"](\w+)['\"]", path.read_text(encoding="utf-8"))
    }
    assert used and used <= set(declared)


# --- 12. expense list streams, with --limit and --sort ------------------------------------


def test_expense_list_sort_and_limit(run_cli, seeded_url):
    import json

    result = run_cli(
        seeded_url, "expense", "list", "--sort", "amount", "--limit", "2", "--format", "json"
    )
    assert result.exit_code == 0, result.output
    expected = query(
        seeded_url,
        "select id, amount::text from expenses order by expenses.amount desc, id desc limit 2",
    )
    assert [(row["id"], row["amount"]) for row in json.loads(result.stdout)] == expected


def test_expense_list_json_of_nothing_is_an_empty_array(run_cli, seeded_url):
    import json

    result = run_cli(seeded_url, "expense", "list", "--format", "json", "--month", "1999-01")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []


def test_expense_list_table_shows_a_default_limit_and_says_so(run_cli, seeded_url):
    with psycopg.connect(seeded_url) as conn:
        conn.execute("""
            insert into expenses (user_id, category_id, amount, date, note)
            select 1, (select id from categories where name = 'Food'), 1.00,
                   date '2024-01-01' + n, 'bulk ' || n
            from generate_series(1, 120) as n""")
    result = run_cli(seeded_url, "expense", "list")
    assert result.exit_code == 0, result.output
    body = [
        line for line in result.output.splitlines()[2:] if line[:1].isspace() or line[:1].isdigit()
    ]
    assert len(body) == 50
    assert "Showing the first 50 expenses; more match." in result.output
    everything = run_cli(seeded_url, "expense", "list", "--format", "csv")
    assert len(everything.stdout.strip().splitlines()) == 1 + 125
    assert_refused(run_cli(seeded_url, "expense", "list", "--limit", "0"), "--limit 0")


def test_expense_list_csv_streams_from_copy_with_filters_bound(run_cli, seeded_url):
    import csv
    import io

    hostile = "Food'; drop table expenses; --"
    assert_refused(
        run_cli(seeded_url, "expense", "list", "--category", hostile, "--format", "csv"),
        "does not exist",
    )
    result = run_cli(
        seeded_url,
        "expense",
        "list",
        "--format",
        "csv",
        "--user",
        AMAN,
        "--from",
        "2025-05-05",
        "--to",
        "2025-05-10",
        "--sort",
        "amount",
    )
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    expected = query(
        seeded_url,
        """
        select expenses.id::text, expenses.amount::text from expenses
        inner join users on users.id = expenses.user_id
        where email = %s and date between '2025-05-05' and '2025-05-10'
        order by expenses.amount desc, expenses.id desc""",
        [AMAN],
    )
    assert [(row["id"], row["amount"]) for row in rows] == expected
    assert list(rows[0]) == ["id", "date", "user", "category", "amount", "currency", "note"]


@pytest.mark.slow
def test_expense_list_memory_stays_flat_on_a_large_table(seeded_url):
    """500,000 expenses as JSON through a child process: its peak memory stays small."""
    import resource
    import subprocess
    import sys

    with psycopg.connect(seeded_url) as conn:
        conn.execute("""
            insert into expenses (user_id, category_id, amount, date, note)
            select 1, (select id from categories where name = 'Food'), (n % 1000) + 0.5,
                   date '2020-01-01' + (n % 1500), 'note number ' || n
            from generate_series(1, 500000) as n""")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import resource, subprocess, sys; "
            "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)",
            sys.executable,
            "cli.py",
            "--database-url",
            seeded_url,
            "expense",
            "list",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) < 200_000  # KiB: well under the 4.8 GB of the list-based version
    del resource


# --- everyday: user delete / update, category rename -------------------------------------


def test_user_delete_needs_yes_and_removes_all_their_data(run_cli, seeded_url):
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
        "100",
    )  # fires an alert: Food is at 1,450.00
    before = snapshot(seeded_url)
    counts = query(
        seeded_url,
        """
        select (select count(*) from expenses where user_id = users.id),
               (select count(*) from budgets where user_id = users.id),
               (select count(*) from alerts where user_id = users.id)
        from users where email = %s""",
        [AMAN],
    )[0]
    assert counts == (4, 3, 1)
    assert_refused(
        run_cli(seeded_url, "user", "delete", AMAN),
        "user delete removes aman@example.com and all their data (4 expenses, "
        "3 budgets, 1 alert and 0 budget transfers), for good",
        "--yes",
    )
    assert snapshot(seeded_url) == before
    result = run_cli(seeded_url, "user", "delete", AMAN, "--yes")
    assert result.exit_code == 0, result.output
    assert "with 4 expenses, 3 budgets, 1 alert and 0 budget transfers." in result.output
    for table in ("expenses", "budgets", "alerts", "budget_transfers"):
        assert (
            scalar(
                seeded_url,
                f"select count(*) from {table} where user_id not in (select id from users)",
            )
            == 0
        )
    assert scalar(seeded_url, "select count(*) from users where email = %s", [AMAN]) == 0
    # Priya's data is untouched.
    assert scalar(seeded_url, "select count(*) from expenses") == 1


def test_user_update_changes_name_and_email_and_guards_currency(run_cli, seeded_url):
    result = run_cli(
        seeded_url, "user", "update", AMAN, "--name", "Aman K", "--email", "aman.k@example.com"
    )
    assert result.exit_code == 0, result.output
    assert query(
        seeded_url, "select name, email from users where email = 'aman.k@example.com'"
    ) == [("Aman K", "aman.k@example.com")]
    before = snapshot(seeded_url)
    assert_refused(
        run_cli(seeded_url, "user", "update", "aman.k@example.com", "--currency", "EUR"),
        "already has amounts in INR",
    )
    assert_refused(
        run_cli(seeded_url, "user", "update", "aman.k@example.com", "--email", "priya@example.com"),
        'e-mail "priya@example.com" is already taken',
    )
    assert snapshot(seeded_url) == before
    assert (
        run_cli(seeded_url, "user", "add", "--name", "N", "--email", "n@example.com").exit_code == 0
    )
    assert (
        run_cli(seeded_url, "user", "update", "n@example.com", "--currency", "EUR").exit_code == 0
    )
    assert scalar(seeded_url, "select currency from users where email = 'n@example.com'") == "EUR"


def test_category_rename_keeps_its_expenses(run_cli, seeded_url):
    food = scalar(seeded_url, "select id from categories where name = 'Food'")
    result = run_cli(seeded_url, "category", "rename", "food", "--to", "Food & drink")
    assert result.exit_code == 0, result.output
    assert f"Renamed category {food} from Food to Food & drink." in result.output
    assert scalar(seeded_url, "select count(*) from expenses where category_id = %s", [food]) == 3
    assert_refused(
        run_cli(seeded_url, "category", "rename", "Food & drink", "--to", "shopping"),
        'category "Shopping" already exists',
    )
    assert_refused(
        run_cli(seeded_url, "category", "rename", "Food & drink", "--to", "12"), "all digits"
    )


# --- everyday: tables stay tables ------------------------------------------------------------


def test_table_layout_survives_multi_line_notes_and_long_names(run_cli, seeded_url):
    long_name = "Household and family expenses of every kind, big and small"
    assert run_cli(seeded_url, "category", "add", "--name", long_name).exit_code == 0
    note = "Groceries\nfor the week\r\nand \x1b[31mred\x1b[0m"
    result = run_cli(
        seeded_url,
        "expense",
        "add",
        "--user",
        AMAN,
        "--category",
        long_name,
        "--amount",
        "12345.60",
        "--date",
        "2025-05-30",
        "--note",
        note,
    )
    assert result.exit_code == 0, result.output
    result = run_cli(seeded_url, "expense", "list", "--user", AMAN)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 2 + 5  # header, rule, one line per expense
    assert "\x1b" not in result.output
    header = lines[0]
    # Columns line up: each starts where its header starts, and amounts are right-aligned,
    # ending where the header "amount" ends.
    category_at, amount_end = header.index("category"), header.index("amount") + len("amount")
    currency_at = header.index("currency")
    for row in lines[2:]:
        assert row[category_at - 2 : category_at] == "  " and row[category_at] != " ", row
        assert re.match(r"^ *[0-9,]+\.[0-9]{2}$", row[category_at:amount_end].split("  ")[-1]), row
        assert row[amount_end:currency_at].strip() == "" and row[currency_at:].startswith("INR")
    mine = next(row for row in lines[2:] if "Household" in row)
    assert long_name in mine and "12,345.60 " in mine
    assert mine.endswith("Groceries \u21b5 for the week \u21b5 and ?[31mred?[0m")


def test_v007_stops_and_names_rows_outside_the_range_then_applies_once_fixed(
    run_cli, fresh_database
):
    from tracker.plumbing import config
    from tracker.plumbing.migrations import apply_migrations, discover_migrations

    url = fresh_database()
    earlier = [
        m for m in discover_migrations(config.MIGRATIONS_DIR) if not m.repeatable and m.version < 7
    ]
    with psycopg.connect(url, autocommit=True) as conn:
        apply_migrations(conn, earlier)
        conn.execute("insert into users (name, email) values ('A', 'a@example.com')")
        conn.execute("insert into categories (name) values ('Food'), ('9')")
        conn.execute("""insert into expenses (user_id, category_id, amount, date)
                        select 1, id, 5, '0001-05-02' from categories where name = 'Food'""")
    result = run_cli(url, "db-init", "--no-seed")
    assert result.exit_code == 1
    assert "V007__safe_names_dates_and_import_accounts.sql" in result.stderr
    assert "(0001-05-02) have dates outside 1900-01-01..2100-12-31" in result.stderr
    assert "Nothing from this run was applied" in result.stderr
    assert scalar(url, "select max(version) from schema_migrations") == 6
    assert scalar(url, "select date::text from expenses") == "0001-05-02"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("update expenses set date = '2001-05-02'")
    result = run_cli(url, "db-init", "--no-seed")
    assert (
        result.exit_code == 1
        and 'categories 2 ("9") have names that are all digits' in result.stderr
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("update categories set name = 'Nine' where name = '9'")
    result = run_cli(url, "db-init", "--no-seed")
    assert result.exit_code == 0, result.output
    assert scalar(url, "select max(version) from schema_migrations") >= 7
