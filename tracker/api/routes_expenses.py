"""/api/v1/expenses: create (with Idempotency-Key), get, update, delete, list a page at a time."""

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from tracker.api import fields
from tracker.api.context import record_as_caller
from tracker.api.deps import Token, session
from tracker.api.problems import (
    COMMON_ERRORS,
    ApiProblem,
    clean_message,
    error_responses,
    field_problem,
    not_found,
)
from tracker.api.schemas import ExpenseChanged, ExpenseIn, ExpenseOut, ExpensePage, ExpensePatch
from tracker.errors import InputError
from tracker.everyday import expense_pages
from tracker.everyday.expenses import (
    SESSION_USER,
    ExpenseRecording,
    delete_expense,
    get_expense,
    record_rows,
    update_expense,
)

router = APIRouter(prefix="/api/v1/expenses", tags=["expenses"], responses=COMMON_ERRORS)
ExpenseId = Annotated[int, Path(ge=1, le=fields.BIGINT_MAX)]


def load_expense(conn, expense_id: int):
    """The caller's expense; another user's is invisible (row-level security), hence 404."""
    try:
        return get_expense(conn, expense_id)
    except InputError:
        raise not_found(f"Expense {expense_id}") from None


@dataclass(frozen=True)
class NewExpense:
    """A POST body's values, each checked by the CLI's rules and named by its field."""

    category_field: str
    category: object
    amount: Decimal
    day: date | None
    note: str | None
    currency: str | None


def checked_body(body) -> NewExpense:
    """The body's values; the first refusal is a 422 naming its field."""
    category_field = "category_id" if hasattr(body, "category_id") else "category"
    return NewExpense(
        category_field,
        fields.text(str(getattr(body, category_field)), category_field),
        fields.money(body.amount, "amount"),
        fields.day(body.date, "date"),
        fields.text(body.note, "note"),
        fields.currency(body.currency),
    )


def checked_body_of_caller(request: Request, token: str, body) -> NewExpense:
    """checked_body(); a bad token is a 401 before the body is judged, as everywhere."""
    try:
        return checked_body(body)
    except ApiProblem as problem:
        with session(request, token):
            raise problem from None


def recording(user, values: NewExpense) -> ExpenseRecording:
    """The expense for `user` (SESSION_USER: the caller), ready for record_expense()."""
    return ExpenseRecording.of(
        user, values.category, values.amount, values.day, values.note, values.currency
    )


def created(recording: ExpenseRecording, rows: list[dict], values: NewExpense) -> ExpenseChanged:
    """The answer to a create: the new expense, or the problem naming the field."""
    try:
        expense = recording.result(rows)
    except InputError as exc:
        # The amount, date and currency text were checked before: what is left is the
        # category reference or the user's-currency rule.
        if rows[0]["problem"] == "category":
            reference = values.category
            raise ApiProblem(
                422,
                f'category "{reference}" does not exist. See GET /api/v1/categories.',
                [(values.category_field, f'category "{reference}" does not exist')],
            ) from None
        raise field_problem("currency", exc) from None
    return ExpenseChanged.of(expense)


def create_for(conn, user_id: int, values: NewExpense) -> ExpenseChanged:
    """Record an expense for the caller now, in a session whose user is known."""
    chosen = recording(user_id, values)
    return created(chosen, record_rows(conn, chosen), values)


class _Replay(Exception):
    """Another request with the same Idempotency-Key committed first: answer as it did."""


def _replay(row, request_hash: str) -> JSONResponse:
    stored_hash, status, body = row
    if stored_hash != request_hash:
        raise ApiProblem(
            422,
            "Idempotency-Key was already used for a different request. Use a new key.",
            [("Idempotency-Key", "already used for a different request")],
        )
    return JSONResponse(body, status_code=status, headers={"Idempotent-Replayed": "true"})


_FIND_KEY = """
    select request_hash, status_code, response
    from api_idempotency_keys
    where user_id = %s and idempotency_key = %s
"""


@router.post("", status_code=201, response_model=ExpenseChanged, responses=error_responses(409))
def create_expense(
    body: ExpenseIn,
    request: Request,
    token: Token,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            description="Retrying with the same key creates nothing new and returns the "
            "first answer.",
        ),
    ] = None,
):
    """Record an expense; crossing a budget fires an alert, returned with it."""
    values = checked_body_of_caller(request, token, body)
    if idempotency_key is None:
        # The common case in one statement: authentication, scope and record_expense().
        chosen = recording(SESSION_USER, values)
        answer = created(chosen, record_as_caller(request.app.state.pool, token, chosen), values)
    else:
        answer = _create_once(request, token, body, values, idempotency_key)
        if isinstance(answer, JSONResponse):
            return answer
    return created_response(answer, {"Location": f"/api/v1/expenses/{answer.id}"})


def created_response(answer: BaseModel, headers: dict | None = None) -> Response:
    """201 with the answer rendered once, by pydantic; returned as a Response, FastAPI does
    not validate and render it again (the busiest endpoints' largest share of Python time
    after the framework's own). The body is what response_model declares."""
    return Response(
        answer.model_dump_json(), status_code=201, media_type="application/json", headers=headers
    )


