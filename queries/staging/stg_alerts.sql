-- Budget alerts, renamed for the models: one row per alert.
-- Consumers: the alerts mart.
{{ config(
    materialized='view',
    description='Budget alerts fired by the database trigger, with id renamed to '
        ~ 'alert_id.',
    columns={
        'alert_id': 'The alert.',
        'user_id': 'The user alerted.',
        'budget_id': 'The budget that was exceeded (null once the budget is deleted).',
        'category_id': 'The category (null once the category is deleted).',
        'month': 'First day of the month the alert is about.',
        'alert_type': 'Kind of alert (BUDGET_EXCEEDED).',
        'message': 'Text shown to the user.',
        'spent': 'Spending in the category and month when the alert fired.',
        'budget_amount': 'The budget when the alert fired.',
        'fired_at': 'When the alert fired.',
        'acknowledged_at': 'When the user acknowledged it (null while open).',
    },
    unique_key=['alert_id'],
) }}
with alerts as (
    select * from {{ source('alerts') }}
),

final as (
    select
        cast(alerts.id as bigint) as alert_id,
        cast(alerts.user_id as bigint) as user_id,
        cast(alerts.budget_id as bigint) as budget_id,
        cast(alerts.category_id as bigint) as category_id,
        alerts.month,
        alerts.alert_type,
        alerts.message,
        {{ money('alerts.spent') }} as spent,
        {{ amount('alerts.budget_amount') }} as budget_amount,
        alerts.fired_at,
        alerts.acknowledged_at
    from alerts
)

select * from final
