"""The feedback loop: recipients rate an alert ``helpful`` or ``noise`` (the
``salesintel feedback`` command or Slack's interactive buttons); precision per
alert type follows, and a type whose precision falls below the rules' target
over enough ratings gets a stricter minimum severity, recorded as a change.

Any rating also acknowledges the alert, which stops its escalation.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from urllib.parse import parse_qs

import duckdb
import numpy as np
import pandas as pd

from salesintel_assets.domain.common import stats
from salesintel_assets.domain.common.rules import SEVERITIES, Rules

VERDICTS = ("helpful", "noise")
FEEDBACK_TABLE = "alert_feedback"
FEEDBACK_COLUMNS = ["alert_id", "verdict", "rated_by", "source", "recorded_at"]
SLACK_ACTIONS = {"salesintel_feedback_helpful": "helpful", "salesintel_feedback_noise": "noise"}
SLACK_MAX_AGE_SECONDS = 300  # Slack's replay window for signed requests


class FeedbackError(ValueError):
    """A rating that cannot be recorded (unknown alert, bad verdict, bad signature)."""


# --- recording -------------------------------------------------------------------------
def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(con.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = 'main' "
                            "AND table_name = ?", [table]).fetchall())


def record_feedback(con: duckdb.DuckDBPyConnection, alert_id: str, verdict: str, rated_by: str,
                    source: str, now: pd.Timestamp | None = None) -> dict:
    """Store one rating (a person's latest rating of an alert wins)."""
    verdict = str(verdict).strip().lower()
    if verdict not in VERDICTS:
        raise FeedbackError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
    alert_id = str(alert_id).strip()
    if not _exists(con, "alerts") or not con.execute(
            "SELECT 1 FROM main.alerts WHERE alert_id = ?", [alert_id]).fetchall():
        raise FeedbackError(f"unknown alert {alert_id!r}")
    rated_by = str(rated_by).strip() or "anonymous"
    recorded_at = pd.Timestamp(now) if now is not None else pd.Timestamp.now(tz="UTC").tz_localize(None)
    con.execute("CREATE TABLE IF NOT EXISTS main.alert_feedback (alert_id VARCHAR, verdict VARCHAR, "
                "rated_by VARCHAR, source VARCHAR, recorded_at TIMESTAMP)")
    con.execute("BEGIN TRANSACTION")
    con.execute("DELETE FROM main.alert_feedback WHERE alert_id = ? AND rated_by = ?", [alert_id, rated_by])
    con.execute("INSERT INTO main.alert_feedback VALUES (?, ?, ?, ?, ?)",
                [alert_id, verdict, rated_by, source, recorded_at.to_pydatetime()])
    con.execute("COMMIT")
    return {"alert_id": alert_id, "verdict": verdict, "rated_by": rated_by, "source": source,
            "recorded_at": recorded_at}


# --- Slack interactive buttons ------------------------------------------------------------
def verify_slack_signature(signing_secret: str, timestamp: str, body: bytes, signature: str,
                           now: float | None = None) -> None:
    """Slack's request signing (v0 HMAC-SHA256 over 'v0:timestamp:body')."""
    try:
        age = abs((now if now is not None else time.time()) - int(timestamp))
    except (TypeError, ValueError):
        raise FeedbackError("missing or bad X-Slack-Request-Timestamp") from None
    if age > SLACK_MAX_AGE_SECONDS:
        raise FeedbackError("stale Slack request (possible replay)")
    base = b"v0:" + str(timestamp).encode() + b":" + body
    expected = "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature or ""):
        raise FeedbackError("bad Slack signature")


def parse_interaction(body: bytes) -> tuple[str, str, str]:
    """(alert_id, verdict, who) from a block_actions payload (form-encoded ``payload``)."""
    try:
        payload = json.loads(parse_qs(body.decode("utf-8"))["payload"][0])
        action = next(a for a in payload.get("actions", []) if a.get("action_id") in SLACK_ACTIONS)
    except (KeyError, IndexError, ValueError, StopIteration, UnicodeDecodeError):
        raise FeedbackError("not a salesintel feedback button payload") from None
    user = payload.get("user") or {}
    who = user.get("username") or user.get("name") or user.get("id") or "slack user"
    return str(action.get("value")), SLACK_ACTIONS[action["action_id"]], f"slack:{who}"


def handle_slack_interaction(con: duckdb.DuckDBPyConnection, body: bytes, headers: dict, signing_secret: str,
                             now: float | None = None) -> tuple[int, dict]:
    """HTTP status and JSON response for Slack's interactivity request URL."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        verify_slack_signature(signing_secret, lower.get("x-slack-request-timestamp"), body,
                               lower.get("x-slack-signature"), now)
    except FeedbackError as exc:
        return 401, {"error": str(exc)}
    try:
        alert_id, verdict, who = parse_interaction(body)
        record_feedback(con, alert_id, verdict, who, "slack")
    except FeedbackError as exc:
        return 200, {"response_type": "ephemeral", "replace_original": False, "text": f"Not recorded: {exc}"}
    return 200, {"response_type": "ephemeral", "replace_original": False,
                 "text": f"Thanks: alert {alert_id} marked as {verdict}."}


# --- precision and adaptation --------------------------------------------------------------
CHANGE_COLUMNS = ["alert_type", "changed_at", "as_of_date", "precision", "rated", "old_min_severity",
                  "new_min_severity", "reason"]


def severity_floors(changes: pd.DataFrame | None) -> dict[str, str]:
    """alert type -> minimum severity in force (the latest recorded change)."""
    if changes is None or changes.empty:
        return {}
    latest = changes.sort_values("changed_at").drop_duplicates("alert_type", keep="last")
    return dict(zip(latest["alert_type"], latest["new_min_severity"]))


def alert_precision(alerts: pd.DataFrame, feedback: pd.DataFrame | None, changes: pd.DataFrame | None,
                    rules: Rules, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per alert type: alerts rated since the type's last threshold change (an
    alert's latest rating counts, whoever gave it), precision with its Wilson
    interval, and whether it is below the target."""
    cfg = rules.alerts.feedback
    floors = severity_floors(changes)
    last_change = ({} if changes is None or changes.empty
                   else changes.groupby("alert_type")["changed_at"].max().to_dict())
    ratings = pd.DataFrame(columns=FEEDBACK_COLUMNS + ["alert_type"])
    if feedback is not None and len(feedback) and len(alerts):
        ratings = (feedback.sort_values("recorded_at").drop_duplicates("alert_id", keep="last")
                   .merge(alerts[["alert_id", "alert_type"]].drop_duplicates("alert_id"), on="alert_id"))
        since = ratings["alert_type"].map(last_change)
        ratings = ratings[since.isna() | (pd.to_datetime(ratings["recorded_at"]) > pd.to_datetime(since))]
    rows = []
    for type_key, spec in rules.alerts.types.items():
        mine = ratings[ratings["alert_type"].eq(type_key)]
        rated, helpful = len(mine), int(mine["verdict"].eq("helpful").sum())
        low, high = stats.wilson_interval(np.array([helpful]), np.array([rated]))
        precision = helpful / rated if rated else np.nan
        if rated < cfg.min_rated:
            status = "not_enough_ratings"
        elif precision < cfg.target_precision:
            status = "below_target"
        else:
            status = "ok"
        rows.append({"alert_type": type_key, "alert_name": spec.name, "priority": spec.priority, "rated": rated,
                     "helpful": helpful, "noise": rated - helpful, "precision": precision,
                     "precision_low": float(low[0]), "precision_high": float(high[0]),
                     "target_precision": cfg.target_precision, "min_rated": cfg.min_rated,
                     "min_severity": floors.get(type_key, SEVERITIES[0]), "status": status,
                     "as_of_date": pd.Timestamp(as_of).normalize()})
    return pd.DataFrame(rows)


def adapt_thresholds(precision: pd.DataFrame, previous_changes: pd.DataFrame | None,
                     now: pd.Timestamp) -> pd.DataFrame:
    """The change log with one new row per type below target: its minimum
    severity raised one step (a type already at the top is left and said so)."""
    changes = (previous_changes.reindex(columns=CHANGE_COLUMNS).copy()
               if previous_changes is not None and len(previous_changes) else pd.DataFrame(columns=CHANGE_COLUMNS))
    new = []
    for row in precision[precision["status"].eq("below_target")].to_dict("records"):
        old = row["min_severity"]
        position = SEVERITIES.index(old)
        if position + 1 >= len(SEVERITIES):
            continue  # already only critical anomalies alert: the rule itself needs review
        new.append({"alert_type": row["alert_type"], "changed_at": now, "as_of_date": row["as_of_date"],
                    "precision": row["precision"], "rated": row["rated"], "old_min_severity": old,
                    "new_min_severity": SEVERITIES[position + 1],
                    "reason": f"precision {row['precision']:.0%} over {row['rated']} rated alerts is below the "
                              f"target {row['target_precision']:.0%}"})
    if new:
        changes = pd.concat([changes, pd.DataFrame(new)], ignore_index=True) if len(changes) else pd.DataFrame(new)
    changes["changed_at"] = pd.to_datetime(changes["changed_at"])
    changes["as_of_date"] = pd.to_datetime(changes["as_of_date"])
    changes["precision"] = changes["precision"].astype(float)
    changes["rated"] = changes["rated"].astype("int64")
    for c in ("alert_type", "old_min_severity", "new_min_severity", "reason"):
        changes[c] = changes[c].astype(object)
    return changes.reset_index(drop=True)
