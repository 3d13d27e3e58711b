"""The life of an alert across runs: de-duplication by ``dedup_key``, update,
resolution and re-firing; and the delivery decision (rollout mode, P1
throttle, digest). What is then due for delivery is ``delivery_plan``.

Everything is a pure function of the previous tables and the run's inputs,
so re-running with the same inputs gives the same tables and plans nothing
that was already planned.
"""

from __future__ import annotations

import hashlib
import json

import pandas as pd

from salesintel_assets.domain.alerts import messages
from salesintel_assets.domain.alerts.wording import missing
from salesintel_assets.domain.alerts.routing import Router
from salesintel_assets.domain.common.rules import Rules

OPEN = ("open", "updated")
PRIORITY_RANK = {"P1": 0, "P2": 1, "P3": 2}
SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}
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


def priority_order(alerts: pd.DataFrame) -> pd.DataFrame:
    """Most pressing first: priority, then severity (for stalled deals:
    staleness gated by money), then money at stake (stalled deals: amount x
    the drop in win chance, not the amount), so the throttle keeps the P1s
    and a digest lists first what matters most."""
    rank = alerts.assign(_p=alerts["priority"].map(PRIORITY_RANK).fillna(len(PRIORITY_RANK)),
                         _s=alerts["severity"].map(SEVERITY_RANK).fillna(len(SEVERITY_RANK)),
                         _m=pd.to_numeric(alerts["amount_at_stake"], errors="coerce").fillna(0.0))
    ordered = rank.sort_values(["_p", "_s", "_m", "alert_id"], ascending=[True, True, False, True], kind="stable")
    return ordered.drop(columns=["_p", "_s", "_m"])


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
    new = priority_order(table[table["alert_id"].isin(new_ids)])
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
