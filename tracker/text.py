"""Text every layer shares: aligned tables, CSV/JSON records, counts, money, an error's first
line, a quoted SQL identifier, and the sha256 of a file or a text.

The library returns these strings and the CLI prints them, so the wording and layout of a
result have one home whichever part of the tracker produced it. Nothing here imports a
database driver.
"""

import hashlib
import os
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Protocol

FORMATS = ("table", "csv", "json")

# Money as the tables show it (money()): right-aligned, so the decimal points line up.
_AMOUNT_CELL = re.compile(r"^-?[0-9][0-9,]*\.[0-9]{2}$")


def plural(count: int, noun: str, many: str | None = None) -> str:
    """ "1 model", "2 models", "1,000 files": the count with the noun in the right number."""
    return f"{count:,} {noun_for(count, noun, many)}"


def noun_for(count: int, noun: str, many: str | None = None) -> str:
    """The noun alone, in the number `count` asks for."""
    return noun if count == 1 else (many or noun + "s")


def money(value) -> str:
    """An amount with thousands separators and 2 decimals ("" for none): 1,234.50."""
    return "" if value is None else f"{value:,.2f}"


def when(value, seconds: bool = False) -> str:
    """A timestamp to the minute (or second) for a table cell ("" for none)."""
    if value is None:
        return ""
    return f"{value:%Y-%m-%d %H:%M:%S}" if seconds else f"{value:%Y-%m-%d %H:%M}"


def first_line(text, skip: tuple[str, ...] = ()) -> str:
    """The first non-blank line of a message, stripped: errors are shown as one line.

    skip: prefixes of lines that are noise, not the reason (Spark's "JVM stacktrace", "at ").
    """
    for line in str(text).strip().splitlines():
        line = line.strip()
        if line and not line.startswith(skip):
            return line
    return ""


def reason(exc: BaseException, skip: tuple[str, ...] = ()) -> str:
    """Why exc happened, to quote inside a sentence: its first line without the final period
    (or the exception's type when it says nothing)."""
    return first_line(exc, skip).rstrip(".") or type(exc).__name__


def table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    """Rows as an aligned plain-text table, one line per row (no trailing newline).

    Line breaks inside a value show as ↵ and control characters as ?, so a multi-line note
    (or an escape sequence in one) never breaks the layout; widths count wide characters
    (CJK, most emoji) as two columns; amount columns are right-aligned.
    """
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [_width(header) for header in headers]
    for row in cells:
        widths = [max(width, _width(cell)) for width, cell in zip(widths, row, strict=False)]
    amounts = [
        any(row[index] for row in cells)
        and all(not row[index] or _AMOUNT_CELL.match(row[index]) for row in cells)
        for index in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        padded = [
            _pad(value, width, right)
            for value, width, right in zip(values, widths, amounts, strict=False)
        ]
        return "  ".join(padded).rstrip()

    lines = [line(list(headers)), "  ".join("-" * width for width in widths)]
    lines.extend(line(row) for row in cells)
    return "\n".join(lines)


def records(fmt: str, headers: Sequence[str], dicts: list[dict], rows: Sequence[Sequence]) -> str:
    """Records as a table (people), CSV or JSON (scripts; amounts as exact strings).

    `dicts` feed CSV and JSON, `rows` the table: the same records, shaped for each reader.
    """
    import csv
    import io
    import json

    if fmt == "json":
        return json.dumps(dicts, indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        fields = list(dicts[0]) if dicts else list(headers)
        writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(dicts)
        return buffer.getvalue()
    return table(headers, rows) + "\n"


class Listed(Protocol):
    """A record listing() shows: its kind names the table HEADERS, each record its cells."""

    HEADERS: ClassVar[tuple[str, ...]]

    def as_dict(self) -> dict: ...

    def as_row(self) -> Sequence: ...


def listing(fmt: str, kind: type[Listed], items: Sequence[Listed]) -> str:
    """Records of one kind in fmt: the kind names its table HEADERS, each record gives its
    `as_dict()` (CSV, JSON) and `as_row()` (table cells)."""
    dicts = [item.as_dict() for item in items]
    return records(fmt, kind.HEADERS, dicts, [item.as_row() for item in items])


def _cell(value) -> str:
    text = "" if value is None else str(value)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", " \u21b5 ")
    return "".join(
        " " if char == "\t" else "?" if unicodedata.category(char) == "Cc" else char
        for char in text
    )


def _width(text: str) -> int:
    """Columns a terminal uses for text: wide (CJK, most emoji) 2, combining marks 0."""
    return sum(
        0
        if unicodedata.combining(char)
        else 2
        if unicodedata.east_asian_width(char) in ("W", "F")
        else 1
        for char in text
    )


def _pad(text: str, width: int, right: bool) -> str:
    space = " " * (width - _width(text))
    return space + text if right else text + space


CHUNK_BYTES = 1 << 20


def quote_identifier(name: str) -> str:
    """name as a double-quoted SQL identifier (PostgreSQL and DuckDB), quotes doubled.

    For SQL text built for DuckDB; PostgreSQL statements use psycopg.sql.Identifier.
    """
    return '"' + name.replace('"', '""') + '"'


def file_sha256(path: Path, *, fsync: bool = False) -> str:
    """The file's sha256 (hex), read in 1 MiB blocks.

    fsync: also make sure its bytes are on disk first (an export's COMMITTED marker promises
    a complete set even after a power cut).
    """
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while block := source.read(CHUNK_BYTES):
            digest.update(block)
        if fsync:
            os.fsync(source.fileno())
    return digest.hexdigest()


def text_sha256(text: str) -> str:
    """The sha256 (hex) of text as UTF-8: what a build records of the SQL it ran."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
