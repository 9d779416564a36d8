-- The lake's change log: which months of which fact a statement touched, recorded by the
-- database itself, so an incremental `export --lake` rewrites only those partitions without
-- scanning the facts to find them (tracker/lake.py reads and consumes this table).

-- One row per statement and touched month, with the writing transaction's id. A lake keeps
-- the snapshot of its last export (lake_exports); its next export reads the rows whose
-- transaction that snapshot did not see, in its own new snapshot. That is exact whatever the
-- commit order: identity ids and transaction ids are handed out before commit, so "id <= last
-- seen" could skip a writer that took a smaller id and committed after the export, while
-- snapshot visibility is what the export's data reads are judged by too. A writer that
-- commits after an export's snapshot is therefore in the next export, never lost. No unique
-- key: duplicates are cheap, and the export reads distinct months.
create table lake_changes (
    id bigint generated always as identity primary key,
    fact text not null check (fact in ('fact_expenses', 'fact_budgets', 'alerts')),
    -- null: every month of the fact (a TRUNCATE, which has no rows to tell which).
    month date check (month = date_trunc('month', month)::date),
    txid xid8 not null default pg_current_xact_id(),
    changed_at timestamptz not null default now()
);

-- Every lake folder ever exported (its id is in its manifest.json) and the snapshot its last
-- export read. Change rows that every lake's snapshot has seen are deleted by the export.
create table lake_exports (
    lake_id text primary key,
    snapshot pg_snapshot not null,
    exported_at timestamptz not null default now()
);

comment on table lake_exports is
    'Each lake folder and the snapshot of its last export --lake (what it has seen).';
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
