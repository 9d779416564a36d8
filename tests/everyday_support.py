"""Helpers for the everyday-command tests: table snapshots and small queries."""

import psycopg

TABLES = ("users", "categories", "budgets", "expenses", "alerts", "budget_transfers")


def snapshot(url: str) -> dict:
    """Every row of every base table, to compare a database before and after a command."""
    with psycopg.connect(url) as conn:
        return {
            table: conn.execute(f"select * from {table} order by id").fetchall() for table in TABLES
        }


def query(url: str, statement: str, params=None) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(statement, params).fetchall()


def scalar(url: str, statement: str, params=None):
    return query(url, statement, params)[0][0]


def assert_refused(result, *fragments, code=2):
    """One line on stderr naming the problem, the exit code, nothing on stdout."""
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output
