"""The anomaly -> alert mapping, the alert's content (exact text and Block
Kit), the evidence from history, and the rules file's alert section."""

import json

import pandas as pd
import pytest

from salesintel_assets.domain.alerts import candidates as alert_rules
from salesintel_assets.domain.alerts.routing import Router
from salesintel_assets.domain.common.rules import RulesError, load_rules
from salesintel_assets_tests.alert_support import (
    AS_OF, build_alerts, deals_frame, evidence, reps_frame, segment, stalled, write_rules,
)

VELOCITY_TEXT = """\
🔴 [P1] Deal Velocity Crisis: D00042 stalled 52 days in Qualified ($84,000)

Deal: D00042 · FinTech · Europe · Enterprise · $84,000
Rep: Marcus Okafor (rep_2)
Stage: Qualified for 52 days
Metric: days in stage 52 days, threshold 30 days (critical)

Why this matters:
Of the 40 deals that stayed this long in Qualified, an estimated 18 % were won within 180 days from then on \
(95 % CI 9 %–32 %); deals still open count while observed, never as lost.

Root cause:
Days in Qualified past 30 days.
Last logged activity 2026-05-20 (41 days ago).

Recommended actions:
1. Call the economic buyer within 48 hours and agree a dated next step for D00042.
2. Ask whether security or compliance review is the blocker; offer the SOC 2 pack and a risk-team call.
3. Manager: review D00042 with Marcus Okafor in this week's 1:1 and decide push, rescue or close.

Money at stake: $35,700 ($84,000 deal amount x the 42-point drop in win chance: 60 % for a deal fresh in \
Qualified, 18 % for deals that lasted as long; there are no risk model scores, so priority comes from staleness \
and amount)

Alert {id} · rate it: salesintel feedback {id} helpful|noise"""

WIN_RATE_TEXT = """\
🔴 [P1] Win Rate Degradation: Win rate in FinTech · Europe fell to 17 % (baseline 45 %)

Segment: FinTech · Europe
Metric: win rate 17 % vs baseline 45 % (high)
Window: the last 45 days to 2026-06-30, n = 58 vs 820 before
Open pipeline: 99 deals, $2.55M

Why this matters:
FinTech · Europe won 17 % of 58 deals closed in the last 45 days to 2026-06-30 (95 % CI 10–29 %) vs 45 % over \
820 earlier deals; q = 0.002 after correcting for every segment tested.

Root cause:
Losses concentrated in Proposal against a new competitor.

Recommended actions:
1. Review the lost deals in FinTech · Europe from the last 45 days for a common loss reason.
2. Check for a new competitor, a pricing change or a product gap in FinTech · Europe.
3. Pair the segment's reps with a top performer on their next three qualification calls.

Money at stake: $714,000 expected revenue at risk ($2.55M open pipeline in 99 deals × the 28-point win-rate change)

Alert {id} · rate it: salesintel feedback {id} helpful|noise"""


def test_velocity_crisis_reads_like_the_design():
    table, _ = build_alerts([stalled("D00042", "rep_2", 84_000.0)])
    alert = table.iloc[0]
    assert alert["alert_type"] == "deal_velocity_crisis" and alert["priority"] == "P1"
    assert alert["dedup_key"] == "deal_velocity_crisis:deal_id=D00042"
    assert alert["body_text"] == VELOCITY_TEXT.format(id=alert["alert_id"])
    assert alert["recipients"] == "rep_2,mgr_2" and alert["recipient_roles"] == "rep,manager"
    assert alert["amount_at_stake"] == 35_700.0  # the amount x the drop in win chance, not the amount


def test_win_rate_degradation_reads_like_the_design():
    table, _ = build_alerts([segment("win_rate_dip", "industry=FinTech&region=Europe",
                                     root_cause="losses concentrated in Proposal against a new competitor")])
    alert = table.iloc[0]
    assert alert["alert_type"] == "win_rate_degradation"
    assert alert["body_text"] == WIN_RATE_TEXT.format(id=alert["alert_id"])
    # sales leadership = the org's CRO plus the leadership directory entry
    assert alert["recipients"] == "cro_1,sales-leadership"
    assert alert["amount_at_stake"] == pytest.approx(2_550_000 * 0.28)


