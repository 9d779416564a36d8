-- Power BI date dimension: one row per day over the whole calendar years that hold any
-- expense or budget date (empty when there is none). Consumers: Power BI (dim_date).
{{ config(
    materialized='table',
    description='Calendar days over whole years covering every expense date and '
        ~ 'budget month.',
    columns={
        'date': {'description': 'The day.', 'tests': ['not_null']},
        'year': {'description': 'Calendar year.', 'tests': ['not_null']},
        'quarter': {'description': 'Quarter of the year, 1 to 4.', 'tests': ['not_null']},
        'month': {'description': 'Month number, 1 to 12.', 'tests': ['not_null']},
        'month_name': {
            'description': 'English month name, e.g. January.',
            'tests': ['not_null'],
        },
        'month_start': {'description': 'First day of the month.', 'tests': ['not_null']},
        'iso_week': {
            'description': 'ISO 8601 week number, 1 to 53.',
            'tests': ['not_null'],
        },
        'weekday': {
            'description': 'ISO day of the week: 1 = Monday to 7 = Sunday.',
            'tests': ['not_null'],
        },
        'weekday_name': {
            'description': 'English day name, e.g. Monday.',
            'tests': ['not_null'],
        },
        'is_weekend': {
            'description': 'True on Saturday and Sunday.',
            'tests': ['not_null'],
        },
    },
    unique_key=['date'],
    order_by=['date'],
) }}
with expenses as (
    select * from {{ ref('stg_expenses') }}
),

budgets as (
    select * from {{ ref('stg_budgets') }}
),

used_dates as (
    select expenses.date as used_date from expenses
    union all
    select budgets.month as used_date from budgets
),

bounds as (
    select
        make_date(
            {{ date_part('year', 'min(used_dates.used_date)') }}, 1, 1
        ) as first_day,
        make_date(
            {{ date_part('year', 'max(used_dates.used_date)') }}, 12, 31
        ) as last_day
    from used_dates
    having count(*) > 0
),

days as (
    select
        {{ add_days('bounds.first_day', 'day_offsets.day_offset') }} as day
    from bounds
    cross join lateral {{ series(
        '0',
        days_between('bounds.first_day', 'bounds.last_day')
    ) }} as day_offsets (day_offset)
),

final as (
    select
        days.day as date,
        {{ date_part('year', 'days.day') }} as year,
        {{ date_part('quarter', 'days.day') }} as quarter,
        {{ date_part('month', 'days.day') }} as month,
        {{ month_name('days.day') }} as month_name,
        {{ month_start('days.day') }} as month_start,
        {{ date_part('week', 'days.day') }} as iso_week,
        {{ date_part('isodow', 'days.day') }} as weekday,
        {{ day_name('days.day') }} as weekday_name,
        {{ date_part('isodow', 'days.day') }} >= 6 as is_weekend
    from days
)

select * from final
