"""The life of an alert across runs: de-duplication by ``dedup_key``, update,
resolution and re-firing; the delivery decision (rollout mode, P1 throttle,
digest); and which messages are due (alerts, resolved notices, escalations,
digests) given what the delivery ledger says was already sent.

Everything is a pure function of the previous tables and the run's inputs,
so re-running with the same inputs gives the same tables and plans nothing
that was already planned.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

from salesintel_assets.domain import messages
from salesintel_assets.domain.alert_rules import missing
from salesintel_assets.domain.routing import Router
from salesintel_assets.domain.rules import Rules

OPEN = ("open", "updated")
ALERT_COLUMNS = [
    "alert_id", "dedup_key", "alert_type", "alert_name", "priority", "status", "subject", "segment", "deal_id",
    "sales_rep_id", "industry", "severity", "title", "body_text", "blocks_json", "content_json", "recipients",
    "recipient_roles", "amount_at_stake", "first_seen", "last_seen", "resolved_at", "delivery",
    "delivery_reason", "digest_cadence", "anomaly_id", "anomaly_ids", "as_of_date",
]
DATE_COLUMNS = ("first_seen", "last_seen", "resolved_at", "as_of_date")


def empty_alerts() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in ALERT_COLUMNS})
    for c in DATE_COLUMNS:
        frame[c] = pd.Series(dtype="datetime64[ns]")
    frame["amount_at_stake"] = pd.Series(dtype=float)
    return frame


def normalise_alerts(previous: pd.DataFrame | None) -> pd.DataFrame:
    if previous is None or previous.empty:
        return empty_alerts()
    frame = previous.reindex(columns=ALERT_COLUMNS).copy()
    for c in DATE_COLUMNS:
        frame[c] = pd.to_datetime(frame[c]).astype("datetime64[ns]")
    frame["amount_at_stake"] = frame["amount_at_stake"].astype(float)
    return frame


def alert_id_for(dedup_key: str, first_seen: pd.Timestamp, occurrence: int) -> str:
    """Stable across re-runs; a re-fire after resolution gets a new id."""
    raw = f"{dedup_key}|{pd.Timestamp(first_seen).date().isoformat()}|{occurrence}"
    return hashlib.sha1(raw.encode()).hexdigest()[:12]


# --- lifecycle ----------------------------------------------------------------------
def update_alerts(previous: pd.DataFrame | None, candidates: pd.DataFrame, router: Router, rules: Rules,
                  as_of: pd.Timestamp) -> pd.DataFrame:
    """The new alerts table: candidates matched to open (or recently resolved)
    alerts by dedup key, new alerts decided for delivery, vanished ones resolved."""
    as_of = pd.Timestamp(as_of).normalize()
    prev = normalise_alerts(previous)
    live = prev[prev["status"].isin(OPEN)].sort_values("first_seen").drop_duplicates("dedup_key", keep="last")
    live = live.set_index("dedup_key")
    resolved = prev[prev["status"].eq("resolved")].sort_values("resolved_at").drop_duplicates("dedup_key", keep="last")
    resolved = resolved.set_index("dedup_key")
    occurrences = prev.groupby("dedup_key").size()

    rows, new_ids, reused = [], [], set()
    for cand in candidates.to_dict("records"):
        key = cand["dedup_key"]
        spec = rules.alerts.types[cand["alert_type"]]
        base = None
        if key in live.index:
            base = live.loc[key]
        elif key in resolved.index:
            last = resolved.loc[key]
            if as_of - last["resolved_at"] <= pd.Timedelta(days=spec.dedup_window_days):
                base = last  # flapping: re-open the same alert silently
        if base is not None:
            row = {"alert_id": base["alert_id"], "first_seen": base["first_seen"], "delivery": base["delivery"],
                   "delivery_reason": base["delivery_reason"], "digest_cadence": base["digest_cadence"]}
            reused.add(base["alert_id"])
        else:
            row = {"alert_id": alert_id_for(key, as_of, int(occurrences.get(key, 0))), "first_seen": as_of,
                   "delivery": None, "delivery_reason": None, "digest_cadence": None}
            new_ids.append(row["alert_id"])
        roles = list(spec.recipients)
        contacts = router.resolve(roles, cand["sales_rep_id"])
        content = cand["content"]
        rendered = messages.render_alert(content, row["alert_id"])
        row.update({
            "dedup_key": key, "alert_type": cand["alert_type"], "alert_name": cand["alert_name"],
            "priority": cand["priority"], "status": "open" if row["first_seen"] == as_of else "updated",
            "subject": cand["subject"], "segment": cand["segment"], "deal_id": cand["deal_id"],
            "sales_rep_id": cand["sales_rep_id"], "industry": cand["industry"], "severity": cand["severity"],
            "title": cand["title"], "body_text": rendered.text, "blocks_json": rendered.blocks_json,
            "content_json": json.dumps(content, ensure_ascii=False, sort_keys=True),
            "recipients": ",".join(c.id for c in contacts), "recipient_roles": ",".join(c.role for c in contacts),
            "amount_at_stake": cand["amount_at_stake"], "last_seen": as_of, "resolved_at": pd.NaT,
            "anomaly_id": cand["anomaly_id"], "anomaly_ids": cand["anomaly_ids"], "as_of_date": as_of,
        })
        rows.append(row)

    current = pd.DataFrame(rows, columns=ALERT_COLUMNS) if rows else empty_alerts()
    seen_keys = set(current["dedup_key"])
    untouched = prev[~prev["alert_id"].isin(reused)].copy()
    clearing = untouched["status"].isin(OPEN) & ~untouched["dedup_key"].isin(seen_keys)
    untouched.loc[clearing, "status"] = "resolved"
    untouched.loc[clearing, "resolved_at"] = as_of
    table = pd.concat([untouched, current], ignore_index=True) if len(untouched) else current
    table = decide_delivery(table, new_ids, rules, as_of)
    table = normalise_alerts(table)
    return table.sort_values(["first_seen", "alert_id"], kind="stable").reset_index(drop=True)


def decide_delivery(table: pd.DataFrame, new_ids: list[str], rules: Rules, as_of: pd.Timestamp) -> pd.DataFrame:
    """Rollout mode, then P1 immediately within the per-rep throttle, everything
    else (and what is over the cap) into the recipients' digest. The decision is
    made once, when an alert is new, and kept for its life."""
    cfg = rules.alerts
    table = table.copy()
    window_start = as_of - pd.Timedelta(days=cfg.throttle.window_days - 1)
    sent_p1 = table[~table["alert_id"].isin(new_ids) & table["priority"].eq("P1")
                    & table["delivery"].eq("immediate") & (table["first_seen"] >= window_start)]
    p1_count = sent_p1.groupby("sales_rep_id").size().to_dict()
    new = table[table["alert_id"].isin(new_ids)].sort_values(
        ["amount_at_stake", "alert_id"], ascending=[False, True], kind="stable")
    for idx, row in new.iterrows():
        spec = cfg.types[row["alert_type"]]
        rep = row["sales_rep_id"]
        decision, reason, cadence = _rollout(row, cfg.rollout.mode, cfg.rollout.alpha_reps)
        if decision is None and row["priority"] == "P1":
            used = p1_count.get(rep, 0) if not missing(rep) else 0
            if not missing(rep) and used >= cfg.throttle.max_p1_per_rep:
                decision, cadence = "digest", cfg.throttle.throttled_cadence
                reason = (f"throttled: {rep} already had {used} P1 alerts in {cfg.throttle.window_days} days "
                          f"(cap {cfg.throttle.max_p1_per_rep}); {cadence} digest")
            else:
                decision, reason = "immediate", f"{row['priority']} sent immediately"
                if not missing(rep):
                    p1_count[rep] = used + 1
        elif decision is None:
            cadence = spec.cadence if spec.cadence != "immediate" else cfg.throttle.throttled_cadence
            decision, reason = "digest", f"{row['priority']}: {cadence} digest"
        table.loc[idx, ["delivery", "delivery_reason", "digest_cadence"]] = [decision, reason, cadence]
    return table


def _rollout(row, mode: str, alpha_reps: list[str]) -> tuple[str | None, str | None, str | None]:
    if mode == "shadow":
        return "suppressed", "rollout shadow: computed and recorded, not sent", None
    if mode == "alpha" and (missing(row["sales_rep_id"]) or row["sales_rep_id"] not in alpha_reps):
        return "suppressed", "rollout alpha: only alerts of the alpha reps are sent", None
    if mode == "beta" and row["priority"] == "P1":
        return "suppressed", "rollout beta: P1 alerts are not sent yet", None
    return None, None, None


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
                  configured: list[str]) -> pd.DataFrame:
    """New pending ledger rows: one per message x recipient not planned before."""
    cfg = rules.alerts
    alerts = normalise_alerts(alerts)
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
    from salesintel_assets.domain.routing import Contact

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
    ordered = due.assign(_rank=due["priority"].map({"P1": 0, "P2": 1, "P3": 2})).sort_values(
        ["_rank", "amount_at_stake", "alert_id"], ascending=[True, False, True], kind="stable")
    for a in ordered.to_dict("records"):
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
