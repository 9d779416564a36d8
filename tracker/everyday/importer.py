"""Bank statement import: a CSV export becomes expenses, once, all or nothing.

Three steps, so no transaction is open while Python works on the file:
1. a short read of the user and the categories;
2. every row is parsed and validated (strict CSV quoting, cell counts, dates, amounts, rules
   matched with RE2, which runs in linear time whatever the pattern) and written to a spool
   file on disk in COPY format, so memory stays flat whatever the file size;
3. one transaction COPYs the spool into a temporary table and one insert ... select moves
   the rows into expenses. That single statement fires the budget-alert trigger once (one
   alert per crossing, however many rows), and its `on conflict (import_fingerprint) do
   nothing` skips rows imported before: the fingerprint is the sha256 of user, account
   (`--account`, default "default"), date, amount, normalized note and the row's occurrence
   number among identical rows of the file, so two real identical coffees on one day stay
   two expenses, and the same purchase on two cards' statements (two --account names) stays
   two, while overlapping statements of one account only add their new rows.
Any bad row names its line and nothing from the file is written.
"""

import codecs
import csv
import functools
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import re2

from tracker.errors import InputError, TrackerError
from tracker.everyday import validate
from tracker.everyday.alerts import Alert, alerts_fired_now
from tracker.everyday.categories import category_id_reference
from tracker.everyday.expenses import check_currency
from tracker.everyday.users import find_user

# The account of statements imported without --account (and of every import made before
# accounts existed, V007): its fingerprints leave the account out, as they always did.
DEFAULT_ACCOUNT = "default"
MAPPING_FIELDS = ("date", "amount", "debit", "credit", "note", "category")
PROGRESS_EVERY_ROWS = 5000
_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
# Thousands groups: 1,234,567.89 or Indian 1,23,45,678.90, or 1.234.567,89 / 1 234 567,89
# with --decimal-comma.
_GROUPED_COMMAS = re.compile(
    r"^[+-]?([0-9]{1,3}(,[0-9]{3})+|[0-9]{1,2}(,[0-9]{2})+,[0-9]{3})(\.[0-9]*)?$"
)
_GROUPED_DOTS = re.compile(r"^[+-]?[0-9]{1,3}([. ][0-9]{3})+(,[0-9]*)?$")


@dataclass(frozen=True)
class ColumnMapping:
    """Which statement column holds each expense field.

    The amount is one signed column (`amount`) or two columns (`debit`, money out, and an
    optional `credit`, money in, which is skipped). Note and category are optional.
    """

    date: str
    amount: str | None = None
    note: str | None = None
    category: str | None = None
    debit: str | None = None
    credit: str | None = None


@dataclass(frozen=True)
class Rule:
    """Rows whose note matches `pattern` go to `category` (first matching rule wins)."""

    line: int
    pattern: str
    regex: str  # the RE2 pattern: the /regex/ itself, or the escaped substring
    category: str


@dataclass(frozen=True)
class ImportResult:
    path: Path
    account: str  # the fingerprint's source: --account, default DEFAULT_ACCOUNT
    rows: int  # expense rows in the file
    inserted: int
    duplicates: int  # already imported before: skipped
    skipped_credits: int  # money in: positive rows with --debits-negative, credit-column rows
    alerts: tuple[Alert, ...] = ()  # budget alerts the import fired


def parse_mapping(value: str) -> ColumnMapping:
    """`date=Date,amount=Amount[,note=...][,category=...]` (or debit=/credit= for the amount),
    or a file with one pair per line."""
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
    if "amount" in fields and ("debit" in fields or "credit" in fields):
        raise InputError(
            f"Error: {source} gives both amount and debit/credit columns. Use amount=Column "
            "for one signed column, or debit=Column[,credit=Column] for two."
        )
    if "credit" in fields and "debit" not in fields:
        raise InputError(
            f"Error: {source} gives a credit column but no debit column. Add debit=Column "
            "(the money spent)."
        )
    missing = [
        key
        for key in ("date", "amount")
        if key not in fields and not (key == "amount" and "debit" in fields)
    ]
    if missing:
        raise InputError(
            f"Error: {source} does not say which column holds {' and '.join(missing)}. "
            "Add it, like date=Date,amount=Amount (or debit=Withdrawal,credit=Deposit)."
        )
    return ColumnMapping(**fields)


def _re2_options(case_sensitive: bool):
    options = re2.Options()
    options.case_sensitive = case_sensitive
    options.log_errors = False
    # A pattern may not compile to more than 8 MB (RE2's default): a bounded cost there too.
    options.max_mem = 8 << 20
    return options


