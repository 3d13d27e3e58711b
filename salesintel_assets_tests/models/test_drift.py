"""The champion judged per horizon on its own matured outcomes."""

import numpy as np
import pandas as pd
import pytest

from salesintel_assets.domain.models import drift
from salesintel_assets.domain.models import features as rf

DEPLOYED, AS_OF = pd.Timestamp("2026-01-01"), pd.Timestamp("2026-05-01")   # 120 days apart


def _fact() -> pd.DataFrame:
    day = lambda n: DEPLOYED + pd.Timedelta(days=n)  # noqa: E731
    rows = [  # deal_id, created, closed, won
        ("won_in_20_days", day(-30), day(20), True),
        ("won_in_60_days", day(-5), day(60), True),
        ("won_after_100_days", day(-50), day(100), True),
        ("lost_in_10_days", day(-10), day(10), False),
        ("still_open", day(-200), None, False),
        ("created_later_won_fast", day(40), day(50), True),
        ("created_too_late_for_90", day(80), day(85), True),
        ("closed_before_deployment", day(-90), day(-1), True),
        ("created_after_as_of_minus_30", day(100), None, False),
        ("flagged", day(-20), day(5), True),
    ]
    fact = pd.DataFrame(rows, columns=["deal_id", "created_date", "closed_date", "is_won"])
    fact["closed_date"] = pd.to_datetime(fact["closed_date"])
    fact["is_open"] = fact["closed_date"].isna()
    fact["needs_review"] = fact["deal_id"] == "flagged"
    fact["deal_amount"] = 1000.0
    return fact


@pytest.fixture(scope="module")
def setup():
    fact = _fact()
    spec = rf.FeatureSpec(rf.CREATION_ONLY, (), ("age_days",))
    timeline = rf.Timeline(fact["deal_id"], pd.DataFrame(columns=["deal_id", "stage", "entered_date"]),
                           pd.DataFrame(columns=["deal_id", "activity_date"]), ["Qualified", "Closed"])
    return fact, spec, timeline


def test_each_horizon_is_judged_on_outcomes_within_its_own_window(setup):
    fact, spec, timeline = setup
    by_horizon = {}
    for days in (30, 90, 180):
        features, won = drift.matured_outcomes(fact, AS_OF, DEPLOYED, days, timeline, spec)
        by_horizon[days] = (features, won)
    features30, won30 = by_horizon[30]
    # open on the deployment day or created after it (not the deal closed before it, nor the flagged
    # one), first scored by AS_OF - 30 days (not the deal created 100 days after deployment)
    assert len(won30) == 7
    # won within 30 days of first being scored: the 20-day win and the two deals created later and won
    # within days; the 60- and 100-day wins came too late for this horizon
    assert won30.sum() == 3
    # as it looked when first scored: ages on the deployment day, or 0 for a deal created after it
    assert sorted(features30["age_days"]) == [0.0, 0.0, 5.0, 10.0, 30.0, 50.0, 200.0]
    features90, won90 = by_horizon[90]
    # deals first scored after AS_OF - 90 days (created day 40+) have no finished window yet
    assert len(won90) == 5 and won90.sum() == 2           # the 20- and 60-day wins; the 100-day win is late
    assert len(by_horizon[180][1]) == 0                   # no 180-day window has ended since deployment


def test_a_calibrated_horizon_passes_and_eventual_outcomes_would_fail_it():
    """A 90-day probability is judged against wins within 90 days: a model
    whose 90-day probabilities are right is ok; the same probabilities held
    against eventual outcomes (many deals win later) look badly low."""
    rng = np.random.default_rng(3)
    p90 = rng.uniform(0.05, 0.6, 1500)
    within = rng.random(1500) < p90
    eventually = within | (rng.random(1500) < 0.4)
    right = drift.live_check(within.astype(int), p90, 0.7, 100, 0.05, 0.05, 0.01)
    wrong = drift.live_check(eventually.astype(int), p90, 0.7, 100, 0.05, 0.05, 0.01)
    assert right["status"] == "ok" and not right["degraded"]
    assert wrong["degraded"] and "observed win rate" in wrong["reason"]
    few = drift.live_check(within[:20].astype(int), p90[:20], 0.7, 100, 0.05, 0.05, 0.01)
    assert few["status"] == "not enough data" and "20 deals with a finished window" in few["reason"]
