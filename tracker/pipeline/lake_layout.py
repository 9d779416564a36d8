"""The lake's layout: its tables, partition paths, and the names of its manifest, journal and
staging folders (tracker/pipeline/lake.py explains the design)."""

from datetime import date

FACTS = ("fact_expenses", "fact_budgets", "alerts")
# Each fact's key: the id of its base table, the id the change log's ranges are made of.
FACT_KEYS = {"fact_expenses": "expense_id", "fact_budgets": "budget_id", "alerts": "alert_id"}
DIMENSIONS = ("dim_user", "dim_category", "dim_date")
LAKE_MODELS = FACTS + DIMENSIONS
PARTITION_COLUMN = "month"
MANIFEST = "manifest.json"
JOURNAL = ".lake-journal.json"
STAGING_PREFIX = ".lake-staging-"
# 2: a fact's month is written in row groups of ROW_GROUP_ROWS rows (1: one row group). A lake
# of another layout is rebuilt in full once, so every file has the bytes --full gives.
LAYOUT = 2
# Rows per Parquet row group of a fact's month (DuckDB's default is 122,880: a whole month of
# 1M expenses in one group). The writer holds a row group in memory until it is written, so
# smaller groups cost a rewritten month less memory and CPU (~20 MB of page faults fewer);
# the files grow by under 0.1 %, and readers (DuckDB, Spark, Power BI) read any number of groups
# (DuckDB and Spark split their work by row group).
ROW_GROUP_ROWS = 16_384
PART_FILE = "part-00000.parquet"
# The dimension whose rows follow the years the date facts span (see _years_fingerprint).
YEARS_DIMENSION = "dim_date"
DATE_FACTS = ("fact_expenses", "fact_budgets")
GENERATOR = "smart-spending-tracker export --lake"


def partition_path(model: str, month: date) -> str:
    """The lake path of one fact's month: fact/year=YYYY/month=YYYY-MM-01/part-00000.parquet."""
    return f"{model}/year={month.year}/month={month.isoformat()}/{PART_FILE}"


def is_lake_manifest(manifest: dict) -> bool:
    """True for a manifest written by export --lake (the plain export's has no layout)."""
    return manifest.get("generator") == GENERATOR


def staging_name(relative: str) -> str:
    """A lake file's name in the staging folder: flat, so one fsync of the folder makes every
    staged name durable (fact/year=/month=/part -> fact.year=.month=.part)."""
    return relative.replace("/", ".")
