-- Singular test: the alert trigger's per-key totals (budget_spending, V010) equal the sum
-- of the expenses of each user, category and month, so alerts decided from them are
-- right; rows returned are failures (one per key whose total drifted). A key without a
-- row has spent 0.
with totals as (
    select * from {{ source('budget_spending') }}
),

expenses as (
    select * from {{ ref('stg_expenses') }}
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
    coalesce(totals.user_id, spending.user_id) as user_id,
    coalesce(totals.category_id, spending.category_id) as category_id,
    coalesce(totals.month, spending.month) as month,
    totals.spent as recorded_spent,
    coalesce(spending.spent, 0) as expected_spent
from totals
full outer join spending
    on totals.user_id = spending.user_id
    and totals.category_id = spending.category_id
    and totals.month = spending.month
where coalesce(totals.spent, 0) <> coalesce(spending.spent, 0)
