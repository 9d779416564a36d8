"""The seed's endpoints, same paths and bodies: POST /api/expenses, GET /api/users/{id}/summary."""

from typing import Annotated

from fastapi import APIRouter, Path, Request

from tracker.api import fields
from tracker.api.context import record_as_caller
from tracker.api.deps import Token
from tracker.api.problems import COMMON_ERRORS, ApiProblem, error_responses
from tracker.api.routes_expenses import (
    checked_body_of_caller,
    created,
    created_response,
    recording,
)
from tracker.api.routes_more import MonthQuery, month_summary, summary_lines
from tracker.api.schemas import AlertOut, SeedCreated, SeedExpenseIn, SeedSummaryOut

router = APIRouter(prefix="/api", tags=["seed-compatible"], responses=COMMON_ERRORS)


@router.post(
    "/expenses", status_code=201, response_model=SeedCreated, responses=error_responses(403)
)
def seed_create_expense(body: SeedExpenseIn, request: Request, token: Token):
    """Record an expense with the seed's body; user_id must be your own."""
    values = checked_body_of_caller(request, token, body)
    # One statement; row-level security hides every user but the caller, so another
    # user_id is a user that does not exist for this transaction, and nothing is written.
    chosen = recording(body.user_id, values)
    rows = record_as_caller(request.app.state.pool, token, chosen)
    if rows[0]["problem"] == "user":
        raise ApiProblem(
            403,
            f"user_id {body.user_id} is not the token's user. Post expenses for your own "
            "user id (GET /api/v1/me).",
            [("user_id", "is not the token's user")],
        )
    answer = created(chosen, rows, values)
    return created_response(SeedCreated(status="ok", id=answer.id, alerts=answer.alerts))


@router.get(
    "/users/{user_id}/summary", response_model=SeedSummaryOut, responses=error_responses(404)
)
def seed_user_summary(
    user_id: Annotated[int, Path(ge=1, le=fields.BIGINT_MAX)],
    request: Request,
    token: Token,
    month: MonthQuery = None,
):
    """The seed's month summary: total_this_month and each category's budget and spent."""
    caller, summary = month_summary(request, token, user_id, month)
    return SeedSummaryOut(
        user_id=caller,
        month=str(summary.month),
        currency=summary.currency,
        total_this_month=fields.money_text(summary.total_spent),
        categories=summary_lines(summary),
        alerts=[AlertOut.of(alert) for alert in summary.alerts],
    )
