"""The one PostgreSQL -> DuckDB type map: every mapped type reads COPY's CSV back exactly."""

import psycopg
import pytest

from tracker.pipeline import duck as tracker_duck
from tracker.pipeline.types import (
    CSV_READER,
    DUCKDB_TYPES,
    canonical_types,
    decimal_type,
    duckdb_type,
)

# One PostgreSQL column per mapped type name (and numerics), with a value that shows a wrong
# mapping: a time zone offset, a fraction of a second, a cent, a quote and a comma.
COLUMNS = {
    "int2": ("smallint", "-32768"),
    "int4": ("integer", "2147483647"),
    "int8": ("bigint", "9223372036854775807"),
    "bool": ("boolean", "true"),
    "date": ("date", "'2025-05-31'"),
    "timestamp": ("timestamp", "'2025-05-31 23:59:59.123456'"),
    "timestamptz": ("timestamptz", "'2025-05-31 23:30:00.5+05:30'"),
    "time": ("time", "'13:14:15.5'"),
    "float4": ("real", "1.5"),
    "float8": ("double precision", "0.1"),
    "uuid": ("uuid", "'0b8f5c52-1d3c-4d4e-9b7a-3c1f2e4d5a6b'"),
    "text": ("text", "'say \"hi\", ok'"),
    "varchar": ("varchar(20)", "'ok'"),
    "bpchar": ("char(3)", "'INR'"),
    "numeric": ("numeric(12, 2)", "1234567890.01"),
}


def test_every_postgres_type_in_the_map_is_tested():
    assert set(DUCKDB_TYPES) | {"numeric"} == set(COLUMNS)


def test_timestamptz_is_duckdbs_timestamp_with_time_zone():
    duck = tracker_duck.connect()
    (canonical,) = canonical_types(duck, [duckdb_type("timestamptz", -1)])
    duck.execute("create table t (fired timestamp with time zone)")
    (declared,) = duck.execute(
        "select data_type from duckdb_columns() where table_name = 't'"
    ).fetchone()
    assert canonical == declared == "TIMESTAMP WITH TIME ZONE"


@pytest.mark.parametrize(
    ("typmod", "expected"),
    [
        (-1, None),  # plain numeric: the data decides
        (((12 << 16) | 2) + 4, "DECIMAL(12,2)"),
        (((38 << 16) | 2) + 4, "DECIMAL(38,2)"),
        (((39 << 16) | 2) + 4, None),  # wider than DuckDB's DECIMAL
    ],
)
def test_decimal_type_decodes_the_typmod(typmod, expected):
    assert decimal_type(typmod) == expected
    assert duckdb_type("numeric", typmod) == expected


def test_copy_csv_reads_back_exactly_with_the_mapped_types(db_url, tmp_path):
    names = list(COLUMNS)
    with psycopg.connect(db_url) as conn:
        conn.execute("set timezone = 'UTC'")
        conn.execute(
            "create temporary table typed ("
            + ", ".join(f"c_{name} {pg_type}" for name, (pg_type, _) in COLUMNS.items())
            + ")"
        )
        conn.execute(
            "insert into typed values ("
            + ", ".join(value for _, value in COLUMNS.values())
            + "), ("
            + ", ".join("null" for _ in COLUMNS)
            + ")"
        )
        rows = conn.execute(
            "select attribute.attname, type.typname, attribute.atttypmod "
            "from pg_attribute as attribute join pg_type as type on type.oid = atttypid "
            "where attrelid = 'pg_temp.typed'::regclass and attnum > 0 order by attnum"
        ).fetchall()
        types = {column: duckdb_type(type_name, typmod) for column, type_name, typmod in rows}
        # Each value as PostgreSQL prints it, to compare with DuckDB's reading of the file.
        expected = conn.execute(
            "select " + ", ".join(f"c_{name}::text" for name in names) + " from typed"
        ).fetchall()
        path = tmp_path / "typed.csv"
        with (
            open(path, "wb") as target,
            conn.cursor().copy("copy typed to stdout with (format csv, header)") as copy,
        ):
            for chunk in copy:
                target.write(chunk)
    duck = tracker_duck.connect()
    duck.execute(
        f"create table typed as select * from {CSV_READER}",
        {"path": str(path), "columns": types},
    )
    declared = dict(
        duck.execute(
            "select column_name, data_type from duckdb_columns() where table_name = 'typed'"
        ).fetchall()
    )
    assert list(declared.values()) == canonical_types(duck, list(types.values()))
    read = duck.execute(
        "select "
        + ", ".join(
            f"strftime(c_{name}, '%Y-%m-%d %H:%M:%S.%f+00')"
            if name == "timestamptz"
            else f"strftime(c_{name}, '%Y-%m-%d %H:%M:%S.%f')"
            if name == "timestamp"
            else f"cast(c_{name} as varchar)"
            for name in names
        )
        + " from typed"
    ).fetchall()
    normalized = [
        tuple(_postgres_text(name, value) for name, value in zip(names, row, strict=True))
        for row in expected
    ]
    assert read == normalized


def _postgres_text(name: str, value: str | None) -> str | None:
    """PostgreSQL's text of a value in the form DuckDB's cast prints it."""
    if value is None:
        return None
    if name in ("timestamp", "timestamptz"):
        stamp = value.removesuffix("+00")
        day, _, clock = stamp.partition(" ")
        seconds, _, fraction = clock.partition(".")
        text = f"{day} {seconds}.{fraction.ljust(6, '0')}"
        return text + "+00" if name == "timestamptz" else text
    if name == "time":
        seconds, _, fraction = value.partition(".")
        return f"{seconds}.{fraction}" if fraction else value
    return value
