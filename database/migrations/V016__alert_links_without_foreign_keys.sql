-- An alert's links to its budget and its category are kept by the tracker's triggers
-- instead of foreign keys. Each foreign key on alerts costs a check per alert row, with a
-- row lock on the row it points at, and a bulk load fires tens of thousands of alerts at
-- once. Measured on a COPY of 1,000,000 expenses that fires 37,830 alerts: the alert
-- trigger took 2.7 s; the budget_id check 0.7 s of it (it locks 37,830 distinct budget
-- rows) and the category_id check 0.35 s. That was most of what stood between the trigger
-- and issue 11's goal, a COPY at most 1.10 x the same COPY without it.
--
-- What holds, as before:
-- - An alert is written only by budget_alerts_fire (R__budget_alerts.sql), which reads
--   the budget id and the category from budgets and categories while it holds the key's
--   budget_spending row lock. tracker_api may no longer insert alerts, and may update
--   only acknowledged_at (it never needed more).
-- - Deleting a budget keeps its alerts as history and unlinks them (budget_id becomes
--   null), as "on delete set null" did. The budget trigger first locks the deleted keys'
--   totals rows, so an alert written for a key concurrently is either committed before
--   the unlinking statement reads alerts, or finds no budget and is not written
--   (R__budget_alerts.sql explains it, and tests/test_alert_links.py races the two).
-- - Deleting a category sets its alerts' category_id to null, as before
--   (R__categories.sql). Alerts can only come from expenses in the category, and a
--   category that expenses use cannot be deleted.
-- - TRUNCATE of budgets or categories (with CASCADE) empties alerts, as before.
-- - alerts.user_id keeps its foreign key: deleting a user deletes their alerts.
-- - The alerts mart's data tests check both links (relationships to fact_budgets and
--   dim_category) on every build.

alter table alerts drop constraint alerts_budget_id_fkey;

alter table alerts drop constraint alerts_category_id_fkey;

revoke insert, update on alerts from tracker_api;

grant update (acknowledged_at) on alerts to tracker_api;

comment on column alerts.budget_id is
'The budget exceeded; null once that budget is deleted (kept by triggers, V016).';

comment on column alerts.category_id is
'The category; null once that category is deleted (kept by triggers, V016).';
