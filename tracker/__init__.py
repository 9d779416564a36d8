"""Smart Spending Tracker: versioned SQL, dbt-style models and exports on PostgreSQL."""
