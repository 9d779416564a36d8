-- Singular test: a user's monthly total and count equal the sums over their categories in
-- top_categories; rows returned are failures (one per user and month that disagree).
with monthly as (
    select * from {{ ref('monthly_totals') }}
),

categories as (
    select * from {{ ref('top_categories') }}
),

category_sums as (
    select
        categories.user_id,
        categories.month,
        sum(categories.total_spent) as total_spent,
        sum(categories.expense_count) as expense_count
    from categories
    group by
        categories.user_id,
        categories.month
)

select
    coalesce(monthly.user_id, category_sums.user_id) as user_id,
    coalesce(monthly.month, category_sums.month) as month,
    monthly.total_spent,
    category_sums.total_spent as category_total_spent,
    monthly.expense_count,
    category_sums.expense_count as category_expense_count
from monthly
full outer join category_sums
    on monthly.user_id = category_sums.user_id
    and monthly.month = category_sums.month
where monthly.user_id is null
    or category_sums.user_id is null
    or monthly.total_spent <> category_sums.total_spent
    or monthly.expense_count <> category_sums.expense_count
