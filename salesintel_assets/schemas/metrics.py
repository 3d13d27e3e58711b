"""Tables of the metrics layer."""

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series


class DealMetrics(pa.DataFrameModel):
    """One row per deal (open and closed): PVS, SMI, DQS and its components."""

    deal_id: Series[str] = pa.Field(description="CRM deal id.", unique=True)
    sales_rep_id: Series[str] = pa.Field(description="The deal owner's rep id.", nullable=True)
    industry: Series[str] = pa.Field(description="The customer's industry.", nullable=True)
    region: Series[str] = pa.Field(description="The sales region.", nullable=True)
    product_type: Series[str] = pa.Field(description="The product sold.", nullable=True)
    lead_source: Series[str] = pa.Field(description="Where the lead came from.", nullable=True)
    deal_stage: Series[str] = pa.Field(nullable=True,
                                       description="Current stage (for a closed deal: its stage at close).")
    stage_number: Series[pd.Int64Dtype] = pa.Field(
        nullable=True, ge=1, description="Position of the stage in the rules' stage order (1 = first).")
    outcome: Series[str] = pa.Field(description="Won, Lost or Open.", isin=["Won", "Lost", "Open"])
    is_open: Series[bool] = pa.Field(description="Not closed as of the analysis date.")
    in_history: Series[bool] = pa.Field(description="closed on or before as_of: rates are learnt from these")
    created_date: Series[pd.Timestamp] = pa.Field(description="When the deal was created.")
    closed_date: Series[pd.Timestamp] = pa.Field(description="When the deal closed (empty while open).", nullable=True)
    deal_amount: Series[float] = pa.Field(description="Deal value in the CRM's currency.", ge=0, nullable=True)
    velocity_days: Series[float] = pa.Field(ge=1, nullable=True,
                                            description="cycle (closed) or age so far (open), at least 1")
    win_probability: Series[float] = pa.Field(ge=0, le=1, nullable=True,
                                              description="shrunk segment win rate used in PVS")
    pvs: Series[float] = pa.Field(ge=0, nullable=True, description="amount x win probability / days")
    smi: Series[float] = pa.Field(ge=0, nullable=True, description="stage number / days")
    smi_band: Series[str] = pa.Field(
        isin=["critical", "slow", "healthy", "unknown"],
        description="critical, slow or healthy by the rules' SMI bands; unknown without stage data.")
    dqs: Series[float] = pa.Field(ge=0, le=1, nullable=True, description="Deal Quality Score, 0.5 = average")
    lead_source_score: Series[float] = pa.Field(
        ge=0, le=1, nullable=True, description="DQS part: lead source's shrunk win rate vs overall (0.5 = average).")
    industry_score: Series[float] = pa.Field(
        ge=0, le=1, nullable=True, description="DQS part: the industry's shrunk win rate vs overall (0.5 = average).")
    progression_score: Series[float] = pa.Field(
        ge=0, le=1, nullable=True, description="DQS part: win rate at this pace vs overall (0.5 = average).")
    rep_score: Series[float] = pa.Field(ge=0, le=1, nullable=True,
                                        description="DQS part: the rep's shrunk win rate vs overall (0.5 = average).")
    low_quality: Series[bool] = pa.Field(description="DQS below the rules' low-quality threshold.")
    as_of_date: Series[pd.Timestamp] = pa.Field(description="The analysis date the row was computed for.")

    class Config:
        strict = False
        coerce = True

    @pa.dataframe_check
    def low_quality_means_low_dqs(cls, df: pd.DataFrame) -> Series[bool]:
        return ~df["low_quality"] | (df["dqs"] < 0.5)


