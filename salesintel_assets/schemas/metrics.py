"""Tables of the metrics layer."""

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series


class DealMetrics(pa.DataFrameModel):
    """One row per deal (open and closed): PVS, SMI, DQS and its components."""

    deal_id: Series[str] = pa.Field(unique=True)
    sales_rep_id: Series[str] = pa.Field(nullable=True)
    industry: Series[str] = pa.Field(nullable=True)
    region: Series[str] = pa.Field(nullable=True)
    product_type: Series[str] = pa.Field(nullable=True)
    lead_source: Series[str] = pa.Field(nullable=True)
    deal_stage: Series[str] = pa.Field(nullable=True)
    stage_number: Series[pd.Int64Dtype] = pa.Field(nullable=True, ge=1)
    outcome: Series[str] = pa.Field(isin=["Won", "Lost", "Open"])
    is_open: Series[bool]
    in_history: Series[bool] = pa.Field(description="closed on or before as_of: rates are learnt from these")
    created_date: Series[pd.Timestamp]
    closed_date: Series[pd.Timestamp] = pa.Field(nullable=True)
    deal_amount: Series[float] = pa.Field(ge=0, nullable=True)
    velocity_days: Series[float] = pa.Field(ge=1, nullable=True,
                                            description="cycle (closed) or age so far (open), at least 1")
    win_probability: Series[float] = pa.Field(ge=0, le=1, nullable=True,
                                              description="shrunk segment win rate used in PVS")
    pvs: Series[float] = pa.Field(ge=0, nullable=True, description="amount x win probability / days")
    smi: Series[float] = pa.Field(ge=0, nullable=True, description="stage number / days")
    smi_band: Series[str] = pa.Field(isin=["critical", "slow", "healthy", "unknown"])
    dqs: Series[float] = pa.Field(ge=0, le=1, nullable=True, description="Deal Quality Score, 0.5 = average")
    lead_source_score: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    industry_score: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    progression_score: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    rep_score: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    low_quality: Series[bool]
    as_of_date: Series[pd.Timestamp]

    class Config:
        strict = False
        coerce = True

    @pa.dataframe_check
    def low_quality_means_low_dqs(cls, df: pd.DataFrame) -> Series[bool]:
        return ~df["low_quality"] | (df["dqs"] < 0.5)


class SegmentMetrics(pa.DataFrameModel):
    """Win rate, cycle and indices per dimension x segment x period."""

    dimension: Series[str]
    segment: Series[str]
    period_type: Series[str] = pa.Field(isin=["month", "quarter", "all"])
    period: Series[str]
    period_start: Series[pd.Timestamp] = pa.Field(nullable=True)
    deals: Series[int] = pa.Field(ge=1)
    won: Series[int] = pa.Field(ge=0)
    lost: Series[int] = pa.Field(ge=0)
    win_rate: Series[float] = pa.Field(ge=0, le=1)
    ci_low: Series[float] = pa.Field(ge=0, le=1)
    ci_high: Series[float] = pa.Field(ge=0, le=1)
    avg_cycle_won: Series[float] = pa.Field(nullable=True)
    avg_cycle_lost: Series[float] = pa.Field(nullable=True)
    avg_amount: Series[float] = pa.Field(nullable=True)
    volume_share: Series[float] = pa.Field(gt=0, le=1)
    spi: Series[float] = pa.Field(ge=-1, le=1)
    lost_velocity_ratio: Series[float] = pa.Field(nullable=True, ge=0)
    enough_data: Series[bool]

    class Config:
        strict = False
        coerce = True
        unique = ["dimension", "segment", "period_type", "period"]

    @pa.dataframe_check
    def counts_add_up(cls, df: pd.DataFrame) -> Series[bool]:
        return df["won"] + df["lost"] == df["deals"]

    @pa.dataframe_check
    def rate_inside_interval(cls, df: pd.DataFrame) -> Series[bool]:
        return (df["ci_low"] <= df["win_rate"] + 1e-12) & (df["win_rate"] <= df["ci_high"] + 1e-12)

    @pa.dataframe_check
    def shares_sum_to_one(cls, df: pd.DataFrame) -> bool:
        if df.empty:
            return True
        sums = df.groupby(["dimension", "period_type", "period"])["volume_share"].sum()
        return bool(np.allclose(sums, 1.0))


class StageConversion(pa.DataFrameModel):
    """Stage-to-stage conversion per entry cohort (empty without stage history)."""

    from_stage: Series[str]
    to_stage: Series[str]
    stage_number: Series[int] = pa.Field(ge=1)
    period_type: Series[str] = pa.Field(isin=["month", "quarter", "all"])
    period: Series[str]
    period_start: Series[pd.Timestamp] = pa.Field(nullable=True)
    entered: Series[int] = pa.Field(ge=1)
    still_in_stage: Series[int] = pa.Field(ge=0)
    resolved: Series[int] = pa.Field(ge=0)
    advanced: Series[int] = pa.Field(ge=0)
    conversion_rate: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    enough_data: Series[bool]

    class Config:
        strict = False
        coerce = True

    @pa.dataframe_check
    def advanced_within_resolved(cls, df: pd.DataFrame) -> Series[bool]:
        return (df["advanced"] <= df["resolved"]) & (df["resolved"] + df["still_in_stage"] == df["entered"])
