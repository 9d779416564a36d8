-- Budget alerts from a per-key spending total: budget_spending holds, for every user, category
-- and calendar month, the sum of that key's expenses. The statement-level triggers keep it up to
-- date from their transition tables (one upsert per statement, set-based), so a crossing is
-- decided from the key's total before and after the statement without re-reading expenses (V002
-- summed every touched key's expenses again: 1.27x a plain COPY of a million rows).
--
-- Same alerts as V002/V006: BUDGET_EXCEEDED when a key goes from at or below its budget to above
-- it, once per statement that crosses; budget inserts and updates are judged against the total.
--
-- Concurrency: the total's row lock replaces V002's advisory lock buckets. Every statement that
-- changes a key's spending, or its budget, updates the key's row (a budget change adds 0) in one
-- upsert, keys in sorted order (so two statements cannot deadlock), and holds the row locks until
-- it commits. A second writer of the key waits, then adds its delta to the committed total
-- (INSERT ... ON CONFLICT DO UPDATE works on the newest row version under READ COMMITTED), and
-- reads budgets in its next statement, with a fresh snapshot taken after the locks were granted.
-- So writers of one key are serialized and no alert is lost or duplicated. V006's rule stands:
-- a statement that raises spending or changes a budget outside READ COMMITTED is refused;
-- lowering statements (deletes, smaller amounts) only subtract and run at any level.
--
-- Security: the functions run as their owner (SECURITY DEFINER, with a fixed search_path), so a
-- role that may write expenses or budgets but not budget_spending or alerts (an API role under
-- row-level security) still keeps the totals and alerts whole. budget_alerts_fire is the only
-- writer of budget_spending besides these triggers and is not executable by PUBLIC.

-- The totals. A key with no row has spent nothing; rows of a key whose expenses are all gone stay
-- at 0 (no foreign keys: derived data, and a check per new key would cost a bulk load ~5%).
create table budget_spending (
    user_id bigint not null,
    category_id bigint not null,
    month date not null check (month = date_trunc('month', month)::date),
    spent numeric not null,
    primary key (user_id, category_id, month)
) with (
    -- Room on each page for a row's next version: every change is an update of a small row,
    -- and a same-page (HOT) update skips the index.
    fillfactor = 50
);

comment on table budget_spending is
    'Sum of expenses.amount per user, category and calendar month (first day), kept by the '
    'budget alert triggers (V010); read by budget_alerts_fire to decide crossings.';

-- Same signature as V002/V006, so callers and V005's setting stay; the body now applies every
-- non-zero delta to budget_spending and judges the keys that can cross: spending that went up,
-- and every key of a budget statement (budgets_before not null).
create or replace function budget_alerts_fire(
    user_ids bigint[],
    category_ids bigint[],
    months date[],
    spent_deltas numeric[],
    budgets_before numeric[]
) returns void
language plpgsql
security definer
set search_path = pg_catalog, public, pg_temp
set plan_cache_mode = force_custom_plan
as $$
declare
    judged_users bigint[];
    judged_categories bigint[];
    judged_months date[];
    judged_spent numeric[];
    judged_deltas numeric[];
    judged_befores numeric[];
    caller_nestloop text;
begin
    if coalesce(cardinality(user_ids), 0) = 0 then
        return;
    end if;

    -- READ UNCOMMITTED behaves as READ COMMITTED in PostgreSQL, so only these two are unsafe.
    -- Checked before any lock is taken, exactly when V006 refused: some key can cross.
    if current_setting('transaction_isolation') in ('repeatable read', 'serializable')
        and (budgets_before is not null or 0 < any(spent_deltas))
    then
        raise exception 'budget alerts need READ COMMITTED isolation, not %',
            upper(current_setting('transaction_isolation'))
            using
                errcode = 'feature_not_supported',
                detail = 'The alert check must see what concurrent sessions committed;'
                    ' a transaction-wide snapshot can miss it and lose an alert.',
                hint = 'Run the statement in a READ COMMITTED transaction (the default).';
    end if;

    -- Add each delta to its key's total, keys in sorted order; the row locks serialize writers
    -- of a key until commit. Kept: the total after this statement, for the keys to judge.
    with applied as (
        insert into budget_spending as totals (user_id, category_id, month, spent)
        select
            changes.user_id,
            changes.category_id,
            changes.month,
            changes.delta
        from unnest(user_ids, category_ids, months, spent_deltas)
            as changes (user_id, category_id, month, delta)
        order by
            changes.user_id,
            changes.category_id,
            changes.month
        on conflict (user_id, category_id, month)
            do update set spent = totals.spent + excluded.spent
        returning
            totals.user_id,
            totals.category_id,
            totals.month,
            totals.spent
    )

    select
        array_agg(applied.user_id),
        array_agg(applied.category_id),
        array_agg(applied.month),
        array_agg(applied.spent),
        array_agg(changes.delta),
        array_agg(changes.budget_before)
    into
        judged_users,
        judged_categories,
        judged_months,
        judged_spent,
        judged_deltas,
        judged_befores
    from applied
    inner join unnest(user_ids, category_ids, months, spent_deltas, budgets_before)
        as changes (user_id, category_id, month, delta, budget_before)
        on changes.user_id = applied.user_id
        and changes.category_id = applied.category_id
        and changes.month = applied.month
    where budgets_before is not null
        or changes.delta > 0;

    if judged_users is null then
        return;
    end if;

    -- A bulk statement (a COPY touches ~100,000 keys) reads the budgets in one hash join
    -- instead of one index probe per key; the caller's setting is put back right after.
    if cardinality(judged_users) > 10000 then
        caller_nestloop := current_setting('enable_nestloop');
        perform set_config('enable_nestloop', 'off', true);
    end if;

    -- A separate statement, hence a fresh snapshot taken after the row locks were granted: it
    -- sees every budget change committed by a writer that held one of these keys before us.
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
            round(keys.spent, 2),
            round(budgets.amount, 2)
        ),
        keys.spent,
        budgets.amount
    from unnest(
        judged_users, judged_categories, judged_months, judged_spent, judged_deltas, judged_befores
    ) as keys (user_id, category_id, month, spent, delta, budget_before)
    inner join budgets
        on budgets.user_id = keys.user_id
        and budgets.category_id = keys.category_id
        and budgets.year = extract(year from keys.month)::smallint
        and budgets.month = extract(month from keys.month)::smallint
    inner join categories
        on categories.id = keys.category_id
    -- exceeded after the statement, and not exceeded before it (no budget = not exceeded).
    where keys.spent > budgets.amount
        and not coalesce(
            keys.spent - keys.delta
                > case when budgets_before is null then budgets.amount else keys.budget_before end,
            false
        );

    if caller_nestloop is not null then
        perform set_config('enable_nestloop', caller_nestloop, true);
    end if;
