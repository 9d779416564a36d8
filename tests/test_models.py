"""The model runner: graph, selection, rendering, run and compile, through the CLI if possible."""

import shutil
from pathlib import Path

import duckdb
import jinja2
import psycopg
import pytest

from tracker.errors import InputError, TrackerError
from tracker.pipeline import template_cache as template_cache_module
from tracker.pipeline.models import ENVIRONMENT_OPTIONS, load_project, render, render_file
from tracker.pipeline.runner import run_models, run_models_duckdb
from tracker.plumbing import config

QUERIES = config.QUERIES_DIR
ALL_MODELS = sorted(
    path.stem for layer in ("staging", "marts") for path in (QUERIES / layer).glob("*.sql")
)


@pytest.fixture
def queries(tmp_path, monkeypatch):
    """A private copy of queries/ that the CLI uses, so a test can break models safely."""
    copy = tmp_path / "queries"
    shutil.copytree(QUERIES, copy)
    monkeypatch.setattr(config, "QUERIES_DIR", copy)
    return copy


def write_model(queries: Path, layer: str, name: str, body: str) -> Path:
    path = queries / layer / f"{name}.sql"
    path.write_text(body, encoding="utf-8")
    return path


def relations(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select relname, relkind from pg_class "
            "where relnamespace = (select oid from pg_namespace where nspname = 'analytics') "
            "and relkind in ('v', 'r')"
        ).fetchall()
    return dict(rows)


def fetch(url: str, query: str, params=None) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


# --- graph and rendering -------------------------------------------------------------------


def test_models_every_file_renders_for_both_engines_and_sits_in_the_graph():
    project = load_project()
    assert sorted(project.models) == ALL_MODELS
    position = {name: index for index, name in enumerate(project.order)}
    for model in project.models.values():
        assert all(position[parent] < position[model.name] for parent in model.depends_on)
        for engine in ("postgres", "duckdb"):
            text = render(model, engine)
            assert "{{" not in text and "{%" not in text
            assert "analytics." in text or model.sources, model.name
        assert model.description, model.name
        assert model.order_by, f"{model.name} needs unique_key/order_by for stable exports"
    marts = [model for model in project.models.values() if model.layer == "marts"]
    assert all(model.export for model in marts)
    assert not any(model.export for model in project.models.values() if model.layer == "staging")
    assert project["dim_user"].pii_columns == ["email"]


def test_models_sources_render_per_engine():
    model = load_project()["stg_expenses"]
    assert "from public.expenses" in render(model, "postgres")
    assert "from main.expenses" in render(model, "duckdb")
    assert model.sources == {"expenses"}


def test_select_plus_name_is_the_model_and_its_upstream_only():
    project = load_project()
    assert [model.name for model in project.select("+rolling_trend")] == [
        "stg_expenses",
        "monthly_totals",
        "rolling_trend",
    ]
    assert [model.name for model in project.select("monthly_totals")] == ["monthly_totals"]
    downstream = {model.name for model in project.select("stg_categories+")}
    assert downstream == {"stg_categories", "dim_category", "top_categories", "budget_vs_actual"}
    both = [model.name for model in project.select("dim_user, +fact_budgets")]
    assert both == ["stg_budgets", "dim_user", "fact_budgets"]


def test_select_unknown_model_says_did_you_mean():
    with pytest.raises(
        InputError, match=r'unknown model "monthly_total"\. Did you mean "monthly_totals"\?'
    ):
        load_project().select("+monthly_total")


def test_load_unknown_ref_names_model_file_and_suggestion(queries):
    path = queries / "marts" / "budget_vs_actual.sql"
    path.write_text(path.read_text().replace("ref('stg_budgets')", "ref('stg_budget')"))
    with pytest.raises(TrackerError) as caught:
        load_project()
    assert str(caught.value) == (
        'model "budget_vs_actual" refers to unknown model "stg_budget" '
        '(queries/marts/budget_vs_actual.sql). Did you mean "stg_budgets"?'
    )


# --- compiled template cache ---------------------------------------------------------------


@pytest.fixture
def template_cache(tmp_path, monkeypatch) -> Path:
    """A private target/ for the compiled templates; the folder they are kept in."""
    monkeypatch.setattr(config, "TARGET_DIR", tmp_path / "target")
    return template_cache_module.cache_dir()


