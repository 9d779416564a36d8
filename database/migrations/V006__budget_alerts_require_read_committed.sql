-- Budget alerts refuse to run outside READ COMMITTED (fix forward: V002 is applied). Their lock-
-- then-read guarantee needs a fresh snapshot per statement; under REPEATABLE READ, or SERIALIZABLE
-- with any READ COMMITTED writer, two concurrent crossings ended over budget with no alert.

-- Same function as V002 (+ V005's plan setting, which create or replace would otherwise drop),
-- with the isolation check first once there are keys to judge: a delete or a lowering update
-- passes no keys and runs at any level; any spending increase or budget change is refused, even
-- on a key with no budget yet, because a budget inserted concurrently would be missed the same
-- way. SERIALIZABLE is refused too: SSI only catches the skew when every writer is serializable
-- (tested: both serializable gives one serialization failure), and the default here is READ
-- COMMITTED, whose writes a serializable snapshot still misses. The error code is not 40001 so
-- that retry loops do not retry a statement that can never succeed at that level.
create or replace function budget_alerts_fire(
    user_ids bigint[],
    category_ids bigint[],
    months date[],
    spent_deltas numeric[],
    budgets_before numeric[]
) returns void
language plpgsql
set plan_cache_mode = force_custom_plan
as $$
begin
    if coalesce(cardinality(user_ids), 0) = 0 then
        return;
    end if;

    -- READ UNCOMMITTED behaves as READ COMMITTED in PostgreSQL, so only these two are unsafe.
    if current_setting('transaction_isolation') in ('repeatable read', 'serializable') then
        raise exception 'budget alerts need READ COMMITTED isolation, not %',
            upper(current_setting('transaction_isolation'))
            using
                errcode = 'feature_not_supported',
                detail = 'The alert check must see what concurrent sessions committed;'
                    ' a transaction-wide snapshot can miss it and lose an alert.',
                hint = 'Run the statement in a READ COMMITTED transaction (the default).';
    end if;

    -- 1024 buckets under a fixed class id (two-int key form, so it never meets the migration
    -- runner's single-bigint lock), taken in sorted order so two statements cannot deadlock on
    -- each other's bucket sets. The month enters the hash as a day number, not as text, so the
    -- bucket does not depend on the session's DateStyle. A bulk load holds at most 1024 entries
    -- of the shared lock table until it commits.
    perform pg_advisory_xact_lock(20250501, bucket)
    from (
        select distinct
            hashtext(
                concat_ws('/', keys.user_id, keys.category_id, keys.month - date '2000-01-01')
            ) & 1023 as bucket
        from unnest(user_ids, category_ids, months) as keys (user_id, category_id, month)
        order by bucket
    ) as buckets;

    -- A separate statement, hence a fresh snapshot taken after the locks were granted.
    insert into alerts (
        user_id,
        budget_id,
        category_id,
        month,
        alert_type,
        message,
        spent,
        budget_amount
    )
    select
        keys.user_id,
        budgets.id,
        keys.category_id,
        keys.month,
        'BUDGET_EXCEEDED',
        format(
            'Budget exceeded for %s for %s. Spent: %s / %s',
            categories.name,
            to_char(keys.month::timestamp, 'FMMonth YYYY'),
            round(totals.spent, 2),
            round(budgets.amount, 2)
        ),
        totals.spent,
        budgets.amount
    from unnest(user_ids, category_ids, months, spent_deltas, budgets_before)
        as keys (user_id, category_id, month, delta, budget_before)
    inner join budgets
        on budgets.user_id = keys.user_id
        and budgets.category_id = keys.category_id
        and budgets.year = extract(year from keys.month)::smallint
        and budgets.month = extract(month from keys.month)::smallint
    inner join categories
        on categories.id = keys.category_id
    cross join lateral (
        select
            coalesce(sum(expenses.amount), 0) as spent
        from expenses
        where expenses.user_id = keys.user_id
            and expenses.category_id = keys.category_id
            and expenses.date >= keys.month
            and expenses.date < (keys.month + interval '1 month')::date
    ) as totals
    -- exceeded after the statement, and not exceeded before it (no budget = not exceeded).
    where totals.spent > budgets.amount
        and not coalesce(
            totals.spent - keys.delta
                > case when budgets_before is null then budgets.amount else keys.budget_before end,
            false
        );
end;
$$;
