-- Singular test: every budget that is over has at least one alert for its user, category
-- and month (the trigger, or in DuckDB the alert model, must have fired); rows are
-- failures.
with budgets as (
    select * from {{ ref('budget_vs_actual') }}
),

alerts as (
    select * from {{ ref('alerts') }}
),

alerted_keys as (
    select distinct
        alerts.user_id,
        alerts.category_id,
        alerts.month
    from alerts
)

select
    budgets.budget_id,
    budgets.user_id,
    budgets.category_id,
    budgets.month,
    budgets.budget_amount,
    budgets.spent
from budgets
left join alerted_keys
    on budgets.user_id = alerted_keys.user_id
    and budgets.category_id = alerted_keys.category_id
    and budgets.month = alerted_keys.month
where budgets.status = 'over'
    and alerted_keys.user_id is null
