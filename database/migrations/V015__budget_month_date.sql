-- The budget month has one shape: budgets.month is a DATE, the first day of the month,
-- as alerts.month, budget_transfers.month, budget_spending.month and every model's month
-- already are. Before, budgets kept two smallints, year and month, and every reader and
-- trigger converted between the two shapes (make_date, extract(year ...)).
--
-- What changes for psql users: budgets has no year column any more, and month is a date.
--   before: select amount from budgets where year = 2025 and month = 5;
--   now:    select amount from budgets where month = date '2025-05-01';
-- The month must be the first day of a month between 1900-01-01 and 2100-12-01 (V007's
-- years 1900 to 2100), and one user has one budget per category and month, as before:
-- the unique key is now (user_id, category_id, month). The CLI's options (`budget set
-- --month 2025-05`) and the exports' columns (fact_budgets, the marts) do not change.
--
-- The rows are carried over in place, in this migration's transaction: the column's type
-- change computes each month from the row's year and month (a table rewrite, so no
-- trigger fires: no alert, no lake change is recorded, nothing is judged again). Budget
-- ids stay, so alerts.budget_id and budget_transfers' links still point at their
-- budgets. The trigger functions reading the month (R__budget_alerts.sql,
-- R__lake_change_log.sql) are re-applied after this file in the same transaction.

-- The models' views (schema analytics, built by `run`, `build` and `export`) read the old
-- columns, and PostgreSQL does not change a column a view reads: they are dropped here,
-- with the views that read them, and the next build makes them again from queries/
-- (export builds missing models itself). Tables built from them do not depend on them.
do $$
declare
    model_view text;
begin
    for model_view in
        select distinct format('%I.%I', view_schema.nspname, model.relname)
        from pg_catalog.pg_depend as dependency
        inner join pg_catalog.pg_rewrite as rewrite
            on dependency.classid = 'pg_catalog.pg_rewrite'::regclass
            and rewrite.oid = dependency.objid
        inner join pg_catalog.pg_class as model
            on rewrite.ev_class = model.oid
        inner join pg_catalog.pg_namespace as view_schema
            on model.relnamespace = view_schema.oid
        where dependency.refobjid = 'public.budgets'::regclass
            and view_schema.nspname = 'analytics'
    loop
        execute format('drop view if exists %s cascade', model_view);
    end loop;
end;
$$;

alter table budgets drop constraint budgets_user_id_category_id_year_month_key;

alter table budgets drop constraint budgets_month_check;

alter table budgets drop constraint budgets_year_range;

alter table budgets
alter column month type date using make_date(year, month, 1);

alter table budgets drop column year;

alter table budgets
add constraint budgets_month_first_day
check (extract(day from month) = 1);

alter table budgets
add constraint budgets_month_range
check (month between date '1900-01-01' and date '2100-12-01');

alter table budgets
add constraint budgets_user_id_category_id_month_key
unique (user_id, category_id, month);

comment on column budgets.month is
'The budget''s month: its first day (V015; before, two smallints year and month).';
