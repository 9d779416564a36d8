"""report: the HTML report's numbers against the base tables, escaping, options and errors."""

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
from report_support import (
    HOSTILE_CATEGORY,
    HOSTILE_NAME,
    HOSTILE_NOTE,
    ReportPage,
    assert_section_matches,
    expected_month,
)

PROJECT = Path(__file__).resolve().parent.parent


def report(run_cli, url, out, *args):
    result = run_cli(url, "report", "--out", str(out), *args)
    return result, (out.read_text(encoding="utf-8") if out.is_file() else None)


def user_ids(url) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("select email, id from users").fetchall())


def test_report_totals_equal_the_base_tables_on_the_sample(seeded_url, run_cli, tmp_path):
    assert run_cli(seeded_url, "run").exit_code == 0
    result, html = report(run_cli, seeded_url, tmp_path / "report.html")
    assert result.exit_code == 0, result.output
    assert "2 people" in result.output
    page = ReportPage(html)
    ids = user_ids(seeded_url)
    assert set(page.sections) == set(ids.values())
    for user_id in ids.values():
        section = page.sections[user_id]
        # Without --month, each user's latest month with spending: May 2025 in the seeds.
        assert section["month"] == "2025-05-01"
        assert_section_matches(section, expected_month(seeded_url, user_id, "2025-05-01"))
    aman = page.sections[ids["aman@example.com"]]
    assert aman["cards"]["spent"] == ("4800.00", "₹4,800.00")
    assert ("h1", "Spending report") in page.headings
    assert {
        "Monthly spending",
        "Top categories",
        "Budget vs actual",
        "Alerts",
        "Biggest expenses",
    } <= {text for level, text in page.headings if level == "h3"}
    # One self-contained file: no script, no external reference, charts inline.
    assert "<script" not in html.lower()
    assert not re.search(r'(src|href)="(?!#)', html), "only in-page links"
    assert "http://" not in html.replace("http://www.w3.org/", "")
    assert html.count("<svg") == 6
    # Each chart's stylesheet stays inside the charts; ids are unique on the page.
    assert re.findall(r"<style type=\"text/css\">([^{]*)\{", html) == ["svg.chart *"] * 6
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids))


def test_report_totals_equal_the_base_tables_on_generated_data(db_url, run_cli, tmp_path):
    generated = run_cli(
        db_url,
        "generate",
        "--users",
        "6",
        "--expenses",
        "3000",
        "--months",
        "5",
        "--seed",
        "11",
        "--start-month",
        "2024-11",
    )
    assert generated.exit_code == 0, generated.output
    assert run_cli(db_url, "run").exit_code == 0
    result, html = report(run_cli, db_url, tmp_path / "all.html", "--month", "2025-01")
    assert result.exit_code == 0, result.output
    page = ReportPage(html)
    ids = sorted(user_ids(db_url).values())
    assert sorted(page.sections) == ids
    alerts = 0
    for user_id in ids:
        assert page.sections[user_id]["month"] == "2025-01-01"
        expected = expected_month(db_url, user_id, "2025-01-01")
        assert_section_matches(page.sections[user_id], expected)
        alerts += expected["alerts"]
    assert alerts > 0, "the generated month should hold some alerts"
    # One user, their latest month (March 2025, the last generated).
    one = ids[-1]
    result, html = report(run_cli, db_url, tmp_path / "one.html", "--user", str(one))
    assert result.exit_code == 0, result.output
    page = ReportPage(html)
    assert list(page.sections) == [one]
    assert page.sections[one]["month"] == "2025-03-01"
    assert_section_matches(page.sections[one], expected_month(db_url, one, "2025-03-01"))


