"""Small DuckDB helpers shared by the domain SQL and the warehouse resource."""

import duckdb

from salesintel_assets.domain.common.storage import TABLE_SCHEMA


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    found = con.execute(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [TABLE_SCHEMA, name],
    ).fetchall()
    return bool(found)


def relation_or_empty(con: duckdb.DuckDBPyConnection, table: str, empty_sql: str) -> str:
    """The table's name, or an empty relation with its columns when it was
    never written (e.g. no stage history in a file export)."""
    return f"{TABLE_SCHEMA}.{table}" if table_exists(con, table) else f"({empty_sql})"