def test_block_kit_message_has_the_sections_and_feedback_buttons():
    table, _ = build_alerts([stalled("D00042", "rep_2", 84_000.0)])
    alert_id = table.iloc[0]["alert_id"]
    blocks = json.loads(table.iloc[0]["blocks_json"])
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": "🔴 P1 · Deal Velocity Crisis",
                                                    "emoji": True}}
    assert blocks[1]["text"]["text"] == "*D00042 stalled 52 days in Qualified ($84,000)*"
    assert [f["text"].split("\n")[0] for f in blocks[2]["fields"]] == ["*Deal*", "*Rep*", "*Stage*", "*Metric*"]
    sections = [b["text"]["text"].split("\n")[0] for b in blocks if b["type"] == "section" and "text" in b]
    assert sections[1:] == ["*Why this matters*", "*Root cause*", "*Recommended actions*", "*Money at stake*"]
    actions = next(b for b in blocks if b["type"] == "actions")
    assert [(e["action_id"], e.get("value")) for e in actions["elements"]] == [
        ("salesintel_feedback_helpful", alert_id), ("salesintel_feedback_noise", alert_id),
        ("salesintel_acknowledge", alert_id), ("salesintel_snooze", None)]
    assert [o["value"] for o in actions["elements"][3]["options"]] == [
        f"{alert_id}|4", f"{alert_id}|24", f"{alert_id}|168", f"{alert_id}|720"]
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in blocks)


def test_mrkdwn_control_characters_are_escaped_in_blocks_not_in_text():
    table, _ = build_alerts([segment("win_rate_dip", "industry=FinTech&region=Europe",
                                     root_cause="R&D <beta> churn")])
    blocks = json.loads(table.iloc[0]["blocks_json"])
    cause = next(b["text"]["text"] for b in blocks if b.get("text", {}).get("text", "").startswith("*Root cause*"))
    assert cause == "*Root cause*\nR&amp;D &lt;beta&gt; churn."
    assert "R&D <beta> churn." in table.iloc[0]["body_text"]


@pytest.mark.parametrize("row, expected", [
    (stalled("D00042", "rep_2", 84_000.0, severity="critical"), "deal_velocity_crisis"),
    # Severity already weighs money at stake x win-probability drop: a critical stall is a crisis.
    (stalled("D00050", "rep_1", 9_000.0, severity="critical"), "deal_velocity_crisis"),
    # Listed for its SMI alone (its time within what won deals took, or not known yet): never an alert.
    (stalled("D00050", "rep_1", 9_000.0, severity="low", metric="smi"), None),
    (stalled("D00050", "rep_1", 9_000.0, severity="medium"), "stalled_deal"),     # just past the limit
    (stalled("D00042", "rep_2", 84_000.0, severity="high"), "stalled_deal"),           # not critical
    (segment("win_rate_dip", "all", severity="medium"), "win_rate_degradation"),
    (segment("win_rate_dip", "region=APAC", severity="high"), "win_rate_degradation"),
    (segment("win_rate_dip", "region=APAC", severity="medium"), "segment_performance_shift"),
    (segment("win_rate_spike", "region=APAC", direction="up"), "segment_performance_shift"),
    (segment("cycle_slowdown", "region=APAC", metric="sales_cycle_days", observed=60, expected=41),
     "segment_performance_shift"),
    (segment("open_age_increase", "region=APAC", metric="open_deal_age_days"), "segment_performance_shift"),
    # deals that stop closing: across the business, or clearly in a segment, a P1 for sales leadership
    (segment("still_open_increase", "all", metric="still_open_share", observed=0.62, expected=0.5, direction="up",
             severity="medium"), "pipeline_stall"),
    (segment("still_open_increase", "region=APAC", metric="still_open_share", observed=0.62, expected=0.5,
             direction="up", severity="high"), "pipeline_stall"),
    (segment("still_open_increase", "region=APAC", metric="still_open_share", observed=0.62, expected=0.5,
             direction="up", severity="medium"), "segment_performance_shift"),
    (segment("quality_drop", "lead_source=Partner", metric="dqs", observed=0.41, expected=0.62),
     "pipeline_quality_warning"),
    (segment("metric_shift", "region=APAC", metric="pvs", observed=0.8, expected=1.1), "custom_metric_anomaly"),
])
def test_mapping_follows_the_rules_file(row, expected):
    assert alert_rules.classify(row, load_rules(), float(row["amount_at_stake"] or 0)) == expected


