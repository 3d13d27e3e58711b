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

TABLE_SCHEMA = "main"


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

    def has_table(self, name: str) -> bool:
        with self.connect() as con:
            return table_exists(con, name)

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


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    found = con.execute(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [TABLE_SCHEMA, name],
    ).fetchall()
    return bool(found)


def write_frame(con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame) -> None:
    """Replace the table with the frame. All-null text columns (an empty frame)
    are cast to VARCHAR so readers see the real column types."""
    casts = [
        f'CAST("{col}" AS VARCHAR) AS "{col}"'
        for col in frame.columns
        if frame[col].dtype == object and frame[col].isna().all()
    ]
    replace = f" REPLACE ({', '.join(casts)})" if casts else ""
    con.register("_frame", frame)
    try:
        con.execute(f'CREATE OR REPLACE TABLE {TABLE_SCHEMA}."{name}" AS SELECT *{replace} FROM _frame')
    finally:
        con.unregister("_frame")


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
