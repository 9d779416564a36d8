-- Singular test: each budget's spent equals the sum of its key's rows in fact_expenses,
-- and remaining is budget minus spent; rows returned are failures (one per budget).
with budgets as (
    select * from {{ ref('budget_vs_actual') }}
),

expenses as (
    select * from {{ ref('fact_expenses') }}
),

spending as (
    select
        expenses.user_id,
        expenses.category_id,
        expenses.month,
        sum(expenses.amount) as spent
    from expenses
    group by
        expenses.user_id,
        expenses.category_id,
        expenses.month
)

select
    budgets.budget_id,
    budgets.spent,
    coalesce(spending.spent, 0) as expected_spent,
    budgets.remaining
from budgets
left join spending
    on budgets.user_id = spending.user_id
    and budgets.category_id = spending.category_id
    and budgets.month = spending.month
where budgets.spent <> coalesce(spending.spent, 0)
    or budgets.remaining <> budgets.budget_amount - budgets.spent
