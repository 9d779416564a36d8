"""Reading a bank statement file, before any database work: the column mapping, the
category rules, strict CSV records and each row's date and amount, checked.

Any bad line is an InputError naming the file and line; nothing here touches the database,
so `importer` can parse a whole file while no transaction is open.
"""

import codecs
import csv
import functools
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import re2

from tracker.errors import InputError
from tracker.everyday import validate

MAPPING_FIELDS = ("date", "amount", "debit", "credit", "note", "category")

# Names for a tab separator, which is awkward to type in a shell.
TAB_NAMES = ("tab", "\\t")

_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")

# Thousands groups: 1,234,567.89 or Indian 1,23,45,678.90, or 1.234.567,89 / 1 234 567,89
# with --decimal-comma.
_GROUPED_COMMAS = re.compile(
    r"^[+-]?([0-9]{1,3}(,[0-9]{3})+|[0-9]{1,2}(,[0-9]{2})+,[0-9]{3})(\.[0-9]*)?$"
)
_GROUPED_DOTS = re.compile(r"^[+-]?[0-9]{1,3}([. ][0-9]{3})+(,[0-9]*)?$")

# An amount that needs no rewriting and no further check (1 to 10 digits, up to 2 decimals).
_PLAIN_AMOUNT = re.compile(r"[0-9]{1,10}(\.[0-9]{1,2})?")
_CENT = Decimal("0.01")


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
                f'{source}: "{pair}" is not a field=Column pair. Use fields '
                f"{', '.join(MAPPING_FIELDS)}, like date=Date,amount=Amount,note=Description."
            )
        fields[key] = column.strip()
    if "amount" in fields and ("debit" in fields or "credit" in fields):
        raise InputError(
            f"{source} gives both amount and debit/credit columns. Use amount=Column "
            "for one signed column, or debit=Column[,credit=Column] for two."
        )
    if "credit" in fields and "debit" not in fields:
        raise InputError(
            f"{source} gives a credit column but no debit column. Add debit=Column "
            "(the money spent)."
        )
    missing = [
        key
        for key in ("date", "amount")
        if key not in fields and not (key == "amount" and "debit" in fields)
    ]
    if missing:
        raise InputError(
            f"{source} does not say which column holds {' and '.join(missing)}. "
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
        raise InputError(f"rules file {path} does not exist. Check the path.")
    rules = []
    where = f"rules file {path.name}"
    options = _re2_options(case_sensitive=False)
    with open(path, newline="", encoding="utf-8-sig") as source:
        for line, row in read_records(source, path, "utf-8-sig", where, "Save it as UTF-8"):
            if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                continue
            if [cell.strip().lower() for cell in row] == ["pattern", "category"]:
                continue
            if len(row) != 2 or not row[0].strip() or not row[1].strip():
                raise InputError(
                    f"rules file {path.name} line {line}: expected pattern,category. "
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
                        f"rules file {path.name} line {line}: {pattern} is not a valid "
                        f"regular expression ({reason}). Fix the pattern (RE2 syntax: no "
                        "look-around or back-references)."
                    ) from None
            else:
                regex = re2.escape(pattern)
            rules.append(Rule(line, pattern, regex, category))
    return rules


class RuleMatcher:
    """The first rule whose pattern matches a note: all rules in one RE2 set, one pass per note.

    RE2 matches in time linear in the note's length whatever the patterns, so a rule such
    as /(a+)+$/ cannot stall an import.
    """

    def __init__(self, rules: list[Rule], category_ids: list[int]):
        self.category_ids = category_ids
        self.cache: dict[str, int | None] = {}
        self.patterns = None
        if rules:
            self.patterns = re2.Set.SearchSet(_re2_options(case_sensitive=False))
            for rule in rules:
                self.patterns.Add(rule.regex)
            self.patterns.Compile()

    def category_for(self, note: str) -> int | None:
        if self.patterns is None:
            return None
        # Statements repeat their merchants: remember the answer for up to CACHED_NOTES
        # notes (a bounded memory, whatever the file size).
        if note in self.cache:
            return self.cache[note]
        matched = self.patterns.Match(note)
        category_id = self.category_ids[min(matched)] if matched else None
        if len(self.cache) < CACHED_NOTES:
            self.cache[note] = category_id
        return category_id


CACHED_NOTES = 50_000


def check_statement_file(path: Path) -> None:
    """A regular file that exists: a device (/dev/zero), folder or pipe is refused (exit 2)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError(f"statement file {path} does not exist. Check the path.") from None
    except OSError as exc:
        raise InputError(
            f"cannot read statement file {path}: {exc.strerror or exc}. Check the path "
            "and its permissions."
        ) from None
    if stat.S_ISDIR(mode):
        raise InputError(f"statement file {path} is a folder. Give a CSV file.")
    if not stat.S_ISREG(mode):
        raise InputError(
            f"statement file {path} is not a regular file (a device or a pipe). "
            "Save the statement as a CSV file and import that."
        )
    if not os.access(path, os.R_OK):
        raise InputError(
            f"cannot read statement file {path}: permission denied. Check its permissions."
        )


def check_encoding(encoding: str) -> None:
    """Refuse an --encoding Python does not know, or one that does not decode to text."""
    try:
        "".encode(encoding)
    except LookupError:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise InputError(
                f'unknown --encoding "{encoding}". Use a Python codec name such as '
                "utf-8, cp1252 or latin-1."
            ) from None
        raise InputError(
            f'--encoding "{encoding}" is not a text encoding. Use a Python codec name '
            "such as utf-8, cp1252 or latin-1."
        ) from None


def read_records(
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
                    f"{where} line {first}: a quote opened in this record is never "
                    "closed (the file ends inside it). Close the quote on that line, or quote "
                    'the whole field as "..."; nothing was imported.'
                ) from None
            if "expected after" in reason:
                raise InputError(
                    f"{where} line {first}: a quoted field in this record is followed "
                    f"by more text before the next separator ({reason}). A quote inside a "
                    'quoted field is written twice (""), or the quote opened on that line '
                    "is not closed where it should be; nothing was imported."
                ) from None
            raise InputError(
                f"{where} line {first}: cannot read the CSV record ({exc}). Check the "
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
        return InputError(f"{where} line {max(number, 1)}: not valid {shown} text{detail}. {hint}.")
    return InputError(f"{where} is not valid {shown} text. {hint}.")


class RowParser:
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
                    f"{self.filename} line {line}: the note holds a NUL byte (\\x00), "
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
            f"{self.filename} line {line}: {len(row)} cells, the header has "
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
                f"{self.filename} line {line}: a quote opened on this line runs on "
                f"past line {line + offset}, which reads as a record of its own. Close the "
                'quote on that line (or write a quote inside a field as ""); nothing was '
                "imported."
            )

    def _date(self, line: int, text: str) -> date:
        try:
            day = _parse_date(text, self.date_format)
        except ValueError:
            raise InputError(
                f'{self.filename} line {line}: date "{text}" does not match '
                f"--date-format {self.date_format} or is not a real day. Fix the line or "
                "pass the file's --date-format (for example %d/%m/%Y); nothing was imported."
            ) from None
        if not validate.FIRST_DAY <= day <= validate.LAST_DAY:
            raise InputError(
                f'{self.filename} line {line}: date "{text}" is outside the years '
                f"{validate.FIRST_DAY.year} to {validate.LAST_DAY.year} the tracker keeps. "
                "Fix the year; nothing was imported."
            )
        return day

    def _amount(self, line: int, raw: str) -> Decimal | None:
        if not (self.debits_negative or self.decimal_comma) and _PLAIN_AMOUNT.fullmatch(raw):
            # The common case, 1234.50: what validate.parse_amount returns for it.
            amount = Decimal(raw)
            if amount:
                return amount.quantize(_CENT)
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
                f'{self.filename} line {line}: both debit "{debit}" and credit '
                f'"{credit}" are filled. Keep one of them; nothing was imported.'
            )
        if credit:
            self._check(line, credit, self._plain(credit), allow_zero=True)
            return None
        if not debit:
            raise InputError(
                f"{self.filename} line {line}: neither debit nor credit holds an "
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
            reason = str(exc).split(". ")[0]
            reason = reason.replace(f'"{text}"', f'"{raw.strip()}"', 1)
            hint = "" if self.decimal_comma else " (use --decimal-comma for 12,50)"
            raise InputError(
                f"{self.filename} line {line}: {reason}. Fix the line{hint}; nothing was imported."
            ) from None


# A statement repeats few distinct dates, and strptime is the slowest step per row.
@functools.lru_cache(maxsize=8192)
def _parse_date(text: str, date_format: str) -> date:
    if date_format == "%Y-%m-%d" and _ISO_DATE.match(text):
        return date.fromisoformat(text)
    return datetime.strptime(text, date_format).date()


def column_positions(filename: str, header: list[str], mapping: ColumnMapping) -> dict[str, int]:
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
                    f'{filename} has no column "{column}" (for {field}); its columns are '
                    f"{', '.join(names)}. Fix --mapping or --delimiter."
                )
            positions[field] = folded.index(column.lower())
        else:
            positions[field] = names.index(column)
    return positions
