"""Pandera models of the alerts layer."""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from salesintel_assets.domain.common.rules import SEVERITIES


class Alerts(pa.DataFrameModel):
    """One row per alert (its current state); resolved alerts stay as history."""

    alert_id: Series[str] = pa.Field(unique=True,
                                     description="Stable id of the alert (rate it with salesintel feedback ALERT_ID).")
    dedup_key: Series[str] = pa.Field(description="What makes two findings the same alert.")
    alert_type: Series[str] = pa.Field(description="Alert type of the rules' taxonomy.")
    priority: Series[str] = pa.Field(description="P1, P2 or P3.", isin=["P1", "P2", "P3"])
    status: Series[str] = pa.Field(description="open, updated or resolved.", isin=["open", "updated", "resolved"])
    subject: Series[str] = pa.Field(description="Message subject line.")
    title: Series[str] = pa.Field(description="One-line headline.", str_length={"min_value": 1})
    body_text: Series[str] = pa.Field(str_length={"min_value": 1},
                                      description="Plain-text message (email, outbox, Slack fallback).")
    blocks_json: Series[str] = pa.Field(description="Slack Block Kit blocks.")
    recipients: Series[str] = pa.Field(str_length={"min_value": 1},
                                       description="Who receives it (rep -> manager -> CRO routing).")
    recipient_roles: Series[str] = pa.Field(description="Their roles.")
    sales_rep_id: Series[str] = pa.Field(description="The rep concerned, if any.", nullable=True)
    amount_at_stake: Series[float] = pa.Field(description="Money at stake.", ge=0)
    first_seen: Series[pd.Timestamp] = pa.Field(description="When first raised.")
    last_seen: Series[pd.Timestamp] = pa.Field(description="Last analysis date it held.")
    resolved_at: Series[pd.Timestamp] = pa.Field(description="When the condition cleared.", nullable=True)
    delivery: Series[str] = pa.Field(isin=["immediate", "digest", "suppressed"],
                                     description="immediate, digest or suppressed.")
    delivery_reason: Series[str] = pa.Field(description="Why (rollout mode, throttle, digest).")
    anomaly_id: Series[str] = pa.Field(description="The anomaly behind it.")

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

    delivery_id: Series[str] = pa.Field(description="message x recipient x channel.", unique=True)
    message_id: Series[str] = pa.Field(description="The message.")
    message_kind: Series[str] = pa.Field(isin=["alert", "resolved", "escalation", "digest", "scorecard", "report"],
                                         description="alert, resolved, escalation, digest, scorecard or report.")
    recipient_id: Series[str] = pa.Field(description="Who.")
    channel: Series[str] = pa.Field(description="slack, email or outbox.", isin=["slack", "email", "outbox"])
    status: Series[str] = pa.Field(isin=["pending", "sent", "failed", "unknown"],
                                   description="pending, sent, failed or unknown (an ambiguous send).")
    attempts: Series[int] = pa.Field(description="Send attempts so far.", ge=0)
    subject: Series[str] = pa.Field(description="Message subject line.")
    body_text: Series[str] = pa.Field(description="Plain-text message (email, outbox, Slack fallback).")
    sent_at: Series[pd.Timestamp] = pa.Field(description="When the service accepted it.", nullable=True)
    response_id: Series[str] = pa.Field(nullable=True,
                                        description="The service's receipt (Slack ts, SMTP message id, outbox line).")

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
    alert_type: Series[str] = pa.Field(description="Alert type of the rules' taxonomy.", unique=True)
    rated: Series[int] = pa.Field(description="Alerts of the type rated (an alert's latest rating counts).", ge=0)
    helpful: Series[int] = pa.Field(description="Rated helpful.", ge=0)
    precision: Series[float] = pa.Field(description="helpful / rated.", ge=0, le=1, nullable=True)
    status: Series[str] = pa.Field(isin=["ok", "below_target", "not_enough_ratings"],
                                   description="ok, below_target or not_enough_ratings.")

    class Config:
        strict = False
        coerce = True


class AlertThresholdChanges(pa.DataFrameModel):
    alert_type: Series[str] = pa.Field(description="Alert type of the rules' taxonomy.")
    changed_at: Series[pd.Timestamp] = pa.Field(description="When the change was made (UTC).")
    old_min_severity: Series[str] = pa.Field(description="Minimum anomaly severity before.", isin=list(SEVERITIES))
    new_min_severity: Series[str] = pa.Field(description="Minimum anomaly severity after.", isin=list(SEVERITIES))
    reason: Series[str] = pa.Field(description="The precision and ratings that caused it.")

    class Config:
        strict = False
        coerce = True
