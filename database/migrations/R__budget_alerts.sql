-- Budget alerts: one BUDGET_EXCEEDED alert each time a user's spending in a category and
-- month (a key) goes from at or below that month's budget to above it, whatever the
-- statement shape (single or multi-row insert, COPY, update, delete, budget change) and
-- however many sessions write at once. This file is the current definition of every
-- function and trigger involved; the table budget_spending (per-key totals) is V010's.
-- History: V002 (trigger), V005 (plan setting), V006 (isolation check), V010 (totals,
-- SECURITY DEFINER), V014 (one function per table instead of one per statement kind),
-- V016 (alerts' budget link kept here instead of by a foreign key).
--
-- Statement-level AFTER triggers with transition tables turn each statement into one
-- delta per key and hand them to budget_alerts_fire, the one place that keeps the totals
-- and decides a crossing, from the key's total before and after the statement, without
-- reading expenses again. It is set-based, so a bulk COPY costs one aggregate and one
-- upsert, not a query per row. Spending that only goes down (a delete, an update lowering
-- or moving an amount away) can never cross a budget upwards: it lowers the totals and is
-- never judged, so falling back under and crossing again fires again.
--
-- Concurrency: every statement that changes a key's spending, or its budget, updates the
-- key's budget_spending row (a budget change adds 0) in one upsert, keys in sorted order
-- (so two statements cannot deadlock), and holds the row locks until it commits. A second
-- writer of the key waits, then adds its delta to the committed total (INSERT ... ON
-- CONFLICT DO UPDATE works on the newest row version under READ COMMITTED), and reads
-- budgets in its next statement, with a fresh snapshot taken after the locks were
-- granted. So writers of one key are serialized and no alert is lost or duplicated. That
-- needs READ COMMITTED: a statement that raises spending or changes a budget at
-- REPEATABLE READ or SERIALIZABLE is refused (SSI only catches the skew when every writer
-- is serializable); lowering statements only subtract and run at any level.
--
-- Security: the functions run as their owner (SECURITY DEFINER, with a fixed
-- search_path), so a role that may write expenses or budgets but not budget_spending or
-- alerts (an API role under row-level security) still keeps the totals and alerts whole.
-- budget_alerts_fire is the only writer of budget_spending besides these triggers and is
-- not executable by PUBLIC.
--
-- Re-applied whenever this file changes (create or replace keeps owners, grants and the
-- triggers' identities), so edit it in place.

-- Apply deltas to the totals and record crossings for a set of keys. Each array position
-- is one distinct key (user_ids[i], category_ids[i], months[i] = first day of the month),
-- spent_deltas[i] the change the statement made to that key's spending. budgets_before is
-- null when the statement did not touch budgets (the current budget applies before and
-- after); otherwise budgets_before[i] is the key's budget before the statement, null if
-- it had none. Re-planned on every call: a generic plan cached while the tables were
-- small would otherwise be reused by a later bulk load in the same session (seen: a
-- 200,000-row COPY going from 3.6 s to over 60 s).
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
    judged_keys integer;
    caller_nestloop text;
begin
    if coalesce(cardinality(user_ids), 0) = 0 then
        return;
    end if;

    -- READ UNCOMMITTED behaves as READ COMMITTED in PostgreSQL, so only these two are
    -- unsafe. Checked before any lock is taken, exactly when V006 refused: some key can
    -- cross.
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

    -- Add each delta to its key's total, keys in sorted order; the row locks serialize
    -- writers of a key until commit. Nothing is returned: the next statement reads the
    -- totals back (a RETURNING joined back to the deltas cost a bulk load more than the
    -- lookup does).
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
        do update set spent = totals.spent + excluded.spent;

    -- The keys to judge: every key of a budget statement, the keys whose spending went up
    -- otherwise (spending that went down cannot cross upwards).
    if budgets_before is not null then
        judged_keys := cardinality(user_ids);
    else
        select count(*) into judged_keys
        from unnest(spent_deltas) as changes (delta)
        where changes.delta > 0;
    end if;

    if judged_keys = 0 then
        return;
    end if;

    -- A bulk statement (a COPY touches ~100,000 keys) reads the totals and the budgets in
    -- hash joins instead of one index probe per key; the caller's setting is put back
    -- right after.
    if judged_keys > 10000 then
        caller_nestloop := current_setting('enable_nestloop');
        perform set_config('enable_nestloop', 'off', true);
    end if;

    -- A separate statement, hence a fresh snapshot taken after the row locks were
    -- granted: it sees every budget change committed by a writer that held one of these
    -- keys before us. The totals it reads are this statement's own (our row locks keep
    -- every other writer of these keys waiting until we commit).
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
    from unnest(user_ids, category_ids, months, spent_deltas, budgets_before)
        as changes (user_id, category_id, month, delta, budget_before)
    inner join budget_spending as keys
        on keys.user_id = changes.user_id
        and keys.category_id = changes.category_id
        and keys.month = changes.month
    inner join budgets
        on budgets.user_id = keys.user_id
        and budgets.category_id = keys.category_id
        and budgets.month = keys.month
    inner join categories
        on categories.id = keys.category_id
    -- Judged (as counted above), exceeded after the statement, and not before it (no
    -- budget = not exceeded).
    where (budgets_before is not null or changes.delta > 0)
        and keys.spent > budgets.amount
        and not coalesce(
            keys.spent - changes.delta
                > case
                    when budgets_before is null then budgets.amount
                    else changes.budget_before
                end,
            false
        );

    if caller_nestloop is not null then
        perform set_config('enable_nestloop', caller_nestloop, true);
    end if;
end;
$$;

revoke execute on function budget_alerts_fire(
    bigint[], bigint[], date[], numeric[], numeric[]
)
from public;

-- Expense statements: the rows a statement added count positive, the rows it removed
-- negative; one delta per key (a key whose changes sum to 0 changes nothing). An update
-- can move an expense between keys: the key it leaves goes down, the key it enters up;
-- only a key that went up is judged. Each branch reads only the transition tables its
-- statement kind has.
create or replace function expenses_budget_alert() returns trigger
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
    if tg_op = 'INSERT' then
        select
            array_agg(user_id),
            array_agg(category_id),
            array_agg(month),
            array_agg(delta)
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
    elsif tg_op = 'UPDATE' then
        select
            array_agg(user_id),
            array_agg(category_id),
            array_agg(month),
            array_agg(delta)
        into user_ids, category_ids, months, deltas
        from (
            select user_id, category_id, month, sum(amount) as delta
            from (
                select
                    user_id,
                    category_id,
                    date_trunc('month', date::timestamp)::date as month,
                    amount
                from new_rows
                union all
                select
                    user_id,
                    category_id,
                    date_trunc('month', date::timestamp)::date,
                    -amount
                from old_rows
            ) as moves
            group by 1, 2, 3
            having sum(amount) <> 0
        ) as changes;
    else
        select
            array_agg(user_id),
            array_agg(category_id),
            array_agg(month),
            array_agg(delta)
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
    end if;

    perform budget_alerts_fire(user_ids, category_ids, months, deltas, null);
    return null;
end;
$$;

-- TRUNCATE removes every expense at once (and has no transition table): every total is 0.
create or replace function expenses_budget_spending_truncate() returns trigger
language plpgsql
security definer
set search_path = pg_catalog, public, pg_temp
as $$
begin
    truncate budget_spending;
    return null;
end;
$$;

-- Budget statements change no spending (delta 0) but every key they touch is judged. The
-- budget a key had before is the old row with the same key (not the same id): a row moved
-- to another user, category or month leaves its old key and brings no "before" to the new
-- one; an inserted budget had none. A key a row left is locked and judged like the others
-- (it finds no budget now, unless another row moved into it).
create or replace function budgets_budget_alert() returns trigger
language plpgsql
security definer
set search_path = pg_catalog, public, pg_temp
as $$
declare
    user_ids bigint[];
    category_ids bigint[];
    months date[];
    deltas numeric[];
    befores numeric[];
begin
    if tg_op = 'INSERT' then
        select
            array_agg(user_id),
            array_agg(category_id),
            array_agg(month),
            array_agg(0::numeric),
            array_agg(null::numeric)
        into user_ids, category_ids, months, deltas, befores
        from new_rows;
    else
        -- The keys the rows have now, and the keys moved rows left: those are locked too
        -- (judged, they find no budget), so a writer still holding a left key, with an
        -- alert linked to the moved budget, finishes before a later delete of that budget
        -- unlinks its alerts (budgets_unlink_alerts locks only the keys deleted rows have).
        select
            array_agg(touched.user_id),
            array_agg(touched.category_id),
            array_agg(touched.month),
            array_agg(0::numeric),
            array_agg(old_rows.amount)
        into user_ids, category_ids, months, deltas, befores
        from (
            select new_rows.user_id, new_rows.category_id, new_rows.month
            from new_rows
            union
            select old_rows.user_id, old_rows.category_id, old_rows.month
            from old_rows
        ) as touched
        left join old_rows
            on old_rows.user_id = touched.user_id
            and old_rows.category_id = touched.category_id
            and old_rows.month = touched.month;
    end if;

    perform budget_alerts_fire(user_ids, category_ids, months, deltas, befores);
    return null;
end;
$$;

-- Budget deletes keep the budget's alerts as history, unlinked (alerts.budget_id has no
-- foreign key since V016, so that a bulk load pays no per-row check for each alert it
-- fires). The deleted keys' totals rows are locked first, as every budget and spending
-- statement locks them (delta 0, nothing judged): a writer that fired an alert for one of
-- these keys commits before the unlinking statement takes its snapshot, so that statement
-- sees and unlinks its alert; a writer that comes after waits, then finds no budget and
-- fires nothing. Outside READ COMMITTED the upsert itself raises a serialization failure
-- when a writer changed the key after this transaction's snapshot, so nothing is missed
-- there either. TRUNCATE of budgets (it needs CASCADE: budget_transfers reference it)
-- empties alerts too, as the foreign key's cascade did before V016.
create or replace function budgets_unlink_alerts() returns trigger
language plpgsql
security definer
set search_path = pg_catalog, public, pg_temp
as $$
declare
    user_ids bigint[];
    category_ids bigint[];
    months date[];
    zeros numeric[];
