-- Spending per user and calendar month with 3-month rolling figures: one row per user and
-- month from the user's first expense month to their last, empty months included as 0.
-- Consumers: Power BI (rolling_trend), psql users.
{{ config(
    materialized='table',
    description='Monthly spending per user over every calendar month of their range, '
        ~ 'with 3-month rolling total and average.',
    columns={
        'user_id': {
            'description': 'The user.',
            'tests': [
                'not_null',
                {'relationships': {'to': 'dim_user', 'field': 'user_id'}},
            ],
        },
        'month': {
            'description': 'First day of the month; every month from the user\'s '
                ~ 'first expense month to the last.',
            'tests': ['not_null', {'relationships': {'to': 'dim_date', 'field': 'date'}}],
        },
        'total_spent': {
            'description': 'Spent in the month, numeric(38, 2); 0 for a month '
                ~ 'without expenses.',
            'tests': ['not_null', 'non_negative'],
        },
        'rolling_3m_total': {
            'description': 'Spent in this month and the two calendar months before '
                ~ 'it (only months within the user\'s range), numeric(38, 2).',
            'tests': ['not_null', 'non_negative'],
        },
        'rolling_3m_avg': {
            'description': 'rolling_3m_total divided by the number of those months '
                ~ 'in the user\'s range (1, 2 or 3), 2 decimals, rounded half away '
                ~ 'from zero.',
            'tests': ['not_null', 'non_negative'],
        },
    },
    unique_key=['user_id', 'month'],
    order_by=['user_id', 'month'],
) }}
with monthly_totals as (
    select * from {{ ref('monthly_totals') }}
),

user_ranges as (
    select
        monthly_totals.user_id,
        min(monthly_totals.month) as first_month,
        max(monthly_totals.month) as last_month
    from monthly_totals
    group by
        monthly_totals.user_id
),

user_months as (
    select
        user_ranges.user_id,
        {{ add_months('user_ranges.first_month', 'month_offsets.month_offset') }} as month
    from user_ranges
    cross join lateral {{ series(
        '0',
        months_between('user_ranges.first_month', 'user_ranges.last_month')
    ) }} as month_offsets (month_offset)
),

filled as (
    select
        user_months.user_id,
        user_months.month,
        coalesce(monthly_totals.total_spent, 0) as total_spent
    from user_months
    left join monthly_totals
        on user_months.user_id = monthly_totals.user_id
        and user_months.month = monthly_totals.month
),

-- Every month is present, so the two preceding rows are the two calendar months before.
windowed as (
    select
        filled.user_id,
        filled.month,
        filled.total_spent,
        sum(filled.total_spent) over (
            partition by filled.user_id
            order by filled.month
            rows between 2 preceding and current row
        ) as rolling_3m_total,
        count(*) over (
            partition by filled.user_id
            order by filled.month
            rows between 2 preceding and current row
        ) as months_in_window
    from filled
),

final as (
    select
        windowed.user_id,
        windowed.month,
        {{ money('windowed.total_spent') }} as total_spent,
        {{ money('windowed.rolling_3m_total') }} as rolling_3m_total,
        {{ round_div('windowed.rolling_3m_total', 'windowed.months_in_window', 2) }}
            as rolling_3m_avg
    from windowed
)

select * from final
