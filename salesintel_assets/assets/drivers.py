"""Drivers layer: which segments move win rate and whether that is more
than noise, what changed between periods (rate vs mix), and which deal
factors a model actually relies on. Refreshed daily."""

import dagster as dg
import pandas as pd

from salesintel_assets.constants import DRIVERS
from salesintel_assets.domain.drivers import attribution
from salesintel_assets.domain.common import charts, leakage, reruns
from salesintel_assets.domain.common.run_memo import RunMemo
from salesintel_assets.domain.drivers import driver_scores as drivers
from salesintel_assets.domain.drivers import importance
from salesintel_assets.metadata import fail_after, figure_markdown, frame_metadata, schema_metadata
from salesintel_assets.resources.settings import SalesintelSettings
from salesintel_assets.resources.warehouse import Warehouse
from salesintel_assets.schemas import drivers as schemas

FRESHNESS = fail_after(hours=26)


def _asset(model, **kwargs):
    return dg.asset(group_name=DRIVERS, freshness_policy=FRESHNESS, kinds={"duckdb"},
                    metadata=schema_metadata(model), **kwargs)


_RUN_GUARD: RunMemo[tuple] = RunMemo()   # (rules, findings) of one run's leakage screen


def _guarded_rules(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: SalesintelSettings):
    """The rules without the dimensions and factors that give the outcome
    away. Screened once per run: fact_deals does not change within a run,
    so driver_scores and driver_importance share one screen (~1 s at 1M deals)."""
    rules = settings.rules()

    def screen() -> tuple:
        fact = warehouse.read_table("fact_deals", ["is_open", "is_won", "deal_amount", "industry", "region",
                                                   "product_type", "lead_source", "sales_rep_id"])
        return leakage.driver_rules(rules, fact)

    return _RUN_GUARD.get((context.run_id, str(warehouse.home.database), reruns.rules_digest(rules)), screen)


@_asset(schemas.DriverScores, deps=["fact_deals"])
def driver_scores(context: dg.AssetExecutionContext, segment_metrics: pd.DataFrame,
                  settings: SalesintelSettings, warehouse: Warehouse) -> dg.Output[pd.DataFrame]:
    """Every segment's SPI over all closed history; material segments tested
    against the rest of their dimension (Fisher exact, Benjamini-Hochberg
    across all of them) and ranked, drivers first, each with a verdict.
    Dimensions that give the outcome away (leakage guard) are left out."""
    rules, findings = _guarded_rules(context, warehouse, settings)
    table = drivers.driver_scores(segment_metrics, rules)
    tested = table["p_value"].notna()
    return dg.Output(table, metadata=frame_metadata(
        table, summary=drivers.driver_summary(table), tested_segments=int(tested.sum()),
        significant_segments=int(table["significant"].sum()),
        excluded=dg.MetadataValue.md("\n".join(f"- {t}" for t in leakage.sentences(findings)) or "none"),
        not_distinguishable=int((tested & ~table["significant"]).sum()),
        drivers_chart=figure_markdown(charts.driver_bars(table))))


@_asset(schemas.WinRateAttribution)
def win_rate_attribution(segment_metrics: pd.DataFrame, settings: SalesintelSettings) -> dg.Output[pd.DataFrame]:
    """The change in win rate between two periods (default: the last
    complete quarter vs the one before) split per segment into rate and mix
    effects (midpoint formula: they add up exactly to the change)."""
    rules, as_of = settings.rules(), settings.analysis_date()
    periods = attribution.compared_periods(as_of, rules)
    table = attribution.win_rate_attribution(segment_metrics, rules, as_of, periods)
    change = attribution.change_summary(segment_metrics, *periods, alpha=rules.drivers.fdr_alpha)
    return dg.Output(table, metadata=frame_metadata(
        table, period_type=periods[0], period_a=periods[1], period_b=periods[2],
        total_change=change.get("total_change"), verdict=change["verdict"],
        change=dg.MetadataValue.json(change),
        waterfall=figure_markdown(charts.attribution_waterfall(table))))


@_asset(schemas.DriverImportance, deps=["fact_deals"])
def driver_importance(context: dg.AssetExecutionContext, warehouse: Warehouse,
                      settings: SalesintelSettings) -> dg.Output[pd.DataFrame]:
    """Permutation importance (held-out AUC drop) of each deal factor and of
    the strongest pairs, from a gradient-boosted model on closed deals
    (trained on at most ``max_train_rows`` of them); says so plainly when the
    model is no better than chance."""
    (rules, findings), as_of = _guarded_rules(context, warehouse, settings), settings.analysis_date()
    # In deal_id order (the split draws positions) without the ids themselves: a million of them cost ~1 s.
    needed = ["is_open", "is_won", "closed_date", "needs_review"] + list(rules.drivers.importance.factors)
    fact = warehouse.read_table("fact_deals", needed, order_by="deal_id")
    table, info = importance.driver_importance(fact, rules, as_of)
    return dg.Output(table, metadata=frame_metadata(
        table, verdict=info["verdict"], validation_auc=info.get("auc"),
        excluded=dg.MetadataValue.md("\n".join(f"- {t}" for t in leakage.sentences(findings)) or "none"),
        model=dg.MetadataValue.json(info),
        importance_chart=figure_markdown(charts.importance_bars(table, info.get("auc")))))