def test_models_compiled_templates_are_kept_and_read_back(queries, template_cache):
    text = (queries / "staging" / "stg_users.sql").read_text()
    load_project()
    assert len(list(template_cache.glob("*.code"))) == len(ALL_MODELS) + 1  # and the macros
    # What is stored under the key of the model's source is what renders: a hit, no compile.
    environment = jinja2.Environment(**ENVIRONMENT_OPTIONS)
    key = template_cache_module.cache_key(ENVIRONMENT_OPTIONS, [text])
    template_cache_module.store(key, environment.compile("select 'from the cache'"))
    assert render(load_project()["stg_users"], "duckdb") == "select 'from the cache'\n"


def test_models_a_changed_model_or_macro_is_compiled_again_not_read_from_the_cache(
    queries, template_cache
):
    before = render(load_project()["stg_users"], "duckdb")
    model = queries / "staging" / "stg_users.sql"
    model.write_text(model.read_text().replace("users.name,", "users.name as user_name,"))
    macros = queries / "macros" / "cross_database.sql"
    macros.write_text(
        macros.read_text().replace(
            "cast({{ expr }} as numeric(12, 2))", "cast({{ expr }} as numeric(13, 2))"
        )
    )
    project = load_project()
    after = render(project["stg_users"], "duckdb")
    assert after == before.replace("users.name,", "users.name as user_name,")
    assert "numeric(13, 2)" in render(project["stg_expenses"], "duckdb")
    assert "numeric(12, 2)" not in render(project["stg_expenses"], "duckdb")


def test_models_cache_key_changes_with_jinja_options_and_file_boundaries(monkeypatch):
    key = template_cache_module.cache_key(ENVIRONMENT_OPTIONS, ["ab", "c"])
    assert template_cache_module.cache_key(ENVIRONMENT_OPTIONS, ["a", "bc"]) != key
    assert (
        template_cache_module.cache_key({**ENVIRONMENT_OPTIONS, "trim_blocks": False}, ["ab", "c"])
        != key
    )
    monkeypatch.setattr(jinja2, "__version__", "0.0.1")
    assert template_cache_module.cache_key(ENVIRONMENT_OPTIONS, ["ab", "c"]) != key


def test_models_a_corrupt_or_unwritable_cache_is_compiled_around(queries, template_cache):
    expected = {name: render(model, "duckdb") for name, model in load_project().models.items()}
    for path in template_cache.glob("*.code"):
        path.write_bytes(path.read_bytes()[:-7])  # truncated: the checksum no longer matches
    assert {n: render(m, "duckdb") for n, m in load_project().models.items()} == expected
    shutil.rmtree(template_cache.parent)
    template_cache.parent.write_text("a file where the folder should be")
    assert {n: render(m, "duckdb") for n, m in load_project().models.items()} == expected


# --- run ---------------------------------------------------------------------------------


def test_run_builds_every_model_with_comments(seeded_url, run_cli):
    result = run_cli(seeded_url, "run")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if "analytics." in line]
    assert len(lines) == len(ALL_MODELS)
    assert f"Built {len(ALL_MODELS)} models" in result.stdout
    built = relations(seeded_url)
    assert sorted(built) == ALL_MODELS
    # Staging models are views; the marts are tables (issue 11: tests and exports read each
    # mart computed once).
    assert built["stg_expenses"] == "v" and built["budget_vs_actual"] == "r"

    project = load_project()
    description = fetch(
        seeded_url, "select obj_description('analytics.budget_vs_actual'::regclass)"
    )
    assert description == [(project["budget_vs_actual"].description,)]
    for model in project.models.values():
        comments = dict(
            fetch(
                seeded_url,
                """
                select attname, col_description(attrelid, attnum)
                from pg_attribute
                where attrelid = %s::regclass
                    and attnum > 0
                    and not attisdropped
                """,
                [f"analytics.{model.name}"],
            )
        )
        for column, spec in model.columns.items():
            assert comments[column] == spec["description"], (model.name, column)


def test_run_every_model_documents_exactly_its_columns(seeded_url, run_cli):
    assert run_cli(seeded_url, "run").exit_code == 0
    for model in load_project().models.values():
        actual = [
            row[0]
            for row in fetch(
                seeded_url,
                "select attname from pg_attribute where attrelid = %s::regclass "
                "and attnum > 0 and not attisdropped order by attnum",
                [f"analytics.{model.name}"],
            )
        ]
        assert list(model.columns) == actual, model.name
        assert all(spec["description"] for spec in model.columns.values()), model.name


