"""What a check, test or build run reports: one Result per model or test, and their report.

Shared by the data tests, the unit tests and every engine that runs them (DuckDB, PostgreSQL,
Spark); nothing here runs a query.
"""

from dataclasses import dataclass, field

# Failing rows shown per test, and rows fetched before counting the rest.
SAMPLE_ROWS = 5
FETCH_LIMIT = 100


@dataclass
class Result:
    """The outcome of one model build or test: pass, fail, error or skip."""

    kind: str  # "model", "test" or "unit"
    name: str
    status: str
    seconds: float = 0.0
    failures: int = 0
    detail: str = ""
    rows: list[str] = field(default_factory=list)
    path: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "pass"


@dataclass
class CheckReport:
    """Every result of a check or test run, in the order they ran."""

    results: list[Result]
    seconds: float
    engine: str

    @property
    def ok(self) -> bool:
        return not any(result.status in ("fail", "error") for result in self.results)

    def count(self, status: str | None = None, kind: str | None = None) -> int:
        return sum(
            1
            for result in self.results
            if (status is None or result.status == status) and (kind is None or result.kind == kind)
        )


def row_text(names: list[str], row: tuple) -> str:
    """One result row as `name=value, ...` (null for None), as the reports show it."""
    return ", ".join(
        f"{name}={'null' if value is None else value}"
        for name, value in zip(names, row, strict=True)
    )
