"""Small text helpers every layer uses: an error's first line, a quoted SQL identifier.

One home each, so a message or a quoted name looks the same whichever module made it.
Nothing here imports a database driver.
"""

import hashlib
import os
from pathlib import Path

CHUNK_BYTES = 1 << 20


def first_line(exc: BaseException, skip: tuple[str, ...] = ()) -> str:
    """The first non-blank line of an error, without its final period, for a one-line message.

    skip: prefixes of lines that are noise, not the reason (Spark's "JVM stacktrace", "at ").
    """
    text = str(exc).strip()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(skip):
            return line.rstrip(".")
    return type(exc).__name__


def quote_identifier(name: str) -> str:
    """name as a double-quoted SQL identifier (PostgreSQL and DuckDB), quotes doubled.

    For SQL text built for DuckDB; PostgreSQL statements use psycopg.sql.Identifier.
    """
    return '"' + name.replace('"', '""') + '"'


def file_sha256(path: Path, *, fsync: bool = False) -> str:
    """The file's sha256 (hex), read in 1 MiB blocks.

    fsync: also make sure its bytes are on disk first (an export's COMMITTED marker promises
    a complete set even after a power cut).
    """
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while block := source.read(CHUNK_BYTES):
            digest.update(block)
        if fsync:
            os.fsync(source.fileno())
    return digest.hexdigest()


def text_sha256(text: str) -> str:
    """The sha256 (hex) of text as UTF-8: what a build records of the SQL it ran."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
