-- Close holes where bad data got in silently (issue 8):
-- 1. one date range for everything, 1900-01-01 to 2100-12-31 (expenses, budgets): a typo such
--    as year 0001 made dim_date millions of rows and the expense unfindable by month;
-- 2. a category name is never all digits, so `category delete 9` can only mean id 9;
-- 3. imported expenses remember the account (card, bank account) they came from, and the
--    import fingerprint includes it: the same purchase on two cards is two expenses.
-- Rows that already break rule 1 or 2 are not changed or deleted here: the migration stops,
-- names them and says how to fix them, and nothing is applied until they are fixed.

do $$
declare
    bad_expenses text;
    bad_budgets text;
    bad_categories text;
begin
    select string_agg(id::text || ' (' || date::text || ')', ', ' order by id)
    into bad_expenses
    from (
        select id, date
        from expenses
        where date not between date '1900-01-01' and date '2100-12-31'
        order by id
        limit 10
    ) as outside;
    if bad_expenses is not null then
        raise exception 'expenses % have dates outside 1900-01-01..2100-12-31: fix each with'
            ' `python cli.py expense update ID --date YYYY-MM-DD` (or delete it)', bad_expenses;
    end if;

    select string_agg(id::text || ' (' || year::text || ')', ', ' order by id)
    into bad_budgets
    from (
        select id, year
        from budgets
        where year > 2100
        order by id
        limit 10
    ) as outside;
    if bad_budgets is not null then
        raise exception 'budgets % are for years after 2100: delete each in psql'
            ' (delete from budgets where id = ...)', bad_budgets;
    end if;

    select string_agg(id::text || ' ("' || name || '")', ', ' order by id)
    into bad_categories
    from categories
    where btrim(name) ~ '^[0-9]+$';
    if bad_categories is not null then
        raise exception 'categories % have names that are all digits, which read as ids:'
            ' rename each in psql (update categories set name = ... where id = ...)',
            bad_categories;
    end if;
end;
$$;

alter table expenses
    add constraint expenses_date_range
    check (date between date '1900-01-01' and date '2100-12-31');

alter table budgets
    add constraint budgets_year_range
    check (year between 1900 and 2100);

alter table categories
    add constraint categories_name_not_a_number
    check (btrim(name) !~ '^[0-9]+$');

-- The statement's account (`import --account NAME`, default "default"). Null for expenses
-- added by hand. Rows imported before this migration came from the default account: the
-- default account's fingerprint is the one used before accounts existed, so re-importing
-- those statements still adds nothing.
alter table expenses
    add column import_account text;

update expenses
set import_account = 'default'
where import_fingerprint is not null;

alter table expenses
    add constraint expenses_import_account_with_fingerprint
    check ((import_fingerprint is null) = (import_account is null));
