"""Pandera models of the alerts layer."""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from salesintel_assets.domain.common.rules import SEVERITIES


class Alerts(pa.DataFrameModel):
    """One row per alert (its current state); resolved alerts stay as history."""

    alert_id: Series[str] = pa.Field(unique=True)
    dedup_key: Series[str]
    alert_type: Series[str]
    priority: Series[str] = pa.Field(isin=["P1", "P2", "P3"])
    status: Series[str] = pa.Field(isin=["open", "updated", "resolved"])
    subject: Series[str]
    title: Series[str] = pa.Field(str_length={"min_value": 1})
    body_text: Series[str] = pa.Field(str_length={"min_value": 1})
    blocks_json: Series[str]
    recipients: Series[str] = pa.Field(str_length={"min_value": 1})
    recipient_roles: Series[str]
    sales_rep_id: Series[str] = pa.Field(nullable=True)
    amount_at_stake: Series[float] = pa.Field(ge=0)
    first_seen: Series[pd.Timestamp]
    last_seen: Series[pd.Timestamp]
    resolved_at: Series[pd.Timestamp] = pa.Field(nullable=True)
    delivery: Series[str] = pa.Field(isin=["immediate", "digest", "suppressed"])
    delivery_reason: Series[str]
    anomaly_id: Series[str]

    class Config:
        strict = False
        coerce = True

    @pa.dataframe_check
    def one_live_alert_per_dedup_key(cls, df: pd.DataFrame) -> bool:
        return not df.loc[df["status"].isin(["open", "updated"]), "dedup_key"].duplicated().any()

    @pa.dataframe_check
    def resolved_alerts_have_a_date(cls, df: pd.DataFrame) -> Series[bool]:
        return df["status"].ne("resolved") | df["resolved_at"].notna()


class AlertDeliveries(pa.DataFrameModel):
    """The outbox ledger: one row per message x recipient x channel."""

    delivery_id: Series[str] = pa.Field(unique=True)
    message_id: Series[str]
    message_kind: Series[str] = pa.Field(isin=["alert", "resolved", "escalation", "digest", "scorecard", "report"])
    recipient_id: Series[str]
    channel: Series[str] = pa.Field(isin=["slack", "email", "outbox"])
    status: Series[str] = pa.Field(isin=["pending", "sent", "failed", "unknown"])
    attempts: Series[int] = pa.Field(ge=0)
    subject: Series[str]
    body_text: Series[str]
    sent_at: Series[pd.Timestamp] = pa.Field(nullable=True)
    response_id: Series[str] = pa.Field(nullable=True)

    class Config:
        strict = False
        coerce = True

    @pa.dataframe_check
    def each_message_sent_at_most_once(cls, df: pd.DataFrame) -> bool:
        return not df[df["status"].eq("sent")].duplicated(["message_id", "recipient_id"]).any()

    @pa.dataframe_check
    def sent_rows_have_a_receipt(cls, df: pd.DataFrame) -> Series[bool]:
        return df["status"].ne("sent") | (df["sent_at"].notna() & df["response_id"].notna())


class AlertFeedback(pa.DataFrameModel):
    """One row per alert and person: their latest rating and latest event,
    from the feedback inbox."""

    alert_id: Series[str] = pa.Field(description="The rated or acknowledged alert.")
    alert_type: Series[str] = pa.Field(description="The alert's type, recorded with the event.")
    actor: Series[str] = pa.Field(description="Who gave the feedback (a user name, slack:<name>).")
    verdict: Series[str] = pa.Field(isin=["helpful", "noise"], nullable=True,
                                    description="Their latest rating; empty when they only acknowledged or snoozed.")
    rated_at: Series[pd.Timestamp] = pa.Field(nullable=True, description="When that rating was given (UTC).")
    last_action: Series[str] = pa.Field(isin=["helpful", "noise", "acknowledge", "snooze"],
                                        description="Their latest event of any kind.")
    last_action_at: Series[pd.Timestamp] = pa.Field(description="When the latest event happened (UTC).")
    last_source: Series[str] = pa.Field(description="Where the latest event came from (cli, slack, ...).")
    snoozed_until: Series[pd.Timestamp] = pa.Field(nullable=True,
                                                   description="End of the snooze when the latest event is one.")
    events: Series[int] = pa.Field(ge=1, description="Events recorded for this alert and person.")

    class Config:
        strict = False
        coerce = True

    @pa.dataframe_check
    def one_row_per_alert_and_person(cls, df: pd.DataFrame) -> bool:
        return not df.duplicated(["alert_id", "actor"]).any()


class AlertPrecision(pa.DataFrameModel):
    alert_type: Series[str] = pa.Field(unique=True)
    rated: Series[int] = pa.Field(ge=0)
    helpful: Series[int] = pa.Field(ge=0)
    precision: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    status: Series[str] = pa.Field(isin=["ok", "below_target", "not_enough_ratings"])

    class Config:
        strict = False
        coerce = True


class AlertThresholdChanges(pa.DataFrameModel):
    alert_type: Series[str]
    changed_at: Series[pd.Timestamp]
    old_min_severity: Series[str] = pa.Field(isin=list(SEVERITIES))
    new_min_severity: Series[str] = pa.Field(isin=list(SEVERITIES))
    reason: Series[str]

    class Config:
        strict = False
        coerce = True
