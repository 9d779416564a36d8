"""export always exports what queries/ says: missing or stale models are built first."""

import csv
import hashlib
import shutil

import psycopg
import pytest

from tracker.pipeline.models import load_project, render
from tracker.plumbing import config


@pytest.fixture
def queries(tmp_path, monkeypatch):
    """A private copy of queries/ that the CLI uses, so a test can change a model."""
    copy = tmp_path / "queries"
    shutil.copytree(config.QUERIES_DIR, copy)
    monkeypatch.setattr(config, "QUERIES_DIR", copy)
    return copy


def read_csv(path) -> list[dict]:
    with open(path, encoding="utf-8-sig", newline="") as source:
        return list(csv.DictReader(source))


def fetch(url: str, query: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def built_lines(stderr: str) -> list[str]:
    return [line.split()[1] for line in stderr.splitlines() if line.strip().startswith("built ")]


def test_export_without_run_builds_every_model_then_exports(seeded_url, run_cli, tmp_path):
    assert fetch(seeded_url, "select to_regnamespace('analytics')") == [(None,)]
    out = tmp_path / "out"
    result = run_cli(seeded_url, "export", "--out", str(out), "--format", "csv", "--no-powerbi")
    assert result.exit_code == 0, result.output + result.stderr
    project = load_project()
    # Every exported model and everything it reads was built first, each named once.
    assert sorted(built_lines(result.stderr)) == sorted(
        f"analytics.{name}" for name in project.order
    )
    assert "Built 15 missing or stale models first." in result.stderr
    # The facts hold every base row (counted independently from the base tables).
    ((expenses,),) = fetch(seeded_url, "select count(*) from public.expenses")
    assert len(read_csv(out / "csv" / "fact_expenses.csv")) == expenses
    # What was built is recorded: the sha256 of each model's rendered SQL.
    recorded = dict(fetch(seeded_url, "select model, sql_sha256 from tracker_state.model_builds"))
    assert recorded == {
        name: hashlib.sha256(render(project[name]).encode("utf-8")).hexdigest()
        for name in project.order
    }
    # Nothing is stale now: a second export builds nothing.
    again = run_cli(seeded_url, "export", "--out", str(out), "--format", "csv", "--no-powerbi")
    assert again.exit_code == 0, again.stderr
    assert built_lines(again.stderr) == []


def test_export_rebuilds_a_stale_model_and_exports_its_new_rows(
    seeded_url, run_cli, queries, tmp_path
):
    assert run_cli(seeded_url, "run").exit_code == 0
    path = queries / "marts" / "monthly_totals.sql"
    path.write_text(
        path.read_text().replace("count(*) as expense_count", "count(*) * 10 as expense_count")
    )
    out = tmp_path / "out"
    result = run_cli(
        seeded_url,
        "export",
        "--out",
        str(out),
        "--format",
        "csv",
        "--no-powerbi",
        "--select",
        "monthly_totals",
        "--select",
        "dim_date",
    )
    assert result.exit_code == 0, result.output + result.stderr
    # Only the changed model is rebuilt, with what reads it (nothing it reads changed).
    project = load_project()
    assert sorted(built_lines(result.stderr)) == sorted(
        f"analytics.{name}" for name in {"monthly_totals"} | project.downstream("monthly_totals")
    )
    expected = {
        (str(user_id), str(month)): str(count * 10)
        for user_id, month, count in fetch(
            seeded_url,
            "select user_id, cast(date_trunc('month', date) as date), count(*) "
            "from public.expenses group by 1, 2",
        )
    }
    rows = read_csv(out / "csv" / "monthly_totals.csv")
    assert {(row["user_id"], row["month"]): row["expense_count"] for row in rows} == expected
    manifest_models = sorted(path.name for path in (out / "csv").iterdir() if path.suffix == ".csv")
    assert manifest_models == ["dim_date.csv", "monthly_totals.csv"]


def test_export_rebuild_failure_changes_nothing(seeded_url, run_cli, queries, tmp_path):
    assert run_cli(seeded_url, "run").exit_code == 0
    before = fetch(
        seeded_url, "select model, sql_sha256 from tracker_state.model_builds order by 1"
    )
    path = queries / "marts" / "monthly_totals.sql"
    path.write_text(path.read_text().replace("count(*) as expense_count", "1 / 0 as expense_count"))
    out = tmp_path / "out"
    result = run_cli(seeded_url, "export", "--out", str(out), "--no-powerbi")
    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('Error: model "monthly_totals" failed in the database'), last
    assert not (out / "manifest.json").exists()
    after = fetch(seeded_url, "select model, sql_sha256 from tracker_state.model_builds order by 1")
    assert after == before


def test_export_after_run_with_vars_keeps_them(seeded_url, run_cli, queries, tmp_path):
    # Aman's Shopping: 3200.00 of 5000.00 is 64 %: near from 60.5 %, under at the default 80 %.
    vars_json = '{"near_threshold_pct": 60.5}'
    assert run_cli(seeded_url, "run", "--vars", vars_json).exit_code == 0
    out = tmp_path / "out"
    args = ("export", "--out", str(out), "--format", "csv", "--no-powerbi")
    result = run_cli(seeded_url, *args, "--select", "budget_vs_actual")
    assert result.exit_code == 0, result.stderr
    assert built_lines(result.stderr) == []  # built from today's queries/, with those vars
    # A stale model is rebuilt with the vars it was built with, not the defaults.
    path = queries / "marts" / "budget_vs_actual.sql"
    path.write_text(path.read_text() + "\n-- changed\n")
    result = run_cli(seeded_url, *args, "--select", "budget_vs_actual")
    assert result.exit_code == 0, result.stderr
    assert "analytics.budget_vs_actual" in built_lines(result.stderr)
    rows = read_csv(out / "csv" / "budget_vs_actual.csv")
    assert [row["status"] for row in rows if row["category"] == "Shopping"] == ["near"]
