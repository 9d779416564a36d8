-- Power BI fact table of budget alerts: one row per alert the database trigger fired.
-- Consumers: Power BI (alerts).
{{ config(
    materialized='table',
    description='Budget alerts: each time spending in a category and month went '
        ~ 'above its budget.',
    columns={
        'alert_id': {'description': 'The alert.', 'tests': ['not_null']},
        'user_id': {
            'description': 'The user alerted (dim_user).',
            'tests': [
                'not_null',
                {'relationships': {'to': 'dim_user', 'field': 'user_id'}},
            ],
        },
        'budget_id': {
            'description': 'The budget that was exceeded (fact_budgets); null once the '
                ~ 'budget is deleted.',
            'tests': [{'relationships': {'to': 'fact_budgets', 'field': 'budget_id'}}],
        },
        'category_id': {
            'description': 'The category (dim_category); null once the category is '
                ~ 'deleted.',
            'tests': [{'relationships': {'to': 'dim_category', 'field': 'category_id'}}],
        },
        'month': {
            'description': 'First day of the month the alert is about.',
            'tests': ['not_null'],
        },
        'alert_type': {
            'description': 'Kind of alert: BUDGET_EXCEEDED.',
            'tests': ['not_null', {'accepted_values': {'values': ['BUDGET_EXCEEDED']}}],
        },
        'message': {'description': 'Text shown to the user.', 'tests': ['not_null']},
        'spent': {
            'description': 'Spending in the category and month when the alert fired, '
                ~ 'numeric(38, 2).',
            'tests': ['not_null', 'non_negative'],
        },
        'budget_amount': {
            'description': 'The budget when the alert fired, numeric(12, 2).',
            'tests': ['not_null', 'non_negative'],
        },
        'fired_at': {'description': 'When the alert fired.', 'tests': ['not_null']},
        'acknowledged_at': 'When the user acknowledged the alert; null while it is open.',
    },
    unique_key=['alert_id'],
    order_by=['alert_id'],
) }}
with alerts as (
    select * from {{ ref('stg_alerts') }}
),

final as (
    select
        alerts.alert_id,
        alerts.user_id,
        alerts.budget_id,
        alerts.category_id,
        alerts.month,
        alerts.alert_type,
        alerts.message,
        alerts.spent,
        alerts.budget_amount,
        alerts.fired_at,
        alerts.acknowledged_at
    from alerts
)

select * from final
