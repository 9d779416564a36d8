"""/api/v1/budgets (set; list with spent, remaining, status; get one) and budget-transfers."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from tracker.api import fields
from tracker.api.deps import Token, session
from tracker.api.problems import (
    COMMON_ERRORS,
    ApiProblem,
    clean_message,
    error_responses,
    field_problem,
    not_found,
)
from tracker.api.schemas import AlertOut, BudgetIn, BudgetOut, BudgetSet, TransferIn, TransferOut
from tracker.errors import InputError, TrackerError
from tracker.everyday.budgets import list_budgets, set_budget, transfer_budget

router = APIRouter(prefix="/api/v1", tags=["budgets"], responses=COMMON_ERRORS)


@router.get("/budgets", response_model=list[BudgetOut])
def read_budgets(
    request: Request,
    token: Token,
    month: Annotated[str | None, Query(description="YYYY-MM")] = None,
):
    """Your budgets (one month, or all) against what you spent."""
    chosen = fields.month(month)
    with session(request, token) as current:
        rows = list_budgets(current.conn, current.user_id, chosen)
    return [BudgetOut.of(row) for row in rows]


@router.get("/budgets/{budget_id}", response_model=BudgetOut, responses=error_responses(404))
def read_budget(
    budget_id: Annotated[int, Path(ge=1, le=fields.BIGINT_MAX)], request: Request, token: Token
):
    """One of your budgets against what you spent."""
    with session(request, token) as current:
        rows = list_budgets(current.conn, current.user_id)
    found = [row for row in rows if row.id == budget_id]
    if not found:
        raise not_found(f"Budget {budget_id}")
    return BudgetOut.of(found[0])


@router.put("/budgets", response_model=BudgetSet, responses={201: {"model": BudgetSet}})
def put_budget(body: BudgetIn, request: Request, response: Response, token: Token):
    """Create or change your budget for a category and month (201 when created)."""
    month = fields.month(body.month)
    amount = fields.money(body.amount, "amount", allow_zero=True)
    with session(request, token) as current:
        category = fields.category(current.conn, body.category)
        budget = set_budget(current.conn, current.user_id, category.id, month, amount)
    if budget.previous_amount is None:
        response.status_code = 201
    return BudgetSet(
        id=budget.id,
        category=budget.category,
        month=str(budget.month),
        amount=fields.money_text(budget.amount),
        previous_amount=fields.money_text(budget.previous_amount),
        alerts=[AlertOut.of(alert) for alert in budget.alerts],
    )


@router.post(
    "/budget-transfers", status_code=201, response_model=TransferOut, responses=error_responses(409)
)
def post_transfer(body: TransferIn, request: Request, token: Token):
    """Move an amount from one of your category budgets to another for a month, atomically."""
    month = fields.month(body.month)
    amount = fields.money(body.amount, "amount")
    with session(request, token) as current:
        source = fields.category(current.conn, body.from_category, "from_category")
        destination = fields.category(current.conn, body.to_category, "to_category")
        try:
            moved = transfer_budget(
                current.conn, current.user_id, source.id, destination.id, month, amount
            )
        except InputError as exc:
            raise field_problem("to_category", exc) from None
        except TrackerError as exc:
            detail = clean_message(str(exc)).replace("`budget set`", "PUT /api/v1/budgets")
            raise ApiProblem(409, detail) from None
    return TransferOut(
        id=moved.id,
        month=str(moved.month),
        amount=fields.money_text(moved.amount),
        from_category=moved.from_category,
        to_category=moved.to_category,
        from_budget_id=moved.from_budget_id,
        to_budget_id=moved.to_budget_id,
        from_amount=fields.money_text(moved.from_amount),
        to_amount=fields.money_text(moved.to_amount),
        created_destination=moved.created_destination,
        alerts=[AlertOut.of(alert) for alert in moved.alerts],
    )