class SegmentMetrics(pa.DataFrameModel):
    """Win rate, cycle and indices per dimension x segment x period."""

    dimension: Series[str] = pa.Field(description="Deal attribute the segment is cut by (overall = all deals).")
    segment: Series[str] = pa.Field(description="Value of the dimension.")
    period_type: Series[str] = pa.Field(isin=["month", "quarter", "all"],
                                        description="month, quarter or all (by closed date).")
    period: Series[str] = pa.Field(description="The month (YYYY-MM), quarter (YYYYQn) or 'all'.")
    period_start: Series[pd.Timestamp] = pa.Field(nullable=True,
                                                  description="First day of the period (empty for 'all').")
    deals: Series[int] = pa.Field(description="Closed deals in the segment and period.", ge=1)
    won: Series[int] = pa.Field(description="Won deals.", ge=0)
    lost: Series[int] = pa.Field(description="Lost deals.", ge=0)
    win_rate: Series[float] = pa.Field(description="won / closed deals.", ge=0, le=1)
    ci_low: Series[float] = pa.Field(description="Lower end of the 95 % Wilson interval of the win rate.", ge=0, le=1)
    ci_high: Series[float] = pa.Field(description="Upper end of the 95 % Wilson interval of the win rate.", ge=0, le=1)
    avg_cycle_won: Series[float] = pa.Field(description="Mean sales cycle (days) of won deals.", nullable=True)
    avg_cycle_lost: Series[float] = pa.Field(description="Mean sales cycle (days) of lost deals.", nullable=True)
    avg_amount: Series[float] = pa.Field(description="Mean deal amount.", nullable=True)
    volume_share: Series[float] = pa.Field(description="Share of the dimension's deals in this segment.", gt=0, le=1)
    spi: Series[float] = pa.Field(
        ge=-1, le=1, description="Segment Performance Index: (win rate - the dimension's) x volume share.")
    lost_velocity_ratio: Series[float] = pa.Field(
        nullable=True, ge=0, description="Mean cycle of lost deals / of won deals (above 1: losses drag on).")
    enough_data: Series[bool] = pa.Field(description="Enough deals for the figures to be read (rules' minimum).")
    clean_up_closes: Series[int] = pa.Field(
        ge=0, description="Of the closed deals, those closed on clean-up days (stale deals closed lost in one "
                          "sweep); counted in every rate here, left out where periods are compared.")
    clean_up_won: Series[int] = pa.Field(ge=0, description="Won deals among the clean-up days' closes.")

    class Config:
        strict = False
        coerce = True
        unique = ["dimension", "segment", "period_type", "period"]

    @pa.dataframe_check
    def counts_add_up(cls, df: pd.DataFrame) -> Series[bool]:
        return (df["won"] + df["lost"] == df["deals"]) & (df["clean_up_won"] <= df["clean_up_closes"]) & (
            df["clean_up_closes"] <= df["deals"])

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

    from_stage: Series[str] = pa.Field(description="Stage the cohort entered.")
    to_stage: Series[str] = pa.Field(description="The next stage.")
    stage_number: Series[int] = pa.Field(description="Position of from_stage in the stage order.", ge=1)
    period_type: Series[str] = pa.Field(isin=["month", "quarter", "all"],
                                        description="month, quarter or all (by entry date).")
    period: Series[str] = pa.Field(description="Entry month, quarter or 'all'.")
    period_start: Series[pd.Timestamp] = pa.Field(nullable=True,
                                                  description="First day of the period (empty for 'all').")
    entered: Series[int] = pa.Field(description="Deals that entered from_stage.", ge=1)
    still_in_stage: Series[int] = pa.Field(description="Still there on the analysis date (not counted as lost).", ge=0)
    resolved: Series[int] = pa.Field(description="Left the stage (advanced or closed).", ge=0)
    advanced: Series[int] = pa.Field(description="Reached to_stage.", ge=0)
    conversion_rate: Series[float] = pa.Field(description="advanced / resolved.", ge=0, le=1, nullable=True)
    enough_data: Series[bool] = pa.Field(description="Enough deals for the figures to be read (rules' minimum).")

    class Config:
        strict = False
        coerce = True

    @pa.dataframe_check
    def advanced_within_resolved(cls, df: pd.DataFrame) -> Series[bool]:
        return (df["advanced"] <= df["resolved"]) & (df["resolved"] + df["still_in_stage"] == df["entered"])
