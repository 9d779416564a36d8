-- Power BI user dimension: one row per user.
-- Consumers: Power BI (dim_user; the exporter drops the pii email unless --include-pii).
{{ config(
    materialized='table',
    description='Users, the people whose spending the facts record.',
    columns={
        'user_id': {'description': 'The user.', 'tests': ['not_null']},
        'name': {'description': 'Display name.', 'tests': ['not_null']},
        'email': {
            'description': 'E-mail address (personal data: left out of exports '
                ~ 'unless asked for).',
            'pii': true,
        },
        'currency': {
            'description': 'Three-letter currency code the user records amounts in.',
            'tests': ['not_null'],
        },
        'created_at': {
            'description': 'When the user was created.',
            'tests': ['not_null'],
        },
    },
    unique_key=['user_id'],
    order_by=['user_id'],
) }}
with users as (
    select * from {{ ref('stg_users') }}
),

final as (
    select
        users.user_id,
        users.name,
        users.email,
        users.currency,
        users.created_at
    from users
)

select * from final
