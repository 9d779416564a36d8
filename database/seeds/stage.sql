-- Staging tables the seed CSVs are copied into (one per file, same columns as the file).
-- They refer to users by e-mail and categories by name, so seeds never depend on ids.

create temporary table seed_users (
    name text,
    email text,
    currency text
) on commit drop;

create temporary table seed_categories (
    name text,
    description text,
    color text
) on commit drop;

create temporary table seed_budgets (
    user_email text,
    category text,
    month date,
    amount numeric(12, 2)
) on commit drop;

create temporary table seed_expenses (
    user_email text,
    category text,
    amount numeric(12, 2),
    currency text,
    date date,
    note text
) on commit drop;
