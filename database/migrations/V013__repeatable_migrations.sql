-- Repeatable migrations (database/migrations/R__<name>.sql) are recorded in
-- schema_migrations too, Flyway's way: a row with no version, keyed by its name, whose
-- checksum says whether the file changed since it last ran (then it runs again).
alter table schema_migrations drop constraint schema_migrations_pkey;

alter table schema_migrations alter column version drop not null;

alter table schema_migrations
add constraint schema_migrations_version_key unique (version);

create unique index schema_migrations_repeatable_name_key
on schema_migrations (name) where version is null;
