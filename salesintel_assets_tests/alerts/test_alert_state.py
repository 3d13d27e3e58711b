"""Alert lifecycle across runs (dedup, update, resolve, re-fire), the P1
throttle, rollout modes, routing and escalation, and message planning
(digests, resolved notices)."""

import json

import pandas as pd
import pytest

from salesintel_assets.domain.alerts import delivery_plan
from salesintel_assets.domain.alerts.routing import Router
from salesintel_assets.domain.common.rules import load_rules
from salesintel_assets_tests.alert_support import (
    AS_OF, build_alerts, reps_frame, rules_with, segment, stalled,
)

RULES = load_rules()
DAY = pd.Timedelta(days=1)
CRISIS = stalled("D00042", "rep_2", 84_000.0)
DIP = segment("win_rate_dip", "industry=FinTech&region=Europe")


def _mark_sent(plan: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
    return plan.assign(status="sent", attempts=1, sent_at=at, last_attempt_at=at, response_id="r")


# --- lifecycle -----------------------------------------------------------------------------
def test_rerun_with_the_same_inputs_gives_the_same_table():
    first, _ = build_alerts([CRISIS, DIP])
    again, _ = build_alerts([CRISIS, DIP], previous=first)
    pd.testing.assert_frame_equal(first, again)
    assert set(first["status"]) == {"open"}


def test_same_key_next_day_updates_the_open_alert():
    first, _ = build_alerts([CRISIS])
    worse = dict(CRISIS, observed=53.0)
    nxt, _ = build_alerts([worse], previous=first, as_of=AS_OF + DAY)
    assert len(nxt) == 1
    row = nxt.iloc[0]
    assert row["alert_id"] == first.iloc[0]["alert_id"] and row["status"] == "updated"
    assert row["first_seen"] == AS_OF and row["last_seen"] == AS_OF + DAY
    assert row["delivery"] == "immediate"  # the decision is kept: it is not sent again


def test_cleared_condition_resolves_and_refires_later_as_a_new_alert():
    first, _ = build_alerts([CRISIS])
    cleared, _ = build_alerts([], previous=first, as_of=AS_OF + DAY)
    assert cleared.iloc[0]["status"] == "resolved" and cleared.iloc[0]["resolved_at"] == AS_OF + DAY
    # back within the 7-day window: the same alert re-opens silently (no flapping)
    back, _ = build_alerts([CRISIS], previous=cleared, as_of=AS_OF + 3 * DAY)
    assert len(back) == 1 and back.iloc[0]["alert_id"] == first.iloc[0]["alert_id"]
    assert back.iloc[0]["status"] == "updated" and pd.isna(back.iloc[0]["resolved_at"])
    # back after the window: a new alert with a new id, decided and sent afresh
    later, _ = build_alerts([CRISIS], previous=cleared, as_of=AS_OF + 20 * DAY)
    assert len(later) == 2
    new = later[later["status"].eq("open")].iloc[0]
    assert new["alert_id"] != first.iloc[0]["alert_id"] and new["delivery"] == "immediate"
    assert later[later["alert_id"].eq(first.iloc[0]["alert_id"])].iloc[0]["status"] == "resolved"


# --- throttle and rollout ------------------------------------------------------------------
FIVE_CRISES = [stalled(d, "rep_2", amount) for d, amount in
               [("D00042", 84_000.0), ("D00043", 61_000.0), ("D00044", 55_000.0), ("D00045", 52_000.0),
                ("D00046", 51_000.0)]]


def test_at_most_three_p1_per_rep_per_week_the_rest_go_to_the_digest():
    table, _ = build_alerts(FIVE_CRISES)
    by_deal = table.set_index("deal_id")
    assert list(by_deal.loc[["D00042", "D00043", "D00044"], "delivery"]) == ["immediate"] * 3  # largest first
    assert list(by_deal.loc[["D00045", "D00046"], "delivery"]) == ["digest"] * 2
    assert by_deal.loc["D00045", "delivery_reason"] == (
        "throttled: rep_2 already had 3 P1 alerts in 7 days (cap 3); daily digest")
    assert by_deal.loc["D00045", "digest_cadence"] == "daily"


def test_throttle_counts_earlier_runs_inside_the_window():
    first, _ = build_alerts(FIVE_CRISES[:2])
    nxt, _ = build_alerts(FIVE_CRISES[:4], previous=first, as_of=AS_OF + 2 * DAY)
    by_deal = nxt.set_index("deal_id")
    assert by_deal.loc["D00044", "delivery"] == "immediate"
    assert by_deal.loc["D00045", "delivery"] == "digest"
    # a week later the window has moved on
    week, _ = build_alerts([], previous=nxt, as_of=AS_OF + 3 * DAY)
    fresh, _ = build_alerts([FIVE_CRISES[4]], previous=week, as_of=AS_OF + 10 * DAY)
    assert fresh.set_index("deal_id").loc["D00046", "delivery"] == "immediate"


def test_throttle_cap_is_configurable():
    rules = rules_with(throttle=RULES.alerts.throttle.model_copy(update={"max_p1_per_rep": 1}))
    table, _ = build_alerts(FIVE_CRISES, rules=rules)
    assert table["delivery"].value_counts().to_dict() == {"digest": 4, "immediate": 1}


@pytest.mark.parametrize("mode, alpha, expected", [
    ("shadow", [], {"D00042": "suppressed", "D00050": "suppressed", None: "suppressed"}),
    ("alpha", ["rep_1"], {"D00042": "suppressed", "D00050": "digest", None: "suppressed"}),
    ("beta", [], {"D00042": "suppressed", "D00050": "digest", None: "suppressed"}),
    ("production", [], {"D00042": "immediate", "D00050": "digest", None: "immediate"}),
])
def test_rollout_modes(mode, alpha, expected):
    rules = rules_with(rollout=RULES.alerts.rollout.model_copy(update={"mode": mode, "alpha_reps": alpha}))
    table, _ = build_alerts([CRISIS, stalled("D00050", "rep_1", 9_000.0, severity="high"), DIP], rules=rules)
    got = {(None if pd.isna(d) else d): v for d, v in zip(table["deal_id"], table["delivery"])}
    assert got == expected
    if mode == "shadow":
        assert set(table["delivery_reason"]) == {"rollout shadow: computed and recorded, not sent"}
        assert delivery_plan.plan_messages(table, None, set(), Router(reps_frame(), rules.alerts), rules, AS_OF,
                                         AS_OF, ["daily", "weekly"], []).empty


# --- routing and escalation ------------------------------------------------------------------
def test_routing_chain_rep_manager_cro():
    router = Router(reps_frame(), RULES.alerts)
    assert [(c.id, c.role, c.email) for c in router.resolve(["rep", "manager"], "rep_2")] == [
        ("rep_2", "rep", "marcus.okafor@example.com"), ("mgr_2", "manager", "henrik.sorensen@example.com")]
    assert [c.id for c in router.escalation(["rep", "manager"], "rep_2", 1)] == ["cro_1"]
    assert [c.id for c in router.escalation(["rep"], "rep_2", 1)] == ["mgr_2"]
    assert [c.id for c in router.escalation(["rep"], "rep_2", 2)] == ["cro_1"]
    assert router.escalation(["sales_leadership"], None, 1) == []  # nobody above the CRO
    assert [c.id for c in router.resolve(["cro", "revops"], None)] == ["cro_1", "revops"]


def test_without_an_org_alerts_go_to_the_fallback_role():
    router = Router(reps_frame(with_org=False), RULES.alerts)
    contacts = router.resolve(["rep", "manager"], "rep_2")
    # the rep has no address; the manager is unknown -> sales leadership
    assert [(c.id, c.role) for c in contacts] == [("rep_2", "rep"), ("sales-leadership", "sales_leadership")]
    assert [c.id for c in router.resolve(["sales_leadership"], None)] == ["sales-leadership"]


def test_unacknowledged_p1_escalates_one_level_after_the_configured_time():
    table, _ = build_alerts([CRISIS])
    router = Router(reps_frame(), RULES.alerts)
    sent_at = pd.Timestamp("2026-06-30 09:00")
    plan = delivery_plan.plan_messages(table, None, set(), router, RULES, AS_OF, sent_at, [], [])
    ledger = _mark_sent(plan, sent_at)
    alert_id = table.iloc[0]["alert_id"]
    early = delivery_plan.plan_messages(table, ledger, set(), router, RULES, AS_OF, sent_at + pd.Timedelta(hours=3), [], [])
    assert early.empty
    due = delivery_plan.plan_messages(table, ledger, set(), router, RULES, AS_OF, sent_at + pd.Timedelta(hours=5), [], [])
    assert list(zip(due["message_id"], due["recipient_id"])) == [(f"{alert_id}/escalation-1", "cro_1")]
    assert due.iloc[0]["body_text"].startswith(
        "⏫ [P1] Deal Velocity Crisis: D00042 stalled 52 days in Qualified ($84,000)\n\n"
        "Escalated (level 1): nobody acknowledged this P1 alert within 4 h of sending it to "
        "Henrik Sorensen, Marcus Okafor.")
    # max_levels = 1: no second escalation however long it waits; a rating acknowledges it
    later = delivery_plan.plan_messages(table, ledger, set(), router, RULES, AS_OF, sent_at + pd.Timedelta(hours=30),
                                      [], [])
    assert list(later["recipient_id"]) == ["cro_1"]
    acked = delivery_plan.plan_messages(table, ledger, {alert_id}, router, RULES, AS_OF,
                                      sent_at + pd.Timedelta(hours=30), [], [])
    assert acked.empty


# --- planning ----------------------------------------------------------------------------------
def test_resolved_p1_sends_a_notice_to_those_who_got_it():
    table, _ = build_alerts([CRISIS])
    router = Router(reps_frame(), RULES.alerts)
    now = pd.Timestamp("2026-06-30 09:00")
    ledger = _mark_sent(delivery_plan.plan_messages(table, None, set(), router, RULES, AS_OF, now, [], []), now)
    cleared, _ = build_alerts([], previous=table, as_of=AS_OF + DAY)
    plan = delivery_plan.plan_messages(cleared, ledger, set(), router, RULES, AS_OF + DAY, now, [], [])
    alert_id = table.iloc[0]["alert_id"]
    assert list(zip(plan["message_id"], plan["recipient_id"])) == [
        (f"{alert_id}/resolved", "rep_2"), (f"{alert_id}/resolved", "mgr_2")]
    assert plan.iloc[0]["body_text"] == (
        "✅ Resolved: [P1] Deal Velocity Crisis: D00042 stalled 52 days in Qualified ($84,000)\n\n"
        "The condition cleared as of 2026-07-01 (open since 2026-06-30). No action needed.\n\n"
        f"Alert {alert_id}")


def test_digest_per_recipient_once_per_period_and_never_repeats_an_alert():
    rows = FIVE_CRISES + [stalled("D00050", "rep_1", 9_000.0, severity="high")]
    table, _ = build_alerts(rows)
    router = Router(reps_frame(), RULES.alerts)
    now = pd.Timestamp("2026-06-30 08:00")
    plan = delivery_plan.plan_messages(table, None, set(), router, RULES, AS_OF, now, ["daily", "weekly"], [])
    digests = plan[plan["message_kind"].eq("digest")]
    assert sorted(zip(digests["message_id"], digests["recipient_id"])) == [
        ("digest/daily/2026-06-30/mgr_2", "mgr_2"), ("digest/daily/2026-06-30/rep_2", "rep_2"),
        ("digest/weekly/2026-W27/rep_1", "rep_1")]
    rep_digest = digests[digests["recipient_id"].eq("rep_2")].iloc[0]
    throttled = table[table["delivery"].eq("digest") & table["sales_rep_id"].eq("rep_2")]
    assert rep_digest["alert_ids"] == ",".join(throttled.sort_values("amount_at_stake", ascending=False)["alert_id"])
    assert rep_digest["subject"] == "Daily alert digest for Marcus Okafor · 2026-06-30"
    assert rep_digest["body_text"].startswith(
        "Daily alert digest for Marcus Okafor · 2026-06-30\n\n"
        "1. [P1] Deal Velocity Crisis: D00045 stalled 47 days in Qualified ($52,000)\n")
    ledger = _mark_sent(plan, now)
    # the same period again: nothing new
    assert delivery_plan.plan_messages(table, ledger, set(), router, RULES, AS_OF, now, ["daily", "weekly"], []).empty
    # the next day: the same alerts are not digested twice; a new one is
    more, _ = build_alerts(rows + [stalled("D00051", "rep_1", 8_000.0, severity="high")], previous=table,
                           as_of=AS_OF + DAY)
    nxt = delivery_plan.plan_messages(more, ledger, set(), router, RULES, AS_OF + DAY, now, ["daily", "weekly"], [])
    assert list(nxt["message_id"]) == []  # weekly: the week's digest to rep_1 was already sent
    week = delivery_plan.plan_messages(more, ledger, set(), router, RULES, AS_OF + 7 * DAY, now, ["weekly"], [])
    new_id = more[more["deal_id"].eq("D00051")].iloc[0]["alert_id"]
    assert list(zip(week["message_id"], week["alert_ids"])) == [("digest/weekly/2026-W28/rep_1", new_id)]


def test_digest_lists_at_most_the_configured_items_and_keeps_the_rest():
    rules = rules_with(delivery=RULES.alerts.delivery.model_copy(update={"digest_max_items": 1}))
    rows = [stalled(d, "rep_2", a, severity="high") for d, a in [("D00042", 84_000.0), ("D00043", 61_000.0)]]
    table, _ = build_alerts(rows, rules=rules)
    router = Router(reps_frame(), rules.alerts)
    plan = delivery_plan.plan_messages(table, None, set(), router, rules, AS_OF, AS_OF, ["weekly"], [])
    assert len(plan) == 1 and len(plan.iloc[0]["alert_ids"].split(",")) == 1
    assert plan.iloc[0]["body_text"].endswith("... and 1 more (see the alerts table).")
    nxt = delivery_plan.plan_messages(table, plan, set(), router, rules, AS_OF + 7 * DAY, AS_OF, ["weekly"], [])
    assert nxt.iloc[0]["alert_ids"] == table[table["deal_id"].eq("D00043")].iloc[0]["alert_id"]


def test_channel_chain_prefers_slack_then_email_and_never_drops():
    assert delivery_plan.channel_chain({"email": "a@x"}, ["slack", "email"]) == ["slack", "email"]
    assert delivery_plan.channel_chain({"slack_channel": "C1"}, ["slack", "email"]) == ["slack"]
    assert delivery_plan.channel_chain({}, ["slack", "email"]) == ["outbox"]
    assert delivery_plan.channel_chain({"email": "a@x"}, []) == ["outbox"]


def test_immediate_alert_goes_to_each_recipient_once():
    table, _ = build_alerts([CRISIS, DIP])
    router = Router(reps_frame(), RULES.alerts)
    plan = delivery_plan.plan_messages(table, None, set(), router, RULES, AS_OF, AS_OF, [], ["slack", "email"])
    assert sorted(plan["recipient_id"]) == ["cro_1", "mgr_2", "rep_2", "sales-leadership"]
    assert set(plan["channel"]) == {"slack"} and set(plan["status"]) == {"pending"}
    crisis = plan[plan["recipient_id"].eq("rep_2")].iloc[0]
    assert crisis["body_text"] == table[table["deal_id"].eq("D00042")].iloc[0]["body_text"]
    assert json.loads(crisis["blocks_json"])[0]["type"] == "header"
    again = delivery_plan.plan_messages(table, plan, set(), router, RULES, AS_OF, AS_OF, [], ["slack", "email"])
    assert again.empty


def test_resolved_notice_also_reaches_whoever_it_was_escalated_to():
    table, _ = build_alerts([CRISIS])
    router = Router(reps_frame(), RULES.alerts)
    sent_at = pd.Timestamp("2026-06-30 09:00")
    ledger = _mark_sent(delivery_plan.plan_messages(table, None, set(), router, RULES, AS_OF, sent_at, [], []), sent_at)
    later = sent_at + pd.Timedelta(hours=5)
    escalated = delivery_plan.plan_messages(table, ledger, set(), router, RULES, AS_OF, later, [], [])
    ledger = pd.concat([ledger, _mark_sent(escalated, later)], ignore_index=True)
    cleared, _ = build_alerts([], previous=table, as_of=AS_OF + DAY)
    plan = delivery_plan.plan_messages(cleared, ledger, set(), router, RULES, AS_OF + DAY, later, [], [])
    assert sorted(plan["recipient_id"]) == ["cro_1", "mgr_2", "rep_2"]
    assert set(plan["message_kind"]) == {"resolved"}
