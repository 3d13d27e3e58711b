"""Checks of the warehouse layer: each table satisfies its pandera model,
and the deals reach the analysis date (a warning for whoever runs it)."""

import dagster as dg
import pandas as pd

from salesintel_assets.checks.schema import table_schema_check
from salesintel_assets.domain.warehouse import recency
from salesintel_assets.resources.settings import SalesintelSettings
from salesintel_assets.resources.warehouse import TABLE_SCHEMA, Warehouse
from salesintel_assets.schemas import warehouse as schemas

WARN = dg.AssetCheckSeverity.WARN

warehouse_checks = [
    table_schema_check("fact_deals", schemas.FactDeals),
    table_schema_check("dim_sales_reps", schemas.DimSalesReps),
    table_schema_check("dim_industries", schemas.DimIndustries),
    table_schema_check("dim_products", schemas.DimProducts),
    table_schema_check("deal_history", schemas.DealHistory, name="deal_history_one_current_version"),
    table_schema_check("fact_stage_transitions", schemas.FactStageTransitions),
]


@dg.asset_check(asset="fact_deals", description="Some deal was created or closed within quality.max_quiet_days "
                "before the analysis date (a longer silence is usually an old export run as of today).")
def deals_reach_the_analysis_date(warehouse: Warehouse, settings: SalesintelSettings) -> dg.AssetCheckResult:
    created, closed, as_of = warehouse.query(f"""
        SELECT max(created_date) FILTER (WHERE created_date <= as_of_date),
               max(closed_date) FILTER (WHERE closed_date <= as_of_date), max(as_of_date)
        FROM {TABLE_SCHEMA}.fact_deals""").iloc[0].tolist()
    if pd.isna(as_of):
        return dg.AssetCheckResult(severity=WARN, passed=True, description="no deals")
    quiet = recency.quiet_before([created, closed], as_of)
    limit = settings.rules().quality.max_quiet_days
    too_long = quiet.too_long(limit)
    return dg.AssetCheckResult(severity=WARN, passed=not too_long,
                               description=quiet.sentence() if too_long else "",
                               metadata={"newest_created_or_closed": str(quiet.newest.date()) if quiet.newest else "",
                                         "quiet_days": quiet.days, "max_quiet_days": limit})


@dg.asset_check(asset="fact_deals", description="No stretch of the history without a close, longer than "
                "quality.max_quiet_days and ten times the mean time between closes, that a backlog of closes "
                "follows (its closes are missing from the data).")
def closes_recorded_without_gaps(warehouse: Warehouse, settings: SalesintelSettings) -> dg.AssetCheckResult:
    deals = warehouse.query(f"""
        SELECT created_date, CASE WHEN closed_date <= as_of_date THEN closed_date END AS closed_date, as_of_date
        FROM {TABLE_SCHEMA}.fact_deals WHERE created_date <= as_of_date""")
    limit = settings.rules().quality.max_quiet_days
    gap = recency.longest_close_gap(deals["created_date"], deals["closed_date"], deals["as_of_date"].max(),
                                    limit) if len(deals) else None
    if gap is None:
        return dg.AssetCheckResult(severity=WARN, passed=True, description="too few closes to judge")
    missing = recency.closes_missing(gap, limit)
    return dg.AssetCheckResult(severity=WARN, passed=not missing, description=gap.sentence() if missing else "",
                               metadata={"longest_gap_days": gap.days, "gap_from": str(gap.start.date()),
                                         "gap_to": str(gap.end.date()), "open_deals_then": gap.open_deals,
                                         "closes_after_gap": gap.closes_after,
                                         "usual_closes": round(gap.usual_closes, 1)})


@dg.asset_check(asset="fact_deals", description="Some deal was created within quality.max_quiet_days and ten "
                "times the mean time between creations before the analysis date, when deals still close then "
                "(an export of closed deals only, or filtered by creation date, leaves out the newer deals).")
def new_deals_reach_the_analysis_date(warehouse: Warehouse, settings: SalesintelSettings) -> dg.AssetCheckResult:
    deals = warehouse.query(f"SELECT created_date, closed_date, as_of_date FROM {TABLE_SCHEMA}.fact_deals")
    limit = settings.rules().quality.max_quiet_days
    stop = recency.creation_stop(deals["created_date"], deals["closed_date"], deals["as_of_date"].max()) \
        if len(deals) else None
    if stop is None:
        return dg.AssetCheckResult(severity=WARN, passed=True, description="too few deals to judge")
    missing = recency.creations_missing(stop, limit)
    return dg.AssetCheckResult(severity=WARN, passed=not missing, description=stop.sentence() if missing else "",
                               metadata={"newest_created": str(stop.newest.date()), "days_since": stop.days,
                                         "created_per_day": round(stop.created_per_day, 3),
                                         "closes_since": stop.closes_since, "max_quiet_days": limit})
