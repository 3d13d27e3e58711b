"""Tables of the ingestion layer."""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series


class RawDeals(pa.DataFrameModel):
    """Latest pulled version of every deal, as text the CRM delivered."""

    deal_id: Series[str] = pa.Field(unique=True, description="CRM deal id")
    created_date: Series[str]
    closed_date: Series[str]
    sales_rep_id: Series[str]
    industry: Series[str]
    region: Series[str]
    product_type: Series[str]
    lead_source: Series[str]
    deal_stage: Series[str]
    deal_amount: Series[str]
    sales_cycle_days: Series[str]
    outcome: Series[str]
    last_modified: Series[str] = pa.Field(description="CRM change time; empty for file exports")
    stage_entered_date: Series[str]
    _pull_id: Series[str] = pa.Field(alias="_pull_id", description="pull that delivered this version")
    _pulled_at: Series[pd.Timestamp] = pa.Field(alias="_pulled_at")
    _source: Series[str] = pa.Field(alias="_source")

    class Config:
        strict = False


class QuarantinedDeals(pa.DataFrameModel):
    """Every rejected row, with the rule it broke and why."""

    rule: Series[str] = pa.Field(isin=["schema", "duplicates", "critical_nulls", "outcome_values"])
    reason: Series[str] = pa.Field(str_length={"min_value": 1})
    deal_id: Series[str] = pa.Field(nullable=True)
    _pull_id: Series[str] = pa.Field(alias="_pull_id")

    class Config:
        strict = False


class DataQualityReport(pa.DataFrameModel):
    """Per pull and rule: rows touched and the action taken."""

    pull_id: Series[str]
    rule: Series[str]
    action: Series[str] = pa.Field(isin=["block", "flag", "auto_correct", "quarantine", "keep_latest"])
    rows: Series[int] = pa.Field(ge=0)
    batch_rows: Series[int] = pa.Field(ge=0)
    share: Series[float] = pa.Field(ge=0, le=1)
    breaker_tripped: Series[bool]

    class Config:
        strict = False
        coerce = True


class RawStageHistory(pa.DataFrameModel):
    deal_id: Series[str]
    stage: Series[str]
    entered_date: Series[pd.Timestamp]

    class Config:
        strict = False
        coerce = True


class RawActivities(pa.DataFrameModel):
    activity_id: Series[str] = pa.Field(unique=True)
    deal_id: Series[str]
    activity_type: Series[str] = pa.Field(isin=["call", "email", "meeting"])
    activity_date: Series[pd.Timestamp]

    class Config:
        strict = False
        coerce = True


class RawSalesReps(pa.DataFrameModel):
    sales_rep_id: Series[str] = pa.Field(unique=True)

    class Config:
        strict = False