def load_rules(path) -> list[Rule]:
    """A CSV of `pattern,category` (header optional): substrings, or /regex/, any case.

    Regular expressions run on RE2, which matches in time linear in the note whatever the
    pattern (no catastrophic backtracking); it has no look-around or back-references.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Error: rules file {path} does not exist. Check the path.")
    rules = []
    where = f"rules file {path.name}"
    options = _re2_options(case_sensitive=False)
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
                regex = pattern[1:-1]
                try:
                    re2.compile(regex, options)
                except re2.error as exc:
                    reason = (
                        exc.args[0].decode()
                        if exc.args and isinstance(exc.args[0], bytes)
                        else str(exc)
                    )
                    raise InputError(
                        f"Error: rules file {path.name} line {line}: {pattern} is not a valid "
                        f"regular expression ({reason}). Fix the pattern (RE2 syntax: no "
                        "look-around or back-references)."
                    ) from None
            else:
                regex = re2.escape(pattern)
            rules.append(Rule(line, pattern, regex, category))
    return rules


class _RuleMatcher:
    """The first rule whose pattern matches a note: all rules in one RE2 set, one pass per note.

    RE2 matches in time linear in the note's length whatever the patterns, so a rule such
    as /(a+)+$/ cannot stall an import.
    """

    def __init__(self, rules: list[Rule], category_ids: list[int]):
        self.category_ids = category_ids
        self.patterns = None
        if rules:
            self.patterns = re2.Set.SearchSet(_re2_options(case_sensitive=False))
            for rule in rules:
                self.patterns.Add(rule.regex)
            self.patterns.Compile()

    def category_for(self, note: str) -> int | None:
        if self.patterns is None:
            return None
        matched = self.patterns.Match(note)
        return self.category_ids[min(matched)] if matched else None


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
    account: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Load one statement file as expenses of `user`: all rows in one transaction, or none.

    The file is read and checked before that transaction opens, so no lock is held while
    Python works on it.
    """
    path = Path(path)
    _check_statement_file(path)
    if len(delimiter) != 1:
        raise InputError(
            f'Error: --delimiter "{delimiter}" must be one character. Use , or ; or a tab.'
        )
    _check_encoding(encoding)
    currency = validate.parse_currency(currency) if currency is not None else None
    account = _parse_account(account)
    rules = rules or []
    total_bytes = path.stat().st_size
    with conn.transaction():
        found_user = find_user(conn, user)
        currency = check_currency(found_user, currency)
        categories = _Categories(conn)
    default_id = (
        categories.require(default_category, "--default-category")
        if default_category is not None
        else None
    )
    matcher = _RuleMatcher(
        rules, [categories.require(rule.category, f"rules file line {rule.line}") for rule in rules]
    )
    parser = _RowParser(path.name, date_format, decimal_comma, debits_negative, delimiter)
    other = "latin-1" if codecs.lookup(encoding).name == "cp1252" else "cp1252"
    decode_hint = f"Pass --encoding {other} (or the file's encoding); nothing was imported"
    rows = credits = 0
    with tempfile.TemporaryFile(prefix="tracker-import-") as spool:
        with open(path, newline="", encoding=encoding) as source:
            records = _records(
                source, path, encoding, path.name, decode_hint, delimiter=delimiter, strict=True
            )
            _, header = next(records, (None, None))
            if header is None:
                raise InputError(f"Error: statement file {path.name} is empty. Check the file.")
            columns = _column_positions(path.name, header, mapping)
            parser.expect(header, columns)
            write = spool.write
            for line, row in records:
                if not any(cell.strip() for cell in row):
                    continue
                parsed = parser.parse(line, row, columns)
                if parsed is None:
                    credits += 1
                    continue
                day, amount, note, category_text = parsed
                category_id = _choose_category(
                    path.name,
                    line,
                    note,
                    category_text,
                    categories,
                    matcher,
                    default_id,
                )
                write(_copy_line(line, day, amount, note, category_id))
                rows += 1
                if on_progress and rows % PROGRESS_EVERY_ROWS == 0:
                    # open()'s text file wraps a BufferedReader, which has tell().
                    position = source.buffer.tell()  # type: ignore[attr-defined]
                    on_progress(min(position, total_bytes), total_bytes)
        spool.seek(0)
        inserted, fired = _load(conn, spool, found_user.id, currency, account, path.name)
    if on_progress:
        on_progress(total_bytes, total_bytes)
    return ImportResult(path, account, rows, inserted, rows - inserted, credits, fired)


