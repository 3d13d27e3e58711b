"""The feedback loop: recipients rate an alert ``helpful`` or ``noise`` (the
``salesintel feedback`` command or Slack's buttons through ``salesintel serve``) into the
feedback inbox (``feedback_inbox``); precision per alert type follows, and a
type whose precision since its last threshold change falls below the rules'
target over enough ratings gets a stricter minimum severity, recorded as a
change.

Any rating also acknowledges the alert, which stops its escalation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from salesintel_assets.domain.alerts.feedback_inbox import RATINGS
from salesintel_assets.domain.common import stats
from salesintel_assets.domain.common.rules import SEVERITIES, Rules

VERDICTS = RATINGS


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
