"""Checks of the metrics layer: each table satisfies its pandera model, and
every deal of the fact table is scored exactly once."""

import dagster as dg

from salesintel_assets.checks.schema import table_schema_check
from salesintel_assets.resources.warehouse import TABLE_SCHEMA, Warehouse
from salesintel_assets.schemas import metrics as schemas

metrics_checks = [
    table_schema_check("deal_metrics", schemas.DealMetrics),
    table_schema_check("segment_metrics", schemas.SegmentMetrics),
    table_schema_check("stage_conversion", schemas.StageConversion),
]


@dg.asset_check(asset="deal_metrics", description="deal_metrics has one row for every deal of fact_deals.")
def every_deal_scored(warehouse: Warehouse) -> dg.AssetCheckResult:
    fact, scored = f"{TABLE_SCHEMA}.fact_deals", f"{TABLE_SCHEMA}.deal_metrics"
    missing, extra = warehouse.query(f"""
        SELECT (SELECT count(*) FROM {fact} ANTI JOIN {scored} USING (deal_id)),
               (SELECT count(*) FROM {scored} ANTI JOIN {fact} USING (deal_id))
    """).iloc[0].tolist()
    return dg.AssetCheckResult(passed=bool(missing == 0 and extra == 0),
                               metadata={"unscored_deals": int(missing), "unknown_deals": int(extra)})


@dg.asset_check(asset="segment_metrics",
                description="Every dimension's segments add up to the company's closed deals in each period "
                            "(cycle_bin may hold fewer: it leaves out deals flagged for review).")
def segments_partition_closed_deals(warehouse: Warehouse) -> dg.AssetCheckResult:
    broken = warehouse.query(f"""
        WITH totals AS (
            SELECT dimension, period_type, period, sum(deals) AS deals
            FROM {TABLE_SCHEMA}.segment_metrics GROUP BY ALL),
        overall AS (SELECT period_type, period, deals FROM totals WHERE dimension = 'overall')
        SELECT t.dimension, t.period_type, t.period, t.deals, o.deals AS overall_deals
        FROM totals t JOIN overall o USING (period_type, period)
        WHERE (t.dimension <> 'cycle_bin' AND t.deals <> o.deals) OR t.deals > o.deals
    """)
    return dg.AssetCheckResult(passed=broken.empty, metadata={
        "broken_groups": len(broken),
        "examples": dg.MetadataValue.md(broken.head(10).to_markdown(index=False) if len(broken) else "none")})
