"""The feedback inbox: every click and command about an alert, appended to a
small SQLite file (stdlib ``sqlite3``), so the CLI and a web service record
feedback without ever touching the warehouse's single DuckDB writer.

Events are never updated: a repeated event (same ``event_id``) is ignored, and
``feedback_table`` keeps the latest event per alert and person by the time it
happened, so an older event replayed late never overwrites a newer one.
"""

from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

RATINGS = ("helpful", "noise")
ACTIONS = RATINGS + ("acknowledge", "snooze")
EVENT_COLUMNS = ["event_id", "alert_id", "alert_type", "action", "actor", "source", "occurred_at", "until",
                 "recorded_at"]
FEEDBACK_COLUMNS = ["alert_id", "alert_type", "actor", "verdict", "rated_at", "last_action", "last_action_at",
                    "last_source", "snoozed_until", "events"]

_SCHEMA = """CREATE TABLE IF NOT EXISTS feedback_events (
    event_id TEXT PRIMARY KEY, alert_id TEXT NOT NULL, alert_type TEXT NOT NULL, action TEXT NOT NULL,
    actor TEXT NOT NULL, source TEXT NOT NULL, occurred_at TEXT NOT NULL, until TEXT, recorded_at TEXT NOT NULL)"""


class FeedbackEventError(ValueError):
    """An event that cannot be recorded (unknown action, snooze without an end)."""


def _iso(moment) -> str | None:
    if moment is None or moment is pd.NaT:
        return None
    stamp = pd.Timestamp(moment)
    if stamp.tzinfo is not None:  # stored as naive UTC, like every timestamp in the warehouse
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.isoformat()


def _connect(path: Path) -> sqlite3.Connection:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(str(path), timeout=30)
    con.execute(_SCHEMA)
    return con


def record_event(path: Path, *, alert_id: str, alert_type: str, action: str, actor: str, source: str,
                 occurred_at, event_id: str | None = None, until=None) -> bool:
    """Append one event; True when it is new, False when the same event was
    already recorded. The default ``event_id`` is derived from the other
    fields, so a repeated click is a no-op."""
    action = str(action).strip().lower()
    if action not in ACTIONS:
        raise FeedbackEventError(f"action must be one of {ACTIONS}, got {action!r}")
    if action == "snooze" and until is None:
        raise FeedbackEventError("a snooze needs 'until', the time the alert may speak again")
    fields = [str(alert_id).strip(), str(alert_type).strip(), action, str(actor).strip() or "anonymous",
              str(source).strip(), _iso(occurred_at), _iso(until) if action == "snooze" else None]
    event_id = event_id or hashlib.sha256("\x1f".join(str(f) for f in fields).encode()).hexdigest()[:32]
    with closing(_connect(path)) as con, con:
        cursor = con.execute("INSERT OR IGNORE INTO feedback_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             [event_id, *fields, datetime.now(timezone.utc).replace(tzinfo=None).isoformat()])
        return cursor.rowcount == 1


def read_events(path: Path) -> pd.DataFrame:
    """Every recorded event (an empty frame when the inbox does not exist yet)."""
    if not Path(path).exists():
        events = pd.DataFrame(columns=EVENT_COLUMNS)
    else:
        with closing(_connect(path)) as con:
            events = pd.read_sql_query(f"SELECT {', '.join(EVENT_COLUMNS)} FROM feedback_events "
                                       "ORDER BY occurred_at, event_id", con)
    for column in ("occurred_at", "until", "recorded_at"):   # ISO 8601, with or without fractions of a second
        events[column] = pd.to_datetime(events[column], format="ISO8601")
    return events


def feedback_table(events: pd.DataFrame) -> pd.DataFrame:
    """One row per alert and person: their latest rating (helpful/noise), their
    latest event of any kind (every event acknowledges the alert) and, when
    that latest event is a snooze, until when. Latest means latest
    ``occurred_at``, whatever order the events arrived in."""
    if events.empty:
        table = pd.DataFrame({c: pd.Series(dtype=object) for c in FEEDBACK_COLUMNS})
        for column in ("rated_at", "last_action_at", "snoozed_until"):
            table[column] = pd.Series(dtype="datetime64[ns]")
        table["events"] = pd.Series(dtype="int64")
        return table
    ordered = events.sort_values(["occurred_at", "event_id"])
    keys = ["alert_id", "actor"]
    latest = ordered.groupby(keys, sort=True).tail(1).set_index(keys)
    ratings = ordered[ordered["action"].isin(RATINGS)].groupby(keys).tail(1).set_index(keys)
    table = pd.DataFrame({
        "alert_type": latest["alert_type"],
        "verdict": ratings["action"].reindex(latest.index),
        "rated_at": ratings["occurred_at"].reindex(latest.index),
        "last_action": latest["action"],
        "last_action_at": latest["occurred_at"],
        "last_source": latest["source"],
        "snoozed_until": latest["until"].where(latest["action"].eq("snooze")),
        "events": ordered.groupby(keys).size().reindex(latest.index).astype("int64"),
    }).reset_index()
    table["verdict"] = table["verdict"].astype(object).where(table["verdict"].notna(), None)
    return table[FEEDBACK_COLUMNS].sort_values(keys).reset_index(drop=True)


def acknowledged_alerts(table: pd.DataFrame | None, now: pd.Timestamp) -> set[str]:
    """Alerts somebody has answered (rated or acknowledged), or snoozed until
    after ``now``: their escalation stops."""
    if table is None or table.empty:
        return set()
    snoozed = table["last_action"].eq("snooze")
    answered = ~snoozed | (pd.to_datetime(table["snoozed_until"]) > pd.Timestamp(now))
    return set(table.loc[answered, "alert_id"])