def test_report_escapes_hostile_notes_and_names(seeded_url, run_cli, tmp_path):
    with psycopg.connect(seeded_url, autocommit=True) as conn:
        user_id = conn.execute(
            "insert into users (name, email, currency) values (%s, 'evil@example.com', 'CHF') "
            "returning id",
            [HOSTILE_NAME],
        ).fetchone()[0]
        category_id = conn.execute(
            "insert into categories (name, color) values (%s, '#123456') returning id",
            [HOSTILE_CATEGORY],
        ).fetchone()[0]
        conn.execute(
            "insert into budgets (user_id, category_id, month, amount) "
            "values (%s, %s, '2025-05-01', 1000.00)",
            [user_id, category_id],
        )
        conn.execute(
            "insert into expenses (user_id, category_id, amount, currency, date, note) "
            "values (%s, %s, 1234.50, 'CHF', '2025-05-07', %s)",
            [user_id, category_id, HOSTILE_NOTE],
        )
    assert run_cli(seeded_url, "run").exit_code == 0
    result, html = report(run_cli, seeded_url, tmp_path / "evil.html", "--user", "evil@example.com")
    assert result.exit_code == 0, result.output
    lowered = html.lower()
    assert "<script" not in lowered and "<img" not in lowered and "<b>" not in lowered
    assert "</title><" not in html
    # Every hostile string is there as text, escaped, in the page and in the charts' labels.
    assert "&lt;script&gt;alert(&#34;note&#34;)&lt;/script&gt;&lt;/svg&gt;" in html
    assert (
        "&lt;/text&gt;&lt;/svg&gt;&lt;script&gt;alert(2)&lt;/script&gt; $x$ &amp; &lt;b&gt;" in html
    )
    page = ReportPage(html)
    section = page.sections[user_id]
    assert section["name"] == HOSTILE_NAME
    assert section["tables"]["expenses"][0]["cells"][3][1] == HOSTILE_NOTE
    assert section["tables"]["budgets"][0]["cells"][0][1] == HOSTILE_CATEGORY
    # The user's own currency, exact: over budget by 234.50.
    assert section["cards"]["spent"] == ("1234.50", "CHF 1,234.50")
    assert section["cards"]["remaining"] == ("-234.50", "-CHF 234.50")
    assert_section_matches(section, expected_month(seeded_url, user_id, "2025-05-01"), "CHF ")


def test_report_for_a_user_without_data_and_bad_input(seeded_url, run_cli, tmp_path):
    assert (
        run_cli(
            seeded_url, "user", "add", "--name", "New Person", "--email", "new@example.com"
        ).exit_code
        == 0
    )
    assert run_cli(seeded_url, "run").exit_code == 0
    result, html = report(run_cli, seeded_url, tmp_path / "new.html", "--user", "new@example.com")
    assert result.exit_code == 0, result.output
    assert "No expenses or budgets yet." in html
    # A month without anything: zeros, and no rolling average to show.
    result, html = report(
        run_cli,
        seeded_url,
        tmp_path / "jan.html",
        "--user",
        "aman@example.com",
        "--month",
        "2024-01",
    )
    assert result.exit_code == 0, result.output
    (section,) = ReportPage(html).sections.values()
    assert section["cards"]["spent"] == ("0.00", "₹0.00")
    assert section["cards"]["rolling_3m_avg"] == ("", "–")
    assert "Nothing spent in January 2024." in html and "No budgets for January 2024." in html
    out = tmp_path / "bad.html"
    for args, message in (
        (("--month", "2025-13"), 'Error: --month "2025-13" is not a month. Use YYYY-MM'),
        (("--user", "nobody@example.com"), 'Error: user "nobody@example.com" does not exist.'),
    ):
        result, written = report(run_cli, seeded_url, out, *args)
        assert result.exit_code == 2, result.output
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert written is None
    result, _ = report(run_cli, seeded_url, tmp_path, "--month", "2025-05")
    assert result.exit_code == 2 and "is a directory" in result.stderr


def test_report_before_run_names_the_missing_model(seeded_url, run_cli, tmp_path):
    result, written = report(run_cli, seeded_url, tmp_path / "r.html")
    assert result.exit_code == 1
    assert "Error: the report reads analytics." in result.stderr
    assert "python cli.py run" in result.stderr and written is None


def test_make_export_writes_the_report_and_the_powerbi_project(seeded_url, tmp_path):
    out = tmp_path / "exports"
    env = {**os.environ, "DATABASE_URL": seeded_url}
    # The venv is there already: a fresh stamp keeps make from reinstalling it.
    stamp = tmp_path / "installed"
    stamp.touch()
    done = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "export",
            f"EXPORT_DIR={out}",
            f"PY={sys.executable}",
            f"STAMP={stamp}",
        ],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (out / "manifest.json").is_file() and (
        out / "parquet" / "fact_expenses.parquet"
    ).is_file()
    assert (out / "powerbi" / "SpendingTracker.pbip").is_file()
    page = ReportPage((out / "report.html").read_text(encoding="utf-8"))
    assert len(page.sections) == 2
