"""Snoozes: somebody silenced an alert's subject (its dedup key) until a
time of their choosing. While a key is snoozed, delivery plans no message for
any alert with that key (the alert itself, escalations, digests); when the
snooze ends, whatever is still open and unsent goes out as usual."""

from __future__ import annotations

import pandas as pd

SNOOZE_COLUMNS = ["dedup_key", "snoozed_until", "snoozed_by"]


def snoozed_keys(feedback: pd.DataFrame | None, alerts: pd.DataFrame | None, now: pd.Timestamp) -> pd.DataFrame:
    """Dedup keys snoozed at ``now``, each with its latest end and who chose it.
    ``feedback`` is the ``alert_feedback`` table (a person's latest event per
    alert: a later rating or acknowledgement ends that person's snooze)."""
    if feedback is None or feedback.empty or alerts is None or alerts.empty:
        return pd.DataFrame(columns=SNOOZE_COLUMNS)
    live = feedback[feedback["last_action"].eq("snooze")
                    & (pd.to_datetime(feedback["snoozed_until"]) > pd.Timestamp(now))]
    keyed = live.merge(alerts[["alert_id", "dedup_key"]].drop_duplicates("alert_id"), on="alert_id")
    if keyed.empty:
        return pd.DataFrame(columns=SNOOZE_COLUMNS)
    latest = keyed.sort_values("snoozed_until").drop_duplicates("dedup_key", keep="last")
    return latest.rename(columns={"actor": "snoozed_by"})[SNOOZE_COLUMNS].reset_index(drop=True)


def silenced_alerts(alerts: pd.DataFrame | None, snoozed: pd.DataFrame) -> set[str]:
    """Every alert (any occurrence) whose dedup key is snoozed."""
    if alerts is None or alerts.empty or snoozed.empty:
        return set()
    return set(alerts.loc[alerts["dedup_key"].isin(set(snoozed["dedup_key"])), "alert_id"])
