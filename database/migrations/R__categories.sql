-- Categories: the guard against deleting a category that expenses still use (first in
-- V001). Re-applied whenever this file changes, so edit it in place.

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
