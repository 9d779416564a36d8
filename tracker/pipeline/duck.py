"""DuckDB for fast local checks: the base tables, the sample seeds, data copied from PostgreSQL.

The base tables come from database/duckdb/base_tables.sql, a copy of the migrations' columns
and types (the migrations stay the source of truth; a test compares the two catalogs). DuckDB
has no triggers, so its alerts table is filled from the set-based alert model
queries/checks/budget_alert_crossings.sql: the alerts a row-by-row load would have fired.
"""

from pathlib import Path

from tracker.errors import TrackerError
from tracker.pipeline.types import CSV_READER
from tracker.plumbing import config
from tracker.text import quote_identifier, reason

BASE_TABLES_SQL = config.PROJECT_DIR / "database" / "duckdb" / "base_tables.sql"
BASE_TABLES = ("users", "categories", "budgets", "expenses", "alerts", "budget_spending")
# How copy_from_postgres orders each table (a table without an id by its primary key).
TABLE_ORDER = {"budget_spending": ("user_id", "category_id", "month")}
ALERT_MODEL = "checks/budget_alert_crossings.sql"  # under the project's queries folder

SEED_COLUMNS = {
    "users": {"name": "VARCHAR", "email": "VARCHAR", "currency": "VARCHAR"},
    "categories": {"name": "VARCHAR", "description": "VARCHAR", "color": "VARCHAR"},
    "budgets": {
        "user_email": "VARCHAR",
        "category": "VARCHAR",
        "month": "DATE",
        "amount": "DECIMAL(12, 2)",
    },
    "expenses": {
        "user_email": "VARCHAR",
        "category": "VARCHAR",
        "amount": "DECIMAL(12, 2)",
        "currency": "VARCHAR",
        "date": "DATE",
        "note": "VARCHAR",
    },
}

# The seeds refer to users by e-mail and categories by name; ids follow the files' row order,
# as PostgreSQL's identity columns do when database/seeds/load.sql inserts them.
SEED_LOAD = """
insert into main.users (id, name, email, currency)
select
    row_number() over () as id,
    seed_users.name,
    seed_users.email,
    seed_users.currency
from seed_users;

insert into main.categories (id, name, description, color)
select
    row_number() over () as id,
    seed_categories.name,
    seed_categories.description,
    seed_categories.color
from seed_categories;

insert into main.budgets (id, user_id, category_id, month, amount)
select
    row_number() over (order by seed_budgets.seq) as id,
    users.id as user_id,
    categories.id as category_id,
    seed_budgets.month,
    seed_budgets.amount
from seed_budgets
inner join main.users as users
    on users.email = seed_budgets.user_email
inner join main.categories as categories
    on categories.name = seed_budgets.category;

insert into main.expenses (id, user_id, category_id, amount, currency, date, note)
select
    row_number() over (order by seed_expenses.seq) as id,
    users.id as user_id,
    categories.id as category_id,
    seed_expenses.amount,
    seed_expenses.currency,
    seed_expenses.date,
    seed_expenses.note
from seed_expenses
inner join main.users as users
    on users.email = seed_expenses.user_email
inner join main.categories as categories
    on categories.name = seed_expenses.category;
"""


def connect(path: str | Path | None = None):
    """A DuckDB connection (in memory unless path) whose session time zone is UTC."""
    import duckdb

    duck = duckdb.connect(str(path) if path else ":memory:")
    duck.execute("set TimeZone = 'UTC'")
    return duck


def create_base_tables(duck) -> None:
    """Create the base tables from database/duckdb/base_tables.sql."""
    duck.execute(BASE_TABLES_SQL.read_text(encoding="utf-8"))


def load_seeds(duck, seeds_dir: Path | str = config.SEEDS_DIR) -> None:
    """Load database/seeds/*.csv into the base tables, as db-init does."""
    import duckdb

    seeds_dir = Path(seeds_dir)
    for name, columns in SEED_COLUMNS.items():
        path = seeds_dir / f"{name}.csv"
        if not path.exists():
            raise TrackerError(f"seed file {path} is missing. Restore it from git.")
        try:
            duck.execute(
                f"create or replace temp table seed_{name} as "
                f"select *, row_number() over () as seq from {CSV_READER}",
                {"path": str(path), "columns": columns},
            )
        except duckdb.Error as exc:
            raise TrackerError(
                f"seed file {path.name} could not be read: {reason(exc)}. Fix the file."
            ) from None
    duck.execute(SEED_LOAD)


def load_sample(duck, project, seeds_dir: Path | str = config.SEEDS_DIR) -> None:
    """The base tables with the sample seeds, and the alerts and per-key totals that
    PostgreSQL's triggers would have made of them: what `check` builds the models over."""
    create_base_tables(duck)
    load_seeds(duck, seeds_dir)
    fill_alerts(duck, project)
    fill_budget_spending(duck)


