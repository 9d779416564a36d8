-- Users: the deletion of a deleted user's alerts (V017). Re-applied whenever this file
-- changes, so edit it in place.

-- A deleted user's alerts go with them, as alerts.user_id's "on delete cascade" did
-- before V017 (alerts have no foreign key to users since then: a bulk load would pay a
-- check per alert it fires). This runs after the foreign keys' cascades, which wait for
-- every uncommitted writer of the user's expenses and budgets, the only statements that
-- write alerts; this statement's snapshot, taken after them, sees their alerts (V017
-- explains why). TRUNCATE of users (it needs CASCADE) empties alerts too.
create or replace function users_delete_alerts() returns trigger
language plpgsql
security definer
set search_path = pg_catalog, public, pg_temp
as $$
begin
    if tg_op = 'TRUNCATE' then
        truncate alerts;
    else
        delete from alerts
        where user_id in (select old_rows.id from old_rows);
    end if;
    return null;
end;
$$;

create or replace trigger users_delete_alerts_delete
after delete on users
referencing old table as old_rows
for each statement execute function users_delete_alerts();

create or replace trigger users_delete_alerts_truncate
after truncate on users
for each statement execute function users_delete_alerts();
