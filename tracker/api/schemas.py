"""Request and response bodies; every amount in a response is an exact decimal string."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tracker.api.fields import CategoryRef, MoneyIn, MoneyOut, money_text
from tracker.everyday.alerts import Alert
from tracker.everyday.budgets import BudgetStatus
from tracker.everyday.expenses import Expense


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- responses -----------------------------------------------------------------------------


class AlertOut(BaseModel):
    id: int
    category: str | None
    month: str = Field(description="YYYY-MM")
    type: str
    message: str
    spent: MoneyOut
    budget: MoneyOut
    fired_at: datetime
    acknowledged_at: datetime | None

    @classmethod
    def of(cls, alert: Alert) -> "AlertOut":
        return cls(
            id=alert.id,
            category=alert.category,
            month=alert.month.strftime("%Y-%m"),
            type=alert.alert_type,
            message=alert.message,
            spent=money_text(alert.spent),
            budget=money_text(alert.budget_amount),
            fired_at=alert.fired_at,
            acknowledged_at=alert.acknowledged_at,
        )


class ExpenseOut(BaseModel):
    id: int
    date: str = Field(description="YYYY-MM-DD")
    category_id: int
    category: str
    amount: MoneyOut
    currency: str
    note: str | None
    created_at: datetime

    @classmethod
    def of(cls, expense: Expense) -> "ExpenseOut":
        return cls(
            id=expense.id,
            date=expense.date.isoformat(),
            category_id=expense.category_id,
            category=expense.category,
            amount=money_text(expense.amount),
            currency=expense.currency,
            note=expense.note,
            created_at=expense.created_at,
        )


class ExpenseChanged(ExpenseOut):
    alerts: list[AlertOut] = Field(description="Budget alerts this change fired.")

    @classmethod
    def of(cls, expense: Expense) -> "ExpenseChanged":
        base = ExpenseOut.of(expense).model_dump()
        return cls(**base, alerts=[AlertOut.of(alert) for alert in expense.alerts])


class ExpensePage(BaseModel):
    items: list[ExpenseOut]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null at the end."
    )


class BudgetOut(BaseModel):
    id: int
    category: str
    month: str = Field(description="YYYY-MM")
    budget: MoneyOut
    spent: MoneyOut
    remaining: MoneyOut
    percent_used: str | None
    status: Literal["under", "near", "over"]

    @classmethod
    def of(cls, row: BudgetStatus) -> "BudgetOut":
        return cls(
            id=row.id,
            category=row.category,
            month=row.month,
            budget=money_text(row.budget),
            spent=money_text(row.spent),
            remaining=money_text(row.remaining),
            percent_used=None if row.percent_used is None else str(row.percent_used),
            status=row.status,
        )


class BudgetSet(BaseModel):
    id: int
    category: str
    month: str
    amount: MoneyOut
    previous_amount: MoneyOut | None = Field(description="null when the budget was created.")
    alerts: list[AlertOut]


class TransferOut(BaseModel):
    id: int
    month: str
    amount: MoneyOut
    from_category: str
    to_category: str
    from_budget_id: int
    to_budget_id: int
    from_amount: MoneyOut = Field(description="The source budget after the transfer.")
    to_amount: MoneyOut = Field(description="The destination budget after the transfer.")
    created_destination: bool
    alerts: list[AlertOut]


class CategoryOut(BaseModel):
    id: int
    name: str
    description: str | None
    color: str


class CategoryUsageOut(CategoryOut):
    expense_count: int = Field(description="How many of your expenses use it.")


class AcknowledgementOut(BaseModel):
    alert: AlertOut
    already: bool = Field(description="True when it was acknowledged before: nothing changed.")


class SummaryLine(BaseModel):
    category: str
    budget: MoneyOut | None
    spent: MoneyOut
    remaining: MoneyOut | None
    expense_count: int
    status: Literal["under", "near", "over", "no budget"]


class TopExpenseOut(BaseModel):
    id: int
    date: str
    category: str
    amount: MoneyOut
    note: str | None


class SummaryOut(BaseModel):
    user_id: int
    month: str
    currency: str
    total_spent: MoneyOut
    total_budget: MoneyOut
    categories: list[SummaryLine]
    top_expenses: list[TopExpenseOut]
    alerts: list[AlertOut]


class SeedSummaryOut(BaseModel):
    """The seed's GET /api/users/{id}/summary shape, plus status and alerts."""

    user_id: int
    month: str
    currency: str
    total_this_month: MoneyOut
    categories: list[SummaryLine]
    alerts: list[AlertOut]


class SeedCreated(BaseModel):
    status: Literal["ok"]
    id: int
    alerts: list[AlertOut]


class UserOut(BaseModel):
    id: int
    name: str
    email: str
    currency: str


class MartOut(BaseModel):
    mart: str
    rows: list[dict[str, str | int | None]] = Field(
        description="The mart's rows for you; amounts as exact decimal strings, dates as ISO text."
    )


class Health(BaseModel):
    status: Literal["ok"]
    database: Literal["reachable"]


# --- requests ------------------------------------------------------------------------------


class SeedExpenseIn(Strict):
    """The seed's body: {user_id, category_id, amount, date, note, currency?}."""

    user_id: int = Field(ge=1, le=2**63 - 1, description="Must be your own user id.")
    category_id: int = Field(ge=1, le=2**63 - 1)
    amount: MoneyIn
    date: str = Field(description="YYYY-MM-DD", examples=["2025-05-15"])
    note: str | None = Field(default=None, max_length=2000)
    currency: str | None = Field(default=None, description="Must be your currency.")


class ExpenseIn(Strict):
    category: CategoryRef
    amount: MoneyIn
    date: str | None = Field(
        default=None, description="YYYY-MM-DD (default: today).", examples=["2025-05-15"]
    )
    note: str | None = Field(default=None, max_length=2000)
    currency: str | None = Field(default=None, description="Must be your currency.")


class ExpensePatch(Strict):
    category: CategoryRef | None = None
    amount: MoneyIn | None = None
    date: str | None = Field(default=None, examples=["2025-05-15"])
    note: str | None = Field(
        default=None, max_length=2000, description="Send null to clear it; leave it out to keep it."
    )


class BudgetIn(Strict):
    category: CategoryRef
    month: str = Field(description="YYYY-MM", examples=["2025-05"])
    amount: MoneyIn = Field(description="0 or more, at most 2 decimal places.")


class TransferIn(Strict):
    from_category: CategoryRef
    to_category: CategoryRef
    month: str = Field(examples=["2025-05"])
    amount: MoneyIn
