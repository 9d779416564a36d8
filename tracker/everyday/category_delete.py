"""Deleting a category: alone (refused while its expenses or alerts use it), or moving its
history (expenses, budgets, alerts, budget transfers) to another category first; and the
report of what was done, or with --dry-run would be done.
"""

from dataclasses import dataclass
from decimal import Decimal

import psycopg

from tracker.errors import InputError, TrackerError
from tracker.everyday import validate
from tracker.everyday.categories import Category, find_category
from tracker.text import money, plural


@dataclass(frozen=True)
class MergedBudget:
    """One month where both categories had a budget: the target's becomes their sum."""

    user_email: str
    month: str  # YYYY-MM
    moved_amount: Decimal  # the deleted category's budget
    before: Decimal  # the target's budget before
    after: Decimal  # ... and after: before + moved_amount


@dataclass(frozen=True)
class OverBudget:
    """A month where the target category ends over its budget once the move is done."""

    user_email: str
    month: str  # YYYY-MM
    spent: Decimal
    budget: Decimal


@dataclass(frozen=True)
class DeletedCategory:
    """What `delete_category` did (or, with dry_run, would do)."""

    category: Category
    moved_to: Category | None
    dry_run: bool
    moved_expenses: int
    moved_amount: Decimal
    renamed_budgets: int  # budgets that now belong to the target (it had none that month)
    merged_budgets: tuple[MergedBudget, ...]  # budgets added to the target's for that month
    removed_budgets: int  # budgets deleted with the category (only without --move-to)
    moved_alerts: int  # alerts that now point at the target category (and its budget)
    moved_transfers: int  # budget transfers re-linked to the target's budget
    unlinked_transfers: int  # transfers between the two categories in a merged month
    over_budget: tuple[OverBudget, ...]  # target months that end over budget


def delete_category(
    conn: psycopg.Connection, reference, move_to=None, *, dry_run: bool = False
) -> DeletedCategory:
    """Delete a category, in one transaction; with move_to, move its history there first.

    Without move_to: refused while expenses or alerts use it; its budgets (plans with no
    spending) are deleted with it. With move_to, nothing is lost: its expenses move to
    the target; each of its budgets is added to the target's budget for the same user and
    month, or becomes the target's budget where the target had none; its alerts and budget
    transfers point at the target (and that budget) from then on, keeping their messages.
    A move records no new alert: it re-labels history, it spends nothing (alerts the trigger
    fires while the rows move are removed in the same transaction); months where the target
    ends over budget are reported instead. dry_run computes the same report, writes nothing.
    """
    with conn.transaction():
        category = find_category(conn, reference)
        target = find_category(conn, move_to) if move_to is not None else None
        if target is not None and target.id == category.id:
            raise InputError(
                f'--move-to "{move_to}" is the category being deleted. '
                "Move its expenses to another category."
            )
        # Row locks in id order: new expenses or budgets for either category wait (their
        # foreign key checks need these rows) until the move is committed. Then the two
        # categories' spending totals, in the alert trigger's key order: a statement that
        # fires an alert for either category holds its key's total until it commits
        # (alerts have no foreign keys since V016), so the statements below see its alert.
        category_ids = [category.id] + ([target.id] if target else [])
        conn.execute(
            "select id from categories where id = any(%s) order by id for update", [category_ids]
        )
        conn.execute(
            """
            select 1
            from budget_spending
            where category_id = any(%s)
            order by user_id, category_id, month
            for update
            """,
            [category_ids],
        )
        if target is None:
            report = _delete_alone(conn, category, dry_run)
        else:
            report = _move_and_delete(conn, category, target, dry_run)
        if dry_run:
            return report
        try:
            with conn.transaction():
                conn.execute("delete from categories where id = %s", [category.id])
        except psycopg.errors.ForeignKeyViolation as exc:
            # Someone added an expense between our checks and the delete.
            reason = exc.diag.message_primary or f'category "{category.name}" is in use'
            raise TrackerError(
                f"cannot delete category: {reason}. Move them with "
                f"`category delete {category.name} --move-to OTHER`, or delete them first."
            ) from None
    return report