end;
$$;

revoke execute on function budget_alerts_fire(bigint[], bigint[], date[], numeric[], numeric[])
    from public;

-- Inserted expenses: one delta per key (a key whose new rows sum to 0 changes nothing).
create or replace function expenses_budget_alert_insert() returns trigger
language plpgsql
security definer
set search_path = pg_catalog, public, pg_temp
as $$
declare
    user_ids bigint[];
    category_ids bigint[];
    months date[];
    deltas numeric[];
begin
    select array_agg(user_id), array_agg(category_id), array_agg(month), array_agg(delta)
    into user_ids, category_ids, months, deltas
    from (
        select
            user_id,
            category_id,
            date_trunc('month', date::timestamp)::date as month,
            sum(amount) as delta
        from new_rows
        group by 1, 2, 3
        having sum(amount) <> 0
    ) as changes;

    perform budget_alerts_fire(user_ids, category_ids, months, deltas, null);
    return null;
end;
$$;

-- An update can move an expense between keys: the key it leaves gets a negative delta, the key it
-- enters a positive one; both totals change, only the one that went up is judged.
create or replace function expenses_budget_alert_update() returns trigger
language plpgsql
security definer
set search_path = pg_catalog, public, pg_temp
as $$
declare
    user_ids bigint[];
    category_ids bigint[];
    months date[];
    deltas numeric[];
begin
    select array_agg(user_id), array_agg(category_id), array_agg(month), array_agg(delta)
    into user_ids, category_ids, months, deltas
    from (
        select user_id, category_id, month, sum(amount) as delta
        from (
            select user_id, category_id, date_trunc('month', date::timestamp)::date as month, amount
            from new_rows
            union all
            select user_id, category_id, date_trunc('month', date::timestamp)::date, -amount
            from old_rows
        ) as moves
        group by 1, 2, 3
        having sum(amount) <> 0
    ) as changes;

    perform budget_alerts_fire(user_ids, category_ids, months, deltas, null);
    return null;
end;
$$;

-- Deleted expenses lower their keys' totals (never an alert: spending went down).
create function expenses_budget_spending_delete() returns trigger
language plpgsql
security definer
set search_path = pg_catalog, public, pg_temp
as $$
declare
    user_ids bigint[];
    category_ids bigint[];
    months date[];
    deltas numeric[];
begin
    select array_agg(user_id), array_agg(category_id), array_agg(month), array_agg(delta)
    into user_ids, category_ids, months, deltas
    from (
        select
            user_id,
            category_id,
            date_trunc('month', date::timestamp)::date as month,
            -sum(amount) as delta
        from old_rows
        group by 1, 2, 3
        having sum(amount) <> 0
    ) as changes;

    perform budget_alerts_fire(user_ids, category_ids, months, deltas, null);
    return null;
end;
$$;

-- TRUNCATE removes every expense at once (and has no transition table): every total is 0.
create function expenses_budget_spending_truncate() returns trigger
language plpgsql
security definer
set search_path = pg_catalog, public, pg_temp
as $$
begin
    truncate budget_spending;
    return null;
end;
$$;

-- Budget statements: V002's functions, now running as their owner too.
alter function budgets_budget_alert_insert()
    security definer
    set search_path = pg_catalog, public, pg_temp;

alter function budgets_budget_alert_update()
    security definer
    set search_path = pg_catalog, public, pg_temp;

create trigger expenses_budget_spending_delete
    after delete on expenses
    referencing old table as old_rows
    for each statement execute function expenses_budget_spending_delete();

create trigger expenses_budget_spending_truncate
    after truncate on expenses
    for each statement execute function expenses_budget_spending_truncate();

-- Backfill from the expenses already there. The migration runs in one transaction and the lock
-- keeps writers out until it commits, so no expense is counted twice or missed.
lock table expenses in share row exclusive mode;

insert into budget_spending (user_id, category_id, month, spent)
select
    user_id,
    category_id,
    date_trunc('month', date::timestamp)::date as month,
    sum(amount) as spent
from expenses
group by 1, 2, 3;

-- Merged after V008 (the REST API): budget_spending is a per-user table, so tracker_api (which
-- V008's default privileges let touch it) sees only its user's totals, as V008 asks of every
-- later per-user table. The triggers above run as their owner, whom the policy lets see all.
select api_isolate_per_user('budget_spending', 'user_id');
