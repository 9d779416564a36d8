-- Singular test: rolling_trend's month total is monthly_totals' (0 in a month without
-- expenses) and every monthly_totals row appears in it; rows returned are failures.
with trend as (
    select * from {{ ref('rolling_trend') }}
),

monthly as (
    select * from {{ ref('monthly_totals') }}
)

select
    coalesce(trend.user_id, monthly.user_id) as user_id,
    coalesce(trend.month, monthly.month) as month,
    trend.total_spent,
    monthly.total_spent as monthly_total_spent
from trend
full outer join monthly
    on trend.user_id = monthly.user_id
    and trend.month = monthly.month
where trend.user_id is null
    or trend.total_spent <> coalesce(monthly.total_spent, 0)
    or trend.rolling_3m_total < trend.total_spent
