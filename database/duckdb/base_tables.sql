-- The base tables for fast local checks in DuckDB: columns, order, types and defaults
-- of database/migrations (the source of truth; tests/test_check.py compares the two).
-- No triggers or checks: alerts come from queries/checks/budget_alert_crossings.sql.

create table main.users (
    id bigint not null primary key,
    name varchar not null,
    email varchar not null,
    currency varchar not null default 'INR',
    created_at timestamptz not null default current_timestamp
);

create table main.categories (
    id bigint not null primary key,
    name varchar not null,
    description varchar,
    color varchar not null default '#9E9E9E'
);

create table main.budgets (
    id bigint not null primary key,
    user_id bigint not null,
    category_id bigint not null,
    month date not null,
    amount decimal(12, 2) not null,
    created_at timestamptz not null default current_timestamp,
    updated_at timestamptz not null default current_timestamp
);

create table main.expenses (
    id bigint not null primary key,
    user_id bigint not null,
    category_id bigint not null,
    amount decimal(12, 2) not null,
    currency varchar not null default 'INR',
    date date not null,
    note varchar,
    created_at timestamptz not null default current_timestamp,
    import_fingerprint varchar,
    import_account varchar
);

-- spent is an unconstrained numeric in PostgreSQL: a sum of numeric(12, 2) amounts.
create table main.alerts (
    id bigint not null primary key,
    user_id bigint not null,
    budget_id bigint,
    category_id bigint,
    month date not null,
    alert_type varchar not null,
    message varchar not null,
    spent decimal(38, 2) not null,
    budget_amount decimal(12, 2) not null,
    fired_at timestamptz not null default current_timestamp,
    acknowledged_at timestamptz
);

-- V010's per-key spending totals; DuckDB has no trigger, so `check` fills it from
-- expenses.
create table main.budget_spending (
    user_id bigint not null,
    category_id bigint not null,
    month date not null,
    spent decimal(38, 2) not null
);
