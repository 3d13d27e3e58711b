"""Deals older than the ages a model learned (``risk_model.reach_age``)
follow the age curve of every deal (``age_curve``): a young CRM's old open
deals, which win less, are no longer read at the chance of younger ones."""

import numpy as np
import pandas as pd

from salesintel_assets.domain.common.rules import load_rules
from salesintel_assets.domain.models import age_curve
from salesintel_assets.domain.models import risk_model as rm
from salesintel_assets.domain.models.mixture import Mixture

AS_OF = pd.Timestamp("2024-08-31")


def _fact(days: int = 240, never_share: float = 0.3, seed: int = 5) -> pd.DataFrame:
    """Eight deals a day for ``days`` days up to ``AS_OF``: ``never_share``
    never close, the rest are won (one in two) after about 40 days, some
    much later, or lost after 10-120 days."""
    rng = np.random.default_rng(seed)
    n = 8 * days
    created = AS_OF - pd.to_timedelta(np.repeat(np.arange(days)[::-1], 8), unit="D")
    won = rng.random(n) < 0.5
    cycle = np.where(won, 10 + rng.exponential(40, n), rng.integers(10, 120, n))
    closed = pd.Series(created + pd.to_timedelta(cycle.astype(int), unit="D"))
    closes = (rng.random(n) >= never_share) & (closed <= AS_OF)
    return pd.DataFrame({"deal_id": [f"D{i}" for i in range(n)], "created_date": created,
                         "closed_date": closed.where(closes), "is_open": ~closes, "is_won": closes & won,
                         "needs_review": False})


def _deals_aged(*ages) -> pd.DataFrame:
    return pd.DataFrame({"age_days": np.array(ages, dtype=float)})


def test_a_deal_past_the_fit_reads_the_fall_of_its_chance_with_age():
    curve = age_curve.fitted(Mixture(horizon_days=90), _fact(), AS_OF, 100_000, 0)
    shift = age_curve.past_reach_shift(curve, _deals_aged(5, 30, 47, 90, 150, 220), 90, reach=47)
    assert (shift[:3] == 0).all()                   # no older than the reach: the model's own
    assert shift[3] < 0 and shift[4] < shift[3] and shift[5] <= shift[4]   # wins come early: old deals win less
    # the same curve answers the 30-day window too, and its chance is lower than the 90-day one
    assert (curve.within(_deals_aged(60), 30) < curve.within(_deals_aged(60), 90)).all()


def test_the_curve_knows_only_what_was_known_on_its_day():
    fact = _fact()
    day = AS_OF - pd.Timedelta(days=100)
    deals = age_curve.every_deal_by(fact, day, 100_000, 0)
    assert deals["created_date"].max() <= day and len(deals) == int((fact["created_date"] <= day).sum())
    later = fact["closed_date"] > day
    known = deals.set_index("deal_id")
    assert known.loc[fact.loc[later & (fact["created_date"] <= day), "deal_id"], "closed_date"].isna().all()
    assert not known.loc[fact.loc[later & (fact["created_date"] <= day), "deal_id"], "won_by_as_of"].any()
    assert len(age_curve.every_deal_by(fact, day, 500, 0)) == 500


class _Flat:
    """A model that says the same chance for every deal, whatever its age."""

    def __init__(self, p: float):
        self.p = p

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        return np.tile([1 - self.p, self.p], (len(features), 1))


def test_the_served_model_lowers_only_deals_older_than_each_horizons_fit():
    curve = age_curve.fitted(Mixture(horizon_days=90), _fact(), AS_OF, 100_000, 0)
    plain = rm.HorizonModel([90, 30], [_Flat(0.4), _Flat(0.02)], 90)
    served = rm.HorizonModel([90, 30], [_Flat(0.4), _Flat(0.02)], 90, age_curve=curve, reach_ages=[47, 150])
    deals = _deals_aged(20, 47, 100, 200)
    before, after = plain.horizon_probabilities(deals), served.horizon_probabilities(deals)
    np.testing.assert_allclose(after[90][:2], 0.4)
    assert (after[90][2:] < 0.3).all() and after[90][3] < after[90][2]
    np.testing.assert_allclose(after[30][:3], before[30][:3])     # the 30-day fit reached 150 days
    assert after[30][3] < 0.02
    assert (after[90] >= after[30]).all()            # never less likely within 90 days than within 30
    np.testing.assert_allclose(served.judged().horizon_probabilities(deals)[90], 0.4)   # validation's view


