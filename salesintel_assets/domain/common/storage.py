"""Where salesintel keeps things: every storage name in one place.

SALESINTEL_HOME holds the DuckDB warehouse, the raw lake, the feedback inbox,
the MLflow store and the local outbox. Paths are relative to that folder.
"""

DEFAULT_HOME = ".salesintel"
TABLE_SCHEMA = "main"  # DuckDB schema of every asset table (must differ from the database file's stem)
DATABASE_FILE = "warehouse.duckdb"
LAKE_DIR = "lake"
RAW_DEALS_LAKE = f"{LAKE_DIR}/raw_deals"
RAW_DEAL_DELETIONS_LAKE = f"{LAKE_DIR}/raw_deal_deletions"
FEEDBACK_DIR = "feedback"
FEEDBACK_INBOX_FILE = "inbox.sqlite3"
OUTBOX_DIR = "outbox"
OUTBOX_FILE = "outbox.jsonl"
DELIVERIES_DIR = "deliveries"             # the live delivery ledger and the delivery lock
DELIVERY_LEDGER_FILE = "ledger.sqlite3"
DELIVERY_LOCK_FILE = "delivery.lock"
MLFLOW_DB_FILE = "mlflow.db"
DAGSTER_HOME_DIR = "dagster_home"         # the embedded Dagster instance (runs, events, schedules)
MLFLOW_ARTIFACTS_DIR = "mlartifacts"