def _load(conn, spool, user_id: int, currency: str, account: str, filename: str):
    """COPY the checked rows into a temporary table, then one insert ... select."""
    try:
        with conn.transaction():
            # A caller's earlier import in the same session may leave its table behind.
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
            with (
                conn.cursor() as cursor,
                cursor.copy(
                    "copy import_rows (line_no, date, amount, note, category_id) from stdin"
                ) as copy,
            ):
                while block := spool.read(COPY_BLOCK_BYTES):
                    copy.write(block)
            inserted = conn.execute(
                _INSERT_SQL,
                {
                    "user_id": user_id,
                    "currency": currency,
                    "account": account,
                    "default_account": DEFAULT_ACCOUNT,
                },
            ).rowcount
            return inserted, alerts_fired_now(conn, user_id)
    except psycopg.errors.ForeignKeyViolation:
        # The file was checked against the categories read before; one went away since.
        raise TrackerError(
            f"Error: a category or the user was deleted while {filename} was being read. "
            "Nothing was imported; run the import again."
        ) from None


COPY_BLOCK_BYTES = 1 << 20
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_line(line: int, day: date, amount: Decimal, note: str | None, category_id: int) -> bytes:
    """One row in COPY text format."""
    if note is None:
        shown = "\\N"
    elif "\\" in note or "\t" in note or "\n" in note or "\r" in note:
        shown = note.translate(_COPY_ESCAPES)
    else:
        shown = note
    return f"{line}\t{day.isoformat()}\t{amount}\t{shown}\t{category_id}\n".encode()


