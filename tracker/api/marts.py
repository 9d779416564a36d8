"""The four analytic marts for the caller, computed from the models' own SQL at request time.

Each mart and every model it reads from are rendered from queries/ (the same SQL `run`
builds) and inlined as CTEs over the base tables. The query has no user filter at all: it runs
as tracker_api, so row-level security on the base tables hands it the caller's rows only. The
analytics schema built by `run` is never read by the API (its views run with their owner's
rights, which row-level security does not bind), and tracker_api has no access to it.
"""

from datetime import date, datetime
from decimal import Decimal
from functools import cache

import psycopg
from psycopg import sql

from tracker.pipeline import models

MARTS = ("monthly_totals", "top_categories", "budget_vs_actual", "rolling_trend")


@cache
def mart_sql(name: str) -> str:
    """One statement computing mart `name` from the base tables."""
    project = models.load_project()
    statement = models.inline_sql(project, name, "postgres")
    order = project[name].order_by
    order_sql = ", ".join(sql.Identifier(column).as_string() for column in order)
    return statement + (f" order by {order_sql}" if order else "")


def read_mart(conn: psycopg.Connection, name: str) -> list[dict]:
    """The mart's rows visible to the current role, JSON-ready (decimals and dates as text)."""
    with conn.cursor() as cursor:
        # Rows first: in pipeline mode the description arrives with them.
        rows = cursor.execute(mart_sql(name)).fetchall()
        columns = [column.name for column in cursor.description or ()]
        return [
            {column: _json_value(value) for column, value in zip(columns, row, strict=True)}
            for row in rows
        ]


def _json_value(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    return str(value)
