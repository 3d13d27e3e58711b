"""Where in the quarter a state is: a feature only when past closes show
quarter-end seasonality, computed from the snapshot day alone, and never a
deal's reason (every deal open on one day shares it)."""

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from salesintel_assets.domain.models import features as rf
from salesintel_assets.domain.models.risk_scores import Explainer
from salesintel_assets_tests.trust_study import WORLDS, world_tables


def test_days_to_quarter_end_counts_to_the_quarters_last_day():
    days = rf.day_numbers(["2026-06-30", "2026-06-01", "2026-04-01", "2026-12-31", "2026-02-15"])
    np.testing.assert_array_equal(rf.days_to_quarter_end(days), [0, 29, 90, 0, 44])


@pytest.mark.parametrize("world, seasonal", [("never_closing_export", False), ("seasonal_export", True)])
def test_the_feature_is_used_only_when_closes_bunch_at_quarter_ends(world, seasonal):
    tables = world_tables(next(w for w in WORLDS if w.name == world), 3000, 91)
    labelled = rf.labelled_deals(tables["fact"], tables["as_of"])
    anomalies, alpha = tables["rules"].anomalies, tables["rules"].risk.quarter_position_alpha
    assert rf.quarter_seasonal(labelled, anomalies, alpha) is seasonal
    assert rf.quarter_seasonal(labelled, None, alpha) is False           # without the anomaly rules: never
    for mode in ("on", "off"):   # the rules' mode decides alone
        forced = anomalies.model_copy(update={"seasonality": anomalies.seasonality.model_copy(update={"mode": mode})})
        assert rf.quarter_seasonal(labelled, forced, alpha) is (mode == "on")
    spec = rf.choose_features(labelled, tables["history"], tables["activities"], tables["rules"].risk,
                              seasonal=seasonal)
    assert (rf.QUARTER_FEATURE in spec.numeric) is seasonal
    if seasonal:   # a snapshot's value is its day's distance to the quarter end, whatever the deal
        open_frame = rf.open_deals(tables["fact"], tables["as_of"]).head(50)
        timeline = rf.Timeline(tables["fact"]["deal_id"], tables["history"], tables["activities"],
                               tables["rules"].stages.order, rf.WonCycles(labelled[labelled["is_won"]], None))
        states = rf.open_states(open_frame, timeline, spec, tables["as_of"])
        assert (states[rf.QUARTER_FEATURE] == rf.days_to_quarter_end(rf.day_numbers([tables["as_of"]]))[0]).all()
    # a champion trained with it can still score a day whose closes no longer show the season
    assert rf.spec_feasible(rf.FeatureSpec("creation_and_age", ("industry",), ("age_days", rf.QUARTER_FEATURE)),
                            rf.FeatureSpec("creation_and_age", ("industry",), ("age_days",)))


def test_the_quarter_position_is_never_a_deals_reason():
    rng = np.random.default_rng(3)
    spec = rf.FeatureSpec("creation_and_age", (), ("age_days", rf.QUARTER_FEATURE))
    states = pd.DataFrame({"deal_id": np.arange(400), "age_days": rng.uniform(1, 300, 400),
                           rf.QUARTER_FEATURE: rng.integers(0, 91, 400).astype(float)})
    states["won"] = (rng.random(400) < np.where(states[rf.QUARTER_FEATURE] < 21, 0.7, 0.3)).astype(int)
    model = LogisticRegression().fit(states[spec.columns], states["won"])
    explainer = Explainer.from_states(states, spec)
    today = states[spec.columns].head(20).assign(**{rf.QUARTER_FEATURE: 3.0})
    weights = explainer.weights(model, today)
    assert rf.QUARTER_FEATURE not in weights.columns and "age_days" in weights.columns
    reasons = explainer.top_reasons(model, today)
    assert not reasons.filter(like="reason_").astype(str).apply(lambda c: c.str.contains("quarter")).any().any()


def test_cycle_lengths_that_differ_by_week_of_quarter_are_no_reason_for_the_feature():
    """The anomaly layer standardises when cycles alone differ by week of the
    quarter (clean-up closes do that); the model needs wins that bunch."""
    rng = np.random.default_rng(4)
    closed = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 720, 6000), unit="D")
    late = rf.days_to_quarter_end(rf.day_numbers(closed)) < 21
    cycle = np.where(late, rng.integers(150, 300, 6000), rng.integers(20, 120, 6000))
    labelled = pd.DataFrame({"closed_date": closed, "created_date": closed - pd.to_timedelta(cycle, unit="D"),
                             "is_won": rng.random(6000) < 0.45})
    tables = world_tables(WORLDS[0], 3000, 91)
    anomalies = tables["rules"].anomalies
    assert rf.quarter_seasonal(labelled, anomalies, 1e-4) is False
    bunched = labelled.assign(is_won=rng.random(6000) < np.where(late, 0.7, 0.35))
    assert rf.quarter_seasonal(bunched, anomalies, 1e-4) is True
