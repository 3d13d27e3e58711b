"""Pandera models of the models layer."""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

RISK_BANDS = ["low", "medium", "high"]


class DealRiskScores(pa.DataFrameModel):
    """One row per open deal, scored by the champion model."""

    deal_id: Series[str] = pa.Field(description="CRM deal id.", unique=True)
    sales_rep_id: Series[str] = pa.Field(description="The deal owner's rep id.")
    industry: Series[str] = pa.Field(description="The customer's industry.")
    region: Series[str] = pa.Field(description="The sales region.")
    product_type: Series[str] = pa.Field(description="The product sold.")
    lead_source: Series[str] = pa.Field(description="Where the lead came from.")
    deal_stage: Series[str] = pa.Field(description="Current stage (for a closed deal: its stage at close).")
    deal_amount: Series[float] = pa.Field(description="Deal value; empty when the CRM has none yet.", ge=0,
                                          nullable=True)
    age_days: Series[float] = pa.Field(description="Days since creation.", nullable=True, ge=0)
    days_in_stage: Series[float] = pa.Field(nullable=True,
                                            description="Days in the current stage as of the analysis date.")
    win_probability: Series[float] = pa.Field(
        ge=0, le=1, description="calibrated probability that the deal is won within the rules file's "
                                "risk.win_horizon_days (180 by default) of the analysis date; for a history too "
                                "short for it, within the shorter horizon deal_risk_model.win_horizon_days states")
    win_probability_30d: Series[float] = pa.Field(ge=0, le=1, nullable=True,
                                                  description="probability the deal is won within 30 days")
    win_probability_90d: Series[float] = pa.Field(ge=0, le=1, nullable=True,
                                                  description="probability the deal is won within 90 days")
    model_verdict: Series[str] = pa.Field(isin=["usable", "weak"], description=(
        "usable: the model beat deal age alone and the segment win rate on validation; weak: it did not "
        "(its probabilities are not quoted in alerts)"))
    risk_band: Series[str] = pa.Field(description="low, medium or high by win probability.", isin=RISK_BANDS)
    revenue_at_risk: Series[float] = pa.Field(ge=0, nullable=True, description=(
        "deal_amount x (1 - win_probability); empty when the deal has no amount"))
    reason_1: Series[str] = pa.Field(description="Strongest factor behind the score, in words.", nullable=True)
    reason_1_weight: Series[float] = pa.Field(nullable=True, ge=-1, le=1,
                                              description="change in win probability (fraction) from this factor")
    reason_2: Series[str] = pa.Field(description="Second factor.", nullable=True)
    reason_2_weight: Series[float] = pa.Field(nullable=True, ge=-1, le=1,
                                              description="Change in win probability from the second factor.")
    reason_3: Series[str] = pa.Field(description="Third factor.", nullable=True)
    reason_3_weight: Series[float] = pa.Field(nullable=True, ge=-1, le=1,
                                              description="Change in win probability from the third factor.")
    model_version: Series[int] = pa.Field(ge=1,
                                          description="Registered MLflow version of deal_risk that produced the row.")
    as_of_date: Series[pd.Timestamp] = pa.Field(description="The analysis date the row was computed for.")
    expected_close_month: Series[str] = pa.Field(nullable=True, description=(
        "YYYY-MM, if won: the month by whose end half its chance of being won within the main horizon has come"))
    scored_inputs: Series[str] = pa.Field(description=(
        "digest of what the row's probabilities and reasons depend on (model version, analysis date, reference "
        "deal, rules, code, the deal's features): a re-run predicts again only deals whose digest changed"))

    class Config:
        strict = True
        coerce = True

    @pa.dataframe_check
    def revenue_at_risk_matches(cls, df: pd.DataFrame) -> Series[bool]:
        unknown = df["deal_amount"].isna() & df["revenue_at_risk"].isna()
        return unknown | ((df["revenue_at_risk"] - df["deal_amount"] * (1 - df["win_probability"])).abs()
                          <= 0.01 + 1e-4 * df["deal_amount"])