def test_run_twice_rebuilds_without_error(seeded_url, run_cli):
    assert run_cli(seeded_url, "run").exit_code == 0
    result = run_cli(seeded_url, "run")
    assert result.exit_code == 0, result.output
    assert fetch(seeded_url, "select count(*) from analytics.monthly_totals") == [(2,)]


def test_run_select_rebuilds_dependents_so_the_schema_stays_whole(seeded_url, run_cli):
    assert run_cli(seeded_url, "run").exit_code == 0
    result = run_cli(seeded_url, "run", "--select", "stg_expenses")
    assert result.exit_code == 0, result.output
    rebuilt = {
        line.split("analytics.")[1].split()[0]
        for line in result.stdout.splitlines()
        if "analytics." in line
    }
    assert {
        "stg_expenses",
        "monthly_totals",
        "rolling_trend",
        "top_categories",
        "budget_vs_actual",
        "fact_expenses",
        "dim_date",
    } <= rebuilt
    assert "stg_users" not in rebuilt
    assert sorted(relations(seeded_url)) == ALL_MODELS
    assert fetch(seeded_url, "select count(*) from analytics.rolling_trend") == [(2,)]


def test_run_select_on_empty_schema_builds_only_the_selection(seeded_url, run_cli):
    result = run_cli(seeded_url, "run", "--select", "+monthly_totals")
    assert result.exit_code == 0, result.output
    assert sorted(relations(seeded_url)) == ["monthly_totals", "stg_expenses"]


def test_run_select_without_upstream_says_how_to_build_it(seeded_url, run_cli):
    result = run_cli(seeded_url, "run", "--select", "monthly_totals")
    assert result.exit_code == 1
    assert 'model "monthly_totals" failed in the database' in result.stderr
    assert "--select +monthly_totals" in result.stderr
    assert relations(seeded_url) == {}


def test_run_bad_select_exits_2_with_suggestion(seeded_url, run_cli):
    result = run_cli(seeded_url, "run", "--select", "budget_vs_actuals")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        'Error: --select "budget_vs_actuals" names unknown model "budget_vs_actuals". '
        'Did you mean "budget_vs_actual"?'
    )


def test_run_unknown_ref_exits_1_naming_the_file(seeded_url, run_cli, queries):
    path = queries / "marts" / "budget_vs_actual.sql"
    path.write_text(path.read_text().replace("ref('stg_budgets')", "ref('stg_budget')"))
    result = run_cli(seeded_url, "run")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        'Error: model "budget_vs_actual" refers to unknown model "stg_budget" '
        '(queries/marts/budget_vs_actual.sql). Did you mean "stg_budgets"?'
    )
    assert relations(seeded_url) == {}


def test_run_cycle_names_every_model_and_file(seeded_url, run_cli, queries):
    write_model(queries, "marts", "cycle_a", "select * from {{ ref('cycle_b') }}\n")
    write_model(queries, "marts", "cycle_b", "select * from {{ ref('cycle_c') }}\n")
    write_model(queries, "marts", "cycle_c", "select * from {{ ref('cycle_a') }}\n")
    result = run_cli(seeded_url, "run")
    assert result.exit_code == 1
    message = result.stderr.strip()
    assert message.startswith("Error: models refer to each other in a cycle: ")
    for name in ("cycle_a", "cycle_b", "cycle_c"):
        assert f'"{name}" (queries/marts/{name}.sql)' in message
    assert len(message.splitlines()) == 1


