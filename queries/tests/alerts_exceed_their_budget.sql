-- Singular test: an alert records spending above its budget; rows returned are failures.
-- Grain: one row per alert whose spent is not above its budget_amount.
select
    alerts.alert_id,
    alerts.user_id,
    alerts.category_id,
    alerts.month,
    alerts.spent,
    alerts.budget_amount
from {{ ref('alerts') }} as alerts
where alerts.spent <= alerts.budget_amount
