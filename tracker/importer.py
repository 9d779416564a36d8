"""Bank statement import: a CSV export becomes expenses, once, all or nothing.

Rows are parsed and validated in Python while they stream into a temporary table with
COPY; one insert ... select then moves them into expenses. That single statement fires the
budget-alert trigger once (one alert per crossing, however many rows), and its
`on conflict (import_fingerprint) do nothing` skips rows imported before: the fingerprint is
the sha256 of user, date, amount, normalized note and the row's occurrence number among
identical rows of the file, so two real identical coffees on one day stay two expenses.
Any bad row names its line and nothing from the file is written.
"""

import codecs
import csv
import functools
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import psycopg

from . import validate
from .errors import InputError, TrackerError
from .categories import category_id_reference
from .expenses import check_currency
from .users import find_user

MAPPING_FIELDS = ("date", "amount", "note", "category")
PROGRESS_EVERY_ROWS = 5000
_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
# Thousands groups: 1,234,567.89, or 1.234.567,89 / 1 234 567,89 with --decimal-comma.
_GROUPED_COMMAS = re.compile(r"^[+-]?[0-9]{1,3}(,[0-9]{3})+(\.[0-9]*)?$")
_GROUPED_DOTS = re.compile(r"^[+-]?[0-9]{1,3}([. ][0-9]{3})+(,[0-9]*)?$")


@dataclass(frozen=True)
class ColumnMapping:
    """Which statement column holds each expense field (note and category are optional)."""

    date: str
    amount: str
    note: str | None = None
    category: str | None = None


@dataclass(frozen=True)
class Rule:
    """Rows whose note matches `pattern` go to `category` (first matching rule wins)."""

    line: int
    pattern: str
    regex: re.Pattern
    category: str


@dataclass(frozen=True)
class ImportResult:
    path: Path
    rows: int  # expense rows in the file
    inserted: int
    duplicates: int  # already imported before: skipped
    skipped_credits: int  # positive rows with --debits-negative (money in, not spending)


def parse_mapping(value: str) -> ColumnMapping:
    """`date=Date,amount=Amount[,note=...][,category=...]`, or a file with one pair per line."""
    text = str(value)
    source = "--mapping"
    if os.path.isfile(text):
        source = f"mapping file {text}"
        try:
            lines = Path(text).read_text(encoding="utf-8-sig").splitlines()
        except UnicodeDecodeError:
            raise _decode_error(Path(text), "utf-8-sig", source, "Save it as UTF-8") from None
        pairs = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    else:
        pairs = [part.strip() for part in text.split(",") if part.strip()]
    fields: dict[str, str] = {}
    for pair in pairs:
        key, sep, column = pair.partition("=")
        key = key.strip().lower()
        if not sep or not column.strip() or key not in MAPPING_FIELDS:
            raise InputError(
                f'Error: {source}: "{pair}" is not a field=Column pair. Use fields '
                f"{', '.join(MAPPING_FIELDS)}, like date=Date,amount=Amount,note=Description."
            )
        fields[key] = column.strip()
    missing = [key for key in ("date", "amount") if key not in fields]
    if missing:
        raise InputError(
            f"Error: {source} does not say which column holds {' and '.join(missing)}. "
            "Add it, like date=Date,amount=Amount."
        )
    return ColumnMapping(**fields)


