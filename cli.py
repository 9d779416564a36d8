"""Smart Spending Tracker command line: parse options, call the tracker package, print.

Every command maps handled failures to one line on stderr: exit 1 for a failure,
exit 2 for bad input. --debug (or TRACKER_DEBUG=1) shows the traceback instead.
"""

import os
import sys
from pathlib import Path


def run_in_project_venv() -> None:
    """Re-run this command with the project's .venv, creating it first when needed (as make does)."""
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
                [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                 "-r", str(lock)],
                check=True,
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            sys.exit(f"Error: could not set up {venv} ({exc}). Run `make venv` to see why.")
        stamp.touch()
    os.execv(python, [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])


if __name__ == "__main__":
    run_in_project_venv()

import click  # noqa: E402 - after the venv bootstrap, which needs only the standard library

from tracker import config  # noqa: E402
from tracker.errors import InputError, TrackerError  # noqa: E402


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
        except Exception as exc:  # noqa: BLE001 - last line of defence for one-line errors
            import psycopg

            if _debug(ctx) or not isinstance(exc, psycopg.Error):
                raise
            reason = _one_line(str(exc)) or type(exc).__name__
            click.echo(f"Error: the database refused the command: {reason}. "
                       "Run again with --debug for details.", err=True)
            ctx.exit(1)


def _debug(ctx) -> bool:
    root = ctx.find_root()
    return bool(root.params.get("debug")) or config.debug_enabled()


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def database(ctx: click.Context, *, start: bool = True):
    """The database chosen by --database-url, DATABASE_URL, .env or the private server."""
    from tracker import db

    return db.resolve(ctx.find_root().params.get("database_url"), start=start)


def print_table(headers: list[str], rows: list[tuple]) -> None:
    """Print rows as an aligned plain-text table."""
    cells = [[("" if value is None else str(value)) for value in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row)]
    click.echo("  ".join(header.ljust(width) for header, width in zip(headers, widths)).rstrip())
    click.echo("  ".join("-" * width for width in widths))
    for row in cells:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


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
    from tracker.bootstrap import initialize_database

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
    from tracker.bootstrap import database_status

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
    from tracker.db import private_server

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
    from tracker.psql import psql_command

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

    from tracker.generate import generate_data, parse_options

    options = parse_options(
        users=users, expenses=expenses, months=months, seed=seed, start_month=start_month
    )
    target = database(ctx)
    # The bar starts with the first progress report, so a refused run prints only its error.
    with contextlib.ExitStack() as stack:
        bars = []

        def on_progress(label, done, total):
            if not bars:
                bars.append(stack.enter_context(click.progressbar(
                    length=total, label="Generating", file=sys.stderr, show_eta=True, width=30
                )))
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
    from tracker import db

    return db.connect(database(ctx).url, autocommit=True)


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
        writer = csv.DictWriter(buffer, fieldnames=list(dicts[0]) if dicts else headers,
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(dicts)
        click.echo(buffer.getvalue(), nl=False)
    else:
        print_table(headers, table_rows)


FORMAT_OPTION = click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
    show_default=True, help="table for people, csv or json for scripts.",
)


@cli.group("user", cls=TrackerGroup)
def user_group():
    """Add and list the people whose spending is tracked.

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
    from tracker.users import add_user

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
    from tracker.users import list_users

    with _connection(ctx) as conn:
        users = list_users(conn)
    dicts = [{"id": u.id, "name": u.name, "email": u.email, "currency": u.currency} for u in users]
    _emit(fmt, ["id", "name", "email", "currency"], dicts,
          [(u.id, u.name, u.email, u.currency) for u in users])


@cli.group("category", cls=TrackerGroup)
def category_group():
    """Add, list and delete spending categories.

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
    from tracker.categories import add_category

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
    from tracker.categories import list_categories

    with _connection(ctx) as conn:
        rows = list_categories(conn)
    dicts = [{"id": c.id, "name": c.name, "description": c.description, "color": c.color,
              "expenses": c.expense_count} for c in rows]
    _emit(fmt, ["id", "name", "description", "color", "expenses"], dicts,
          [tuple(d.values()) for d in dicts])


