-- Re-plan the budget alert check on every call. A generic plan cached while budgets and
-- expenses were small would otherwise be reused by a later bulk load in the same session
-- (seen: a 200,000-row COPY going from 3.6 s to over 60 s). Costs about 0.4 ms a statement.
alter function budget_alerts_fire(bigint[], bigint[], date[], numeric[], numeric[])
    set plan_cache_mode = force_custom_plan;
