"""Small DuckDB helpers shared by the domain SQL and the warehouse resource."""

import re
import time

import duckdb

from salesintel_assets.domain.common.storage import TABLE_SCHEMA


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    found = con.execute(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [TABLE_SCHEMA, name],
    ).fetchall()
    return bool(found)


def table_columns(con: duckdb.DuckDBPyConnection, name: str) -> set[str]:
    """The columns of a warehouse table (none when it was never written)."""
    return {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
        [TABLE_SCHEMA, name]).fetchall()}


def relation_or_empty(con: duckdb.DuckDBPyConnection, table: str, empty_sql: str) -> str:
    """The table's name, or an empty relation with its columns when it was
    never written (e.g. no stage history in a file export)."""
    return f"{TABLE_SCHEMA}.{table}" if table_exists(con, table) else f"({empty_sql})"


def busy_message(path, exc: Exception, waited: str) -> str:
    """One sentence for a warehouse another process kept locked."""
    holder = re.search(r"\(PID \d+\)", str(exc))
    return (f"the warehouse {path} is held by another process{' ' + holder.group(0) if holder else ''} "
            f"for more than {waited}: close that program (the duckdb shell or a notebook that has the "
            "file open) and run again")


class WarehouseBusy(RuntimeError):
    """Another process kept the warehouse file locked for too long."""


def open_waiting(path, read_only: bool, wait_seconds: float) -> duckdb.DuckDBPyConnection:
    """Open the database, waiting with backoff while another process holds
    its lock (DuckDB: one process per file when one of them writes; a
    read-only reader blocks a writer too)."""
    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() + delay > deadline:
                raise WarehouseBusy(busy_message(path, exc, f"{wait_seconds:g} s")) from None
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
