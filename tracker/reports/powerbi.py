"""The Power BI project: a .pbip with a TMDL semantic model and a PBIR report over an export.

Written by `export` next to the files it describes (`<export>/powerbi/`), from the export's
own metadata, so it cannot drift from them:

- tables and columns: the manifest's file list and column types (Parquet's when the export
  has Parquet files, else PostgreSQL's for the CSV files); descriptions: the models' config;
- relationships: the models' `relationships` data tests (a column whose every value exists
  in a dimension's key), dimension (one) to fact (many), single direction;
- the date table: dim_date, keyed on its `date` column;
- measures: written here, each only when the columns it reads are exported.

Layout (Microsoft's Power BI Project format: TMDL for the model, PBIR for the report):

    powerbi/SpendingTracker.pbip
    powerbi/SpendingTracker.SemanticModel/{.platform, definition.pbism}
    powerbi/SpendingTracker.SemanticModel/definition/{database, model, expressions,
        relationships}.tmdl and tables/<model>.tmdl
    powerbi/SpendingTracker.Report/{.platform, definition.pbir}
    powerbi/SpendingTracker.Report/definition/{version.json, report.json, pages/...}

The report (PBIR: pages and visuals) is written by powerbi_report.py. The model loads the
files from the `DataDir` parameter (default: the export folder as written here); ids
(lineage tags, logical ids) are uuid5 of the object's name, so the same export gives the
same project, byte for byte.
"""

import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from tracker.errors import TrackerError

NAME = "SpendingTracker"
FOLDER = "powerbi"
DATE_TABLE = ("dim_date", "date")
SCHEMA_ROOT = "https://developer.microsoft.com/json-schemas/fabric"
SCHEMAS = {
    "pbip": f"{SCHEMA_ROOT}/pbip/pbipProperties/1.0.0/schema.json",
    "platform": f"{SCHEMA_ROOT}/gitIntegration/platformProperties/2.0.0/schema.json",
    "pbism": f"{SCHEMA_ROOT}/item/semanticModel/definitionProperties/1.0.0/schema.json",
    "pbir": f"{SCHEMA_ROOT}/item/report/definitionProperties/2.0.0/schema.json",
    "version": f"{SCHEMA_ROOT}/item/report/definition/versionMetadata/1.0.0/schema.json",
    "report": f"{SCHEMA_ROOT}/item/report/definition/report/3.0.0/schema.json",
    "pages": f"{SCHEMA_ROOT}/item/report/definition/pagesMetadata/1.0.0/schema.json",
    "page": f"{SCHEMA_ROOT}/item/report/definition/page/2.0.0/schema.json",
    "visual": f"{SCHEMA_ROOT}/item/report/definition/visualContainer/2.3.0/schema.json",
}
COMPATIBILITY_LEVEL = 1600
MONEY_FORMAT = "#,0.00"
NAMESPACE = uuid.UUID("5d1b7f0e-2f7a-4c1e-9a43-7c1f3f0b8e21")
# Text columns shown in the order of a number column (Power BI's "Sort by column").
SORT_BY = {("dim_date", "month_name"): "month", ("dim_date", "weekday_name"): "weekday"}


@dataclass(frozen=True)
class ColumnType:
    """How one exported column is typed in Power BI: model type, M type, format, summary."""

    data_type: str  # TMDL dataType: int64, decimal (Fixed decimal), double, dateTime, ...
    m_type: str  # Power Query type for Table.TransformColumnTypes
    format_string: str | None
    summarize_by: str  # sum or none


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    path: str  # the data file, relative to the export folder
    file_format: str  # parquet or csv
    columns: list[tuple[str, str, ColumnType, str]]  # name, export type, type, description


@dataclass(frozen=True)
class Relationship:
    from_table: str  # the fact (many side)
    from_column: str
    to_table: str  # the dimension (one side)
    to_column: str


@dataclass(frozen=True)
class Measure:
    table: str
    name: str
    expression: str
    format_string: str
    description: str
    reads: tuple[tuple[str, str], ...]  # (table, column) it needs


