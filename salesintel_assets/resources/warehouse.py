"""The DuckDB warehouse: a resource for direct SQL (connections from
dagster-duckdb's ``DuckDBResource``, one short-lived connection per use, so
one process writes at a time; during a run the database stays open between
uses, see ``domain/common/database_hold.py``) and an IO manager that stores
every asset as a table named exactly after the asset.

We do not use ``DuckDBPandasIOManager``: it skips empty frames (an empty
quarantine would leave no table) and fixes a table's columns on the first
write. ``CREATE OR REPLACE`` avoids both and keeps re-runs idempotent.
"""


from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence

import dagster as dg
import duckdb
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import PrivateAttr

from salesintel_assets.domain.common import database_hold
from salesintel_assets.domain.common.storage import DATABASE_FILE, DEFAULT_HOME
from salesintel_assets.domain.common.tables import TABLE_SCHEMA, busy_message, table_exists
from salesintel_assets.domain.common.tenants import Tenant, resolve_tenant


class SalesintelHome(dg.ConfigurableResource):
    """The folder that holds the warehouse, raw lake, feedback inbox, MLflow
    store and outbox (their names: ``domain/common/storage.py``). ``path`` is
    SALESINTEL_HOME; in a run for a named tenant (the run's partition key)
    everything lives in that tenant's folder below it."""

    path: str = DEFAULT_HOME

    _tenant: Optional[Tenant] = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        from salesintel_assets.resources.tenancy import run_tenant

        self._tenant = run_tenant(context, self.path)

    def tenant(self) -> Tenant:
        """The run's tenant (the default one outside a run)."""
        return self._tenant or resolve_tenant(self.path, None)

    def location(self) -> Path:
        """The folder, without creating it."""
        return self.tenant().root

    def root(self) -> Path:
        root = self.location()
        root.mkdir(parents=True, exist_ok=True)
        return root

    def subdir(self, name: str) -> Path:
        folder = self.root() / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @property
    def database(self) -> Path:
        return self.root() / DATABASE_FILE


class Warehouse(dg.ConfigurableResource):
    """SQL access to the warehouse file, one short-lived connection per use
    (DuckDB allows one writing process per file); while the resource is set
    up for a run, the file stays open between uses (``database_hold``)."""

    home: SalesintelHome

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        database_hold.hold()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        database_hold.release()

    def exists(self) -> bool:
        """Whether a run has stored anything yet (checked without creating the home)."""
        return (self.home.location() / DATABASE_FILE).exists()

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection from dagster-duckdb's resource (which waits and retries
        while another process holds the file, about 100 s), closed even when
        the work fails; then one clear sentence instead of DuckDB's error."""
        config = {"access_mode": "READ_ONLY"} if read_only and not database_hold.held() else {}
        database = str(self.home.database)
        connection = DuckDBResource(database=database, connection_config=config).get_connection
        stack = ExitStack()
        try:
            con = stack.enter_context(connection())
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            raise dg.Failure(busy_message(self.home.database, exc, "about 100 s")) from None
        with stack:
            database_hold.using(database, connection)
            try:
                yield con
            finally:
                con.close()
                database_hold.done(database)

    def read_table(self, name: str, columns: Sequence[str] | None = None, order_by: str | None = None,
                   read_only: bool = False) -> pd.DataFrame | None:
        """The table (or those of ``columns`` it has) as a DataFrame, or None
        when it was never written."""
        with self.connect(read_only=read_only) as con:
            if not table_exists(con, name):
                return None
            selected = "*"
            if columns is not None:
                present = {r[0] for r in con.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
                    [TABLE_SCHEMA, name]).fetchall()}
                selected = ", ".join(f'"{c}"' for c in dict.fromkeys(columns) if c in present)
            order = f' ORDER BY "{order_by}"' if order_by else ""
            return shared_text_frame(con, con.sql(f'SELECT {selected} FROM {TABLE_SCHEMA}."{name}"{order}'))

    def write_table(self, name: str, frame: pd.DataFrame) -> None:
        with self.connect() as con:
            write_frame(con, name, frame)

    def query(self, sql: str, params: list | None = None, read_only: bool = False) -> pd.DataFrame:
        with self.connect(read_only=read_only) as con:
            return con.execute(sql, params or []).df()


def shared_text_frame(con: duckdb.DuckDBPyConnection, relation: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """``relation.df()``, except that each text column's repeated values share
    one string object (through Arrow): a million deals hold a few hundred
    distinct segment names, not a million copies of them."""
    names = relation.columns
    text = {name for name, kind in zip(names, relation.types) if str(kind) == "VARCHAR"}
    if not text:
        return relation.df()
    arrow_rows = relation.to_arrow_table()
    others = [name for name in names if name not in text]
    # The other columns go through DuckDB's own conversion, so their dtypes are what .df() gives.
    frame = con.sql("SELECT " + ", ".join(f'"{n}"' for n in others) + " FROM arrow_rows").df() if others \
        else pd.DataFrame(index=pd.RangeIndex(arrow_rows.num_rows))
    for name in text:
        frame[name] = arrow_rows.column(name).to_pandas().to_numpy(dtype=object)
    return frame[names]


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
        self.warehouse.write_table(context.asset_key.path[-1], obj)

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        name = context.asset_key.path[-1]
        frame = self.warehouse.read_table(name)
        if frame is None:
            raise dg.Failure(f"table {name} does not exist yet: materialise the asset {name} first")
        return frame
