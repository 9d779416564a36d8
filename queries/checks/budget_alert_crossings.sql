-- The budget alerts a row-by-row load would fire: one row per expense that takes its
-- user's spending in a category and month from at or below that month's budget to above
-- it.
-- Consumers: cli.py check (fills DuckDB's alerts), the alert unit tests and engine
-- parity.
with expenses as (
    select * from {{ source('expenses') }}
),

budgets as (
    select * from {{ source('budgets') }}
),

-- The total after each expense, adding expenses in id order (the order they were
-- inserted).
running_totals as (
    select
        cast(expenses.id as bigint) as expense_id,
        cast(expenses.user_id as bigint) as user_id,
        cast(expenses.category_id as bigint) as category_id,
        {{ month_start('expenses.date') }} as month,
        expenses.amount,
        sum(expenses.amount) over (
            partition by
                expenses.user_id,
                expenses.category_id,
                {{ month_start('expenses.date') }}
            order by expenses.id
            rows between unbounded preceding and current row
        ) as spent_after
    from expenses
),

monthly_budgets as (
    select
        cast(budgets.id as bigint) as budget_id,
        cast(budgets.user_id as bigint) as user_id,
        cast(budgets.category_id as bigint) as category_id,
        cast(budgets.month as date) as month,
        budgets.amount as budget_amount
    from budgets
),

crossings as (
    select
        running_totals.user_id,
        running_totals.category_id,
        running_totals.month,
        monthly_budgets.budget_id,
        running_totals.expense_id,
        running_totals.spent_after - running_totals.amount as spent_before,
        running_totals.spent_after,
        monthly_budgets.budget_amount
    from running_totals
    inner join monthly_budgets
        on running_totals.user_id = monthly_budgets.user_id
        and running_totals.category_id = monthly_budgets.category_id
        and running_totals.month = monthly_budgets.month
    where running_totals.spent_after > monthly_budgets.budget_amount
        and running_totals.spent_after - running_totals.amount
        <= monthly_budgets.budget_amount
),

final as (
    select
        crossings.user_id,
        crossings.category_id,
        crossings.month,
        crossings.budget_id,
        crossings.expense_id,
        {{ money('crossings.spent_before') }} as spent_before,
        {{ money('crossings.spent_after') }} as spent,
        {{ amount('crossings.budget_amount') }} as budget_amount
    from crossings
)

select * from final
