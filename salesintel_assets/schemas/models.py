"""Pandera models of the models layer."""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

RISK_BANDS = ["low", "medium", "high"]


class DealRiskScores(pa.DataFrameModel):
    """One row per open deal, scored by the champion model."""

    deal_id: Series[str] = pa.Field(unique=True)
    sales_rep_id: Series[str]
    industry: Series[str]
    region: Series[str]
    product_type: Series[str]
    lead_source: Series[str]
    deal_stage: Series[str]
    deal_amount: Series[float] = pa.Field(ge=0)
    age_days: Series[float] = pa.Field(nullable=True, ge=0)
    days_in_stage: Series[float] = pa.Field(nullable=True)
    win_probability: Series[float] = pa.Field(ge=0, le=1, description="calibrated probability the deal is won")
    risk_band: Series[str] = pa.Field(isin=RISK_BANDS)
    revenue_at_risk: Series[float] = pa.Field(ge=0, description="deal_amount x (1 - win_probability)")
    reason_1: Series[str] = pa.Field(nullable=True)
    reason_1_weight: Series[float] = pa.Field(nullable=True, ge=-1, le=1,
                                              description="change in win probability (fraction) from this factor")
    reason_2: Series[str] = pa.Field(nullable=True)
    reason_2_weight: Series[float] = pa.Field(nullable=True, ge=-1, le=1)
    reason_3: Series[str] = pa.Field(nullable=True)
    reason_3_weight: Series[float] = pa.Field(nullable=True, ge=-1, le=1)
    model_version: Series[int] = pa.Field(ge=1)
    as_of_date: Series[pd.Timestamp]
    expected_close_month: Series[str] = pa.Field(nullable=True, description="YYYY-MM, if won")

    class Config:
        strict = True
        coerce = True

    @pa.dataframe_check
    def revenue_at_risk_matches(cls, df: pd.DataFrame) -> Series[bool]:
        return (df["revenue_at_risk"] - df["deal_amount"] * (1 - df["win_probability"])).abs() <= 0.01 + 1e-4 * df[
            "deal_amount"]


class PipelineForecast(pa.DataFrameModel):
    """Expected won deals and revenue of the open pipeline per grouping and key."""

    grouping: Series[str] = pa.Field(isin=["close_month", "industry", "region", "product_type", "lead_source",
                                           "total"])
    key: Series[str]
    open_deals: Series[int] = pa.Field(ge=0)
    pipeline_amount: Series[float] = pa.Field(ge=0)
    expected_won_deals: Series[float] = pa.Field(ge=0)
    expected_won_revenue: Series[float] = pa.Field(ge=0)
    revenue_p10: Series[float] = pa.Field(ge=0)
    revenue_p90: Series[float] = pa.Field(ge=0)
    won_deals_p10: Series[float] = pa.Field(ge=0)
    won_deals_p90: Series[float] = pa.Field(ge=0)

    class Config:
        strict = True
        coerce = True
        unique = ["grouping", "key"]

    @pa.dataframe_check
    def intervals_ordered(cls, df: pd.DataFrame) -> Series[bool]:
        return (df["revenue_p10"] <= df["revenue_p90"]) & (df["won_deals_p10"] <= df["won_deals_p90"]) & (
            df["expected_won_deals"] <= df["open_deals"] + 1e-6)


class DealRiskModel(pa.DataFrameModel):
    """One row per training run: the version it registered (if any), its
    validation metrics, the baseline's, and the champion decision."""

    as_of_date: Series[pd.Timestamp]
    status: Series[str] = pa.Field(isin=["trained", "unchanged", "not enough data"])
    version: Series[pd.Int64Dtype] = pa.Field(nullable=True, ge=1)
    run_id: Series[str] = pa.Field(nullable=True)
    candidate: Series[str] = pa.Field(nullable=True)
    auc: Series[float] = pa.Field(nullable=True, ge=0, le=1)
    brier: Series[float] = pa.Field(nullable=True, ge=0, le=1)
    log_loss: Series[float] = pa.Field(nullable=True, ge=0)
    ece: Series[float] = pa.Field(nullable=True, ge=0, le=1)
    baseline_auc: Series[float] = pa.Field(nullable=True, ge=0, le=1)
    baseline_brier: Series[float] = pa.Field(nullable=True, ge=0, le=1)
    baseline_log_loss: Series[float] = pa.Field(nullable=True, ge=0)
    baseline_ece: Series[float] = pa.Field(nullable=True, ge=0, le=1)
    decision: Series[str]
    champion_version: Series[pd.Int64Dtype] = pa.Field(nullable=True, ge=1)

    class Config:
        strict = False
        coerce = True


class ForecastBacktest(pa.DataFrameModel):
    """The forecast replayed at past analysis dates against what then closed."""

    analysis_date: Series[pd.Timestamp]
    status: Series[str]
    open_deals: Series[float] = pa.Field(nullable=True, ge=0)
    forecast_win_rate: Series[float] = pa.Field(nullable=True, ge=0, le=1)
    actual_win_rate: Series[float] = pa.Field(nullable=True, ge=0, le=1)
    error_points: Series[float] = pa.Field(nullable=True)

    class Config:
        strict = False
        coerce = True


class DealRiskDrift(pa.DataFrameModel):
    """The champion's live performance on deals closed after it was deployed."""

    as_of_date: Series[pd.Timestamp]
    model_version: Series[pd.Int64Dtype] = pa.Field(nullable=True, ge=1)
    status: Series[str] = pa.Field(isin=["ok", "degraded", "not enough data", "no champion", "incompatible"])
    new_deals: Series[int] = pa.Field(ge=0)
    live_auc: Series[float] = pa.Field(nullable=True, ge=0, le=1)
    live_ece: Series[float] = pa.Field(nullable=True, ge=0, le=1)
    degraded: Series[bool]

    class Config:
        strict = False
        coerce = True
        unique = ["as_of_date", "model_version"]
