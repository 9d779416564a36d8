"""verify (PostgreSQL + DuckDB + manifest) and scripts/verify.sh (psql, awk, sha256sum)."""

import json
import os
import subprocess
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from tracker.plumbing import config

SCRIPT = config.PROJECT_DIR / "scripts" / "verify.sh"
# Notes that fool naive CSV handling: commas, quotes, newlines (LF and CRLF), empty text.
TRICKY_NOTES = [
    'Dinner, "fancy"\nwith friends',
    'He said ""no""',
    "two\r\nlines, and a comma",
    "",
    ",",
    '"',
]


def verify_sh(url: str, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), str(out)],
        cwd=config.PROJECT_DIR,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=300,
    )


def add_expenses(url: str, notes: list[str], amount: str = "123.45") -> None:
    with psycopg.connect(url) as conn:
        for note in notes:
            conn.execute(
                "insert into expenses (user_id, category_id, amount, date, note) "
                "select users.id, categories.id, %s, date '2025-05-15', %s "
                "from users, categories "
                "where users.email = 'priya@example.com' and categories.name = 'Food'",
                [amount, note],
            )


@pytest.fixture
def exported(seeded_url, run_cli, tmp_path) -> tuple[str, Path]:
    # Priya's Food budget is 5,000: 6 x 900 takes her over, so `remaining` has a negative.
    add_expenses(seeded_url, TRICKY_NOTES, amount="900.00")
    out = tmp_path / "exports"
    assert run_cli(seeded_url, "run").exit_code == 0
    result = run_cli(seeded_url, "export", "--out", str(out))
    assert result.exit_code == 0, result.output
    return seeded_url, out


def file_line(output: str, path: str) -> str:
    lines = [line for line in output.splitlines() if f" {path}" in line]
    assert lines, output
    return lines[0]


def test_verify_passes_on_a_fresh_export(exported, run_cli):
    url, out = exported
    result = run_cli(url, "verify", "--out", str(out))
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert f"PASS: {len(manifest['files'])} files in {out} match" in result.output
    line = file_line(result.output, "csv/fact_expenses.csv")
    assert line.split() == ["PASS", "csv/fact_expenses.csv", "11", "11", "11", "ok", "ok"]


def test_verify_sh_passes_on_a_fresh_export_with_tricky_notes(exported):
    url, out = exported
    done = verify_sh(url, out)
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert len([line for line in done.stdout.splitlines() if line.startswith("PASS ")]) == len(
        manifest["files"]
    )
    # 5 seed expenses + 6 with tricky notes; the sum computed independently here.
    with psycopg.connect(url) as conn:
        total, remaining = conn.execute(
            "select (select sum(amount) from expenses), "
            "(select sum(amount) from budgets) - (select sum(amount) from expenses "
            "where (user_id, category_id, date_trunc('month', date)) in "
            "(select user_id, category_id, month from budgets))"
        ).fetchone()
        lowest = conn.execute("select min(remaining) from analytics.budget_vs_actual").fetchone()[0]
    assert lowest < 0, "a negative money value must be summed too"
    assert f"PASS csv/fact_expenses.csv: rows=11 amount={total}" in done.stdout
    assert f"remaining={remaining}" in file_line(done.stdout, "csv/budget_vs_actual.csv")
    assert done.stdout.rstrip().endswith(
        f"PASS: {len(manifest['files'])} files in {out} match the manifest and PostgreSQL"
    )


def test_verify_sh_sums_money_exactly_beyond_double_precision(seeded_url, run_cli, tmp_path):
    # 2,000 x 9,999,999,999.99 is 1,999,999,999,999,998,000 cents: far past 2^53, where a plain
    # awk sum of doubles loses cents.
    with psycopg.connect(seeded_url) as conn:
        conn.execute(
            "insert into expenses (user_id, category_id, amount, date, note) "
            "select users.id, categories.id, 9999999999.99, date '2025-06-01' + (n % 28), 'big' "
            "from users, categories, generate_series(1, 2000) as n "
            "where users.email = 'aman@example.com' and categories.name = 'Rent'"
        )
    out = tmp_path / "exports"
    assert run_cli(seeded_url, "run").exit_code == 0
    assert run_cli(seeded_url, "export", "--out", str(out), "--format", "csv").exit_code == 0
    expected = Decimal("5100.00") + 2000 * Decimal("9999999999.99")
    naive = sum([5100.00] + [9999999999.99] * 2000)
    assert f"{naive:.2f}" != str(expected)
    done = verify_sh(seeded_url, out)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"amount={expected}" in file_line(done.stdout, "csv/fact_expenses.csv")


