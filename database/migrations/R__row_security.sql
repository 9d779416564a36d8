-- Row-level security helpers for the REST API's role, tracker_api (V008 explains the
-- model and applies the policies): api_user_id() is the user the current transaction acts
-- for, read by every api_own_rows policy; api_isolate_per_user() gives a per-user table
-- that policy. Current definitions (first in V008), re-applied whenever this file
-- changes; create or replace keeps the policies that depend on api_user_id(), so edit it
-- in place.

-- The user the current transaction acts for; null when none is set (or set to '').
create or replace function api_user_id() returns bigint
language sql stable
as $$
    select nullif(current_setting('tracker.user_id', true), '')::bigint
$$;

-- Make a per-user table visible to tracker_api only for api_user_id(). Later migrations
-- that add a per-user table call it too: select api_isolate_per_user('public.new_table',
-- 'user_id');
create or replace function api_isolate_per_user(
    target regclass, user_column text
) returns void
language plpgsql
as $$
begin
    execute format('alter table %s enable row level security', target);
    execute format('alter table %s force row level security', target);
    -- (select ...) makes each side an init plan: evaluated once per statement, not per
    -- row.
    execute format(
        'create policy api_own_rows on %s'
        ' using ((select current_user) <> %L or %I = (select api_user_id()))'
        ' with check ((select current_user) <> %L or %I = (select api_user_id()))',
        target, 'tracker_api', user_column, 'tracker_api', user_column
    );
end;
$$;