def test_several_anomalies_on_one_subject_become_one_alert():
    rows = [segment("win_rate_dip", "region=APAC", severity="medium", anomaly_id="a1"),
            segment("cycle_slowdown", "region=APAC", metric="sales_cycle_days", observed=60, expected=41,
                    severity="high", anomaly_id="a2", direction="up")]
    table, _ = build_alerts(rows)
    assert len(table) == 1
    alert = table.iloc[0]
    assert alert["anomaly_id"] == "a2" and alert["anomaly_ids"] == "a2,a1"  # the most severe finding leads
    assert alert["title"] == "APAC: sales cycle rose to 60 days (baseline 41 days)"
    assert "Also seen on this subject:\n- win rate fell to 17 % (baseline 45 %) over the last 45 days to " \
           "2026-06-30 (medium)" in alert["body_text"]


def test_deals_not_closing_say_which_deals_and_as_a_share():
    finding = ("Deals are not closing: of the 588 deals created between 1 Mar 2026 and 31 May 2026 "
               "(30-120 days old), 365 are still open (62 %, 95 % interval 58 %-66 %), against 50 % of deals as old "
               "still open on dates in the 180 days before (about 1096 deals, adjusted for how many deals were "
               "created when). A change this large is unlikely to be chance (q = 0.002 after correcting for all 80 "
               "segment tests of this run). $1.20M is in the 365 still open.")
    row = dict(segment("still_open_increase", "all", metric="still_open_share", observed=0.62, expected=0.5,
                       n=588, baseline_n=1096, direction="up", severity="high", amount=232_000.0),
               explanation=finding)
    table, _ = build_alerts([row])
    alert = table.iloc[0]
    body = alert["body_text"]
    assert alert["alert_type"] == "pipeline_stall" and alert["priority"] == "P1"
    assert alert["title"] == "Deals are not closing: 62 % still open at their age (baseline 50 %)"
    assert "Window: deals of the ages compared on 2026-06-30, n = 588 vs 1,096 before" in body
    # the detector's first sentence says which deals; the significance follows once
    assert ("Why this matters:\n" + finding.split(". A change")[0] + "; q = 0.002 after correcting for every "
            "segment tested.") in body
    assert "the last 45 days" not in body
    assert "Money at stake: $232,000 in deals still open that would have closed (won or lost) by now at the usual " \
           "pace (" in body
    assert "1. In all deals, pull the deals named above that are still open: a dated next step or Closed Lost." in body


def test_quality_warning_quotes_the_segments_history():
    table, _ = build_alerts([segment("quality_drop", "lead_source=Partner", metric="dqs", observed=0.41,
                                     expected=0.62, n=240, baseline_n=1400, severity="medium")])
    alert = table.iloc[0]
    assert alert["recipients"] == "sdr-manager"
    assert "Historically, deals in this segment win 36 % (95 % CI 33–39 %, n = 1,200) vs 45 % overall." in alert["body_text"]
    assert "Deal quality score (DQS) was 0.41 over the last 45 days" in alert["body_text"]
    assert "Money at stake: $6.00M open pipeline (334 open deals in Partner leads)" in alert["body_text"]


def test_playbook_falls_back_to_default_for_other_industries():
    table, _ = build_alerts([stalled("D00043", "rep_2", 61_000.0, days=70)])  # SaaS: no SaaS playbook
    actions = json.loads(table.iloc[0]["content_json"])["actions"]
    assert actions[1] == "Re-qualify budget, authority and timeline; if any is gone, close the deal out honestly."


def test_unmapped_and_below_floor_anomalies_are_counted_not_alerted():
    rows = [segment("win_rate_dip", "region=APAC", severity="medium", anomaly_id="a1"),
            dict(segment("metric_shift", "region=EMEA", metric="pvs", severity="low"), anomaly_type="novel_type")]
    table, skipped = build_alerts(rows, floors={"segment_performance_shift": "high"})
    assert table.empty
    assert skipped == {"unmapped": 1, "below_feedback_floor": 1}


