"""Stalled deals by staleness and money at stake (amount x the drop in win
chance), with a survival estimate of how deals that lasted as long ended
(still-open deals censored, never counted as lost), its interval, "not enough
data" below the minimum sample, and only a handful of crises."""

import numpy as np
import pandas as pd
import pytest

from salesintel_assets.domain.anomalies.detector import detect_anomalies
from salesintel_assets.domain.anomalies.samples import DealDays
from salesintel_assets.domain.anomalies.stalled_deals import stalled_deals
from salesintel_assets.domain.common.rules import load_rules
from salesintel_assets.domain.common.stats import win_incidence

RULES = load_rules()
AS_OF = pd.Timestamp("2026-06-30")


def _rules(**stalled):
    cfg = RULES.anomalies.stalled.model_copy(update=stalled)
    return RULES.model_copy(update={"anomalies": RULES.anomalies.model_copy(update={"stalled": cfg})})


def _deal(deal_id, cycle_or_age, outcome, amount=10_000.0, closed_days_ago=60):
    """A closed deal with this cycle (closed ``closed_days_ago`` days before
    the analysis date) or an open deal of this age."""
    is_open = outcome == "Open"
    closed = AS_OF - pd.Timedelta(days=closed_days_ago)
    created = (AS_OF if is_open else closed) - pd.Timedelta(days=cycle_or_age)
    return {"deal_id": deal_id, "created_date": created, "closed_date": pd.NaT if is_open else closed,
            "outcome": outcome, "is_open": is_open, "is_won": outcome == "Won", "deal_amount": amount,
            "deal_stage": "Proposal" if outcome != "Won" else "Closed", "sales_rep_id": "rep_1",
            "industry": "SaaS", "region": "Europe", "product_type": "Pro", "lead_source": "Inbound",
            "needs_review": False, "stage_entered_date": pd.NaT, "days_in_stage": np.nan}


def _run(fact, rules=RULES, metrics=None):
    return stalled_deals(fact, metrics, None, rules, DealDays.from_fact(fact, AS_OF))


# --- the survival estimate ---------------------------------------------------------------
def test_win_incidence_censors_open_deals_instead_of_counting_them_lost():
    # 10 deals: won at day 1, two still open at day 2, lost at 3, won at 4, five open at 5.
    found = win_incidence([1, 2, 3, 4, 5], [1, 0, 0, 1, 0], [0, 0, 1, 0, 0], [0, 2, 0, 0, 5], horizon=180)
    assert found["rate"] == pytest.approx(8 / 35)   # Aalen-Johansen by hand; "won so far" would say 2 / 10
    assert found["n"] == 10 and found["still_open"] == 7
    assert found["low"] < found["rate"] < found["high"]
    # Without censoring it is the plain share won; outcomes after the horizon are not "won within it".
    assert win_incidence([5, 50], [3, 2], [5, 0], [0, 0], horizon=30)["rate"] == pytest.approx(0.3)


def test_win_incidence_without_outcomes_is_not_a_zero_percent_claim():
    assert np.isnan(win_incidence([3], [0], [0], [40], horizon=180)["rate"])   # all still open, followed 3 days
    assert np.isnan(win_incidence([], [], [], [], horizon=180)["rate"])
    followed = win_incidence([200], [0], [0], [40], horizon=180)                # 40 open deals followed past it
    assert followed["rate"] == 0 and followed["high"] < 0.1


def test_win_incidence_counts_the_deals_whose_fate_within_the_horizon_is_known():
    # 10 deals: 2 won and 2 lost within 20 days, 6 still open after 60 of the 180 days asked.
    assert win_incidence([10, 20, 60], [2, 0, 0], [0, 2, 0], [0, 0, 6], horizon=180)["followed"] == 4
    # Open deals followed past the horizon are known not to have won within it.
    assert win_incidence([10, 20, 200], [2, 0, 0], [0, 2, 0], [0, 0, 6], horizon=180)["followed"] == 10


def test_win_incidence_is_unbiased_where_the_naive_share_is_not():
    rng = np.random.default_rng(7)
    n = 4000
    won = rng.random(n) < 0.3
    outcome_day = np.ceil(rng.exponential(60, n))
    censor_day = np.ceil(rng.uniform(0, 400, n))
    seen = outcome_day <= censor_day
    t = np.where(seen, outcome_day, censor_day)
    found = win_incidence(t, seen & won, seen & ~won, ~seen, horizon=180)
    truth = 0.3 * (1 - np.exp(-180 / 60))
    assert found["low"] <= truth <= found["high"]
    assert (seen & won & (t <= 180)).sum() / n < found["low"]  # counting open deals as not won is biased low