class PipelineForecast(pa.DataFrameModel):
    """Expected won deals and revenue of the open pipeline per grouping and key."""

    grouping: Series[str] = pa.Field(description="How the pipeline is cut.",
                                     isin=["close_month", "industry", "region", "product_type", "lead_source",
                                           "total", "horizon"])
    key: Series[str] = pa.Field(description="The group's value (total: 'all'; horizon: 30d, 90d, quarter_end).")
    open_deals: Series[int] = pa.Field(
        description="Open deals counted (close_month rows: those expected to close in that month if won).", ge=0)
    pipeline_amount: Series[float] = pa.Field(description="Amount of the open deals.", ge=0)
    expected_won_deals: Series[float] = pa.Field(
        description="Sum of the deals' win probabilities (horizon rows: of being won within that horizon; "
                    "close_month rows: of every open deal being won in that month).", ge=0)
    expected_won_revenue: Series[float] = pa.Field(description="Sum of amount x win probability.", ge=0)
    revenue_p10: Series[float] = pa.Field(description="10th percentile of simulated won revenue.", ge=0)
    revenue_p90: Series[float] = pa.Field(description="90th percentile of simulated won revenue.", ge=0)
    won_deals_p10: Series[float] = pa.Field(description="10th percentile of simulated won deals.", ge=0)
    won_deals_p90: Series[float] = pa.Field(description="90th percentile of simulated won deals.", ge=0)

    class Config:
        strict = True
        coerce = True
        unique = ["grouping", "key"]

    @pa.dataframe_check
    def intervals_ordered(cls, df: pd.DataFrame) -> Series[bool]:
        counted = df["grouping"] != "close_month"   # a month's wins come from every deal, not only its own
        return (df["revenue_p10"] <= df["revenue_p90"]) & (df["won_deals_p10"] <= df["won_deals_p90"]) & (
            ~counted | (df["expected_won_deals"] <= df["open_deals"] + 1e-6))

    @pa.dataframe_check
    def horizon_intervals_hold_the_expectation(cls, df: pd.DataFrame) -> Series[bool]:
        horizon = df["grouping"] == "horizon"
        inside = (df["won_deals_p10"] <= df["expected_won_deals"] + 0.5) & (
            df["expected_won_deals"] <= df["won_deals_p90"] + 0.5)
        return ~horizon | inside


class DealRiskModel(pa.DataFrameModel):
    """One row per training run: the version it registered (if any), its
    validation metrics, the baseline's, and the champion decision."""

    as_of_date: Series[pd.Timestamp] = pa.Field(description="The analysis date the row was computed for.")
    status: Series[str] = pa.Field(isin=["trained", "unchanged", "kept", "not enough data"],
                                   description="trained; unchanged (same data as a version, or no deal changed since "
                                               "it was trained that day); kept (few deals changed since; "
                                               "risk.retrain_changed_share); or not enough data.")
    version: Series[pd.Int64Dtype] = pa.Field(description="MLflow version registered by this run.", nullable=True, ge=1)
    run_id: Series[str] = pa.Field(description="MLflow run id.", nullable=True)
    candidate: Series[str] = pa.Field(description="The model family chosen.", nullable=True)
    served_by: Series[str] = pa.Field(nullable=True, description=(
        "What answers the open deals: the chosen family; or, where the age curve ranked past days' open deals "
        "better than it and deal age, age_curve (at its own level, where the fit falls short of the open deals' "
        "ages; moved by the quarter's clock as a usable model reads it, where wins bunch at quarter ends) or "
        "age_curve_at_model_level (each horizon's expected wins the model's) (horizon_note)."))
    auc: Series[float] = pa.Field(description="Validation ROC AUC.", nullable=True, ge=0, le=1)
    brier: Series[float] = pa.Field(description="Validation Brier score.", nullable=True, ge=0, le=1)
    log_loss: Series[float] = pa.Field(description="Validation log loss.", nullable=True, ge=0)
    ece: Series[float] = pa.Field(description="Validation expected calibration error.", nullable=True, ge=0, le=1)
    baseline_auc: Series[float] = pa.Field(nullable=True, ge=0, le=1,
                                           description="The segment-rate baseline's validation ROC AUC.")
    baseline_brier: Series[float] = pa.Field(description="The baseline's Brier score.", nullable=True, ge=0, le=1)
    baseline_log_loss: Series[float] = pa.Field(description="The baseline's log loss.", nullable=True, ge=0)
    baseline_ece: Series[float] = pa.Field(description="The baseline's calibration error.", nullable=True, ge=0, le=1)
    decision: Series[str] = pa.Field(description="Why the champion did or did not change.")
    win_horizon_days: Series[pd.Int64Dtype] = pa.Field(
        nullable=True, ge=1, description="The model's main horizon: its win_probability is won within this many days "
                                         "(the rules' risk.win_horizon_days, or a shorter one when the history is "
                                         "too short for it: horizon_note).")
    horizon_note: Series[str] = pa.Field(nullable=True, description=(
        "Why the model answers a shorter horizon than the rules file's (a history too short for it), and when "
        "more than a tenth of the open deals are older than any deal its fit learned from while 5 % or more of "
        "the wins came at such ages (a young CRM: past the ages the model learned, their probabilities follow the "
        "age curve of every deal, or the curve alone answers every open deal where it ranked past days' open deals "
        "better than the model and deal age: served_by), and when the curve ranks the open deals at the model's "
        "level (served_by age_curve_at_model_level), and when each new cohort of deals wins less (or more) than the "
        "one before beyond noise, so the open deals are served at their own cohort's level (risk.cohort_trend_min_z), "
        "else empty."))
    quarter_note: Series[str] = pa.Field(nullable=True, description=(
        "Where wins bunch at other months' ends than the rules' quarters end, and the models' quarter clock "
        "followed them (anomalies.seasonality.quarter_ends: auto), else empty."))
    model_verdict: Series[str] = pa.Field(nullable=True, isin=["usable", "weak"],
                                          description="usable, or weak: no better than deal age or the segment rate")
    champion_version: Series[pd.Int64Dtype] = pa.Field(nullable=True, ge=1,
                                                       description="Champion version after this run.")

    class Config:
        strict = False
        coerce = True