def _create_once(request: Request, token: str, body, values: NewExpense, key: str):
    """Create with an Idempotency-Key: the first answer is stored, a retry gets it back."""
    fields.text(key, "Idempotency-Key")
    request_hash = hashlib.sha256(
        json.dumps(body.model_dump(mode="json"), sort_keys=True).encode()
    ).hexdigest()
    try:
        with session(request, token) as current:
            row = current.conn.execute(_FIND_KEY, [current.user_id, key]).fetchone()
            if row:
                return _replay(row, request_hash)
            answer = create_for(current.conn, current.user_id, values)
            payload = answer.model_dump(mode="json")
            # Waits for a concurrent request holding the same key; if that one committed,
            # this transaction (its expense included) rolls back and answers as it did.
            stored = current.conn.execute(
                """
                insert into api_idempotency_keys (
                    user_id, idempotency_key, request_hash, status_code, response
                )
                values (%s, %s, %s, 201, %s)
                on conflict do nothing
                returning 1
                """,
                [current.user_id, key, request_hash, json.dumps(payload)],
            ).fetchone()
            if stored is None:
                raise _Replay()
    except _Replay:
        with session(request, token) as current:
            row = current.conn.execute(_FIND_KEY, [current.user_id, key]).fetchone()
        return _replay(row, request_hash)
    return answer


@router.get("", response_model=ExpensePage)
def list_expenses(
    request: Request,
    token: Token,
    category: Annotated[str | None, Query(description="Category id or name.")] = None,
    month: Annotated[str | None, Query(description="YYYY-MM")] = None,
    date_from: Annotated[str | None, Query(alias="from", description="YYYY-MM-DD")] = None,
    date_to: Annotated[str | None, Query(alias="to", description="YYYY-MM-DD")] = None,
    min_amount: Annotated[str | None, Query(alias="min")] = None,
    max_amount: Annotated[str | None, Query(alias="max")] = None,
    sort: Literal["date", "amount"] = "date",
    order: Literal["desc", "asc"] = "desc",
    limit: Annotated[int, Query(ge=1, le=expense_pages.MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
):
    """Your expenses matching every filter, a page at a time (`sort=amount` for the biggest)."""
    filters = {
        "month": fields.month(month, "month"),
        "date_from": fields.day(date_from, "from"),
        "date_to": fields.day(date_to, "to"),
        "min_amount": None
        if min_amount is None
        else fields.money(min_amount, "min", allow_zero=True),
        "max_amount": None
        if max_amount is None
        else fields.money(max_amount, "max", allow_zero=True),
    }
    fields.text(cursor, "cursor")
    with session(request, token) as current:
        category_id = None
        if category is not None:
            category_id = fields.category(current.conn, category).id
        try:
            page = expense_pages.list_expense_page(
                current.conn,
                current.user_id,
                category=category_id,
                sort=sort,
                descending=order == "desc",
                limit=limit,
                cursor=cursor,
                **filters,
            )
        except InputError as exc:
            text = clean_message(str(exc))
            field = "cursor" if "cursor" in text else ("from" if "from" in text else "min")
            raise field_problem(field, exc) from None
    return ExpensePage(
        items=[ExpenseOut.of(item) for item in page.items], next_cursor=page.next_cursor
    )


@router.get("/{expense_id}", response_model=ExpenseOut, responses=error_responses(404))
def read_expense(expense_id: ExpenseId, request: Request, token: Token):
    """One of your expenses."""
    with session(request, token) as current:
        return ExpenseOut.of(load_expense(current.conn, expense_id))


@router.patch("/{expense_id}", response_model=ExpenseChanged, responses=error_responses(404))
def change_expense(expense_id: ExpenseId, body: ExpensePatch, request: Request, token: Token):
    """Change an expense's category, amount, date or note (only the members sent)."""
    sent = body.model_fields_set
    if not sent:
        raise ApiProblem(
            422,
            "Nothing to change. Send at least one of category, amount, date, note.",
            [("body", "no member to change")],
        )
    for member in ("amount", "date", "category"):
        if member in sent and getattr(body, member) is None:
            raise field_problem(member, f"{member} cannot be null; leave it out to keep it.")
    amount = fields.money(body.amount, "amount") if body.amount is not None else None
    day = fields.day(body.date, "date") if body.date is not None else None
    note = fields.text(body.note, "note")
    with session(request, token) as current:
        load_expense(current.conn, expense_id)
        category_id = None
        if body.category is not None:
            category_id = fields.category(current.conn, body.category).id
        changes: dict[str, Any] = {"amount": amount, "category": category_id, "day": day}
        if "note" in sent:
            changes["note"] = note
        updated = update_expense(current.conn, expense_id, **changes)
    return ExpenseChanged.of(updated)


@router.delete("/{expense_id}", status_code=204, responses=error_responses(404))
def remove_expense(expense_id: ExpenseId, request: Request, token: Token):
    """Delete one of your expenses."""
    with session(request, token) as current:
        load_expense(current.conn, expense_id)
        delete_expense(current.conn, expense_id)
    return Response(status_code=204)
