"""Which messages are due, given what the delivery ledger says was already
sent: alerts, resolved notices, escalations, digests and scheduled summaries,
each planned once per message x recipient x channel. A pure function of the
alerts table, the previous ledger and the run's inputs."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

from salesintel_assets.domain.alerts import messages
from salesintel_assets.domain.alerts.lifecycle import OPEN, normalise_alerts, priority_order
from salesintel_assets.domain.alerts.routing import Router
from salesintel_assets.domain.common.rules import Rules

# --- what is due for delivery ----------------------------------------------------------
LEDGER_COLUMNS = [
    "delivery_id", "message_id", "message_kind", "alert_id", "alert_ids", "recipient_id", "recipient_name",
    "recipient_role", "recipient_email", "recipient_slack", "channel", "target", "status", "attempts", "error",
    "subject", "body_text", "blocks_json", "created_at", "last_attempt_at", "sent_at", "response_id",
    "as_of_date",
]
LEDGER_TIMES = ("created_at", "last_attempt_at", "sent_at", "as_of_date")


def empty_ledger() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in LEDGER_COLUMNS})
    for c in LEDGER_TIMES:
        frame[c] = pd.Series(dtype="datetime64[ns]")
    frame["attempts"] = pd.Series(dtype="int64")
    return frame


def normalise_ledger(frame: pd.DataFrame | None) -> pd.DataFrame:
    if frame is None or frame.empty:
        return empty_ledger()
    out = frame.reindex(columns=LEDGER_COLUMNS).copy()
    for c in LEDGER_TIMES:
        out[c] = pd.to_datetime(out[c]).astype("datetime64[ns]")
    out["attempts"] = out["attempts"].fillna(0).astype("int64")
    for c in set(LEDGER_COLUMNS) - set(LEDGER_TIMES) - {"attempts"}:
        out[c] = out[c].astype(object).where(out[c].notna(), None)
    return out.reset_index(drop=True)


def delivery_id_for(message_id: str, recipient_id: str, channel: str) -> str:
    return hashlib.sha1(f"{message_id}|{recipient_id}|{channel}".encode()).hexdigest()[:16]


def period_of(cadence: str, as_of: pd.Timestamp) -> str:
    if cadence == "weekly":
        year, week, _ = pd.Timestamp(as_of).isocalendar()
        return f"{year}-W{week:02d}"
    return pd.Timestamp(as_of).date().isoformat()


def channel_chain(contact: dict, configured: list[str]) -> list[str]:
    """The channels to try for one contact, in order. Slack needs a channel or
    an email to find the person by; email needs an address; the local outbox
    takes what no configured channel can carry, so nothing is dropped."""
    usable = {"slack": bool(contact.get("slack_channel") or contact.get("email")),
              "email": bool(contact.get("email")), "outbox": True}
    chain = [c for c in configured if usable.get(c)]
    return chain or ["outbox"]


class _Planner:
    def __init__(self, ledger: pd.DataFrame, configured: list[str], as_of: pd.Timestamp, now: pd.Timestamp):
        self.known = set(zip(ledger["message_id"], ledger["recipient_id"]))
        self.configured = configured
        self.as_of = pd.Timestamp(as_of).normalize()
        self.now = now
        self.rows: list[dict] = []

    def add(self, message_id: str, kind: str, alert_ids: list[str], contact, message: messages.Message) -> None:
        if (message_id, contact.id) in self.known:
            return
        self.known.add((message_id, contact.id))
        channel = channel_chain(contact.as_dict(), self.configured)[0]
        self.rows.append({
            "delivery_id": delivery_id_for(message_id, contact.id, channel), "message_id": message_id,
            "message_kind": kind, "alert_id": alert_ids[0] if len(alert_ids) == 1 else None,
            "alert_ids": ",".join(alert_ids), "recipient_id": contact.id, "recipient_name": contact.name,
            "recipient_role": contact.role, "recipient_email": contact.email, "recipient_slack": contact.slack_channel,
            "channel": channel, "target": None, "status": "pending", "attempts": 0, "error": None,
            "subject": message.subject, "body_text": message.text, "blocks_json": message.blocks_json,
            "created_at": self.now, "last_attempt_at": pd.NaT, "sent_at": pd.NaT, "response_id": None,
            "as_of_date": self.as_of,
        })


def plan_messages(alerts: pd.DataFrame, ledger: pd.DataFrame | None, acknowledged: set[str], router: Router,
                  rules: Rules, as_of: pd.Timestamp, now: pd.Timestamp, digests: list[str],
                  configured: list[str], silenced: set[str] = frozenset()) -> pd.DataFrame:
    """New pending ledger rows: one per message x recipient not planned before.
    ``silenced`` alerts (their dedup key is snoozed) get no alert, escalation
    or digest message until the snooze ends."""
    cfg = rules.alerts
    alerts = normalise_alerts(alerts)
    alerts = alerts[~alerts["alert_id"].isin(set(silenced)) | alerts["status"].eq("resolved")]
    ledger = normalise_ledger(ledger)
    plan = _Planner(ledger, configured, as_of, now)
    sent = ledger[ledger["status"].eq("sent")]
    immediate = alerts[alerts["delivery"].eq("immediate")]

    for a in immediate[immediate["status"].isin(OPEN)].to_dict("records"):
        content = json.loads(a["content_json"])
        alert_msg = messages.Message(subject=messages.headline(content), text=a["body_text"],
                                     blocks=json.loads(a["blocks_json"]))
        roles = list(cfg.types[a["alert_type"]].recipients)
        for contact in router.resolve(roles, a["sales_rep_id"]):
            plan.add(f"{a['alert_id']}/alert", "alert", [a["alert_id"]], contact, alert_msg)
        _plan_escalations(plan, a, content, roles, sent, acknowledged, router, rules, now)

    for a in immediate[immediate["status"].eq("resolved") & immediate["priority"].eq("P1")].to_dict("records"):
        # everyone who was told about it: the recipients and anyone it was escalated to
        told = sent["message_id"].eq(f"{a['alert_id']}/alert") | sent["message_id"].str.startswith(
            f"{a['alert_id']}/escalation-")
        got_it = sent[told]
        if got_it.empty:
            continue
        content = json.loads(a["content_json"])
        msg = messages.render_resolved(content, a["alert_id"], f"{a['first_seen']:%Y-%m-%d}",
                                       f"{a['resolved_at']:%Y-%m-%d}")
        for r in got_it.drop_duplicates("recipient_id").to_dict("records"):
            contact = _contact_from_ledger(r)
            plan.add(f"{a['alert_id']}/resolved", "resolved", [a["alert_id"]], contact, msg)

    for cadence in digests:
        _plan_digest(plan, alerts, ledger, cadence, router, rules)
    return normalise_ledger(pd.DataFrame(plan.rows, columns=LEDGER_COLUMNS)) if plan.rows else empty_ledger()


def _contact_from_ledger(row: dict):
    from salesintel_assets.domain.alerts.routing import Contact

    return Contact(id=row["recipient_id"], name=row["recipient_name"], role=row["recipient_role"],
                   email=row["recipient_email"], slack_channel=row["recipient_slack"])


def _plan_escalations(plan: _Planner, a: dict, content: dict, roles: list[str], sent: pd.DataFrame,
                      acknowledged: set[str], router: Router, rules: Rules, now: pd.Timestamp) -> None:
    esc = rules.alerts.escalation
    if a["priority"] != "P1" or a["alert_id"] in acknowledged or esc.max_levels == 0:
        return
    first = sent.loc[sent["message_id"].eq(f"{a['alert_id']}/alert"), ["sent_at", "recipient_name"]]
    if first.empty:
        return
    hours = (now - first["sent_at"].min()) / pd.Timedelta(hours=1)
    levels = min(int(np.floor(hours / esc.p1_ack_hours)), esc.max_levels)
    names = ", ".join(sorted(first["recipient_name"].unique()))
    for level in range(1, levels + 1):
        msg = messages.render_escalation(content, a["alert_id"], level, esc.p1_ack_hours * level, names)
        for contact in router.escalation(roles, a["sales_rep_id"], level):
            plan.add(f"{a['alert_id']}/escalation-{level}", "escalation", [a["alert_id"]], contact, msg)


def _plan_digest(plan: _Planner, alerts: pd.DataFrame, ledger: pd.DataFrame, cadence: str, router: Router,
                 rules: Rules) -> None:
    cfg = rules.alerts
    period = period_of(cadence, plan.as_of)
    due = alerts[alerts["delivery"].eq("digest") & alerts["digest_cadence"].eq(cadence)
                 & alerts["status"].isin(OPEN)]
    if due.empty:
        return
    # An alert appears in one digest per recipient, ever.
    digested = ledger[ledger["message_kind"].eq("digest")]
    already = {(r, a) for r, ids in zip(digested["recipient_id"], digested["alert_ids"]) for a in str(ids).split(",")}
    per_recipient: dict[str, tuple] = {}
    for a in priority_order(due).to_dict("records"):
        for contact in router.resolve(list(cfg.types[a["alert_type"]].recipients), a["sales_rep_id"]):
            if (contact.id, a["alert_id"]) in already:
                continue
            per_recipient.setdefault(contact.id, (contact, []))[1].append(
                {"alert_id": a["alert_id"], "content": json.loads(a["content_json"])})
    for contact, items in per_recipient.values():
        msg = messages.render_digest(items, cadence, period, contact.name, cfg.delivery.digest_max_items)
        listed = [i["alert_id"] for i in items[: cfg.delivery.digest_max_items]]  # the rest wait for the next one
        plan.add(f"digest/{cadence}/{period}/{contact.id}", "digest", listed, contact, msg)


def plan_summaries(ledger: pd.DataFrame | None, kind: str, period: str, items: list, configured: list[str],
                   as_of: pd.Timestamp, now: pd.Timestamp) -> pd.DataFrame:
    """Pending ledger rows for scheduled summaries (``items``: contact, message),
    one per recipient and period, so a re-run of the schedule sends nothing twice."""
    plan = _Planner(normalise_ledger(ledger), configured, as_of, now)
    for contact, message in items:
        plan.add(f"{kind}/{period}/{contact.id}", kind, [], contact, message)
    return normalise_ledger(pd.DataFrame(plan.rows, columns=LEDGER_COLUMNS)) if plan.rows else empty_ledger()


def month_of(as_of: pd.Timestamp) -> str:
    """The month a report run covers: the one that the day before belongs to
    (a run on the 1st reports the month just ended)."""
    return (pd.Timestamp(as_of) - pd.Timedelta(days=1)).strftime("%Y-%m")


def message_states(ledger: pd.DataFrame | None) -> dict:
    """Messages (message x recipient) by state - ``sent`` on some channel,
    ``unknown`` (may have arrived, cannot be confirmed), ``failed`` (every
    channel tried failed), ``pending`` (not tried or in flight) - and the
    sent ones by channel. Counts what was delivered, not what was planned."""
    ledger = normalise_ledger(ledger)
    if ledger.empty:
        return {"messages": 0, "messages_sent": 0, "messages_failed": 0, "messages_unknown": 0,
                "messages_pending": 0}
    def state(statuses: pd.Series) -> str:
        for s in ("sent", "unknown", "pending"):
            if statuses.eq(s).any():
                return s
        return "failed"
    states = ledger.groupby(["message_id", "recipient_id"])["status"].agg(state)
    counts = states.value_counts()
    sent_by = ledger[ledger["status"].eq("sent")]["channel"].value_counts()
    return {"messages": int(len(states)), **{f"messages_{s}": int(counts.get(s, 0))
                                              for s in ("sent", "failed", "unknown", "pending")},
            **{f"messages_sent_{c}": int(n) for c, n in sorted(sent_by.items())}}
