"""Tables of the drivers layer."""

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series


class DriverScores(pa.DataFrameModel):
    """Every segment's impact on win rate, tested against the rest."""

    dimension: Series[str]
    segment: Series[str]
    deals: Series[int] = pa.Field(ge=1)
    volume_share: Series[float] = pa.Field(gt=0, le=1)
    win_rate: Series[float] = pa.Field(ge=0, le=1)
    ci_low: Series[float] = pa.Field(ge=0, le=1)
    ci_high: Series[float] = pa.Field(ge=0, le=1)
    rest_win_rate: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    spi: Series[float] = pa.Field(ge=-1, le=1)
    material: Series[bool]
    p_value: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    q_value: Series[float] = pa.Field(ge=0, le=1, nullable=True, description="Benjamini-Hochberg")
    significant: Series[bool]
    direction: Series[str] = pa.Field(isin=["hurting", "helping", "neutral"])
    rank: Series[pd.Int64Dtype] = pa.Field(nullable=True, ge=1)
    verdict: Series[str] = pa.Field(str_length={"min_value": 1})

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

    dimension: Series[str]
    segment: Series[str]
    period_a: Series[str]
    period_b: Series[str]
    n_a: Series[int] = pa.Field(ge=0)
    n_b: Series[int] = pa.Field(ge=0)
    share_a: Series[float] = pa.Field(ge=0, le=1)
    share_b: Series[float] = pa.Field(ge=0, le=1)
    rate_a: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    rate_b: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    rate_effect: Series[float]
    mix_effect: Series[float]
    total_effect: Series[float]
    total_change: Series[float]

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

    factor: Series[str]
    kind: Series[str] = pa.Field(isin=["main", "interaction"])
    importance: Series[float]
    importance_std: Series[float] = pa.Field(ge=0, nullable=True)
    rank: Series[int] = pa.Field(ge=1)
    meaningful: Series[bool]
    verdict: Series[str] = pa.Field(str_length={"min_value": 1})

    class Config:
        strict = False
        coerce = True
        unique = ["factor", "kind"]