MEASURES = (
    Measure(
        "fact_expenses",
        "Total Spent",
        "SUM ( fact_expenses[amount] )",
        MONEY_FORMAT,
        "Sum of the expenses' amounts in the filter context.",
        (("fact_expenses", "amount"),),
    ),
    Measure(
        "fact_budgets",
        "Budget",
        "SUM ( fact_budgets[budget_amount] )",
        MONEY_FORMAT,
        "Sum of the monthly budgets in the filter context.",
        (("fact_budgets", "budget_amount"),),
    ),
    Measure(
        "fact_budgets",
        "Remaining",
        "[Budget] - [Total Spent]",
        MONEY_FORMAT,
        "Budget minus spent; negative when over budget.",
        (("fact_budgets", "budget_amount"), ("fact_expenses", "amount")),
    ),
    Measure(
        "fact_budgets",
        "% Used",
        "DIVIDE ( [Total Spent], [Budget] )",
        "0.0 %",
        "Spent as a share of the budget (blank without a budget).",
        (("fact_budgets", "budget_amount"), ("fact_expenses", "amount")),
    ),
    Measure(
        "fact_expenses",
        "Rolling 3-month average",
        "\n".join(
            [
                "VAR LastDay = MAX ( dim_date[date] )",
                "VAR Last3Months = DATESINPERIOD ( dim_date[date], LastDay, -3, MONTH )",
                "VAR FirstMonth =",
                "    EOMONTH ( CALCULATE ( MIN ( fact_expenses[date] ), "
                "REMOVEFILTERS ( dim_date ) ), -1 ) + 1",
                "VAR MonthsInWindow =",
                "    COUNTROWS (",
                "        FILTER (",
                "            CALCULATETABLE ( VALUES ( dim_date[month_start] ), Last3Months ),",
                "            dim_date[month_start] >= FirstMonth",
                "        )",
                "    )",
                "RETURN",
                "    DIVIDE ( CALCULATE ( [Total Spent], Last3Months ), MonthsInWindow )",
            ]
        ),
        MONEY_FORMAT,
        "Spent in the month shown and the two before it, divided by the number of those "
        "months since the first expense (as rolling_trend.rolling_3m_avg for one user).",
        (
            ("fact_expenses", "amount"),
            ("fact_expenses", "date"),
            ("dim_date", "date"),
            ("dim_date", "month_start"),
        ),
    ),
    Measure(
        "alerts",
        "Alerts",
        "COUNTROWS ( alerts )",
        "0",
        "Number of budget alerts in the filter context.",
        (("alerts", "alert_id"),),
    ),
)


@dataclass(frozen=True)
class PowerBIProject:
    """What was written: the folder, the .pbip to open, and counts."""

    folder: Path
    pbip: Path
    tables: int
    relationships: int
    measures: int


def write_powerbi_project(
    models, manifest: dict, out_dir: Path | str, data_dir: str | None = None
) -> PowerBIProject:
    """Write <out_dir>/powerbi/ for the export described by manifest, replacing the old one."""
    out_dir = Path(out_dir).absolute()
    data_dir = data_dir or str(out_dir) + os.sep
    tables = project_tables(models, manifest)
    relationships = project_relationships(models, tables)
    columns = {(table.name, column[0]) for table in tables for column in table.columns}
    measures = [m for m in MEASURES if all(read in columns for read in m.reads)]
    files = _semantic_model_files(tables, relationships, measures, data_dir)
    from tracker.reports.powerbi_report import report_files

    files.update(report_files(tables, measures))
    files[f"{NAME}.pbip"] = json_text(
        {
            "$schema": SCHEMAS["pbip"],
            "version": "1.0",
            "artifacts": [{"report": {"path": f"{NAME}.Report"}}],
            "settings": {"enableAutoRecovery": True},
        }
    )
    files[".gitignore"] = "**/.pbi/localSettings.json\n**/.pbi/cache.abf\n"
    folder = out_dir / FOLDER
    _replace_folder(folder, files)
    return PowerBIProject(
        folder, folder / f"{NAME}.pbip", len(tables), len(relationships), len(measures)
    )


