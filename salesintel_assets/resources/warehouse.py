"""The DuckDB warehouse: a resource for direct SQL and an IO manager that
stores every asset as a table named exactly after the asset.

We do not use ``DuckDBPandasIOManager``: it skips empty frames (an empty
quarantine would leave no table) and fixes a table's columns on the first
write. ``CREATE OR REPLACE`` avoids both and keeps re-runs idempotent.
"""


from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import dagster as dg
import duckdb
import pandas as pd

from salesintel_assets.domain.common.tables import TABLE_SCHEMA, table_exists



class SalesintelHome(dg.ConfigurableResource):
    """The folder that holds the warehouse, raw lake, MLflow store and outbox."""

    path: str = ".salesintel"

    def root(self) -> Path:
        root = Path(self.path).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        return root

    def subdir(self, name: str) -> Path:
        folder = self.root() / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @property
    def database(self) -> Path:
        return self.root() / "warehouse.duckdb"


class Warehouse(dg.ConfigurableResource):
    """SQL access to the warehouse file, one short-lived connection per use
    (DuckDB allows one writing process per file)."""

    home: SalesintelHome

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        con = duckdb.connect(str(self.home.database), read_only=read_only)
        try:
            yield con
        finally:
            con.close()

    def read_table(self, name: str) -> pd.DataFrame | None:
        """The table as a DataFrame, or None when it was never written."""
        with self.connect() as con:
            if not table_exists(con, name):
                return None
            return con.sql(f'SELECT * FROM {TABLE_SCHEMA}."{name}"').df()

    def write_table(self, name: str, frame: pd.DataFrame) -> None:
        with self.connect() as con:
            write_frame(con, name, frame)

    def query(self, sql: str) -> pd.DataFrame:
        with self.connect() as con:
            return con.sql(sql).df()


def _typed_select(frame: pd.DataFrame) -> str:
    """SELECT over the registered frame; all-null text columns (an empty frame)
    are cast to VARCHAR so the table gets real column types."""
    casts = [
        f'CAST("{col}" AS VARCHAR) AS "{col}"'
        for col in frame.columns
        if frame[col].dtype == object and frame[col].isna().all()
    ]
    replace = f" REPLACE ({', '.join(casts)})" if casts else ""
    return f"SELECT *{replace} FROM _frame"


def write_frame(con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame) -> None:
    """Replace the table with the frame."""
    con.register("_frame", frame)
    try:
        con.execute(f'CREATE OR REPLACE TABLE {TABLE_SCHEMA}."{name}" AS {_typed_select(frame)}')
    finally:
        con.unregister("_frame")


def append_frame(con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame) -> None:
    """Insert the frame's rows by column name (creating the table the first time)."""
    if not table_exists(con, name):
        write_frame(con, name, frame)
        return
    if frame.empty:
        return
    con.register("_frame", frame)
    try:
        con.execute(f'INSERT INTO {TABLE_SCHEMA}."{name}" BY NAME {_typed_select(frame)}')
    finally:
        con.unregister("_frame")


def upsert_frame(con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame, key: str,
                 replace_keys: pd.Series | None = None) -> None:
    """Replace the rows of every key in ``replace_keys`` (default: the frame's
    keys) with the frame's rows (wrap in ``transaction`` to make it atomic)."""
    if not table_exists(con, name):
        write_frame(con, name, frame)
        return
    keys = pd.DataFrame({key: (frame[key] if replace_keys is None else replace_keys).unique()})
    con.register("_keys", keys)
    try:
        con.execute(f'DELETE FROM {TABLE_SCHEMA}."{name}" WHERE "{key}" IN (SELECT "{key}" FROM _keys)')
    finally:
        con.unregister("_keys")
    append_frame(con, name, frame)


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All writes inside commit together or not at all."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def table_preview(con: duckdb.DuckDBPyConnection, name: str, rows: int = 10) -> tuple[int, pd.DataFrame]:
    """Row count and the first rows of a stored table, without loading it."""
    count = con.execute(f'SELECT count(*) FROM {TABLE_SCHEMA}."{name}"').fetchall()[0][0]
    return count, con.sql(f'SELECT * FROM {TABLE_SCHEMA}."{name}" LIMIT {rows}').df()


class WarehouseIOManager(dg.ConfigurableIOManager):
    """Stores each asset's DataFrame as the DuckDB table named after the asset."""

    warehouse: Warehouse

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame | None) -> None:
        if obj is None:
            return
        name = context.asset_key.path[-1]
        self.warehouse.write_table(name, obj)
        context.add_output_metadata({"table": dg.MetadataValue.text(f"{TABLE_SCHEMA}.{name}")})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        name = context.asset_key.path[-1]
        frame = self.warehouse.read_table(name)
        if frame is None:
            raise dg.Failure(f"table {name} does not exist yet: materialise the asset {name} first")
        return frame
