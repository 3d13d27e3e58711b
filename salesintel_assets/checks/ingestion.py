"""Checks of the ingestion layer (the schema and circuit-breaker gates are
emitted by the pull itself; these validate the stored tables)."""

from salesintel_assets.checks.schema import table_schema_check
from salesintel_assets.schemas import ingestion as schemas

ingestion_checks = [
    table_schema_check("raw_deals", schemas.RawDeals, name="raw_deal_ids_unique"),
    table_schema_check("quarantined_deals", schemas.QuarantinedDeals, name="quarantined_rows_have_reasons"),
    table_schema_check("data_quality_report", schemas.DataQualityReport),
    table_schema_check("raw_stage_history", schemas.RawStageHistory),
    table_schema_check("raw_activities", schemas.RawActivities),
    table_schema_check("raw_sales_reps", schemas.RawSalesReps),
    table_schema_check("raw_deal_deletions", schemas.RawDealDeletions),
]
