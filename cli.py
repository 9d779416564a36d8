"""Smart Spending Tracker command line: parse options, call the tracker package, print.

Every command maps handled failures to one line on stderr: exit 1 for a failure,
exit 2 for bad input. --debug (or TRACKER_DEBUG=1) shows the traceback instead.
"""

import os
import sys

import click

from tracker import config
from tracker.errors import InputError, TrackerError


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


if __name__ == "__main__":
    cli()
