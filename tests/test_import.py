"""import: bank statement CSVs through the CLI against real PostgreSQL."""

from decimal import Decimal

import pytest
from everyday_support import assert_refused, query, scalar, snapshot

AMAN = "aman@example.com"
MAPPING = "date=Date,amount=Amount,note=Description"

STATEMENT = """Date,Description,Amount
03/05/2025,SWIGGY order 1234,450.00
04/05/2025,Uber trip,"1,200.50"
05/05/2025,Coffee,120.00
05/05/2025,Coffee,120.00
06/05/2025,Amazon marketplace,999.99
07/05/2025,Local shop,75.25
"""

RULES = """pattern,category
swiggy,Food
coffee,Food
/^uber|ola\\b/,Transport
amazon,Shopping
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def run_import(run_cli, url, path, *extra, mapping=MAPPING):
    return run_cli(url, "import", path, "--user", AMAN, "--mapping", mapping, *extra)


def imported(url):
    return query(
        url,
        """
        select expenses.date::text, categories.name, expenses.amount, expenses.note
        from expenses
        inner join categories on categories.id = expenses.category_id
        where import_fingerprint is not null
        order by expenses.date, expenses.amount, expenses.id""",
    )


def test_import_loads_rows_with_rules_and_default_category(run_cli, seeded_url, tmp_path):
    path = write(tmp_path, "statement.csv", STATEMENT)
    rules = write(tmp_path, "rules.csv", RULES)
    result = run_import(
        run_cli,
        seeded_url,
        path,
        "--date-format",
        "%d/%m/%Y",
        "--rules",
        rules,
        "--default-category",
        "Entertainment",
    )
    assert result.exit_code == 0, result.output
    assert "Imported 6 of 6 rows from statement.csv; 0 already imported." in result.output
    assert imported(seeded_url) == [
        ("2025-05-03", "Food", Decimal("450.00"), "SWIGGY order 1234"),
        ("2025-05-04", "Transport", Decimal("1200.50"), "Uber trip"),
        ("2025-05-05", "Food", Decimal("120.00"), "Coffee"),
        ("2025-05-05", "Food", Decimal("120.00"), "Coffee"),
        ("2025-05-06", "Shopping", Decimal("999.99"), "Amazon marketplace"),
        ("2025-05-07", "Entertainment", Decimal("75.25"), "Local shop"),
    ]
    assert scalar(seeded_url, "select count(distinct currency) from expenses") == 1


def test_import_same_file_twice_adds_nothing(run_cli, seeded_url, tmp_path):
    path = write(tmp_path, "statement.csv", STATEMENT)
    args = ("--date-format", "%d/%m/%Y", "--default-category", "Food")
    assert run_import(run_cli, seeded_url, path, *args).exit_code == 0
    before = snapshot(seeded_url)
    again = run_import(run_cli, seeded_url, path, *args)
    assert again.exit_code == 0, again.output
    assert "Imported 0 of 6 rows from statement.csv; 6 already imported." in again.output
    assert snapshot(seeded_url) == before


def test_import_overlapping_statement_adds_only_new_rows(run_cli, seeded_url, tmp_path):
    args = ("--date-format", "%d/%m/%Y", "--default-category", "Food")
    assert (
        run_import(run_cli, seeded_url, write(tmp_path, "april.csv", STATEMENT), *args).exit_code
        == 0
    )
    # The next export repeats the last rows (one of the two coffees, in another letter case)
    # and adds a third identical coffee and one new row.
    later = """Date,Description,Amount
