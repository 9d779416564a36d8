-- Power BI fact table of monthly budgets: one row per budget (user, category, month).
-- Consumers: Power BI (fact_budgets), joined to dim_user, dim_category and dim_date.
{{ config(
    materialized='table',
    description='Every monthly budget, keyed to dim_user, dim_category and dim_date '
        ~ '(month).',
    columns={
        'budget_id': {'description': 'The budget.', 'tests': ['not_null']},
        'user_id': {
            'description': 'The user (dim_user).',
            'tests': [
                'not_null',
                {'relationships': {'to': 'dim_user', 'field': 'user_id'}},
            ],
        },
        'category_id': {
            'description': 'The category (dim_category).',
            'tests': [
                'not_null',
                {'relationships': {'to': 'dim_category', 'field': 'category_id'}},
            ],
        },
        'month': {
            'description': 'First day of the budgeted month (dim_date).',
            'tests': ['not_null', {'relationships': {'to': 'dim_date', 'field': 'date'}}],
        },
        'budget_amount': {
            'description': 'The budget for the month, numeric(12, 2).',
            'tests': ['not_null', 'non_negative'],
        },
    },
    unique_key=['budget_id'],
    order_by=['budget_id'],
) }}
with budgets as (
    select * from {{ ref('stg_budgets') }}
),

final as (
    select
        budgets.budget_id,
        budgets.user_id,
        budgets.category_id,
        budgets.month,
        budgets.budget_amount
    from budgets
)

select * from final