def test_not_enough_history_is_said_plainly():
    table, _ = build_alerts([dict(stalled("D00043", "rep_2", 61_000.0, days=70), historical_win_rate=None, n=23)])
    assert ("Not enough data to say how deals stalled this long in Demo end (only 23 deals lasted as long; 30 needed)."
            in table.iloc[0]["body_text"])
    # A rate behind too few deals is not quoted either.
    table, _ = build_alerts([dict(stalled("D00043", "rep_2", 61_000.0, days=70), n=23)])
    assert "were won" not in table.iloc[0]["body_text"] and "only 23 deals" in table.iloc[0]["body_text"]
    table, _ = build_alerts([dict(stalled("D00043", "rep_2", 61_000.0, days=70), historical_win_rate=None, n=1)])
    assert "(only 1 deal lasted as long; 30 needed)" in table.iloc[0]["body_text"]


def test_evidence_is_aggregated_in_sql_from_the_warehouse_tables():
    import duckdb

    fact = deals_frame().assign(is_open=True, outcome="Open", closed_date=pd.NaT)
    closed = pd.DataFrame({"deal_id": ["C1", "C2", "C3"], "sales_rep_id": "rep_1", "industry": "FinTech",
                           "region": "Europe", "product_type": "Core", "deal_stage": "Closed",
                           "deal_amount": 10_000.0, "is_open": False, "outcome": ["Won", "Lost", "Won"],
                           "closed_date": pd.to_datetime(["2026-01-01", "2026-02-01", "2026-08-01"])})
    fact = pd.concat([fact, closed], ignore_index=True)
    transitions = pd.DataFrame({"deal_id": ["C1", "C2", "C3"], "stage": "Qualified", "days_in_stage": [5.0, 9.5, 3.0],
                                "outcome": ["Won", "Lost", "Won"],
                                "exited_date": pd.to_datetime(["2025-12-01", "2026-01-01", "2026-07-15"])})
    con = duckdb.connect()
    con.register("fact_deals", fact)
    con.register("fact_stage_transitions", transitions)
    anomalies = pd.DataFrame([stalled("D00042", "rep_2", 84_000.0),
                              segment("win_rate_dip", "industry=FinTech&region=Europe"),
                              segment("win_rate_dip", "unknown_dim=x")])
    ev = alert_rules.load_evidence(con, anomalies, pd.Timestamp("2026-06-30"))
    assert list(ev.deals["deal_id"]) == ["D00042"]
    seg = ev.segments.set_index("segment")
    assert seg.loc["industry=FinTech&region=Europe"].to_dict() == {
        "open_n": 1, "open_amount": 84_000.0, "open_priced_n": 1, "closed_n": 2, "won_n": 1}
    assert "unknown_dim=x" not in seg.index  # no guessing about a dimension the warehouse lacks


def _stall_causes(activity_counts: list[int]) -> list[str]:
    """The root-cause lines of D00043's stall alert (no activity on it) in a
    warehouse whose deals have ``activity_counts``, evidence read from DuckDB."""
    import duckdb

    con = duckdb.connect()
    con.register("fact_deals", deals_frame().assign(activity_count=activity_counts, is_open=True, outcome="Open",
                                                    closed_date=pd.NaT))
    anomalies = pd.DataFrame([stalled("D00043", "rep_2", 61_000.0, days=70)])
    rules = load_rules()
    ctx = alert_rules.Context(alert_rules.load_evidence(con, anomalies, AS_OF), Router(reps_frame(), rules.alerts),
                              None, rules, AS_OF)
    return alert_rules.build_candidates(anomalies, ctx)[0].iloc[0]["content"]["root_cause"]


def test_no_activity_is_said_only_where_the_crm_logs_activities():
    """A CRM that logs activities and has none on a stalled deal: that is a cause worth saying. A plain export
    carries no activities on any deal, so "no activity logged" would blame the deal for the export's gap."""
    assert "No activity logged on this deal." in _stall_causes([3, 0, 0, 0, 0, 0])
    assert not any("activity" in line for line in _stall_causes([0] * 6))


def _segment_alert_with_pipeline(open_n: int, open_amount: float, priced_n: int) -> dict:
    found = evidence()
    segments = found.segments.copy()
    key = segments["segment"].eq("industry=FinTech&region=Europe")
    segments.loc[key, ["open_n", "open_amount", "open_priced_n"]] = [open_n, open_amount, priced_n]
    rules = load_rules()
    ctx = alert_rules.Context(alert_rules.Evidence(deals=found.deals, segments=segments),
                              Router(reps_frame(), rules.alerts), None, rules, AS_OF)
    anomaly = segment("win_rate_dip", "industry=FinTech&region=Europe", amount=0.0)
    return alert_rules.build_candidates(pd.DataFrame([anomaly]), ctx)[0].iloc[0]