def test_a_fit_short_of_the_open_deals_gets_a_curve_and_one_as_old_as_them_does_not():
    spec = rm.FeatureSpec(categorical=(), numeric=("age_days",), mode="creation_and_age")
    rules = load_rules().risk
    young = pd.DataFrame({"age_days": np.arange(48)})
    assert isinstance(rm.curve_past_reach(rm.age_reach(_fact(), AS_OF, young), _fact(), AS_OF, spec, rules), Mixture)
    reaching = pd.DataFrame({"age_days": np.arange(240)})   # as old as every open deal
    assert rm.curve_past_reach(rm.age_reach(_fact(), AS_OF, reaching), _fact(), AS_OF, spec, rules) is None


def test_a_long_history_whose_old_open_deals_never_close_reads_them_by_the_curve():
    # three years where deals that linger never close: the history is not short (no win came past the fit's
    # oldest state), but most open deals are older than the age the fit learned up to, and a model's thin
    # oldest states leave them a floor of a chance; the curve reads what the closes say: nothing is won there
    spec = rm.FeatureSpec(categorical=(), numeric=("age_days",), mode="creation_and_age")
    long = _fact(1100)
    # the fit's states: most of them young, a thin tail up to 500 days (nine in ten younger than 150)
    states = pd.DataFrame({"age_days": np.concatenate([np.repeat(np.arange(150), 30), np.arange(150, 500)])})
    reach = rm.age_reach(long, AS_OF, states)
    assert not reach.short and reach.past_reach_open > rm.MAX_OLDER_OPEN_SHARE and reach.follows_curve
    curve = rm.curve_past_reach(reach, long, AS_OF, spec, load_rules().risk)
    assert isinstance(curve, Mixture)
    served = rm.HorizonModel([90], [_Flat(0.02)], 90, age_curve=curve, reach_ages=[rm.reach_age(states)])
    p = served.horizon_probabilities(_deals_aged(30, 120, 400, 900))[90]
    np.testing.assert_allclose(p[:2], 0.02)          # younger than the age the fit learned up to: the model's own
    assert (p[2:] < 0.002).all()                     # past it: a tenth of the model's floor, or less


class _Falling:
    """A curve whose chance falls with age."""

    def within(self, features: pd.DataFrame, days: int) -> np.ndarray:
        return np.clip(1 - features["age_days"].to_numpy(dtype=float) / 1000, 1e-4, 0.9)


class _Rising:
    """A curve whose chance rises with age, as a mixture's can near its floor."""

    def within(self, features: pd.DataFrame, days: int) -> np.ndarray:
        return np.clip(features["age_days"].to_numpy(dtype=float) / 1000, 1e-4, 0.9)


def test_past_the_reach_the_curve_only_lowers_a_deals_chance():
    deals = _deals_aged(100, 300, 600)
    np.testing.assert_array_equal(age_curve.past_reach_shift(_Rising(), deals, 90, reach=200), 0)
    served = rm.HorizonModel([90], [_Flat(0.02)], 90, age_curve=_Rising(), reach_ages=[200])
    np.testing.assert_allclose(served.horizon_probabilities(deals)[90], 0.02)
    # a falling curve still lowers: the same curve read from the oldest age back to the reach
    falling = age_curve.past_reach_shift(_Falling(), deals, 90, reach=200)
    assert falling[0] == 0 and falling[2] < falling[1] < 0
