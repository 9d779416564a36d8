"""Bank statement import: a CSV export becomes expenses, once, all or nothing.

Three steps, so no transaction is open while Python works on the file:
1. a short read of the user and the categories;
2. every row is parsed and validated (strict CSV quoting, cell counts, dates, amounts, rules
   matched with RE2, which runs in linear time whatever the pattern) and written to a spool
   file on disk in COPY format, so memory stays flat whatever the file size;
3. one transaction COPYs the spool into a temporary table and one insert ... select moves
   the rows into expenses. That single statement fires the budget-alert trigger once (one
   alert per crossing, however many rows), and skips rows imported before (imports of one
   user take turns on an advisory lock, and the unique `import_fingerprint` backs it up):
   the fingerprint is the sha256 of user, account
   (`--account`, default "default"), date, amount, normalized note and the row's occurrence
   number among identical rows of the file, so two real identical coffees on one day stay
   two expenses, and the same purchase on two cards' statements (two --account names) stays
   two, while overlapping statements of one account only add their new rows.
Any bad row names its line and nothing from the file is written.
"""

import codecs
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg

from tracker.errors import InputError, TrackerError
from tracker.everyday import validate
from tracker.everyday.alerts import Alert, alerts_fired_now
from tracker.everyday.categories import category_id_reference
from tracker.everyday.expenses import check_currency
from tracker.everyday.statement import (
    TAB_NAMES,
    ColumnMapping,
    RowParser,
    Rule,
    RuleMatcher,
    check_encoding,
    check_statement_file,
    column_positions,
    load_rules,
    parse_mapping,
    read_records,
)
from tracker.everyday.users import find_user
from tracker.plumbing import db
from tracker.text import plural

# The account of statements imported without --account (and of every import made before
# accounts existed, V007): its fingerprints leave the account out, as they always did.
DEFAULT_ACCOUNT = "default"
PROGRESS_EVERY_ROWS = 5000


@dataclass(frozen=True)
class ImportResult:
    path: Path
    account: str  # the fingerprint's source: --account, default DEFAULT_ACCOUNT
    rows: int  # expense rows in the file
    inserted: int
    duplicates: int  # already imported before: skipped
    skipped_credits: int  # money in: positive rows with --debits-negative, credit-column rows
    alerts: tuple[Alert, ...] = ()  # budget alerts the import fired


