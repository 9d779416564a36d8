-- The lake's change log also records which ids a statement touched in each month (the
-- smallest and the largest), so an incremental `export --lake` reads from PostgreSQL only
-- the rows in that id range of a changed month (by primary key) and takes the rest of the
-- month from the partition file it already has, instead of re-reading the whole month
-- (tracker/pipeline/lake.py). The range is a superset of the touched rows: rows of the
-- month outside every logged range were not written since the lake's last snapshot.
--
-- Rows logged before this migration have no ids (null): the export re-reads those months
-- whole, as it did. A TRUNCATE still logs month null: the whole fact.

alter table lake_changes
add column first_id bigint,
add column last_id bigint,
add constraint lake_changes_id_range check (first_id <= last_id);

comment on column lake_changes.first_id is
'Smallest id the statement touched in the month; null: re-read the whole month.';
comment on column lake_changes.last_id is
'Largest id the statement touched in the month; null: re-read the whole month.';

-- The trigger functions that fill them are in R__lake_change_log.sql.
