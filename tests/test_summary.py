"""summary through the CLI against real PostgreSQL."""

import json
from datetime import date

from everyday_support import assert_refused, query

AMAN = "aman@example.com"


def test_summary_json_has_totals_categories_top_expenses_and_alerts(run_cli, seeded_url):
    assert (
        run_cli(
            seeded_url,
            "expense",
            "add",
            "--user",
            AMAN,
            "--category",
            "Transport",
            "--amount",
            "1900",
            "--date",
            "2025-05-28",
            "--note",
            "Train",
        ).exit_code
        == 0
    )
    assert (
        run_cli(
            seeded_url,
            "expense",
            "add",
            "--user",
            AMAN,
            "--category",
            "Rent",
            "--amount",
            "100",
            "--date",
            "2025-05-29",
        ).exit_code
        == 0
    )
    result = run_cli(
        seeded_url, "summary", "--user", AMAN, "--month", "2025-05", "--format", "json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    expected_total = query(
        seeded_url,
        """
        select sum(amount) from expenses
        where user_id = (select id from users where email = %s)
            and date >= '2025-05-01' and date < '2025-06-01'""",
        [AMAN],
    )[0][0]
    assert report["total_spent"] == str(expected_total) == "6800.00"
    assert report["total_budget"] == "15000.00"
    lines = {line["category"]: line for line in report["categories"]}
    assert lines["Transport"] == {
        "category": "Transport",
        "budget": "2000.00",
        "spent": "2050.00",
        "remaining": "-50.00",
        "expense_count": 2,
        "status": "over",
    }
    assert lines["Rent"]["budget"] is None and lines["Rent"]["status"] == "no budget"
    assert lines["Food"]["status"] == "under"
    assert [e["amount"] for e in report["top_expenses"]] == [
        "3200.00",
        "1900.00",
        "1200.00",
        "250.00",
        "150.00",
    ]
    assert [a["message"] for a in report["alerts"]] == [
        "Budget exceeded for Transport for May 2025. Spent: 2050.00 / 2000.00"
    ]


def test_summary_table_is_readable(run_cli, seeded_url):
    result = run_cli(seeded_url, "summary", "--user", AMAN, "--month", "2025-05")
    assert result.exit_code == 0, result.output
    assert "Aman Kumar <aman@example.com>, May 2025" in result.output
    assert "Spent 4,800.00 INR of 15,000.00 budgeted." in result.output
    assert "Top expenses:" in result.output and "New headphones" in result.output
    assert "No alerts this month." in result.output


def test_summary_defaults_to_current_month(run_cli, seeded_url):
    result = run_cli(seeded_url, "summary", "--user", AMAN, "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["month"] == date.today().strftime("%Y-%m")
    assert report["total_spent"] == "0.00" and report["categories"] == []


def test_summary_refuses_bad_month_and_unknown_user(run_cli, seeded_url):
    assert_refused(
        run_cli(seeded_url, "summary", "--user", AMAN, "--month", "2025-5"), 'month "2025-5"'
    )
    assert_refused(
        run_cli(seeded_url, "summary", "--user", "ghost@example.com"),
        'user "ghost@example.com" does not exist',
    )


def test_summary_status_agrees_with_budget_vs_actual_mart(run_cli, seeded_url):
    assert run_cli(seeded_url, "category", "add", "--name", "Travel").exit_code == 0
    # (category, budget, spent, status): 0 of 0, spending on a 0 budget, 79.99 %, 80 %,
    # 100 % and 100.01 % of the budget.
    edges = [
        ("Food", "0", None, "near"),
        ("Transport", "0", "0.01", "over"),
        ("Rent", "100", "79.99", "under"),
        ("Shopping", "100", "80", "near"),
        ("Entertainment", "100", "100", "near"),
        ("Travel", "100", "100.01", "over"),
    ]
    for category, budget, spent, _ in edges:
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
                "2026-01",
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
                    category,
                    "--amount",
                    spent,
                    "--date",
                    "2026-01-10",
                ).exit_code
                == 0
            )
    result = run_cli(
        seeded_url, "summary", "--user", AMAN, "--month", "2026-01", "--format", "json"
    )
    assert result.exit_code == 0, result.output
    statuses = {
        line["category"]: line["status"] for line in json.loads(result.stdout)["categories"]
    }
    assert statuses == {category: status for category, *_, status in edges}
    assert run_cli(seeded_url, "run").exit_code == 0
    assert statuses == dict(
        query(
            seeded_url,
            """
        select category, status from analytics.budget_vs_actual
        where month = '2026-01-01'
            and user_id = (select id from users where email = %s)""",
            [AMAN],
        )
    )
