-- An alert's link to its user is kept by a trigger instead of a foreign key, as its
-- links to its budget and its category have been since V016. The foreign key checked
-- every alert row with a key-share lock on the user's row, and a bulk load fires tens
-- of thousands of alerts at once. Measured on a COPY of 1,000,000 expenses that fires
-- 37,830 alerts: the check took 0.39 s of the alert trigger's 1.6 s (inside the COPY,
-- each check locks a users row that the COPY's own expense checks have locked already,
-- and costs about 10 us; the same check outside a COPY cost 0.14 s). That was what kept
-- the trigger at issue 11's goal (a COPY at most 1.10 x the same COPY without it)
-- rather than under it.
--
-- What holds, as before:
-- - Deleting a user deletes their alerts (users_delete_alerts, R__users.sql), after the
--   foreign keys' cascades have deleted their expenses and budgets.
-- - No alert of a deleted user survives a race. An alert is only written by a statement
--   that changes the user's expenses or budgets (budget_alerts_fire): an insert, or an
--   update that sets user_id, holds a key-share lock on the users row (its own foreign
--   key check), which the user delete waits for; any other update holds the lock of the
--   expense or budget row it changes, which the delete's cascade waits for. Either way
--   the writer commits before the trigger's delete statement takes its snapshot, so the
--   alert is deleted; a writer that comes after the delete finds neither the user nor
--   the rows. A deleter at REPEATABLE READ or SERIALIZABLE fails to serialize in its
--   cascade instead.
-- - TRUNCATE users (it needs CASCADE) empties alerts.
-- - The alerts mart's data tests check the link (relationships to dim_user) on every
--   build.

alter table alerts drop constraint alerts_user_id_fkey;

comment on column alerts.user_id is
'The user; their alerts are deleted with them (kept by a trigger, V017).';