def _check_statement_file(path: Path) -> None:
    """A regular file that exists: a device (/dev/zero), folder or pipe is refused (exit 2)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError(f"Error: statement file {path} does not exist. Check the path.") from None
    except OSError as exc:
        raise InputError(
            f"Error: cannot read statement file {path}: {exc.strerror or exc}. Check the path "
            "and its permissions."
        ) from None
    if stat.S_ISDIR(mode):
        raise InputError(f"Error: statement file {path} is a folder. Give a CSV file.")
    if not stat.S_ISREG(mode):
        raise InputError(
            f"Error: statement file {path} is not a regular file (a device or a pipe). "
            "Save the statement as a CSV file and import that."
        )
    if not os.access(path, os.R_OK):
        raise InputError(
            f"Error: cannot read statement file {path}: permission denied. Check its permissions."
        )


def _parse_account(account: str | None) -> str:
    if account is None:
        return DEFAULT_ACCOUNT
    text = account.strip()
    if not text or "\x00" in text:
        raise InputError(
            "Error: --account is empty. Name the card or bank account the statement is from, "
            "like --account hdfc-credit."
        )
    return text


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


def _records(
    source, path: Path, encoding: str, where: str, decode_hint: str, **csv_options
) -> Iterator[tuple[int, list[str]]]:
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
            reason = str(exc)
            if reason == "unexpected end of data":
                raise InputError(
                    f"Error: {where} line {first}: a quote opened in this record is never "
                    "closed (the file ends inside it). Close the quote on that line, or quote "
                    'the whole field as "..."; nothing was imported.'
                ) from None
            if "expected after" in reason:
                raise InputError(
                    f"Error: {where} line {first}: a quoted field in this record is followed "
                    f"by more text before the next separator ({reason}). A quote inside a "
                    'quoted field is written twice (""), or the quote opened on that line '
                    "is not closed where it should be; nothing was imported."
                ) from None
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
            for chunk in raw:
                number += 1
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start] if exc.start < len(exc.object) else None
        detail = f" (byte 0x{byte:02x})" if byte is not None else ""
        return InputError(
            f"Error: {where} line {max(number, 1)}: not valid {shown} text{detail}. {hint}."
        )
    return InputError(f"Error: {where} is not valid {shown} text. {hint}.")


# One statement: the alert trigger fires once, and already imported rows are skipped. The
# default account's fingerprint leaves the account out (as every import before V007 did);
# another account enters it with its length, so no account name can imitate other fields.
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
                    concat_ws(
                        '|',
                        %(user_id)s::bigint,
                        case when %(account)s::text <> %(default_account)s::text
                            then length(%(account)s::text) || ':' || %(account)s::text
                        end,
                        date,
                        amount,
                        normalized_note,
                        occurrence
                    ),
                    'UTF8'
                )),
                'hex'
            ) as import_fingerprint
        from numbered
    )

    insert into expenses (
        user_id, category_id, amount, currency, date, note, import_fingerprint, import_account
    )
    select
        user_id,
        category_id,
        amount,
        currency,
        date,
        note,
        import_fingerprint,
        %(account)s::text
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
    def __init__(
        self,
        filename: str,
        date_format: str,
        decimal_comma: bool,
        debits_negative: bool,
        delimiter: str = ",",
    ):
        self.filename = filename
        self.date_format = date_format
        self.decimal_comma = decimal_comma
        self.debits_negative = debits_negative
        self.delimiter = delimiter
        self.width = 0
        self.columns: dict[str, int] = {}

    def expect(self, header: list[str], columns: dict[str, int]) -> None:
        """Remember the header's width: every record must have exactly as many cells."""
        self.width = len(header)
        self.columns = columns

    def parse(self, line: int, row: list[str], columns: dict[str, int]):
        """(date, amount, note, category text) for an expense row, None for a skipped credit."""
        self._check_width(line, row)
        date_text = row[columns["date"]].strip()
        day = self._date(line, date_text)
        if "amount" in columns:
            amount = self._amount(line, row[columns["amount"]])
        else:
            amount = self._debit_credit(line, row, columns)
        note = row[columns["note"]] if "note" in columns else None
        if note is not None:
            if "\n" in note or "\r" in note:
                self._check_swallowed_records(line, note)
            if "\x00" in note:
                raise InputError(
                    f"Error: {self.filename} line {line}: the note holds a NUL byte (\\x00), "
                    "which text cannot hold. Remove it from the line; nothing was imported."
                )
            note = note.strip() or None
        if amount is None:
            return None
        category = row[columns["category"]].strip() if "category" in columns else ""
        return day, amount, note, category

    def _check_width(self, line: int, row: list[str]) -> None:
        if len(row) == self.width:
            return
        if len(row) > self.width and not "".join(row[self.width :]).strip():
            return  # trailing empty cells (a spreadsheet's extra commas) carry nothing
        hint = ""
        if len(row) > self.width:
            hint = (
                ' (an unquoted comma inside a value, as in 1,234.00? Quote the value: "1,234.00")'
            )
        raise InputError(
            f"Error: {self.filename} line {line}: {len(row)} cells, the header has "
            f"{self.width}{hint}. Fix the line or --delimiter; nothing was imported."
        )

    def _check_swallowed_records(self, line: int, text: str) -> None:
        """Refuse a quoted note whose inner lines read as records: an unclosed quote.

        A real multi-line note is fine; but a line inside it with the header's cells and a
        date in the date column is a record the quote swallowed.
        """
        inner = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        for offset, piece in enumerate(inner[1:], start=1):
            cells = next(csv.reader([piece], delimiter=self.delimiter), [])
            if len(cells) < self.width:
                continue
            try:
                _parse_date(cells[self.columns["date"]].strip(), self.date_format)
            except ValueError:
                continue
            raise InputError(
                f"Error: {self.filename} line {line}: a quote opened on this line runs on "
                f"past line {line + offset}, which reads as a record of its own. Close the "
                'quote on that line (or write a quote inside a field as ""); nothing was '
                "imported."
            )

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
        text = self._plain(raw)
        negative = text.startswith("-")
        if self.debits_negative:
            if not negative:
                # Money coming in (a refund, a salary) is not spending; a zero row neither.
                self._check(line, raw, text, allow_zero=True)
                return None
            text = text[1:]
        return self._check(line, raw, text, allow_zero=False)

    def _debit_credit(self, line: int, row: list[str], columns: dict[str, int]):
        """Two columns: a debit is spending; a credit-only row is money in, skipped."""
        debit = row[columns["debit"]].strip()
        credit = row[columns["credit"]].strip() if "credit" in columns else ""
        if debit and credit:
            raise InputError(
                f'Error: {self.filename} line {line}: both debit "{debit}" and credit '
                f'"{credit}" are filled. Keep one of them; nothing was imported.'
            )
        if credit:
            self._check(line, credit, self._plain(credit), allow_zero=True)
            return None
        if not debit:
            raise InputError(
                f"Error: {self.filename} line {line}: neither debit nor credit holds an "
                "amount. Fill one of them or remove the line; nothing was imported."
            )
        return self._check(line, debit, self._plain(debit), allow_zero=False)

    def _plain(self, raw: str) -> str:
        """The amount without thousands separators: 1,234.50 and 1,23,456.00 (or with
        --decimal-comma 1.234,50) become 1234.50 and 123456.00."""
        text = raw.strip().replace("\u00a0", " ")
        if self.decimal_comma:
            if _GROUPED_DOTS.match(text):
                text = text.replace(".", "").replace(" ", "")
            if text.count(",") == 1:
                text = text.replace(",", ".")
        elif _GROUPED_COMMAS.match(text):
            text = text.replace(",", "")
        return text

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


def _choose_category(filename, line, note, category_text, categories, matcher, default_id):
    if category_text:
        category_id = categories.get(category_text)
        if category_id is None:
            raise InputError(
                f'Error: {filename} line {line}: category "{category_text}" does not exist. '
                "Add it with `category add` or fix the line; nothing was imported."
            )
        return category_id
    text = note or ""
    category_id = matcher.category_for(text)
    if category_id is not None:
        return category_id
    if default_id is not None:
        return default_id
    raise InputError(
        f'Error: {filename} line {line}: no category for "{text}" (no rule matches). '
        "Add a rule to --rules or give --default-category; nothing was imported."
    )