def _delete_alone(conn, category: Category, dry_run: bool) -> DeletedCategory:
    expenses, alerts, budgets = conn.execute(
        """
        select
            (select count(*) from expenses where category_id = %(id)s),
            (select count(*) from alerts where category_id = %(id)s),
            (select count(*) from budgets where category_id = %(id)s)
        """,
        {"id": category.id},
    ).fetchone()
    if expenses:
        raise TrackerError(
            f'cannot delete category: category "{category.name}" is used by '
            f"{expenses} expense(s). Move them with "
            f"`category delete {category.name} --move-to OTHER`, or delete them first."
        )
    if alerts:
        raise TrackerError(
            f'cannot delete category: category "{category.name}" has {alerts} budget '
            f"{'alert that would lose its' if alerts == 1 else 'alerts that would lose their'} "
            f"category. Keep {'it' if alerts == 1 else 'them'} with "
            f"`category delete {category.name} --move-to OTHER`."
        )
    if budgets and not dry_run:
        conn.execute("delete from budgets where category_id = %s", [category.id])
    return DeletedCategory(category, None, dry_run, 0, Decimal("0.00"), 0, (), budgets, 0, 0, 0, ())


def _move_and_delete(conn, category: Category, target: Category, dry_run: bool) -> DeletedCategory:
    ids = {"from": category.id, "to": target.id}
    moved_expenses, moved_amount = conn.execute(
        "select count(*), coalesce(sum(amount), 0) from expenses where category_id = %(from)s",
        ids,
    ).fetchone()
    merged = tuple(
        MergedBudget(email, month, moved, before, before + moved)
        for email, month, moved, before in conn.execute(
            """
            select
                users.email,
                to_char(source.month, 'YYYY-MM'),
                source.amount,
                target.amount
            from budgets as source
            inner join budgets as target
                on target.user_id = source.user_id
                and target.month = source.month
                and target.category_id = %(to)s
            inner join users
                on users.id = source.user_id
            where source.category_id = %(from)s
            order by users.email, source.month
            """,
            ids,
        ).fetchall()
    )
    too_large = [budget for budget in merged if budget.after >= validate.AMOUNT_LIMIT]
    if too_large:
        first = too_large[0]
        raise TrackerError(
            f"cannot merge the budgets: {target.name}'s budget for {first.month} of "
            f"{first.user_email} would be {first.after}, above 9999999999.99. Lower one of the "
            "two budgets first; nothing changed."
        )
    budgets, alerts, transfers, unlinked = conn.execute(
        """
        with source as (
            select id, user_id, month
            from budgets
            where category_id = %(from)s
        ),

        pairs as (
            select source.id as source_id, target.id as target_id
            from source
            inner join budgets as target
                on target.user_id = source.user_id
                and target.month = source.month
                and target.category_id = %(to)s
        )

        select
            (select count(*) from source)
                - (select count(*) from pairs),
            (select count(*) from alerts where category_id = %(from)s),
            (select count(*) from budget_transfers
             where from_budget_id in (select source_id from pairs)
                or to_budget_id in (select source_id from pairs)),
            (select count(*) from budget_transfers
             inner join pairs
                on (budget_transfers.from_budget_id = pairs.source_id
                    and budget_transfers.to_budget_id = pairs.target_id)
                or (budget_transfers.to_budget_id = pairs.source_id
                    and budget_transfers.from_budget_id = pairs.target_id))
        """,
        ids,
    ).fetchone()
    over = tuple(
        OverBudget(*row)
        for row in conn.execute(
            """
            with keys as (
                select user_id, month
                from budgets
                where category_id in (%(from)s, %(to)s)
                union
                select user_id, date_trunc('month', date::timestamp)::date
                from expenses
                where category_id = %(from)s
            ),

            after as (
                select
                    keys.user_id,
                    keys.month,
                    (select sum(amount) from budgets
                     where budgets.user_id = keys.user_id
                        and budgets.month = keys.month
                        and budgets.category_id in (%(from)s, %(to)s)) as budget,
                    (select coalesce(sum(amount), 0) from expenses
                     where expenses.user_id = keys.user_id
                        and expenses.category_id in (%(from)s, %(to)s)
                        and expenses.date >= keys.month
                        and expenses.date < keys.month + interval '1 month') as spent
                from keys
            )

            select
                users.email,
                to_char(after.month, 'YYYY-MM'),
                after.spent,
                after.budget
            from after
            inner join users
                on users.id = after.user_id
            where after.spent > after.budget
            order by users.email, after.month
            """,
            ids,
        ).fetchall()
    )
    report = DeletedCategory(
        category,
        target,
        dry_run,
        moved_expenses,
        moved_amount,
        budgets,
        merged,
        0,
        alerts,
        transfers - unlinked,
        unlinked,
        over,
    )
    if dry_run:
        return report
    last_alert = conn.execute("select coalesce(max(id), 0) from alerts").fetchone()[0]
    # Merged months first: the target's budget becomes the sum (raising a budget never fires),
    # and everything that pointed at the source's budget points at the target's.
    conn.execute(
        """
        create temporary table category_move_pairs on commit drop as
        select source.id as source_id, target.id as target_id
        from budgets as source
        inner join budgets as target
            on target.user_id = source.user_id
            and target.month = source.month
            and target.category_id = %(to)s
        where source.category_id = %(from)s
        """,
        ids,
    )
    conn.execute(
        """
        update budgets
        set
            amount = budgets.amount + source.amount,
            updated_at = now()
        from category_move_pairs as pairs
        inner join budgets as source
            on source.id = pairs.source_id
        where budgets.id = pairs.target_id
        """
    )
    conn.execute(
        """
        update alerts
        set
            category_id = %(to)s,
            budget_id = coalesce(
                (select target_id from category_move_pairs where source_id = alerts.budget_id),
                alerts.budget_id
            )
        where category_id = %(from)s
        """,
        ids,
    )
    # A transfer between the two categories in a merged month would become a transfer from
    # a budget to itself: it keeps its other side, and its moved side is left unlinked.
    conn.execute(
        """
        update budget_transfers
        set
            from_budget_id = case
                when from_budget_id = pairs.source_id and to_budget_id = pairs.target_id
                    then null
                when from_budget_id = pairs.source_id then pairs.target_id
                else from_budget_id
            end,
            to_budget_id = case
                when to_budget_id = pairs.source_id and from_budget_id = pairs.target_id
                    then null
                when to_budget_id = pairs.source_id then pairs.target_id
                else to_budget_id
            end
        from category_move_pairs as pairs
        where pairs.source_id in (budget_transfers.from_budget_id, budget_transfers.to_budget_id)
        """
    )
    conn.execute("delete from budgets where id in (select source_id from category_move_pairs)")
    # Months where only the source had a budget: the budget row itself moves (same id).
    conn.execute(
        "update budgets set category_id = %(to)s, updated_at = now() where category_id = %(from)s",
        ids,
    )
    conn.execute("update expenses set category_id = %(to)s where category_id = %(from)s", ids)
    conn.execute(
        """
        delete from alerts
        where id > %(last)s
            and fired_at = now()
            and category_id = %(to)s
        """,
        {**ids, "last": last_alert},
    )
    return report


