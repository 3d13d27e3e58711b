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


class _ByAge:
    """A stand-in classifier: win probability by deal age on the scoring day."""

    def __init__(self, young: float, old: float):
        self.young, self.old = young, old

    def predict_proba(self, features):
        p = np.where(features["age_days"].to_numpy() < 50, self.young, self.old)
        return np.column_stack([1 - p, p])


def _world(n=800, seed=4):
    """Deals open on the deployment day: young ones win within 30 days 30 %
    of the time, old ones 10 %; every other deal is lost after day 30 or
    stays open, so 'won within 90 days' has the same rates."""
    rng = np.random.default_rng(seed)
    age = rng.integers(0, 100, n)
    won = rng.random(n) < np.where(age < 50, 0.3, 0.1)
    close_in = np.where(won, rng.integers(1, 30, n), rng.integers(31, 200, n))
    closed = DEPLOYED + pd.to_timedelta(close_in, unit="D")
    fact = pd.DataFrame({"deal_id": [f"D{i}" for i in range(n)], "created_date": DEPLOYED - pd.to_timedelta(age, "D"),
                         "closed_date": closed.where(close_in <= 150), "is_won": won})
    fact["is_open"] = fact["closed_date"].isna()
    fact["needs_review"] = False
    return fact


def test_each_horizon_gets_its_own_verdict(setup):
    from salesintel_assets.domain.common.rules import load_rules
    from salesintel_assets.domain.models import risk_model as rm

    _, spec, _ = setup
    fact = _world()
    timeline = rf.Timeline(fact["deal_id"], pd.DataFrame(columns=["deal_id", "stage", "entered_date"]),
                           pd.DataFrame(columns=["deal_id", "activity_date"]), ["Qualified", "Closed"])
    rules = load_rules().risk
    # right within 30 days, 10 points too hopeful within 90
    model = rm.HorizonModel([30, 90], [_ByAge(0.3, 0.1), _ByAge(0.4, 0.2)], 90)
    tags = {"win_horizon_days": "90", "validation_auc": "0.62", "validation_auc_30d": "0.62"}
    checks = {c["horizon_days"]: c for c in drift.horizon_checks(model, tags, fact, AS_OF, DEPLOYED, timeline, spec,
                                                                  rules)}
    assert set(checks) == {30, 90}
    assert checks[30]["status"] == "ok" and checks[30]["new_deals"] == len(fact)
    assert checks[90]["status"] == "degraded" and "observed win rate" in checks[90]["reason"]
    # a model without horizons is judged on its main horizon only
    plain = drift.horizon_checks(_ByAge(0.3, 0.1), {"win_horizon_days": "30"}, fact, AS_OF, DEPLOYED, timeline, spec,
                                 rules)
    assert [c["horizon_days"] for c in plain] == [30] and plain[0]["status"] == "ok"
    # nothing matured yet: no verdict, said plainly
    early = drift.horizon_checks(model, tags, fact, DEPLOYED + pd.Timedelta(days=20), DEPLOYED, timeline, spec, rules)
    assert [c["status"] for c in early] == ["not enough data"] * 2
    assert "no 30-day window since the champion was deployed on 2026-01-01 has ended yet" == early[0]["reason"]
    # ... and no data is needed to say so (a same-day re-run does not replay the deals for it)
    assert not drift.window_ended(DEPLOYED, DEPLOYED + pd.Timedelta(days=20), 30)
    unread = drift.horizon_checks(model, tags, None, DEPLOYED + pd.Timedelta(days=20), DEPLOYED, None, spec, rules)
    pd.testing.assert_frame_equal(pd.DataFrame(unread), pd.DataFrame(early))
