"""The feedback loop: recipients rate an alert ``helpful`` or ``noise`` (the
``salesintel feedback`` command or Slack's interactive buttons) into the
feedback inbox (``feedback_inbox``); precision per alert type follows, and a
type whose precision since its last threshold change falls below the rules'
target over enough ratings gets a stricter minimum severity, recorded as a
change.

Any rating also acknowledges the alert, which stops its escalation.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import parse_qs

import numpy as np
import pandas as pd

from salesintel_assets.domain.alerts.feedback_inbox import RATINGS, record_event
from salesintel_assets.domain.common import stats
from salesintel_assets.domain.common.rules import SEVERITIES, Rules

VERDICTS = RATINGS
SLACK_ACTIONS = {"salesintel_feedback_helpful": "helpful", "salesintel_feedback_noise": "noise"}
SLACK_MAX_AGE_SECONDS = 300  # Slack's replay window for signed requests


class FeedbackError(ValueError):
    """A rating that cannot be recorded (unknown alert, bad verdict, bad signature)."""


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


def handle_slack_interaction(inbox: Path, body: bytes, headers: dict, signing_secret: str,
                             alert_type_of: Callable[[str], Optional[str]],
                             now: float | None = None) -> tuple[int, dict]:
    """HTTP status and JSON response for Slack's interactivity request URL;
    the rating goes to the feedback inbox (``alert_type_of`` names an alert's
    type, None for an unknown alert)."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        verify_slack_signature(signing_secret, lower.get("x-slack-request-timestamp"), body,
                               lower.get("x-slack-signature"), now)
    except FeedbackError as exc:
        return 401, {"error": str(exc)}
    try:
        alert_id, verdict, who = parse_interaction(body)
        alert_type = alert_type_of(alert_id)
        if alert_type is None:
            raise FeedbackError(f"unknown alert {alert_id!r}")
        record_event(inbox, alert_id=alert_id, alert_type=alert_type, action=verdict, actor=who, source="slack",
                     occurred_at=pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now, unit="s"))
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


def _latest_ratings(feedback: pd.DataFrame | None) -> pd.DataFrame:
    """An alert's latest rating, whoever gave it."""
    if feedback is None or feedback.empty:
        return pd.DataFrame({"alert_id": [], "alert_type": [], "verdict": [], "rated_at": []})
    rated = feedback[feedback["verdict"].isin(VERDICTS)]
    return rated.sort_values("rated_at").drop_duplicates("alert_id", keep="last")


def _judge(rated: int, helpful: int, target: float, min_rated: int) -> tuple[float, str]:
    precision = helpful / rated if rated else np.nan
    if rated < min_rated:
        return precision, "not_enough_ratings"
    return precision, "below_target" if precision < target else "ok"


def alert_precision(feedback: pd.DataFrame | None, rules: Rules, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per alert type: every rated alert (its latest rating counts, whoever
    gave it), precision with its Wilson interval, and whether it is below the
    target."""
    cfg = rules.alerts.feedback
    ratings = _latest_ratings(feedback)
    rows = []
    for type_key, spec in rules.alerts.types.items():
        mine = ratings[ratings["alert_type"].eq(type_key)]
        rated, helpful = len(mine), int(mine["verdict"].eq("helpful").sum())
        low, high = stats.wilson_interval(np.array([helpful]), np.array([rated]))
        precision, status = _judge(rated, helpful, cfg.target_precision, cfg.min_rated)
        rows.append({"alert_type": type_key, "alert_name": spec.name, "priority": spec.priority, "rated": rated,
                     "helpful": helpful, "noise": rated - helpful, "precision": precision,
                     "precision_low": float(low[0]), "precision_high": float(high[0]),
                     "target_precision": cfg.target_precision, "min_rated": cfg.min_rated, "status": status,
                     "as_of_date": pd.Timestamp(as_of).normalize()})
    return pd.DataFrame(rows)


def adapt_thresholds(precision: pd.DataFrame, feedback: pd.DataFrame | None,
                     previous_changes: pd.DataFrame | None, now: pd.Timestamp) -> pd.DataFrame:
    """The change log with one new row per alert type (of the precision table,
    judged by its target and minimum of ratings) whose precision over the
    ratings given since the type's last change is below target: its minimum
    severity raised one step (a type already at the top is left alone)."""
    changes = (previous_changes.reindex(columns=CHANGE_COLUMNS).copy()
               if previous_changes is not None and len(previous_changes) else pd.DataFrame(columns=CHANGE_COLUMNS))
    floors = severity_floors(changes)
    last_change = changes.groupby("alert_type")["changed_at"].max().to_dict() if len(changes) else {}
    ratings = _latest_ratings(feedback)
    since = ratings["alert_type"].map(last_change)
    ratings = ratings[since.isna() | (pd.to_datetime(ratings["rated_at"]) > pd.to_datetime(since))]
    new = []
    for row in precision.to_dict("records"):
        mine = ratings[ratings["alert_type"].eq(row["alert_type"])]
        rated, helpful = len(mine), int(mine["verdict"].eq("helpful").sum())
        value, status = _judge(rated, helpful, row["target_precision"], row["min_rated"])
        old = floors.get(row["alert_type"], SEVERITIES[0])
        position = SEVERITIES.index(old)
        if status != "below_target" or position + 1 >= len(SEVERITIES):
            continue  # at the top already only critical anomalies alert: the rule itself needs review
        new.append({"alert_type": row["alert_type"], "changed_at": now, "as_of_date": row["as_of_date"],
                    "precision": value, "rated": rated, "old_min_severity": old,
                    "new_min_severity": SEVERITIES[position + 1],
                    "reason": f"precision {value:.0%} over {rated} rated alerts is below the "
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
