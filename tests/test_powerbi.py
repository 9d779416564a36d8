"""The Power BI project `export` writes: validated here as far as a machine without Power BI can.

- every JSON file against Microsoft's published schemas (vendored in tests/powerbi_schemas),
- the TMDL read by two parsers that share no code with the generator: tests/tmdl_grammar.py
  (strict) and powerbi-tmdl-tools' TmdlParser (a third party's),
- DAX measures and M queries parsed by pbi_parsers,
- every table, column and relationship checked against the Parquet (or CSV) files
  themselves: the file exists, the columns and their types match, each relationship is
  one (unique key in a dimension) to many (every fact value found there).
"""

import json
import re
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import jsonschema
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tmdl_grammar
import tmdl_parser
from conftest import WORKER, _create_database, _drop_database
from pbi_parsers import dax
from pbi_parsers import pq as power_query
from referencing import Registry, Resource

SCHEMAS_DIR = Path(__file__).parent / "powerbi_schemas"
PUBLISHED = "https://developer.microsoft.com/json-schemas/"
JSON_SUFFIXES = {".json", ".pbip", ".pbir", ".pbism", ".platform"}
# The star schema from exports/README.md: (fact, column) -> (dimension, key).
STAR = {
    ("fact_expenses", "user_id"): ("dim_user", "user_id"),
    ("fact_expenses", "category_id"): ("dim_category", "category_id"),
    ("fact_expenses", "date"): ("dim_date", "date"),
    ("fact_budgets", "user_id"): ("dim_user", "user_id"),
    ("fact_budgets", "category_id"): ("dim_category", "category_id"),
    ("fact_budgets", "month"): ("dim_date", "date"),
    ("alerts", "user_id"): ("dim_user", "user_id"),
    ("alerts", "category_id"): ("dim_category", "category_id"),
}
MEASURES = {"Total Spent", "Budget", "Remaining", "% Used", "Rolling 3-month average", "Alerts"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory, server_url, seeded_template):
    """The sample seeds plus a month of spending and an alert, run and exported once."""
    from click.testing import CliRunner

    from cli import cli

    name = f"tracker_t_powerbi_{WORKER}"
    url = _create_database(server_url, name, seeded_template)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                """
                insert into expenses (user_id, category_id, amount, date, note)
                select users.id, categories.id, 9000.00, date '2025-06-03', 'Groceries, "bulk"'
                from users cross join categories
                where users.email = 'aman@example.com' and categories.name = 'Food'
                """
            )
            conn.execute(
                """
                insert into budgets (user_id, category_id, month, amount)
                select users.id, categories.id, date '2025-06-01', 100.00
                from users cross join categories
                where users.email = 'aman@example.com' and categories.name = 'Food'
                """
            )
        out = tmp_path_factory.mktemp("export")
        runner = CliRunner()
        for args in (["run"], ["export", "--out", str(out)]):
            result = runner.invoke(cli, ["--database-url", url, *args], catch_exceptions=False)
            assert result.exit_code == 0, result.output
        assert "SpendingTracker.pbip" in result.output
        yield out
    finally:
        _drop_database(server_url, name)


def _registry() -> tuple[Registry, dict]:
    registry, by_id = Registry(), {}
    for path in SCHEMAS_DIR.rglob("*.json"):
        schema = json.loads(path.read_text(encoding="utf-8"))
        resource = Resource.from_contents(schema)
        # Schemas refer to each other by relative path; the files also carry their $id.
        relative = PUBLISHED + path.relative_to(SCHEMAS_DIR).as_posix()
        registry = registry.with_resource(schema["$id"], resource).with_resource(relative, resource)
        by_id[schema["$id"]] = schema
    return registry, by_id


def _validate(document: dict, registry: Registry, by_id: dict) -> list[str]:
    schema = by_id[document["$schema"]]
    validator = jsonschema.Draft7Validator(schema, registry=registry)
    return [
        f"{list(error.absolute_path)}: {error.message[:200]}"
        for error in validator.iter_errors(document)
    ]


