"""How long won deals take, read only from deals watched long enough: in a
young CRM only the quick wins have happened yet, and a limit read from them
would call ordinary deals stalled."""

import numpy as np
import pandas as pd
import pytest

from salesintel_assets.domain.anomalies.detector import detect_anomalies
from salesintel_assets.domain.anomalies.samples import DealDays
from salesintel_assets.domain.anomalies.stalled_deals import WonDurations, stalled_deals
from salesintel_assets.domain.common.rules import load_rules

RULES = load_rules()
AS_OF = pd.Timestamp("2026-06-30")
WON_CYCLES = (20, 110)   # won deals take 20-110 days (uniform): 90 % within 101
TRUE_LIMIT = 101


def _flow(history_days: int, per_day: int = 10, seed: int = 5) -> pd.DataFrame:
    """A CRM that went live ``history_days`` before the analysis date: every
    day ``per_day`` new deals, half won after 20-110 days, half lost after
    10-150; deals whose close lies after the analysis date are still open,
    in Demo since they were created."""
    rng = np.random.default_rng(seed)
    n = history_days * per_day
    created = AS_OF - pd.to_timedelta(np.repeat(np.arange(history_days, 0, -1), per_day), unit="D")
    won = rng.random(n) < 0.5
    cycle = np.where(won, rng.integers(WON_CYCLES[0], WON_CYCLES[1] + 1, n), rng.integers(10, 151, n))
    closed = created + pd.to_timedelta(cycle, unit="D")
    is_open = closed > AS_OF
    outcome = np.where(is_open, "Open", np.where(won, "Won", "Lost"))
    return pd.DataFrame({
        "deal_id": [f"D{i:05d}" for i in range(n)], "created_date": created,
        "closed_date": pd.Series(closed).where(~is_open), "outcome": outcome, "is_open": is_open,
        "is_won": outcome == "Won", "deal_amount": 10_000.0, "deal_stage": np.where(is_open, "Demo", "Closed"),
        "sales_rep_id": "rep_1", "industry": "SaaS", "region": "Europe", "product_type": "Pro",
        "lead_source": "Inbound", "needs_review": False, "stage_entered_date": pd.NaT, "days_in_stage": np.nan})


def _won_cycles_so_far(fact: pd.DataFrame) -> np.ndarray:
    won = fact["outcome"].eq("Won")
    return (fact.loc[won, "closed_date"] - fact.loc[won, "created_date"]).dt.days.to_numpy()


def test_a_young_crm_does_not_call_ordinary_deals_stalled():
    fact = _flow(60)   # two months live: no win slower than 60 days can have happened yet
    naive = np.quantile(_won_cycles_so_far(fact), 0.9)
    age = (AS_OF - fact["created_date"]).dt.days
    assert naive < 60 and (fact["is_open"] & (age > naive)).sum() > 50   # what a limit from every win flagged
    result = stalled_deals(fact, None, None, RULES, DealDays.from_fact(fact, AS_OF))
    assert result.deals.empty
    assert any(note.startswith("the history is too short to say how long won deals take: fewer than 30 deals "
                               "were created long enough ago") for note in result.notes)
    # Listed for a low Stage Momentum Index only: at low priority, saying the time could not be judged.
    smi = pd.DataFrame({"deal_id": fact["deal_id"], "smi": np.where(fact["is_open"] & (age > 50), 0.01, np.nan)})
    found = detect_anomalies(fact, smi, None, RULES, AS_OF).anomalies.query("anomaly_type == 'stalled_deal'")
    assert len(found) and found["severity"].eq("low").all()
    assert "how long won deals take is not known yet (too few won deals, or a history too short for the slower " \
           "wins), so its time is not judged" in found.iloc[0]["explanation"]


def test_a_mature_crm_reads_the_limit_from_deals_watched_long_enough():
    fact = _flow(400)
    naive = np.quantile(_won_cycles_so_far(fact), 0.9)
    result = stalled_deals(fact, None, None, RULES, DealDays.from_fact(fact, AS_OF))
    limit = result.deals["limit"].iloc[0]
    assert (result.deals["rule"] == "age").all() and (result.deals["age"] > limit).all()
    assert abs(limit - TRUE_LIMIT) <= 3 and limit >= naive   # the recent deals' quick wins pull a plain read down


def test_a_crm_half_a_year_old_reads_its_limit_from_its_older_deals_and_says_so():
    fact = _flow(240)   # eight months: only the deals of the first weeks were watched twice the limit
    found = detect_anomalies(fact, None, None, RULES, AS_OF).anomalies.query("anomaly_type == 'stalled_deal'")
    limit = found["expected"].iloc[0]
    assert abs(limit - TRUE_LIMIT) <= 3
    explanation = found.iloc[0]["explanation"]
    assert f"of won deals closed within {limit:.0f} days (read from the " in explanation
    assert "won deals that started long enough ago for the slower wins to have happened)." in explanation


def test_old_deals_that_rarely_won_keep_the_limit_instead_of_emptying_it():
    # 200 wins of 10-59 days, all closed 60 days ago (watched 70-119 days), and 200 losses watched 160-359 days:
    # few old deals won, which says nothing more about how long wins take.
    cycles = 10 + np.arange(200) % 50
    won = WonDurations(cycles, cycles + 60, np.concatenate([cycles + 60, 160 + np.arange(200)]))
    # Every win says 54 days; the 48 wins watched 108+ days (of 48-59 days) say 58; the 16 watched 116+ are too few.
    assert won.limit(0.9, min_won=30, follow=2.0, min_n=30) == 58
    assert won.counted == 48 and won.total == 200
    assert won.share_within(np.array([57, 58, 70])) == pytest.approx([40 / 48, 44 / 48, 1.0])
    # Nothing watched twice the limit: not known.
    assert np.isnan(WonDurations(cycles, cycles + 5, cycles + 5).limit(0.9, min_won=30, follow=2.0, min_n=30))


def test_a_young_crm_with_stage_history_is_not_judged_by_its_quick_stays():
    """Sixty days live, every deal in Demo from its creation: won deals left Demo within their cycle so far."""
    fact = _flow(60)
    closed = ~fact["is_open"]
    end = fact["closed_date"].where(closed, AS_OF)
    days = (end - fact["created_date"]).dt.days.to_numpy()
    transitions = pd.DataFrame({"deal_id": fact["deal_id"], "stage": "Demo", "days_in_stage": days.astype(float),
                                "exited_date": fact["closed_date"].where(closed)})
    fact = fact.assign(stage_entered_date=fact["created_date"], days_in_stage=days.astype(float))
    result = stalled_deals(fact, None, transitions, RULES, DealDays.from_fact(fact, AS_OF))
    assert result.deals.empty
    assert any("a history too short to have seen the slower ones" in note for note in result.notes)
