"""Warehouse layer: the star schema and the history of every deal, kept in
DuckDB with SQL so each run only rebuilds what changed."""

from datetime import datetime, timezone

import dagster as dg
import pandas as pd

from salesintel_assets.constants import WAREHOUSE
from salesintel_assets.domain.ingestion import quality
from salesintel_assets.domain.warehouse import upserts as model
from salesintel_assets.metadata import fail_after, schema_metadata, table_metadata
from salesintel_assets.resources.crm import CRMSource
from salesintel_assets.resources.settings import SalesintelSettings
from salesintel_assets.resources.warehouse import Warehouse, transaction, upsert_frame, write_frame
from salesintel_assets.schemas import warehouse as schemas

FRESHNESS = fail_after(hours=4)


def _asset(model_cls, **kwargs):
    return dg.asset(group_name=WAREHOUSE, freshness_policy=FRESHNESS, kinds={"duckdb"},
                    metadata=schema_metadata(model_cls), **kwargs)


@_asset(schemas.FactDeals, deps=["raw_deals", "data_quality_report", "raw_stage_history", "raw_activities"])
def fact_deals(warehouse: Warehouse, settings: SalesintelSettings, crm: CRMSource) -> dg.MaterializeResult:
    """One clean, typed row per deal: the latest raw versions that pass the
    quality gates, with fixes applied and review flags set. Only raw versions
    not yet in the table are validated; date-dependent columns are refreshed
    for every row."""
    rules = settings.rules()
    as_of = settings.analysis_date(crm)
    with warehouse.connect() as con:
        with transaction(con):
            pending = model.pending_raw_deals(con, rules)
            clean = quality.validate_deals(pending, rules).clean
            upsert_frame(con, "fact_deals", model.fact_rows(clean, rules), "deal_id",
                         replace_keys=pending["deal_id"])
            model.refresh_time_columns(con, as_of)
        open_deals, closed, win_rate, flagged, corrected, pipeline = con.execute("""
            SELECT count(*) FILTER (WHERE is_open), count(*) FILTER (WHERE NOT is_open),
                   avg(is_won::INT) FILTER (WHERE NOT is_open), count(*) FILTER (WHERE needs_review),
                   count(*) FILTER (WHERE cycle_corrected), coalesce(sum(deal_amount) FILTER (WHERE is_open), 0)
            FROM main.fact_deals""").fetchall()[0]
        return dg.MaterializeResult(metadata=table_metadata(
            con, "fact_deals", as_of=str(as_of.date()), rebuilt_rows=len(pending), open_deals=open_deals,
            closed_deals=closed, win_rate=round(win_rate, 4) if win_rate is not None else None,
            flagged_for_review=flagged, cycles_corrected=corrected, open_pipeline_amount=float(pipeline)))


@_asset(schemas.DimSalesReps, deps=["fact_deals", "raw_sales_reps"])
def dim_sales_reps(warehouse: Warehouse) -> dg.MaterializeResult:
    """Reps with their routing chain rep -> manager -> CRO."""
    with warehouse.connect() as con:
        stats = con.sql("SELECT sales_rep_id, count(*) AS deals, count(*) FILTER (WHERE is_open) AS open_deals "
                        "FROM main.fact_deals GROUP BY sales_rep_id").df()
        org = con.sql("SELECT * FROM main.raw_sales_reps").df()
        reps = model.build_dim_sales_reps(stats, org if len(org) else None)
        write_frame(con, "dim_sales_reps", reps)
        return dg.MaterializeResult(metadata=table_metadata(
            con, "dim_sales_reps", reps_without_org=int((~reps["has_org"]).sum())))


@_asset(schemas.DimIndustries, deps=["fact_deals"])
def dim_industries(warehouse: Warehouse) -> dg.MaterializeResult:
    """Industries with their deal volume."""
    with warehouse.connect() as con:
        model.rebuild_dimension(con, "dim_industries", "industry")
        return dg.MaterializeResult(metadata=table_metadata(con, "dim_industries"))


@_asset(schemas.DimProducts, deps=["fact_deals"])
def dim_products(warehouse: Warehouse) -> dg.MaterializeResult:
    """Product types with their deal volume."""
    with warehouse.connect() as con:
        model.rebuild_dimension(con, "dim_products", "product_type")
        return dg.MaterializeResult(metadata=table_metadata(con, "dim_products"))


@_asset(schemas.DealHistory, deps=["fact_deals"])
def deal_history(warehouse: Warehouse) -> dg.MaterializeResult:
    """SCD type 2 of every deal, maintained across runs: a new version when a
    tracked attribute changes; old versions stay queryable."""
    observed_at = pd.Timestamp(datetime.now(timezone.utc).replace(tzinfo=None))
    with warehouse.connect() as con:
        added = model.update_deal_history(con, observed_at)
        return dg.MaterializeResult(metadata=table_metadata(con, "deal_history", new_versions=added))


@_asset(schemas.FactStageTransitions, deps=["fact_deals", "raw_stage_history"])
def fact_stage_transitions(warehouse: Warehouse, settings: SalesintelSettings,
                           crm: CRMSource) -> dg.MaterializeResult:
    """Each stage a deal entered, when it left and how long it stayed."""
    with warehouse.connect() as con:
        model.rebuild_stage_transitions(con, settings.rules(), settings.analysis_date(crm))
        return dg.MaterializeResult(metadata=table_metadata(con, "fact_stage_transitions"))
