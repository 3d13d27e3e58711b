"""Pandera models of the anomalies layer."""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

ANOMALY_TYPES = ["win_rate_dip", "win_rate_spike", "cycle_slowdown", "open_age_increase", "still_open_increase",
                 "quality_drop", "metric_shift", "stalled_deal"]
METRICS = ["win_rate", "sales_cycle_days", "open_deal_age_days", "still_open_share", "deal_quality", "pvs", "smi",
           "dqs", "stage_duration"]


class Anomalies(pa.DataFrameModel):
    """One row per anomaly: what changed, where, by how much, how sure, why,
    and the money at stake. Segment anomalies carry their test (p, BH q over
    every test of the run); stalled deals carry the estimated win chance of
    deals that lasted as long and of a deal fresh in the stage."""

    anomaly_id: Series[str] = pa.Field(unique=True, str_length={"min_value": 16, "max_value": 16},
                                       description="hash of type, metric, segment, window_days, window_end")
    anomaly_type: Series[str] = pa.Field(description="Kind of anomaly.", isin=ANOMALY_TYPES)
    metric: Series[str] = pa.Field(description="The metric that moved.", isin=METRICS)
    segment: Series[str] = pa.Field(description="'all', 'industry=EdTech&region=Europe' (keys sorted) "
                                                "or 'deal_id=D04523'")
    dimension: Series[str] = pa.Field(description="'all', 'industry', 'industry&region', ... or 'deal'")
    direction: Series[str] = pa.Field(description="up or down.", isin=["up", "down"])
    window_start: Series[pd.Timestamp] = pa.Field(description="First day of the recent window.")
    window_end: Series[pd.Timestamp] = pa.Field(description="Last day of the window (the analysis date).")
    window_days: Series[pd.Int64Dtype] = pa.Field(nullable=True, ge=1, description="null for a stalled deal")
    observed: Series[float] = pa.Field(description="The metric in the window.", nullable=True)
    expected: Series[float] = pa.Field(description="The metric expected from the baseline.", nullable=True)
    effect: Series[float] = pa.Field(nullable=True, description="observed - expected")
    n: Series[pd.Int64Dtype] = pa.Field(nullable=True, ge=0,
                                        description="recent deals tested (stalled: every deal that lasted as long, "
                                                    "still-open ones included, behind historical_win_rate)")
    baseline_n: Series[pd.Int64Dtype] = pa.Field(nullable=True, ge=0, description="effective baseline deals")
    p_value: Series[float] = pa.Field(nullable=True, ge=0, le=1,
                                      description="Exact test p-value of the window against the baseline.")
    q_value: Series[float] = pa.Field(nullable=True, ge=0, le=1,
                                      description="Benjamini-Hochberg over every segment test of the run")
    severity: Series[str] = pa.Field(isin=["critical", "high", "medium", "low"],
                                     description="critical, high, medium or low (from effect and confidence).")
    explanation: Series[str] = pa.Field(str_length={"min_value": 20},
                                        description="What changed, how sure, in plain words.")
    root_cause: Series[str] = pa.Field(nullable=True,
                                       description="Where the change concentrates (drill-down), when found.")
    deal_id: Series[str] = pa.Field(description="The stalled deal (stalled deals only).", nullable=True)
    sales_rep_id: Series[str] = pa.Field(description="The stalled deal's owner.", nullable=True)
    amount_at_stake: Series[float] = pa.Field(
        ge=0, description="segment: open pipeline x rate change (win rate) or open pipeline; stalled: the money "
                          "at stake = deal amount x the drop in win chance attributable to the stall "
                          "(baseline_win_rate - the chance of deals that lasted as long, or past the limit "
                          "at all when too few did); 0 when there is not enough data to estimate it")
    historical_win_rate: Series[float] = pa.Field(
        nullable=True, ge=0, le=1,
        description="Stalled deals: estimated share of the deals that lasted as long (in the stage, or open) won "
                    "within risk.win_horizon_days from then on (Aalen-Johansen cumulative incidence, still-open "
                    "deals censored); null below anomalies.stalled.min_history_deals deals (n).")
    historical_win_low: Series[float] = pa.Field(nullable=True, ge=0, le=1,
                                                 description="95 % interval of historical_win_rate, low end.")
    historical_win_high: Series[float] = pa.Field(nullable=True, ge=0, le=1,
                                                  description="95 % interval of historical_win_rate, high end.")
    baseline_win_rate: Series[float] = pa.Field(
        nullable=True, ge=0, le=1,
        description="Stalled deals: the same estimate for a deal fresh in that stage (age rule: a new deal), "
                    "the reference of the drop in win chance.")
    as_of_date: Series[pd.Timestamp] = pa.Field(description="The analysis date the row was computed for.")

    class Config:
        strict = True
        coerce = True

    @pa.dataframe_check
    def segment_anomalies_are_tested(cls, df: pd.DataFrame) -> Series[bool]:
        return (df["anomaly_type"] == "stalled_deal") | (df["q_value"].notna() & df["window_days"].notna())

    @pa.dataframe_check
    def stalled_deals_name_their_deal(cls, df: pd.DataFrame) -> Series[bool]:
        stalled = df["anomaly_type"] == "stalled_deal"
        names = df["segment"] == "deal_id=" + df["deal_id"].fillna("")
        return ~stalled | (df["deal_id"].notna() & names & (df["dimension"] == "deal"))

    @pa.dataframe_check
    def windows_end_on_the_analysis_date(cls, df: pd.DataFrame) -> Series[bool]:
        return (df["window_end"] == df["as_of_date"]) & (df["window_start"] <= df["window_end"])
