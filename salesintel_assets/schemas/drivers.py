"""Tables of the drivers layer."""

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series


class DriverScores(pa.DataFrameModel):
    """Every segment's impact on win rate, tested against the rest."""

    dimension: Series[str] = pa.Field(description="Deal attribute the segment is cut by (overall = all deals).")
    segment: Series[str] = pa.Field(description="Value of the dimension.")
    deals: Series[int] = pa.Field(description="Closed deals of the segment.", ge=1)
    volume_share: Series[float] = pa.Field(description="Share of the dimension's deals in this segment.", gt=0, le=1)
    win_rate: Series[float] = pa.Field(description="won / closed deals.", ge=0, le=1)
    ci_low: Series[float] = pa.Field(description="Lower end of the 95 % Wilson interval of the win rate.", ge=0, le=1)
    ci_high: Series[float] = pa.Field(description="Upper end of the 95 % Wilson interval of the win rate.", ge=0, le=1)
    rest_win_rate: Series[float] = pa.Field(ge=0, le=1, nullable=True,
                                            description="Win rate of the rest of the dimension.")
    spi: Series[float] = pa.Field(
        ge=-1, le=1, description="Segment Performance Index: (win rate - the dimension's) x volume share.")
    material: Series[bool] = pa.Field(
        description="Big enough to matter (volume share and deals over the rules' minimums).")
    p_value: Series[float] = pa.Field(ge=0, le=1, nullable=True,
                                      description="Fisher exact test of the segment against the rest.")
    q_value: Series[float] = pa.Field(ge=0, le=1, nullable=True, description="Benjamini-Hochberg")
    significant: Series[bool] = pa.Field(
        description="q-value below the rules' false-discovery level and the gap large enough.")
    direction: Series[str] = pa.Field(isin=["hurting", "helping", "neutral"],
                                      description="Whether the segment pulls win rate down (hurting) or up (helping).")
    rank: Series[pd.Int64Dtype] = pa.Field(description="Order of importance (1 = most).", nullable=True, ge=1)
    verdict: Series[str] = pa.Field(description="The finding in plain words.", str_length={"min_value": 1})

    class Config:
        strict = False
        coerce = True
        unique = ["dimension", "segment"]

    @pa.dataframe_check
    def only_tested_segments_are_drivers(cls, df: pd.DataFrame) -> Series[bool]:
        tested = df["q_value"].notna() & df["material"]
        return (~df["significant"] | tested) & ((df["direction"] == "neutral") == ~df["significant"])

    @pa.dataframe_check
    def q_not_below_p(cls, df: pd.DataFrame) -> Series[bool]:
        return df["q_value"].isna() | (df["q_value"] >= df["p_value"] - 1e-12)


class WinRateAttribution(pa.DataFrameModel):
    """Rate and mix effects of each segment on the change between two periods."""

    dimension: Series[str] = pa.Field(description="Deal attribute the segment is cut by (overall = all deals).")
    segment: Series[str] = pa.Field(description="Value of the dimension.")
    period_a: Series[str] = pa.Field(description="The earlier period.")
    period_b: Series[str] = pa.Field(description="The later period.")
    n_a: Series[int] = pa.Field(description="Closed deals of the segment in period a.", ge=0)
    n_b: Series[int] = pa.Field(description="Closed deals of the segment in period b.", ge=0)
    share_a: Series[float] = pa.Field(description="Segment's share of the deals in period a.", ge=0, le=1)
    share_b: Series[float] = pa.Field(description="Segment's share of the deals in period b.", ge=0, le=1)
    rate_a: Series[float] = pa.Field(description="Segment win rate in period a.", ge=0, le=1, nullable=True)
    rate_b: Series[float] = pa.Field(description="Segment win rate in period b.", ge=0, le=1, nullable=True)
    rate_effect: Series[float] = pa.Field(
        description="Change explained by the segment's own win rate (midpoint formula).")
    mix_effect: Series[float] = pa.Field(description="Change explained by the segment's share of deals.")
    total_effect: Series[float] = pa.Field(description="rate_effect + mix_effect.")
    total_change: Series[float] = pa.Field(
        description="Overall win-rate change between the periods (the effects of a dimension add up to it).")

    class Config:
        strict = False
        coerce = True

    @pa.dataframe_check
    def effects_add_up(cls, df: pd.DataFrame) -> bool:
        if df.empty:
            return True
        sums = df.groupby("dimension").agg(effects=("total_effect", "sum"), change=("total_change", "first"))
        return bool(np.all(np.abs(sums["effects"] - sums["change"]) <= 1e-9))


class DriverImportance(pa.DataFrameModel):
    """Permutation importance of each factor and of the top pairs."""

    factor: Series[str] = pa.Field(description="Deal factor, or 'a x b' for an interaction.")
    kind: Series[str] = pa.Field(description="main (one factor) or interaction (a pair).", isin=["main", "interaction"])
    importance: Series[float] = pa.Field(
        description="Drop of held-out ROC AUC when shuffled (interaction: beyond the two single drops).")
    importance_std: Series[float] = pa.Field(description="Standard deviation over the shuffles.", ge=0, nullable=True)
    rank: Series[int] = pa.Field(description="Order of importance (1 = most).", ge=1)
    meaningful: Series[bool] = pa.Field(description="Clearly above shuffle noise and the model beats chance.")
    verdict: Series[str] = pa.Field(description="The finding in plain words.", str_length={"min_value": 1})

    class Config:
        strict = False
        coerce = True
        unique = ["factor", "kind"]