@category_group.command("delete")
@click.argument("category")
@click.option("--move-to", metavar="CATEGORY",
              help="Move the category's expenses here first (name or id).")
@click.pass_context
def category_delete(ctx, category, move_to):
    """Delete a category (by name or id).

    A category that expenses use is refused unless --move-to says where they go. Its
    budgets are deleted with it.

    Example:

    \b
        python cli.py category delete Entertainment --move-to Shopping
    """
    from tracker.categories import delete_category

    with _connection(ctx) as conn:
        deleted = delete_category(conn, category, move_to)
    moved = (f", moved {deleted.moved_expenses} expense(s) to {deleted.moved_to.name}"
             if deleted.moved_to else "")
    budgets = f", removed its {deleted.removed_budgets} budget(s)" if deleted.removed_budgets else ""
    click.echo(f"Deleted category {deleted.category.name}{moved}{budgets}.")


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
        python cli.py expense add --user aman@example.com --category Food --amount 250.50 --date 2025-05-20 --note "Lunch"
    """
    from tracker.expenses import add_expense

    with _connection(ctx) as conn:
        expense = add_expense(conn, user, category, amount, day, note, currency)
    click.echo(f"Added expense {expense.id}: {expense.date} {expense.category} "
               f"{expense.amount} {expense.currency} for {expense.user_email}.")
    _echo_alerts(expense.alerts)


def _echo_alerts(alerts) -> None:
    """Say which budget alerts the command just fired."""
    for alert in alerts:
        click.echo(f"Alert {alert.id}: {alert.message}")


@expense_group.command("list")
@click.option("--user", help="Only this user (e-mail or id).")
@click.option("--category", help="Only this category (name or id).")
@click.option("--month", help="Only this month, YYYY-MM.")
@click.option("--from", "date_from", help="From this day on, YYYY-MM-DD.")
@click.option("--to", "date_to", help="Up to and including this day, YYYY-MM-DD.")
@click.option("--min", "min_amount", help="Amount at least this.")
@click.option("--max", "max_amount", help="Amount at most this.")
@FORMAT_OPTION
@click.pass_context
def expense_list(ctx, user, category, month, date_from, date_to, min_amount, max_amount, fmt):
    """List expenses, newest first; filters combine.

    Example:

    \b
        python cli.py expense list --user aman@example.com --month 2025-05 --min 100 --format csv
    """
    from tracker.expenses import list_expenses

    with _connection(ctx) as conn:
        rows = list_expenses(conn, user=user, category=category, month=month,
                             date_from=date_from, date_to=date_to,
                             min_amount=min_amount, max_amount=max_amount)
    _emit(fmt, ["id", "date", "user", "category", "amount", "currency", "note"],
          [e.as_dict() for e in rows],
          [(e.id, e.date, e.user_email, e.category, _money(e.amount), e.currency, e.note)
           for e in rows])


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
    from tracker.expenses import update_expense

    changes = {"amount": amount, "category": category, "day": day}
    if note is not None:
        changes["note"] = note
    with _connection(ctx) as conn:
        expense = update_expense(conn, expense_id, **changes)
    click.echo(f"Updated expense {expense.id}: {expense.date} {expense.category} "
               f"{expense.amount} {expense.currency} ({expense.note or 'no note'}).")
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
    from tracker.expenses import delete_expense

    with _connection(ctx) as conn:
        expense = delete_expense(conn, expense_id)
    click.echo(f"Deleted expense {expense.id}: {expense.date} {expense.category} "
               f"{expense.amount} {expense.currency}.")


@cli.group("budget", cls=TrackerGroup)
def budget_group():
    """Set, list and transfer monthly budgets per category.

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
        python cli.py budget set --user aman@example.com --category Food --month 2025-05 --amount 9000
    """
    from tracker.budgets import set_budget

    with _connection(ctx) as conn:
        budget = set_budget(conn, user, category, month, amount)
    change = ("created" if budget.previous_amount is None
              else f"changed from {budget.previous_amount}")
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
    from tracker.budgets import list_budgets

    with _connection(ctx) as conn:
        rows = list_budgets(conn, user, month)
    _emit(fmt, ["month", "category", "budget", "spent", "remaining", "used %", "status"],
          [b.as_dict() for b in rows],
          [(b.month, b.category, _money(b.budget), _money(b.spent), _money(b.remaining),
            "" if b.percent_used is None else b.percent_used, b.status) for b in rows])


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
        python cli.py budget transfer --user aman@example.com --from Shopping --to Food --month 2025-05 --amount 1000
    """
    from tracker.budgets import transfer_budget

    with _connection(ctx) as conn:
        moved = transfer_budget(conn, user, from_category, to_category, month, amount)
    if moved.created_destination:
        click.echo(f"Created the {moved.to_category} budget for {moved.month} (there was none).")
    click.echo(f"Moved {moved.amount} from {moved.from_category} to {moved.to_category} for "
               f"{moved.month}: {moved.from_category} now {moved.from_amount}, "
               f"{moved.to_category} now {moved.to_amount} (transfer {moved.id}).")
    _echo_alerts(moved.alerts)


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
    from tracker.alerts import list_alerts

    with _connection(ctx) as conn:
        rows = list_alerts(conn, user, unread=unread)
    _emit(fmt, ["id", "fired", "user", "message", "read"], [a.as_dict() for a in rows],
          [(a.id, f"{a.fired_at:%Y-%m-%d %H:%M}", a.user_email, a.message,
            f"{a.acknowledged_at:%Y-%m-%d %H:%M}" if a.acknowledged_at else "no")
           for a in rows])


