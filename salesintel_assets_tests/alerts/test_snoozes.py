"""A snooze silences an alert's dedup key until its end: no alert, no
escalation, no digest meanwhile; afterwards delivery resumes."""

import pandas as pd

from salesintel_assets.domain.alerts import delivery_plan
from salesintel_assets.domain.alerts.routing import Router
from salesintel_assets.domain.alerts.snoozes import silenced_alerts, snoozed_keys
from salesintel_assets.domain.common.rules import load_rules
from salesintel_assets_tests.alert_support import AS_OF, build_alerts, reps_frame, segment, stalled

RULES = load_rules()


def _feedback(alert_id, last_action, until=None, actor="slack:U1"):
    return pd.DataFrame([{"alert_id": alert_id, "alert_type": "x", "actor": actor, "verdict": None,
                          "rated_at": pd.NaT, "last_action": last_action, "last_action_at": pd.Timestamp("2026-06-30"),
                          "last_source": "slack", "snoozed_until": pd.Timestamp(until) if until else pd.NaT,
                          "events": 1}])


def test_a_snoozed_key_gets_no_messages_until_the_snooze_ends():
    table, _ = build_alerts([stalled("D00042", "rep_2", 84_000.0), segment("win_rate_dip", "industry=FinTech")])
    crisis = table[table["priority"].eq("P1")].iloc[0]
    router = Router(reps_frame(), RULES.alerts)
    feedback = _feedback(crisis["alert_id"], "snooze", until="2026-07-01 09:00")
    during = pd.Timestamp("2026-06-30 12:00")

    snoozed = snoozed_keys(feedback, table, during)
    assert snoozed.values.tolist() == [[crisis["dedup_key"], pd.Timestamp("2026-07-01 09:00"), "slack:U1"]]
    silenced = silenced_alerts(table, snoozed)
    assert silenced == {crisis["alert_id"]}
    plan = delivery_plan.plan_messages(table, None, set(), router, RULES, AS_OF, during, ["daily"], [], silenced)
    assert crisis["alert_id"] not in set(plan["alert_ids"].str.split(",").explode())
    assert len(plan)  # the other alert still goes out

    after = pd.Timestamp("2026-07-01 10:00")
    assert snoozed_keys(feedback, table, after).empty
    resumed = delivery_plan.plan_messages(table, plan, set(), router, RULES, AS_OF, after, [], [],
                                          silenced_alerts(table, snoozed_keys(feedback, table, after)))
    assert set(resumed["message_id"]) == {f"{crisis['alert_id']}/alert"}


def test_a_later_rating_or_acknowledgement_ends_that_persons_snooze():
    table, _ = build_alerts([stalled("D00042", "rep_2", 84_000.0)])
    alert_id = table.iloc[0]["alert_id"]
    assert snoozed_keys(_feedback(alert_id, "acknowledge"), table, pd.Timestamp("2026-06-30")).empty
    assert snoozed_keys(None, table, pd.Timestamp("2026-06-30")).empty
