{#
    For sqlfluff only (.sqlfluff loads this folder): stand-ins for the functions that
    tracker/pipeline/models.py gives every model, rendered as the runner renders them for
    PostgreSQL. The runner loads queries/macros/*.sql only, never this folder.
#}

{% macro ref(model_name) -%}
analytics.{{ model_name }}
{%- endmacro %}

{% macro source(table) -%}
public.{{ table }}
{%- endmacro %}

{# Renders nothing; naming kwargs lets it take the runner's keyword settings. #}
{% macro config() -%}
{%- if kwargs -%}{%- endif -%}
{%- endmacro %}

{# Every var the models use is a number. #}
{% macro var(var_name, default=0) -%}
{{ default }}
{%- endmacro %}