@alerts_group.command("ack")
@click.argument("alert_id")
@click.pass_context
def alerts_ack(ctx, alert_id):
    """Acknowledge an alert (acknowledging it again changes nothing and says so).

    Example:

    \b
        python cli.py alerts ack 1
    """
    from tracker.alerts import acknowledge_alert

    with _connection(ctx) as conn:
        ack = acknowledge_alert(conn, alert_id)
    if ack.already:
        click.echo(f"Alert {ack.alert.id} was already acknowledged at "
                   f"{ack.alert.acknowledged_at:%Y-%m-%d %H:%M:%S}; nothing changed.")
    else:
        click.echo(f"Acknowledged alert {ack.alert.id}: {ack.alert.message}")


@cli.command("import")
@click.argument("csv_file", metavar="CSV", type=click.Path(dir_okay=False))
@click.option("--user", required=True, help="Whose statement it is (e-mail or id).")
@click.option("--mapping", required=True, metavar="MAP",
              help="field=Column pairs (date, amount, note, category) or a file of them.")
@click.option("--date-format", default="%Y-%m-%d", show_default=True,
              help="strptime format of the date column, e.g. %d/%m/%Y.")
@click.option("--decimal-comma", is_flag=True, help="Amounts are written 1.234,56.")
@click.option("--delimiter", default=",", show_default=True, help='Field separator (or "tab").')
@click.option("--rules", "rules_file", type=click.Path(dir_okay=False),
              help="CSV of pattern,category: substring or /regex/ of the note; first match wins.")
@click.option("--default-category", help="Category for rows no rule matches.")
@click.option("--debits-negative", is_flag=True,
              help="Spending is negative in the file; positive rows (money in) are skipped.")
