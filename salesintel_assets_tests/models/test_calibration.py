"""Calibration with an intercept per age band: when deals of one age win
less in the calibration period than in the fit period, deals of another
age the fitted model scores alike keep their own rate (one Platt map moved
both to the middle)."""

import numpy as np
import pandas as pd
import pytest

from salesintel_assets.domain.common.rules import load_rules
from salesintel_assets.domain.models import risk_model as rm
from salesintel_assets.domain.models.features import CREATION_ONLY, FeatureSpec

SPEC = FeatureSpec(CREATION_ONLY, ("industry",), ("age_days",))
# 90-day win rate by age: young and old deals steady, deals 30-90 days old winning less lately (more of
# them stale) although they won like the young ones before
YOUNG, OLD = 0.25, 0.04
MIDDLE_THEN, MIDDLE_LATELY = 0.25, 0.15


def _rows(rng, n_young: int, n_middle: int, n_old: int, middle_rate: float, start: int) -> pd.DataFrame:
    age = np.concatenate([rng.integers(0, 30, n_young), rng.integers(30, 90, n_middle),
                          rng.integers(90, 400, n_old)]).astype(float)
    rate = np.concatenate([np.full(n_young, YOUNG), np.full(n_middle, middle_rate), np.full(n_old, OLD)])
    n = len(age)
    return pd.DataFrame({"deal_id": [f"D{start + i}" for i in range(n)], "industry": rng.choice(["SaaS", "Retail"], n),
                         "age_days": age, "won": (rng.random(n) < rate).astype(int)})


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(5)
    fit = _rows(rng, 6000, 6000, 12000, MIDDLE_THEN, 0)
    calibrate = _rows(rng, 3000, 3000, 6000, MIDDLE_LATELY, 100_000)   # quartiles 29.75 and 89.5: the groups
    rules = load_rules().risk.model_copy(update={"calibration": "sigmoid"})
    model, method = rm.fit_calibrated("logistic", fit, calibrate, SPEC, rules, 90)
    return model, method, calibrate


def test_young_deals_keep_their_rate_when_older_ones_drift(fitted):
    model, method, calibrate = fitted
    p = rm.predict(model, calibrate[SPEC.columns])
    age = calibrate["age_days"]
    assert method == "sigmoid"
    for group in (age < 30, (age >= 30) & (age < 90), age >= 90):
        assert p[group].mean() == pytest.approx(calibrate.loc[group, "won"].mean(), abs=0.01)


def test_the_bands_are_the_calibration_ages_quartiles_and_ranking_reads_the_fitted_scores(fitted):
    model, _, calibrate = fitted
    assert list(model.edges_) == list(np.quantile(calibrate["age_days"], [0.25, 0.5, 0.75]))
    features = calibrate[SPEC.columns].head(50)
    assert np.allclose(rm.ranking_scores(model, features), model.estimator.predict_proba(features)[:, 1])
