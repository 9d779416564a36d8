"""generate's bulk load into a database without expenses, the way pg_restore does it.

The expenses foreign keys, unique constraints and secondary indexes are dropped before the
rows go in and created again after, from the catalog's own definitions (so the migrations
stay their only source): one index build instead of a row-by-row index update.
"""

import psycopg
from psycopg import sql


def detach_expense_indexes(conn: psycopg.Connection) -> list[sql.SQL | sql.Composed]:
    """Drop the expenses foreign keys, unique constraints and secondary indexes.

    Returns the statements that create them again, from the catalog's own definitions.
    All of them go: the alert trigger reads each key's total from budget_spending (V010),
    never the expenses themselves.
    """
    restore: list[sql.SQL | sql.Composed] = []
    constraints = conn.execute(
        """
        select
            pg_constraint.conname,
            pg_get_constraintdef(pg_constraint.oid) as definition,
            obj_description(pg_constraint.oid, 'pg_constraint') as comment
        from pg_constraint
        where pg_constraint.conrelid = 'expenses'::regclass
            and pg_constraint.contype in ('f', 'u')
        order by pg_constraint.conname
        """
    ).fetchall()
    indexes = conn.execute(
        """
        select
            index_namespace.nspname as index_schema,
            index_class.relname as index_name,
            pg_get_indexdef(pg_index.indexrelid) as definition,
            obj_description(pg_index.indexrelid, 'pg_class') as comment
        from pg_index
        inner join pg_class as index_class
            on index_class.oid = pg_index.indexrelid
        inner join pg_namespace as index_namespace
            on index_namespace.oid = index_class.relnamespace
        where pg_index.indrelid = 'expenses'::regclass
            and not pg_index.indisprimary
            and not exists (
                select
                from pg_constraint
                where pg_constraint.conindid = pg_index.indexrelid
            )
        order by index_class.relname
        """
    ).fetchall()
    for name, definition, comment in constraints:
        conn.execute(
            sql.SQL("alter table expenses drop constraint {}").format(sql.Identifier(name))
        )
        restore.append(
            sql.SQL("alter table expenses add constraint {} ").format(sql.Identifier(name))
            + sql.SQL(definition)
        )
        if comment is not None:
            restore.append(
                sql.SQL("comment on constraint {} on expenses is {}").format(
                    sql.Identifier(name), sql.Literal(comment)
                )
            )
    for schema, name, definition, comment in indexes:
        conn.execute(sql.SQL("drop index {}").format(sql.Identifier(schema, name)))
        restore.append(sql.SQL(definition))
        if comment is not None:
            restore.append(
                sql.SQL("comment on index {} is {}").format(
                    sql.Identifier(schema, name), sql.Literal(comment)
                )
            )
    return restore