def load_rules(path) -> list[Rule]:
    """A CSV of `pattern,category` (header optional): substrings, or /regex/, any case."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Error: rules file {path} does not exist. Check the path.")
    rules = []
    where = f"rules file {path.name}"
    with open(path, newline="", encoding="utf-8-sig") as source:
        for line, row in _records(source, path, "utf-8-sig", where, "Save it as UTF-8"):
            if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                continue
            if [cell.strip().lower() for cell in row] == ["pattern", "category"]:
                continue
            if len(row) != 2 or not row[0].strip() or not row[1].strip():
                raise InputError(
                    f"Error: rules file {path.name} line {line}: expected pattern,category. "
                    "Fix the line, for example: swiggy,Food"
                )
            pattern, category = row[0].strip(), row[1].strip()
            if len(pattern) > 2 and pattern.startswith("/") and pattern.endswith("/"):
                try:
                    regex = re.compile(pattern[1:-1], re.IGNORECASE)
                except re.error as exc:
                    raise InputError(
                        f"Error: rules file {path.name} line {line}: {pattern} is not a valid "
                        f"regular expression ({exc}). Fix the pattern."
                    ) from None
            else:
                regex = re.compile(re.escape(pattern), re.IGNORECASE)
            rules.append(Rule(line, pattern, regex, category))
    return rules


def import_statement(
    conn: psycopg.Connection,
    path,
    user,
    mapping: ColumnMapping,
    *,
    date_format: str = "%Y-%m-%d",
    decimal_comma: bool = False,
    delimiter: str = ",",
    rules: list[Rule] | None = None,
    default_category=None,
    currency: str | None = None,  # must be the user's: a check, not a conversion
    debits_negative: bool = False,
    encoding: str = "utf-8-sig",
    on_progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Load one statement file as expenses of `user`, in one transaction."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Error: statement file {path} does not exist. Check the path.")
    if len(delimiter) != 1:
        raise InputError(
            f'Error: --delimiter "{delimiter}" must be one character. Use , or ; or a tab.'
        )
    _check_encoding(encoding)
    currency = validate.parse_currency(currency) if currency is not None else None
    rules = rules or []
    total_bytes = path.stat().st_size
    with conn.transaction():
        found_user = find_user(conn, user)
        currency = check_currency(found_user, currency)
        categories = _Categories(conn)
        default_id = categories.require(default_category, "--default-category") \
            if default_category is not None else None
        rule_ids = [categories.require(rule.category, f"rules file line {rule.line}")
                    for rule in rules]
        # A caller's earlier import in the same transaction leaves its table behind.
        conn.execute("drop table if exists pg_temp.import_rows")
        conn.execute(
            """
            create temporary table import_rows (
                line_no integer not null,
                date date not null,
                amount numeric(12, 2) not null,
                note text,
                category_id bigint not null
            ) on commit drop
            """
        )
        parser = _RowParser(path.name, date_format, decimal_comma, debits_negative)
        rows = credits = 0
        other = "latin-1" if codecs.lookup(encoding).name == "cp1252" else "cp1252"
        decode_hint = f"Pass --encoding {other} (or the file's encoding); nothing was imported"
        with open(path, newline="", encoding=encoding) as source, conn.cursor() as cursor:
            records = _records(source, path, encoding, path.name, decode_hint,
                               delimiter=delimiter)
            _, header = next(records, (None, None))
            if header is None:
                raise InputError(f"Error: statement file {path.name} is empty. Check the file.")
            columns = _column_positions(path.name, header, mapping)
            with cursor.copy(
                "copy import_rows (line_no, date, amount, note, category_id) from stdin"
            ) as copy:
                for line, row in records:
                    if not any(cell.strip() for cell in row):
                        continue
                    if len(row) < len(header):
                        raise InputError(
                            f"Error: {path.name} line {line}: {len(row)} column(s), the header "
                            f"has {len(header)}. Check the line and --delimiter."
                        )
                    parsed = parser.parse(line, row, columns)
                    if parsed is None:
                        credits += 1
                        continue
                    day, amount, note, category_text = parsed
                    category_id = _choose_category(
                        path.name, line, note, category_text, categories, rules, rule_ids,
                        default_id,
                    )
                    copy.write_row((line, day, amount, note, category_id))
                    rows += 1
                    if on_progress and rows % PROGRESS_EVERY_ROWS == 0:
                        on_progress(min(source.buffer.tell(), total_bytes), total_bytes)
        inserted = conn.execute(
            _INSERT_SQL,
            {"user_id": found_user.id, "currency": currency},
        ).rowcount
        if on_progress:
            on_progress(total_bytes, total_bytes)
    return ImportResult(path, rows, inserted, rows - inserted, credits)


def _check_encoding(encoding: str) -> None:
    """Refuse an --encoding Python does not know, or one that does not decode to text."""
    try:
        "".encode(encoding)
    except LookupError:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise InputError(
                f'Error: unknown --encoding "{encoding}". Use a Python codec name such as '
                "utf-8, cp1252 or latin-1."
            ) from None
        raise InputError(
            f'Error: --encoding "{encoding}" is not a text encoding. Use a Python codec name '
            "such as utf-8, cp1252 or latin-1."
        ) from None


def _records(source, path: Path, encoding: str, where: str, decode_hint: str,
             **csv_options) -> Iterator[tuple[int, list[str]]]:
    """(first line, fields) for each CSV record of an open text file.

    The reader's line_num is a record's LAST line, and a quoted field may span several, so
    the first line is counted before reading. An unreadable record or undecodable text is an
    InputError naming the file and line.
    """
    reader = csv.reader(source, **csv_options)
    while True:
        first = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputError(
                f"Error: {where} line {first}: cannot read the CSV record ({exc}). Check the "
                "quotes from that line on (an unclosed quote runs to the end of the file) and "
                "--delimiter; nothing was imported."
            ) from None
        except UnicodeDecodeError:
            raise _decode_error(path, encoding, where, decode_hint) from None
        yield first, row


def _decode_error(path: Path, encoding: str, where: str, hint: str) -> InputError:
    """The InputError for the first line of `path` that is not valid `encoding` text.

    Text is decoded in blocks ahead of the csv reader, so the reader's line number says
    nothing about where the bad byte is: the file is decoded again, line by line.
    """
    name = codecs.lookup(encoding).name
    shown = "utf-8" if name in ("utf-8", "utf-8-sig") else encoding
    decoder = codecs.getincrementaldecoder(encoding)()
    number = 0
    try:
        with open(path, "rb") as raw:
            for number, chunk in enumerate(raw, start=1):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start] if exc.start < len(exc.object) else None
        detail = f" (byte 0x{byte:02x})" if byte is not None else ""
        return InputError(
            f"Error: {where} line {max(number, 1)}: not valid {shown} text{detail}. {hint}."
        )
    return InputError(f"Error: {where} is not valid {shown} text. {hint}.")


# One statement: the alert trigger fires once, and already imported rows are skipped.
_INSERT_SQL = """
    with staged as (
        select
            line_no,
            date,
            amount,
            note,
            category_id,
            lower(regexp_replace(btrim(coalesce(note, '')), '\\s+', ' ', 'g')) as normalized_note
        from import_rows
    ),

    numbered as (
        select
            staged.*,
            row_number() over (
                partition by date, amount, normalized_note
                order by line_no
            ) as occurrence
        from staged
    ),

    final as (
        select
            %(user_id)s::bigint as user_id,
            category_id,
            amount,
            %(currency)s as currency,
            date,
            note,
            encode(
                sha256(convert_to(
                    concat_ws('|', %(user_id)s::bigint, date, amount, normalized_note, occurrence),
                    'UTF8'
                )),
                'hex'
            ) as import_fingerprint
        from numbered
    )

    insert into expenses (user_id, category_id, amount, currency, date, note, import_fingerprint)
    select
        user_id,
        category_id,
        amount,
        currency,
        date,
        note,
        import_fingerprint
    from final
    on conflict (import_fingerprint) do nothing