def test_verify_fails_on_a_truncated_file(exported, run_cli):
    url, out = exported
    path = out / "csv" / "fact_expenses.csv"
    data = path.read_bytes()
    # Cut inside the note with an embedded newline: the last record's quote stays open.
    cut = data.index(b'Dinner, ""fancy""\nwith') + len(b'Dinner, ""fancy""')
    path.write_bytes(data[:cut])
    result = run_cli(url, "verify", "--out", str(out))
    assert result.exit_code == 1
    assert file_line(result.output, "csv/fact_expenses.csv").startswith("FAIL")
    assert "csv/fact_expenses.csv does not match its sha256 in the manifest" in result.output
    assert "FAIL: 1 of" in result.output
    done = verify_sh(url, out)
    assert done.returncode == 1
    line = file_line(done.stdout, "csv/fact_expenses.csv")
    assert line.startswith("FAIL csv/fact_expenses.csv:")
    assert "unterminated quote" in line
    assert "manifest rows=11" in line
    assert done.stdout.rstrip().splitlines()[-1].startswith("FAIL: 1 of")


def test_verify_fails_on_a_file_cut_at_a_record_boundary(exported, run_cli):
    url, out = exported
    path = out / "csv" / "monthly_totals.csv"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))
    result = run_cli(url, "verify", "--out", str(out))
    assert result.exit_code == 1
    assert "DuckDB counts 1 rows in csv/monthly_totals.csv, the manifest 2" in result.output
    done = verify_sh(url, out)
    assert done.returncode == 1
    line = file_line(done.stdout, "csv/monthly_totals.csv")
    assert "file has rows=1" in line and "manifest rows=2" in line


def test_verify_fails_on_an_edited_row(exported, run_cli):
    url, out = exported
    path = out / "csv" / "fact_expenses.csv"
    data = path.read_bytes()
    assert data.count(b",1200.00,") == 1
    path.write_bytes(data.replace(b",1200.00,", b",1209.00,"))  # same size, different money
    result = run_cli(url, "verify", "--out", str(out))
    assert result.exit_code == 1
    assert (
        "sum(amount) is " in result.output and "in DuckDB (csv/fact_expenses.csv)" in result.output
    )
    done = verify_sh(url, out)
    assert done.returncode == 1
    line = file_line(done.stdout, "csv/fact_expenses.csv")
    assert "sha256" in line
    assert "rows differ from psql" in line and "1209.00" in line and "1200.00" in line


def test_verify_fails_on_a_missing_file(exported, run_cli):
    url, out = exported
    (out / "csv" / "dim_category.csv").unlink()
    (out / "parquet" / "dim_user.parquet").unlink()
    result = run_cli(url, "verify", "--out", str(out))
    assert result.exit_code == 1
    assert "csv/dim_category.csv is missing" in result.output
    assert "parquet/dim_user.parquet is missing" in result.output
    assert "FAIL: 2 of" in result.output
    done = verify_sh(url, out)
    assert done.returncode == 1
    assert "FAIL csv/dim_category.csv: missing" in done.stdout
    assert "FAIL parquet/dim_user.parquet: missing" in done.stdout


def test_verify_fails_when_the_database_changed_since_the_export(exported, run_cli):
    url, out = exported
    add_expenses(url, ["after the export"])
    # The marts are tables: what changed is what the next run builds from the new data.
    assert run_cli(url, "run").exit_code == 0
    result = run_cli(url, "verify", "--out", str(out))
    assert result.exit_code == 1
    assert (
        "PostgreSQL has 12 rows in analytics.fact_expenses, the manifest 11: the data "
        "changed since the export"
    ) in result.output
    done = verify_sh(url, out)
    assert done.returncode == 1
    assert "PostgreSQL has rows=12" in file_line(done.stdout, "csv/fact_expenses.csv")


def test_verify_without_a_manifest_says_to_export(seeded_url, run_cli, tmp_path):
    result = run_cli(seeded_url, "verify", "--out", str(tmp_path))
    assert result.exit_code == 2
    assert f"Error: {tmp_path / 'manifest.json'} does not exist. Export first" in result.stderr
    done = verify_sh(seeded_url, tmp_path)
    assert done.returncode == 1
    assert "manifest.json does not exist" in done.stderr
