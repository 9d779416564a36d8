-- The lake's change log triggers: which months of which fact a statement touched,
-- recorded in lake_changes (V009's table, which explains how `export --lake` consumes
-- it). This file is the current definition of the functions and triggers (first in V009);
-- it is re-applied whenever it changes, and create or replace keeps owners and grants, so
-- edit it in place.

-- Statement-level triggers with transition tables: one insert per statement whatever its
-- size (a COPY of a million rows adds one row per month it touched). They are separate
-- from the budget-alert triggers and do not read or change what those do. SECURITY
-- DEFINER with a fixed search_path: a role that may write expenses (the REST API's, under
-- row-level security) needs no grant on lake_changes, and cannot redirect the insert with
-- its own search_path.
create or replace function lake_track_expenses() returns trigger
language plpgsql
security definer
set search_path = pg_catalog, public
as $$
begin
    if tg_op = 'INSERT' then
        insert into public.lake_changes (fact, month)
        select distinct 'fact_expenses', date_trunc('month', new_rows.date)::date
        from new_rows;
    elsif tg_op = 'UPDATE' then
        -- An update that moves a date leaves one month and enters another: both change.
        insert into public.lake_changes (fact, month)
        select 'fact_expenses', date_trunc('month', old_rows.date)::date from old_rows
        union
        select 'fact_expenses', date_trunc('month', new_rows.date)::date from new_rows;
    else
        insert into public.lake_changes (fact, month)
        select distinct 'fact_expenses', date_trunc('month', old_rows.date)::date
        from old_rows;
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
        insert into public.lake_changes (fact, month)
        select distinct 'fact_budgets', make_date(new_rows.year, new_rows.month, 1)
        from new_rows;
    elsif tg_op = 'UPDATE' then
        insert into public.lake_changes (fact, month)
        select 'fact_budgets', make_date(old_rows.year, old_rows.month, 1) from old_rows
        union
        select 'fact_budgets', make_date(new_rows.year, new_rows.month, 1) from new_rows;
    else
        insert into public.lake_changes (fact, month)
        select distinct 'fact_budgets', make_date(old_rows.year, old_rows.month, 1)
        from old_rows;
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
        insert into public.lake_changes (fact, month)
        select distinct 'alerts', date_trunc('month', new_rows.month)::date from new_rows;
    elsif tg_op = 'UPDATE' then
        insert into public.lake_changes (fact, month)
        select 'alerts', date_trunc('month', old_rows.month)::date from old_rows
        union
        select 'alerts', date_trunc('month', new_rows.month)::date from new_rows;
    else
        insert into public.lake_changes (fact, month)
        select distinct 'alerts', date_trunc('month', old_rows.month)::date from old_rows;
    end if;
    return null;
end;
$$;

-- Deleting a user cascades to expenses, budgets and alerts; cascaded deletes fire these
-- statement triggers on each child table, so a deleted user's months are recorded too.
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
