-- The lake's change log: which months of which fact a statement touched, recorded by the
-- database itself, so an incremental `export --lake` rewrites only those partitions without
-- scanning the facts to find them (tracker/lake.py reads and consumes this table).

-- One row per statement and touched month (duplicates are fine: the export reads distinct
-- months). No unique key on purpose: an "on conflict do nothing" would let a writer skip its
-- row because an identical one exists that an export running now is about to consume, and the
-- writer's change (committed after that export's snapshot) would be lost. The export instead
-- deletes exactly the ids it saw in its own snapshot: a row committed later, whatever its id
-- (identity values are taken before commit, so ids do not follow commit order), stays for the
-- next export.
create table lake_changes (
    id bigint generated always as identity primary key,
    fact text not null check (fact in ('fact_expenses', 'fact_budgets', 'alerts')),
    -- null: every month of the fact (a TRUNCATE, which has no rows to tell which).
    month date check (month = date_trunc('month', month)::date),
    changed_at timestamptz not null default now()
);

comment on table lake_changes is
    'Months of the lake''s facts changed since the last lake export; consumed by export --lake.';

-- Statement-level triggers with transition tables: one insert per statement whatever its
-- size (a COPY of a million rows adds one row per month it touched). They are separate from
-- the budget-alert triggers and do not read or change what those do. SECURITY DEFINER with a
-- fixed search_path: a role that may write expenses (the REST API's, under row-level
-- security) needs no grant on lake_changes, and cannot redirect the insert with its own
-- search_path.
create function lake_track_expenses() returns trigger
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

create function lake_track_budgets() returns trigger
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

create function lake_track_alerts() returns trigger
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
create trigger expenses_lake_insert
    after insert on expenses
    referencing new table as new_rows
    for each statement execute function lake_track_expenses();
create trigger expenses_lake_update
    after update on expenses
    referencing old table as old_rows new table as new_rows
    for each statement execute function lake_track_expenses();
create trigger expenses_lake_delete
    after delete on expenses
    referencing old table as old_rows
    for each statement execute function lake_track_expenses();

create trigger budgets_lake_insert
    after insert on budgets
    referencing new table as new_rows
    for each statement execute function lake_track_budgets();
create trigger budgets_lake_update
    after update on budgets
    referencing old table as old_rows new table as new_rows
    for each statement execute function lake_track_budgets();
create trigger budgets_lake_delete
    after delete on budgets
    referencing old table as old_rows
    for each statement execute function lake_track_budgets();

create trigger alerts_lake_insert
    after insert on alerts
    referencing new table as new_rows
    for each statement execute function lake_track_alerts();
create trigger alerts_lake_update
    after update on alerts
    referencing old table as old_rows new table as new_rows
    for each statement execute function lake_track_alerts();
create trigger alerts_lake_delete
    after delete on alerts
    referencing old table as old_rows
    for each statement execute function lake_track_alerts();

-- TRUNCATE fires no row or delete triggers: it marks the whole fact as changed.
create function lake_track_truncate() returns trigger
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

create trigger expenses_lake_truncate
    after truncate on expenses
    for each statement execute function lake_track_truncate('fact_expenses');
create trigger budgets_lake_truncate
    after truncate on budgets
    for each statement execute function lake_track_truncate('fact_budgets');
create trigger alerts_lake_truncate
    after truncate on alerts
    for each statement execute function lake_track_truncate('alerts');
