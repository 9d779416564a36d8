"""PostgreSQL column types as DuckDB reads them, and how DuckDB reads a COPY CSV file.

The exporter (Parquet types, the manifest), the lake and engine parity all read PostgreSQL's
rows back in DuckDB with the types of PostgreSQL's catalog; this is the one mapping they use.
(verify.py keeps its own on purpose: it must not trust the code that wrote the export.)
"""

# PostgreSQL pg_type.typname -> DuckDB type; anything else is read as VARCHAR.
# timestamptz is TIMESTAMPTZ, DuckDB's own name for TIMESTAMP WITH TIME ZONE (the manifests
# and the lake say TIMESTAMPTZ); compare with DuckDB's catalog through canonical_types().
DUCKDB_TYPES = {
    "int2": "SMALLINT",
    "int4": "INTEGER",
    "int8": "BIGINT",
    "bool": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "timestamptz": "TIMESTAMPTZ",
    "time": "TIME",
    "float4": "FLOAT",
    "float8": "DOUBLE",
    "uuid": "UUID",
    "text": "VARCHAR",
    "varchar": "VARCHAR",
    "bpchar": "VARCHAR",
}
# The widest DECIMAL DuckDB (and Parquet through it) stores exactly.
MAX_DECIMAL_PRECISION = 38

# How DuckDB reads a CSV file PostgreSQL's COPY wrote: exactly COPY's CSV dialect, with
# explicit column types ($columns). A UTF-8 byte-order mark is skipped; quoted fields may hold
# newlines; an unquoted empty field is NULL and a quoted one ("") the empty string.
CSV_READER = (
    "read_csv($path, header = true, columns = $columns, auto_detect = false, delim = ',', "
    "quote = '\"', escape = '\"', nullstr = '', allow_quoted_nulls = false, "
    "encoding = 'utf-8', strict_mode = true)"
)


def duckdb_type(type_name: str, typmod: int) -> str | None:
    """The DuckDB type for a PostgreSQL column (pg_type.typname and pg_attribute.atttypmod).

    None for a numeric the data must size: plain numeric (no typmod) or wider than DuckDB's
    DECIMAL(38, s).
    """
    if type_name == "numeric":
        return decimal_type(typmod)
    return DUCKDB_TYPES.get(type_name, "VARCHAR")


def decimal_type(typmod: int) -> str | None:
    """DECIMAL(p,s) for numeric(p,s) from its typmod; None for plain numeric or p > 38."""
    if typmod >= 4:
        precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
        if precision <= MAX_DECIMAL_PRECISION:
            return f"DECIMAL({precision},{scale})"
    return None


def canonical_types(duck, types: list[str]) -> list[str]:
    """Each type as DuckDB's catalog names it (TIMESTAMPTZ -> TIMESTAMP WITH TIME ZONE)."""
    if not types:
        return []
    return list(
        duck.execute(
            "select " + ", ".join(f"typeof(cast(null as {type_}))" for type_ in types)
        ).fetchone()
    )
