-- Moves the staged seed rows into the base tables, resolving e-mails and category names.
-- Runs once per database (recorded in schema_seeds), in the same transaction as the
-- COPYs.

insert into users (name, email, currency)
select
    name,
    email,
    currency
from seed_users
on conflict (email) do nothing;

insert into categories (name, description, color)
select
    name,
    description,
    color
from seed_categories
on conflict (name) do nothing;

insert into budgets (user_id, category_id, month, amount)
select
    users.id as user_id,
    categories.id as category_id,
    seed_budgets.month,
    seed_budgets.amount
from seed_budgets
inner join users
    on seed_budgets.user_email = users.email
inner join categories
    on seed_budgets.category = categories.name
on conflict (user_id, category_id, month) do nothing;

insert into expenses (user_id, category_id, amount, currency, date, note)
select
    users.id as user_id,
    categories.id as category_id,
    seed_expenses.amount,
    seed_expenses.currency,
    seed_expenses.date,
    seed_expenses.note
from seed_expenses
inner join users
    on seed_expenses.user_email = users.email
inner join categories
    on seed_expenses.category = categories.name;
