-- Categories: the guard against deleting a category that expenses still use (first in
-- V001), and the unlinking of a deleted category's alerts (V016). Re-applied whenever
-- this file changes, so edit it in place.

-- Refuse deleting a category that expenses still use, with a reason a person can act on.
create or replace function categories_refuse_delete_in_use() returns trigger
language plpgsql as $$
declare
    in_use bigint;
begin
    select count(*) into in_use from expenses where category_id = old.id;
    if in_use > 0 then
        raise exception 'category "%" is used by % expense(s)', old.name, in_use
            using errcode = 'foreign_key_violation',
                  hint = 'Move its expenses to another category first.';
    end if;
    return old;
end;
$$;

create or replace trigger categories_refuse_delete_in_use
before delete on categories
for each row execute function categories_refuse_delete_in_use();

-- A deleted category's alerts stay as history, with category_id set to null (alerts have
-- no foreign key to categories since V016: a bulk load would pay a check per alert it
-- fires). No alert can be written for a category while this runs: alerts come from
-- expenses in the category, and a category that expenses use is refused above (or by
-- expenses' restrict foreign key, for expenses committed after this transaction's
-- snapshot). TRUNCATE of categories (it needs CASCADE) empties alerts too, as the foreign
-- key's cascade did before V016.
create or replace function categories_unlink_alerts() returns trigger
language plpgsql
security definer
set search_path = pg_catalog, public, pg_temp
as $$
begin
    if tg_op = 'TRUNCATE' then
        truncate alerts;
    else
        update alerts
        set category_id = null
        where category_id in (select old_rows.id from old_rows);
    end if;
    return null;
end;
$$;

create or replace trigger categories_unlink_alerts_delete
after delete on categories
referencing old table as old_rows
for each statement execute function categories_unlink_alerts();

create or replace trigger categories_unlink_alerts_truncate
after truncate on categories
for each statement execute function categories_unlink_alerts();
