"""/api/v1: who am I, categories, alerts, summary and the four analytic marts."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from tracker.api import fields, marts
from tracker.api.deps import Token, session
from tracker.api.problems import COMMON_ERRORS, error_responses, not_found
from tracker.api.schemas import (
    AcknowledgementOut,
    AlertOut,
    CategoryOut,
    CategoryUsageOut,
    MartOut,
    SummaryLine,
    SummaryOut,
    TopExpenseOut,
    UserOut,
)
from tracker.errors import InputError
from tracker.everyday.alerts import acknowledge_alert, list_alerts
from tracker.everyday.categories import find_category, list_categories
from tracker.everyday.summary import summarize_month
from tracker.everyday.users import find_user

router = APIRouter(prefix="/api/v1", responses=COMMON_ERRORS)
AnyId = Annotated[int, Path(ge=1, le=fields.BIGINT_MAX)]
MonthQuery = Annotated[str | None, Query(description="YYYY-MM (default: this month)")]


@router.get("/me", response_model=UserOut, tags=["users"])
def read_me(request: Request, token: Token):
    """The user your token acts for."""
    with session(request, token) as current:
        user = find_user(current.conn, current.user_id)
    return UserOut(id=user.id, name=user.name, email=user.email, currency=user.currency)


@router.get("/categories", response_model=list[CategoryUsageOut], tags=["categories"])
def read_categories(request: Request, token: Token):
    """Every category (shared by all users), with how many of your expenses use it."""
    with session(request, token) as current:
        rows = list_categories(current.conn)
    return [
        CategoryUsageOut(
            id=row.id,
            name=row.name,
            description=row.description,
            color=row.color,
            expense_count=row.expense_count,
        )
        for row in rows
    ]


@router.get(
    "/categories/{category_id}",
    response_model=CategoryOut,
    tags=["categories"],
    responses=error_responses(404),
)
def read_category(category_id: AnyId, request: Request, token: Token):
    """One category by id."""
    with session(request, token) as current:
        found = current.conn.execute(
            "select 1 from categories where id = %s", [category_id]
        ).fetchone()
        if found is None:
            raise not_found(f"Category {category_id}")
        row = find_category(current.conn, category_id)
    return CategoryOut(id=row.id, name=row.name, description=row.description, color=row.color)


@router.get("/alerts", response_model=list[AlertOut], tags=["alerts"])
def read_alerts(
    request: Request,
    token: Token,
    unread: bool = False,
    month: Annotated[str | None, Query(description="YYYY-MM")] = None,
):
    """Your budget alerts, newest first."""
    chosen = fields.month(month)
    with session(request, token) as current:
        rows = list_alerts(current.conn, current.user_id, unread=unread, month=chosen)
    return [AlertOut.of(row) for row in rows]


@router.post(
    "/alerts/{alert_id}/ack",
    response_model=AcknowledgementOut,
    tags=["alerts"],
    responses=error_responses(404),
)
def ack_alert(alert_id: AnyId, request: Request, token: Token):
    """Acknowledge one of your alerts (again: nothing changes, `already` says so)."""
    with session(request, token) as current:
        try:
            ack = acknowledge_alert(current.conn, alert_id)
        except InputError:
            raise not_found(f"Alert {alert_id}") from None
    return AcknowledgementOut(alert=AlertOut.of(ack.alert), already=ack.already)


def month_summary(request: Request, token: str, user_id: int | None, month):
    """summarize_month for the caller (user_id, when given, must be the caller)."""
    month = fields.month(month)
    with session(request, token) as current:
        if user_id is not None and user_id != current.user_id:
            raise not_found(f"User {user_id}")
        return current.user_id, summarize_month(current.conn, current.user_id, month)


def summary_lines(summary) -> list[SummaryLine]:
    return [
        SummaryLine(
            category=line.category,
            budget=fields.money_text(line.budget),
            spent=fields.money_text(line.spent),
            remaining=fields.money_text(line.remaining),
            expense_count=line.expense_count,
            status=line.status,
        )
        for line in summary.categories
    ]


@router.get("/summary", response_model=SummaryOut, tags=["summary"])
def read_summary(request: Request, token: Token, month: MonthQuery = None):
    """Your month at a glance: totals, each category against its budget, top expenses, alerts."""
    user_id, summary = month_summary(request, token, None, month)
    return SummaryOut(
        user_id=user_id,
        month=str(summary.month),
        currency=summary.currency,
        total_spent=fields.money_text(summary.total_spent),
        total_budget=fields.money_text(summary.total_budget),
        categories=summary_lines(summary),
        top_expenses=[
            TopExpenseOut(
                id=top.id,
                date=top.date.isoformat(),
                category=top.category,
                amount=fields.money_text(top.amount),
                note=top.note,
            )
            for top in summary.top_expenses
        ],
        alerts=[AlertOut.of(alert) for alert in summary.alerts],
    )


def _mart_route(name: str, summary: str):
    def read(request: Request, token: Token):
        with session(request, token) as current:
            rows = marts.read_mart(current.conn, name)
        return MartOut(mart=name, rows=rows)

    read.__name__ = f"read_{name}"
    read.__doc__ = summary
    router.add_api_route(
        f"/marts/{name}", read, methods=["GET"], response_model=MartOut, tags=["marts"]
    )


_mart_route("monthly_totals", "Your spending per month (the monthly_totals mart).")
_mart_route("top_categories", "Your categories ranked by spending per month (top_categories).")
_mart_route("budget_vs_actual", "Each of your budgets against its spending (budget_vs_actual).")
_mart_route("rolling_trend", "Your monthly spending with 3-month rolling figures (rolling_trend).")
