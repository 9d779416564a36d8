"""Helpers for the report tests: read the page back, and recompute its numbers from base tables.

The expected figures are computed here in SQL over the base tables (users, expenses,
budgets, alerts), never through the analytics models the report reads.
"""

import re
from decimal import Decimal
from html.parser import HTMLParser

import psycopg

HOSTILE_NOTE = '<script>alert("note")</script></svg><img src=x onerror=alert(1)> & "quotes" \'too\''
HOSTILE_NAME = '</title><script>alert(1)</script> O\'Brien "&amp;"'
HOSTILE_CATEGORY = "</text></svg><script>alert(2)</script> $x$ & <b>"


class ReportPage(HTMLParser):
    """Per user section: its month, cards (metric -> (data-value, text)), table rows."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.sections: dict[int, dict] = {}
        self.headings: list[tuple[str, str]] = []
        self._section = None
        self._capture: list = []  # stack of (tag, target list or None)
        self._row = None
        self._table = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section" and "data-user-id" in attrs:
            self._section = {"month": attrs["data-month"], "cards": {}, "tables": {}, "name": None}
            self.sections[int(attrs["data-user-id"])] = self._section
        if tag in ("h1", "h2", "h3"):
            self._text = [tag, ""]
        if self._section is None:
            return
        if tag == "div" and "data-metric" in attrs:
            self._card = [attrs["data-metric"], attrs["data-value"], ""]
        self._in_value = tag == "span" and attrs.get("class") == "value"
        if tag == "table":
            self._table = self._section["tables"].setdefault(attrs.get("class", ""), [])
        if tag == "tr" and self._table is not None:
            self._row = {"attrs": attrs, "cells": []}
        if tag == "td" and self._row is not None:
            self._row["cells"].append([attrs.get("data-value"), ""])
            self._in_cell = True

    def handle_endtag(self, tag):
        if tag == "td":
            self._in_cell = False
        if tag in ("h1", "h2", "h3") and getattr(self, "_text", None):
            self.headings.append((self._text[0], self._text[1].strip()))
            if tag == "h2" and self._section is not None and self._section["name"] is None:
                self._section["name"] = self._text[1].strip()
            self._text = None
        if tag == "div" and getattr(self, "_card", None):
            metric, value, text = self._card
            self._section["cards"][metric] = (value, re.sub(r"\s+", " ", text).strip())
            self._card = None
        if tag == "tr" and self._row is not None:
            if self._row["cells"]:
                self._table.append(self._row)
            self._row = None
        if tag == "table":
            self._table = None
        if tag == "section":
            self._section = None

    def handle_data(self, data):
        if getattr(self, "_text", None):
            self._text[1] += data
        if getattr(self, "_card", None) and getattr(self, "_in_value", False):
            self._card[2] += data
        if self._row is not None and self._row["cells"] and getattr(self, "_in_cell", False):
            self._row["cells"][-1][1] += data


def money_text_matches(text: str, value: Decimal, symbol: str = "₹") -> bool:
    """₹1,234.50 shows exactly value (grouping commas, 2 decimals, the currency's symbol)."""
    value = Decimal(value)
    expected = f"{'-' if value < 0 else ''}{symbol}{abs(value):,.2f}"
    return text.strip() == expected


def expected_month(url: str, user_id: int, month: str) -> dict:
    """The report's figures for one user and month (YYYY-MM-01), from the base tables."""
    with psycopg.connect(url) as conn:
        ((spent, count),) = conn.execute(
            """
            select coalesce(sum(amount), 0), count(*) from expenses
            where user_id = %s and date >= %s::date and date < %s::date + interval '1 month'
            """,
            [user_id, month, month],
        ).fetchall()
        ((budget, remaining),) = conn.execute(
            """
            select coalesce(sum(budgets.amount), 0),
                coalesce(sum(budgets.amount - coalesce(spending.spent, 0)), 0)
            from budgets
            left join lateral (
                select sum(expenses.amount) as spent from expenses
                where expenses.user_id = budgets.user_id
                    and expenses.category_id = budgets.category_id
                    and expenses.date >= budgets.month
                    and expenses.date < budgets.month + interval '1 month'
            ) as spending on true
            where budgets.user_id = %s and budgets.month = %s::date
            """,
            [user_id, month],
        ).fetchall()
        ((average,),) = conn.execute(
            """
            with bounds as (
                select greatest(date_trunc('month', min(date))::date,
                                %s::date - interval '2 months')::date as first_month
                from expenses where user_id = %s
            )
            select round(sum(expenses.amount)
                / ((extract(year from age(%s::date, bounds.first_month)) * 12
                    + extract(month from age(%s::date, bounds.first_month)) + 1)), 2)
            from bounds
            left join expenses
                on expenses.user_id = %s
                and expenses.date >= bounds.first_month
                and expenses.date < %s::date + interval '1 month'
            group by bounds.first_month
            """,
            [month, user_id, month, month, user_id, month],
        ).fetchall()
        ((alerts,),) = conn.execute(
            "select count(*) from alerts where user_id = %s and month = %s::date",
            [user_id, month],
        ).fetchall()
        biggest = conn.execute(
            """
            select id, amount, note from expenses
            where user_id = %s and date >= %s::date and date < %s::date + interval '1 month'
            order by amount desc, date desc, id desc
            limit 10
            """,
            [user_id, month, month],
        ).fetchall()
        budgets = conn.execute(
            """
            select categories.name, budgets.amount, coalesce(sum(expenses.amount), 0)
            from budgets
            inner join categories on categories.id = budgets.category_id
            left join expenses
                on expenses.user_id = budgets.user_id
                and expenses.category_id = budgets.category_id
                and expenses.date >= budgets.month
                and expenses.date < budgets.month + interval '1 month'
            where budgets.user_id = %s and budgets.month = %s::date
            group by categories.name, budgets.amount
            """,
            [user_id, month],
        ).fetchall()
    return {
        "spent": spent,
        "expenses": count,
        "budget": budget,
        "remaining": remaining,
        "rolling_3m_avg": average,
        "alerts": alerts,
        "biggest": [(expense_id, amount) for expense_id, amount, _ in biggest],
        "notes": {expense_id: note for expense_id, _, note in biggest},
        "budgets": sorted((name, amount, spent) for name, amount, spent in budgets),
    }


def assert_section_matches(section: dict, expected: dict, symbol: str = "₹") -> None:
    """The section's cards and tables show exactly the expected figures."""
    cards = section["cards"]
    for metric in ("spent", "budget", "remaining", "rolling_3m_avg"):
        value, text = cards[metric]
        assert Decimal(value) == expected[metric], (metric, value, expected[metric])
        assert money_text_matches(text, expected[metric], symbol), (metric, text)
    assert int(cards["expenses"][0]) == expected["expenses"]
    assert int(cards["alerts"][0]) == expected["alerts"]
    rows = section["tables"].get("expenses", [])
    shown = [(int(row["attrs"]["data-expense-id"]), Decimal(row["cells"][2][0])) for row in rows]
    assert shown == expected["biggest"]
    for row in rows:
        note = expected["notes"][int(row["attrs"]["data-expense-id"])] or ""
        assert row["cells"][3][1] == note
    budgets = sorted(
        (row["cells"][0][1], Decimal(row["cells"][1][0]), Decimal(row["cells"][2][0]))
        for row in section["tables"].get("budgets", [])
    )
    assert budgets == expected["budgets"]