# --- priority: staleness, then money at stake ------------------------------------------------
def _priority_world():
    """200 won deals closed within 10-59 days, 200 lost after 100-299 days;
    open: STALEST (400 days, $100k), BIG (150 days, $200k), ZERO (150 days,
    $0), LATE (70 days, $300k: just past the limit) and 60 young deals."""
    rows = [_deal(f"W{i:03d}", 10 + i % 50, "Won") for i in range(200)]
    rows += [_deal(f"L{i:03d}", 100 + i, "Lost") for i in range(200)]
    rows += [_deal("STALEST", 400, "Open", 100_000.0), _deal("BIG", 150, "Open", 200_000.0),
             _deal("ZERO", 150, "Open", 0.0), _deal("LATE", 70, "Open", 300_000.0)]
    rows += [_deal(f"Y{i:02d}", 5 + i // 2, "Open", 10_000.0 + 1_000.0 * i) for i in range(60)]
    return pd.DataFrame(rows)


def test_staleness_sets_the_level_and_money_at_stake_orders_within_it():
    result = _run(_priority_world()).deals.set_index("deal_id")
    assert list(result.index[:2]) == ["BIG", "STALEST"]    # both crises: more money at stake first
    assert list(result.loc[["BIG", "STALEST"], "severity"]) == ["critical", "critical"]
    # Money at stake = amount x the drop in win chance (a new deal's chance vs deals that lasted as long).
    big = result.loc["BIG"]
    assert big["stake"] == pytest.approx(200_000 * (big["base_win_rate"] - big["history_win_rate"]))
    assert big["history_win_rate"] == 0 and big["history_n"] >= 30 and big["drop_confirmed"]
    # Too few deals lasted 400 days: the longest stay with 30+ deals speaks for it, and says so.
    stalest = result.loc["STALEST"]
    assert np.isnan(stalest["history_win_rate"]) and stalest["past_limit_days"] > stalest["limit"]
    assert stalest["past_limit_n"] >= 30
    # Just past the limit: medium however big, so below the stale ones.
    assert result.loc["LATE", "severity"] == "medium" and list(result.index).index("LATE") > 2
    # A zero amount has nothing at stake: one level lower, never a crisis.
    assert result.loc["ZERO", "stake"] == 0 and result.loc["ZERO", "severity"] == "high"


def test_a_deal_without_an_amount_is_said_to_have_none_never_zero_dollars():
    """Many CRMs record no amount until a price is agreed: the stall and its drop in win chance are
    explained, the money at stake is "not known", and the amount is never shown as $0 or n/a."""
    fact = _priority_world()
    fact.loc[fact["deal_id"].eq("BIG"), "deal_amount"] = np.nan
    found = detect_anomalies(fact, None, None, RULES, AS_OF).anomalies.set_index("deal_id")
    text = found.loc["BIG", "explanation"]
    assert text.startswith("Deal BIG (no amount, rep_1) has been open 150 days")
    assert "-point drop; money at stake not known: the deal has no amount." in text
    assert "$0" not in text and "n/a" not in text
    assert found.loc["BIG", "amount_at_stake"] == 0
    # Priced deals read as before.
    assert "of money at stake ($100k x the drop)." in found.loc["STALEST", "explanation"]


def test_a_history_too_short_to_follow_deals_to_the_horizon_is_not_enough_data():
    """A young CRM (four months of deals): 300 closed within 10-89 days, 20 lost after 110-115 days in the
    last week, and 40 deals open 110 days. Of the 60 deals that lasted 110 days, 20 were lost and 40 were
    followed no further: "0 % won within 180 days" would count those 40 as never won."""
    rows = [_deal(f"W{i:03d}", 10 + i % 50, "Won", closed_days_ago=i % 60) for i in range(200)]
    rows += [_deal(f"L{i:03d}", 60 + i % 30, "Lost", closed_days_ago=i % 30) for i in range(100)]
    rows += [_deal(f"M{i:03d}", 110 + i % 6, "Lost", closed_days_ago=i % 6) for i in range(20)]
    rows += [_deal(f"O{i:03d}", 110, "Open") for i in range(40)]
    found = detect_anomalies(pd.DataFrame(rows), None, None, RULES, AS_OF).anomalies
    stalled = found[found["anomaly_type"].eq("stalled_deal")].set_index("deal_id")
    assert len(stalled) == 25 and stalled["historical_win_rate"].isna().all() and (stalled["n"] == 60).all()
    assert ("Not enough data to say how deals this stale end: of the 60 deals that stayed open at least 110 days, "
            "only 20 were followed to an outcome or for 180 days (the history is too short), fewer than the 30 "
            "needed.") in stalled.iloc[0]["explanation"]
    # Without a known drop in win chance: no money at stake, no crisis.
    assert (stalled["amount_at_stake"] == 0).all() and not stalled["severity"].eq("critical").any()


def test_a_handful_of_crises_and_money_that_matters():
    fact = _priority_world()
    one = _run(fact, _rules(max_crises=1))
    assert list(one.deals.loc[one.deals["severity"] == "critical", "deal_id"]) == ["BIG"]
    assert any("the 1 with most at stake are crises, the other 1 high priority" in n for n in one.notes)
    # Money at stake below the top tenth of what open deals bring: stale, but no crisis.
    small = fact.copy()
    small.loc[small["deal_id"].isin(["BIG", "STALEST"]), "deal_amount"] = 12_000.0
    by_deal = _run(small).deals.set_index("deal_id")
    assert (by_deal["severity"] != "critical").all() and by_deal.loc["BIG", "severity"] == "high"


def test_evidence_counts_still_open_deals_as_censored_and_needs_the_minimum_sample():
    """55 won deals (50 within 10-59 days, 5 after 150-154), 40 lost after
    120-159 days; open: OLD (200 days), nine MID (130 days), YOUNG (65 days)."""
    rows = [_deal(f"W{i:03d}", 10 + i, "Won") for i in range(50)]
    rows += [_deal(f"V{i:03d}", 150 + i, "Won") for i in range(5)]
    rows += [_deal(f"L{i:03d}", 120 + i, "Lost") for i in range(40)]
    rows += [_deal("OLD", 200, "Open", 5_000.0), _deal("YOUNG", 65, "Open", 95_000.0)]
    rows += [_deal(f"MID{i}", 130, "Open", 1_000.0) for i in range(9)]
    fact = pd.DataFrame(rows)
    by_deal = _run(fact).deals.set_index("deal_id")
    # 130+ days: 5 won, 30 lost, 10 still open. The nine MIDs are censored at once (one loss that day
    # came first): 44/45 x 5/35 won, not the 5/45 of "still open = not won".
    mid = by_deal.loc["MID0"]
    assert (mid["history_n"], mid["history_open"]) == (45, 10)
    assert mid["historical_win_rate"] == pytest.approx(44 / 45 * 5 / 35)
    # 200+ days: OLD alone, below the 30-deal minimum: no rate of its own.
    assert by_deal.loc["OLD", "history_n"] == 1 and np.isnan(by_deal.loc["OLD", "historical_win_rate"])

    found = detect_anomalies(fact, None, None, RULES, AS_OF).anomalies.set_index("deal_id")
    assert "Of the 45 deals that stayed open at least 130 days (10 still open; still-open deals counted while " \
           "observed, never as lost), an estimated 14 % won within 180 days (95 % CI" in found.loc["MID0", "explanation"]
    assert "Not enough data to say how deals this stale end: only 1 deal stayed open at least 200 days, fewer than " \
           "the 30 needed." in found.loc["OLD", "explanation"]
    old = found.loc["OLD"]
    assert np.isnan(old["historical_win_rate"]) and old["baseline_win_rate"] > 0.5
    mid_row = found.loc["MID0"]
    assert mid_row["historical_win_low"] < mid_row["historical_win_rate"] < mid_row["historical_win_high"]
    assert mid_row["amount_at_stake"] == pytest.approx(1_000 * (mid_row["baseline_win_rate"]
                                                                - mid_row["historical_win_rate"]))


# --- bad input ----------------------------------------------------------------------------------
def test_no_won_deals_at_all_is_not_enough_data_and_never_a_crisis():
    rows = [_deal(f"L{i:03d}", 100 + i, "Lost") for i in range(60)]
    rows += [_deal(f"O{i}", 300, "Open", 90_000.0) for i in range(3)]
    fact = pd.DataFrame(rows)
    smi = pd.DataFrame({"deal_id": fact["deal_id"], "smi": 0.01})
    result = _run(fact, metrics=smi)
    assert (result.deals["severity"] == "low").all() and (result.deals["rule"] == "smi").all()
    assert any("only 0 won deals (fewer than 30): not enough data" in n for n in result.notes)
    found = detect_anomalies(fact, smi, None, RULES, AS_OF).anomalies
    stalled = found[found["anomaly_type"] == "stalled_deal"]
    assert len(stalled) == 3 and (stalled["amount_at_stake"] == 0).all()


def test_deals_without_dates_or_history_are_not_judged_and_do_not_break_the_run():
    fact = _priority_world()
    fact.loc[fact["deal_id"] == "BIG", "created_date"] = pd.NaT          # no history at all
    fact.loc[fact["deal_id"] == "STALEST", "deal_amount"] = np.nan       # amount unknown
    by_deal = _run(fact).deals.set_index("deal_id")
    assert "BIG" not in by_deal.index
    assert by_deal.loc["STALEST", "stake"] == 0 and by_deal.loc["STALEST", "severity"] == "high"
    only_open = pd.DataFrame([_deal(f"O{i}", 300, "Open") for i in range(5)])  # nothing ever closed
    assert _run(only_open).deals.empty


def test_a_file_exports_stalled_deal_is_in_the_crms_own_stage():
    fact = _priority_world()
    fact["crm_stage"] = np.where(fact["deal_stage"].eq("Proposal"), "Engaging", fact["deal_stage"])
    found = detect_anomalies(fact, None, None, RULES, AS_OF).anomalies.set_index("deal_id")
    explanation = found.loc["BIG", "explanation"]
    assert "has been open 150 days (longer than 100 % of won deals), now in Engaging;" in explanation
