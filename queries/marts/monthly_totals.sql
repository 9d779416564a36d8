-- Monthly spending per user: one row per user and month with at least one expense.
-- Consumers: Power BI (monthly_totals), psql users, rolling_trend.
{{ config(
    materialized='table',
    description='Total spent and number of expenses per user and calendar month.',
    columns={
        'user_id': {
            'description': 'The user.',
            'tests': [
                'not_null',
                {'relationships': {'to': 'dim_user', 'field': 'user_id'}},
            ],
        },
        'month': {
            'description': 'First day of the month.',
            'tests': ['not_null', {'relationships': {'to': 'dim_date', 'field': 'date'}}],
        },
        'total_spent': {
            'description': 'Sum of the month\'s amounts, numeric(38, 2).',
            'tests': ['not_null', 'non_negative'],
        },
        'expense_count': {
            'description': 'Number of expenses in the month (1 or more).',
            'tests': ['not_null'],
        },
    },
    unique_key=['user_id', 'month'],
    order_by=['user_id', 'month'],
) }}
with expenses as (
    select * from {{ ref('stg_expenses') }}
),

monthly as (
    select
        expenses.user_id,
        expenses.month,
        sum(expenses.amount) as total_spent,
        count(*) as expense_count
    from expenses
    group by
        expenses.user_id,
        expenses.month
),

final as (
    select
        monthly.user_id,
        monthly.month,
        {{ money('monthly.total_spent') }} as total_spent,
        cast(monthly.expense_count as bigint) as expense_count
    from monthly
)

select * from final
