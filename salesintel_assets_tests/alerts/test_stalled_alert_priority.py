"""Stalled-deal alerts follow priority (staleness, then money at stake x the
drop in win chance), not the deal amount: the P1s the throttle keeps, the
order of digest lines, the money line, and what the run summary counts."""

import duckdb
import pandas as pd

from salesintel_assets.domain.alerts import candidates as alert_rules
from salesintel_assets.domain.alerts import delivery_plan
from salesintel_assets.domain.alerts.routing import Router
from salesintel_assets.domain.common.rules import load_rules
from salesintel_assets.resources.warehouse import SalesintelHome, Warehouse
from salesintel_assets.summary import run_summary
from salesintel_assets_tests.alert_support import AS_OF, build_alerts, evidence, reps_frame, rules_with, stalled

RULES = load_rules()
# The biggest deal has the least at stake: deals that lasted as long still win 48 % of the time.
BIG_SMALL_DROP = dict(stalled("D00042", "rep_2", 84_000.0), amount_at_stake=84_000.0 * 0.12,
                      historical_win_rate=0.48, historical_win_low=0.40, historical_win_high=0.56)
SMALLER_BIG_DROP = stalled("D00044", "rep_2", 55_000.0)   # $55,000 x 42.5 points = $23,375 at stake


def test_the_throttle_keeps_the_p1_with_most_money_at_stake_not_the_biggest_deal():
    rules = rules_with(throttle=RULES.alerts.throttle.model_copy(update={"max_p1_per_rep": 1}))
    table, _ = build_alerts([BIG_SMALL_DROP, SMALLER_BIG_DROP], rules=rules)
    by_deal = table.set_index("deal_id")
    assert by_deal.loc["D00044", "delivery"] == "immediate"
    assert by_deal.loc["D00042", "delivery"] == "digest"
    assert by_deal.loc["D00042", "amount_at_stake"] < by_deal.loc["D00044", "amount_at_stake"] == 23_375.0


def test_digest_lines_follow_severity_then_money_at_stake():
    rows = [dict(BIG_SMALL_DROP, severity="high"), dict(SMALLER_BIG_DROP, severity="high"),
            stalled("D00043", "rep_2", 61_000.0, severity="medium")]   # most at stake, but less stale
    table, _ = build_alerts(rows)
    plan = delivery_plan.plan_messages(table, None, set(), Router(reps_frame(), RULES.alerts), RULES, AS_OF,
                                       AS_OF, ["weekly"], [])
    digest = plan[plan["recipient_id"].eq("rep_2")].iloc[0]
    order = table.set_index("alert_id").loc[digest["alert_ids"].split(","), "deal_id"]
    assert list(order) == ["D00044", "D00042", "D00043"]
    assert digest["body_text"].index("D00044") < digest["body_text"].index("D00042") < digest["body_text"].index("D00043")


def test_a_weak_model_is_not_quoted_and_the_money_line_says_so():
    risk = pd.DataFrame([{"deal_id": "D00044", "win_probability": 0.9, "risk_band": "low",
                          "model_verdict": "weak"}])
    ctx = alert_rules.Context(evidence(), Router(reps_frame(), RULES.alerts), risk, RULES, AS_OF)
    candidates, _ = alert_rules.build_candidates(pd.DataFrame([SMALLER_BIG_DROP]), ctx)
    alert = candidates.iloc[0]
    assert alert["priority"] == "P1"           # a weak model's 90 % does not veto the crisis
    assert alert["content"]["money"] == (
        "$23,375 ($55,000 deal amount x the 42-point drop in win chance: 60 % for a deal fresh in Qualified, "
        "18 % for deals that lasted as long; the risk model is weak, so priority comes from staleness and amount)")
    assert not any("risk model gives" in why for why in alert["content"]["why"])


def test_without_enough_data_money_at_stake_is_not_known_and_said_so():
    row = dict(SMALLER_BIG_DROP, amount_at_stake=0.0, historical_win_rate=None, historical_win_low=None,
               historical_win_high=None, n=4, severity="high")
    table, _ = build_alerts([row])
    assert table.iloc[0]["amount_at_stake"] == 0
    assert "Money at stake: not known ($55,000 deal amount): not enough data for the drop in win chance" \
        in table.iloc[0]["body_text"]


def test_the_run_summary_counts_p1s_and_crises(home):
    table, _ = build_alerts([BIG_SMALL_DROP, SMALLER_BIG_DROP, dict(stalled("D00050", "rep_1", 9_000.0),
                                                                    severity="high")])
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.register("_a", table)
    con.execute("CREATE TABLE alerts AS SELECT * FROM _a")
    con.close()
    text = run_summary(Warehouse(home=SalesintelHome(path=str(home))))
    assert "alerts               3 open: 2 P1 (2 stalled-deal crises), 1 P2/P3 for digests (1 stalled deals)" in text
    top = text.split("Top alerts:\n")[1].splitlines()[:3]
    assert top[0].startswith("  [P1] D00044") and top[1].startswith("  [P1] D00042")


def _without_amount(deal_id: str) -> alert_rules.Evidence:
    found = evidence()
    deals = found.deals.assign(deal_amount=found.deals["deal_amount"].mask(found.deals["deal_id"].eq(deal_id)))
    return alert_rules.Evidence(deals=deals, segments=found.segments)


def test_a_deal_without_an_amount_has_money_at_stake_not_known_never_zero_dollars():
    """Many CRMs record no amount until a price is agreed (a public sample's open deals have none): the
    alert says the money is not known, quotes the drop in win chance it would be priced at, and names
    no "$0" or "n/a" amount; the model's score is quoted, not said to be missing."""
    risk = pd.DataFrame([{"deal_id": "D00044", "win_probability": 0.12, "risk_band": "high",
                          "model_verdict": "usable"}])
    ctx = alert_rules.Context(_without_amount("D00044"), Router(reps_frame(), RULES.alerts), risk, RULES, AS_OF)
    anomaly = dict(SMALLER_BIG_DROP, amount_at_stake=0.0)
    alert = alert_rules.build_candidates(pd.DataFrame([anomaly]), ctx)[0].iloc[0]
    content = alert["content"]
    assert content["money"] == ("not known: the deal has no amount (its win chance: 60 % for a deal fresh in "
                                "Qualified, 12 % per the risk model); priority comes from staleness")
    assert alert["amount_at_stake"] == 0
    assert "n/a" not in alert["title"] and "$" not in alert["title"]
    assert dict(content["facts"])["Deal"].endswith(" · no amount")

    unscored = alert_rules.Context(_without_amount("D00044"), Router(reps_frame(), RULES.alerts), None, RULES, AS_OF)
    alert = alert_rules.build_candidates(pd.DataFrame([anomaly]), unscored)[0].iloc[0]
    assert alert["content"]["money"] == ("not known: the deal has no amount (its win chance: 60 % for a deal fresh "
                                         "in Qualified, 18 % for deals that lasted as long); priority comes from "
                                         "staleness")


def test_evidence_from_a_history_too_short_to_follow_enough_deals_says_so():
    row = dict(SMALLER_BIG_DROP, historical_win_rate=None, historical_win_low=None, historical_win_high=None, n=60)
    table, _ = build_alerts([row])
    assert ("Not enough data to say how deals stalled this long in Qualified end (too few of the 60 deals that "
            "lasted as long were followed to an outcome or for 180 days: the history is too short).") \
        in table.iloc[0]["body_text"]
    few = dict(row, n=4)
    assert "(only 4 deals lasted as long; 30 needed)" in build_alerts([few])[0].iloc[0]["body_text"]
