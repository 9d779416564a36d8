-- The lake's change log triggers: which months of which fact a statement touched,
-- recorded in lake_changes (V009's table, which explains how `export --lake` consumes
-- it). This file is the current definition of the functions and triggers (first in V009;
-- the id ranges, first_id and last_id, since V011); it is re-applied whenever it changes,
-- and create or replace keeps owners and grants, so edit it in place.

-- Statement-level triggers with transition tables: one insert per statement whatever its
-- size (a COPY of a million rows adds one row per month it touched). They are separate
-- from the budget-alert triggers and do not read or change what those do. SECURITY
-- DEFINER with a fixed search_path: a role that may write expenses (the REST API's, under
-- row-level security) needs no grant on lake_changes, and cannot redirect the insert with
-- its own search_path.
--
-- One row per statement and month, as before (group by instead of distinct: the same one
-- pass over the transition tables). An update that moves a row logs its id in both
-- months. Expenses are grouped by day first, then the few hundred days by month: a
-- million-row COPY then computes the month of each day, not of each row (about half the
-- trigger's time).
create or replace function lake_track_expenses() returns trigger
language plpgsql
security definer
set search_path = pg_catalog, public
as $$
begin
    if tg_op = 'INSERT' then
        insert into public.lake_changes (fact, month, first_id, last_id)
        select 'fact_expenses', date_trunc('month', days.date)::date, min(days.first_id),
            max(days.last_id)
        from (
            select new_rows.date, min(new_rows.id) as first_id, max(new_rows.id) as last_id
            from new_rows
            group by new_rows.date
        ) as days
        group by 2;
    elsif tg_op = 'UPDATE' then
        insert into public.lake_changes (fact, month, first_id, last_id)
        select 'fact_expenses', date_trunc('month', days.date)::date, min(days.first_id),
            max(days.last_id)
        from (
            select touched.date, min(touched.id) as first_id, max(touched.id) as last_id
            from (
                select old_rows.date, old_rows.id from old_rows
                union all
                select new_rows.date, new_rows.id from new_rows
            ) as touched
            group by touched.date
        ) as days
        group by 2;
    else
        insert into public.lake_changes (fact, month, first_id, last_id)
        select 'fact_expenses', date_trunc('month', days.date)::date, min(days.first_id),
            max(days.last_id)
        from (
            select old_rows.date, min(old_rows.id) as first_id, max(old_rows.id) as last_id
            from old_rows
            group by old_rows.date
        ) as days
        group by 2;
    end if;
    return null;
end;
$$;

create or replace function lake_track_budgets() returns trigger
language plpgsql
security definer
set search_path = pg_catalog, public
as $$
begin
    if tg_op = 'INSERT' then
        insert into public.lake_changes (fact, month, first_id, last_id)
        select 'fact_budgets', new_rows.month, min(new_rows.id), max(new_rows.id)
        from new_rows
        group by 2;
    elsif tg_op = 'UPDATE' then
        insert into public.lake_changes (fact, month, first_id, last_id)
        select 'fact_budgets', touched.month, min(touched.id), max(touched.id)
        from (
            select old_rows.month, old_rows.id from old_rows
            union all
            select new_rows.month, new_rows.id from new_rows
        ) as touched
        group by touched.month;
    else
        insert into public.lake_changes (fact, month, first_id, last_id)
        select 'fact_budgets', old_rows.month, min(old_rows.id), max(old_rows.id)
        from old_rows
        group by 2;
    end if;
    return null;
end;
$$;

create or replace function lake_track_alerts() returns trigger
language plpgsql
security definer
set search_path = pg_catalog, public
as $$
begin
    if tg_op = 'INSERT' then
        insert into public.lake_changes (fact, month, first_id, last_id)
        select 'alerts', date_trunc('month', new_rows.month)::date, min(new_rows.id),
            max(new_rows.id)
        from new_rows
        group by 2;
    elsif tg_op = 'UPDATE' then
        insert into public.lake_changes (fact, month, first_id, last_id)
        select 'alerts', touched.month, min(touched.id), max(touched.id)
        from (
            select date_trunc('month', old_rows.month)::date as month, old_rows.id from old_rows
            union all
            select date_trunc('month', new_rows.month)::date, new_rows.id from new_rows
        ) as touched
        group by touched.month;
    else
        insert into public.lake_changes (fact, month, first_id, last_id)
        select 'alerts', date_trunc('month', old_rows.month)::date, min(old_rows.id),
            max(old_rows.id)
        from old_rows
        group by 2;
    end if;
    return null;
end;
$$;

create or replace trigger expenses_lake_insert
after insert on expenses
referencing new table as new_rows
for each statement execute function lake_track_expenses();
create or replace trigger expenses_lake_update
after update on expenses
referencing old table as old_rows new table as new_rows
for each statement execute function lake_track_expenses();
create or replace trigger expenses_lake_delete
after delete on expenses
referencing old table as old_rows
for each statement execute function lake_track_expenses();

create or replace trigger budgets_lake_insert
after insert on budgets
referencing new table as new_rows
for each statement execute function lake_track_budgets();
create or replace trigger budgets_lake_update
after update on budgets
referencing old table as old_rows new table as new_rows
for each statement execute function lake_track_budgets();
create or replace trigger budgets_lake_delete
after delete on budgets
referencing old table as old_rows
for each statement execute function lake_track_budgets();

create or replace trigger alerts_lake_insert
after insert on alerts
referencing new table as new_rows
for each statement execute function lake_track_alerts();
create or replace trigger alerts_lake_update
after update on alerts
referencing old table as old_rows new table as new_rows
for each statement execute function lake_track_alerts();
create or replace trigger alerts_lake_delete
after delete on alerts
referencing old table as old_rows
for each statement execute function lake_track_alerts();

-- TRUNCATE fires no row or delete triggers: it marks the whole fact as changed.
create or replace function lake_track_truncate() returns trigger
language plpgsql
security definer
set search_path = pg_catalog, public
as $$
begin
    insert into public.lake_changes (fact, month)
    values (tg_argv[0], null);
    return null;
end;
$$;

create or replace trigger expenses_lake_truncate
after truncate on expenses
for each statement execute function lake_track_truncate('fact_expenses');
create or replace trigger budgets_lake_truncate
after truncate on budgets
for each statement execute function lake_track_truncate('fact_budgets');
create or replace trigger alerts_lake_truncate
after truncate on alerts
for each statement execute function lake_track_truncate('alerts');
