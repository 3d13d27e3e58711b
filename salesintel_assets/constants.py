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
# Export columns a file may leave out, read as empty cells are: the rep and
# the dimensions become "Unknown", the cycle is computed from the dates and
# the outcome comes from a won or lost stage name (a deal without a close is
# open). Many real exports have no cycle or lead source column at all.
DERIVABLE_EXPORT_COLUMNS = ("sales_rep_id",) + DIMENSION_COLUMNS + ("sales_cycle_days", "outcome")
REQUIRED_EXPORT_COLUMNS = tuple(c for c in EXPORT_COLUMNS if c not in DERIVABLE_EXPORT_COLUMNS)