def test_a_segment_whose_open_deals_have_no_amount_has_money_not_known_never_zero_dollars():
    """Many CRMs have no amount on open deals until a price is agreed: the pipeline says so, the money at
    stake is "not known", and a partly priced pipeline says how many deals its figures leave out."""
    alert = _segment_alert_with_pipeline(99, 0.0, 0)
    content = alert["content"]
    assert dict(content["facts"])["Open pipeline"] == "99 deals, no amounts recorded"
    assert content["money"] == "not known: none of the 99 open deals in FinTech · Europe has an amount"
    assert alert["amount_at_stake"] == 0

    partly = _segment_alert_with_pipeline(99, 2_550_000.0, 60)["content"]
    assert dict(partly["facts"])["Open pipeline"] == "99 deals, $2.55M on the 60 with an amount"
    assert partly["money"].startswith("$714,000 expected revenue at risk ($2.55M open pipeline in 99 deals")
    assert partly["money"].endswith("; 39 of the open deals have no amount and are not in these figures")

    priced = _segment_alert_with_pipeline(99, 2_550_000.0, 99)["content"]
    assert dict(priced["facts"])["Open pipeline"] == "99 deals, $2.55M"
    assert "no amount" not in priced["money"]


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r["alerts"]["mapping"].append({"anomaly_types": ["quality_drop"], "alert_type": "nope"}),
     "unknown alert type 'nope'"),
    (lambda r: r["alerts"]["types"]["stalled_deal"].update(priority="P0"), "priority"),
    (lambda r: r["alerts"]["types"]["stalled_deal"].update(recipients=["ghost"]), "unknown recipient roles"),
    (lambda r: r["alerts"]["types"]["stalled_deal"].update(playbooks={"SaaS": ["x"]}), "default"),
    (lambda r: r["alerts"]["rollout"].update(mode="canary"), "mode"),
    (lambda r: r["alerts"]["throttle"].update(max_p1_per_rep=0), "max_p1_per_rep"),
    (lambda r: r["alerts"]["feedback"].update(target_precision=1.5), "target_precision"),
    (lambda r: r["alerts"].update(surprise=1), "surprise"),
    (lambda r: r["alerts"]["mapping"][0].update(min_severity="severe"), "min_severity"),
])
def test_bad_alert_rules_are_a_clear_error(tmp_path, mutate, message):
    path = write_rules(tmp_path / "rules.yaml", mutate)
    with pytest.raises(RulesError, match=message):
        load_rules(path)


def test_risk_scores_enrich_deal_alerts_when_present():
    from salesintel_assets.domain.alerts.routing import Router
    from salesintel_assets_tests.alert_support import reps_frame

    rules = load_rules()
    risk = pd.DataFrame([{"deal_id": "D00042", "win_probability": 0.12, "risk_band": "high",
                          "reason_1": "no activity in 41 days", "reason_1_weight": -0.2,
                          "reason_2": "Enterprise deals in Qualified stall", "reason_2_weight": -0.1,
                          "reason_3": None, "reason_3_weight": None}])
    ctx = alert_rules.Context(evidence(), Router(reps_frame(), rules.alerts), risk, rules, pd.Timestamp("2026-06-30"))
    candidates, _ = alert_rules.build_candidates(pd.DataFrame([stalled("D00042", "rep_2", 84_000.0)]), ctx)
    content = candidates.iloc[0]["content"]
    assert content["why"][-1] == "The risk model gives it a 12 % chance to win within 180 days (high risk)."
    assert content["root_cause"][1] == ("Risk model's top reasons: no activity in 41 days; "
                                        "Enterprise deals in Qualified stall.")
    # A usable model's probability is the deal's chance now: money at stake = amount x (fresh - model).
    assert content["money"] == ("$40,320 ($84,000 deal amount x the 48-point drop in win chance: 60 % for a deal "
                                "fresh in Qualified, 12 % per the risk model)")
    assert candidates.iloc[0]["amount_at_stake"] == pytest.approx(84_000 * 0.48)


