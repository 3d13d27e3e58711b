"""Tables of the warehouse layer."""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series


class FactDeals(pa.DataFrameModel):
    """One clean, typed row per deal."""

    deal_id: Series[str] = pa.Field(description="CRM deal id.", unique=True)
    created_date: Series[pd.Timestamp] = pa.Field(description="When the deal was created.")
    closed_date: Series[pd.Timestamp] = pa.Field(description="When the deal closed (empty while open).", nullable=True)
    sales_rep_id: Series[str] = pa.Field(description="The deal owner's rep id.")
    industry: Series[str] = pa.Field(description="The customer's industry.")
    region: Series[str] = pa.Field(description="The sales region.")
    product_type: Series[str] = pa.Field(description="The product sold.")
    lead_source: Series[str] = pa.Field(description="Where the lead came from.")
    deal_stage: Series[str] = pa.Field(description="Current stage (for a closed deal: its stage at close).")
    crm_stage: Series[str] = pa.Field(
        nullable=True, description="deal_stage as the CRM names it (the rules file maps it to deal_stage).")
    stage_number: Series[pd.Int64Dtype] = pa.Field(
        nullable=True, ge=1, description="Position of the stage in the rules' stage order (1 = first).")
    deal_amount: Series[float] = pa.Field(
        nullable=True, ge=0, description="Deal value (formatted amounts parsed); empty for an open deal the CRM "
                                         "has no amount for yet (never for a closed one)")
    sales_cycle_days: Series[float] = pa.Field(
        nullable=True, description="Days from creation to close (recomputed when the CRM's figure was wrong).")
    outcome: Series[str] = pa.Field(description="Won, Lost or Open.", isin=["Won", "Lost", "Open"])
    is_open: Series[bool] = pa.Field(description="Not closed as of the analysis date.")
    is_won: Series[bool] = pa.Field(description="Closed and won.")
    age_days: Series[float] = pa.Field(nullable=True,
                                       description="Days since creation (open deals: up to the analysis date).")
    stage_entered_date: Series[pd.Timestamp] = pa.Field(
        nullable=True, description="When the deal entered its current stage (stage history or the CRM's field).")
    days_in_stage: Series[float] = pa.Field(nullable=True,
                                            description="Days in the current stage as of the analysis date.")
    last_modified: Series[pd.Timestamp] = pa.Field(description="Last change in the CRM.", nullable=True)
    activity_count: Series[int] = pa.Field(description="Activities logged up to the analysis date.", ge=0)
    last_activity_date: Series[pd.Timestamp] = pa.Field(nullable=True,
                                                        description="Most recent activity up to the analysis date.")
    needs_review: Series[bool] = pa.Field(
        description="Kept but flagged by a quality rule (e.g. closed before created).")
    review_reason: Series[str] = pa.Field(description="Why the row is flagged.", nullable=True)
    cycle_corrected: Series[bool] = pa.Field(description="sales_cycle_days was recomputed from the dates.")
    original_sales_cycle_days: Series[float] = pa.Field(nullable=True,
                                                        description="The CRM's figure before correction.")
    as_of_date: Series[pd.Timestamp] = pa.Field(description="The analysis date the row was computed for.")
    row_hash: Series[pd.UInt64Dtype] = pa.Field(alias="_row_hash", description="raw version the row was built from")
    rules_hash: Series[str] = pa.Field(alias="_rules_hash", description="rules the row was built with")

    class Config:
        strict = True
        coerce = True

    @pa.dataframe_check
    def open_deals_have_no_close(cls, df: pd.DataFrame) -> Series[bool]:
        return ~df["is_open"] | (df["closed_date"].isna() & df["sales_cycle_days"].isna())

    @pa.dataframe_check
    def closed_deals_have_an_amount(cls, df: pd.DataFrame) -> Series[bool]:
        """Only an open deal may lack an amount (a closed one was won or lost at a value)."""
        return df["is_open"] | df["deal_amount"].notna()

    @pa.dataframe_check
    def closed_cycles_match_dates(cls, df: pd.DataFrame) -> Series[bool]:
        expected = (df["closed_date"] - df["created_date"]).dt.days
        return df["is_open"] | (df["sales_cycle_days"] == expected)


class DimSalesReps(pa.DataFrameModel):
    sales_rep_id: Series[str] = pa.Field(description="The deal owner's rep id.", unique=True)
    rep_name: Series[str] = pa.Field(description="Rep's name (the id when the org is unknown).")
    manager_id: Series[str] = pa.Field(description="The rep's manager.", nullable=True)
    cro_id: Series[str] = pa.Field(description="The chief revenue officer above the manager.", nullable=True)
    deals: Series[int] = pa.Field(description="Deals owned.", ge=0)
    has_org: Series[bool] = pa.Field(description="The CRM or org file knows this rep's chain.")

    class Config:
        strict = False
        coerce = True


class DimIndustries(pa.DataFrameModel):
    industry: Series[str] = pa.Field(description="Industry.", unique=True)
    deals: Series[int] = pa.Field(description="Deals counted.", ge=1)
    closed_deals: Series[int] = pa.Field(description="Closed deals.", ge=0)
    won_deals: Series[int] = pa.Field(description="Won deals.", ge=0)

    class Config:
        strict = False
        coerce = True


class DimProducts(pa.DataFrameModel):
    product_type: Series[str] = pa.Field(description="Product.", unique=True)
    deals: Series[int] = pa.Field(description="Deals counted.", ge=1)
    closed_deals: Series[int] = pa.Field(description="Closed deals.", ge=0)
    won_deals: Series[int] = pa.Field(description="Won deals.", ge=0)

    class Config:
        strict = False
        coerce = True


class DealHistory(pa.DataFrameModel):
    """SCD type 2: one row per version of a deal."""

    deal_id: Series[str] = pa.Field(description="CRM deal id.")
    version: Series[int] = pa.Field(description="Version number of the deal (1 = first seen).", ge=1)
    valid_from: Series[pd.Timestamp] = pa.Field(
        description="When this version became true (CRM last_modified, else when seen).")
    valid_to: Series[pd.Timestamp] = pa.Field(nullable=True,
                                              description="When it was replaced (empty for the current version).")
    is_current: Series[bool] = pa.Field(description="The deal's current version.")
    is_deleted: Series[bool] = pa.Field(description="The version was closed because the CRM deleted the deal.")

    class Config:
        strict = False
        coerce = True
        metadata = {"partition_key": "deal_id"}   # its table-wide rule is about each deal's versions

    @pa.dataframe_check
    def one_current_version_per_deal(cls, df: pd.DataFrame) -> bool:
        """Every deal has exactly one current version, unless the CRM deleted it."""
        current = df.loc[df["is_current"], "deal_id"]
        deleted = set(df.loc[df["is_deleted"], "deal_id"])
        return current.is_unique and set(current) | deleted == set(df["deal_id"])


class FactStageTransitions(pa.DataFrameModel):
    deal_id: Series[str] = pa.Field(description="CRM deal id.")
    stage: Series[str] = pa.Field(description="Stage entered.")
    entered_date: Series[pd.Timestamp] = pa.Field(description="When the deal entered it.")
    days_in_stage: Series[float] = pa.Field(
        nullable=True, description="Days until the next stage (or the analysis date while still in it).")
    is_current: Series[bool] = pa.Field(description="The deal is still in this stage.")

    class Config:
        strict = False
        coerce = True
