"""Budget alerts recorded by the V002 trigger: list them, acknowledge one."""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import ClassVar

import psycopg
from psycopg.rows import class_row

from tracker import text
from tracker.errors import InputError
from tracker.everyday import validate
from tracker.everyday.users import find_user


@dataclass(frozen=True)
class Alert:
    id: int
    user_email: str
    category: str | None
    month: date
    alert_type: str
    message: str
    spent: Decimal
    budget_amount: Decimal
    fired_at: datetime
    acknowledged_at: datetime | None

    HEADERS: ClassVar[tuple[str, ...]] = ("id", "fired", "user", "message", "read")

    def as_row(self) -> tuple:
        read = text.when(self.acknowledged_at) or "no"
        return (self.id, text.when(self.fired_at), self.user_email, self.message, read)

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "user": self.user_email,
            "category": self.category,
            "month": self.month.strftime("%Y-%m"),
            "type": self.alert_type,
            "message": self.message,
            "spent": str(self.spent),
            "budget": str(self.budget_amount),
            "fired_at": self.fired_at.isoformat(),
            "acknowledged_at": self.acknowledged_at.isoformat() if self.acknowledged_at else None,
        }


@dataclass(frozen=True)
class Acknowledgement:
    alert: Alert
    already: bool  # True when it had been acknowledged before: nothing changed


_SELECT = """
    select
        alerts.id,
        users.email as user_email,
        categories.name as category,
        alerts.month,
        alerts.alert_type,
        alerts.message,
        round(alerts.spent, 2) as spent,
        alerts.budget_amount,
        alerts.fired_at,
        alerts.acknowledged_at
    from alerts
    inner join users
        on users.id = alerts.user_id
    left join categories
        on categories.id = alerts.category_id
"""


def list_alerts(
    conn: psycopg.Connection, user=None, *, unread: bool = False, month=None
) -> list[Alert]:
    """Alerts, newest first; only one user's, only unacknowledged, only one month if asked."""
    month = validate.parse_month(month) if month is not None else None
    with conn.transaction():
        user_id = find_user(conn, user).id if user is not None else None
        with conn.cursor(row_factory=class_row(Alert)) as cursor:
            return cursor.execute(
                _SELECT
                + """
                where true
                    and (%(user_id)s::bigint is null or alerts.user_id = %(user_id)s)
                    and (not %(unread)s or alerts.acknowledged_at is null)
                    and (%(month)s::date is null or alerts.month = %(month)s)
                order by alerts.fired_at desc, alerts.id desc
                """,
                {
                    "user_id": user_id,
                    "unread": unread,
                    "month": month.first_day if month else None,
                },
            ).fetchall()


def alerts_fired_now(conn: psycopg.Connection, user_id: int) -> tuple[Alert, ...]:
    """Alerts the current transaction fired for a user (call it inside that transaction)."""
    # fired_at defaults to now(), the transaction's start time, the same for every alert
    # the trigger records in this transaction.
    with conn.cursor(row_factory=class_row(Alert)) as cursor:
        return tuple(
            cursor.execute(
                _SELECT + " where alerts.user_id = %s and alerts.fired_at = now()"
                " order by alerts.id",
                [user_id],
            ).fetchall()
        )


def acknowledge_alert(conn: psycopg.Connection, alert_id) -> Acknowledgement:
    """Mark an alert as read; acknowledging it again changes nothing and says so."""
    alert_id = validate.parse_id(alert_id, what="alert")
    with conn.transaction():
        changed = conn.execute(
            "update alerts set acknowledged_at = now()"
            " where id = %s and acknowledged_at is null returning id",
            [alert_id],
        ).fetchone()
        with conn.cursor(row_factory=class_row(Alert)) as cursor:
            alert = cursor.execute(_SELECT + " where alerts.id = %s", [alert_id]).fetchone()
    if alert is None:
        raise InputError(f"alert {alert_id} does not exist. Check the id with `alerts`.")
    return Acknowledgement(alert, already=changed is None)
