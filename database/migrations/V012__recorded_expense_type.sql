-- Recording one expense in one round trip: record_expense() finds the user and the
-- category, checks the currency, inserts the row and returns it with the budget alerts
-- the insert fired. `expense add` calls it (tracker/everyday/expenses.py); both POST
-- endpoints of the REST API call api_record_expense(), which authenticates the token,
-- scopes the transaction to its user and role tracker_api, then calls record_expense().
-- Before, a POST took seven statements, each waiting on the last (token, user, category,
-- insert, read back, alerts, commit), most of a request's time under 16 concurrent
-- clients.
--
-- record_expense() runs with the caller's rights (security invoker), so row-level
-- security binds it as it binds any statement: inside an API transaction (role
-- tracker_api) a user other than the caller's does not exist. A refusal is not an error
-- but one row naming the problem ('user', 'currency', 'category'; api_record_expense()
-- adds 'token') and writing nothing, so the caller words the message (the CLI's messages
-- live in Python).
--
-- The user is given by id or by e-mail (any case); with neither, it is the API
-- transaction's user (api_user_id()). The category is given by id or by name (exact, else
-- the one category with that name in any letter case). The amount, date and currency were
-- checked and the note cleaned by the caller.
create type recorded_expense as (
    problem text,
    user_email text,
    user_currency text,
    id bigint,
    date date,
    user_id bigint,
    category_id bigint,
    category text,
    amount numeric,
    currency text,
    note text,
    created_at timestamptz,
    alert_id bigint,
    alert_user_email text,
    alert_category text,
    alert_month date,
    alert_alert_type text,
    alert_message text,
    alert_spent numeric,
    alert_budget_amount numeric,
    alert_fired_at timestamptz,
    alert_acknowledged_at timestamptz
);

-- The functions that return it are in R__record_expense.sql.
