"""Stalled deals by staleness and money at stake, with evidence that counts
every deal that lasted as long (still-open ones too) and says "not enough
data" below the minimum sample."""

import numpy as np
import pandas as pd

from salesintel_assets.domain.anomalies.detector import detect_anomalies
from salesintel_assets.domain.anomalies.samples import DealDays
from salesintel_assets.domain.anomalies.stalled_deals import stalled_deals
from salesintel_assets.domain.common.rules import load_rules

RULES = load_rules()
AS_OF = pd.Timestamp("2026-06-30")


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


def _history() -> pd.DataFrame:
    """55 won deals (50 closed within 10-59 days, 5 after 150-154 days), 40
    lost after 120-159 days; open: OLD (200 days, small), nine MID deals
    (130 days, tiny) and YOUNG (65 days, big). No stage history: age decides."""
    rows = [_deal(f"W{i:03d}", 10 + i, "Won") for i in range(50)]
    rows += [_deal(f"V{i:03d}", 150 + i, "Won") for i in range(5)]
    rows += [_deal(f"L{i:03d}", 120 + i, "Lost") for i in range(40)]
    rows += [_deal("OLD", 200, "Open", 5_000.0), _deal("YOUNG", 65, "Open", 95_000.0)]
    rows += [_deal(f"MID{i}", 130, "Open", 1_000.0) for i in range(9)]
    return pd.DataFrame(rows)


def test_the_oldest_stalest_deals_rank_first_not_the_biggest():
    fact = _history()
    result = stalled_deals(fact, None, None, RULES, DealDays.from_fact(fact, AS_OF)).deals
    assert list(result["deal_id"][:2]) == ["OLD", "YOUNG"]  # the small old deal above the big young one
    by_deal = result.set_index("deal_id")
    assert by_deal.loc["OLD", "limit"] == 59 and by_deal.loc["OLD", "won_percentile"] == 1.0
    assert by_deal.loc["OLD", "severity"] == "critical" and by_deal.loc["YOUNG", "severity"] == "medium"
    # Stale but tiny: money at stake x win-probability drop is small, one level lower.
    assert by_deal.loc["MID0", "severity"] == "low" and by_deal.loc["MID0", "stake"] < 1_000


def test_evidence_counts_deals_still_open_and_needs_the_minimum_sample():
    fact = _history()
    by_deal = stalled_deals(fact, None, None, RULES, DealDays.from_fact(fact, AS_OF)).deals.set_index("deal_id")
    # 130+ days: 5 won, 30 lost, 10 still open (OLD and the MIDs): 5 of 45 won so far.
    mid = by_deal.loc["MID0"]
    assert (mid["history_n"], mid["history_open"]) == (45, 10)
    assert mid["historical_win_rate"] == 5 / 45
    # 200+ days: OLD alone, below the 30-deal minimum: no rate.
    old = by_deal.loc["OLD"]
    assert old["history_n"] == 1 and np.isnan(old["historical_win_rate"])

    found = detect_anomalies(fact, None, None, RULES, AS_OF).anomalies.set_index("deal_id")
    assert "(10 of them still open, counted as not won yet), 11 % have been won" in found.loc["MID0", "explanation"]
    assert "Not enough data to say how deals this stale end: only 1 deal stayed open at least 200 days, fewer than " \
           "the 30 needed." in found.loc["OLD", "explanation"]
    # Deals past the 59-day limit at all: 5 won, 40 lost, 11 open (OLD, YOUNG, MIDs): 5 of 56.
    assert (old["past_limit_n"], old["past_limit_open"]) == (56, 11)
    assert "Of the 56 deals past the 59-day limit at all (11 still open" in found.loc["OLD", "explanation"]
