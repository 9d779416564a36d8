-- record_expense(), api_authenticate() and api_record_expense(): recording one expense in
-- one round trip. The row type they return, recorded_expense, is V012's; why they exist
-- is told there. Re-applied whenever this file changes (a repeatable migration).

create or replace function record_expense(
    by_user_id bigint,
    by_user_email text,
    by_category_id bigint,
    by_category_name text,
    new_amount numeric,
    new_currency text,
    new_date date,
    new_note text
) returns setof recorded_expense
language plpgsql
as $$
declare
    refusal recorded_expense;
    found_user users;
    found_category categories;
    new_expense expenses;
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
        refusal.problem := 'user';
        return next refusal;
        return;
    end if;
    refusal.user_email := found_user.email;
    refusal.user_currency := found_user.currency;
    if new_currency is not null and new_currency <> found_user.currency then
        refusal.problem := 'currency';
        return next refusal;
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
        refusal.problem := 'category';
        return next refusal;
        return;
    end if;

    -- One statement, so the budget-alert trigger sees the expense once; the row comes back
    -- from RETURNING, defaults included, instead of being read again.
    insert into expenses (user_id, category_id, amount, currency, date, note)
    values (found_user.id, found_category.id, new_amount, found_user.currency, new_date, new_note)
    returning expenses.* into new_expense;

    -- A new statement, hence a snapshot that sees the alerts the insert's trigger recorded; they
    -- carry the transaction's start time (fired_at defaults to now()). The expense comes once
    -- per alert, and once with null alert columns when it fired none.
    return query
    select
        null::text,
        found_user.email,
        found_user.currency::text,
        new_expense.id,
        new_expense.date,
        new_expense.user_id,
        new_expense.category_id,
        found_category.name,
        new_expense.amount,
        new_expense.currency::text,
        new_expense.note,
        new_expense.created_at,
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
    from (select) as expense_row
    left join alerts
        on alerts.user_id = new_expense.user_id
        and alerts.fired_at = now()
    left join categories as alert_categories
        on alert_categories.id = alerts.category_id
    order by alerts.id;
end;
$$;

-- The token's user becomes the transaction-local tracker.user_id (null, hence nothing
-- visible, for an unknown or revoked token), then the role becomes api_role for the rest
-- of the transaction (SET LOCAL ROLE, as set_config); returns the user's id, or null. The
-- token is read first, with the caller's (login role's) rights. last_used_at is refreshed
-- at most once a minute and never waits for a row lock, so concurrent requests with one
-- token do not queue behind each other.
create or replace function api_authenticate(token_hash text, api_role text) returns bigint
language plpgsql
as $$
declare
    found_user_id bigint;
    found_token_id bigint;
    last_used timestamptz;
begin
    select api_tokens.id, api_tokens.user_id, api_tokens.last_used_at
    into found_token_id, found_user_id, last_used
    from api_tokens
    where api_tokens.token_hash = api_authenticate.token_hash
        and api_tokens.revoked_at is null;

    -- Only when it is due (most requests skip this statement altogether).
    if found_token_id is not null
        and (last_used is null or last_used < now() - interval '1 minute') then
        update api_tokens
        set last_used_at = now()
        where api_tokens.id in (
            select locked.id
            from api_tokens as locked
            where locked.id = found_token_id
                and (
                    locked.last_used_at is null
                    or locked.last_used_at < now() - interval '1 minute'
                )
            for update of locked skip locked
        );
    end if;

    perform set_config('tracker.user_id', coalesce(found_user_id::text, ''), true);
    perform set_config('role', api_role, true);
    return found_user_id;
end;
$$;

-- record_expense() for the user of a REST API token, in the same statement: on an
-- autocommit connection the statement is its transaction, so the user and the role it
-- sets end with it.
create or replace function api_record_expense(
    token_hash text,
    api_role text,
    by_user_id bigint,
    by_user_email text,
    by_category_id bigint,
    by_category_name text,
    new_amount numeric,
    new_currency text,
    new_date date,
    new_note text
) returns setof recorded_expense
language plpgsql
as $$
declare
    refusal recorded_expense;
begin
    if api_authenticate(token_hash, api_role) is null then
        refusal.problem := 'token';
        return next refusal;
        return;
    end if;
    return query
    select *
    from record_expense(
        by_user_id,
        by_user_email,
        by_category_id,
        by_category_name,
        new_amount,
        new_currency,
        new_date,
        new_note
    );
end;
$$;