def import_file(url: str, path, user, mapping: str, *, rules_file=None, **options) -> ImportResult:
    """Import one statement into the database at `url`, as `import_statement` does.

    `mapping` is the field=Column text (or a file of it, see `parse_mapping`), `rules_file`
    an optional CSV of pattern,category; the other options are `import_statement`'s.
    """
    column_mapping = parse_mapping(mapping)
    rules = load_rules(rules_file) if rules_file else []
    # A pool, not a bare connection: imports run long and may be driven repeatedly.
    with (
        db.pool(url, min_size=1, max_size=1) as connection_pool,
        connection_pool.connection() as conn,
    ):
        return import_statement(conn, path, user, column_mapping, rules=rules, **options)


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
    check_statement_file(path)
    if delimiter in TAB_NAMES:
        delimiter = "\t"
    if len(delimiter) != 1:
        raise InputError(f'--delimiter "{delimiter}" must be one character. Use , or ; or a tab.')
    check_encoding(encoding)
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
    matcher = RuleMatcher(
        rules, [categories.require(rule.category, f"rules file line {rule.line}") for rule in rules]
    )
    parser = RowParser(path.name, date_format, decimal_comma, debits_negative, delimiter)
    other = "latin-1" if codecs.lookup(encoding).name == "cp1252" else "cp1252"
    decode_hint = f"Pass --encoding {other} (or the file's encoding); nothing was imported"
    rows = credits = 0
    with tempfile.TemporaryFile(prefix="tracker-import-") as spool:
        with open(path, newline="", encoding=encoding) as source:
            records = read_records(
                source, path, encoding, path.name, decode_hint, delimiter=delimiter, strict=True
            )
            _, header = next(records, (None, None))
            if header is None:
                raise InputError(f"statement file {path.name} is empty. Check the file.")
            columns = column_positions(path.name, header, mapping)
            parser.expect(header, columns)
            write = spool.write
            filename = path.name
            for line, row in records:
                if not "".join(row).strip():
                    continue  # a blank record (every cell empty or spaces)
                parsed = parser.parse(line, row, columns)
                if parsed is None:
                    credits += 1
                    continue
                day, amount, note, category_text = parsed
                category_id = _choose_category(
                    filename,
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


def describe_import(result: ImportResult) -> str:
    """One line for people: what was imported, what was already there or skipped."""
    skipped = (
        f", skipped {plural(result.skipped_credits, 'credit row')}"
        if result.skipped_credits
        else ""
    )
    source = result.path.name
    if result.account != DEFAULT_ACCOUNT:
        source += f" (account {result.account})"
    return (
        f"Imported {result.inserted:,} of {plural(result.rows, 'row')} from {source}; "
        f"{result.duplicates:,} already imported{skipped}."
    )


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
            # Imports for one user take turns (the lock is held to commit), so each one's
            # insert sees every row an earlier one committed and skips it by a plain
            # anti-join, which costs less than `on conflict` (a speculative insertion per
            # row). READ COMMITTED (the alert trigger requires it): the insert below gets a
            # snapshot taken after the lock is granted.
            conn.execute(
                "select pg_advisory_xact_lock(%s, cast(%s %% 2147483647 as integer))",
                [IMPORT_LOCK, user_id],
            )
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
    except psycopg.errors.UniqueViolation:
        # Only imports write fingerprints, and they take turns; never expected.
        raise TrackerError(
            f"rows of {filename} were imported by another session at the same time. "
            "Nothing was imported; run the import again (it skips what is there)."
        ) from None
    except psycopg.errors.ForeignKeyViolation:
        # The file was checked against the categories read before; one went away since.
        raise TrackerError(
            f"a category or the user was deleted while {filename} was being read. "
            "Nothing was imported; run the import again."
        ) from None


COPY_BLOCK_BYTES = 1 << 20

# The advisory lock (first key; the second is the user) that makes imports of one user
# take turns. The budget-alert trigger's keys use another first key (V002: 20250501).
IMPORT_LOCK = 20251101

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


def _parse_account(account: str | None) -> str:
    if account is None:
        return DEFAULT_ACCOUNT
    text = account.strip()
    if not text or "\x00" in text:
        raise InputError(
            "--account is empty. Name the card or bank account the statement is from, "
            "like --account hdfc-credit."
        )
    return text


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
            lower(
                -- Runs of white space become one space; most notes have none but single
                -- spaces, so the replace (the costliest step) runs only where it changes
                -- something: a run of two, or any white space other than a space.
                case
                    when note ~ '\\s\\s|(?! )\\s'
                        then regexp_replace(btrim(note), '\\s+', ' ', 'g')
                    else btrim(coalesce(note, ''))
                end
            ) as normalized_note
        from import_rows
    ),

    numbered as (
        select
            staged.*,
            row_number() over (
                -- Byte order ("C"): only equality matters here, and it sorts fastest.
                partition by date, amount, normalized_note collate "C"
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
    where not exists (
        select from expenses as imported
        where imported.import_fingerprint = final.import_fingerprint
    )
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
                f'{where}: category "{name}" does not exist. '
                "Add it with `category add`, or use one from `category list`."
            )
        return category_id


def _choose_category(filename, line, note, category_text, categories, matcher, default_id):
    if category_text:
        category_id = categories.get(category_text)
        if category_id is None:
            raise InputError(
                f'{filename} line {line}: category "{category_text}" does not exist. '
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
        f'{filename} line {line}: no category for "{text}" (no rule matches). '
        "Add a rule to --rules or give --default-category; nothing was imported."
    )
