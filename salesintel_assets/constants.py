"""Names shared by assets, checks, selections, jobs and schedules.

Group names are the layers of the asset graph; data flows top to bottom.
"""

INGESTION = "ingestion"
WAREHOUSE = "warehouse"
METRICS = "metrics"
DRIVERS = "drivers"
MODELS = "models"
ANOMALIES = "anomalies"
ALERTS = "alerts"
SERVING = "serving"

LAYERS = (INGESTION, WAREHOUSE, METRICS, DRIVERS, MODELS, ANOMALIES, ALERTS, SERVING)

# The columns of a CRM export (the run-time contract's CSV format).
EXPORT_COLUMNS = (
    "deal_id",
    "created_date",
    "closed_date",
    "sales_rep_id",
    "industry",
    "region",
    "product_type",
    "lead_source",
    "deal_stage",
    "deal_amount",
    "sales_cycle_days",
    "outcome",
)
DIMENSION_COLUMNS = ("industry", "region", "product_type", "lead_source")