"""


class _Categories:
    """Category names to ids, read once (exact name first, then any letter case)."""

    def __init__(self, conn: psycopg.Connection):
        rows = conn.execute("select id, name from categories").fetchall()
        self.exact = {name: category_id for category_id, name in rows}
        self.ids = set(self.exact.values())
        self.folded: dict[str, int | None] = {}
        for category_id, name in rows:
            # Two names differing only in case make the folded lookup ambiguous.
            key = name.lower()
            self.folded[key] = None if key in self.folded else category_id

    def get(self, name: str) -> int | None:
        name = name.strip()
        category_id = category_id_reference(name)
        if category_id is not None:
            # Digits (or #digits) are an id, never a name (V007 refuses digit-only names).
            return category_id if category_id in self.ids else None
        if name in self.exact:
            return self.exact[name]
        return self.folded.get(name.lower())

    def require(self, name, where: str) -> int:
        category_id = self.get(str(name))
        if category_id is None:
            raise InputError(
                f'Error: {where}: category "{name}" does not exist. '
                "Add it with `category add`, or use one from `category list`."
            )
        return category_id


class _RowParser:
    def __init__(self, filename: str, date_format: str, decimal_comma: bool, debits_negative: bool):
        self.filename = filename
        self.date_format = date_format
        self.decimal_comma = decimal_comma
        self.debits_negative = debits_negative

    def parse(self, line: int, row: list[str], columns: dict[str, int]):
        """(date, amount, note, category text) for an expense row, None for a skipped credit."""
        date_text = row[columns["date"]].strip()
        day = self._date(line, date_text)
        amount = self._amount(line, row[columns["amount"]])
        if amount is None:
            return None
        note = row[columns["note"]].strip() or None if "note" in columns else None
        category = row[columns["category"]].strip() if "category" in columns else ""
        return day, amount, note, category

    def _date(self, line: int, text: str) -> date:
        try:
            day = _parse_date(text, self.date_format)
        except ValueError:
            raise InputError(
                f'Error: {self.filename} line {line}: date "{text}" does not match '
                f"--date-format {self.date_format} or is not a real day. Fix the line or "
                "pass the file's --date-format (for example %d/%m/%Y); nothing was imported."
            ) from None
        if not validate.FIRST_DAY <= day <= validate.LAST_DAY:
            raise InputError(
                f'Error: {self.filename} line {line}: date "{text}" is outside the years '
                f"{validate.FIRST_DAY.year} to {validate.LAST_DAY.year} the tracker keeps. "
                "Fix the year; nothing was imported."
            )
        return day

    def _amount(self, line: int, raw: str) -> Decimal | None:
        text = raw.strip().replace("\u00a0", " ")
        if self.decimal_comma:
            if _GROUPED_DOTS.match(text):
                text = text.replace(".", "").replace(" ", "")
            if text.count(",") == 1:
                text = text.replace(",", ".")
        elif _GROUPED_COMMAS.match(text):
            text = text.replace(",", "")
        negative = text.startswith("-")
        if self.debits_negative:
            if not negative:
                # Money coming in (a refund, a salary) is not spending; a zero row neither.
                self._check(line, raw, text, allow_zero=True)
                return None
            text = text[1:]
        return self._check(line, raw, text, allow_zero=False)

    def _check(self, line: int, raw: str, text: str, *, allow_zero: bool) -> Decimal:
        try:
            return validate.parse_amount(text, allow_zero=allow_zero)
        except InputError as exc:
            reason = str(exc).removeprefix("Error: ").split(". ")[0]
            reason = reason.replace(f'"{text}"', f'"{raw.strip()}"', 1)
            hint = "" if self.decimal_comma else " (use --decimal-comma for 12,50)"
            raise InputError(
                f"Error: {self.filename} line {line}: {reason}. Fix the line{hint}; "
                "nothing was imported."
            ) from None


# A statement repeats few distinct dates, and strptime is the slowest step per row.
@functools.lru_cache(maxsize=8192)
def _parse_date(text: str, date_format: str) -> date:
    if date_format == "%Y-%m-%d" and _ISO_DATE.match(text):
        return date.fromisoformat(text)
    return datetime.strptime(text, date_format).date()


def _column_positions(filename: str, header: list[str], mapping: ColumnMapping) -> dict[str, int]:
    names = [cell.strip() for cell in header]
    positions = {}
    for field in MAPPING_FIELDS:
        column = getattr(mapping, field)
        if column is None:
            continue
        if column not in names:
            folded = [name.lower() for name in names]
            if column.lower() not in folded:
                raise InputError(
                    f'Error: {filename} has no column "{column}" (for {field}); its columns are '
                    f"{', '.join(names)}. Fix --mapping or --delimiter."
                )
            positions[field] = folded.index(column.lower())
        else:
            positions[field] = names.index(column)
    return positions


def _choose_category(filename, line, note, category_text, categories, rules, rule_ids, default_id):
    if category_text:
        category_id = categories.get(category_text)
        if category_id is None:
            raise InputError(
                f'Error: {filename} line {line}: category "{category_text}" does not exist. '
                "Add it with `category add` or fix the line; nothing was imported."
            )
        return category_id
    text = note or ""
    for rule, category_id in zip(rules, rule_ids):
        if rule.regex.search(text):
            return category_id
    if default_id is not None:
        return default_id
    raise InputError(
        f'Error: {filename} line {line}: no category for "{text}" (no rule matches). '
        "Add a rule to --rules or give --default-category; nothing was imported."
    )
