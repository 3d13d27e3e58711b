"""Validating a stored table against its pandera model without holding the
whole table in memory.

A table of up to ``PART_ROWS`` rows is validated in one frame. A larger one
is read in parts that split its key column by hash (DuckDB's ``hash(key)``
modulo the number of parts), so a part holds every row of each of its keys.
Row-level rules see every row, and the rules about a key (unique ids, a
composite unique key that starts with it, one current version per deal) see
all of a key's rows together: every rule stays exact while memory holds one
part. A large table without a key is split by row number, and validated
whole when its model has table-wide checks, which a part could not judge.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd
import pandera.pandas as pa

PART_ROWS = 250_000


@dataclass
class TableValidation:
    rows: int
    failure_cases: pd.DataFrame | None   # pandera's failure cases of every part, None when every rule held
    parts: int


def partition_key(model: type[pa.DataFrameModel]) -> str | None:
    """The column whose values keep every table-wide rule inside a part: the
    one the model names (``Config.metadata["partition_key"]``), else its
    unique column, else the first of its composite unique key."""
    schema = model.to_schema()
    named = (getattr(model.Config, "metadata", None) or {}).get("partition_key")
    unique = [name for name, column in schema.columns.items() if column.unique]
    composite = list(schema.unique or [])
    return ([named] if named else unique or composite or [None])[0]


def validate_stored_table(con: duckdb.DuckDBPyConnection, table: str, model: type[pa.DataFrameModel],
                          part_rows: int = PART_ROWS) -> TableValidation:
    """Every rule of ``model`` on the table ``table`` (a qualified name)."""
    rows = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    key = partition_key(model)
    table_wide = bool(model.to_schema().checks) and key is None
    parts = 1 if rows <= part_rows or table_wide else -(-rows // part_rows)
    failures = []
    for part in range(parts):
        where = "" if parts == 1 else (
            f' WHERE hash("{key}") % {parts} = {part}' if key else f" WHERE rowid % {parts} = {part}")
        frame = con.sql(f"SELECT * FROM {table}{where}").df()
        try:
            model.validate(frame, lazy=True)
        except pa.errors.SchemaErrors as exc:
            failures.append(exc.failure_cases)
        del frame
    cases = pd.concat(failures, ignore_index=True) if failures else None
    return TableValidation(rows, cases, parts)
