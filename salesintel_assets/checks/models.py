"""Checks of the models layer: each table satisfies its pandera model, every
open deal is scored exactly once, the forecast adds up to the scores, and the
model's quality signals (baseline, backtest, live drift) are surfaced as
warnings for the data team."""

import dagster as dg
import pandas as pd

from salesintel_assets.checks.schema import table_schema_check
from salesintel_assets.resources.warehouse import TABLE_SCHEMA, Warehouse
from salesintel_assets.schemas import models as schemas

WARN = dg.AssetCheckSeverity.WARN  # quality signals for the data team, not run failures

models_checks = [
    table_schema_check("deal_risk_scores", schemas.DealRiskScores),
    table_schema_check("pipeline_forecast", schemas.PipelineForecast),
    table_schema_check("deal_risk_model", schemas.DealRiskModel),
    table_schema_check("forecast_backtest", schemas.ForecastBacktest),
    table_schema_check("deal_risk_drift", schemas.DealRiskDrift),
]


@dg.asset_check(asset="deal_risk_scores",
                description="When scores exist, every open deal of fact_deals is scored exactly once and "
                            "nothing else is.")
def open_deals_scored_once(warehouse: Warehouse) -> dg.AssetCheckResult:
    scored, missing, extra = warehouse.query(f"""
        WITH open AS (SELECT deal_id FROM {TABLE_SCHEMA}.fact_deals
                      WHERE is_open AND created_date <= as_of_date)
        SELECT (SELECT count(*) FROM {TABLE_SCHEMA}.deal_risk_scores),
               (SELECT count(*) FROM open ANTI JOIN {TABLE_SCHEMA}.deal_risk_scores s USING (deal_id)),
               (SELECT count(*) FROM {TABLE_SCHEMA}.deal_risk_scores s ANTI JOIN open USING (deal_id))
    """).iloc[0].tolist()
    passed = scored == 0 or (missing == 0 and extra == 0)
    return dg.AssetCheckResult(passed=bool(passed), metadata={
        "scored": int(scored), "open_deals_unscored": int(missing) if scored else 0,
        "scored_but_not_open": int(extra)})


@dg.asset_check(asset="pipeline_forecast",
                description="Each grouping's rows add up to the scored pipeline (deals, amount, expected wins).")
def forecast_adds_up_to_scores(warehouse: Warehouse) -> dg.AssetCheckResult:
    sums = warehouse.query(f"""
        SELECT grouping, sum(open_deals) AS deals, sum(pipeline_amount) AS amount,
               sum(expected_won_deals) AS won
        FROM {TABLE_SCHEMA}.pipeline_forecast WHERE grouping <> 'horizon' GROUP BY grouping""")
    truth = warehouse.query(f"""
        SELECT count(*) AS deals, coalesce(sum(deal_amount), 0) AS amount, coalesce(sum(win_probability), 0) AS won
        FROM {TABLE_SCHEMA}.deal_risk_scores""").iloc[0]
    off = sums[((sums["deals"] - truth["deals"]).abs() > 0)
               | ((sums["amount"] - truth["amount"]).abs() > 0.01 * len(sums) + 1e-6 * truth["amount"])
               | ((sums["won"] - truth["won"]).abs() > 0.01 * max(truth["deals"], 1))]
    passed = off.empty and (len(sums) > 0 or truth["deals"] == 0)
    return dg.AssetCheckResult(passed=bool(passed), metadata={
        "groupings": len(sums), "scored_deals": int(truth["deals"]),
        "inconsistent": ", ".join(off["grouping"]) or "none"})


@dg.asset_check(asset="deal_risk_model",
                description="The latest trained model beats deal age alone and the segment win rate on the "
                            "validation snapshots (verdict usable).")
def model_beats_baseline(warehouse: Warehouse) -> dg.AssetCheckResult:
    table = warehouse.read_table("deal_risk_model")
    trained = table[table["status"] != "not enough data"] if table is not None else None
    if trained is None or trained.empty:
        return dg.AssetCheckResult(severity=WARN, passed=True,
                                   description="no model trained yet (not enough data)")
    row = trained.iloc[-1]
    usable = row.get("model_verdict") == "usable"
    return dg.AssetCheckResult(severity=WARN, passed=bool(usable), description=str(row.get("verdict_reason") or ""),
                               metadata={
        "version": int(row["version"]), "log_loss": float(row["log_loss"]),
        "baseline_log_loss": float(row["baseline_log_loss"]), "auc": float(row["auc"]),
        "baseline_auc": float(row["baseline_auc"])})


@dg.asset_check(asset="forecast_backtest",
                description="At every backtest date the forecast win rate was within the design's target "
                            "(+/- 5 points of what then closed).")
def forecast_win_rate_within_target(warehouse: Warehouse) -> dg.AssetCheckResult:
    table = warehouse.read_table("forecast_backtest")
    ok = table[table["status"] == "ok"] if table is not None else None
    # A date with no open deal had nothing to forecast (an export whose deals all closed long ago).
    ok = ok[(ok["open_deals"] > 0) & ok["error_points"].notna()] if ok is not None and len(ok) else ok
    if ok is None or ok.empty:
        return dg.AssetCheckResult(severity=WARN, passed=True, description="not enough data for any backtest date "
                                                                           "(no deals open on them to forecast)")
    missed = ok[~ok["within_target"].astype(bool)]
    worst = float(ok["error_points"].abs().max())
    said = (f"the forecast win rate missed its target on {len(missed)} of {len(ok)} backtest dates "
            f"(worst {worst:.1f} points off the share of deals that then closed won)") if len(missed) else None
    return dg.AssetCheckResult(severity=WARN, passed=missed.empty, description=said, metadata={
        "dates": len(ok), "missed": len(missed),
        "worst_error_points": worst,
        "won_deals_interval_coverage": float(ok["won_deals_in_interval"].astype(bool).mean())})


@dg.asset_check(asset="deal_risk_drift",
                description="The champion's live AUC and calibration have not degraded at any horizon, each "
                            "judged on its own matured outcomes.")
def champion_not_degraded(warehouse: Warehouse) -> dg.AssetCheckResult:
    table = warehouse.read_table("deal_risk_drift")
    if table is None or table.empty:
        return dg.AssetCheckResult(severity=WARN, passed=True, description="no drift evaluation yet")
    latest = table[table["as_of_date"] == table["as_of_date"].max()]
    degraded = latest[latest["degraded"].astype(bool)]
    said = degraded if len(degraded) else latest
    horizon = lambda h: "" if pd.isna(h) else f"{int(h)} days: "  # noqa: E731
    return dg.AssetCheckResult(
        severity=WARN, passed=degraded.empty,
        description="; ".join(horizon(h) + str(r) for h, r in zip(said["horizon_days"], said["reason"])),
        metadata={"statuses": ", ".join(f"{horizon(h)}{s}" for h, s in zip(latest["horizon_days"], latest["status"])),
                  "deals_judged": int(latest["new_deals"].max())})