def test_run_sql_error_names_model_and_keeps_previous_build(seeded_url, run_cli, queries):
    assert run_cli(seeded_url, "run").exit_code == 0
    before = fetch(seeded_url, "select * from analytics.budget_vs_actual order by budget_id")
    # A change that would land before the failure, to prove it is rolled back.
    stg_users = queries / "staging" / "stg_users.sql"
    stg_users.write_text(
        stg_users.read_text().replace(
            "Users of the tracker, with id renamed to user_id.", "Changed description."
        )
    )
    write_model(
        queries,
        "marts",
        "zz_broken",
        (
            "{{ config(description='Broken on purpose.') }}\n"
            "select missing_column from {{ ref('monthly_totals') }}\n"
        ),
    )
    result = run_cli(seeded_url, "run")
    assert result.exit_code == 1
    message = result.stderr.strip()
    assert message.startswith(
        'Error: model "zz_broken" failed in the database (queries/marts/zz_broken.sql): '
        'column "missing_column" does not exist.'
    )
    assert "previous build is unchanged" in message
    assert (
        fetch(seeded_url, "select * from analytics.budget_vs_actual order by budget_id") == before
    )
    assert fetch(seeded_url, "select obj_description('analytics.stg_users'::regclass)") == [
        ("Users of the tracker, with id renamed to user_id.",)
    ]
    assert "zz_broken" not in relations(seeded_url)


def test_run_refuses_to_drop_a_view_that_is_not_a_model(seeded_url, run_cli):
    assert run_cli(seeded_url, "run").exit_code == 0
    with psycopg.connect(seeded_url, autocommit=True) as conn:
        conn.execute("create view public.my_report as select * from analytics.monthly_totals")
    result = run_cli(seeded_url, "run", "--select", "monthly_totals")
    assert result.exit_code == 1
    assert "public.my_report is not a model but depends on" in result.stderr
    assert fetch(seeded_url, "select count(*) from public.my_report") == [(2,)]


def test_run_documented_column_missing_from_select_fails(seeded_url, run_cli, queries):
    write_model(
        queries,
        "marts",
        "zz_documented",
        ("{{ config(description='x', columns={'a': 'A.', 'b': 'B.'}) }}\nselect 1 as a\n"),
    )
    result = run_cli(seeded_url, "run")
    assert result.exit_code == 1
    assert (
        'model "zz_documented" documents column "b" that its SELECT does not return'
        in result.stderr
    )
    assert relations(seeded_url) == {}


def test_run_vars_change_the_near_threshold(db_url, run_cli):
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("insert into users (id, name, email) values (1, 'A', 'a@example.com')")
        conn.execute("insert into categories (id, name) values (1, 'Food')")
        conn.execute(
            "insert into budgets (user_id, category_id, month, amount) "
            "values (1, 1, '2024-03-01', 100.00)"
        )
        conn.execute(
            "insert into expenses (user_id, category_id, amount, date) "
            "values (1, 1, 60.00, '2024-03-05')"
        )
    assert run_cli(db_url, "run").exit_code == 0
    assert fetch(db_url, "select status from analytics.budget_vs_actual") == [("under",)]
    result = run_cli(db_url, "run", "--vars", '{"near_threshold_pct": 60}')
    assert result.exit_code == 0, result.output
    assert fetch(db_url, "select status from analytics.budget_vs_actual") == [("near",)]


@pytest.mark.parametrize("vars_json", ["{not json", "[1, 2]", '{"near_threshold_pct": [1]}'])
def test_run_bad_vars_exit_2(seeded_url, run_cli, vars_json):
    result = run_cli(seeded_url, "run", "--vars", vars_json)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ")
    assert relations(seeded_url) == {}


def test_vars_are_quoted_literals_on_both_engines(db_url, queries):
    write_model(
        queries,
        "marts",
        "zz_label",
        (
            "{{ config(description='x', columns={'label': 'L.', 'amount': 'A.'}) }}\n"
            "select {{ var('label') }} as label, {{ var('amount', 1.25) }} as amount\n"
        ),
    )
    project = load_project()
    model = project["zz_label"]
    hostile = "O'Brien\\'; drop table users; --"
    with psycopg.connect(db_url) as conn:
        run_models(conn, project, [model], vars={"label": hostile})
        assert conn.execute("select label, amount::text from analytics.zz_label").fetchall() == [
            (hostile, "1.25")
        ]
        assert conn.execute("select count(*) from users").fetchone() == (0,)
    duck = duckdb.connect()
    run_models_duckdb(duck, project, [model], vars={"label": hostile})
    assert duck.execute("select label from analytics.zz_label").fetchall() == [(hostile,)]
    with pytest.raises(InputError, match=r'model "zz_label" needs var "label"'):
        render(model, "postgres")


# --- compile -----------------------------------------------------------------------------


