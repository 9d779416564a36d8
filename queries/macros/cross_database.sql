{#
    Cross-database helpers: the only place where PostgreSQL, DuckDB and Spark SQL differ.
    Every macro branches on target.engine ('postgres', 'duckdb' or 'spark') and returns an
    expression (series() returns a table expression for a lateral join).
#}

{#
    A money total: numeric(38, 2), rounded half away from zero (round() does that on
    numerics in both engines).
#}
{% macro money(expr) -%}
cast(round({{ expr }}, 2) as numeric(38, 2))
{%- endmacro %}

{# A single amount, as stored in the base tables. #}
{% macro amount(expr) -%}
cast({{ expr }} as numeric(12, 2))
{%- endmacro %}

{#
    numerator / denominator rounded half away from zero to `scale` decimals, as
    numeric(38, scale); null when the denominator is 0. Both inputs may have at most 2
    decimals (money, counts). Computed in integers: DuckDB divides decimals in floating
    point, where 0.15 is 0.1499...
#}
{% macro round_div(numerator, denominator, scale) -%}
{%- set unit = '1' if scale == 0 else '0.' ~ '0' * (scale - 1) ~ '1' -%}
{%- set cents_numerator = integer_cents('abs(' ~ numerator ~ ')') -%}
{%- set cents_denominator = integer_cents('abs(' ~ denominator ~ ')') -%}
{%- set quotient = integer_div(
    '2 * ' ~ cents_numerator ~ ' * ' ~ (10 ** scale) ~ ' + ' ~ cents_denominator,
    '2 * ' ~ cents_denominator
) -%}
{#- The cast is outside the case: a case with a null branch loses the type modifier. #}
{%- set signed = quotient ~ ' * ' ~ sign_of(numerator) ~ ' * ' ~ sign_of(denominator) -%}
cast(case when {{ denominator }} = 0 then null else {{ signed }} * {{ unit }} end
    as numeric(38, {{ scale }}))
{%- endmacro %}

{# -1, 0 or 1 as an exact integer (Spark's sign() returns a double). #}
{% macro sign_of(expr) -%}
{%- if target.engine == 'spark' -%}
(case when {{ expr }} > 0 then 1 when {{ expr }} < 0 then -1 else 0 end)
{%- else -%}
sign({{ expr }})
{%- endif -%}
{%- endmacro %}

{# A value with at most 2 decimals times 100, as an exact integer. #}
{% macro integer_cents(expr) -%}
{%- if target.engine == 'duckdb' -%}
cast({{ expr }} * 100 as hugeint)
{%- elif target.engine == 'spark' -%}
cast({{ expr }} * 100 as decimal(38, 0))
{%- else -%}
cast({{ expr }} * 100 as numeric(38, 0))
{%- endif -%}
{%- endmacro %}

{# Integer division truncating toward zero (both operands integers). #}
{% macro integer_div(dividend, divisor) -%}
{%- if target.engine == 'duckdb' -%}
(({{ dividend }}) // ({{ divisor }}))
{%- elif target.engine == 'spark' -%}
(({{ dividend }}) div ({{ divisor }}))
{%- else -%}
div({{ dividend }}, {{ divisor }})
{%- endif -%}
{%- endmacro %}

{#
    The first day of the month of a DATE, as a DATE (DuckDB's date_trunc returns a
    TIMESTAMP). PostgreSQL has no date_trunc(date): a date would become a timestamptz, and
    truncating that works in the session's time zone, a third slower over a million rows
    than the same truncation of a plain timestamp.
#}
{% macro month_start(expr) -%}
{%- if target.engine == 'spark' -%}
trunc({{ expr }}, 'MM')
{%- elif target.engine == 'postgres' -%}
cast(date_trunc('month', cast({{ expr }} as timestamp)) as date)
{%- else -%}
cast(date_trunc('month', {{ expr }}) as date)
{%- endif -%}
{%- endmacro %}

{# A date moved by a whole number of months, as a DATE. #}
{% macro add_months(expr, months) -%}
{%- if target.engine == 'duckdb' -%}
cast({{ expr }} + to_months(cast({{ months }} as integer)) as date)
{%- elif target.engine == 'spark' -%}
add_months({{ expr }}, cast({{ months }} as integer))
{%- else -%}
cast({{ expr }} + make_interval(months => cast({{ months }} as integer)) as date)
{%- endif -%}
{%- endmacro %}

{# A date moved by a whole number of days, as a DATE. #}
{% macro add_days(expr, days) -%}
{%- if target.engine == 'spark' -%}
date_add({{ expr }}, cast({{ days }} as integer))
{%- else -%}
cast({{ expr }} + cast({{ days }} as integer) as date)
{%- endif -%}
{%- endmacro %}

{# Whole calendar months from one month start to another (0 for the same month). #}
{% macro months_between(start_month, end_month) -%}
cast(
    (extract(year from {{ end_month }}) - extract(year from {{ start_month }})) * 12
    + extract(month from {{ end_month }}) - extract(month from {{ start_month }})
    as integer
)
{%- endmacro %}

{# Whole days from one date to another. #}
{% macro days_between(start_date, end_date) -%}
{%- if target.engine == 'spark' -%}
datediff({{ end_date }}, {{ start_date }})
{%- else -%}
cast({{ end_date }} - {{ start_date }} as integer)
{%- endif -%}
{%- endmacro %}

{#
    The integers start..stop as a table expression for a lateral join: alias (column)
    follows.
#}
{% macro series(start, stop) -%}
{%- if target.engine == 'spark' -%}
explode(sequence({{ start }}, {{ stop }}))
{%- else -%}
generate_series({{ start }}, {{ stop }})
{%- endif -%}
{%- endmacro %}

{#
    A date part as an integer: year, quarter, month, day, week (ISO week), isodow
    (1 = Monday).
#}
{% macro date_part(part, expr) -%}
{%- if target.engine == 'spark' and part == 'isodow' -%}
cast(extract(dayofweek_iso from {{ expr }}) as integer)
{%- else -%}
cast(extract({{ part }} from {{ expr }}) as integer)
{%- endif -%}
{%- endmacro %}

{# The English month name ('January'). #}
{% macro month_name(expr) -%}
{%- if target.engine == 'duckdb' -%}
monthname({{ expr }})
{%- elif target.engine == 'spark' -%}
date_format({{ expr }}, 'MMMM')
{%- else -%}
to_char({{ expr }}, 'FMMonth')
{%- endif -%}
{%- endmacro %}

{# The English day name ('Monday'). #}
{% macro day_name(expr) -%}
{%- if target.engine == 'duckdb' -%}
dayname({{ expr }})
{%- elif target.engine == 'spark' -%}
date_format({{ expr }}, 'EEEE')
{%- else -%}
to_char({{ expr }}, 'FMDay')
{%- endif -%}
{%- endmacro %}

{#
    Text compared byte by byte, so ties sort the same on every server whatever its
    collation.
#}
{% macro bytewise(expr) -%}
{%- if target.engine in ('duckdb', 'spark') -%}
{{ expr }}
{%- else -%}
{{ expr }} collate "C"
{%- endif -%}
{%- endmacro %}

{# Plain text (the base tables use char(3) for currencies). #}
{% macro text(expr) -%}
{%- if target.engine == 'spark' -%}
cast({{ expr }} as string)
{%- else -%}
cast({{ expr }} as text)
{%- endif -%}
{%- endmacro %}
