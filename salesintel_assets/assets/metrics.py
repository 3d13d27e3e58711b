"""Metrics layer: per-deal velocity, momentum and quality scores, and win
rate with its intervals per segment and period. Refreshed every 4 hours."""

import dagster as dg
import pandas as pd

from salesintel_assets.constants import METRICS
from salesintel_assets.domain.common import charts
from salesintel_assets.domain.metrics import stage_conversion as conversion
from salesintel_assets.domain.metrics import deal_metrics as metrics
from salesintel_assets.domain.metrics import deal_metrics_table as stored
from salesintel_assets.domain.metrics import segment_metrics as segments
from salesintel_assets.metadata import fail_after, figure_markdown, frame_metadata, schema_metadata, table_metadata
from salesintel_assets.resources.settings import SalesintelSettings
from salesintel_assets.resources.warehouse import TABLE_SCHEMA, Warehouse
from salesintel_assets.schemas import metrics as schemas

FRESHNESS = fail_after(hours=4)


def _asset(model, **kwargs):
    return dg.asset(group_name=METRICS, freshness_policy=FRESHNESS, kinds={"duckdb"},
                    metadata=schema_metadata(model), **kwargs)


@_asset(schemas.DealMetrics, deps=["fact_deals"])
def deal_metrics(warehouse: Warehouse, settings: SalesintelSettings) -> dg.MaterializeResult:
    """Pipeline Velocity Score, Stage Momentum Index and Deal Quality Score
    (with its components) for every deal, open and closed. Rates come from
    deals closed on or before the analysis date, each closed deal scored
    without its own outcome; PVS's win probability is the shrunk win rate of
    the deal's industry x lead source (rules ``win_probability_segment``).
    Metadata: the DQS backtest AUC on deals open 90 days ago. The table is
    written here rather than returned: a run keeps every returned value in
    memory until it ends, and this one has a row per deal."""
    rules, as_of = settings.rules(), settings.analysis_date()
    # Without the deal ids: the table takes them, and the other columns it
    # copies, from fact_deals in DuckDB (domain/metrics/deal_metrics_table.py).
    fact = warehouse.read_table("fact_deals", stored.SCORE_INPUT_COLUMNS, order_by=stored.ORDER)

    def metadata(summary: dict, backtest: dict) -> dict:
        return {"as_of": str(as_of.date()), **summary, "dqs_backtest": dg.MetadataValue.json(backtest),
                "dqs_weights": dg.MetadataValue.json(rules.metrics.dqs.weights.model_dump())}

    if fact.empty:
        table = metrics.deal_metrics(fact, rules, as_of)
        warehouse.write_table("deal_metrics", table)
        return dg.MaterializeResult(metadata=frame_metadata(
            table, **metadata(metrics.deal_metrics_summary(table), metrics.backtest_auc(fact, rules, as_of))))
    codes = metrics.score_codes(fact, rules)   # shared by today's scores and the backtest's
    computed = metrics.computed_columns(fact, rules, as_of, codes)
    summary = metrics.deal_metrics_summary(pd.DataFrame(
        {**{c: computed[c] for c in metrics.COMPUTED_COLUMNS},
         "is_open": fact["is_open"].to_numpy(dtype=bool), "outcome": fact["outcome"].to_numpy()}, copy=False))
    backtest = metrics.backtest_auc(fact, rules, as_of, codes=codes)
    del fact
    with warehouse.connect() as con:
        stored.write_deal_metrics_in(con, f"{TABLE_SCHEMA}.fact_deals", f"{TABLE_SCHEMA}.deal_metrics", computed)
        return dg.MaterializeResult(metadata=table_metadata(con, "deal_metrics", **metadata(summary, backtest)))


@_asset(schemas.SegmentMetrics, deps=["fact_deals"])
def segment_metrics(warehouse: Warehouse, settings: SalesintelSettings) -> dg.Output[pd.DataFrame]:
    """Deals, win rate (Wilson 95 % interval), cycle of won and lost deals,
    amount, SPI and lost-deal velocity ratio per dimension, segment and
    period (month, quarter, all), by closed date, aggregated in DuckDB,
    with the closes of clean-up days counted apart. ``deal_stage`` of a
    closed deal is its stage at close."""
    rules, as_of = settings.rules(), settings.analysis_date()
    with warehouse.connect() as con:
        table = segments.segment_metrics_in(con, f"{TABLE_SCHEMA}.fact_deals", rules, as_of)
    overall = table[(table["dimension"] == segments.OVERALL) & (table["period_type"] == "all")]
    # a clean-up month is not a month of lost deals: the chart shows each month's own closes
    monthly = segments.overall_by_period(segments.own_closes(table, rules.metrics.min_sample), "month")
    extra = {"as_of": str(as_of.date()), "win_rate_by_month": figure_markdown(charts.win_rate_by_month(
        monthly, without_clean_ups=bool(table["clean_up_closes"].any())))}
    if len(overall):
        row = overall.iloc[0]
        extra.update(closed_deals=int(row["deals"]), won_deals=int(row["won"]),
                     win_rate=round(float(row["win_rate"]), 4),
                     win_rate_ci=[round(float(row["ci_low"]), 4), round(float(row["ci_high"]), 4)],
                     clean_up_closes=int(row["clean_up_closes"]))
    else:
        extra["note"] = "no deal has closed on or before the analysis date: nothing to measure yet"
    return dg.Output(table, metadata=frame_metadata(table, **extra))


@_asset(schemas.StageConversion, deps=["fact_stage_transitions"])
def stage_conversion(warehouse: Warehouse, settings: SalesintelSettings) -> dg.Output[pd.DataFrame]:
    """Stage-to-stage conversion per entry cohort where stage history exists
    (empty for a file export without one); deals still in a stage are counted
    apart, not as lost."""
    rules, as_of = settings.rules(), settings.analysis_date()
    with warehouse.connect() as con:
        table = conversion.stage_conversion_in(con, f"{TABLE_SCHEMA}.fact_stage_transitions", rules, as_of)
    meta = frame_metadata(table, **({} if len(table) else {"note": "no stage history in this CRM source"}))
    overall = table[table["period_type"] == "all"]
    if len(overall):
        meta["preview"] = dg.MetadataValue.md(overall.to_markdown(index=False))
    return dg.Output(table, metadata=meta)