@click.option("--currency", help="Currency of the amounts; must be the user's (no conversion).")
@click.option("--encoding", default="utf-8-sig", show_default=True, help="The file's text encoding.")
@click.pass_context
def import_command(ctx, csv_file, user, mapping, date_format, decimal_comma, delimiter,
                   rules_file, default_category, debits_negative, currency, encoding):
    """Import a bank statement CSV as expenses, all rows or none.

    Re-importing the same file adds nothing (each row has a fingerprint). A bad row is
    reported with its line number and nothing from the file is written. Categories come
    from the mapped category column, else the first matching --rules pattern, else
    --default-category.

    Example:

    \b
        python cli.py import statement.csv --user aman@example.com --mapping date=Date,amount=Amount,note=Description --date-format %d/%m/%Y --rules rules.csv --default-category Shopping
    """
    from tracker import db
    from tracker.importer import import_statement, load_rules, parse_mapping

    column_mapping = parse_mapping(mapping)
    rules = load_rules(rules_file) if rules_file else []
    separator = "\t" if delimiter in ("tab", "\\t") else delimiter
    progress = None
    bar = None
    if sys.stderr.isatty():
        bar = click.progressbar(length=100, label=f"Importing {os.path.basename(csv_file)}",
                                file=sys.stderr)

        def progress(done, total):
            bar.update(round(done * 100 / total) - bar.pos if total else 100)

    target = database(ctx)
    # A pool, not a bare connection: imports run long and may be driven repeatedly.
    with db.pool(target.url, min_size=1, max_size=1) as connection_pool:
        with connection_pool.connection() as conn:
            try:
                result = import_statement(
                    conn, csv_file, user, column_mapping, date_format=date_format,
                    decimal_comma=decimal_comma, delimiter=separator, rules=rules,
                    default_category=default_category, currency=currency,
                    debits_negative=debits_negative, encoding=encoding, on_progress=progress,
                )
            finally:
                if bar is not None:
                    bar.render_finish()
    skipped = (f", skipped {result.skipped_credits} credit row(s)"
               if result.skipped_credits else "")
    click.echo(f"Imported {result.inserted} of {result.rows} row(s) from {result.path.name}; "
               f"{result.duplicates} already imported{skipped}.")


@cli.command("summary")
@click.option("--user", required=True, help="User e-mail or id.")
@click.option("--month", help="Month, YYYY-MM (default: the current month).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="table for people, json for scripts.")
@click.pass_context
def summary(ctx, user, month, fmt):
    """A month at a glance: total, budget against actual per category, top expenses, alerts.

    Example:

    \b
        python cli.py summary --user aman@example.com --month 2025-05
    """
    import json

    from tracker.summary import summarize_month

    with _connection(ctx) as conn:
        report = summarize_month(conn, user, month)
    if fmt == "json":
        click.echo(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
        return
    click.echo(f"{report.user_name} <{report.user_email}>, {report.month.label}")
    click.echo(f"Spent {_money(report.total_spent)} {report.currency} "
               f"of {_money(report.total_budget)} budgeted.")
    click.echo("")
    if report.categories:
        print_table(["category", "budget", "spent", "remaining", "status"],
                    [(c.category, _money(c.budget), _money(c.spent), _money(c.remaining),
                      c.status) for c in report.categories])
    else:
        click.echo("No budgets or expenses this month.")
    if report.top_expenses:
        click.echo("")
        click.echo("Top expenses:")
        print_table(["date", "category", "amount", "note"],
                    [(e.date, e.category, _money(e.amount), e.note) for e in report.top_expenses])
    click.echo("")
    if report.alerts:
        click.echo("Alerts:")
        for alert in report.alerts:
            state = "read" if alert.acknowledged_at else "unread"
            click.echo(f"  [{alert.id}] {alert.message} ({state})")
    else:
        click.echo("No alerts this month.")


# --- models: run, compile -----------------------------------------------------------------


def _parse_vars(text: str | None) -> dict:
    """--vars as a JSON object of scalars."""
    import json

    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"Error: --vars is not valid JSON ({exc.msg} at character {exc.pos}). "
                         """Pass an object, for example --vars '{"near_threshold_pct": 75}'.""")
    if not isinstance(value, dict):
        raise InputError("""Error: --vars must be a JSON object. """
                         """Pass an object, for example --vars '{"near_threshold_pct": 75}'.""")
    return value


_select_option = click.option(
    "--select", "-s", "select", metavar="SPEC",
    help="Only these models: NAME, +NAME (with its upstream), NAME+ (with its downstream); "
         "comma or space separated.",
)
_vars_option = click.option(
    "--vars", "vars_json", metavar="JSON",
    help="""Run-time values for the models' var() calls, as a JSON object.""",
)


@cli.command("run")
@_select_option
@_vars_option
@click.pass_context
def run_command(ctx, select, vars_json):
    """Build the models in queries/ as views and tables in schema analytics.

    Models are built in dependency order in one transaction: if one fails, the previous
    build stays as it was. Models that depend on a rebuilt model are rebuilt too.

    Example:

        python cli.py run --select +budget_vs_actual
    """
    from tracker.db import connect
    from tracker.models import load_project, run_models

    model_vars = _parse_vars(vars_json)
    project = load_project()
    models = project.select(select)
    target = database(ctx)

    def on_model(name, seconds):
        model = project[name]
        click.echo(f"  {model.materialized:<5} analytics.{name:<28} {seconds * 1000:8.1f} ms")

    with connect(target.url) as conn:
        timings = run_models(conn, project, models, vars=model_vars, on_model=on_model)
    total = sum(seconds for _, seconds in timings)
    click.echo(f"Built {len(timings)} models in {total:.2f} s.")


@cli.command("compile")
@_select_option
@_vars_option
@click.option("--engine", type=click.Choice(["postgres", "duckdb"]), default="postgres",
              show_default=True, help="SQL dialect to render for.")
@click.option("--out-dir", type=click.Path(file_okay=False), default=None,
              help="Where to write the files (default: target/compiled).")
def compile_command(select, vars_json, engine, out_dir):
    """Render the models to plain SQL files in target/compiled/<name>.sql.

    Needs no database: read the files, or run one with psql -f after `run`.

    Example:

        python cli.py compile --select +rolling_trend --engine duckdb
    """
    from tracker.models import compile_models, load_project

    model_vars = _parse_vars(vars_json)
    project = load_project()
    models = project.select(select)
    directory = out_dir or (config.TARGET_DIR / "compiled")
    paths = compile_models(project, models, directory, engine=engine, vars=model_vars)
    for path in paths:
        click.echo(f"  {path}")
    click.echo(f"Compiled {len(paths)} models for {engine} into {directory}.")


# --- export: CSV + Parquet files and manifest.json for Power BI ----------------------------


@cli.command("export")
@click.option("--out", "out_dir", metavar="DIR", type=click.Path(file_okay=True, dir_okay=True),
              default=None, help="Output directory (default: exports/).")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet", "both"]), default="both",
              show_default=True, help="Which files to write.")