def _model_dir(exported: Path) -> Path:
    return exported / "powerbi" / "SpendingTracker.SemanticModel" / "definition"


def _tables(exported: Path) -> dict[str, tmdl_grammar.Node]:
    tables = {}
    for path in sorted((_model_dir(exported) / "tables").glob("*.tmdl")):
        root = tmdl_grammar.parse(path.read_text(encoding="utf-8"), str(path))
        (table,) = root.children
        assert table.type == "table" and table.name == path.stem
        tables[table.name] = table
    return tables


def _relationships(exported: Path) -> list[tuple[str, str, str, str]]:
    path = _model_dir(exported) / "relationships.tmdl"
    root = tmdl_grammar.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in root.children:
        assert node.type == "relationship"
        from_table, from_column = node.properties["fromColumn"].split(".")
        to_table, to_column = node.properties["toColumn"].split(".")
        # Defaults only: many to one, filtering from the dimension to the fact.
        assert not {"fromCardinality", "toCardinality", "crossFilteringBehavior"} & set(
            node.properties
        )
        found.append((from_table, from_column, to_table, to_column))
    return found


def _expected_type(arrow_type: pa.DataType) -> str:
    """The Power BI data type a Parquet column must get (Fixed decimal for money)."""
    if pa.types.is_decimal(arrow_type):
        return "decimal" if arrow_type.scale == 2 else "double"
    if pa.types.is_integer(arrow_type):
        return "int64"
    if pa.types.is_date(arrow_type) or pa.types.is_timestamp(arrow_type):
        return "dateTime"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    raise AssertionError(f"unexpected Parquet type {arrow_type}")


def _source_file(partition_source: str) -> str:
    match = re.search(r'File\.Contents\(DataDir & "([^"]+)"\)', partition_source)
    assert match, partition_source
    return match.group(1)


def test_powerbi_json_files_validate_against_microsofts_schemas(exported):
    registry, by_id = _registry()
    project = exported / "powerbi"
    documents = [
        path
        for path in project.rglob("*")
        if path.is_file() and (path.suffix in JSON_SUFFIXES or path.name == ".platform")
    ]
    names = {path.name for path in documents}
    assert {
        "SpendingTracker.pbip",
        "definition.pbir",
        "definition.pbism",
        ".platform",
        "report.json",
        "version.json",
        "pages.json",
        "page.json",
        "visual.json",
    } <= names
    for path in documents:
        document = json.loads(path.read_text(encoding="utf-8"))
        assert _validate(document, registry, by_id) == [], path
    # The validator is wired to the real schemas: a wrong document fails.
    visual = json.loads(next(project.rglob("visual.json")).read_text(encoding="utf-8"))
    visual["position"]["x"] = "left"
    assert _validate(visual, registry, by_id)
    pbir = json.loads((project / "SpendingTracker.Report" / "definition.pbir").read_text())
    pbir["datasetReference"]["byFile"] = pbir["datasetReference"].pop("byPath")
    assert _validate(pbir, registry, by_id)


def test_powerbi_paths_point_at_files_that_exist(exported):
    project = exported / "powerbi"
    pbip = json.loads((project / "SpendingTracker.pbip").read_text())
    (artifact,) = pbip["artifacts"]
    report = project / artifact["report"]["path"]
    assert (report / "definition.pbir").is_file()
    pbir = json.loads((report / "definition.pbir").read_text())
    model = (report / pbir["datasetReference"]["byPath"]["path"]).resolve()
    assert (model / "definition.pbism").is_file() and (
        model / "definition" / "model.tmdl"
    ).is_file()
    pages = json.loads((report / "definition" / "pages" / "pages.json").read_text())
    for page in pages["pageOrder"]:
        assert (report / "definition" / "pages" / page / "page.json").is_file()


