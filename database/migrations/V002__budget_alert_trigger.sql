-- Budget alerts: one BUDGET_EXCEEDED alert each time a user's spending in a category and month
-- goes from at or below that month's budget to above it, whatever the statement shape (single or
-- multi-row insert, COPY, update, budget change) and however many sessions write at once.
--
-- Statement-level AFTER triggers with transition tables turn each statement into per-key deltas
-- (key = user, category, first day of the month) and hand them to budget_alerts_fire, the one
-- place that decides a crossing. It is set-based, so a bulk COPY costs one aggregate, not a query
-- per row.
--
-- Concurrency: budget_alerts_fire first takes transaction-scoped advisory locks on the keys'
-- buckets, then reads the totals in a later statement. Under READ COMMITTED (the default, and
-- what this guarantee assumes) every statement of a volatile PL/pgSQL function takes a fresh
-- snapshot, so that read sees everything the previous lock holder committed: writers of one key
-- are serialized in lock order, and no alert is lost or duplicated. Under REPEATABLE READ or
-- SERIALIZABLE the snapshot is the transaction's first one and concurrent writers can miss each
-- other's spending.
--
-- Spending that only goes down (a delete, an update lowering or moving an amount away) can never
-- cross a budget upwards, so it is neither evaluated nor locked: the next increase is judged
-- against the totals as they are then, so falling back under and crossing again fires again.

-- Decide and record crossings for a set of keys. Each array position is one distinct key
-- (user_ids[i], category_ids[i], months[i] = first day of the month), spent_deltas[i] the change
-- the statement made to that key's spending. budgets_before is null when the statement did not
-- touch budgets (the current budget applies before and after); otherwise budgets_before[i] is the
-- key's budget before the statement, null if it had none.
create function budget_alerts_fire(
    user_ids bigint[],
    category_ids bigint[],
    months date[],
    spent_deltas numeric[],
    budgets_before numeric[]
) returns void
language plpgsql as $$
begin
    if coalesce(cardinality(user_ids), 0) = 0 then
        return;
    end if;

    -- 1024 buckets under a fixed class id (two-int key form, so it never meets the migration
    -- runner's single-bigint lock), taken in sorted order so two statements cannot deadlock on
    -- each other's bucket sets. The month enters the hash as a day number, not as text, so the
    -- bucket does not depend on the session's DateStyle. A bulk load holds at most 1024 entries
    -- of the shared lock table until it commits.
    perform pg_advisory_xact_lock(20250501, bucket)
    from (
        select distinct
            hashtext(concat_ws('/', user_id, category_id, month - date '2000-01-01')) & 1023
                as bucket
        from unnest(user_ids, category_ids, months) as k (user_id, category_id, month)
        order by bucket
    ) as buckets;

    -- A separate statement, hence a fresh snapshot taken after the locks were granted.
    insert into alerts (
        user_id, budget_id, category_id, month, alert_type, message, spent, budget_amount
    )
    select
        k.user_id,
        b.id,
        k.category_id,
        k.month,
        'BUDGET_EXCEEDED',
        format(
            'Budget exceeded for %s for %s. Spent: %s / %s',
            c.name, to_char(k.month::timestamp, 'FMMonth YYYY'), round(t.spent, 2), round(b.amount, 2)
        ),
        t.spent,
        b.amount
    from unnest(user_ids, category_ids, months, spent_deltas, budgets_before)
        as k (user_id, category_id, month, delta, budget_before)
    join budgets as b
        on b.user_id = k.user_id
        and b.category_id = k.category_id
        and b.year = extract(year from k.month)::smallint
        and b.month = extract(month from k.month)::smallint
    join categories as c on c.id = k.category_id
    cross join lateral (
        select coalesce(sum(e.amount), 0) as spent
        from expenses as e
        where e.user_id = k.user_id
            and e.category_id = k.category_id
            and e.date >= k.month
            and e.date < (k.month + interval '1 month')::date
    ) as t
    -- exceeded after the statement, and not exceeded before it (no budget = not exceeded).
    where t.spent > b.amount
        and not coalesce(
            t.spent - k.delta
                > case when budgets_before is null then b.amount else k.budget_before end,
            false
        );
end;
$$;

create function expenses_budget_alert_insert() returns trigger
language plpgsql as $$
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
        having sum(amount) > 0
    ) as changes;

    perform budget_alerts_fire(user_ids, category_ids, months, deltas, null);
    return null;
end;
$$;

-- An update can move an expense between keys: the key it leaves gets a negative delta, the key it
-- enters a positive one.
create function expenses_budget_alert_update() returns trigger
language plpgsql as $$
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
        having sum(amount) > 0
    ) as changes;

    perform budget_alerts_fire(user_ids, category_ids, months, deltas, null);
    return null;
end;
$$;

create function budgets_budget_alert_insert() returns trigger
language plpgsql as $$
declare
    user_ids bigint[];
    category_ids bigint[];
    months date[];
    deltas numeric[];
    befores numeric[];
begin
    select
        array_agg(user_id),
        array_agg(category_id),
        array_agg(make_date(year, month, 1)),
        array_agg(0::numeric),
        array_agg(null::numeric)
    into user_ids, category_ids, months, deltas, befores
    from new_rows;

    perform budget_alerts_fire(user_ids, category_ids, months, deltas, befores);
    return null;
end;
$$;

-- The budget a key had before is the old row with the same key (not the same id): a row moved
-- to another user, category or month leaves its old key and brings no "before" to the new one.
create function budgets_budget_alert_update() returns trigger
language plpgsql as $$
declare
    user_ids bigint[];
    category_ids bigint[];
    months date[];
    deltas numeric[];
    befores numeric[];
begin
    select
        array_agg(n.user_id),
        array_agg(n.category_id),
        array_agg(make_date(n.year, n.month, 1)),
        array_agg(0::numeric),
        array_agg(o.amount)
    into user_ids, category_ids, months, deltas, befores
    from new_rows as n
    left join old_rows as o
        on o.user_id = n.user_id
        and o.category_id = n.category_id
        and o.year = n.year
        and o.month = n.month;

    perform budget_alerts_fire(user_ids, category_ids, months, deltas, befores);
    return null;
end;
$$;

create trigger expenses_budget_alert_insert
    after insert on expenses
    referencing new table as new_rows
    for each statement execute function expenses_budget_alert_insert();

create trigger expenses_budget_alert_update
    after update on expenses
    referencing old table as old_rows new table as new_rows
    for each statement execute function expenses_budget_alert_update();

create trigger budgets_budget_alert_insert
    after insert on budgets
    referencing new table as new_rows
    for each statement execute function budgets_budget_alert_insert();

create trigger budgets_budget_alert_update
    after update on budgets
    referencing old table as old_rows new table as new_rows
    for each statement execute function budgets_budget_alert_update();
