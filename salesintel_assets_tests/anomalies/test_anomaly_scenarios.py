"""The anomaly detector against generated CRMs with known truth: planted
effects must be found (recall) without much else (precision), and worlds with
nothing planted must stay quiet (false alarms per month of daily runs).

Worlds have 24,000 deals over 18 months (about 1,100 closes a month); the
planted sizes are in ``scenarios`` (a 20-point lead-source dip, a 30-point
industry x region spike, a 1.5x slower industry). The fuller study (100
worlds, 10 null months) runs with ``python -m salesintel_assets_tests.scenarios``.
"""

import pytest

from salesintel_assets_tests import scenarios

pytestmark = pytest.mark.study  # minutes of generated worlds: `pytest -m "not study"` skips them
DEALS = 24_000


@pytest.fixture(scope="module")
def study():
    return scenarios.recall_precision(DEALS, range(30))


def test_planted_effects_are_found(study):
    print("\nrecall/precision over", study["worlds"], "worlds:", study)
    for name, recall in study["recall"].items():
        assert recall["related"] >= 0.9, (name, recall)
    # The dip and the spike are reported on exactly their own segment.
    assert study["recall"]["dip"]["exact"] >= 0.9
    assert study["recall"]["spike"]["exact"] >= 0.9


def test_little_else_is_reported(study):
    assert study["precision"] >= 0.9, study
    assert study["false"] <= 0.15 * study["worlds"]


def test_worlds_without_plants_stay_quiet():
    months = [scenarios.false_alarms_in_a_month(DEALS, seed) for seed in (500, 501)]
    per_month = sum(map(len, months)) / len(months)
    print("\nfalse alarms per month of daily runs:", per_month, months)
    assert per_month <= 1.0, months


def test_scoring_counts_parents_and_children_as_related():
    plant = scenarios.WinRatePlant({"industry": "EdTech", "region": "Europe"}, -0.2)
    assert scenarios.related("industry=EdTech&region=Europe", plant)
    assert scenarios.related("industry=EdTech", plant)
    assert scenarios.related("all", plant)
    assert scenarios.related("industry=EdTech&product_type=Pro", scenarios.WinRatePlant({"industry": "EdTech"}, -.2))
    assert not scenarios.related("industry=SaaS", plant)
    assert not scenarios.related("lead_source=Partner", plant)


def test_generated_worlds_are_stationary_and_seeded():
    a, b = scenarios.generate(3000, 7), scenarios.generate(3000, 7)
    assert a.fact.equals(b.fact)
    closed = a.fact[~a.fact["is_open"]]
    assert (closed["sales_cycle_days"] == (closed["closed_date"] - closed["created_date"]).dt.days).all()
    assert a.fact["is_open"].any() and (a.fact.loc[a.fact["is_open"], "closed_date"].isna()).all()
    monthly = closed.groupby(closed["closed_date"].dt.to_period("M"))["is_won"].mean().iloc[3:]
    assert monthly.between(0.3, 0.6).all()
