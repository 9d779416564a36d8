"""Monthly budgets per user and category: set, list against spending, transfer between two.

A budget change fires the budget-alert trigger (V002): lowering a budget below what was
already spent records an alert, on purpose.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar, Literal

import psycopg
from psycopg.rows import class_row

from tracker import text
from tracker.errors import InputError, TrackerError
from tracker.everyday import validate
from tracker.everyday.alerts import Alert, alerts_fired_now
from tracker.everyday.categories import find_category
from tracker.everyday.users import find_user
from tracker.everyday.validate import Month
from tracker.plumbing import db


@dataclass(frozen=True)
class Budget:
    id: int
    user_id: int
    category: str
    month: Month
    amount: Decimal
    previous_amount: Decimal | None  # None when the budget was created
    alerts: tuple[Alert, ...] = ()  # budget alerts this change fired


@dataclass(frozen=True)
class BudgetStatus:
    id: int
    user_email: str
    category: str
    month: str  # YYYY-MM
    budget: Decimal
    spent: Decimal
    remaining: Decimal
    percent_used: Decimal | None
    status: Literal["under", "near", "over"]  # < 80 %, 80-100 % inclusive, > 100 %

    HEADERS: ClassVar[tuple[str, ...]] = (
        "month",
        "category",
        "budget",
        "spent",
        "remaining",
        "used %",
        "status",
    )

    def as_row(self) -> tuple:
        amounts = (text.money(self.budget), text.money(self.spent), text.money(self.remaining))
        used = "" if self.percent_used is None else self.percent_used
        return (self.month, self.category, *amounts, used, self.status)

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "user": self.user_email,
            "category": self.category,
            "month": self.month,
            "budget": str(self.budget),
            "spent": str(self.spent),
            "remaining": str(self.remaining),
            "percent_used": None if self.percent_used is None else str(self.percent_used),
            "status": self.status,
        }


@dataclass(frozen=True)
class Transfer:
    id: int
    month: Month
    amount: Decimal
    from_category: str
    to_category: str
    from_budget_id: int
    to_budget_id: int
    from_amount: Decimal  # after the transfer
    to_amount: Decimal  # after the transfer
    created_destination: bool
    alerts: tuple[Alert, ...] = ()  # budget alerts this transfer fired


def set_budget(conn: psycopg.Connection, user, category, month, amount) -> Budget:
    """Create or change one budget (insert ... on conflict do update)."""
    month = validate.parse_month(month)
    amount = validate.parse_amount(amount, allow_zero=True)
    with conn.transaction():
        found_user = find_user(conn, user)
        found_category = find_category(conn, category)
        previous = conn.execute(
            """
            select amount
            from budgets
            where user_id = %s and category_id = %s and month = %s
            """,
            [found_user.id, found_category.id, month.first_day],
        ).fetchone()
        budget_id = db.scalar(
            conn,
            """
            insert into budgets (user_id, category_id, month, amount)
            values (%s, %s, %s, %s)
            on conflict (user_id, category_id, month) do update
                set
                    amount = excluded.amount,
                    updated_at = now()
            returning id
            """,
            [found_user.id, found_category.id, month.first_day, amount],
        )
        fired = alerts_fired_now(conn, found_user.id)
    return Budget(
        budget_id,
        found_user.id,
        found_category.name,
        month,
        amount,
        previous[0] if previous else None,
        fired,
    )


@dataclass(frozen=True)
class DeletedBudget:
    id: int
    user_email: str
    category: str
    month: Month
    amount: Decimal
    alerts_kept: int  # alerts about it: kept as history, no longer linked to a budget
    transfers_kept: int  # transfers in or out of it: kept, that side no longer linked


def delete_budget(conn: psycopg.Connection, user, category, month) -> DeletedBudget:
    """Delete one monthly budget; its alerts and transfers stay as history (unlinked)."""
    month = validate.parse_month(month)
    with conn.transaction():
        found_user = find_user(conn, user)
        found_category = find_category(conn, category)
        row = conn.execute(
            """
            select id, amount
            from budgets
            where user_id = %s and category_id = %s and month = %s
            for update
            """,
            [found_user.id, found_category.id, month.first_day],
        ).fetchone()
        if row is None:
            raise InputError(
                f"{found_user.email} has no {found_category.name} budget for {month}. "
                "Check `budget list`."
            )
        alerts_kept, transfers_kept = db.one(
            conn.execute(
                """
            select
                (select count(*) from alerts where budget_id = %(id)s),
                (select count(*) from budget_transfers
                 where %(id)s in (from_budget_id, to_budget_id))
            """,
                {"id": row[0]},
            )
        )
        # on delete set null: the alerts and transfers stay, no longer linked to a budget.
        conn.execute("delete from budgets where id = %s", [row[0]])
    return DeletedBudget(
        row[0], found_user.email, found_category.name, month, row[1], alerts_kept, transfers_kept
    )


# The budget_vs_actual mart's default near_threshold_pct: `budget list`, `summary` and the
# mart must give every budget the same status.
NEAR_THRESHOLD_PCT = 80


def status_sql(spent: str, budget: str) -> str:
    """The under/near/over SQL expression over two column expressions, the mart's rule.

    over when spent > budget; near when spent * 100 >= budget * the threshold; else under,
    compared exactly. So a budget of 0 is near while nothing is spent (at its limit) and
    over once anything is. The query binds %(near_threshold_pct)s to NEAR_THRESHOLD_PCT.
    """
    return f"""case
                when {spent} > {budget} then 'over'
                when {spent} * 100 >= {budget} * %(near_threshold_pct)s then 'near'
                else 'under'
            end"""


# Spending per budget comes from the base tables in the same statement, so the numbers
# agree with the alert trigger, which reads the same tables.
_STATUS_SQL = """
    with budget_rows as (
        select
            budgets.id,
            users.email as user_email,
            categories.name as category,
            budgets.month as month_start,
            budgets.amount as budget,
            budgets.user_id,
            budgets.category_id
        from budgets
        inner join users
            on users.id = budgets.user_id
        inner join categories
            on categories.id = budgets.category_id
        where true
            and budgets.user_id = %(user_id)s
            and (%(month)s::date is null or budgets.month = %(month)s)
    ),

    spending as (
        select
            budget_rows.id,
            coalesce(sum(expenses.amount), 0) as spent
        from budget_rows
        left join expenses
            on expenses.user_id = budget_rows.user_id
            and expenses.category_id = budget_rows.category_id
            and expenses.date >= budget_rows.month_start
            and expenses.date < (budget_rows.month_start + interval '1 month')::date
        group by budget_rows.id
    ),

    final as (
        select
            budget_rows.id,
            budget_rows.user_email,
            budget_rows.category,
            to_char(budget_rows.month_start, 'YYYY-MM') as month,
            budget_rows.budget,
            spending.spent,
            budget_rows.budget - spending.spent as remaining,
            round(spending.spent * 100 / nullif(budget_rows.budget, 0), 1) as percent_used,
            {status} as status
        from budget_rows
        inner join spending
            on spending.id = budget_rows.id
    )

    select * from final
    order by month desc, category