def test_powerbi_tmdl_parses_with_two_independent_parsers(exported):
    definition = _model_dir(exported)
    files = sorted(definition.rglob("*.tmdl"))
    assert {path.name for path in files} >= {
        "database.tmdl",
        "model.tmdl",
        "expressions.tmdl",
        "relationships.tmdl",
    }
    strict = {
        path: tmdl_grammar.parse(path.read_text(encoding="utf-8"), str(path)) for path in files
    }
    database = strict[definition / "database.tmdl"].children[0]
    assert int(database.properties["compatibilityLevel"]) >= 1567
    model = strict[definition / "model.tmdl"]
    referenced = {node.name for node in model.children if node.type == "ref"}
    assert referenced == {path.stem for path in (definition / "tables").glob("*.tmdl")}
    # The third-party parser reads the same tables, columns, types and measures.
    for path in (definition / "tables").glob("*.tmdl"):
        other = tmdl_parser.TmdlParser(str(path)).parse()
        (table,) = strict[path].children
        assert other["name"] == table.name
        assert [(c["name"], c["dataType"], c["sourceColumn"]) for c in other["columns"]] == [
            (c.name, c.properties["dataType"], c.properties["sourceColumn"])
            for c in table.all("column")
        ]
        assert [(m["name"], m["expression"].strip()) for m in other.get("measures", [])] == [
            (m.name, m.value.strip()) for m in table.all("measure")
        ]
    other = tmdl_parser.TmdlParser(str(definition / "relationships.tmdl")).parse()
    assert sorted(
        (r["fromTable"], r["fromColumnName"], r["toTable"], r["toColumnName"])
        for r in other["relationships"]
    ) == sorted(_relationships(exported))
    # And the strict one refuses what TMDL does not allow.
    for bad in (
        "table t\n    lineageTag: x\n",
        "table t\n\tcolour: red\n",
        "table t\n\tcolumn c\n\t\tdataType: money\n",
        "measure m = 1\n",
    ):
        with pytest.raises(tmdl_grammar.TmdlError):
            tmdl_grammar.parse(bad)


def test_powerbi_tables_load_existing_parquet_files_with_matching_types(exported):
    manifest = json.loads((exported / "manifest.json").read_text())
    parquet_models = {entry["model"] for entry in manifest["files"] if entry["format"] == "parquet"}
    tables = _tables(exported)
    assert set(tables) == parquet_models
    for name, table in tables.items():
        (partition,) = table.all("partition")
        assert partition.properties["mode"] == "import"
        source = partition.properties["source"]
        assert power_query.to_ast(source) is not None, name
        relative = _source_file(source)
        assert relative == f"parquet/{name}.parquet"
        schema = pq.read_schema(exported / relative)
        columns = table.all("column")
        assert [column.name for column in columns] == schema.names
        for column in columns:
            arrow_type = schema.field(column.name).type
            assert column.properties["dataType"] == _expected_type(arrow_type), (name, column.name)
            assert column.properties["sourceColumn"] == column.name
            # The query gives every column its type; money as Currency.Type (Fixed decimal).
            m_type = "Currency.Type" if column.properties["dataType"] == "decimal" else None
            if m_type:
                assert f'{{"{column.name}", Currency.Type}}' in source
            assert f'{{"{column.name}", ' in source, (name, column.name)
    # Money is a Fixed decimal number, summed; dates are dates; ids are whole numbers.
    amount = {c.name: c for c in tables["fact_expenses"].all("column")}
    assert amount["amount"].properties["dataType"] == "decimal"
    assert amount["amount"].properties["summarizeBy"] == "sum"
    assert amount["date"].properties["dataType"] == "dateTime"
    assert amount["expense_id"].properties["dataType"] == "int64"
    assert '{"date", type date}' in tables["fact_expenses"].all("partition")[0].properties["source"]


