"""Warehouse layer: the star schema and the history of every deal, kept in
DuckDB with SQL so each run only rebuilds what changed."""

from datetime import datetime, timezone

import dagster as dg
import pandas as pd

from salesintel_assets.constants import WAREHOUSE
from salesintel_assets.domain.common.memory import free_cycles_after
from salesintel_assets.domain.warehouse import tombstones
from salesintel_assets.domain.ingestion import quality, values
from salesintel_assets.domain.warehouse import upserts as model
from salesintel_assets.metadata import fail_after, schema_metadata, table_metadata
from salesintel_assets.resources.settings import SalesintelSettings
from salesintel_assets.resources.warehouse import Warehouse, transaction, upsert_frame, write_frame
from salesintel_assets.schemas import warehouse as schemas

FRESHNESS = fail_after(hours=4)


def _asset(model_cls, **kwargs):
    return dg.asset(group_name=WAREHOUSE, freshness_policy=FRESHNESS, kinds={"duckdb"},
                    metadata=schema_metadata(model_cls), **kwargs)


@_asset(schemas.FactDeals, deps=["raw_deals", "data_quality_report", "raw_stage_history", "raw_activities",
                                 "raw_deal_deletions"])
def fact_deals(warehouse: Warehouse, settings: SalesintelSettings) -> dg.MaterializeResult:
    """One clean, typed row per deal: the latest raw versions that pass the
    quality gates, with fixes applied and review flags set. Only raw versions
    not yet in the table are validated; date-dependent columns are refreshed
    for every row. Deals the CRM deleted leave the table (tombstones)."""
    rules = settings.rules()
    as_of = settings.analysis_date()
    with warehouse.connect() as con, model.load_memory_limit(con):
        with transaction(con):
            rebuilt = 0
            for pending in model.pending_raw_deal_parts(con, rules, model.PENDING_PART_ROWS):
                # Raw deals hold canonical text already: no format is decided again here.
                clean = quality.validate_deals(pending, rules, formats=values.Formats(), as_of=as_of).clean
                upsert_frame(con, "fact_deals", model.fact_rows(clean, rules), "deal_id",
                             replace_keys=pending["deal_id"])
                rows = len(pending)
                rebuilt += rows
                del pending, clean
                free_cycles_after(rows)   # a part's frames form reference cycles: free them before the next part
            deleted = tombstones.remove_deleted_deals(con)
            model.refresh_time_columns(con, as_of)
        return dg.MaterializeResult(metadata=table_metadata(
            con, "fact_deals", as_of=str(as_of.date()), rebuilt_rows=rebuilt, deleted_deals=deleted,
            **model.fact_deals_summary(con)))


@_asset(schemas.DimSalesReps, deps=["fact_deals", "raw_sales_reps"])
def dim_sales_reps(warehouse: Warehouse) -> dg.MaterializeResult:
    """Reps with their routing chain rep -> manager -> CRO."""
    with warehouse.connect() as con:
        reps = model.dim_sales_reps_frame(con)
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
def fact_stage_transitions(warehouse: Warehouse, settings: SalesintelSettings) -> dg.MaterializeResult:
    """Each stage a deal entered, when it left and how long it stayed."""
    with warehouse.connect() as con:
        model.rebuild_stage_transitions(con, settings.rules(), settings.analysis_date())
        return dg.MaterializeResult(metadata=table_metadata(con, "fact_stage_transitions"))