def fill_alerts(duck, project) -> None:
    """Fill main.alerts with the crossings of the alert model (DuckDB has no trigger)."""
    from tracker.pipeline.models import render_file

    crossings = render_file(project, project.queries_dir / ALERT_MODEL, "duckdb")
    duck.execute(
        f"""
        insert into main.alerts (
            id, user_id, budget_id, category_id, month, alert_type, message, spent, budget_amount
        )
        select
            row_number() over (order by crossings.expense_id) as id,
            crossings.user_id,
            crossings.budget_id,
            crossings.category_id,
            crossings.month,
            'BUDGET_EXCEEDED' as alert_type,
            format(
                'Budget exceeded for {{}} for {{}}. Spent: {{}} / {{}}',
                categories.name,
                strftime(crossings.month, '%B %Y'),
                crossings.spent,
                crossings.budget_amount
            ) as message,
            crossings.spent,
            crossings.budget_amount
        from ({crossings}) as crossings
        inner join main.categories as categories
            on categories.id = crossings.category_id
        """
    )


def fill_budget_spending(duck) -> None:
    """Fill main.budget_spending with each key's sum of expenses, as V010's triggers keep it."""
    duck.execute(
        """
        insert into main.budget_spending (user_id, category_id, month, spent)
        select
            user_id,
            category_id,
            cast(date_trunc('month', date) as date) as month,
            sum(amount) as spent
        from main.expenses
        group by all
        """
    )


def copy_from_postgres(url: str, duck, workdir: Path | str) -> dict[str, int]:
    """Copy the base tables from PostgreSQL into DuckDB through CSV files in workdir.

    PostgreSQL writes each table with COPY TO (timestamps in UTC); DuckDB reads it back with
    the explicit column types of base_tables.sql. Rows per table.
    """
    from psycopg import sql

    from tracker.plumbing.db import connect as pg_connect

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    with pg_connect(url) as conn:
        conn.execute("set timezone = 'UTC'")
        conn.execute("set datestyle = 'ISO, YMD'")
        for table in BASE_TABLES:
            columns = table_columns(duck, table)
            path = workdir / f"{table}.csv"
            statement = sql.SQL(
                "copy (select {} from {} order by {}) to stdout with (format csv, header)"
            ).format(
                sql.SQL(", ").join(sql.Identifier(name) for name in columns),
                sql.Identifier("public", table),
                sql.SQL(", ").join(map(sql.Identifier, TABLE_ORDER.get(table, ("id",)))),
            )
            with open(path, "wb") as target, conn.cursor().copy(statement) as copy:
                for chunk in copy:
                    target.write(chunk)
            duck.execute(
                f"insert into main.{table} select * from {CSV_READER}",
                {"path": str(path), "columns": columns},
            )
        conn.rollback()
    return table_counts(duck)


def table_columns(duck, table: str, schema: str = "main") -> dict[str, str]:
    """Column name -> DuckDB type of a table or view ("temp": a temporary one), in order."""
    import duckdb

    # Binding the relation reads its own catalog entry: about 0.5 ms, where duckdb_columns()
    # lists every column of every catalog (system views included), about 2.5 ms. The database
    # is named, else "main.x" would find a temporary table x first.
    if schema == "temp":
        name = ("temp", "main", table)
    else:
        name = (duck.execute("select current_database()").fetchone()[0], schema, table)
    try:
        relation = duck.table(".".join(map(quote_identifier, name)))
    except duckdb.Error:
        # Missing ({}), or a view that no longer binds: the catalog still knows its columns.
        return _catalog_columns(duck, table, schema)
    return dict(zip(relation.columns, map(str, relation.types), strict=True))


def _catalog_columns(duck, table: str, schema: str) -> dict[str, str]:
    # duckdb_columns() directly: information_schema.columns is a view over it, ~10x slower.
    if schema == "temp":
        rows = duck.execute(
            "select column_name, data_type from duckdb_columns() "
            "where database_name = 'temp' and table_name = ? order by column_index",
            [table],
        ).fetchall()
    else:
        rows = duck.execute(
            "select column_name, data_type from duckdb_columns() "
            "where database_name <> 'temp' and schema_name = ? and table_name = ? "
            "order by column_index",
            [schema, table],
        ).fetchall()
    return dict(rows)


def table_counts(duck) -> dict[str, int]:
    """Rows in each base table."""
    counts = duck.execute(
        " union all ".join(
            f"select '{table}' as name, count(*) as n from main.{table}" for table in BASE_TABLES
        )
    ).fetchall()
    return dict(counts)