def test_powerbi_datadir_parameter_defaults_to_the_export_folder(exported):
    path = _model_dir(exported) / "expressions.tmdl"
    (expression,) = tmdl_grammar.parse(path.read_text(encoding="utf-8"), str(path)).children
    assert expression.name == "DataDir"
    assert power_query.to_ast(expression.value) is not None
    default = re.match(r'^"((?:[^"]|"")*)" meta \[(.*)\]$', expression.value)
    assert default and "IsParameterQuery = true" in default.group(2)
    folder = Path(default.group(1).replace('""', '"'))
    assert folder.resolve() == exported.resolve()
    assert default.group(1).endswith("/")


def test_powerbi_relationships_are_one_to_many_on_existing_columns(exported):
    relationships = _relationships(exported)
    assert len(set(relationships)) == len(relationships)
    found = {(f, fc): (t, tc) for f, fc, t, tc in relationships}
    for key, target in STAR.items():
        assert found.get(key) == target, key
    for from_table, from_column, to_table, to_column in relationships:
        assert to_table.startswith("dim_") and not from_table.startswith("dim_")
        facts = pq.read_table(exported / "parquet" / f"{from_table}.parquet")
        dimension = pq.read_table(exported / "parquet" / f"{to_table}.parquet")
        assert facts.schema.field(from_column).type == dimension.schema.field(to_column).type
        keys = dimension.column(to_column).to_pylist()
        assert len(keys) == len(set(keys)), f"{to_table}.{to_column} is not unique"
        values = {value for value in facts.column(from_column).to_pylist() if value is not None}
        assert values <= set(keys), (from_table, from_column)
    hidden = {
        (table.name, column.name)
        for table in _tables(exported).values()
        for column in table.all("column")
        if "isHidden" in column.flags
    }
    assert ("fact_expenses", "user_id") in hidden and ("fact_expenses", "date") not in hidden


def test_powerbi_dim_date_is_the_date_table(exported):
    table = _tables(exported)["dim_date"]
    assert table.properties.get("dataCategory") == "Time"
    keys = [column for column in table.all("column") if "isKey" in column.flags]
    assert [column.name for column in keys] == ["date"]
    assert keys[0].properties["dataType"] == "dateTime"
    days = sorted(
        pq.read_table(exported / "parquet" / "dim_date.parquet").column("date").to_pylist()
    )
    # Power BI's rule for a date table: unique, continuous days.
    assert all(later - earlier == timedelta(days=1) for earlier, later in pairwise(days))
    sort_by = {c.name: c.properties.get("sortByColumn") for c in table.all("column")}
    assert sort_by["month_name"] == "month" and sort_by["weekday_name"] == "weekday"


def test_powerbi_measures_parse_and_reference_the_model(exported):
    tables = _tables(exported)
    columns = {
        (table, column.name) for table, node in tables.items() for column in node.all("column")
    }
    measures = {
        measure.name: measure for node in tables.values() for measure in node.all("measure")
    }
    assert set(measures) == MEASURES
    for name, measure in measures.items():
        assert measure.properties.get("formatString"), name
        assert dax.to_ast(measure.value) is not None, name
        for table, column in re.findall(r"\b([a-z_]+)\[([a-z_0-9]+)\]", measure.value):
            assert (table, column) in columns, (name, table, column)
        for reference in re.findall(r"(?<![a-z_\]])\[([^\]]+)\]", measure.value):
            assert reference in measures, (name, reference)
    assert measures["% Used"].properties["formatString"].endswith("%")
    assert measures["Total Spent"].properties["formatString"] == "#,0.00"


