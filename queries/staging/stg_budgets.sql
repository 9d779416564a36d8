-- Monthly budgets, renamed for the models: one row per budget (user, category, month).
-- Consumers: budget_vs_actual, fact_budgets, dim_date.
{{ config(
    materialized='view',
    description='Monthly budgets per user and category, the month as its first day.',
    columns={
        'budget_id': 'The budget.',
        'user_id': 'The user the budget belongs to.',
        'category_id': 'The category the budget limits.',
        'month': 'First day of the budgeted month.',
        'budget_amount': 'The budget for the month.',
        'created_at': 'When the budget was created.',
        'updated_at': 'When the budget was last changed.',
    },
    unique_key=['budget_id'],
) }}
with budgets as (
    select * from {{ source('budgets') }}
),

final as (
    select
        cast(budgets.id as bigint) as budget_id,
        cast(budgets.user_id as bigint) as user_id,
        cast(budgets.category_id as bigint) as category_id,
        cast(budgets.month as date) as month,
        {{ amount('budgets.amount') }} as budget_amount,
        budgets.created_at,
        budgets.updated_at
    from budgets
)

select * from final
