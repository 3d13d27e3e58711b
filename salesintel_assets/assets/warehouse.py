"""Warehouse layer: the star schema and the history of every deal."""


from datetime import datetime, timezone

import dagster as dg
import pandas as pd

from salesintel_assets.constants import WAREHOUSE
from salesintel_assets.domain import quality, warehouse as model
from salesintel_assets.metadata import fail_after, frame_metadata, schema_metadata
from salesintel_assets.resources.crm import CRMSource
from salesintel_assets.resources.settings import SalesintelSettings
from salesintel_assets.resources.warehouse import Warehouse
from salesintel_assets.schemas import warehouse as schemas

FRESHNESS = fail_after(hours=4)


@dg.asset(group_name=WAREHOUSE, freshness_policy=FRESHNESS, deps=["data_quality_report"],
          metadata=schema_metadata(schemas.FactDeals))
def fact_deals(raw_deals: pd.DataFrame, raw_stage_history: pd.DataFrame, raw_activities: pd.DataFrame,
               settings: SalesintelSettings, crm: CRMSource) -> dg.Output[pd.DataFrame]:
    """One clean, typed row per deal: the latest raw versions that pass the
    quality gates, with fixes applied and review flags set."""
    rules = settings.rules()
    as_of = settings.analysis_date(crm)
    clean = quality.validate_deals(raw_deals, rules).clean
    fact = model.build_fact_deals(clean, raw_stage_history, raw_activities, rules, as_of)
    closed = fact[~fact["is_open"]]
    return dg.Output(fact, metadata=frame_metadata(
        fact,
        as_of=str(as_of.date()),
        open_deals=int(fact["is_open"].sum()),
        closed_deals=len(closed),
        win_rate=round(float(closed["is_won"].mean()), 4) if len(closed) else None,
        flagged_for_review=int(fact["needs_review"].sum()),
        cycles_corrected=int(fact["cycle_corrected"].sum()),
        open_pipeline_amount=float(fact.loc[fact["is_open"], "deal_amount"].sum()),
    ))


@dg.asset(group_name=WAREHOUSE, freshness_policy=FRESHNESS, metadata=schema_metadata(schemas.DimSalesReps))
def dim_sales_reps(fact_deals: pd.DataFrame, raw_sales_reps: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """Reps with their routing chain rep -> manager -> CRO."""
    org = raw_sales_reps if len(raw_sales_reps) else None
    reps = model.build_dim_sales_reps(fact_deals, org)
    return dg.Output(reps, metadata=frame_metadata(reps, reps_without_org=int((~reps["has_org"]).sum())))


@dg.asset(group_name=WAREHOUSE, freshness_policy=FRESHNESS, metadata=schema_metadata(schemas.DimIndustries))
def dim_industries(fact_deals: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """Industries with their deal volume."""
    table = model.build_dimension(fact_deals, "industry")
    return dg.Output(table, metadata=frame_metadata(table))


@dg.asset(group_name=WAREHOUSE, freshness_policy=FRESHNESS, metadata=schema_metadata(schemas.DimProducts))
def dim_products(fact_deals: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """Product types with their deal volume."""
    table = model.build_dimension(fact_deals, "product_type")
    return dg.Output(table, metadata=frame_metadata(table))


@dg.asset(group_name=WAREHOUSE, freshness_policy=FRESHNESS, metadata=schema_metadata(schemas.DealHistory))
def deal_history(fact_deals: pd.DataFrame, warehouse: Warehouse) -> dg.Output[pd.DataFrame]:
    """SCD type 2 of every deal, maintained across runs: a new version when a
    tracked attribute changes; old versions stay queryable."""
    previous = warehouse.read_table("deal_history")
    observed_at = pd.Timestamp(datetime.now(timezone.utc).replace(tzinfo=None))
    history = model.update_deal_history(previous, fact_deals, observed_at)
    added = len(history) - (0 if previous is None else len(previous))
    return dg.Output(history, metadata=frame_metadata(history, new_versions=added,
                                                      deals=int(history["deal_id"].nunique())))


@dg.asset(group_name=WAREHOUSE, freshness_policy=FRESHNESS, metadata=schema_metadata(schemas.FactStageTransitions))
def fact_stage_transitions(raw_stage_history: pd.DataFrame, fact_deals: pd.DataFrame,
                           settings: SalesintelSettings, crm: CRMSource) -> dg.Output[pd.DataFrame]:
    """Each stage a deal entered, when it left and how long it stayed."""
    table = model.build_stage_transitions(raw_stage_history, fact_deals, settings.rules(),
                                          settings.analysis_date(crm))
    return dg.Output(table, metadata=frame_metadata(table))