def test_powerbi_report_page_has_the_visuals_and_slicers(exported):
    tables = _tables(exported)
    fields = {
        (table, column.name) for table, node in tables.items() for column in node.all("column")
    }
    fields |= {
        (table, measure.name) for table, node in tables.items() for measure in node.all("measure")
    }
    visuals = {}
    for path in (exported / "powerbi").rglob("visual.json"):
        visual = json.loads(path.read_text(encoding="utf-8"))
        assert visual["name"] == path.parent.name
        refs = re.findall(
            r'"Entity": "([^"]+)"\}\}, "Property": "([^"]+)"', json.dumps(visual["visual"])
        )
        assert refs, path
        for ref in refs:
            assert ref in fields, (path, ref)
        visuals[visual["name"]] = (visual["visual"]["visualType"], set(refs))
    kinds = [kind for kind, _ in visuals.values()]
    assert {"lineChart", "clusteredBarChart", "tableEx", "card"} <= set(kinds)
    slicers = set().union(*(refs for kind, refs in visuals.values() if kind == "slicer"))
    assert slicers == {
        ("dim_user", "name"),
        ("dim_date", "month_start"),
        ("dim_category", "category"),
    }
    table = next(refs for kind, refs in visuals.values() if kind == "tableEx")
    assert ("fact_expenses", "note") in table and ("fact_expenses", "amount") in table
    line = next(refs for kind, refs in visuals.values() if kind == "lineChart")
    assert ("fact_expenses", "Total Spent") in line
    cards = set().union(*(refs for kind, refs in visuals.values() if kind == "card"))
    assert {
        ("fact_expenses", "Total Spent"),
        ("fact_budgets", "Budget"),
        ("fact_budgets", "% Used"),
    } <= cards


def test_powerbi_project_follows_a_new_column_and_a_csv_export(seeded_url, run_cli, tmp_path):
    assert run_cli(seeded_url, "run").exit_code == 0
    # A mart that gains a column (as if its model file had one more): the project has it.
    with psycopg.connect(seeded_url, autocommit=True) as conn:
        # The marts are tables (issue 11): replace the table, as `run` would.
        conn.execute("drop table analytics.dim_category")
        conn.execute(
            """
            create table analytics.dim_category as
            select category_id, category, description, color, 10::bigint as sort_order
            from analytics.stg_categories
            """
        )
    result = run_cli(seeded_url, "export", "--out", str(tmp_path), "--format", "csv")
    assert result.exit_code == 0, result.output
    table = _tables(tmp_path)["dim_category"]
    columns = {column.name: column for column in table.all("column")}
    assert list(columns) == ["category_id", "category", "description", "color", "sort_order"]
    assert columns["sort_order"].properties["dataType"] == "int64"
    # CSV only: every table loads its CSV file with explicit types, and nothing else.
    for name, node in _tables(tmp_path).items():
        source = node.all("partition")[0].properties["source"]
        assert list(power_query.Lexer(source).scan())  # raises on a character M does not have
        assert _source_file(source) == f"csv/{name}.csv"
        assert (tmp_path / "csv" / f"{name}.csv").is_file()
        assert "Csv.Document(" in source and "Parquet" not in source
        header = (tmp_path / "csv" / f"{name}.csv").read_text(encoding="utf-8-sig").split("\n")[0]
        assert [c.name for c in node.all("column")] == header.split(",")
    assert '{"sort_order", Int64.Type}' in table.all("partition")[0].properties["source"]


def test_powerbi_project_is_skipped_with_no_powerbi(seeded_url, run_cli, tmp_path):
    assert run_cli(seeded_url, "run").exit_code == 0
    result = run_cli(seeded_url, "export", "--out", str(tmp_path), "--no-powerbi")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "powerbi").exists()
    result = run_cli(seeded_url, "export", "--out", str(tmp_path))
    first = sorted(p.relative_to(tmp_path) for p in (tmp_path / "powerbi").rglob("*"))
    result = run_cli(seeded_url, "export", "--out", str(tmp_path), "--select", "fact_expenses")
    assert result.exit_code == 0, result.output
    # A smaller export gets a smaller project: never a table without its file.
    assert [p.stem for p in (_model_dir(tmp_path) / "tables").glob("*.tmdl")] == ["fact_expenses"]
    assert len(first) > len(list((tmp_path / "powerbi").rglob("*")))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
