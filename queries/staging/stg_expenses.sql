-- Expenses, renamed for the models: one row per expense.
-- Consumers: the spending marts and fact_expenses.
{{ config(
    materialized='view',
    description='Expenses, with id renamed to expense_id and the month of each date.',
    columns={
        'expense_id': 'The expense.',
        'user_id': 'The user who spent.',
        'category_id': 'The category of the expense.',
        'amount': 'Amount spent (0 or more).',
        'currency': 'Three-letter currency code of the amount.',
        'date': 'Day of the expense.',
        'month': 'First day of the month of the expense.',
        'note': 'Free-text note.',
        'created_at': 'When the expense was recorded.',
    },
    unique_key=['expense_id'],
) }}
with expenses as (
    select * from {{ source('expenses') }}
),

final as (
    select
        cast(expenses.id as bigint) as expense_id,
        cast(expenses.user_id as bigint) as user_id,
        cast(expenses.category_id as bigint) as category_id,
        {{ amount('expenses.amount') }} as amount,
        {{ text('expenses.currency') }} as currency,
        expenses.date,
        {{ month_start('expenses.date') }} as month,
        expenses.note,
        expenses.created_at
    from expenses
)

select * from final