@click.option("--select", "-s", "select", metavar="SPEC", multiple=True,
              help="Only these models (default: every exported model): NAME, comma or space "
                   "separated; may be repeated.")
@click.option("--include-pii", is_flag=True,
              help="Also export columns marked pii in the models (e.g. dim_user.email).")
@click.option("--bom/--no-bom", default=True, show_default=True,
              help="Start each CSV with a UTF-8 byte-order mark (Power BI reads UTF-8 from it).")
@click.pass_context
def export_command(ctx, out_dir, fmt, select, include_pii, bom):
    """Write the analytics models as CSV and Parquet files plus manifest.json.

    Reads the relations that `run` built in schema analytics, all from one consistent
    snapshot, into DIR/csv/NAME.csv, DIR/parquet/NAME.parquet and DIR/manifest.json
    (rows, bytes, sha256, column types and money totals per file). The new files replace
    the previous export only when every file is written; on failure the old ones stay.

    Example:

        python cli.py export --format csv --select monthly_totals,dim_date
    """
    from pathlib import Path

    from tracker.export import export_items, export_models, select_export_models
    from tracker.models import load_project

    models = select_export_models(load_project(), " ".join(select) or None)
    target = database(ctx)
    out = Path(out_dir) if out_dir else config.EXPORTS_DIR
    formats = ("csv", "parquet") if fmt == "both" else (fmt,)

    def on_progress(event):
        size = f"{event.bytes / 1_000_000:.1f} MB" if event.bytes >= 100_000 else f"{event.bytes} B"
        step = f"[{event.done}/{event.total}]".rjust(2 * len(str(event.total)) + 3)
        click.echo(f"  {step} {event.path:<34} {event.rows:>10,} rows {size:>9}", err=True)

    click.echo(f"Exporting {len(models)} models from {target.masked_url} to {out}", err=True)
    result = export_models(target.url, export_items(models), out, formats=formats,
                           include_pii=include_pii, bom=bom, on_progress=on_progress)
    click.echo(f"Wrote {len(result.files)} files and {result.out_dir / 'manifest.json'} "
               f"in {result.seconds:.2f} s.")


