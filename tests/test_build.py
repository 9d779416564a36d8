"""build: models, tests and export in one process; committed and exported only when tests pass."""

import json

import psycopg


def tree(path):
    """Every file under path with its bytes, to compare before and after."""
    return {
        str(file.relative_to(path)): file.read_bytes() for file in path.rglob("*") if file.is_file()
    }


def test_build_builds_tests_and_exports(seeded_url, run_cli, tmp_path):
    out = tmp_path / "exports"
    result = run_cli(seeded_url, "build", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "PASS: " in result.stdout and " 0 failed" in result.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["formats"] == ["csv", "parquet"]
    with psycopg.connect(seeded_url) as conn:
        expected = conn.execute("select count(*), sum(amount) from expenses").fetchone()
        kinds = dict(
            conn.execute(
                "select relname, relkind from pg_class"
                " where relnamespace = 'analytics'::regnamespace and relkind in ('r', 'v')"
            ).fetchall()
        )
    fact = next(entry for entry in manifest["files"] if entry["path"] == "csv/fact_expenses.csv")
    assert (fact["rows"], fact["money_sums"]["amount"]) == (expected[0], f"{expected[1]:.2f}")
    # Every exported model is a table built in the tested transaction.
    assert {kinds[name] for name in manifest["models"]} == {"r"}
    assert run_cli(seeded_url, "verify", "--out", str(out)).exit_code == 0


def test_build_with_a_failing_test_rolls_back_and_exports_nothing(seeded_url, run_cli, tmp_path):
    out = tmp_path / "exports"
    assert run_cli(seeded_url, "build", "--out", str(out)).exit_code == 0
    before = tree(out)
    with psycopg.connect(seeded_url, autocommit=True) as conn:
        built = conn.execute("select count(*) from analytics.fact_expenses").fetchone()[0]
        # Spending the alert trigger never saw: its totals drift and no alert fires.
        conn.execute("alter table expenses disable trigger user")
        conn.execute(
            "insert into expenses (user_id, category_id, amount, date) "
            "select users.id, categories.id, 99999.00, date '2025-05-20' "
            "from users, categories where users.email = 'priya@example.com' "
            "and categories.name = 'Food'"
        )
        conn.execute("alter table expenses enable trigger user")
    result = run_cli(seeded_url, "build", "--out", str(out))
    assert result.exit_code == 1, result.output
    assert "FAIL test budget_spending_matches_expenses" in result.stdout
    assert "FAIL test exceeded_budgets_have_an_alert" in result.stdout
    assert "nothing was exported" in result.stdout
    assert tree(out) == before
    with psycopg.connect(seeded_url) as conn:
        assert conn.execute("select count(*) from analytics.fact_expenses").fetchone()[0] == built
