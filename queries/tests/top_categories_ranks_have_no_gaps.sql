-- Singular test: within a user's month the ranks run 1..n without gaps or ties, largest
-- total first; rows returned are failures (one per user and month).
with categories as (
    select * from {{ ref('top_categories') }}
),

ranked as (
    select
        categories.user_id,
        categories.month,
        count(*) as category_count,
        count(distinct categories.rank) as distinct_ranks,
        min(categories.rank) as first_rank,
        max(categories.rank) as last_rank
    from categories
    group by
        categories.user_id,
        categories.month
),

out_of_order as (
    select distinct
        higher.user_id,
        higher.month
    from categories as higher
    inner join categories as lower
        on higher.user_id = lower.user_id
        and higher.month = lower.month
        and higher.rank < lower.rank
    where lower.total_spent > higher.total_spent
)

select
    ranked.user_id,
    ranked.month,
    ranked.category_count,
    ranked.distinct_ranks,
    ranked.first_rank,
    ranked.last_rank,
    out_of_order.user_id is not null as is_out_of_order
from ranked
left join out_of_order
    on ranked.user_id = out_of_order.user_id
    and ranked.month = out_of_order.month
where ranked.first_rank <> 1
    or ranked.last_rank <> ranked.category_count
    or ranked.distinct_ranks <> ranked.category_count
    or out_of_order.user_id is not null
