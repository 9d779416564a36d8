-- The budget alert triggers now call one function per table, defined with them in
-- R__budget_alerts.sql (applied after this file, in the same transaction): the five
-- per-statement-kind wrappers of V002/V010 go, and their triggers with them until that
-- file creates them again under the same names.
drop function expenses_budget_alert_insert() cascade;
drop function expenses_budget_alert_update() cascade;
drop function expenses_budget_spending_delete() cascade;
drop function budgets_budget_alert_insert() cascade;
drop function budgets_budget_alert_update() cascade;