# --- the model's metadata ------------------------------------------------------------------


def column_type(export_type: str, name: str) -> ColumnType:
    """The Power BI type of a column from its type in the export (Parquet's or PostgreSQL's)."""
    text = export_type.strip().upper()
    decimal = re.fullmatch(r"(?:DECIMAL|NUMERIC)\((\d+),\s*(\d+)\)", text)
    key_like = name.endswith("_id") or name in (
        "year",
        "quarter",
        "month",
        "iso_week",
        "weekday",
        "rank",
    )
    if decimal and decimal.group(2) == "2":
        return ColumnType("decimal", "Currency.Type", MONEY_FORMAT, "sum")
    if decimal or text in ("NUMERIC", "DOUBLE", "FLOAT", "REAL", "DOUBLE PRECISION"):
        scale = int(decimal.group(2)) if decimal else 2
        return ColumnType("double", "type number", "0." + "0" * scale if scale else "0", "none")
    if text in ("BIGINT", "INTEGER", "SMALLINT", "INT", "INT8", "INT4", "INT2", "HUGEINT"):
        return ColumnType("int64", "Int64.Type", "0", "none" if key_like else "sum")
    if text == "DATE":
        return ColumnType("dateTime", "type date", "yyyy-mm-dd", "none")
    if text in ("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE"):
        return ColumnType("dateTime", "type datetimezone", "yyyy-mm-dd hh:nn:ss", "none")
    if text in ("TIMESTAMP", "TIMESTAMP WITHOUT TIME ZONE"):
        return ColumnType("dateTime", "type datetime", "yyyy-mm-dd hh:nn:ss", "none")
    if text in ("BOOLEAN", "BOOL"):
        return ColumnType("boolean", "type logical", None, "none")
    if text in ("VARCHAR", "TEXT") or text.startswith(("CHARACTER", "VARCHAR(")):
        return ColumnType("string", "type text", None, "none")
    raise TrackerError(
        f'column "{name}" has export type {export_type}, which the Power BI project '
        "does not map. Cast it to a numeric, integer, date, timestamp, boolean or text type "
        "in its model."
    )


def project_tables(models, manifest: dict) -> list[Table]:
    """One table per exported model, from its file in the manifest (Parquet preferred)."""
    by_name = {model.name: model for model in models}
    chosen: dict[str, dict] = {}
    for entry in manifest["files"]:
        current = chosen.get(entry["model"])
        if current is None or (entry["format"] == "parquet" and current["format"] != "parquet"):
            chosen[entry["model"]] = entry
    tables = []
    for name in sorted(chosen):
        entry = chosen[name]
        model = by_name.get(name)
        described = model.columns if model else {}
        columns = []
        for column in entry["columns"]:
            config = described.get(column["name"], {})
            text = config.get("description", "") if isinstance(config, dict) else str(config)
            columns.append(
                (column["name"], column["type"], column_type(column["type"], column["name"]), text)
            )
        tables.append(
            Table(name, model.description if model else "", entry["path"], entry["format"], columns)
        )
    return tables


def project_relationships(models, tables: list[Table]) -> list[Relationship]:
    """Dimension-to-fact relationships from the models' `relationships` data tests."""
    present = {table.name: {column[0] for column in table.columns} for table in tables}
    found = []
    for model in models:
        if model.name not in present:
            continue
        for column, config in model.columns.items():
            tests = config.get("tests", []) if isinstance(config, dict) else []
            for test in tests:
                if not (isinstance(test, dict) and "relationships" in test):
                    continue
                target = test["relationships"]
                to_table, to_column = target.get("to"), target.get("field")
                # Only links to a dimension are modelled: a link between two facts (alerts'
                # budget_id to fact_budgets) is a data test, but as a relationship it would
                # give Power BI two paths from alerts to dim_user and dim_category.
                if (
                    str(to_table).startswith("dim_")
                    and to_table != model.name
                    and column in present[model.name]
                    and to_column in present.get(to_table, ())
                ):
                    found.append(Relationship(model.name, column, to_table, to_column))
    return sorted(set(found), key=lambda r: (r.to_table, r.from_table, r.from_column))