def test_compile_writes_plain_sql_for_the_selection(tmp_path, run_cli):
    out = tmp_path / "compiled"
    result = run_cli(None, "compile", "--select", "+rolling_trend", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in out.iterdir()) == [
        "monthly_totals.sql",
        "rolling_trend.sql",
        "stg_expenses.sql",
    ]
    text = (out / "rolling_trend.sql").read_text()
    assert "{{" not in text and "config(" not in text
    assert "from analytics.monthly_totals" in text


def test_compile_duckdb_uses_duckdb_sources_and_macros(tmp_path, run_cli):
    out = tmp_path / "compiled"
    result = run_cli(None, "compile", "--engine", "duckdb", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert sorted(path.stem for path in out.iterdir()) == ALL_MODELS
    assert "from main.expenses" in (out / "stg_expenses.sql").read_text()
    assert "hugeint" in (out / "top_categories.sql").read_text()


def test_compile_default_target_and_bad_select(run_cli):
    result = run_cli(None, "compile", "--select", "dim_dates")
    assert result.exit_code == 2
    assert 'Did you mean "dim_date"?' in result.stderr
    result = run_cli(None, "compile", "--select", "dim_date")
    assert result.exit_code == 0, result.output
    assert (config.TARGET_DIR / "compiled" / "dim_date.sql").is_file()


def test_compiled_file_runs_in_psql_after_run(seeded_url, run_cli, tmp_path):
    assert run_cli(seeded_url, "run").exit_code == 0
    out = tmp_path / "compiled"
    assert run_cli(None, "compile", "--out", str(out)).exit_code == 0
    compiled = fetch(seeded_url, (out / "top_categories.sql").read_text())
    assert compiled == fetch(seeded_url, "select * from analytics.top_categories")
    assert len(compiled) == 4


def test_readme_documents_run_and_compile():
    readme = (config.PROJECT_DIR / "README.md").read_text()
    assert "python cli.py run" in readme and "python cli.py compile" in readme
    assert "--vars" in readme and "--select +" in readme


def test_render_file_renders_any_template_with_refs_and_macros(tmp_path):
    project = load_project()
    check = tmp_path / "no_negative_totals.sql"
    check.write_text(
        "select * from {{ ref('monthly_totals') }} where total_spent < {{ money('0') }}\n"
    )
    assert render_file(project, check, "duckdb") == (
        "select * from analytics.monthly_totals where total_spent < "
        "cast(round(0, 2) as numeric(38, 2))\n"
    )
    check.write_text("select * from {{ ref('monthly_total') }}\n")
    with pytest.raises(
        TrackerError, match=r'unknown model "monthly_total" .*Did you mean "monthly_totals"'
    ):
        render_file(project, check)


MART_TYPES = {
    "monthly_totals": ["bigint", "date", "numeric(38,2)", "bigint"],
    "top_categories": [
        "bigint",
        "date",
        "bigint",
        "bigint",
        "text",
        "numeric(38,2)",
        "bigint",
        "numeric(38,1)",
    ],
    "budget_vs_actual": [
        "bigint",
        "bigint",
        "date",
        "bigint",
        "text",
        "numeric(12,2)",
        "numeric(38,2)",
        "numeric(38,2)",
        "numeric(38,1)",
        "text",
    ],
    "rolling_trend": ["bigint", "date", "numeric(38,2)", "numeric(38,2)", "numeric(38,2)"],
    "fact_expenses": [
        "bigint",
        "bigint",
        "bigint",
        "date",
        "date",
        "numeric(12,2)",
        "text",
        "text",
    ],
    "fact_budgets": ["bigint", "bigint", "bigint", "date", "numeric(12,2)"],
    "dim_date": [
        "date",
        "integer",
        "integer",
        "integer",
        "text",
        "date",
        "integer",
        "integer",
        "text",
        "boolean",
    ],
}


def test_run_marts_have_the_contract_column_types(seeded_url, run_cli):
    assert run_cli(seeded_url, "run").exit_code == 0
    for model, types in MART_TYPES.items():
        actual = fetch(
            seeded_url,
            "select format_type(atttypid, atttypmod) from pg_attribute "
            "where attrelid = %s::regclass and attnum > 0 and not attisdropped order by attnum",
            [f"analytics.{model}"],
        )
        assert [row[0] for row in actual] == types, model
