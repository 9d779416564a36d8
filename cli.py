"""Smart Spending Tracker command line: parse options, call the tracker package, print.

Every command maps handled failures to one line on stderr: exit 1 for a failure,
exit 2 for bad input. --debug (or TRACKER_DEBUG=1) shows the traceback instead.
"""

import contextlib
import os
import re
import sys
from pathlib import Path


def run_in_project_venv() -> None:
    """Re-run this command with the project's .venv, creating it first if needed (as make does)."""
    project = Path(__file__).resolve().parent
    venv = project / ".venv"
    if Path(sys.prefix).resolve() == venv.resolve():
        return
    import subprocess

    python = venv / "bin" / "python"
    lock = project / "requirements.lock"
    stamp = venv / ".installed"
    if not stamp.exists() or stamp.stat().st_mtime < lock.stat().st_mtime:
        print("Setting up .venv with the pinned dependencies (first run only)...", file=sys.stderr)
        try:
            if not python.exists():
                subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run(
                [
                    str(python),
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                    str(lock),
                ],
                check=True,
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            sys.exit(f"Error: could not set up {venv} ({exc}). Run `make venv` to see why.")
        stamp.touch()
    os.execv(python, [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])


if __name__ == "__main__":
    run_in_project_venv()

import click  # noqa: E402 - after the venv bootstrap, which needs only the standard library

from tracker.errors import InputError, TrackerError  # noqa: E402
from tracker.plumbing import config  # noqa: E402


class TrackerGroup(click.Group):
    """A group that prints TrackerError and database errors as one line."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TrackerError as exc:
            if _debug(ctx):
                raise
            click.echo(_one_line(str(exc)), err=True)
            ctx.exit(exc.exit_code)
        except Exception as exc:
            import psycopg

            if _debug(ctx) or not isinstance(exc, psycopg.Error):
                raise
            reason = _one_line(str(exc)) or type(exc).__name__
            click.echo(
                f"Error: the database refused the command: {reason}. "
                "Run again with --debug for details.",
                err=True,
            )
            ctx.exit(1)


def _debug(ctx) -> bool:
    root = ctx.find_root()
    return bool(root.params.get("debug")) or config.debug_enabled()


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def database(ctx: click.Context, *, start: bool = True):
    """The database chosen by --database-url, DATABASE_URL, .env or the private server."""
    from tracker.plumbing import db

    return db.resolve(ctx.find_root().params.get("database_url"), start=start)


# Money as the tables show it (_money): right-aligned, so the decimal points line up.
_AMOUNT_CELL = re.compile(r"^-?[0-9][0-9,]*\.[0-9]{2}$")


def print_table(headers: list[str], rows: list[tuple]) -> None:
    """Print rows as an aligned plain-text table, one line per row.

    Line breaks inside a value show as ↵ and control characters as ?, so a multi-line note
    (or an escape sequence in one) never breaks the layout; widths count wide characters
    (CJK, most emoji) as two columns; amount columns are right-aligned.
    """
    cells = [[_table_cell(value) for value in row] for row in rows]
    widths = [_width(header) for header in headers]
    for row in cells:
        widths = [max(width, _width(cell)) for width, cell in zip(widths, row, strict=True)]
    amounts = [
        any(row[index] for row in cells)
        and all(not row[index] or _AMOUNT_CELL.match(row[index]) for row in cells)
        for index in range(len(headers))
    ]

    def line(values: list[str]) -> str:
        padded = [
            _pad(value, width, right)
            for value, width, right in zip(values, widths, amounts, strict=True)
        ]
        return "  ".join(padded).rstrip()

    click.echo(line(list(headers)))
    click.echo("  ".join("-" * width for width in widths))
    for row in cells:
        click.echo(line(row))


def _table_cell(value) -> str:
    import unicodedata

    text = "" if value is None else str(value)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", " \u21b5 ")
    return "".join(
        " " if char == "\t" else "?" if unicodedata.category(char) == "Cc" else char
        for char in text
    )


def _width(text: str) -> int:
    """Columns a terminal uses for text: wide (CJK, most emoji) 2, combining marks 0."""
    import unicodedata

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


@click.group(cls=TrackerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--database-url",
    metavar="URL",
    help="PostgreSQL to use (default: DATABASE_URL, then .env, then the private server).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
def cli(database_url, debug):
    """Smart Spending Tracker: expenses, budgets, alerts and Power BI exports on PostgreSQL.

    Example:

        python cli.py db-init && python cli.py db status
    """


# --- database: db-init, db status, db stop, psql -------------------------------------------


@cli.command("db-init")
@click.option("--seed/--no-seed", default=True, help="Load the sample seed data (default: yes).")
@click.pass_context
def db_init(ctx, seed):
    """Apply pending migrations from database/migrations and load the sample seeds.

    Running it again changes nothing and says so.

    Example:

        python cli.py db-init --no-seed
    """
    from tracker.plumbing.bootstrap import initialize_database

    target = database(ctx)
    click.echo(f"Database: {target.masked_url} ({target.source})")

    def on_applied(migration, elapsed_ms):
        click.echo(f"  applied {migration.filename} ({elapsed_ms} ms)")

    report = initialize_database(target.url, seed=seed, on_applied=on_applied)
    if report.seeds and report.seeds.loaded:
        rows = ", ".join(f"{count} {name}" for name, count in report.seeds.rows.items())
        click.echo(f"  loaded sample seeds ({rows})")
    if not report.changed:
        seeds_note = ", sample seeds already loaded" if seed else ""
        click.echo(
            f"Nothing to do: all {report.already_applied} migrations already applied{seeds_note}."
        )
    else:
        click.echo("Database is up to date.")


@cli.group("db", cls=TrackerGroup)
def db_group():
    """Inspect or stop the database.

    Example:

        python cli.py db status
    """


@db_group.command("status")
@click.pass_context
def db_status(ctx):
    """Say which database is in use, whether it is up, and which migrations are applied.

    Example:

        python cli.py db status
    """
    from tracker.plumbing.bootstrap import database_status

    status = database_status(database(ctx, start=False))
    click.echo(f"Database:   {status.database.masked_url}")
    click.echo(f"Source:     {status.database.source}")
    if status.server_running is not None:
        state = "running" if status.server_running else "stopped (any command starts it)"
        click.echo(f"Server:     private, {state}")
    if not status.reachable:
        click.echo(f"Reachable:  no ({_one_line(status.error)})")
        ctx.exit(1)
    click.echo(f"Reachable:  yes (PostgreSQL {status.server_version})")
    click.echo(f"Migrations: {len(status.applied)} applied, {len(status.pending)} pending")
    for row in status.applied:
        click.echo(f"  applied  V{row.version:03d}__{row.name}  {row.applied_at:%Y-%m-%d %H:%M:%S}")
    for migration in status.pending:
        click.echo(f"  pending  {migration.filename}")


@db_group.command("stop")
def db_stop():
    """Stop the private PostgreSQL server (its data stays in .pgdata/).

    Example:

        python cli.py db stop
    """
    from tracker.plumbing.db import private_server

    if private_server().stop():
        click.echo("Stopped the private PostgreSQL server.")
    else:
        click.echo("The private PostgreSQL server was not running.")


@cli.command("psql", context_settings={"ignore_unknown_options": True})
@click.argument("psql_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def psql(ctx, psql_args):
    """Open psql on the tracker's database; extra arguments go to psql.

    Example:

        python cli.py psql -c "select * from analytics.monthly_totals"
    """
    from tracker.plumbing.psql import psql_command

    command, env = psql_command(database(ctx).url)
    sys.stdout.flush()
    os.execvpe(command[0], [*command, *psql_args], {**os.environ, **env})


# --- generate: synthetic data for demos and benchmarks --------------------------------------


@cli.command("generate")
@click.option("--users", type=int, default=100, show_default=True, help="New users to create.")
@click.option("--expenses", type=int, default=100_000, show_default=True, help="Expenses in all.")
@click.option("--months", type=int, default=12, show_default=True, help="Months to spread over.")
@click.option("--seed", type=int, default=42, show_default=True, help="Same seed, same data.")
@click.option(
    "--start-month",
    metavar="YYYY-MM",
    help="First month (default: 2024-11, so 12 months cross a year boundary).",
)
@click.pass_context
def generate(ctx, users, expenses, months, seed, start_month):
    """Fill the database with realistic, reproducible synthetic users, budgets and expenses.

    Everything is generated inside PostgreSQL in one transaction; the same seed always
    gives the same content. Budgets go in first, so the alert trigger fires as it would
    in real use. Generated users have e-mails gen-<seed>-<n>@example.com: a seed can be
    generated once per database.

    Example:

        python cli.py generate --users 1000 --expenses 1000000 --months 24 --seed 7
    """
    import contextlib

    from tracker.everyday.generate import generate_data, parse_options

    options = parse_options(
        users=users, expenses=expenses, months=months, seed=seed, start_month=start_month
    )
    target = database(ctx)
    # The bar starts with the first progress report, so a refused run prints only its error.
    with contextlib.ExitStack() as stack:
        bars = []

        def on_progress(label, done, total):
            if not bars:
                bars.append(
                    stack.enter_context(
                        click.progressbar(
                            length=total,
                            label="Generating",
                            file=sys.stderr,
                            show_eta=True,
                            width=30,
                        )
                    )
                )
            bars[0].label = f"Generating {label:<8}"
            bars[0].update(done - bars[0].pos)

        result = generate_data(target.url, options, on_progress)
    print_table(
        ["table", "rows added"],
        [
            ("users", f"{result.users:,}"),
            ("categories", f"{result.categories_added:,}"),
            ("budgets", f"{result.budgets:,}"),
            ("expenses", f"{result.expenses:,}"),
            ("alerts", f"{result.alerts:,}"),
        ],
    )
    click.echo(
        f"Generated seed {options.seed} for {result.first_month:%Y-%m} to "
        f"{result.last_month:%Y-%m} into {target.masked_url} in {result.seconds:.1f} s."
    )


# --- everyday commands: user, category, expense, budget, alerts, summary, import ----------


def _connection(ctx):
    """An autocommit connection: each library call runs in its own transaction."""
    from tracker.plumbing import db

    return db.connect(database(ctx).url, autocommit=True)


def _plural(count: int, noun: str, plural: str | None = None) -> str:
    """ "1 model", "2 models", "0 files": the count with the noun in the right number."""
    return f"{count:,} {noun if count == 1 else (plural or noun + 's')}"


def _noun(count: int, noun: str, plural: str | None = None) -> str:
    return noun if count == 1 else (plural or noun + "s")


def _money(value) -> str:
    return "" if value is None else f"{value:,.2f}"


def _emit(fmt: str, headers: list[str], dicts: list[dict], table_rows: list[tuple]) -> None:
    """Print records as a table (people), CSV or JSON (scripts; amounts as exact strings)."""
    import csv
    import io
    import json

    if fmt == "json":
        click.echo(json.dumps(dicts, indent=2, ensure_ascii=False))
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(
            buffer, fieldnames=list(dicts[0]) if dicts else headers, lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(dicts)
        click.echo(buffer.getvalue(), nl=False)
    else:
        print_table(headers, table_rows)


FORMAT_OPTION = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="table for people, csv or json for scripts.",
)


@cli.group("user", cls=TrackerGroup)
def user_group():
    """Add, list, change and delete the people whose spending is tracked.

    Example:

    \b
        python cli.py user add --name "Asha Rao" --email asha@example.com
    """


@user_group.command("add")
@click.option("--name", required=True, help="Full name.")
@click.option("--email", required=True, help="E-mail address (unique; identifies the user).")
@click.option("--currency", default="INR", show_default=True, help="Three-letter currency code.")
@click.pass_context
def user_add(ctx, name, email, currency):
    """Add a user.

    Example:

    \b
        python cli.py user add --name "Asha Rao" --email asha@example.com --currency INR
    """
    from tracker.everyday.users import add_user

    with _connection(ctx) as conn:
        user = add_user(conn, name, email, currency)
    click.echo(f"Added user {user.id}: {user.name} <{user.email}> ({user.currency}).")


@user_group.command("list")
@FORMAT_OPTION
@click.pass_context
def user_list(ctx, fmt):
    """List every user.

    Example:

    \b
        python cli.py user list --format json
    """
    from tracker.everyday.users import list_users

    with _connection(ctx) as conn:
        users = list_users(conn)
    dicts = [{"id": u.id, "name": u.name, "email": u.email, "currency": u.currency} for u in users]
    _emit(
        fmt,
        ["id", "name", "email", "currency"],
        dicts,
        [(u.id, u.name, u.email, u.currency) for u in users],
    )


@user_group.command("update")
@click.argument("user")
@click.option("--name", help="New full name.")
@click.option("--email", help="New e-mail address (unique).")
@click.option("--currency", help="New currency; only while the user has no expenses or budgets.")
@click.pass_context
def user_update(ctx, user, name, email, currency):
    """Change a user's name, e-mail or currency (by e-mail or id).

    Amounts are never converted, so the currency can only change before the user has
    any expenses or budgets.

    Example:

    \b
        python cli.py user update asha@example.com --name "Asha R. Rao" --email asha.rao@example.com
    """
    from tracker.everyday.users import update_user

    with _connection(ctx) as conn:
        updated = update_user(conn, user, name=name, email=email, currency=currency)
    click.echo(f"Updated user {updated.id}: {updated.name} <{updated.email}> ({updated.currency}).")


@user_group.command("delete")
@click.argument("user")
@click.option("--yes", is_flag=True, help="Really delete the user and all their data.")
@click.pass_context
def user_delete(ctx, user, yes):
    """Delete a user (by e-mail or id) together with all their data, for good.

    Their expenses, budgets, alerts and budget transfers are deleted with them. Without
    --yes nothing is deleted and the command says what would be (exit 2).

    Example:

    \b
        python cli.py user delete asha@example.com --yes
    """
    from tracker.everyday.users import delete_user, describe_user_data

    with _connection(ctx) as conn:
        deleted = delete_user(conn, user, confirmed=yes)
    click.echo(
        f"Deleted user {deleted.user.id}: {deleted.user.name} <{deleted.user.email}> "
        f"with {describe_user_data(deleted)}."
    )


@cli.group("category", cls=TrackerGroup)
def category_group():
    """Add, list, rename and delete spending categories.

    Example:

    \b
        python cli.py category add --name Travel --color "#1E88E5"
    """


@category_group.command("add")
@click.option("--name", required=True, help="Category name (unique, any letter case).")
@click.option("--description", help="What belongs in it.")
@click.option("--color", help="Color for charts, #RRGGBB (default #9E9E9E).")
@click.pass_context
def category_add(ctx, name, description, color):
    """Add a category.

    Example:

    \b
        python cli.py category add --name Travel --description "Trains, flights" --color "#1E88E5"
    """
    from tracker.everyday.categories import add_category

    with _connection(ctx) as conn:
        category = add_category(conn, name, description, color)
    click.echo(f"Added category {category.id}: {category.name} ({category.color}).")


@category_group.command("list")
@FORMAT_OPTION
@click.pass_context
def category_list(ctx, fmt):
    """List categories with how many expenses use each.

    Example:

    \b
        python cli.py category list
    """
    from tracker.everyday.categories import list_categories

    with _connection(ctx) as conn:
        rows = list_categories(conn)
    dicts = [
        {
            "id": c.id,
            "name": c.name,
            "description": c.description,
            "color": c.color,
            "expenses": c.expense_count,
        }
        for c in rows
    ]
    _emit(
        fmt,
        ["id", "name", "description", "color", "expenses"],
        dicts,
        [tuple(d.values()) for d in dicts],
    )


@category_group.command("rename")
@click.argument("category")
@click.option("--to", "new_name", required=True, help="The new name (not all digits).")
@click.pass_context
def category_rename(ctx, category, new_name):
    """Rename a category (by name or id); its expenses, budgets and alerts stay with it.

    Alert messages keep the name they were written with.

    Example:

    \b
        python cli.py category rename Travel --to "Travel & trips"
    """
    from tracker.everyday.categories import rename_category

    with _connection(ctx) as conn:
        renamed = rename_category(conn, category, new_name)
    click.echo(
        f"Renamed category {renamed.category.id} from {renamed.before} to {renamed.category.name}."
    )


@category_group.command("delete")
@click.argument("category")
@click.option(
    "--move-to",
    metavar="CATEGORY",
    help="Move the category's expenses, budgets and alerts here first (name or id).",
)
@click.option("--dry-run", is_flag=True, help="Say exactly what would happen; change nothing.")
@click.pass_context
def category_delete(ctx, category, move_to, dry_run):
    """Delete a category (by name or id, 9 or #9).

    Without --move-to it is refused while expenses or alerts use it, and its budgets are
    deleted with it. With --move-to nothing is lost: its expenses move there; each budget
    is added to the target's budget for the same month (or becomes the target's budget
    where it had none); its alerts and budget transfers point at the target. The move
    records no new alert; months where the target ends over budget are listed.

    Example:

    \b
        python cli.py category delete Entertainment --move-to Shopping --dry-run
    """
    from tracker.everyday.categories import delete_category

    with _connection(ctx) as conn:
        deleted = delete_category(conn, category, move_to, dry_run=dry_run)
    for line in _category_delete_lines(deleted):
        click.echo(line)


def _category_delete_lines(deleted) -> list[str]:
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
            f"; {verb('removed', 'remove')} its {_plural(deleted.removed_budgets, 'budget')}"
            if deleted.removed_budgets
            else ""
        )
        return [f"{head}{budgets}."]
    lines = [f"{head}:"]
    lines.append(
        f"  {verb('moved', 'move')} {_plural(deleted.moved_expenses, 'expense')} "
        f"({_money(deleted.moved_amount)}) to {target.name}"
    )
    if deleted.renamed_budgets:
        lines.append(
            f"  {verb('gave', 'give')} {_plural(deleted.renamed_budgets, 'budget')} to "
            f"{target.name} (months where it had none)"
        )
    if deleted.merged_budgets:
        lines.append(
            f"  {verb('added', 'add')} {_plural(len(deleted.merged_budgets), 'budget')} "
            f"to {target.name}'s budget for the same month:"
        )
        for merged in deleted.merged_budgets:
            lines.append(
                f"    {merged.user_email} {merged.month}: {_money(merged.before)} + "
                f"{_money(merged.moved_amount)} = {_money(merged.after)}"
            )
    if deleted.moved_alerts:
        lines.append(
            f"  {verb('pointed', 'point')} {_plural(deleted.moved_alerts, 'alert')} at "
            f"{target.name} (their messages are kept as they were)"
        )
    if deleted.moved_transfers:
        lines.append(
            f"  {verb('re-linked', 're-link')} "
            f"{_plural(deleted.moved_transfers, 'budget transfer')} to {target.name}'s "
            "budgets"
        )
    if deleted.unlinked_transfers:
        lines.append(
            f"  {verb('kept', 'keep')} "
            f"{_plural(deleted.unlinked_transfers, 'transfer')} between {name} and "
            f"{target.name} in a merged month, with its {name} side unlinked"
        )
    lines.append(f"  {verb('recorded', 'record')} no new alert (a move spends nothing)")
    for over in deleted.over_budget:
        lines.append(
            f"  {target.name} {verb('is', 'will be')} over budget for {over.user_email} "
            f"in {over.month}: spent {_money(over.spent)} of {_money(over.budget)}"
        )
    return lines


@cli.group("expense", cls=TrackerGroup)
def expense_group():
    """Add, list, change and delete expenses.

    Example:

    \b
        python cli.py expense add --user aman@example.com --category Food --amount 250
    """


@expense_group.command("add")
@click.option("--user", required=True, help="User e-mail or id.")
@click.option("--category", required=True, help="Category name or id.")
@click.option("--amount", required=True, help="Amount above 0, at most 2 decimals.")
@click.option("--date", "day", help="Day YYYY-MM-DD (default: today).")
@click.option("--note", help="What it was for.")
@click.option("--currency", help="Must be the user's currency; amounts are never converted.")
@click.pass_context
def expense_add(ctx, user, category, amount, day, note, currency):
    """Record an expense. Crossing a budget records an alert (see `alerts`).

    Amounts are in the user's currency: budgets and totals add them up per user, so
    --currency, when given, must be that currency.

    Example:

    \b
        python cli.py expense add --user aman@example.com --category Food \\
            --amount 250.50 --date 2025-05-20 --note "Lunch"
    """
    from tracker.everyday.expenses import add_expense

    with _connection(ctx) as conn:
        expense = add_expense(conn, user, category, amount, day, note, currency)
    click.echo(
        f"Added expense {expense.id}: {expense.date} {expense.category} "
        f"{expense.amount} {expense.currency} for {expense.user_email}."
    )
    _echo_alerts(expense.alerts)


def _echo_alerts(alerts) -> None:
    """Say which budget alerts the command just fired."""
    for alert in alerts:
        click.echo(f"Alert {alert.id}: {alert.message}")


TABLE_LIMIT = 50


@expense_group.command("list")
@click.option("--user", help="Only this user (e-mail or id).")
@click.option("--category", help="Only this category (name or id).")
@click.option("--month", help="Only this month, YYYY-MM.")
@click.option("--from", "date_from", help="From this day on, YYYY-MM-DD.")
@click.option("--to", "date_to", help="Up to and including this day, YYYY-MM-DD.")
@click.option("--min", "min_amount", help="Amount at least this.")
@click.option("--max", "max_amount", help="Amount at most this.")
@click.option(
    "--sort",
    type=click.Choice(["date", "amount"]),
    default="date",
    show_default=True,
    help="date: newest first; amount: largest first.",
)
@click.option(
    "--limit",
    type=int,
    default=None,
    help=f"At most this many expenses (default: {TABLE_LIMIT} for the table, "
    "all for csv and json).",
)
@FORMAT_OPTION
@click.pass_context
def expense_list(
    ctx, user, category, month, date_from, date_to, min_amount, max_amount, sort, limit, fmt
):
    """List expenses, newest first (or largest with --sort amount); filters combine.

    The table shows the first 50 unless --limit says otherwise; csv and json stream every
    matching expense (straight from PostgreSQL, in constant memory).

    Example:

    \b
        python cli.py expense list --user aman@example.com --month 2025-05 --min 100 --format csv
    """
    from tracker.everyday.expenses import expense_filter, fetch_expenses, stream_expenses

    with _connection(ctx) as conn:
        chosen = expense_filter(
            conn,
            user=user,
            category=category,
            month=month,
            date_from=date_from,
            date_to=date_to,
            min_amount=min_amount,
            max_amount=max_amount,
            sort=sort,
        )
        if fmt != "table":
            sys.stdout.flush()
            out = sys.stdout.buffer
            stream_expenses(conn, chosen, fmt, out.write, limit=limit)
            out.flush()
            return
        shown = limit if limit is not None else TABLE_LIMIT
        if shown < 1:
            raise InputError(f"Error: --limit {shown} must be 1 or more. Give a positive number.")
        rows = fetch_expenses(conn, chosen, shown + 1)
    print_table(
        ["id", "date", "user", "category", "amount", "currency", "note"],
        [
            (e.id, e.date, e.user_email, e.category, _money(e.amount), e.currency, e.note)
            for e in rows[:shown]
        ],
    )
    if len(rows) > shown:
        click.echo(
            f"Showing the first {_plural(shown, 'expense')}; more match. Raise --limit, "
            "or use --format csv for all of them."
        )


@expense_group.command("update")
@click.argument("expense_id")
@click.option("--note", "--description", "note", help="New note (--description is an alias).")
@click.option("--amount", help="New amount.")
@click.option("--category", help="New category (name or id).")
@click.option("--date", "day", help="New day, YYYY-MM-DD.")
@click.pass_context
def expense_update(ctx, expense_id, note, amount, category, day):
    """Change an expense's note, amount, category or date.

    Example:

    \b
        python cli.py expense update 3 --amount 180 --note "Taxi to airport"
    """
    from tracker.everyday.expenses import update_expense

    changes = {"amount": amount, "category": category, "day": day}
    if note is not None:
        changes["note"] = note
    with _connection(ctx) as conn:
        expense = update_expense(conn, expense_id, **changes)
    click.echo(
        f"Updated expense {expense.id}: {expense.date} {expense.category} "
        f"{expense.amount} {expense.currency} ({expense.note or 'no note'})."
    )
    _echo_alerts(expense.alerts)


@expense_group.command("delete")
@click.argument("expense_id")
@click.pass_context
def expense_delete(ctx, expense_id):
    """Delete an expense.

    Example:

    \b
        python cli.py expense delete 3
    """
    from tracker.everyday.expenses import delete_expense

    with _connection(ctx) as conn:
        expense = delete_expense(conn, expense_id)
    click.echo(
        f"Deleted expense {expense.id}: {expense.date} {expense.category} "
        f"{expense.amount} {expense.currency}."
    )


@cli.group("budget", cls=TrackerGroup)
def budget_group():
    """Set, list, transfer and delete monthly budgets per category.

    Example:

    \b
        python cli.py budget list --user aman@example.com --month 2025-05
    """


@budget_group.command("set")
@click.option("--user", required=True, help="User e-mail or id.")
@click.option("--category", required=True, help="Category name or id.")
@click.option("--month", required=True, help="Month, YYYY-MM.")
@click.option("--amount", required=True, help="Budget, 0 or more, at most 2 decimals.")
@click.pass_context
def budget_set(ctx, user, category, month, amount):
    """Create or change a monthly budget.

    Lowering it below what was already spent records an alert.

    Example:

    \b
        python cli.py budget set --user aman@example.com --category Food \\
            --month 2025-05 --amount 9000
    """
    from tracker.everyday.budgets import set_budget

    with _connection(ctx) as conn:
        budget = set_budget(conn, user, category, month, amount)
    change = (
        "created" if budget.previous_amount is None else f"changed from {budget.previous_amount}"
    )
    click.echo(f"Budget {budget.category} {budget.month}: {budget.amount} ({change}).")
    _echo_alerts(budget.alerts)


@budget_group.command("list")
@click.option("--user", required=True, help="User e-mail or id.")
@click.option("--month", help="Only this month, YYYY-MM (default: every month).")
@FORMAT_OPTION
@click.pass_context
def budget_list(ctx, user, month, fmt):
    """Show budgets with spent, remaining and status.

    Status: under (below 80 % used), near (80-100 %), over (above 100 %), the same rule
    as the budget_vs_actual model; a budget of 0 is near until anything is spent on it.

    Example:

    \b
        python cli.py budget list --user aman@example.com --month 2025-05
    """
    from tracker.everyday.budgets import list_budgets

    with _connection(ctx) as conn:
        rows = list_budgets(conn, user, month)
    _emit(
        fmt,
        ["month", "category", "budget", "spent", "remaining", "used %", "status"],
        [b.as_dict() for b in rows],
        [
            (
                b.month,
                b.category,
                _money(b.budget),
                _money(b.spent),
                _money(b.remaining),
                "" if b.percent_used is None else b.percent_used,
                b.status,
            )
            for b in rows
        ],
    )


@budget_group.command("transfer")
@click.option("--user", required=True, help="User e-mail or id.")
@click.option("--from", "from_category", required=True, help="Category to take budget from.")
@click.option("--to", "to_category", required=True, help="Category to give it to.")
@click.option("--month", required=True, help="Month, YYYY-MM.")
@click.option("--amount", required=True, help="Amount to move, above 0.")
@click.pass_context
def budget_transfer(ctx, user, from_category, to_category, month, amount):
    """Move budget from one category to another for a month, atomically.

    Refused if the source budget holds less than the amount. A missing destination
    budget is created. Every transfer is kept in budget_transfers.

    Example:

    \b
        python cli.py budget transfer --user aman@example.com --from Shopping --to Food \\
            --month 2025-05 --amount 1000
    """
    from tracker.everyday.budgets import transfer_budget

    with _connection(ctx) as conn:
        moved = transfer_budget(conn, user, from_category, to_category, month, amount)
    if moved.created_destination:
        click.echo(f"Created the {moved.to_category} budget for {moved.month} (there was none).")
    click.echo(
        f"Moved {moved.amount} from {moved.from_category} to {moved.to_category} for "
        f"{moved.month}: {moved.from_category} now {moved.from_amount}, "
        f"{moved.to_category} now {moved.to_amount} (transfer {moved.id})."
    )
    _echo_alerts(moved.alerts)


@budget_group.command("delete")
@click.option("--user", required=True, help="User e-mail or id.")
@click.option("--category", required=True, help="Category name or #id.")
@click.option("--month", required=True, help="Month, YYYY-MM.")
@click.pass_context
def budget_delete(ctx, user, category, month):
    """Delete one monthly budget (to undo a mistaken `budget set`).

    Its expenses stay. Alerts and transfers about it stay as history, no longer linked
    to a budget.

    Example:

    \b
        python cli.py budget delete --user aman@example.com --category Food --month 2025-05
    """
    from tracker.everyday.budgets import delete_budget

    with _connection(ctx) as conn:
        deleted = delete_budget(conn, user, category, month)
    kept = [_plural(deleted.alerts_kept, "alert"), _plural(deleted.transfers_kept, "transfer")]
    click.echo(
        f"Deleted the {deleted.category} budget for {deleted.month} of "
        f"{deleted.user_email} ({deleted.amount}); kept {' and '.join(kept)} about it "
        "as history."
    )


@cli.group("alerts", cls=TrackerGroup, invoke_without_command=True)
@click.option("--user", help="Only this user (e-mail or id).")
@click.option("--unread", is_flag=True, help="Only alerts not acknowledged yet.")
@FORMAT_OPTION
@click.pass_context
def alerts_group(ctx, user, unread, fmt):
    """List budget alerts, newest first; `alerts ack ID` marks one as read.

    Example:

    \b
        python cli.py alerts --user aman@example.com --unread
    """
    if ctx.invoked_subcommand is not None:
        return
    from tracker.everyday.alerts import list_alerts

    with _connection(ctx) as conn:
        rows = list_alerts(conn, user, unread=unread)
    _emit(
        fmt,
        ["id", "fired", "user", "message", "read"],
        [a.as_dict() for a in rows],
        [
            (
                a.id,
                f"{a.fired_at:%Y-%m-%d %H:%M}",
                a.user_email,
                a.message,
                f"{a.acknowledged_at:%Y-%m-%d %H:%M}" if a.acknowledged_at else "no",
            )
            for a in rows
        ],
    )


@alerts_group.command("ack")
@click.argument("alert_id")
@click.pass_context
def alerts_ack(ctx, alert_id):
    """Acknowledge an alert (acknowledging it again changes nothing and says so).

    Example:

    \b
        python cli.py alerts ack 1
    """
    from tracker.everyday.alerts import acknowledge_alert

    with _connection(ctx) as conn:
        ack = acknowledge_alert(conn, alert_id)
    if ack.already:
        click.echo(
            f"Alert {ack.alert.id} was already acknowledged at "
            f"{ack.alert.acknowledged_at:%Y-%m-%d %H:%M:%S}; nothing changed."
        )
    else:
        click.echo(f"Acknowledged alert {ack.alert.id}: {ack.alert.message}")


@cli.command("import")
@click.argument("csv_file", metavar="CSV", type=click.Path())
@click.option("--user", required=True, help="Whose statement it is (e-mail or id).")
@click.option(
    "--mapping",
    required=True,
    metavar="MAP",
    help="field=Column pairs (date, amount, note, category) or a file of them.",
)
@click.option(
    "--date-format",
    default="%Y-%m-%d",
    show_default=True,
    help="strptime format of the date column, e.g. %d/%m/%Y.",
)
@click.option("--decimal-comma", is_flag=True, help="Amounts are written 1.234,56.")
@click.option("--delimiter", default=",", show_default=True, help='Field separator (or "tab").')
@click.option(
    "--rules",
    "rules_file",
    type=click.Path(dir_okay=False),
    help="CSV of pattern,category: substring or /regex/ of the note; first match wins.",
)
@click.option("--default-category", help="Category for rows no rule matches.")
@click.option(
    "--debits-negative",
    is_flag=True,
    help="Spending is negative in the file; positive rows (money in) are skipped.",
)
@click.option("--currency", help="Currency of the amounts; must be the user's (no conversion).")
@click.option(
    "--encoding", default="utf-8-sig", show_default=True, help="The file's text encoding."
)
@click.option(
    "--account",
    metavar="NAME",
    help='The card or bank account the statement is from (default: "default"); '
    "the same purchase on two accounts is two expenses.",
)
@click.pass_context
def import_command(
    ctx,
    csv_file,
    user,
    mapping,
    date_format,
    decimal_comma,
    delimiter,
    rules_file,
    default_category,
    debits_negative,
    currency,
    encoding,
    account,
):
    """Import a bank statement CSV as expenses, all rows or none.

    Re-importing the same file adds nothing (each row has a fingerprint, per --account).
    A bad row is reported with its line number and nothing from the file is written.
    Categories come from the mapped category column, else the first matching --rules
    pattern, else --default-category. Amounts are one signed column (amount=) or a debit
    and a credit column (debit=,credit=). Budget alerts the import fires are printed.

    Example:

    \b
        python cli.py import examples/statement.csv --user aman@example.com \\
            --mapping date=Date,amount=Amount,note=Description --date-format %d/%m/%Y \\
            --rules examples/rules.csv --default-category Shopping
    """
    from tracker.everyday.importer import import_statement, load_rules, parse_mapping
    from tracker.plumbing import db

    column_mapping = parse_mapping(mapping)
    rules = load_rules(rules_file) if rules_file else []
    separator = "\t" if delimiter in ("tab", "\\t") else delimiter
    progress = None
    bar = None
    if sys.stderr.isatty():
        bar = click.progressbar(
            length=100, label=f"Importing {os.path.basename(csv_file)}", file=sys.stderr
        )

        def progress(done, total):
            bar.update(round(done * 100 / total) - bar.pos if total else 100)

    target = database(ctx)
    # A pool, not a bare connection: imports run long and may be driven repeatedly.
    with (
        db.pool(target.url, min_size=1, max_size=1) as connection_pool,
        connection_pool.connection() as conn,
    ):
        try:
            result = import_statement(
                conn,
                csv_file,
                user,
                column_mapping,
                date_format=date_format,
                decimal_comma=decimal_comma,
                delimiter=separator,
                rules=rules,
                default_category=default_category,
                currency=currency,
                debits_negative=debits_negative,
                encoding=encoding,
                account=account,
                on_progress=progress,
            )
        finally:
            if bar is not None:
                bar.render_finish()
    skipped = (
        f", skipped {_plural(result.skipped_credits, 'credit row')}"
        if result.skipped_credits
        else ""
    )
    source = (
        result.path.name if account is None else f"{result.path.name} (account {result.account})"
    )
    click.echo(
        f"Imported {result.inserted:,} of {_plural(result.rows, 'row')} from {source}; "
        f"{result.duplicates:,} already imported{skipped}."
    )
    _echo_alerts(result.alerts)


@cli.command("summary")
@click.option("--user", required=True, help="User e-mail or id.")
@click.option("--month", help="Month, YYYY-MM (default: the current month).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table for people, json for scripts.",
)
@click.pass_context
def summary(ctx, user, month, fmt):
    """A month at a glance: total, budget against actual per category, top expenses, alerts.

    Example:

    \b
        python cli.py summary --user aman@example.com --month 2025-05
    """
    import json

    from tracker.everyday.summary import summarize_month

    with _connection(ctx) as conn:
        report = summarize_month(conn, user, month)
    if fmt == "json":
        click.echo(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
        return
    click.echo(f"{report.user_name} <{report.user_email}>, {report.month.label}")
    click.echo(
        f"Spent {_money(report.total_spent)} {report.currency} "
        f"of {_money(report.total_budget)} budgeted."
    )
    click.echo("")
    if report.categories:
        print_table(
            ["category", "budget", "spent", "remaining", "status"],
            [
                (c.category, _money(c.budget), _money(c.spent), _money(c.remaining), c.status)
                for c in report.categories
            ],
        )
    else:
        click.echo("No budgets or expenses this month.")
    if report.top_expenses:
        click.echo("")
        click.echo("Top expenses:")
        print_table(
            ["date", "category", "amount", "note"],
            [(e.date, e.category, _money(e.amount), e.note) for e in report.top_expenses],
        )
    click.echo("")
    if report.alerts:
        click.echo("Alerts:")
        for alert in report.alerts:
            state = "read" if alert.acknowledged_at else "unread"
            click.echo(f"  [{alert.id}] {alert.message} ({state})")
    else:
        click.echo("No alerts this month.")


# --- models: run, compile -----------------------------------------------------------------


_select_option = click.option(
    "--select",
    "-s",
    "select",
    metavar="SPEC",
    help="Only these models: NAME, +NAME (with its upstream), NAME+ (with its downstream); "
    "comma or space separated.",
)
_vars_option = click.option(
    "--vars",
    "vars_json",
    metavar="JSON",
    help="Run-time values for the models' var() calls, as a JSON object; each must be "
    "declared in queries/vars.json, with its type and range.",
)


_master_option = click.option(
    "--master",
    default="local[*]",
    show_default=True,
    metavar="URL",
    help="With --engine spark: the Spark master (local[2], spark://host:7077, yarn, ...).",
)
_lake_option = click.option(
    "--lake",
    "lake_dir",
    metavar="DIR",
    type=click.Path(file_okay=False),
    default=None,
    help="With --engine spark: the lake written by `export --lake` (default: exports/lake).",
)


@cli.command("run")
@_select_option
@_vars_option
@click.option(
    "--engine",
    type=click.Choice(["postgres", "spark"]),
    default="postgres",
    show_default=True,
    help="Where to run the models.",
)
@_master_option
@_lake_option
@click.option(
    "--out",
    "out_dir",
    metavar="DIR",
    type=click.Path(file_okay=False),
    default=None,
    help="With --engine spark: where the marts go as Parquet (default: exports/spark).",
)
@click.pass_context
def run_command(ctx, select, vars_json, engine, master, lake_dir, out_dir):
    """Build the models in queries/ as views and tables in schema analytics.

    Models are built in dependency order in one transaction: if one fails, the previous
    build stays as it was. Models that depend on a rebuilt model are rebuilt too.

    With --engine spark the same models run as Spark SQL over the lake (`export --lake`)
    and each mart is written as Parquet files in DIR/<model>/; --master picks the cluster.

    Example:

        python cli.py run --select +budget_vs_actual
        python cli.py run --engine spark --master 'local[2]'
    """
    from tracker.pipeline.model_vars import parse_vars
    from tracker.pipeline.models import load_project, run_models
    from tracker.plumbing.db import connect

    project = load_project()
    model_vars = parse_vars(vars_json, project.queries_dir)
    if engine == "spark":
        _run_spark(project, select, model_vars, master, lake_dir, out_dir)
        return
    models = project.select(select)
    target = database(ctx)

    def on_model(name, seconds):
        model = project[name]
        click.echo(f"  {model.materialized:<5} analytics.{name:<28} {seconds * 1000:8.1f} ms")

    with connect(target.url) as conn:
        timings = run_models(conn, project, models, vars=model_vars, on_model=on_model)
    total = sum(seconds for _, seconds in timings)
    click.echo(f"Built {_plural(len(timings), 'model')} in {total:.2f} s.")


@cli.command("compile")
@_select_option
@_vars_option
@click.option(
    "--engine",
    type=click.Choice(["postgres", "duckdb", "spark"]),
    default="postgres",
    show_default=True,
    help="SQL dialect to render for.",
)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where to write the files (default: target/compiled).",
)
def compile_command(select, vars_json, engine, out_dir):
    """Render the models to plain SQL files in target/compiled/<name>.sql.

    Needs no database: read the files, or run one with psql -f after `run`.

    Example:

        python cli.py compile --select +rolling_trend --engine duckdb
    """
    from tracker.pipeline.model_vars import parse_vars
    from tracker.pipeline.models import compile_models, load_project

    project = load_project()
    model_vars = parse_vars(vars_json, project.queries_dir)
    models = project.select(select)
    directory = out_dir or (config.TARGET_DIR / "compiled")
    paths = compile_models(project, models, directory, engine=engine, vars=model_vars)
    for path in paths:
        click.echo(f"  {path}")
    click.echo(f"Compiled {_plural(len(paths), 'model')} for {engine} into {directory}.")


# --- export: CSV + Parquet files and manifest.json for Power BI ----------------------------


@cli.command("export")
@click.option(
    "--out",
    "out_dir",
    metavar="DIR",
    type=click.Path(file_okay=True, dir_okay=True),
    default=None,
    help="Output directory (default: exports/).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "parquet", "both"]),
    default="both",
    show_default=True,
    help="Which files to write.",
)
@click.option(
    "--select",
    "-s",
    "select",
    metavar="SPEC",
    multiple=True,
    help="Only these models (default: every exported model): NAME, comma or space "
    "separated; may be repeated.",
)
@click.option(
    "--include-pii",
    is_flag=True,
    help="Also export columns marked pii in the models (e.g. dim_user.email).",
)
@click.option(
    "--bom/--no-bom",
    default=True,
    show_default=True,
    help="Start each CSV with a UTF-8 byte-order mark (Power BI reads UTF-8 from it).",
)
@click.option(
    "--powerbi/--no-powerbi",
    default=True,
    show_default=True,
    help="Also write DIR/powerbi/: a Power BI project (.pbip) over these files.",
)
@click.option(
    "--lake",
    "lake_dir",
    metavar="[DIR]",
    is_flag=False,
    flag_value="exports/lake",
    default=None,
    help="Write the partitioned Parquet lake instead (default DIR: exports/lake); "
    "only the months that changed since the last lake export are rewritten.",
)
@click.option("--full", is_flag=True, help="With --lake: rebuild every partition.")
@click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    default=600,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for another export writing into the same folder.",
)
@click.pass_context
def export_command(
    ctx, out_dir, fmt, select, include_pii, bom, powerbi, lake_dir, full, lock_timeout
):
    """Write the analytics models as CSV and Parquet files plus manifest.json.

    Reads the relations that `run` built in schema analytics, all from one consistent
    snapshot, into DIR/csv/NAME.csv, DIR/parquet/NAME.parquet and DIR/manifest.json
    (rows, bytes, sha256, column types and money totals per file). The new files replace
    the previous export only when every file is written; on failure the old ones stay.
    Only what an earlier export wrote is ever replaced (files listed in its manifest.json);
    anything else in csv/ or parquet/ makes it refuse. A second export into the same folder
    waits for the first (up to --lock-timeout); a killed export's staging folder is removed.

    Then DIR/powerbi/: a Power BI project (TMDL model, PBIR report) that loads these
    files, unless --no-powerbi.

    With --lake [DIR] it writes the lake instead: fact_expenses, fact_budgets and alerts as
    hive-partitioned Parquet (DIR/fact_expenses/year=2025/month=2025-05-01/part-00000.parquet),
    the dimensions as single files and DIR/manifest.json with rows, money sums and sha256 per
    partition. Only the months the database recorded as changed are rewritten; --full
    rebuilds them all.

    Example:

        python cli.py export --format csv --select monthly_totals,dim_date
        python cli.py export --lake            # exports/lake/, incremental after the first
    """
    from pathlib import Path

    if lake_dir is not None:
        _export_lake(ctx, lake_dir, full, include_pii, out_dir, fmt, select)
        return
    if full:
        raise InputError("Error: --full applies only to --lake. Add --lake [DIR] or drop --full.")

    from tracker.pipeline.export import export_items, export_models, select_export_models
    from tracker.pipeline.models import load_project

    models = select_export_models(load_project(), " ".join(select) or None)
    target = database(ctx)
    out = Path(out_dir) if out_dir else config.EXPORTS_DIR
    formats = ("csv", "parquet") if fmt == "both" else (fmt,)

    def on_progress(event):
        size = f"{event.bytes / 1_000_000:.1f} MB" if event.bytes >= 100_000 else f"{event.bytes} B"
        step = f"[{event.done}/{event.total}]".rjust(2 * len(str(event.total)) + 3)
        click.echo(f"  {step} {event.path:<34} {event.rows:>10,} rows {size:>9}", err=True)

    def on_wait(directory):
        click.echo(
            f"Another export is writing to {directory}; waiting for it (up to {lock_timeout:g} s).",
            err=True,
        )

    click.echo(
        f"Exporting {_plural(len(models), 'model')} from {target.masked_url} to {out}", err=True
    )
    with _stopped_cleanly():
        result = export_models(
            target.url,
            export_items(models),
            out,
            formats=formats,
            include_pii=include_pii,
            bom=bom,
            on_progress=on_progress,
            lock_timeout=lock_timeout,
            on_wait=on_wait,
        )
    click.echo(
        f"Wrote {_plural(len(result.files), 'file')} and "
        f"{result.out_dir / 'manifest.json'} in {result.seconds:.2f} s."
    )

    # Issue 13: a Power BI project over exactly these files (no database needed).
    if powerbi:
        from tracker.reports.powerbi import write_powerbi_project

        project = write_powerbi_project(models, result.manifest, result.out_dir)
        click.echo(
            f"Wrote {project.pbip} ({project.tables} tables, {project.relationships} "
            f"relationships, {project.measures} measures)."
        )


@contextlib.contextmanager
def _stopped_cleanly():
    """SIGTERM and SIGHUP unwind like Ctrl-C, so the command cleans up (e.g. its staging
    folder, a query in progress is cancelled) and exits with 128 + the signal number."""
    import signal

    received = []

    def stop(signum, frame):
        received.append(signum)
        # KeyboardInterrupt, not SystemExit: psycopg cancels a running query cleanly on it.
        raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    except BaseException:
        # Whatever the interrupted call raised on its way out (KeyboardInterrupt, or DuckDB's
        # own error for an interrupted write), a received signal decides the exit code.
        if received:
            raise SystemExit(128 + received[0]) from None
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# --- report: the HTML report (issue 13) ----------------------------------------------------


@cli.command("report")
@click.option("--user", help="Only this user (e-mail or id); default: everyone.")
@click.option("--month", help="Month, YYYY-MM (default: each user's latest month).")
@click.option(
    "--out",
    "out_path",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    default=None,
    help="Where to write it (default: exports/report.html).",
)
@click.pass_context
def report_command(ctx, user, month, out_path):
    """Write a self-contained HTML report: spending, top categories, budgets, alerts, charts.

    Reads the models that `run` built (schema analytics). One file, no network or other
    file needed to view it: charts are inline SVG; readable on a phone and printable.

    Example:

    \b
        python cli.py report --user aman@example.com --month 2025-05 --out /tmp/may.html
    """
    from pathlib import Path

    from tracker.reports.report import write_report

    out = Path(out_path) if out_path else config.EXPORTS_DIR / "report.html"
    written = write_report(database(ctx).url, out, user=user, month=month)
    people = "person" if written.users == 1 else "people"
    click.echo(f"Wrote {written.path} ({written.bytes:,} bytes, {written.users} {people}).")


# --- lake: export --lake, run/check/parity --engine spark (issue 12) ------------------------


def _lake_path(lake_dir) -> "Path":
    from pathlib import Path

    return Path(lake_dir) if lake_dir else config.EXPORTS_DIR / "lake"


def _run_spark(project, select, model_vars, master, lake_dir, out_dir):
    """run --engine spark: the marts over the lake, written as Parquet."""
    from pathlib import Path

    from tracker.pipeline.spark import run_spark

    out = Path(out_dir) if out_dir else config.EXPORTS_DIR / "spark"
    lake = _lake_path(lake_dir)
    click.echo(f"Running the models on Spark ({master}) over {lake}", err=True)

    def on_model(name, seconds):
        click.echo(f"  parquet {out / name!s:<40} {seconds * 1000:10.1f} ms")

    result = run_spark(
        project, lake, out, master=master, select=select, vars=model_vars, on_model=on_model
    )
    click.echo(f"Built {len(result.timings)} marts on Spark in {result.seconds:.2f} s into {out}.")


def _export_lake(ctx, lake_dir, full, include_pii, out_dir, fmt, select):
    """export --lake: the partitioned Parquet lake, incremental unless --full."""
    from pathlib import Path

    from tracker.pipeline.lake import export_lake
    from tracker.pipeline.models import load_project

    if out_dir or select or fmt != "both":
        raise InputError(
            "Error: --out, --select and --format do not apply to --lake, which "
            "always writes the facts and dimensions as Parquet. Drop them, or "
            "drop --lake."
        )
    directory = Path(lake_dir)
    if not directory.is_absolute() and lake_dir == "exports/lake":
        directory = config.EXPORTS_DIR / "lake"
    target = database(ctx)

    def on_progress(event):
        click.echo(f"  {event.path:<58} {event.rows:>10,} rows", err=True)

    click.echo(f"Exporting the lake from {target.masked_url} to {directory}", err=True)
    result = export_lake(
        target.url,
        load_project(),
        directory,
        full=full,
        include_pii=include_pii,
        on_progress=on_progress,
    )
    kind = "full" if result.full else "incremental"
    reason = result.manifest["last_export"]["reason"]
    click.echo(
        f"Lake {kind}{f' ({reason})' if reason else ''}: {len(result.written)} files written, "
        f"{len(result.removed)} removed, {len(result.unchanged_dimensions)} dimensions "
        f"unchanged, {result.changes_consumed} changed months read; "
        f"{result.lake_dir / 'manifest.json'} in {result.seconds:.2f} s."
    )


# --- build: run + test + export in one process and one snapshot (issue 11) -----------------


@cli.command("build")
@_vars_option
@click.option(
    "--out",
    "out_dir",
    metavar="DIR",
    type=click.Path(file_okay=True, dir_okay=True),
    default=None,
    help="Output directory (default: exports/).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "parquet", "both"]),
    default="both",
    show_default=True,
    help="Which files to write.",
)
@click.option(
    "--include-pii",
    is_flag=True,
    help="Also export columns marked pii in the models (e.g. dim_user.email).",
)
@click.option(
    "--bom/--no-bom",
    default=True,
    show_default=True,
    help="Start each CSV with a UTF-8 byte-order mark (Power BI reads UTF-8 from it).",
)
@click.option(
    "--powerbi/--no-powerbi",
    default=True,
    show_default=True,
    help="Also write DIR/powerbi/: a Power BI project (.pbip) over these files.",
)
@click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    default=600,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for another export writing into the same folder.",
)
@click.option("--verbose", "-v", is_flag=True, help="List every test, not only failures.")
@click.pass_context
def build_command(ctx, vars_json, out_dir, fmt, include_pii, bom, powerbi, lock_timeout, verbose):
    """Build every model, run all data and unit tests on it, then export it: the main job.

    One transaction builds the models from one snapshot and runs the tests against them;
    it is committed only when every test passes (otherwise the previous build and export
    stay as they were, and the exit code is 1). Then the files are written from the
    committed tables, as `export` writes them (same folder safety and --lock-timeout), and
    DIR/powerbi/, the Power BI project over them, unless --no-powerbi.

    Example:

    \b
        python cli.py build --out exports
    """
    from tracker.pipeline.build import build_project
    from tracker.pipeline.model_vars import parse_vars
    from tracker.pipeline.models import load_project

    project = load_project()
    model_vars = parse_vars(vars_json, project.queries_dir)
    target = database(ctx)
    out = Path(out_dir) if out_dir else config.EXPORTS_DIR
    formats = ("csv", "parquet") if fmt == "both" else (fmt,)

    def on_model(name, seconds):
        model = project[name]
        click.echo(f"  {model.materialized:<5} analytics.{name:<28} {seconds * 1000:8.1f} ms")

    def on_file(event):
        size = f"{event.bytes / 1_000_000:.1f} MB" if event.bytes >= 100_000 else f"{event.bytes} B"
        step = f"[{event.done}/{event.total}]".rjust(2 * len(str(event.total)) + 3)
        click.echo(f"  {step} {event.path:<34} {event.rows:>10,} rows {size:>9}", err=True)

    def on_wait(directory):
        click.echo(
            f"Another export is writing to {directory}; waiting for it (up to {lock_timeout:g} s).",
            err=True,
        )

    click.echo(f"Building {len(project.models)} models in {target.masked_url}")
    with _stopped_cleanly():
        report = build_project(
            target.url,
            project,
            out,
            vars=model_vars,
            formats=formats,
            include_pii=include_pii,
            bom=bom,
            on_model=on_model,
            on_file=on_file,
            lock_timeout=lock_timeout,
            on_wait=on_wait,
        )
    _print_check_report(report.tests, verbose)
    if report.export is None:
        click.echo(
            "Tests failed: the build was rolled back and nothing was exported; the "
            "previous build and export are unchanged."
        )
        ctx.exit(1)
    click.echo(
        f"Wrote {len(report.export.files)} files and "
        f"{report.export.out_dir / 'manifest.json'}; built, tested and exported in "
        f"{report.seconds:.2f} s."
    )

    # Issue 13: the Power BI project over exactly these files, as `export` writes it.
    if powerbi:
        from tracker.pipeline.export import select_export_models
        from tracker.reports.powerbi import write_powerbi_project

        project_files = write_powerbi_project(
            select_export_models(project), report.export.manifest, report.export.out_dir
        )
        click.echo(
            f"Wrote {project_files.pbip} ({project_files.tables} tables, "
            f"{project_files.relationships} relationships, {project_files.measures} "
            f"measures)."
        )


# --- check, test, verify: data tests on DuckDB and PostgreSQL, export verification -----------


def _print_check_report(report, verbose: bool) -> None:
    """The pass/fail table (failures only unless verbose), failing rows, and a verdict."""
    shown = [result for result in report.results if verbose or result.status != "pass"]
    if shown:
        click.echo("")
        print_table(
            ["result", "kind", "name", "ms"],
            [
                (result.status.upper(), result.kind, result.name, f"{result.seconds * 1000:.1f}")
                for result in shown
            ],
        )
    for result in report.results:
        if result.status in ("fail", "error"):
            click.echo(f"{result.status.upper()} {result.kind} {result.name}: {result.detail}")
            for row in result.rows:
                click.echo(f"    {row}")
            click.echo("")
    counts = ", ".join(
        f"{report.count(kind=kind)} {label}"
        for kind, label in (("model", "models"), ("test", "data tests"), ("unit", "unit tests"))
        if report.count(kind=kind)
    )
    failed = report.count("fail") + report.count("error")
    verdict = "PASS" if report.ok else "FAIL"
    click.echo(
        f"{verdict}: {counts} on {report.engine}; {report.count('pass')} passed, "
        f"{failed} failed, {report.count('skip')} skipped in {report.seconds:.2f} s."
    )


_queries_option = click.option(
    "--queries",
    "queries_dir",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="The models folder (default: queries/).",
)


@cli.command("check")
@_select_option
@_queries_option
@click.option("--verbose", "-v", is_flag=True, help="List every model and test, not only failures.")
@click.option(
    "--engine",
    type=click.Choice(["duckdb", "spark"]),
    default="duckdb",
    show_default=True,
    help="Where to build the models and run the tests.",
)
@_master_option
@click.pass_context
def check_command(ctx, select, queries_dir, verbose, engine, master):
    """Build every model on the sample seeds in DuckDB and run all data and unit tests.

    Needs no server: the base tables (database/duckdb/base_tables.sql) and the seeds
    (database/seeds/*.csv) go into an in-memory DuckDB, every model in queries/ is built
    from the same files as on PostgreSQL, then the generic tests declared in the models'
    config(), the singular tests in queries/tests/ and the unit tests in queries/unit/ run.
    Exit 1 if anything fails.

    --engine spark does the same on Apache Spark (the seeds handed over as Parquet).

    Example:

        python cli.py check --verbose
        python cli.py check --engine spark --master 'local[2]'
    """
    from tracker.pipeline.checks import run_check
    from tracker.pipeline.models import load_project

    if engine == "spark":
        from tracker.pipeline.spark import run_check_spark

        report = run_check_spark(load_project(queries_dir), master=master, select=select)
    else:
        report = run_check(load_project(queries_dir), select=select)
    _print_check_report(report, verbose)
    if not report.ok:
        ctx.exit(1)


@cli.command("test")
@_select_option
@_queries_option
@click.option("--verbose", "-v", is_flag=True, help="List every test, not only failures.")
@click.pass_context
def test_command(ctx, select, queries_dir, verbose):
    """Run the models' data tests and unit tests on PostgreSQL.

    The same generic and singular tests as `check`, read-only, in one snapshot of the
    relations `run` built in schema analytics; then the unit tests, rendered for PostgreSQL
    and pointed at temporary tables, in transactions that are rolled back. Exit 1 if any
    test fails.

    Example:

        python cli.py run && python cli.py test --select budget_vs_actual
    """
    from tracker.pipeline.checks import run_postgres_tests
    from tracker.pipeline.models import load_project
    from tracker.plumbing.db import connect

    project = load_project(queries_dir)
    with connect(database(ctx).url) as conn:
        report = run_postgres_tests(conn, project, select=select)
    _print_check_report(report, verbose)
    if not report.ok:
        ctx.exit(1)


@cli.command("parity")
@_select_option
@_queries_option
@click.option(
    "--engine",
    type=click.Choice(["duckdb", "spark"]),
    default="duckdb",
    show_default=True,
    help="The engine to compare with PostgreSQL.",
)
@_master_option
@_lake_option
@click.pass_context
def parity_command(ctx, select, queries_dir, engine, master, lake_dir):
    """Check that every model returns the same rows and types on DuckDB as on PostgreSQL.

    Copies the database's base tables into DuckDB, builds the models there, and compares
    each one with the relation `run` built in schema analytics, row by row on its
    unique_key. A difference names the model, the key and both values; exit 1.

    With --engine spark the lake (--lake, default exports/lake) is first brought up to date
    (`export --lake`, incremental), then every model runs on Spark over it and is compared
    the same way; columns the lake does not carry (created_at, e-mail) are left out.

    Example:

        python cli.py run && python cli.py parity
        python cli.py run && python cli.py parity --engine spark --master 'local[2]'
    """
    import tempfile

    from tracker.pipeline.checks import compare_engines
    from tracker.pipeline.models import load_project

    project = load_project(queries_dir)
    target = database(ctx)
    rows = []
    engine_name = "Spark" if engine == "spark" else "DuckDB"
    with tempfile.TemporaryDirectory(prefix="tracker_parity_") as workdir:
        if engine == "spark":
            from tracker.pipeline.lake import export_lake
            from tracker.pipeline.spark import compare_spark

            lake = _lake_path(lake_dir)
            export_lake(target.url, project, lake)
            results = compare_spark(
                target.url, project, lake, workdir, master=master, select=select
            )
        else:
            results = compare_engines(target.url, project, workdir, select=select)
    for parity in results:
        rows.append(
            (
                "PASS" if parity.ok else "FAIL",
                parity.name,
                "-" if parity.postgres_rows < 0 else f"{parity.postgres_rows:,}",
                "-" if parity.duckdb_rows < 0 else f"{parity.duckdb_rows:,}",
            )
        )
    print_table(["result", "model", "postgres rows", f"{engine} rows"], rows)
    failed = [parity for parity in results if not parity.ok]
    for parity in failed:
        click.echo("")
        click.echo(f"FAIL {parity.name}:")
        for difference in parity.differences:
            click.echo(f"    {difference}")
    click.echo("")
    if failed:
        click.echo(
            f"FAIL: {len(failed)} of {len(results)} {_noun(len(results), 'model')} "
            f"{'differs' if len(failed) == 1 else 'differ'} between PostgreSQL and "
            f"{engine_name} on {target.masked_url}."
        )
        ctx.exit(1)
    click.echo(
        f"PASS: {_plural(len(results), 'model')} "
        f"{'returns' if len(results) == 1 else 'return'} the same rows on PostgreSQL "
        f"and {engine_name}."
    )


@cli.command("verify")
@click.option(
    "--dir",
    "out_dir",
    metavar="DIR",
    type=click.Path(file_okay=False),
    default=None,
    help="The export folder holding manifest.json (default: exports/).",
)
@click.option(
    "--partition",
    "partitions",
    metavar="PATH",
    multiple=True,
    help="Only this file or folder of the manifest, e.g. one lake partition "
    "fact_expenses/year=2025/month=2025-05-01; may be repeated.",
)
@click.pass_context
def verify_command(ctx, out_dir, partitions):
    """Recount an export: rows and money sums in PostgreSQL, in DuckDB and in the manifest.

    For every file in DIR/manifest.json, PostgreSQL recomputes the row count and money
    sums from the analytics relation, DuckDB recomputes them from the CSV or Parquet file
    itself, and both must equal the manifest; each file's sha256 must match too. A missing,
    truncated or edited file exits 1 with a line naming it. `make verify` adds the same
    proof in bash (scripts/verify.sh).

    A lake (export --lake) is checked partition by partition: PostgreSQL recounts that
    month of the fact; --partition proves one partition on its own.

    Example:

        python cli.py export && python cli.py verify --dir exports
        python cli.py verify --dir exports/lake --partition fact_expenses/year=2025/month=2025-05-01
    """
    from pathlib import Path

    from tracker.pipeline.verify import verify_export

    directory = Path(out_dir) if out_dir else config.EXPORTS_DIR
    report = verify_export(database(ctx).url, directory, only=partitions)

    def shown(value):
        return "-" if value is None else f"{value:,}"

    def flag(value):
        return {True: "ok", False: "DIFF", None: "-"}[value]

    print_table(
        ["result", "file", "manifest", "postgres", "duckdb", "sums", "sha256"],
        [
            (
                "PASS" if check.ok else "FAIL",
                check.path,
                shown(check.manifest_rows),
                shown(check.postgres_rows),
                shown(check.duckdb_rows),
                flag(check.sums_ok),
                flag(check.sha256_ok),
            )
            for check in report.files
        ],
    )
    failed = [check for check in report.files if not check.ok]
    for check in failed:
        click.echo("")
        click.echo(f"FAIL {check.path}:")
        for problem in check.problems:
            click.echo(f"    {problem}")
    click.echo("")
    if failed:
        click.echo(
            f"FAIL: {len(failed)} of {_plural(len(report.files), 'file')} in {directory} "
            f"{'does' if len(failed) == 1 else 'do'} not "
            "match. Export again (`python cli.py export`) and verify."
        )
        ctx.exit(1)
    click.echo(
        f"PASS: {_plural(len(report.files), 'file')} in {directory} "
        f"{'matches' if len(report.files) == 1 else 'match'} PostgreSQL, DuckDB and "
        f"the manifest ({report.seconds:.2f} s)."
    )


# --- REST API: serve, token create / list / revoke (issue 10) -----------------------------


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="TCP port to listen on.",
)
@click.option(
    "--pool-size",
    default=16,
    show_default=True,
    type=click.IntRange(1, 200),
    help="Most database connections the API holds at once.",
)
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="Log one line per request on stderr.",
)
@click.pass_context
def serve_command(ctx, host, port, pool_size, access_log):
    """Serve the REST API (docs at /docs) on the configured database until Ctrl-C / SIGTERM.

    Requests send `Authorization: Bearer TOKEN` (see `token create`) and act only on that
    token's user, enforced by PostgreSQL row-level security.

    Example:

    \b
        python cli.py serve --host 127.0.0.1 --port 8000
    """
    from tracker.api.server import serve

    target = database(ctx)
    click.echo(
        f"Serving the API on http://{host}:{port} (docs: /docs) for "
        f"{target.masked_url}. Ctrl-C stops it.",
        err=True,
    )
    serve(target.url, host=host, port=port, pool_size=pool_size, access_log=access_log)


@cli.group("token", cls=TrackerGroup)
def token_group():
    """Personal access tokens for the REST API: create (shown once), list, revoke.

    Example:

    \b
        python cli.py token create --user aman@example.com --name phone
    """


@token_group.command("create")
@click.option("--user", required=True, help="User e-mail or id the token acts for.")
@click.option("--name", default="api", show_default=True, help="A label to recognize it by.")
@click.pass_context
def token_create(ctx, user, name):
    """Create a token for a user; it is printed once (the last line) and only its hash is kept.

    Example:

    \b
        TOKEN=$(python cli.py token create --user aman@example.com --name phone | tail -n 1)
    """
    from tracker.everyday.tokens import create_token

    with _connection(ctx) as conn:
        created = create_token(conn, user, name)
    click.echo(
        f"Created token {created.info.id} ({created.info.name}) for "
        f"{created.info.user_email}. It is shown only now; keep it secret:"
    )
    click.echo(created.token)


@token_group.command("list")
@click.option("--user", help="Only this user's tokens (e-mail or id).")
@FORMAT_OPTION
@click.pass_context
def token_list(ctx, user, fmt):
    """List tokens (never the secrets): who, name, created, last used, revoked.

    Example:

    \b
        python cli.py token list --user aman@example.com
    """
    from tracker.everyday.tokens import list_tokens

    def when(value):
        return f"{value:%Y-%m-%d %H:%M}" if value else ""

    with _connection(ctx) as conn:
        rows = list_tokens(conn, user)
    _emit(
        fmt,
        ["id", "user", "name", "created", "last used", "revoked"],
        [row.as_dict() for row in rows],
        [
            (
                row.id,
                row.user_email,
                row.name,
                when(row.created_at),
                when(row.last_used_at),
                when(row.revoked_at),
            )
            for row in rows
        ],
    )


@token_group.command("revoke")
@click.argument("token_id")
@click.pass_context
def token_revoke(ctx, token_id):
    """Revoke a token by id: requests with it are refused from now on.

    Example:

    \b
        python cli.py token revoke 3
    """
    from tracker.everyday.tokens import revoke_token

    with _connection(ctx) as conn:
        token, already = revoke_token(conn, token_id)
    if already:
        click.echo(
            f"Token {token.id} was already revoked at "
            f"{token.revoked_at:%Y-%m-%d %H:%M:%S}; nothing changed."
        )
    else:
        click.echo(f"Revoked token {token.id} ({token.name}) of {token.user_email}.")


def main() -> None:
    """The `tracker` console script (pyproject.toml): the same commands as `python cli.py`."""
    cli()


if __name__ == "__main__":
    main()
