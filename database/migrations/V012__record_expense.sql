-- Recording one expense in one round trip: record_expense() finds the user and the category,
-- checks the currency, inserts the row and returns it with the budget alerts the insert fired.
-- `expense add` and both POST endpoints of the REST API call it (tracker/everyday/expenses.py);
-- before, that took six statements, each waiting on the last (user, category, insert, read back,
-- alerts), which under 16 concurrent API clients was most of a request's time.
--
-- It runs with the caller's rights (security invoker), so row-level security binds it as it binds
-- any statement: inside an API request (role tracker_api) a user other than the caller's does not
-- exist. A refusal is not an error but a row naming the problem ('user', 'currency' or
-- 'category') and writing nothing, so that the caller words the message (the CLI's messages live
-- in Python) and a pipelined transaction goes on to its commit.
--
-- The user is given by id or by e-mail (any case); with neither, it is the API transaction's user
-- (api_user_id()). The category is given by id or by name (exact, else the one category with that
-- name in any letter case). The amount, date and currency were checked and the note cleaned by
-- the caller.
create function record_expense(
    by_user_id bigint,
    by_user_email text,
    by_category_id bigint,
    by_category_name text,
    new_amount numeric,
    new_currency text,
    new_date date,
    new_note text
) returns table (
    problem text,
    user_email text,
    user_currency text,
    id bigint,
    date date,
    user_id bigint,
    category_id bigint,
    category text,
    amount numeric,
    currency text,
    note text,
    created_at timestamptz,
    alert_id bigint,
    alert_user_email text,
    alert_category text,
    alert_month date,
    alert_alert_type text,
    alert_message text,
    alert_spent numeric,
    alert_budget_amount numeric,
    alert_fired_at timestamptz,
    alert_acknowledged_at timestamptz
)
language plpgsql
as $$
#variable_conflict use_column
declare
    found_user users;
    found_category categories;
    new_id bigint;
begin
    if by_user_email is not null then
        select users.* into found_user
        from users
        where lower(users.email) = lower(by_user_email)
        order by users.id
        limit 1;
    else
        select users.* into found_user
        from users
        where users.id = coalesce(by_user_id, api_user_id());
    end if;
    if found_user.id is null then
        problem := 'user';
        return next;
        return;
    end if;
    user_email := found_user.email;
    user_currency := found_user.currency;
    if new_currency is not null and new_currency <> found_user.currency then
        problem := 'currency';
        return next;
        return;
    end if;

    if by_category_id is not null then
        select categories.* into found_category
        from categories
        where categories.id = by_category_id;
    else
        select categories.* into found_category
        from categories
        where categories.name = by_category_name;
        if found_category.id is null then
            select categories.* into found_category
            from categories
            where lower(categories.name) = lower(by_category_name)
                and (
                    select count(*)
                    from categories as same
                    where lower(same.name) = lower(by_category_name)
                ) = 1;
        end if;
    end if;
    if found_category.id is null then
        problem := 'category';
        return next;
        return;
    end if;

    -- One statement, so the budget-alert trigger sees the expense once.
    insert into expenses (user_id, category_id, amount, currency, date, note)
    values (found_user.id, found_category.id, new_amount, found_user.currency, new_date, new_note)
    returning expenses.id into new_id;

    -- A new statement, hence a snapshot that sees the alerts the insert's trigger recorded; they
    -- carry the transaction's start time (fired_at defaults to now()).
    return query
    select
        null::text,
        found_user.email,
        found_user.currency::text,
        expenses.id,
        expenses.date,
        expenses.user_id,
        expenses.category_id,
        found_category.name,
        expenses.amount,
        expenses.currency::text,
        expenses.note,
        expenses.created_at,
        alerts.id,
        found_user.email,
        alert_categories.name,
        alerts.month,
        alerts.alert_type,
        alerts.message,
        round(alerts.spent, 2),
        alerts.budget_amount,
        alerts.fired_at,
        alerts.acknowledged_at
    from expenses
    left join alerts
        on alerts.user_id = expenses.user_id
        and alerts.fired_at = now()
    left join categories as alert_categories
        on alert_categories.id = alerts.category_id
    where expenses.id = new_id
    order by alerts.id;
end;
$$;
