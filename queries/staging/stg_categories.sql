-- Categories, renamed for the models: one row per category.
-- Consumers: dim_category, top_categories, budget_vs_actual.
{{ config(
    materialized='view',
    description='Spending categories, with id renamed to category_id and name to '
        ~ 'category.',
    columns={
        'category_id': 'The category.',
        'category': 'Category name (unique).',
        'description': 'What the category covers.',
        'color': 'Display colour as #RRGGBB.',
    },
    unique_key=['category_id'],
) }}
with categories as (
    select * from {{ source('categories') }}
),

final as (
    select
        cast(categories.id as bigint) as category_id,
        categories.name as category,
        categories.description,
        {{ text('categories.color') }} as color
    from categories
)

select * from final