05/05/2025,coffee ,120.00
05/05/2025,Coffee,120.00
05/05/2025,Coffee,120.00
07/05/2025,Local shop,75.25
08/05/2025,Cinema,300.00
"""
    result = run_import(run_cli, seeded_url, write(tmp_path, "may.csv", later), *args)
    assert result.exit_code == 0, result.output
    assert "Imported 2 of 5 rows from may.csv; 3 already imported." in result.output
    assert (
        scalar(seeded_url, "select count(*) from expenses where lower(note) like 'coffee%%'") == 3
    )
    assert scalar(seeded_url, "select count(*) from expenses where note = 'Cinema'") == 1


def test_import_bad_amount_names_line_and_writes_nothing(run_cli, seeded_url, tmp_path):
    lines = ["Date,Description,Amount"] + [
        f"2025-05-{day:02d},Row {day},10.00" for day in range(1, 16)
    ]
    lines.insert(16, '2025-05-20,Broken,"12,3x"')
    path = write(tmp_path, "statement.csv", "\n".join(lines) + "\n")
    before = snapshot(seeded_url)
    result = run_import(run_cli, seeded_url, path, "--default-category", "Food")
    assert_refused(
        result,
        'Error: statement.csv line 17: amount "12,3x" is not a number.',
        "nothing was imported",
    )
    assert snapshot(seeded_url) == before


@pytest.mark.parametrize(
    "row, extra, fragment",
    [
        ("31/02/2025,Bad day,10", ["--date-format", "%d/%m/%Y"], 'line 3: date "31/02/2025"'),
        ("2025-05-02,Wrong format,10", ["--date-format", "%d/%m/%Y"], 'line 3: date "2025-05-02"'),
        (
            "03/05/2025,Minus,-5",
            ["--date-format", "%d/%m/%Y"],
            'line 3: amount "-5" must be more than 0',
        ),
        (
            "03/05/2025,Too precise,1.234",
            ["--date-format", "%d/%m/%Y"],
            'line 3: amount "1.234" has more',
        ),
        (
            "03/05/2025,Exp,1e3",
            ["--date-format", "%d/%m/%Y"],
            'line 3: amount "1e3" is not a number',
        ),
        (
            "03/05/2025,Nan,NaN",
            ["--date-format", "%d/%m/%Y"],
            'line 3: amount "NaN" is not a number',
        ),
        (
            "03/05/2025,Huge,10000000000",
            ["--date-format", "%d/%m/%Y"],
            'line 3: amount "10000000000" is too large',
        ),
        ("03/05/2025,Short", ["--date-format", "%d/%m/%Y"], "line 3: 2 cells, the header has 3"),
    ],
)
def test_import_refuses_bad_rows(run_cli, seeded_url, tmp_path, row, extra, fragment):
    path = write(tmp_path, "statement.csv", f"Date,Description,Amount\n01/05/2025,Fine,10\n{row}\n")
    before = snapshot(seeded_url)
    assert_refused(
        run_import(run_cli, seeded_url, path, "--default-category", "Food", *extra),
        f"statement.csv {fragment}",
    )
    assert snapshot(seeded_url) == before


def test_import_without_category_for_a_row_is_refused(run_cli, seeded_url, tmp_path):
    path = write(tmp_path, "statement.csv", "Date,Description,Amount\n2025-05-01,Mystery,10\n")
    before = snapshot(seeded_url)
    assert_refused(
        run_import(run_cli, seeded_url, path),
        'statement.csv line 2: no category for "Mystery"',
        "--default-category",
    )
    assert snapshot(seeded_url) == before


def test_import_category_column_is_used_and_checked(run_cli, seeded_url, tmp_path):
    mapping = MAPPING + ",category=Category"
    good = write(
        tmp_path,
        "good.csv",
        "Date,Description,Amount,Category\n2025-05-01,Bus,40,transport\n2025-05-02,Snack,20,\n",
    )
    result = run_import(run_cli, seeded_url, good, "--default-category", "Food", mapping=mapping)
    assert result.exit_code == 0, result.output
    assert [(row[1], row[3]) for row in imported(seeded_url)] == [
        ("Transport", "Bus"),
        ("Food", "Snack"),
    ]
    bad = write(tmp_path, "bad.csv", "Date,Description,Amount,Category\n2025-05-03,X,1,Travel\n")
    before = snapshot(seeded_url)
    assert_refused(
        run_import(run_cli, seeded_url, bad, mapping=mapping),
        'bad.csv line 2: category "Travel" does not exist',
    )
    assert snapshot(seeded_url) == before


def test_import_decimal_comma_semicolon_and_mapping_file(run_cli, seeded_url, tmp_path):
    path = write(
        tmp_path,
        "bank.csv",
        "Buchungstag;Verwendungszweck;Betrag\n01.05.2025;Miete;1.234,56\n02.05.2025;Kaffee;3,50\n",
    )
    mapping = write(
        tmp_path,
        "mapping.txt",
        "# bank export columns\ndate=Buchungstag\namount=Betrag\nnote=Verwendungszweck\n",
    )
    result = run_import(
        run_cli,
        seeded_url,
        path,
        "--delimiter",
        ";",
        "--decimal-comma",
        "--date-format",
        "%d.%m.%Y",
        "--default-category",
        "Rent",
        "--currency",
        "INR",
        mapping=mapping,
    )
    assert result.exit_code == 0, result.output
    assert query(
        seeded_url,
        """
        select date::text, amount, currency from expenses
        where import_fingerprint is not null order by date""",
    ) == [("2025-05-01", Decimal("1234.56"), "INR"), ("2025-05-02", Decimal("3.50"), "INR")]


def test_import_refuses_currency_other_than_users(run_cli, seeded_url, tmp_path):
    path = write(tmp_path, "statement.csv", STATEMENT)
    before = snapshot(seeded_url)
    assert_refused(
        run_import(
            run_cli,
            seeded_url,
            path,
            "--date-format",
            "%d/%m/%Y",
            "--default-category",
            "Food",
            "--currency",
            "EUR",
        ),
        'Error: currency "EUR" differs from aman@example.com\'s currency INR. '
        "Budgets and totals are kept in one currency per user; record the amount "
        "in INR.",
    )
    assert snapshot(seeded_url) == before


def test_import_debits_negative_skips_credits(run_cli, seeded_url, tmp_path):
    path = write(
        tmp_path,
        "statement.csv",
        "Date,Description,Amount\n2025-05-01,Salary,50000.00\n2025-05-02,Groceries,-812.40\n",
    )
    result = run_import(
        run_cli, seeded_url, path, "--debits-negative", "--default-category", "Food"
    )
    assert result.exit_code == 0, result.output
    assert "Imported 1 of 1 row " in result.output and "skipped 1 credit row" in result.output
    assert [row[2] for row in imported(seeded_url)] == [Decimal("812.40")]


def test_import_crossing_budget_fires_one_alert(run_cli, seeded_url, tmp_path):
    # Transport: 150.00 of 2000.00 spent; 30 rows of 100.00 cross the budget once.
    rows = "".join(f"2025-05-{day:02d},Metro,100.00\n" for day in range(1, 31))
    path = write(tmp_path, "statement.csv", "Date,Description,Amount\n" + rows)
    result = run_import(run_cli, seeded_url, path, "--default-category", "Transport")
    assert result.exit_code == 0, result.output
    assert query(seeded_url, "select message from alerts") == [
        ("Budget exceeded for Transport for May 2025. Spent: 3150.00 / 2000.00",)
    ]


@pytest.mark.parametrize(
    "mapping, fragment",
    [
        ("date=Date,amount=Total", 'has no column "Total" (for amount)'),
        ("date=Date", "does not say which column holds amount"),
        ("date=Date,amount=Amount,colour=Red", '"colour=Red" is not a field=Column pair'),
    ],
)
def test_import_refuses_bad_mapping(run_cli, seeded_url, tmp_path, mapping, fragment):
    path = write(tmp_path, "statement.csv", STATEMENT)
    before = snapshot(seeded_url)
    assert_refused(
        run_import(run_cli, seeded_url, path, "--default-category", "Food", mapping=mapping),
        fragment,
    )
    assert snapshot(seeded_url) == before


def test_import_refuses_bad_rules_file(run_cli, seeded_url, tmp_path):
    path = write(tmp_path, "statement.csv", STATEMENT)
    unknown = write(tmp_path, "rules.csv", "pattern,category\nswiggy,Takeaway\n")
    assert_refused(
        run_import(run_cli, seeded_url, path, "--rules", unknown),
        'rules file line 2: category "Takeaway" does not exist',
    )
    broken = write(tmp_path, "broken.csv", "/([a-z/,Food\n")
    assert_refused(
        run_import(run_cli, seeded_url, path, "--rules", broken),
        "broken.csv line 1",
        "not a valid regular expression",
    )


def test_import_unreachable_database_is_one_line_with_password_masked(run_cli, tmp_path):
    path = write(tmp_path, "statement.csv", STATEMENT)
    url = "postgresql://tracker:s3cret@/tracker?host=/nonexistent-socket-dir"
    result = run_import(run_cli, url, path, "--default-category", "Food")
    assert_refused(result, "cannot connect to", "tracker:***@", code=1)
    assert "s3cret" not in result.output


def test_import_non_utf8_file_names_line_and_byte(run_cli, seeded_url, tmp_path):
    # A Latin-1 bank export: "Café" (byte 0xe9) on line 1502. The file is decoded in blocks,
    # ahead of the csv reader, so the line must be found in the file, not taken from the reader.
    good = [f"2025-05-{day % 28 + 1:02d},Row {day},10.00\n" for day in range(3000)]
    text = (
        "Date,Description,Amount\n"
        + "".join(good[:1500])
        + "2025-05-03,Café,120.00\n"
        + "".join(good[1500:])
    )
    path = tmp_path / "statement.csv"
    path.write_bytes(text.encode("latin-1"))
    before = snapshot(seeded_url)
    assert_refused(
        run_import(run_cli, seeded_url, str(path), "--default-category", "Food"),
        "Error: statement.csv line 1502: not valid utf-8 text (byte 0xe9). "
        "Pass --encoding cp1252 (or the file's encoding)",
    )
    assert snapshot(seeded_url) == before
    result = run_import(
        run_cli, seeded_url, str(path), "--default-category", "Food", "--encoding", "cp1252"
    )
    assert result.exit_code == 0, result.output
    assert (
        scalar(
            seeded_url,
            "select note from expenses where amount = 120.00 and import_fingerprint is not null",
        )
        == "Café"
    )


def test_import_unknown_encoding_is_refused(run_cli, seeded_url, tmp_path):
    path = write(tmp_path, "statement.csv", STATEMENT)
    before = snapshot(seeded_url)
    assert_refused(
        run_import(
            run_cli, seeded_url, path, "--default-category", "Food", "--encoding", "nonsense"
        ),
        'Error: unknown --encoding "nonsense". Use a Python codec name such as '
        "utf-8, cp1252 or latin-1.",
    )
    assert_refused(
        run_import(run_cli, seeded_url, path, "--default-category", "Food", "--encoding", "base64"),
        '--encoding "base64" is not a text encoding',
    )
    assert snapshot(seeded_url) == before


def test_import_bad_record_over_several_lines_names_its_first_line(run_cli, seeded_url, tmp_path):
    # The quoted note on line 3 runs over lines 3-5; the record's amount is bad.
    path = write(
        tmp_path,
        "statement.csv",
        "Date,Description,Amount\n2025-05-01,Fine,10\n"
        '2025-05-02,"Rent\nfor\nMay",abc\n2025-05-03,Fine,10\n',
    )
    before = snapshot(seeded_url)
    assert_refused(
        run_import(run_cli, seeded_url, path, "--default-category", "Food"),
        'statement.csv line 3: amount "abc" is not a number',
    )
    assert snapshot(seeded_url) == before


def test_import_unreadable_csv_record_names_its_first_line(run_cli, seeded_url, tmp_path):
    # An unclosed quote on line 3 swallows the rest of the file into one field, past the csv
    # module's field size limit.
    path = write(
        tmp_path,
        "statement.csv",
        "Date,Description,Amount\n2025-05-01,Fine,10\n"
        '2025-05-02,"Unclosed,10\n' + "2025-05-03,Filler row,10\n" * 10000,
    )
    before = snapshot(seeded_url)
    assert_refused(
        run_import(run_cli, seeded_url, path, "--default-category", "Food"),
        "statement.csv line 3: cannot read the CSV record (field larger than field limit",
        "nothing was imported",
    )
    assert snapshot(seeded_url) == before


def test_import_non_utf8_rules_file_is_refused(run_cli, seeded_url, tmp_path):
    path = write(tmp_path, "statement.csv", STATEMENT)
    rules = tmp_path / "rules.csv"
    rules.write_bytes("pattern,category\ncafé,Food\n".encode("latin-1"))
    assert_refused(
        run_import(run_cli, seeded_url, path, "--rules", str(rules)),
        "rules file rules.csv line 2: not valid utf-8 text (byte 0xe9)",
    )


def test_import_of_the_same_file_by_two_sessions_at_once_adds_it_once(seeded_url, tmp_path):
    import threading
    import time

    import psycopg

    from tracker.everyday.importer import import_file, import_statement, parse_mapping

    path = write(tmp_path, "statement.csv", STATEMENT)
    options = {"date_format": "%d/%m/%Y", "default_category": "Food"}
    first = psycopg.connect(seeded_url)
    try:
        # The first import's transaction stays open (its rows are not committed yet).
        first.execute("select 1")
        done = import_statement(first, path, AMAN, parse_mapping(MAPPING), **options)
        assert done.inserted == 6
        results, errors = [], []

        def second_import():
            try:
                results.append(import_file(seeded_url, path, AMAN, MAPPING, **options))
            except Exception as exc:  # reported below
                errors.append(exc)

        second = threading.Thread(target=second_import)
        second.start()
        # The second one waits for the first (a lock), it neither fails nor goes ahead.
        deadline = time.monotonic() + 60
        while (
            scalar(
                seeded_url,
                "select count(*) from pg_stat_activity"
                " where wait_event_type = 'Lock' and datname = current_database()",
            )
            == 0
        ):
            assert time.monotonic() < deadline and second.is_alive(), errors
            time.sleep(0.05)
        first.commit()
    finally:
        first.close()
    second.join(timeout=60)
    assert not errors, errors
    assert [(r.inserted, r.duplicates) for r in results] == [(0, 6)]
    assert len(imported(seeded_url)) == 6


def test_import_fingerprint_folds_white_space_and_case_of_notes(run_cli, seeded_url, tmp_path):
    """Notes differing only in case, outer spaces and runs of white space count as one note:
    the fingerprints are sha256(user|date|amount|normalized note|occurrence), computed here."""
    import hashlib
    import re

    notes = ["Coffee  Shop", "coffee\tshop", " COFFEE SHOP ", "Tea Time", "tea \t\n time"]
    lines = "".join(f'2025-05-0{1 + (n >= 3)},10.00,"{note}"\n' for n, note in enumerate(notes))
    path = write(tmp_path, "statement.csv", "Date,Amount,Description\n" + lines)
    result = run_import(run_cli, seeded_url, path, "--default-category", "Food")
    assert result.exit_code == 0, result.output
    user_id = scalar(seeded_url, "select id from users where email = %s", [AMAN])
    expected, seen = set(), {}
    for n, note in enumerate(notes):
        key = (f"2025-05-0{1 + (n >= 3)}", re.sub(r"\s+", " ", note.strip(" ")).lower())
        seen[key] = seen.get(key, 0) + 1
        text = f"{user_id}|{key[0]}|10.00|{key[1]}|{seen[key]}"
        expected.add(hashlib.sha256(text.encode()).hexdigest())
    stored = query(seeded_url, "select import_fingerprint from expenses where note is not null")
    assert expected <= {row[0] for row in stored}
    assert len(expected) == 5