def describe_deletion(deleted: DeletedCategory) -> list[str]:
    """What a category delete did, or with --dry-run would do, one effect per line."""
    would = deleted.dry_run

    def verb(past: str, present: str) -> str:
        return present if would else past

    name = deleted.category.name
    head = (
        f"Would delete category {name} (dry run: nothing was changed)"
        if would
        else f"Deleted category {name}"
    )
    target = deleted.moved_to
    if target is None:
        budgets = (
            f"; {verb('removed', 'remove')} its {plural(deleted.removed_budgets, 'budget')}"
            if deleted.removed_budgets
            else ""
        )
        return [f"{head}{budgets}."]
    lines = [f"{head}:"]
    lines.append(
        f"  {verb('moved', 'move')} {plural(deleted.moved_expenses, 'expense')} "
        f"({money(deleted.moved_amount)}) to {target.name}"
    )
    if deleted.renamed_budgets:
        lines.append(
            f"  {verb('gave', 'give')} {plural(deleted.renamed_budgets, 'budget')} to "
            f"{target.name} (months where it had none)"
        )
    if deleted.merged_budgets:
        lines.append(
            f"  {verb('added', 'add')} {plural(len(deleted.merged_budgets), 'budget')} "
            f"to {target.name}'s budget for the same month:"
        )
        for merged in deleted.merged_budgets:
            lines.append(
                f"    {merged.user_email} {merged.month}: {money(merged.before)} + "
                f"{money(merged.moved_amount)} = {money(merged.after)}"
            )
    if deleted.moved_alerts:
        lines.append(
            f"  {verb('pointed', 'point')} {plural(deleted.moved_alerts, 'alert')} at "
            f"{target.name} (their messages are kept as they were)"
        )
    if deleted.moved_transfers:
        lines.append(
            f"  {verb('re-linked', 're-link')} "
            f"{plural(deleted.moved_transfers, 'budget transfer')} to {target.name}'s "
            "budgets"
        )
    if deleted.unlinked_transfers:
        lines.append(
            f"  {verb('kept', 'keep')} "
            f"{plural(deleted.unlinked_transfers, 'transfer')} between {name} and "
            f"{target.name} in a merged month, with its {name} side unlinked"
        )
    lines.append(f"  {verb('recorded', 'record')} no new alert (a move spends nothing)")
    for over in deleted.over_budget:
        lines.append(
            f"  {target.name} {verb('is', 'will be')} over budget for {over.user_email} "
            f"in {over.month}: spent {money(over.spent)} of {money(over.budget)}"
        )
    return lines
