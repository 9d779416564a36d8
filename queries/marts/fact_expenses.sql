-- Power BI fact table of expenses: one row per expense.
-- Consumers: Power BI (fact_expenses), joined to dim_user, dim_category and dim_date.
{{ config(
    materialized='table',
    description='Every expense, keyed to dim_user, dim_category and dim_date.',
    columns={
        'expense_id': {'description': 'The expense.', 'tests': ['not_null']},
        'user_id': {
            'description': 'The user who spent (dim_user).',
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
        'date': {
            'description': 'Day of the expense (dim_date).',
            'tests': ['not_null', {'relationships': {'to': 'dim_date', 'field': 'date'}}],
        },
        'month': {
            'description': 'First day of the month of the expense.',
            'tests': ['not_null'],
        },
        'amount': {
            'description': 'Amount spent, numeric(12, 2).',
            'tests': ['not_null', 'non_negative'],
        },
        'currency': {
            'description': 'Three-letter currency code of the amount.',
            'tests': ['not_null'],
        },
        'note': 'Free-text note.',
    },
    unique_key=['expense_id'],
    order_by=['expense_id'],
) }}
with expenses as (
    select * from {{ ref('stg_expenses') }}
),

final as (
    select
        expenses.expense_id,
        expenses.user_id,
        expenses.category_id,
        expenses.date,
        expenses.month,
        expenses.amount,
        expenses.currency,
        expenses.note
    from expenses
)

select * from final