""".replace("{status}", status_sql("spending.spent", "budget_rows.budget"))


def list_budgets(conn: psycopg.Connection, user, month=None) -> list[BudgetStatus]:
    """A user's budgets (one month, or all) with spent, remaining and under/near/over."""
    month = validate.parse_month(month) if month is not None else None
    with conn.transaction():
        found_user = find_user(conn, user)
        with conn.cursor(row_factory=class_row(BudgetStatus)) as cursor:
            return cursor.execute(
                _STATUS_SQL,
                {
                    "user_id": found_user.id,
                    "month": month.first_day if month else None,
                    "near_threshold_pct": NEAR_THRESHOLD_PCT,
                },
            ).fetchall()


def transfer_budget(
    conn: psycopg.Connection, user, from_category, to_category, month, amount
) -> Transfer:
    """Move `amount` from one category's budget to another's for a month, atomically.

    Both budgets change or neither; the source never goes below zero; a missing destination
    budget is created holding the moved amount. Concurrent transfers are serialized by row
    locks taken in id order, so none is lost and none deadlocks on the other.
    """
    month = validate.parse_month(month)
    amount = validate.parse_amount(amount)
    with conn.transaction():
        found_user = find_user(conn, user)
        source = find_category(conn, from_category)
        destination = find_category(conn, to_category)
        if source.id == destination.id:
            raise InputError(
                f'--from and --to are both "{source.name}". '
                "Transfer between two different categories."
            )
        key = [found_user.id, month.first_day]
        ids: dict[int, int] = dict(
            conn.execute(
                """
                select category_id, id
                from budgets
                where user_id = %s and month = %s and category_id in (%s, %s)
                """,
                [*key, source.id, destination.id],
            ).fetchall()
        )
        if source.id not in ids:
            raise TrackerError(
                f"transfer refused: {found_user.email} has no {source.name} budget for "
                f"{month} to take from. Set one with `budget set` first."
            )
        # Locks in id order: two transfers between the same pair, in either direction,
        # queue up instead of deadlocking. After waiting, the row read is the committed one.
        locked: dict[int, Decimal] = dict(
            conn.execute(
                "select id, amount from budgets where id = any(%s) order by id for update",
                [sorted(ids.values())],
            ).fetchall()
        )
        source_id = ids[source.id]
        available = locked[source_id]
        if amount > available:
            raise TrackerError(
                f"transfer refused: the {source.name} budget for {month} holds only "
                f"{available}, less than {amount}. Move at most {available}."
            )
        try:
            with conn.transaction():
                if destination.id in ids:
                    created = False
                    destination_id = ids[destination.id]
                    # One statement for both rows: the alert trigger sees the change once.
                    conn.execute(
                        """
                        update budgets
                        set
                            amount = amount + case when id = %(source)s then -%(amount)s
                                else %(amount)s end,
                            updated_at = now()
                        where id in (%(source)s, %(destination)s)
                        """,
                        {"source": source_id, "destination": destination_id, "amount": amount},
                    )
                else:
                    # Created with the moved amount rather than at 0, so a new budget that
                    # already covers its spending never records a false alert. A concurrent
                    # transfer may create it first: then add to it.
                    destination_id, created = db.one(
                        conn.execute(
                            """
                        insert into budgets (user_id, category_id, month, amount)
                        values (%s, %s, %s, %s)
                        on conflict (user_id, category_id, month) do update
                            set
                                amount = budgets.amount + excluded.amount,
                                updated_at = now()
                        returning id, xmax = 0
                        """,
                            [found_user.id, destination.id, month.first_day, amount],
                        )
                    )
                    conn.execute(
                        "update budgets set amount = amount - %s, updated_at = now() where id = %s",
                        [amount, source_id],
                    )
                transfer_id = db.scalar(
                    conn,
                    """
                    insert into budget_transfers (
                        user_id, from_budget_id, to_budget_id, amount, month
                    )
                    values (%s, %s, %s, %s, %s)
                    returning id
                    """,
                    [found_user.id, source_id, destination_id, amount, month.first_day],
                )
        except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
            # Only possible when a destination budget was created with an explicit, lower id
            # by someone else at the same moment; nothing was changed, so a retry is safe.
            raise TrackerError(
                f"transfer refused: the {source.name} and {destination.name} budgets for "
                f"{month} were busy with another change. Nothing changed; run it again."
            ) from None
        except psycopg.errors.NumericValueOutOfRange:
            raise TrackerError(
                f"transfer refused: the {destination.name} budget for {month} would "
                "exceed 9999999999.99. Move a smaller amount."
            ) from None
        after: dict[int, Decimal] = dict(
            conn.execute(
                "select id, amount from budgets where id in (%s, %s)",
                [source_id, destination_id],
            ).fetchall()
        )
        fired = alerts_fired_now(conn, found_user.id)
    return Transfer(
        transfer_id,
        month,
        amount,
        source.name,
        destination.name,
        source_id,
        destination_id,
        after[source_id],
        after[destination_id],
        created,
        fired,
    )
