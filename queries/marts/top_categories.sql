-- Categories ranked by spending within each user's month: one row per user, month and
-- category.
-- Consumers: Power BI (top_categories), psql users.
{{ config(
    materialized='table',
    description='Spending per user, month and category, ranked from the largest total.',
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
        'rank': {
            'description': 'Position in the user\'s month: 1 is the largest total; '
                ~ 'ties go by category name; 1..n without gaps.',
            'tests': ['not_null'],
        },
        'category_id': {
            'description': 'The category.',
            'tests': [
                'not_null',
                {'relationships': {'to': 'dim_category', 'field': 'category_id'}},
            ],
        },
        'category': {'description': 'Category name.', 'tests': ['not_null']},
        'total_spent': {
            'description': 'Sum of the amounts in the category and month, '
                ~ 'numeric(38, 2).',
            'tests': ['not_null', 'non_negative'],
        },
        'expense_count': {
            'description': 'Number of expenses in the category and month.',
            'tests': ['not_null'],
        },
        'share_pct': {
            'description': 'Share of the user\'s month total in percent, 1 decimal, '
                ~ 'rounded half away from zero; null when the month total is 0 (only '
                ~ 'zero amounts).',
        },
    },
    unique_key=['user_id', 'month', 'category_id'],
    order_by=['user_id', 'month', 'rank'],
) }}
with expenses as (
    select * from {{ ref('stg_expenses') }}
),

categories as (
    select * from {{ ref('stg_categories') }}
),

category_totals as (
    select
        expenses.user_id,
        expenses.month,
        expenses.category_id,
        sum(expenses.amount) as total_spent,
        count(*) as expense_count
    from expenses
    group by
        expenses.user_id,
        expenses.month,
        expenses.category_id
),

month_totals as (
    select
        category_totals.user_id,
        category_totals.month,
        sum(category_totals.total_spent) as month_total
    from category_totals
    group by
        category_totals.user_id,
        category_totals.month
),

ranked as (
    select
        category_totals.user_id,
        category_totals.month,
        row_number() over (
            partition by
                category_totals.user_id,
                category_totals.month
            order by
                category_totals.total_spent desc,
                {{ bytewise('categories.category') }}
        ) as category_rank,
        category_totals.category_id,
        categories.category,
        category_totals.total_spent,
        category_totals.expense_count,
        month_totals.month_total
    from category_totals
    inner join categories
        on category_totals.category_id = categories.category_id
    inner join month_totals
        on category_totals.user_id = month_totals.user_id
        and category_totals.month = month_totals.month
),

final as (
    select
        ranked.user_id,
        ranked.month,
        cast(ranked.category_rank as bigint) as rank,
        ranked.category_id,
        ranked.category,
        {{ money('ranked.total_spent') }} as total_spent,
        cast(ranked.expense_count as bigint) as expense_count,
        {{ round_div('ranked.total_spent * 100', 'ranked.month_total', 1) }} as share_pct
    from ranked
)

select * from final
