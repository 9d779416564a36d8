"""Request values through the CLI's own parsers (tracker.validate), each refusal naming its field.

Amounts may arrive as JSON numbers or strings. A JSON number is read by the JSON parser as a
float; its shortest round-trip text (repr) is exactly what the client wrote for any amount the
database can hold (at most 12 significant digits), so the CLI's rules then apply to that text.
"""

import math
from datetime import date
from decimal import Decimal
from typing import Annotated, overload

from pydantic import Field, StrictFloat, StrictInt, StrictStr

from tracker.api.problems import ApiProblem, field_problem
from tracker.errors import InputError
from tracker.everyday import validate
from tracker.everyday.categories import Category, find_category

MoneyIn = Annotated[
    StrictInt | StrictFloat | StrictStr,
    Field(
        description="A plain decimal above 0 with at most 2 places, as a JSON number or string.",
        examples=["350.50"],
    ),
]
MoneyOut = Annotated[
    str,
    Field(pattern=r"^-?[0-9]+\.[0-9]{2}$", description="Exact decimal text.", examples=["350.50"]),
]
CategoryRef = Annotated[
    StrictInt | StrictStr,
    Field(description="A category id or name (as `category list` shows it).", examples=["Food"]),
]
BIGINT_MAX = 2**63 - 1


def text(value: str | None, field: str) -> str | None:
    """Text the database can store (PostgreSQL text holds no NUL character)."""
    if isinstance(value, str) and "\x00" in value:
        raise ApiProblem(422, f"{field} holds a NUL character.", [(field, "holds a NUL character")])
    return value


def money(value, field: str, *, allow_zero: bool = False) -> Decimal:
    if isinstance(value, float):
        value = repr(value) if math.isfinite(value) else str(value)
    try:
        return validate.parse_amount(text(value, field), what=field, allow_zero=allow_zero)
    except InputError as exc:
        raise field_problem(field, exc) from None


def day(value: str | None, field: str) -> date | None:
    if value is None:
        return None
    try:
        return validate.parse_date(text(value, field), what=field)
    except InputError as exc:
        raise field_problem(field, exc) from None


def month(value: str | None, field: str = "month") -> validate.Month | None:
    if value is None:
        return None
    try:
        return validate.parse_month(text(value, field), what=field)
    except InputError as exc:
        raise field_problem(field, exc) from None


def currency(value: str | None, field: str = "currency") -> str | None:
    if value is None:
        return None
    try:
        return validate.parse_currency(text(value, field))
    except InputError as exc:
        raise field_problem(field, exc) from None


def category(conn, value, field: str = "category") -> Category:
    """The category a reference (id or name) names; an unknown one is a 422 naming the field."""
    reference = text(str(value), field)
    try:
        return find_category(conn, reference)
    except InputError:
        raise ApiProblem(
            422,
            f'category "{value}" does not exist. See GET /api/v1/categories.',
            [(field, f'category "{value}" does not exist')],
        ) from None


@overload
def money_text(value: Decimal) -> str: ...
@overload
def money_text(value: Decimal | None) -> str | None: ...
def money_text(value: Decimal | None) -> str | None:
    """Exact text with two places ("0" from a coalesce becomes "0.00")."""
    return None if value is None else str(Decimal(value).quantize(Decimal("0.01")))
