-- Users, renamed for the models: one row per user.
-- Consumers: dim_user and other marts.
{{ config(
    materialized='view',
    description='Users of the tracker, with id renamed to user_id.',
    columns={
        'user_id': 'The user.',
        'name': 'Display name.',
        'email': {'description': 'E-mail address (personal data).', 'pii': true},
        'currency': 'Three-letter currency code the user records amounts in.',
        'created_at': 'When the user was created.',
    },
    unique_key=['user_id'],
) }}
with users as (
    select * from {{ source('users') }}
),

final as (
    select
        cast(users.id as bigint) as user_id,
        users.name,
        users.email,
        {{ text('users.currency') }} as currency,
        users.created_at
    from users
)

select * from final
