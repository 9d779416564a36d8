-- The lake's change log also records which ids a statement touched in each month (the
-- smallest and the largest), so an incremental `export --lake` reads from PostgreSQL only
-- the rows in that id range of a changed month (by primary key) and takes the rest of the
-- month from the partition file it already has, instead of re-reading the whole month
-- (tracker/pipeline/lake.py). The range is a superset of the touched rows: rows of the
-- month outside every logged range were not written since the lake's last snapshot.
--
-- Rows logged before this migration have no ids (null): the export re-reads those months
-- whole, as it did. A TRUNCATE still logs month null: the whole fact.

alter table lake_changes
    add column first_id bigint,
    add column last_id bigint,
    add constraint lake_changes_id_range check (first_id <= last_id);

comment on column lake_changes.first_id is
    'Smallest id the statement touched in the month; null: re-read the whole month.';
comment on column lake_changes.last_id is
    'Largest id the statement touched in the month; null: re-read the whole month.';

-- One row per statement and month, as before (group by instead of distinct: the same one
-- pass over the transition tables). An update that moves a row logs its id in both months.
create or replace function lake_track_expenses() returns trigger
language plpgsql
security definer
set search_path = pg_catalog, public
as $$
begin
    if tg_op = 'INSERT' then
        insert into public.lake_changes (fact, month, first_id, last_id)
        select 'fact_expenses', date_trunc('month', new_rows.date)::date, min(new_rows.id),
            max(new_rows.id)
        from new_rows
        group by 2;
    elsif tg_op = 'UPDATE' then
        insert into public.lake_changes (fact, month, first_id, last_id)
        select 'fact_expenses', touched.month, min(touched.id), max(touched.id)
        from (
            select date_trunc('month', old_rows.date)::date as month, old_rows.id from old_rows
            union all
            select date_trunc('month', new_rows.date)::date, new_rows.id from new_rows
        ) as touched
        group by touched.month;
    else
        insert into public.lake_changes (fact, month, first_id, last_id)
        select 'fact_expenses', date_trunc('month', old_rows.date)::date, min(old_rows.id),
            max(old_rows.id)
        from old_rows
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
        select 'fact_budgets', make_date(new_rows.year, new_rows.month, 1), min(new_rows.id),
            max(new_rows.id)
        from new_rows
        group by 2;
    elsif tg_op = 'UPDATE' then
        insert into public.lake_changes (fact, month, first_id, last_id)
        select 'fact_budgets', touched.month, min(touched.id), max(touched.id)
        from (
            select make_date(old_rows.year, old_rows.month, 1) as month, old_rows.id
            from old_rows
            union all
            select make_date(new_rows.year, new_rows.month, 1), new_rows.id from new_rows
        ) as touched
        group by touched.month;
    else
        insert into public.lake_changes (fact, month, first_id, last_id)
        select 'fact_budgets', make_date(old_rows.year, old_rows.month, 1), min(old_rows.id),
            max(old_rows.id)
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
