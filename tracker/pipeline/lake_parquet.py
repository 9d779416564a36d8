"""Writing the lake's Parquet files into the staging folder, from the CSV each model was copied
into: one file per dimension, one per month of a fact, a changed month merged with the file
the lake has (tracker/pipeline/lake.py explains the design)."""

from pathlib import Path

from tracker.pipeline.export import file_stats, size_decimals
from tracker.pipeline.lake_layout import (
    DIMENSIONS,
    FACT_KEYS,
    PARTITION_COLUMN,
    ROW_GROUP_ROWS,
    partition_path,
    staging_name,
)
from tracker.pipeline.types import CSV_READER
from tracker.text import file_sha256
from tracker.text import quote_identifier as _duck_identifier


def finish_lake_model(duck, item, columns, csv_path: Path, staging: Path, wanted, merges):
    """Write one model's Parquet file(s) into staging: one per month for a fact.

    A merged month (see _merge_sources) is the lake's old file without the id range, plus
    the range's rows just read; every other month is the rows just read.
    """
    columns = size_decimals(duck, item, columns, csv_path)
    params = {
        "path": str(csv_path),
        "columns": {column.name: column.duckdb_type for column in columns},
    }
    order = ", ".join(_duck_identifier(name) for name in item.order_by)
    names = [(column.name, column.duckdb_type) for column in columns]
    if item.name in DIMENSIONS:
        target = staging / f"{item.name}.parquet"
        duck.sql(f"select * from {CSV_READER} order by {order}", params=params).write_parquet(
            str(target), compression="snappy"
        )
        rows, sums = file_stats(duck, "read_parquet($path)", {"path": str(target)}, columns)
        return item.name, [_lake_entry(item.name, target.name, target, rows, sums, names, None)]
    table = f"lake_{item.name}"
    duck.execute(f"create or replace temp table {table} as select * from {CSV_READER}", params)
    months = {
        row[0]
        for row in duck.execute(f"select distinct {PARTITION_COLUMN} from {table}").fetchall()
    }
    select_list = ", ".join(_duck_identifier(column.name) for column in columns)
    key = _duck_identifier(FACT_KEYS[item.name])
    # Every month is written through the same union with an empty Parquet file (and, for a
    # merged month, the lake's old one). DuckDB marks a column REQUIRED when the statistics
    # of what it reads show no null, and an empty Parquet file brings none; so every column is
    # OPTIONAL and a file's bytes depend on its rows alone: an incremental export writes the
    # very bytes a full one would (tests/test_lake.py compares the sha256).
    empty = csv_path.with_suffix(".empty.parquet")
    duck.sql(f"select * from {table} limit 0").write_parquet(str(empty))
    if list(item.order_by) == [FACT_KEYS[item.name]]:
        # Ordered by construction, not sorted: the lake's old file is in key order, and so
        # are the rows just read (the export query's ORDER BY, kept by the CSV and the temp
        # table), all of them in the range first..last; so its rows below the range, the new
        # rows, then its rows above the range are the month in key order, and DuckDB keeps
        # the order of UNION ALL's inputs and of a single table's rows ("order
        # preservation" in its documentation). The same query writes every month of a full
        # export (the old file empty), so the bytes stay equal; skipping the sort saves a
        # good part of a merged month's CPU and memory.
        query = (
            f"select {select_list} from read_parquet($old) where {key} < $first union all "
            f"select * from {table} where {PARTITION_COLUMN} = $month union all "
            f"select {select_list} from read_parquet($old) where {key} > $last union all "
            f"select {select_list} from read_parquet($empty)"
        )
    else:
        query = (
            f"select * from (select * from {table} where {PARTITION_COLUMN} = $month union all "
            f"select {select_list} from read_parquet($old) where {key} not between $first and "
            f"$last union all select {select_list} from read_parquet($empty)) order by {order}"
        )
    entries = []
    for month in sorted(months | {month for month, merge in merges.items() if merge[0]}):
        relative = partition_path(item.name, month)
        target = staging / staging_name(relative)
        old_path, first, last = merges.get(month, (None, 0, 0))
        relation = duck.sql(
            query,
            params={
                "month": month,
                "old": str(old_path or empty),
                "first": first,
                "last": last,
                "empty": str(empty),
            },
        )
        if month not in months and relation.aggregate("count(*)").fetchall() == [(0,)]:
            continue  # every row of a merged month was deleted: its old file is removed
        relation.write_parquet(str(target), compression="snappy", row_group_size=ROW_GROUP_ROWS)
        rows, sums = file_stats(duck, "read_parquet($path)", {"path": str(target)}, columns)
        entries.append(_lake_entry(item.name, relative, target, rows, sums, names, month))
    duck.execute(f"drop table {table}")
    return item.name, entries


def _lake_entry(model, relative, path: Path, rows, sums, columns, month) -> dict:
    entry = {
        "path": relative,
        "model": model,
        "format": "parquet",
        "rows": rows,
        "bytes": path.stat().st_size,
        "sha256": file_sha256(path),
        "columns": [{"name": name, "type": type_} for name, type_ in columns],
        "money_sums": sums,
    }
    if month is not None:
        entry["partition"] = {"year": month.year, "month": month.isoformat()}
    return entry