# --- TMDL -----------------------------------------------------------------------------------


def tmdl_name(name: str) -> str:
    """An object name as TMDL writes it: bare when simple, else in single quotes."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return name
    return "'" + name.replace("'", "''") + "'"


def _tag(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "/".join(parts)))


def _description(text: str, indent: int) -> list[str]:
    tabs = "\t" * indent
    return [f"{tabs}/// {line}".rstrip() for line in text.splitlines() if line.strip()]


def _m_string(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _semantic_model_files(tables, relationships, measures, data_dir: str) -> dict[str, str]:
    base = f"{NAME}.SemanticModel"
    files = {
        f"{base}/.platform": platform_file("SemanticModel"),
        f"{base}/definition.pbism": json_text(
            {"$schema": SCHEMAS["pbism"], "version": "4.2", "settings": {}}
        ),
        f"{base}/definition/database.tmdl": (
            f"database\n\tcompatibilityLevel: {COMPATIBILITY_LEVEL}\n"
        ),
        f"{base}/definition/expressions.tmdl": "\n".join(
            [
                "/// Folder holding the export's csv/ and parquet/ folders, "
                "ending with a separator.",
                f"expression DataDir = {_m_string(data_dir)} meta [IsParameterQuery = true, "
                'Type = "Text", IsParameterQueryRequired = true]',
                f"\tlineageTag: {_tag('expression', 'DataDir')}",
                "",
                "\tannotation PBI_ResultType = Text",
                "",
            ]
        ),
    }
    order = json.dumps(["DataDir", *(table.name for table in tables)], separators=(",", ":"))
    model_lines = [
        "model Model",
        "\tculture: en-US",
        "\tdefaultPowerBIDataSourceVersion: powerBI_V3",
        "\tsourceQueryCulture: en-US",
        "\tdataAccessOptions",
        "\t\tlegacyRedirects",
        "\t\treturnErrorValuesAsNull",
        "",
        f"annotation PBI_QueryOrder = {order}",
        "",
        "annotation __PBI_TimeIntelligenceEnabled = 0",
        "",
        *(f"ref table {tmdl_name(table.name)}" for table in tables),
        "",
    ]
    files[f"{base}/definition/model.tmdl"] = "\n".join(model_lines)
    relationship_lines = []
    for relationship in relationships:
        relationship_lines += [
            "relationship "
            + _tag("relationship", relationship.from_table, relationship.from_column),
            f"\tfromColumn: {tmdl_name(relationship.from_table)}."
            f"{tmdl_name(relationship.from_column)}",
            f"\ttoColumn: {tmdl_name(relationship.to_table)}.{tmdl_name(relationship.to_column)}",
            "",
        ]
    files[f"{base}/definition/relationships.tmdl"] = "\n".join(relationship_lines)
    # Fact keys are hidden so reports slice by the dimensions; dates stay visible.
    keys = {(r.from_table, r.from_column) for r in relationships if r.from_column.endswith("_id")}
    for table in tables:
        files[f"{base}/definition/tables/{table.name}.tmdl"] = _table_tmdl(
            table, [m for m in measures if m.table == table.name], keys
        )
    return files


def _table_tmdl(table: Table, measures: list[Measure], hidden: set) -> str:
    is_date_table = table.name == DATE_TABLE[0]
    lines = [*_description(table.description, 0), f"table {tmdl_name(table.name)}"]
    if is_date_table:
        lines.append("\tdataCategory: Time")
    lines += [f"\tlineageTag: {_tag('table', table.name)}", ""]
    for measure in measures:
        lines += _description(measure.description, 1)
        expression = measure.expression.splitlines()
        if len(expression) == 1:
            lines.append(f"\tmeasure {tmdl_name(measure.name)} = {expression[0]}")
        else:
            lines.append(f"\tmeasure {tmdl_name(measure.name)} =")
            lines += [f"\t\t\t{line}" for line in expression]
        lines += [
            f"\t\tformatString: {measure.format_string}",
            f"\t\tlineageTag: {_tag('measure', table.name, measure.name)}",
            "",
        ]
    names = {column[0] for column in table.columns}
    for name, _, kind, description in table.columns:
        lines += _description(description, 1)
        lines += [f"\tcolumn {tmdl_name(name)}", f"\t\tdataType: {kind.data_type}"]
        if is_date_table and name == DATE_TABLE[1]:
            lines.append("\t\tisKey")
        if (table.name, name) in hidden:
            lines.append("\t\tisHidden")
        if kind.format_string:
            lines.append(f"\t\tformatString: {kind.format_string}")
        lines += [
            f"\t\tlineageTag: {_tag('column', table.name, name)}",
            f"\t\tsummarizeBy: {kind.summarize_by}",
            f"\t\tsourceColumn: {name}",
        ]
        sort_by = SORT_BY.get((table.name, name))
        if sort_by in names:
            lines.append(f"\t\tsortByColumn: {tmdl_name(sort_by)}")
        lines += ["", "\t\tannotation SummarizationSetBy = Automatic", ""]
    lines += [
        f"\tpartition {tmdl_name(table.name)} = m",
        "\t\tmode: import",
        "\t\tsource =",
        *(f"\t\t\t\t{line}" for line in _m_source(table)),
        "",
        "\tannotation PBI_ResultType = Table",
        "",
    ]
    return "\n".join(lines)


def _m_source(table: Table) -> list[str]:
    """The Power Query that loads one exported file with every column's type."""
    path = _m_string(table.path)
    types = ", ".join(f"{{{_m_string(name)}, {kind.m_type}}}" for name, _, kind, _ in table.columns)
    if table.file_format == "parquet":
        read = [
            f"    Source = Parquet.Document(File.Contents(DataDir & {path})),",
            f"    Typed = Table.TransformColumnTypes(Source, {{{types}}})",
        ]
    else:
        read = [
            f"    Source = Csv.Document(File.Contents(DataDir & {path}), "
            '[Delimiter = ",", Encoding = 65001, QuoteStyle = QuoteStyle.Csv]),',
            "    Promoted = Table.PromoteHeaders(Source, [PromoteAllScalars = true]),",
            f'    Typed = Table.TransformColumnTypes(Promoted, {{{types}}}, "en-US")',
        ]
    return ["let", *read, "in", "    Typed"]


# --- files ----------------------------------------------------------------------------------


def platform_file(item_type: str) -> str:
    """The .platform file of a Power BI item (its type, display name and logical id)."""
    return json_text(
        {
            "$schema": SCHEMAS["platform"],
            "metadata": {"type": item_type, "displayName": NAME},
            "config": {"version": "2.0", "logicalId": _tag("item", item_type)},
        }
    )


def json_text(value) -> str:
    """value as the project's JSON files are written: indented, UTF-8, a final newline."""
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def _replace_folder(folder: Path, files: dict[str, str]) -> None:
    """Write files into a new folder beside folder, then swap it in (never half a project)."""
    staging = folder.with_name(f".{folder.name}-new-{uuid.uuid4().hex[:8]}")
    retired = folder.with_name(f".{folder.name}-old-{uuid.uuid4().hex[:8]}")
    try:
        for relative, text in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8", newline="\n")
        if folder.exists():
            os.replace(folder, retired)
        os.replace(staging, folder)
    except OSError as exc:
        raise TrackerError(
            f"writing the Power BI project into {folder} failed: "
            f"{exc.strerror or exc}. Free some disk space or choose another --out."
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)