# --- build: run + test + export in one process and one snapshot (issue 11) -----------------


@cli.command("build")
@_vars_option
@click.option("--out", "out_dir", metavar="DIR", type=click.Path(file_okay=True, dir_okay=True),
              default=None, help="Output directory (default: exports/).")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet", "both"]), default="both",
              show_default=True, help="Which files to write.")
@click.option("--include-pii", is_flag=True,
              help="Also export columns marked pii in the models (e.g. dim_user.email).")
@click.option("--bom/--no-bom", default=True, show_default=True,
              help="Start each CSV with a UTF-8 byte-order mark (Power BI reads UTF-8 from it).")
@click.option("--verbose", "-v", is_flag=True, help="List every test, not only failures.")
@click.pass_context
def build_command(ctx, vars_json, out_dir, fmt, include_pii, bom, verbose):
    """Build every model, run all data and unit tests on it, then export it: the main job.

    One transaction builds the models from one snapshot and runs the tests against them;
    it is committed only when every test passes (otherwise the previous build and export
    stay as they were, and the exit code is 1). Then the files are written from the
    committed tables, as `export` writes them.

    Example:

        python cli.py build --out exports
    """
    from tracker.build import build_project
    from tracker.models import load_project

    model_vars = _parse_vars(vars_json)
    project = load_project()
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

    click.echo(f"Building {len(project.models)} models in {target.masked_url}")
    report = build_project(target.url, project, out, vars=model_vars, formats=formats,
                           include_pii=include_pii, bom=bom, on_model=on_model, on_file=on_file)
    _print_check_report(report.tests, verbose)
    if report.export is None:
        click.echo("Tests failed: the build was rolled back and nothing was exported; the "
                   "previous build and export are unchanged.")
        ctx.exit(1)
    click.echo(f"Wrote {len(report.export.files)} files and "
               f"{report.export.out_dir / 'manifest.json'}; built, tested and exported in "
               f"{report.seconds:.2f} s.")


# --- check, test, verify: data tests on DuckDB and PostgreSQL, export verification -----------


