-- Each monthly budget against what was spent in its category and month: one row per
-- budget.
-- Consumers: Power BI (budget_vs_actual), psql users.
{{ config(
    materialized='table',
    description='Every budget with the spending of its user, category and month, '
        ~ 'what remains, and a status.',
    columns={
        'budget_id': {'description': 'The budget.', 'tests': ['not_null']},
        'user_id': {
            'description': 'The user.',
            'tests': [
                'not_null',
                {'relationships': {'to': 'dim_user', 'field': 'user_id'}},
            ],
        },
        'month': {
            'description': 'First day of the budgeted month.',
            'tests': ['not_null', {'relationships': {'to': 'dim_date', 'field': 'date'}}],
        },
        'category_id': {
            'description': 'The category.',
            'tests': [
                'not_null',
                {'relationships': {'to': 'dim_category', 'field': 'category_id'}},
            ],
        },
        'category': {'description': 'Category name.', 'tests': ['not_null']},
        'budget_amount': {
            'description': 'The budget for the month, numeric(12, 2).',
            'tests': ['not_null', 'non_negative'],
        },
        'spent': {
            'description': 'Spent in the category and month, numeric(38, 2); 0 when '
                ~ 'nothing was spent.',
            'tests': ['not_null', 'non_negative'],
        },
        'remaining': {
            'description': 'Budget minus spent, numeric(38, 2); negative when over '
                ~ 'budget.',
            'tests': ['not_null'],
        },
        'pct_used': {
            'description': 'Spent as a percentage of the budget, 1 decimal, rounded '
                ~ 'half away from zero; null when the budget is 0.',
        },
        'status': {
            'description': 'under: below 80 % of the budget; near: from 80 % up to '
                ~ 'and including 100 %; over: above 100 %. Compared exactly, not on '
                ~ 'the rounded pct_used. A budget of 0 is near while nothing is spent '
                ~ '(it is at its limit) and over once anything is.',
            'tests': [
                'not_null',
                {'accepted_values': {'values': ['under', 'near', 'over']}},
            ],
        },
    },
    unique_key=['budget_id'],
    order_by=['user_id', 'month', 'category_id'],
) }}
with budgets as (
    select * from {{ ref('stg_budgets') }}
),

expenses as (
    select * from {{ ref('stg_expenses') }}
),

categories as (
    select * from {{ ref('stg_categories') }}
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
),

budget_spending as (
    select
        budgets.budget_id,
        budgets.user_id,
        budgets.month,
        budgets.category_id,
        categories.category,
        budgets.budget_amount,
        coalesce(spending.spent, 0) as spent
    from budgets
    inner join categories
        on budgets.category_id = categories.category_id
    left join spending
        on budgets.user_id = spending.user_id
        and budgets.category_id = spending.category_id
        and budgets.month = spending.month
),

final as (
    select
        budget_spending.budget_id,
        budget_spending.user_id,
        budget_spending.month,
        budget_spending.category_id,
        budget_spending.category,
        budget_spending.budget_amount,
        {{ money('budget_spending.spent') }} as spent,
        {{ money('budget_spending.budget_amount - budget_spending.spent') }} as remaining,
        {{ round_div('budget_spending.spent * 100', 'budget_spending.budget_amount', 1) }}
            as pct_used,
        case
            when budget_spending.spent > budget_spending.budget_amount then 'over'
            when budget_spending.spent * 100
                >= budget_spending.budget_amount * {{ var('near_threshold_pct', 80) }}
                then 'near'
            else 'under'
        end as status
    from budget_spending
)

select * from final