def test_a_model_of_a_shorter_horizon_is_quoted_with_it_and_not_set_against_the_fresh_deals_chance():
    """A model of a short history answers 90 days; the fresh deal's chance is over the rules' 180: the drop
    between them would be the horizons' difference, not the stall's."""
    from salesintel_assets.domain.alerts.routing import Router
    from salesintel_assets_tests.alert_support import reps_frame

    rules = load_rules()
    risk = pd.DataFrame([{"deal_id": "D00042", "win_probability": 0.12, "risk_band": "high", "model_verdict": "usable",
                          "reason_1": None, "reason_1_weight": None, "reason_2": None, "reason_2_weight": None,
                          "reason_3": None, "reason_3_weight": None}])
    ctx = alert_rules.Context(evidence(), Router(reps_frame(), rules.alerts), risk, rules, pd.Timestamp("2026-06-30"),
                              risk_horizon_days=90)
    anomaly = stalled("D00042", "rep_2", 84_000.0)
    candidates, _ = alert_rules.build_candidates(pd.DataFrame([anomaly]), ctx)
    content = candidates.iloc[0]["content"]
    assert content["why"][-1] == "The risk model gives it a 12 % chance to win within 90 days (high risk)."
    assert "per the risk model" not in content["money"]
    assert content["money"].endswith("; the risk model answers 90 days, not 180, so priority comes from staleness "
                                     "and amount)")
    # how deals that lasted as long ended (17.5 % against 60 % fresh), not the model's 12 %
    assert candidates.iloc[0]["amount_at_stake"] == pytest.approx(84_000 * (0.6 - 0.175))


def test_a_deal_without_stage_history_is_described_by_its_age_not_a_guessed_stage_time():
    from salesintel_assets.domain.alerts.routing import Router
    from salesintel_assets_tests.alert_support import AS_OF, deals_frame, evidence, reps_frame, stalled

    rules = load_rules()
    facts = evidence()
    deals = deals_frame()
    deals.loc[deals["deal_id"] == "D00042", "days_in_stage"] = float("nan")
    deals["age_days"] = 97.0
    facts.deals = deals
    ctx = alert_rules.Context(facts, Router(reps_frame(), rules.alerts), None, rules, AS_OF)
    judged_by_age = stalled("D00042", "rep_2", 84_000.0, days=97.0, metric="open_deal_age_days")
    candidates, _ = alert_rules.build_candidates(pd.DataFrame([judged_by_age]), ctx)
    title = candidates.iloc[0]["title"]
    assert title == "D00042 open 97 days, still in Qualified ($84,000)"
    content = candidates.iloc[0]["content"]
    assert ["Stage", "Qualified (open 97 days; time in stage not recorded)"] in content["facts"]
    assert ["Metric", "age of open deals 97 days, threshold 30 days (critical)"] in content["facts"]
    # compared with deals as old, whatever their stage: not "in Qualified"
    assert content["why"][0].startswith("Of the 40 deals that stayed this long open,")
    assert "for a new deal" in content["money"]


def test_a_file_exports_deal_is_named_in_the_crms_own_stage():
    """An export that calls the stage "Engaging" (mapped to Demo by the rules file): its reps read "Engaging"."""
    from salesintel_assets.domain.alerts.routing import Router
    from salesintel_assets_tests.alert_support import AS_OF, deals_frame, evidence, reps_frame, stalled

    rules = load_rules()
    facts = evidence()
    deals = deals_frame()
    exported = deals["deal_id"] == "D00042"
    deals.loc[exported, ["days_in_stage", "deal_stage", "crm_stage"]] = [float("nan"), "Demo", "Engaging"]
    deals["age_days"] = 97.0
    facts.deals = deals
    ctx = alert_rules.Context(facts, Router(reps_frame(), rules.alerts), None, rules, AS_OF)
    candidates, _ = alert_rules.build_candidates(pd.DataFrame([stalled("D00042", "rep_2", 84_000.0, days=97.0,
                                                                       metric="open_deal_age_days")]), ctx)
    assert candidates.iloc[0]["title"] == "D00042 open 97 days, still in Engaging ($84,000)"
    assert ["Stage", "Engaging (open 97 days; time in stage not recorded)"] in candidates.iloc[0]["content"]["facts"]
