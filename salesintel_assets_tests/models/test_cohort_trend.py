"""The win rate's trend by creation date (``cohort_trend``): measured with
its noise, served only beyond it, and never from too little history."""

import numpy as np
import pandas as pd
import pytest

from salesintel_assets.domain.models import cohort_trend
from salesintel_assets_tests.models_support import known_probability_fact

FACTS = ["industry", "region", "product_type", "lead_source"]


def _as_of(fact: pd.DataFrame) -> pd.Timestamp:
    return fact["closed_date"].max()


def test_odds_falling_with_each_cohort_are_measured_and_served_shrunk():
    fact, _ = known_probability_fact(6000, drift=-0.8, span_days=1100)
    trend = cohort_trend.measure(fact, _as_of(fact), FACTS, min_z=3.0)
    assert trend.per_year == pytest.approx(-0.8, abs=3 * trend.se)
    assert trend.z < -3 and trend.deals > 5000
    assert trend.per_year < trend.served_per_year < 0     # shrunk toward 0 for its noise, never past it
    assert "beyond noise" in trend.note() and f"{trend.per_year:+.2f} log odds a year" in trend.note()
    assert trend.sentence().startswith("each new cohort of deals wins less than the one before (-0.")


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_a_steady_business_shows_no_trend_that_serves(seed):
    fact, _ = known_probability_fact(6000, seed=seed, span_days=1100)
    trend = cohort_trend.measure(fact, _as_of(fact), FACTS, min_z=3.0)
    assert abs(trend.z) < 3 and np.isfinite(trend.se)
    assert trend.served_per_year == 0.0
    assert "within noise" in trend.note() and trend.sentence() == ""   # nothing for the run summary
    assert trend.level_shift(fact["created_date"].tail(50), np.full(50, 0.4), fact["created_date"].min()) == 0.0


def test_too_little_history_is_not_measured():
    fact, _ = known_probability_fact(250, drift=-0.8, span_days=1100)
    trend = cohort_trend.measure(fact, _as_of(fact), FACTS, min_z=3.0)
    assert trend.served_per_year == 0.0 and not np.isfinite(trend.se)
    assert trend.note().startswith("The win rate by creation date was not measured: fewer than 300 deals")


def test_deals_whose_window_is_not_over_are_left_out():
    """A deal created less than the window before the analysis date may
    still be won in it: counted as not won, a steady business's newest
    cohorts would read as a fall."""
    fact, _ = known_probability_fact(6000, seed=4, span_days=1100)
    as_of = fact["created_date"].max()   # the newest 90 days' deals are still open then
    trend = cohort_trend.measure(fact, as_of, FACTS, min_z=3.0)
    assert trend.served_per_year == 0.0 and abs(trend.z) < 3
    assert trend.deals == int((fact["created_date"] <= as_of - pd.Timedelta(days=90)).sum())


def test_one_outcome_only_is_not_measured():
    fact, _ = known_probability_fact(2000, span_days=1100)
    trend = cohort_trend.measure(fact.assign(is_won=False), _as_of(fact), FACTS, min_z=3.0)
    assert trend.served_per_year == 0.0 and "every such deal not won" in trend.note()


def test_off_is_measured_and_said_but_never_served():
    fact, _ = known_probability_fact(6000, drift=-0.8, span_days=1100)
    trend = cohort_trend.measure(fact, _as_of(fact), FACTS, min_z=0.0)
    assert trend.z < -3 and trend.served_per_year == 0.0
    assert "off: risk.cohort_trend_min_z is 0" in trend.note() and "within noise" not in trend.note()


def test_a_column_left_out_of_the_creation_facts_is_not_read():
    """The leakage guard's exclusions reach the model's columns; a column
    that encodes the outcome, read beside the date, would take the trend."""
    fact, _ = known_probability_fact(6000, drift=-0.8, span_days=1100)
    leaking = fact.assign(industry=np.where(fact["is_won"], "Won-Co", "Lost-Co"))
    trend = cohort_trend.measure(leaking, _as_of(fact), [c for c in FACTS if c != "industry"], min_z=3.0)
    assert trend.per_year == pytest.approx(-0.8, abs=3 * trend.se) and trend.se < 0.1


def test_the_level_moves_by_the_trend_over_the_years_between_the_deals():
    trend = cohort_trend.CohortTrend(per_year=-0.4, se=0.1, deals=1000, served_per_year=-0.3, reason="served")
    today = pd.Series(pd.to_datetime(["2026-01-01", "2026-01-03"]))
    reference = pd.Timestamp("2025-01-02")
    assert trend.level_shift(today, np.array([0.5, 0.5]), reference) == pytest.approx(-0.3 * 365 / 365.25)
    assert trend.level_shift(today.iloc[:0], np.array([]), reference) == 0.0
    assert trend.level_shift(today, np.array([0.5, 0.5]), None) == 0.0
    rows = pd.Series(pd.to_datetime(["2024-07-02", "2025-01-02"]))
    assert cohort_trend.offsets(rows, reference, -0.3) == pytest.approx([0.3 * 184 / 365.25, 0.0])
    assert not cohort_trend.offsets(rows, reference, 0.0).any()


def test_a_level_sits_at_the_creation_date_of_the_deals_that_move_it():
    """Old deals lingering open at a chance near 0 move no sum of chances:
    they do not pull the date a level was read at back to their creation."""
    created = pd.Series(pd.to_datetime(["2023-01-01"] * 8 + ["2025-06-01", "2025-06-03"]))
    p = np.array([0.001] * 8 + [0.5, 0.5])
    day = cohort_trend.reference_day(created, p)
    assert abs((day - pd.Timestamp("2025-06-02")).days) <= 20 and (day - created.mean()).days > 500
    plain = cohort_trend.reference_day(created, np.zeros(10))   # nothing moves a sum: the plain mean
    assert abs(plain - created.mean()) < pd.Timedelta(seconds=1)
    assert cohort_trend.reference_day(created.iloc[:0], np.array([])) is None
