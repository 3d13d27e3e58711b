"""Tables of the warehouse layer."""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series


class FactDeals(pa.DataFrameModel):
    """One clean, typed row per deal."""

    deal_id: Series[str] = pa.Field(unique=True)
    created_date: Series[pd.Timestamp]
    closed_date: Series[pd.Timestamp] = pa.Field(nullable=True)
    sales_rep_id: Series[str]
    industry: Series[str]
    region: Series[str]
    product_type: Series[str]
    lead_source: Series[str]
    deal_stage: Series[str]
    stage_number: Series[pd.Int64Dtype] = pa.Field(nullable=True, ge=1)
    deal_amount: Series[float] = pa.Field(ge=0)
    sales_cycle_days: Series[float] = pa.Field(nullable=True)
    outcome: Series[str] = pa.Field(isin=["Won", "Lost", "Open"])
    is_open: Series[bool]
    is_won: Series[bool]
    age_days: Series[float] = pa.Field(nullable=True)
    stage_entered_date: Series[pd.Timestamp] = pa.Field(nullable=True)
    days_in_stage: Series[float] = pa.Field(nullable=True)
    last_modified: Series[pd.Timestamp] = pa.Field(nullable=True)
    activity_count: Series[int] = pa.Field(ge=0)
    last_activity_date: Series[pd.Timestamp] = pa.Field(nullable=True)
    needs_review: Series[bool]
    review_reason: Series[str] = pa.Field(nullable=True)
    cycle_corrected: Series[bool]
    original_sales_cycle_days: Series[float] = pa.Field(nullable=True)
    as_of_date: Series[pd.Timestamp]
    row_hash: Series[pd.UInt64Dtype] = pa.Field(alias="_row_hash", description="raw version the row was built from")
    rules_hash: Series[str] = pa.Field(alias="_rules_hash", description="rules the row was built with")

    class Config:
        strict = True
        coerce = True

    @pa.dataframe_check
    def open_deals_have_no_close(cls, df: pd.DataFrame) -> Series[bool]:
        return ~df["is_open"] | (df["closed_date"].isna() & df["sales_cycle_days"].isna())

    @pa.dataframe_check
    def closed_cycles_match_dates(cls, df: pd.DataFrame) -> Series[bool]:
        expected = (df["closed_date"] - df["created_date"]).dt.days
        return df["is_open"] | (df["sales_cycle_days"] == expected)


class DimSalesReps(pa.DataFrameModel):
    sales_rep_id: Series[str] = pa.Field(unique=True)
    rep_name: Series[str]
    manager_id: Series[str] = pa.Field(nullable=True)
    cro_id: Series[str] = pa.Field(nullable=True)
    deals: Series[int] = pa.Field(ge=0)
    has_org: Series[bool]

    class Config:
        strict = False
        coerce = True


class DimIndustries(pa.DataFrameModel):
    industry: Series[str] = pa.Field(unique=True)
    deals: Series[int] = pa.Field(ge=1)
    closed_deals: Series[int] = pa.Field(ge=0)
    won_deals: Series[int] = pa.Field(ge=0)

    class Config:
        strict = False
        coerce = True


class DimProducts(pa.DataFrameModel):
    product_type: Series[str] = pa.Field(unique=True)
    deals: Series[int] = pa.Field(ge=1)
    closed_deals: Series[int] = pa.Field(ge=0)
    won_deals: Series[int] = pa.Field(ge=0)

    class Config:
        strict = False
        coerce = True


class DealHistory(pa.DataFrameModel):
    """SCD type 2: one row per version of a deal."""

    deal_id: Series[str]
    version: Series[int] = pa.Field(ge=1)
    valid_from: Series[pd.Timestamp]
    valid_to: Series[pd.Timestamp] = pa.Field(nullable=True)
    is_current: Series[bool]

    class Config:
        strict = False
        coerce = True

    @pa.dataframe_check
    def one_current_version_per_deal(cls, df: pd.DataFrame) -> bool:
        current = df.loc[df["is_current"], "deal_id"]
        return current.is_unique and current.nunique() == df["deal_id"].nunique()


class FactStageTransitions(pa.DataFrameModel):
    deal_id: Series[str]
    stage: Series[str]
    entered_date: Series[pd.Timestamp]
    days_in_stage: Series[float] = pa.Field(nullable=True)
    is_current: Series[bool]

    class Config:
        strict = False
        coerce = True
