"""Input parsing shared by every everyday command: amounts, dates, months, e-mails, colors.

Each parser takes what a person typed (or an already parsed value) and returns the exact
Python value, or raises InputError with one line: what is wrong, the value, how to fix it.
"""

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from tracker.errors import InputError

# numeric(12, 2): ten digits before the point.
AMOUNT_LIMIT = Decimal("10000000000")
_AMOUNT = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_MONTH = re.compile(r"^([0-9]{4})-([0-9]{2})$")
_ID = re.compile(r"^[0-9]{1,18}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
# One date range for everything (V007 enforces it in the database too): a mistyped year
# must be refused, not turned into a calendar of millions of days.
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2100, 12, 31)


@dataclass(frozen=True, order=True)
class Month:
    """A calendar month (YYYY-MM); the database keeps it as its first day (first_day)."""

    year: int
    month: int

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def next_first_day(self) -> date:
        if self.month == 12:
            return date(self.year + 1, 1, 1)
        return date(self.year, self.month + 1, 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def label(self) -> str:
        return self.first_day.strftime("%B %Y")

    @classmethod
    def of(cls, day: date) -> "Month":
        return cls(day.year, day.month)


def parse_amount(value, *, what: str = "amount", allow_zero: bool = False) -> Decimal:
    """A money amount: plain decimal, at most 2 places, > 0 (>= 0 with allow_zero), < 10^10."""
    minimum = "0 or more" if allow_zero else "more than 0"
    hint = f"Give a plain number {minimum} with at most 2 decimal places, like 1250.50"
    if isinstance(value, Decimal):
        text = format(value, "f")
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise InputError(f'{what} "{value}" is not a number. {hint}.')
    match = _AMOUNT.match(text)
    if not match:
        raise InputError(f'{what} "{value}" is not a number. {hint}.')
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise InputError(f'{what} "{value}" is not a number. {hint}.') from None
    if amount != amount.quantize(Decimal("0.01")):
        raise InputError(f'{what} "{value}" has more than 2 decimal places. {hint}.')
    if amount < 0 or (amount == 0 and not allow_zero):
        raise InputError(f'{what} "{value}" must be {minimum}. {hint}.')
    if amount >= AMOUNT_LIMIT:
        raise InputError(
            f'{what} "{value}" is too large (the limit is 9999999999.99). Give a smaller amount.'
        )
    # abs() turns "-0" into 0.00.
    return abs(amount.quantize(Decimal("0.01")))


def parse_date(value, *, what: str = "date") -> date:
    """An ISO date YYYY-MM-DD that exists in the calendar."""
    if isinstance(value, datetime):
        return check_date_range(value.date(), what=what)
    if isinstance(value, date):
        return check_date_range(value, what=what)
    text = str(value).strip()
    if _DATE.match(text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise InputError(
                f'{what} "{value}" is not a real day. Give a date that exists, like 2025-05-31.'
            ) from None
        return check_date_range(day, what=what, shown=value)
    raise InputError(f'{what} "{value}" is not a date. Use YYYY-MM-DD, like 2025-05-31.')


def check_date_range(day: date, *, what: str = "date", shown=None) -> date:
    """The day itself when it lies in FIRST_DAY..LAST_DAY; else an InputError."""
    if FIRST_DAY <= day <= LAST_DAY:
        return day
    raise InputError(
        f'{what} "{shown if shown is not None else day}" is outside the years '
        f"{FIRST_DAY.year} to {LAST_DAY.year} the tracker keeps. Check the year."
    )


def parse_month(value, *, what: str = "month") -> Month:
    """A month YYYY-MM between 1900-01 and 2100-12."""
    if isinstance(value, Month):
        return value
    text = str(value).strip()
    match = _MONTH.match(text)
    if match and 1 <= int(match.group(2)) <= 12:
        if not FIRST_DAY.year <= int(match.group(1)) <= LAST_DAY.year:
            raise InputError(
                f'{what} "{value}" is outside the years {FIRST_DAY.year} to '
                f"{LAST_DAY.year} the tracker keeps. Check the year."
            )
        return Month(int(match.group(1)), int(match.group(2)))
    raise InputError(f'{what} "{value}" is not a month. Use YYYY-MM, like 2025-05.')


def parse_email(value) -> str:
    """An e-mail address (something@domain.tld), lower-cased."""
    text = str(value).strip()
    if not _EMAIL.match(text):
        raise InputError(
            f'e-mail "{value}" does not look like an e-mail address. Use the form name@example.com.'
        )
    return text.lower()


def parse_color(value) -> str:
    """A color #RRGGBB, upper-cased."""
    text = str(value).strip()
    if not _COLOR.match(text):
        raise InputError(
            f'color "{value}" is not a #RRGGBB color. Use six hex digits, like #FF6B6B.'
        )
    return text.upper()


def parse_currency(value) -> str:
    """A currency code: three uppercase letters."""
    text = str(value).strip()
    if not _CURRENCY.match(text):
        raise InputError(
            f'currency "{value}" is not a currency code. Use three uppercase letters, '
            "like INR or EUR."
        )
    return text


def parse_name(value, *, what: str = "name") -> str:
    """A non-blank name, trimmed."""
    text = str(value or "").strip()
    if not text:
        raise InputError(f"{what} is empty. Give a {what} with at least one character.")
    return text


def looks_like_id(value) -> bool:
    """True when the text is a whole number that could be an id."""
    return bool(_ID.match(str(value).strip()))


def parse_id(value, *, what: str) -> int:
    """A positive whole-number id."""
    text = str(value).strip()
    if not _ID.match(text) or int(text) == 0:
        raise InputError(f'{what} id "{value}" is not an id. Give a positive whole number.')
    return int(text)
