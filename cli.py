"""Smart Spending Tracker command line: parse options, call the tracker package, print.

Every command maps handled failures to one line on stderr, `Error: <message>`: exit 1 for a
failure, exit 2 for bad input. --debug (or TRACKER_DEBUG=1) shows the traceback instead.
Heavy modules are imported inside the commands, so `--help` stays fast.
"""

import contextlib
import os
import sys
from pathlib import Path

import click

from tracker import text
from tracker.errors import InputError, TrackerError
from tracker.plumbing import config

# Short names for the text helpers the command bodies use most.
_plural, _noun = text.plural, text.noun_for


class TrackerGroup(click.Group):
    """A group that prints TrackerError and database errors as one `Error: ...` line."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TrackerError as exc:
            if _debug(ctx):
                raise
            _fail(ctx, str(exc), exc.exit_code)
        except Exception as exc:
            import psycopg

            if _debug(ctx) or not isinstance(exc, psycopg.Error):
                raise
            reason = text.first_line(exc) or type(exc).__name__
            _fail(
                ctx,
                f"the database refused the command: {reason}. Run again with --debug for details.",
                1,
            )


def _fail(ctx, message: str, exit_code: int):
    """Print the one error line (the library's messages carry no prefix) and exit."""
    line = text.first_line(message)
    click.echo(line if line.startswith("Error: ") else f"Error: {line}", err=True)
    ctx.exit(exit_code)


def _debug(ctx) -> bool:
    root = ctx.find_root()
    return bool(root.params.get("debug")) or config.debug_enabled()


def database(ctx: click.Context, *, start: bool = True):
    """The database chosen by --database-url, DATABASE_URL, .env or the private server."""
    from tracker.plumbing import db

    return db.resolve(ctx.find_root().params.get("database_url"), start=start)


def print_table(headers: list[str], rows: list[tuple]) -> None:
    """Print rows as an aligned plain-text table (see tracker.text.table)."""
    click.echo(text.table(headers, rows))


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
    from tracker.plumbing.bootstrap import describe_init, initialize_database

    target = database(ctx)
    click.echo(f"Database: {target.masked_url} ({target.source})")

    def on_applied(migration, elapsed_ms):
        click.echo(f"  applied {migration.filename} ({elapsed_ms} ms)")

    report = initialize_database(target.url, seed=seed, on_applied=on_applied)
    click.echo(describe_init(report, seed))


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
    from tracker.plumbing.bootstrap import database_status, describe_status

    status = database_status(database(ctx, start=False))
    click.echo(describe_status(status))
    if not status.reachable:
        ctx.exit(1)


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
    from tracker.everyday.generate import describe_generated, generate_data, parse_options

    options = parse_options(
        users=users, expenses=expenses, months=months, seed=seed, start_month=start_month
    )
    target = database(ctx)
    # The bar starts with the first progress report, so a refused run prints only its error.
    with contextlib.ExitStack() as stack:
        bar = None

        def on_progress(label, done, total):
            nonlocal bar
            if bar is None:
                bar = click.progressbar(
                    length=total, label="Generating", file=sys.stderr, show_eta=True, width=30
                )
                stack.enter_context(bar)
            bar.label = f"Generating {label:<8}"
            bar.update(done - bar.pos)

        result = generate_data(target.url, options, on_progress)
    click.echo(describe_generated(result, options, target.masked_url))


# --- everyday commands: user, category, expense, budget, alerts, summary, import ----------


def _call(ctx, function, *args, **kwargs):
    """Make one library call on its own autocommit connection (the call is its own
    transaction)."""
    from tracker.plumbing import db

    with db.connect(database(ctx).url, autocommit=True) as conn:
        return function(conn, *args, **kwargs)


def _echo(output: str) -> None:
    """Print text the library rendered (it ends with its own newline)."""
    click.echo(output, nl=False)


FORMAT_OPTION = click.option(
    "--format",
    "fmt",
    type=click.Choice(text.FORMATS),
    default="table",
    show_default=True,
    help="table for people, csv or json for scripts.",
)
# One name and one wording per concept, shared by every command that takes it.
USER_OPTION = click.option("--user", required=True, help="User e-mail or id.")
ONLY_USER_OPTION = click.option("--user", help="Only this user (e-mail or id).")
CATEGORY_OPTION = click.option("--category", required=True, help="Category name or id.")
MONTH_OPTION = click.option("--month", required=True, help="Month, YYYY-MM.")


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

    user = _call(ctx, add_user, name, email, currency)
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
    from tracker.everyday.users import User, list_users

    users = _call(ctx, list_users)
    _echo(text.listing(fmt, User, users))


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

    updated = _call(ctx, update_user, user, name=name, email=email, currency=currency)
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

    deleted = _call(ctx, delete_user, user, confirmed=yes)
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

    category = _call(ctx, add_category, name, description, color)
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
    from tracker.everyday.categories import CategoryUsage, list_categories

    rows = _call(ctx, list_categories)
    _echo(text.listing(fmt, CategoryUsage, rows))


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

    renamed = _call(ctx, rename_category, category, new_name)
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
    from tracker.everyday.category_delete import delete_category, describe_deletion

    deleted = _call(ctx, delete_category, category, move_to, dry_run=dry_run)
    click.echo("\n".join(describe_deletion(deleted)))


@cli.group("expense", cls=TrackerGroup)
def expense_group():
    """Add, list, change and delete expenses.

    Example:

    \b
        python cli.py expense add --user aman@example.com --category Food --amount 250
    """


@expense_group.command("add")
@USER_OPTION
@CATEGORY_OPTION
@click.option("--amount", required=True, help="Amount above 0, at most 2 decimals.")
@click.option("--date", "day", help="Day YYYY-MM-DD (default: today).")
@click.option("--note", help="What it was for.")
@click.option("--currency", help="Currency of the amount; must be the user's (no conversion).")
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

    expense = _call(ctx, add_expense, user, category, amount, day, note, currency)
    click.echo(
        f"Added expense {expense.id}: {expense.date} {expense.category} "
        f"{expense.amount} {expense.currency} for {expense.user_email}."
    )
    _echo_alerts(expense.alerts)


def _echo_alerts(alerts) -> None:
    """Say which budget alerts the command just fired."""
    for alert in alerts:
        click.echo(f"Alert {alert.id}: {alert.message}")


@expense_group.command("list")
@ONLY_USER_OPTION
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
    help="At most this many expenses (default: 50 for the table, all for csv and json).",
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
    from tracker.everyday.expenses import write_expenses

    sys.stdout.flush()
    _call(
        ctx,
        write_expenses,
        fmt,
        sys.stdout.buffer.write,
        limit=limit,
        user=user,
        category=category,
        month=month,
        date_from=date_from,
        date_to=date_to,
        min_amount=min_amount,
        max_amount=max_amount,
        sort=sort,
    )
    sys.stdout.buffer.flush()


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
    expense = _call(ctx, update_expense, expense_id, **changes)
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

    expense = _call(ctx, delete_expense, expense_id)
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
@USER_OPTION
@CATEGORY_OPTION
@MONTH_OPTION
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

    budget = _call(ctx, set_budget, user, category, month, amount)
    change = (
        "created" if budget.previous_amount is None else f"changed from {budget.previous_amount}"
    )
    click.echo(f"Budget {budget.category} {budget.month}: {budget.amount} ({change}).")
    _echo_alerts(budget.alerts)


@budget_group.command("list")
@USER_OPTION
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
    from tracker.everyday.budgets import BudgetStatus, list_budgets

    rows = _call(ctx, list_budgets, user, month)
    _echo(text.listing(fmt, BudgetStatus, rows))


@budget_group.command("transfer")
@USER_OPTION
@click.option(
    "--from", "from_category", required=True, help="Category to take it from (name or id)."
)
@click.option("--to", "to_category", required=True, help="Category to give it to (name or id).")
@MONTH_OPTION
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

    moved = _call(ctx, transfer_budget, user, from_category, to_category, month, amount)
    if moved.created_destination:
        click.echo(f"Created the {moved.to_category} budget for {moved.month} (there was none).")
    click.echo(
        f"Moved {moved.amount} from {moved.from_category} to {moved.to_category} for "
        f"{moved.month}: {moved.from_category} now {moved.from_amount}, "
        f"{moved.to_category} now {moved.to_amount} (transfer {moved.id})."
    )
    _echo_alerts(moved.alerts)


@budget_group.command("delete")
@USER_OPTION
@CATEGORY_OPTION
@MONTH_OPTION
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

    deleted = _call(ctx, delete_budget, user, category, month)
    kept = [_plural(deleted.alerts_kept, "alert"), _plural(deleted.transfers_kept, "transfer")]
    click.echo(
        f"Deleted the {deleted.category} budget for {deleted.month} of "
        f"{deleted.user_email} ({deleted.amount}); kept {' and '.join(kept)} about it "
        "as history."
    )


@cli.group("alerts", cls=TrackerGroup, invoke_without_command=True)
@ONLY_USER_OPTION
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
    from tracker.everyday.alerts import Alert, list_alerts

    rows = _call(ctx, list_alerts, user, unread=unread)
    _echo(text.listing(fmt, Alert, rows))


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

    ack = _call(ctx, acknowledge_alert, alert_id)
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
@click.option("--default-category", help="Category (name or id) for rows no rule matches.")
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
    from tracker.everyday.importer import describe_import, import_file

    with contextlib.ExitStack() as stack:
        progress = None
        if sys.stderr.isatty():
            label = f"Importing {os.path.basename(csv_file)}"
            bar = stack.enter_context(click.progressbar(length=100, label=label, file=sys.stderr))

            def progress(done, total):
                bar.update(round(done * 100 / total) - bar.pos if total else 100)

        result = import_file(
            database(ctx).url,
            csv_file,
            user,
            mapping,
            rules_file=rules_file,
            date_format=date_format,
            decimal_comma=decimal_comma,
            delimiter=delimiter,
            default_category=default_category,
            currency=currency,
            debits_negative=debits_negative,
            encoding=encoding,
            account=account,
            on_progress=progress,
        )
    click.echo(describe_import(result))
    _echo_alerts(result.alerts)


@cli.command("summary")
@USER_OPTION
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

    from tracker.everyday.summary import describe_month, summarize_month

    report = _call(ctx, summarize_month, user, month)
    if fmt == "json":
        click.echo(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(describe_month(report))


# --- models: run, compile -----------------------------------------------------------------


_select_option = click.option(
    "--select",
    "-s",
    "select",
    metavar="SPEC",
    multiple=True,
    help="Only these models: NAME, +NAME (with its upstream), NAME+ (with its downstream); "
    "comma or space separated; may be repeated.",
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
    from tracker.pipeline.models import load_project
    from tracker.pipeline.runner import run_models
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
    "--out",
    "out_dir",
    metavar="DIR",
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


# The options export and build share: where, which formats, what goes in, and the lock.
_EXPORT_OPTIONS = (
    click.option(
        "--out",
        "out_dir",
        metavar="DIR",
        type=click.Path(file_okay=True, dir_okay=True),
        default=None,
        help="Output directory (default: exports/).",
    ),
    click.option(
        "--format",
        "fmt",
        type=click.Choice(["csv", "parquet", "both"]),
        default="both",
        show_default=True,
        help="Which files to write.",
    ),
    click.option(
        "--include-pii",
        is_flag=True,
        help="Also export columns marked pii in the models (e.g. dim_user.email).",
    ),
    click.option(
        "--bom/--no-bom",
        default=True,
        show_default=True,
        help="Start each CSV with a UTF-8 byte-order mark (Power BI reads UTF-8 from it).",
    ),
    click.option(
        "--powerbi/--no-powerbi",
        default=True,
        show_default=True,
        help="Also write DIR/powerbi/: a Power BI project (.pbip) over these files.",
    ),
    click.option(
        "--lock-timeout",
        type=click.FloatRange(min=0),
        default=600,
        show_default=True,
        metavar="SECONDS",
        help="How long to wait for another export writing into the same folder.",
    ),
)


def _export_options(command):
    """Apply the options export and build share, in the order listed."""
    for option in reversed(_EXPORT_OPTIONS):
        command = option(command)
    return command


# --- export: CSV + Parquet files and manifest.json for Power BI ----------------------------


@cli.command("export")
@_export_options
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
    if lake_dir is not None:
        _export_lake(ctx, lake_dir, full, include_pii, out_dir, fmt, select)
        return
    if full:
        raise InputError("--full applies only to --lake. Add --lake [DIR] or drop --full.")

    from tracker.pipeline.export import export_project
    from tracker.pipeline.models import load_project

    target = database(ctx)

    def on_model(name, seconds):
        click.echo(f"  built analytics.{name:<28} {seconds * 1000:8.1f} ms", err=True)

    def on_wait(directory):
        click.echo(
            f"Another export is writing to {directory}; waiting for it (up to {lock_timeout:g} s).",
            err=True,
        )

    def on_start(models, directory):
        click.echo(
            f"Exporting {_plural(len(models), 'model')} from {target.masked_url} to {directory}",
            err=True,
        )

    with _stopped_cleanly():
        result = export_project(
            target.url,
            load_project(),
            out_dir,
            select=select,
            formats=fmt,
            include_pii=include_pii,
            bom=bom,
            on_model=on_model,
            on_progress=_echo_file_written,
            lock_timeout=lock_timeout,
            on_wait=on_wait,
            on_start=on_start,
        )
    if result.built:
        click.echo(f"Built {_plural(len(result.built), 'missing or stale model')} first.", err=True)
    click.echo(
        f"Wrote {_plural(len(result.files), 'file')} and "
        f"{result.out_dir / 'manifest.json'} in {result.seconds:.2f} s."
    )

    # Issue 13: a Power BI project over exactly these files (no database needed).
    if powerbi:
        from tracker.reports.powerbi import write_powerbi_project

        project = write_powerbi_project(result.models, result.manifest, result.out_dir)
        click.echo(
            f"Wrote {project.pbip} ({project.tables} tables, {project.relationships} "
            f"relationships, {project.measures} measures)."
        )


def _echo_file_written(event) -> None:
    """One progress line per exported file: [done/total] path rows size."""
    size = f"{event.bytes / 1_000_000:.1f} MB" if event.bytes >= 100_000 else f"{event.bytes} B"
    step = f"[{event.done}/{event.total}]".rjust(2 * len(str(event.total)) + 3)
    click.echo(f"  {step} {event.path:<34} {event.rows:>10,} rows {size:>9}", err=True)


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
@_export_options
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

    def on_model(name, seconds):
        model = project[name]
        click.echo(f"  {model.materialized:<5} analytics.{name:<28} {seconds * 1000:8.1f} ms")

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
            out_dir,
            vars=model_vars,
            formats=fmt,
            include_pii=include_pii,
            bom=bom,
            on_model=on_model,
            on_file=_echo_file_written,
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
        from tracker.pipeline.spark_checks import run_check_spark

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
    from tracker.pipeline.models import load_project
    from tracker.pipeline.parity import check_parity

    target = database(ctx)
    engine_name = "Spark" if engine == "spark" else "DuckDB"
    results = check_parity(
        target.url,
        load_project(queries_dir),
        engine=engine,
        select=select,
        master=master,
        lake_dir=_lake_path(lake_dir),
    )
    rows = [
        (
            "PASS" if parity.ok else "FAIL",
            parity.name,
            "-" if parity.postgres_rows < 0 else f"{parity.postgres_rows:,}",
            "-" if parity.duckdb_rows < 0 else f"{parity.duckdb_rows:,}",
        )
        for parity in results
    ]
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
    "--out",
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

        python cli.py export && python cli.py verify --out exports
        python cli.py verify --out exports/lake --partition fact_expenses/year=2025/month=2025-05-01
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

    created = _call(ctx, create_token, user, name)
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
    from tracker.everyday.tokens import ApiToken, list_tokens

    rows = _call(ctx, list_tokens, user)
    _echo(text.listing(fmt, ApiToken, rows))


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

    token, already = _call(ctx, revoke_token, token_id)
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