begin
    if tg_op = 'TRUNCATE' then
        truncate alerts;
        return null;
    end if;

    select
        array_agg(user_id),
        array_agg(category_id),
        array_agg(month),
        array_agg(0::numeric)
    into user_ids, category_ids, months, zeros
    from old_rows;
    perform budget_alerts_fire(user_ids, category_ids, months, zeros, null);

    update alerts
    set budget_id = null
    where budget_id in (select old_rows.id from old_rows);
    return null;
end;
$$;

create or replace trigger expenses_budget_alert_insert
after insert on expenses
referencing new table as new_rows
for each statement execute function expenses_budget_alert();

create or replace trigger expenses_budget_alert_update
after update on expenses
referencing old table as old_rows new table as new_rows
for each statement execute function expenses_budget_alert();

create or replace trigger expenses_budget_spending_delete
after delete on expenses
referencing old table as old_rows
for each statement execute function expenses_budget_alert();

create or replace trigger expenses_budget_spending_truncate
after truncate on expenses
for each statement execute function expenses_budget_spending_truncate();

create or replace trigger budgets_budget_alert_insert
after insert on budgets
referencing new table as new_rows
for each statement execute function budgets_budget_alert();

create or replace trigger budgets_budget_alert_update
after update on budgets
referencing old table as old_rows new table as new_rows
for each statement execute function budgets_budget_alert();

create or replace trigger budgets_unlink_alerts_delete
after delete on budgets
referencing old table as old_rows
for each statement execute function budgets_unlink_alerts();

create or replace trigger budgets_unlink_alerts_truncate
after truncate on budgets
for each statement execute function budgets_unlink_alerts();
