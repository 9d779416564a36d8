-- Power BI category dimension: one row per category.
-- Consumers: Power BI (dim_category).
{{ config(
    materialized='table',
    description='Spending categories with their display colour.',
    columns={
        'category_id': {'description': 'The category.', 'tests': ['not_null']},
        'category': {'description': 'Category name (unique).', 'tests': ['not_null']},
        'description': 'What the category covers.',
        'color': {'description': 'Display colour as #RRGGBB.', 'tests': ['not_null']},
    },
    unique_key=['category_id'],
    order_by=['category_id'],
) }}
with categories as (
    select * from {{ ref('stg_categories') }}
),

final as (
    select
        categories.category_id,
        categories.category,
        categories.description,
        categories.color
    from categories
)

select * from final
