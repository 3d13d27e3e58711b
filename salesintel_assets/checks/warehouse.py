"""Checks of the warehouse layer."""

from salesintel_assets.checks.schema import table_schema_check
from salesintel_assets.schemas import warehouse as schemas

warehouse_checks = [
    table_schema_check("fact_deals", schemas.FactDeals),
    table_schema_check("dim_sales_reps", schemas.DimSalesReps),
    table_schema_check("dim_industries", schemas.DimIndustries),
    table_schema_check("dim_products", schemas.DimProducts),
    table_schema_check("deal_history", schemas.DealHistory, name="deal_history_one_current_version"),
    table_schema_check("fact_stage_transitions", schemas.FactStageTransitions),
]
