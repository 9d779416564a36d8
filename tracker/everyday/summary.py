"""A user's month at a glance: total, budget against actual per category, top expenses, alerts."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import psycopg
from psycopg.rows import class_row

from tracker import text
from tracker.everyday import validate
from tracker.everyday.alerts import Alert, list_alerts
from tracker.everyday.budgets import NEAR_THRESHOLD_PCT, status_sql
from tracker.everyday.users import find_user
from tracker.everyday.validate import Month

TOP_EXPENSES = 5


@dataclass(frozen=True)
class CategoryLine:
    category: str
    budget: Decimal | None
    spent: Decimal
    remaining: Decimal | None
    expense_count: int
    status: str  # under / near / over, or "no budget"

    def as_dict(self) -> dict:
        return {
            "category": self.category,
            "budget": None if self.budget is None else str(self.budget),
            "spent": str(self.spent),
            "remaining": None if self.remaining is None else str(self.remaining),
            "expense_count": self.expense_count,
            "status": self.status,
        }


@dataclass(frozen=True)
class TopExpense:
    id: int
    date: date
    category: str
    amount: Decimal
    note: str | None

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "date": self.date.isoformat(),
            "category": self.category,
            "amount": str(self.amount),
            "note": self.note,
        }


@dataclass(frozen=True)
class MonthSummary:
    user_email: str
    user_name: str
    currency: str
    month: Month
    total_spent: Decimal
    total_budget: Decimal
    categories: list[CategoryLine]
    top_expenses: list[TopExpense]
    alerts: list[Alert]

    def as_dict(self) -> dict:
        return {
            "user": self.user_email,
            "month": str(self.month),
            "currency": self.currency,
            "total_spent": str(self.total_spent),
            "total_budget": str(self.total_budget),
            "categories": [line.as_dict() for line in self.categories],
            "top_expenses": [expense.as_dict() for expense in self.top_expenses],
            "alerts": [alert.as_dict() for alert in self.alerts],
        }


# Every category with a budget or spending in the month; the status rule is `budget list`'s.
_CATEGORIES_SQL = """
    with month_budgets as (
        select
            category_id,
            amount as budget
        from budgets
        where user_id = %(user_id)s and month = %(start)s
    ),

    month_spending as (
        select
            category_id,
            sum(amount) as spent,
            count(*) as expense_count
        from expenses
        where true
            and user_id = %(user_id)s
            and date >= %(start)s
            and date < %(end)s
        group by category_id
    ),

    final as (
        select
            categories.name as category,
            month_budgets.budget,
            coalesce(month_spending.spent, 0) as spent,
            month_budgets.budget - coalesce(month_spending.spent, 0) as remaining,
            coalesce(month_spending.expense_count, 0) as expense_count,
            case
                when month_budgets.budget is null then 'no budget'
                else {status}
            end as status
        from month_budgets
        full join month_spending
            on month_spending.category_id = month_budgets.category_id
        inner join categories
            on categories.id = coalesce(month_budgets.category_id, month_spending.category_id)
    )

    select * from final
    order by spent desc, category
""".replace("{status}", status_sql("coalesce(month_spending.spent, 0)", "month_budgets.budget"))

_TOP_SQL = """
    select
        expenses.id,
        expenses.date,
        categories.name as category,
        expenses.amount,
        expenses.note
    from expenses
    inner join categories
        on categories.id = expenses.category_id
    where true
        and expenses.user_id = %(user_id)s
        and expenses.date >= %(start)s
        and expenses.date < %(end)s
    order by expenses.amount desc, expenses.date desc, expenses.id desc
    limit %(limit)s
"""


def summarize_month(
    conn: psycopg.Connection, user, month=None, *, top: int = TOP_EXPENSES
) -> MonthSummary:
    """The month's summary for one user (month defaults to the current one)."""
    month = validate.parse_month(month) if month is not None else Month.of(date.today())
    with conn.transaction():
        found_user = find_user(conn, user)
        params = {
            "user_id": found_user.id,
            "start": month.first_day,
            "end": month.next_first_day,
            "limit": top,
            "near_threshold_pct": NEAR_THRESHOLD_PCT,
        }
        with conn.cursor(row_factory=class_row(CategoryLine)) as cursor:
            lines = cursor.execute(_CATEGORIES_SQL, params).fetchall()
        with conn.cursor(row_factory=class_row(TopExpense)) as cursor:
            top_expenses = cursor.execute(_TOP_SQL, params).fetchall()
        alerts = list_alerts(conn, found_user.id, month=month)
    return MonthSummary(
        found_user.email,
        found_user.name,
        found_user.currency,
        month,
        sum((line.spent for line in lines), Decimal("0.00")),
        sum((line.budget for line in lines if line.budget is not None), Decimal("0.00")),
        lines,
        top_expenses,
        alerts,
    )


def describe_month(report: MonthSummary) -> str:
    """The month for people: totals, a budget-against-actual table, top expenses, alerts."""
    money = text.money
    lines = [
        f"{report.user_name} <{report.user_email}>, {report.month.label}",
        f"Spent {money(report.total_spent)} {report.currency} "
        f"of {money(report.total_budget)} budgeted.",
        "",
    ]
    if report.categories:
        rows = [
            (c.category, money(c.budget), money(c.spent), money(c.remaining), c.status)
            for c in report.categories
        ]
        lines.append(text.table(["category", "budget", "spent", "remaining", "status"], rows))
    else:
        lines.append("No budgets or expenses this month.")
    if report.top_expenses:
        expense_rows = [(e.date, e.category, money(e.amount), e.note) for e in report.top_expenses]
        lines += [
            "",
            "Top expenses:",
            text.table(["date", "category", "amount", "note"], expense_rows),
        ]
    lines.append("")
    if report.alerts:
        lines.append("Alerts:")
        for alert in report.alerts:
            state = "read" if alert.acknowledged_at else "unread"
            lines.append(f"  [{alert.id}] {alert.message} ({state})")
    else:
        lines.append("No alerts this month.")
    return "\n".join(lines)
