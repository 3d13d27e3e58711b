"""Tables of the ingestion layer."""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series


class RawDeals(pa.DataFrameModel):
    """Latest pulled version of every deal, as text the CRM delivered."""

    deal_id: Series[str] = pa.Field(unique=True, description="CRM deal id")
    created_date: Series[str] = pa.Field(description="Creation date as text (YYYY-MM-DD).")
    closed_date: Series[str] = pa.Field(description="Close date as text; empty while open.")
    sales_rep_id: Series[str] = pa.Field(description="The deal owner's rep id.")
    industry: Series[str] = pa.Field(description="The customer's industry.")
    region: Series[str] = pa.Field(description="The sales region.")
    product_type: Series[str] = pa.Field(description="The product sold.")
    lead_source: Series[str] = pa.Field(description="Where the lead came from.")
    deal_stage: Series[str] = pa.Field(description="Stage as the CRM names it.")
    deal_amount: Series[str] = pa.Field(description="Amount as the CRM wrote it.")
    sales_cycle_days: Series[str] = pa.Field(description="Days from creation to close as the CRM wrote it.")
    outcome: Series[str] = pa.Field(description="Won, Lost, or empty / Open for an open deal.")
    last_modified: Series[str] = pa.Field(description="CRM change time; empty for file exports")
    stage_entered_date: Series[str] = pa.Field(
        description="When the deal entered its current stage; empty when unknown.")
    _pull_id: Series[str] = pa.Field(alias="_pull_id", description="pull that delivered this version")
    _pulled_at: Series[pd.Timestamp] = pa.Field(description="When the pull ran (UTC).", alias="_pulled_at")
    _source: Series[str] = pa.Field(description="Where the pull came from (sample, csv:<path>, ...).", alias="_source")

    class Config:
        strict = False


class QuarantinedDeals(pa.DataFrameModel):
    """Every rejected row, with the rule it broke and why."""

    rule: Series[str] = pa.Field(isin=["malformed_row", "unparseable_value", "duplicates", "critical_nulls",
                                       "outcome_values", "negative_amount", "future_date"],
                                 description="The quality rule the row broke.")
    reason: Series[str] = pa.Field(description="What exactly was wrong.", str_length={"min_value": 1})
    deal_id: Series[str] = pa.Field(description="CRM deal id, when the row had one.", nullable=True)
    _pull_id: Series[str] = pa.Field(description="Pull that delivered the row.", alias="_pull_id")

    class Config:
        strict = False


class DataQualityReport(pa.DataFrameModel):
    """Per pull and rule: rows touched and the action taken."""

    pull_id: Series[str] = pa.Field(description="The pull.")
    rule: Series[str] = pa.Field(description="Quality rule.")
    action: Series[str] = pa.Field(isin=["block", "flag", "auto_correct", "quarantine", "keep_latest", "exclude"],
                                   description="What the rule does with a bad row; exclude: a column that gives "
                                               "the outcome away (rule leakage:<column>), kept out of models")
    rows: Series[int] = pa.Field(description="Rows the rule touched in this pull.", ge=0)
    batch_rows: Series[int] = pa.Field(description="Rows in the pull.", ge=0)
    share: Series[float] = pa.Field(description="rows / batch_rows.", ge=0, le=1)
    breaker_tripped: Series[bool] = pa.Field(
        description="More bad rows than the circuit breaker allows: the pull was not merged.")

    class Config:
        strict = False
        coerce = True


class RawStageHistory(pa.DataFrameModel):
    deal_id: Series[str] = pa.Field(description="CRM deal id.")
    stage: Series[str] = pa.Field(description="Stage entered.")
    entered_date: Series[pd.Timestamp] = pa.Field(description="When the deal entered it.")

    class Config:
        strict = False
        coerce = True


class RawActivities(pa.DataFrameModel):
    activity_id: Series[str] = pa.Field(description="CRM activity id.", unique=True)
    deal_id: Series[str] = pa.Field(description="CRM deal id.")
    activity_type: Series[str] = pa.Field(description="call, email or meeting (and note or task from a CRM that logs them).",
                                          isin=["call", "email", "meeting", "note", "task"])
    activity_date: Series[pd.Timestamp] = pa.Field(description="When it happened.")

    class Config:
        strict = False
        coerce = True


class RawSalesReps(pa.DataFrameModel):
    sales_rep_id: Series[str] = pa.Field(description="Rep id as used on deals.", unique=True)

    class Config:
        strict = False


class RawDealDeletions(pa.DataFrameModel):
    """Tombstones: deals the CRM deleted, and when."""

    deal_id: Series[str] = pa.Field(unique=True, description="CRM deal id of the deleted deal.")
    deleted_at: Series[pd.Timestamp] = pa.Field(description="When the CRM deleted (archived) it (UTC).")
    _pull_id: Series[str] = pa.Field(alias="_pull_id", description="Pull that reported the deletion.")
    _pulled_at: Series[pd.Timestamp] = pa.Field(description="When that pull ran (UTC).", alias="_pulled_at")
    _source: Series[str] = pa.Field(description="Where the pull came from.", alias="_source")

    class Config:
        strict = False
        coerce = True
