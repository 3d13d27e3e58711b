"""Validating a stored table against its pandera model without holding the
whole table in memory.

A table of up to ``PART_ROWS`` rows is read into one frame and validated by
pandera itself. A larger one is validated where it lies, in DuckDB, with SQL
derived from the same pandera model (the model stays the one description of
the table):

- column rules in SQL over the whole table: presence (and no unknown column
  when the model is strict), the column's type (or, when the model coerces,
  every value casts), not-null (NaN counts as null, as in pandas), unique,
  composite unique keys, and the built-in checks the models use
  (``ge``/``gt``/``le``/``lt``/``in_range``/``isin``/``notin``/``str_length``/
  ``eq``/``ne``; nulls are skipped as pandera skips them). Each rule counts
  every failing row, with up to ``EXAMPLES`` of them as failure cases;
- the model's own dataframe-wide checks (Python functions) on parts that
  split the key column by hash (DuckDB's ``hash(key)`` modulo the number of
  parts), so a part holds every row of each of its keys; a part holds only
  the table's non-text columns and the key unless a check needs more.

A rule the SQL does not know (a custom column check) sends the table to
pandera in parts, as before: every rule stays exact either way. A large
table without a key is split by row number, and validated whole when its
model has table-wide checks, which a part could not judge.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd
import pandera.pandas as pa

PART_ROWS = 250_000
EXAMPLES = 1_000   # failure cases kept per SQL rule (every failure is counted)

_INTEGER = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
            "UBIGINT", "UHUGEINT"}
_UNSIGNED = {"UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"}
_FLOAT = {"FLOAT", "DOUBLE"}
_TIME = {"TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S", "DATE"}
# pandera dtype -> (the DuckDB types stored for it, the type values are cast to when coercing)
_TYPES = {
    "str": ({"VARCHAR"}, "VARCHAR"),
    "datetime64[ns]": (_TIME, "TIMESTAMP"),
    "float64": (_FLOAT, "DOUBLE"),
    "int64": (_INTEGER - {"UBIGINT", "HUGEINT", "UHUGEINT"}, "BIGINT"),
    "Int64": (_INTEGER - {"UBIGINT", "HUGEINT", "UHUGEINT"}, "BIGINT"),
    "UInt64": (_UNSIGNED - {"UHUGEINT"}, "UBIGINT"),
    "bool": ({"BOOLEAN"}, "BOOLEAN"),
}


@dataclass
class TableValidation:
    rows: int
    failure_cases: pd.DataFrame | None   # failure cases of every rule, None when every rule held
    parts: int
    failures: int = 0                    # failing values in all (SQL rules keep only examples as cases)
    method: str = "pandera"              # "pandera" (whole or in parts) or "sql" (rules in SQL, checks in parts)
    counts: dict | None = None           # SQL: failing values per (column, check)

    def by_rule(self) -> pd.DataFrame:
        """Failing values per column and rule."""
        if self.failure_cases is None:
            return pd.DataFrame({"column": [], "check": [], "failures": []})
        if self.counts is not None:   # SQL rules: every failure counted, examples kept
            return pd.DataFrame([{"column": column, "check": check, "failures": n}
                                 for (column, check), n in self.counts.items()])
        return self.failure_cases.groupby(["column", "check"], dropna=False).size().reset_index(name="failures")


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
                          part_rows: int = PART_ROWS, in_sql: bool = True) -> TableValidation:
    """Every rule of ``model`` on the table ``table`` (a qualified name).
    ``in_sql=False`` keeps a large table with pandera, part by part."""
    rows = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    if in_sql and rows > part_rows and sql_translatable(model):
        return _validate_in_sql(con, table, model, rows, part_rows)
    return _validate_with_pandera(con, table, model, rows, part_rows)


def sql_translatable(model: type[pa.DataFrameModel]) -> bool:
    """Whether every column rule of the model has its SQL form here."""
    schema = model.to_schema()
    return all(str(column.dtype) in _TYPES and all(check.name in _CHECK_SQL for check in column.checks)
               for column in schema.columns.values())


def _validate_with_pandera(con, table: str, model, rows: int, part_rows: int) -> TableValidation:
    key = partition_key(model)
    table_wide = bool(model.to_schema().checks) and key is None
    parts = 1 if rows <= part_rows or table_wide else -(-rows // part_rows)
    failures = []
    for part in range(parts):
        frame = con.sql(f"SELECT * FROM {table}{_part_filter(key, part, parts)}").df()
        try:
            model.validate(frame, lazy=True)
        except pa.errors.SchemaErrors as exc:
            failures.append(exc.failure_cases)
        del frame
    cases = pd.concat(failures, ignore_index=True) if failures else None
    return TableValidation(rows, cases, parts, 0 if cases is None else len(cases))


def _part_filter(key: str | None, part: int, parts: int) -> str:
    if parts == 1:
        return ""
    return f' WHERE hash("{key}") % {parts} = {part}' if key else f" WHERE rowid % {parts} = {part}"


# --- column rules in SQL ---------------------------------------------------------------------------

def _quoted(value) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, pd.Timestamp):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    return repr(value)


def _in_range(stats: dict, x: str) -> str:
    low = f"{x} >= {_quoted(stats['min_value'])}" if stats.get("include_min", True) \
        else f"{x} > {_quoted(stats['min_value'])}"
    high = f"{x} <= {_quoted(stats['max_value'])}" if stats.get("include_max", True) \
        else f"{x} < {_quoted(stats['max_value'])}"
    return f"{low} AND {high}"


def _str_length(stats: dict, x: str) -> str:
    if stats.get("exact_value") is not None:
        return f"length({x}) = {int(stats['exact_value'])}"
    parts = [f"length({x}) >= {int(stats['min_value'])}" if stats.get("min_value") is not None else "",
             f"length({x}) <= {int(stats['max_value'])}" if stats.get("max_value") is not None else ""]
    return " AND ".join(p for p in parts if p) or "true"


# Each built-in check as the SQL predicate a passing value satisfies.
_CHECK_SQL = {
    "greater_than_or_equal_to": lambda s, x: f"{x} >= {_quoted(s['min_value'])}",
    "greater_than": lambda s, x: f"{x} > {_quoted(s['min_value'])}",
    "less_than_or_equal_to": lambda s, x: f"{x} <= {_quoted(s['max_value'])}",
    "less_than": lambda s, x: f"{x} < {_quoted(s['max_value'])}",
    "equal_to": lambda s, x: f"{x} = {_quoted(s['value'])}",
    "not_equal_to": lambda s, x: f"{x} <> {_quoted(s['value'])}",
    "in_range": _in_range,
    "isin": lambda s, x: f"{x} IN ({', '.join(_quoted(v) for v in s['allowed_values'])})",
    "notin": lambda s, x: f"{x} NOT IN ({', '.join(_quoted(v) for v in s['forbidden_values'])})",
    "str_length": _str_length,
}


def _cases(context: str, column: str, check: str, examples: list, indexes: list | None = None) -> pd.DataFrame:
    return pd.DataFrame({"schema_context": context, "column": column, "check": check, "check_number": None,
                         "failure_case": pd.Series(examples, dtype=object),
                         "index": pd.Series(indexes if indexes is not None else [None] * len(examples),
                                            dtype=object)})


class _Collector:
    """Counts every failing row of each rule and keeps a few as cases."""

    def __init__(self, con, table: str):
        self.con, self.table = con, table
        self.frames: list[pd.DataFrame] = []
        self.counts: dict[tuple[str, str], int] = {}

    def rule(self, context: str, column: str, check: str, failing: str, shown: str) -> None:
        """``failing``: the SQL predicate of a failing row; ``shown``: what to show of it."""
        n = self.con.execute(f"SELECT count(*) FROM {self.table} WHERE {failing}").fetchall()[0][0]
        if not n:
            return
        rows = self.con.execute(f"SELECT ({shown})::VARCHAR, rowid FROM {self.table} WHERE {failing} "
                                f"ORDER BY rowid LIMIT {EXAMPLES}").fetchall()
        self.add(_cases(context, column, check, [r[0] for r in rows], [r[1] for r in rows]), n)

    def add(self, cases: pd.DataFrame, failures: int) -> None:
        self.frames.append(cases)
        rule = (cases["column"].iloc[0], cases["check"].iloc[0])
        self.counts[rule] = self.counts.get(rule, 0) + failures


def _column_rules(found: _Collector, schema: pa.DataFrameSchema, stored: dict[str, str]) -> None:
    coerce = schema.coerce
    for name, column in schema.columns.items():
        col = f'"{name}"'
        if name not in stored:
            if column.required:
                found.add(_cases("DataFrameSchema", schema.name, "column_in_dataframe", [name]), 1)
            continue
        accepted, target = _TYPES[str(column.dtype)]
        base = stored[name].split("(")[0]
        value = col
        if base not in accepted and not (str(column.dtype) == "float64" and base in _INTEGER):
            if not (coerce or column.coerce):
                found.add(_cases("Column", name, f"dtype('{column.dtype}')", [stored[name]]), 1)
                continue
            value = f"TRY_CAST({col} AS {target})"
            found.rule("Column", name, f"coerce_dtype('{column.dtype}')",
                       f"{col} IS NOT NULL AND {value} IS NULL", col)
        null = f"({value} IS NULL OR isnan({value}))" if target == "DOUBLE" else f"{value} IS NULL"
        if not column.nullable:
            found.rule("Column", name, "not_nullable", null, "NULL")
        if column.unique:
            found.rule("Column", name, "field_uniqueness",
                       f"rowid IN (SELECT rowid FROM (SELECT rowid, count(*) OVER (PARTITION BY {value}) AS n "
                       f"FROM {found.table}) WHERE n > 1)", value)
        for check in column.checks:
            passing = _CHECK_SQL[check.name](check.statistics, value)
            skip_null = f"NOT {null} AND " if check.ignore_na else ""
            found.rule("Column", name, check.error or check.name, f"{skip_null}NOT coalesce({passing}, false)",
                       value)
    if schema.strict is True:
        for name in stored:
            if name not in schema.columns:
                found.add(_cases("DataFrameSchema", schema.name, "column_in_schema", [name]), 1)
    if schema.unique:
        together = ", ".join(f'"{c}"' for c in schema.unique)
        found.rule("DataFrameSchema", schema.name, "multiple_fields_uniqueness",
                   f"rowid IN (SELECT rowid FROM (SELECT rowid, count(*) OVER (PARTITION BY {together}) AS n "
                   f"FROM {found.table}) WHERE n > 1)", f"concat_ws(', ', {together})")


def _dataframe_checks(found: _Collector, schema: pa.DataFrameSchema, stored: dict[str, str], key: str | None,
                      parts: int) -> None:
    """The model's Python dataframe checks, part by part."""
    narrow = [c for c, t in stored.items() if t.split("(")[0] != "VARCHAR" or c == key]
    for part in range(parts):
        where = _part_filter(key, part, parts)
        frame = _frame(found, narrow, where)
        whole = None
        for check in schema.checks:
            try:
                result = check(frame)
            except KeyError:   # the check reads a text column too: give it the whole part
                whole = _frame(found, list(stored), where) if whole is None else whole
                result = check(whole)
            output = result.check_output
            if isinstance(output, pd.Series):
                failing = output.index[~output.fillna(False).astype(bool)]
                if len(failing):
                    found.add(_cases("DataFrameSchema", schema.name, check.name, [str(i) for i in failing[:EXAMPLES]],
                                     list(failing[:EXAMPLES])), len(failing))
            elif not bool(output):
                found.add(_cases("DataFrameSchema", schema.name, check.name, [False]), 1)
        del frame, whole


def _frame(found: _Collector, columns: list[str], where: str) -> pd.DataFrame:
    selected = ", ".join(f'"{c}"' for c in columns)
    return found.con.sql(f"SELECT {selected} FROM {found.table}{where}").df()


def _validate_in_sql(con, table: str, model, rows: int, part_rows: int) -> TableValidation:
    schema = model.to_schema()
    stored = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {table})").fetchall())
    found = _Collector(con, table)
    _column_rules(found, schema, stored)
    key = partition_key(model)
    key = key if key in stored else None
    parts = 0
    if schema.checks:
        parts = 1 if key is None else -(-rows // part_rows)
        _dataframe_checks(found, schema, stored, key, parts)
    cases = pd.concat(found.frames, ignore_index=True) if found.frames else None
    return TableValidation(rows, cases, parts, sum(found.counts.values()), "sql", found.counts or None)