class ForecastBacktest(pa.DataFrameModel):
    """The forecast replayed at past analysis dates against what then closed."""

    analysis_date: Series[pd.Timestamp] = pa.Field(description="The past date the forecast was replayed at.")
    status: Series[str] = pa.Field(description="Whether the replay could be judged.")
    open_deals: Series[float] = pa.Field(description="Deals open at that date.", nullable=True, ge=0)
    forecast_win_rate: Series[float] = pa.Field(description="Forecast share of them won.", nullable=True, ge=0, le=1)
    actual_win_rate: Series[float] = pa.Field(description="Share that was won.", nullable=True, ge=0, le=1)
    error_points: Series[float] = pa.Field(description="forecast - actual, in percentage points.", nullable=True)
    window_days: Series[float] = pa.Field(
        nullable=True, ge=1, description="Days of the forecast window judged: the replayed dates' 90, or the "
                                         "'late window' row's short windows that ended by the analysis date.")
    late_sigma: Series[float] = pa.Field(
        nullable=True, ge=0, description="On the 'late window' row: the change of the model's level in the latest "
                                         "short windows against the level just before them, beyond noise (log "
                                         "odds); it widens today's forecast interval.")

    class Config:
        strict = False
        coerce = True


class DealRiskDrift(pa.DataFrameModel):
    """The champion's live performance per horizon, on the deals it scored whose window has ended."""

    as_of_date: Series[pd.Timestamp] = pa.Field(description="The analysis date the row was computed for.")
    model_version: Series[pd.Int64Dtype] = pa.Field(
        nullable=True, ge=1, description="Registered MLflow version of deal_risk that produced the row.")
    status: Series[str] = pa.Field(isin=["ok", "degraded", "not enough data", "no champion", "incompatible"],
                                   description="ok, degraded, not enough data, no champion or incompatible.")
    horizon_days: Series[pd.Int64Dtype] = pa.Field(
        nullable=True, ge=1, description="The horizon judged: won within this many days of the day the champion "
                                         "first scored the deal (empty when there is no champion to judge).")
    new_deals: Series[int] = pa.Field(description="Deals judged: scored by the champion (open on its deployment day "
                                                  "or created after) whose window has ended.", ge=0)
    live_auc: Series[float] = pa.Field(description="ROC AUC on those deals.", nullable=True, ge=0, le=1)
    live_ece: Series[float] = pa.Field(description="Calibration error on those deals.", nullable=True, ge=0, le=1)
    degraded: Series[bool] = pa.Field(description="Worse than at validation beyond the rules' tolerance.")

    class Config:
        strict = False
        coerce = True
        unique = ["as_of_date", "model_version", "horizon_days"]