def _print_check_report(report, verbose: bool) -> None:
    """The pass/fail table (failures only unless verbose), failing rows, and a verdict."""
    shown = [result for result in report.results if verbose or result.status != "pass"]
    if shown:
        click.echo("")
        print_table(
            ["result", "kind", "name", "ms"],
            [(result.status.upper(), result.kind, result.name, f"{result.seconds * 1000:.1f}")
             for result in shown],
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
    click.echo(f"{verdict}: {counts} on {report.engine}; {report.count('pass')} passed, "
               f"{failed} failed, {report.count('skip')} skipped in {report.seconds:.2f} s.")


_queries_option = click.option(
    "--queries", "queries_dir", type=click.Path(file_okay=False, exists=True), default=None,
    help="The models folder (default: queries/).",
)


@cli.command("check")
@_select_option
@_queries_option
@click.option("--verbose", "-v", is_flag=True, help="List every model and test, not only failures.")
@click.pass_context
def check_command(ctx, select, queries_dir, verbose):
    """Build every model on the sample seeds in DuckDB and run all data and unit tests.

    Needs no server: the base tables (database/duckdb/base_tables.sql) and the seeds
    (database/seeds/*.csv) go into an in-memory DuckDB, every model in queries/ is built
    from the same files as on PostgreSQL, then the generic tests declared in the models'
    config(), the singular tests in queries/tests/ and the unit tests in queries/unit/ run.
    Exit 1 if anything fails.

    Example:

        python cli.py check --verbose
    """
    from tracker.checks import run_check
    from tracker.models import load_project

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
    from tracker.checks import run_postgres_tests
    from tracker.db import connect
    from tracker.models import load_project

    project = load_project(queries_dir)
    with connect(database(ctx).url) as conn:
        report = run_postgres_tests(conn, project, select=select)
    _print_check_report(report, verbose)
    if not report.ok:
        ctx.exit(1)


@cli.command("parity")
@_select_option
@_queries_option
@click.pass_context
def parity_command(ctx, select, queries_dir):
    """Check that every model returns the same rows and types on DuckDB as on PostgreSQL.

    Copies the database's base tables into DuckDB, builds the models there, and compares
    each one with the relation `run` built in schema analytics, row by row on its
    unique_key. A difference names the model, the key and both values; exit 1.

    Example:

        python cli.py run && python cli.py parity
    """
    import tempfile

    from tracker.checks import compare_engines
    from tracker.models import load_project

    project = load_project(queries_dir)
    target = database(ctx)
    rows = []
    with tempfile.TemporaryDirectory(prefix="tracker_parity_") as workdir:
        results = compare_engines(target.url, project, workdir, select=select)
    for parity in results:
        rows.append(("PASS" if parity.ok else "FAIL", parity.name,
                     "-" if parity.postgres_rows < 0 else f"{parity.postgres_rows:,}",
                     "-" if parity.duckdb_rows < 0 else f"{parity.duckdb_rows:,}"))
    print_table(["result", "model", "postgres rows", "duckdb rows"], rows)
    failed = [parity for parity in results if not parity.ok]
    for parity in failed:
        click.echo("")
        click.echo(f"FAIL {parity.name}:")
        for difference in parity.differences:
            click.echo(f"    {difference}")
    click.echo("")
    if failed:
        click.echo(f"FAIL: {len(failed)} of {len(results)} models differ between PostgreSQL "
                   f"and DuckDB on {target.masked_url}.")
        ctx.exit(1)
    click.echo(f"PASS: {len(results)} models return the same rows on PostgreSQL and DuckDB.")


@cli.command("verify")
@click.option("--dir", "out_dir", metavar="DIR", type=click.Path(file_okay=False), default=None,
              help="The export folder holding manifest.json (default: exports/).")
@click.pass_context
def verify_command(ctx, out_dir):
    """Recount an export: rows and money sums in PostgreSQL, in DuckDB and in the manifest.

    For every file in DIR/manifest.json, PostgreSQL recomputes the row count and money
    sums from the analytics relation, DuckDB recomputes them from the CSV or Parquet file
    itself, and both must equal the manifest; each file's sha256 must match too. A missing,
    truncated or edited file exits 1 with a line naming it. `make verify` adds the same
    proof in bash (scripts/verify.sh).

    Example:

        python cli.py export && python cli.py verify --dir exports
    """
    from pathlib import Path

    from tracker.verify import verify_export

    directory = Path(out_dir) if out_dir else config.EXPORTS_DIR
    report = verify_export(database(ctx).url, directory)

    def shown(value):
        return "-" if value is None else f"{value:,}"

    def flag(value):
        return {True: "ok", False: "DIFF", None: "-"}[value]

    print_table(
        ["result", "file", "manifest", "postgres", "duckdb", "sums", "sha256"],
        [("PASS" if check.ok else "FAIL", check.path, shown(check.manifest_rows),
          shown(check.postgres_rows), shown(check.duckdb_rows), flag(check.sums_ok),
          flag(check.sha256_ok)) for check in report.files],
    )
    failed = [check for check in report.files if not check.ok]
    for check in failed:
        click.echo("")
        click.echo(f"FAIL {check.path}:")
        for problem in check.problems:
            click.echo(f"    {problem}")
    click.echo("")
    if failed:
        click.echo(f"FAIL: {len(failed)} of {len(report.files)} files in {directory} do not "
                   "match. Export again (`python cli.py export`) and verify.")
        ctx.exit(1)
    click.echo(f"PASS: {len(report.files)} files in {directory} match PostgreSQL, DuckDB and "
               f"the manifest ({report.seconds:.2f} s).")


if __name__ == "__main__":
    cli()
