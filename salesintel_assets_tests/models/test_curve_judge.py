"""The age curve alone answers a young CRM's open deals only where it ranked
past days' open deals better than the model and deal age (``curve_judge``)."""

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from salesintel_assets.domain.common import stats
from salesintel_assets.domain.models import age_curve, curve_judge, forecast
from salesintel_assets.domain.models import features as rf
from salesintel_assets.domain.models import reporting
from salesintel_assets.domain.models import risk_model as rm
from salesintel_assets.domain.models.curve_judge import CurveJudgement
from salesintel_assets.domain.models.mixture import Mixture
from salesintel_assets.domain.models.verdict import Verdict
from salesintel_assets_tests.models.test_age_curve import AS_OF, _deals_aged, _fact, _Flat
from salesintel_assets_tests.models_support import sample_tables


def _judged(days=3, curve=0.74, model=0.70, age=0.68, gap_se=0.0, age_gap_se=0.0) -> CurveJudgement:
    return CurveJudgement("gradient_boosting", 90, days, curve, model, age, gap_se=gap_se, age_gap_se=age_gap_se)


def test_the_curve_serves_unless_the_model_or_deal_age_ranked_past_days_better_beyond_the_noise():
    assert _judged().serves
    assert not _judged(model=0.75).serves                         # the model ranked better
    assert _judged(curve=0.70).serves                             # tied: the simpler of the two serves
    assert _judged(model=0.745, gap_se=0.006).serves              # a lead within one standard error is noise
    assert not _judged(model=0.75, gap_se=0.006).serves           # beyond it, the model serves
    assert not _judged(age=0.76).serves                           # deal age alone ranked better
    assert _judged(age=0.745, age_gap_se=0.006).serves            # within the noise, as for the model
    assert not _judged(age=0.75, age_gap_se=0.006).serves
    assert not _judged(days=0, curve=float("nan"), model=float("nan"), age=float("nan")).serves


def test_the_noise_of_an_auc_difference_is_delongs_and_matches_repeated_samples():
    rng = np.random.default_rng(5)
    gaps, ses = [], []
    for _ in range(300):   # two noisy readings of one latent score, on 300 cases a third of them won
        won = rng.random(300) < 0.3
        latent = rng.normal(size=300) + won
        first, second = np.round(latent + rng.normal(0, 0.5, 300), 1), latent + rng.normal(0, 0.8, 300)
        gaps.append(roc_auc_score(won, first) - roc_auc_score(won, second))
        ses.append(stats.auc_difference_se(won, first, second))
    assert np.mean(ses) == pytest.approx(np.std(gaps), rel=0.15)
    assert stats.auc_difference_se(won, first, first) == 0                 # one score against itself: no noise
    assert np.isnan(stats.auc_difference_se([1, 0, 0], [0.9, 0.1, 0.2], [0.5, 0.4, 0.3]))   # one win
    # the mean gain over days: the days' errors added as independent, divided by the days
    assert curve_judge.auc_gap_se([0.006, 0.008]) == pytest.approx(0.005)
    assert curve_judge.auc_gap_se([]) == 0


def test_the_judgement_says_what_answers_and_on_what_evidence():
    at_model_level = CurveJudgement("blend", 90, 4, 0.79, 0.78, 0.72, own_level=False).sentence()
    assert at_model_level.startswith("the open deals are ranked by the age curve")
    assert "at the model's level: each horizon's expected wins are the model's, shared out by the curve" in \
        at_model_level
    served = _judged().sentence()
    assert served.startswith("every open deal's probabilities come from the age curve alone")
    assert ("on 3 past days it ranked the deals open then by what they did in the next 90 days at AUC 0.740, "
            "against 0.700 for the gradient_boosting model retrained then and 0.680 for deal age") in served
    assert _judged(model=0.75).sentence().startswith("the age curve alone was not served: on 3 past days")
    assert ("(the model's lead of 0.005 is within one standard error of the difference (0.006); deal age's lead of "
            "0.002 is within one standard error of the difference (0.004): a tie is no evidence against the simpler "
            "curve)") in _judged(model=0.745, age=0.742, gap_se=0.006, age_gap_se=0.004).sentence()
    assert "lead" not in served
    assert "past day it ranked" in _judged(days=1).sentence()
    assert "no past day could replay both" in _judged(days=0).sentence()


def test_a_model_the_curve_serves_answers_every_horizon_from_it_and_is_judged_by_its_models():
    curve = age_curve.fitted(Mixture(horizon_days=90), _fact(), AS_OF, 100_000, 0)
    deals = _deals_aged(5, 47, 100, 200)
    served = rm.HorizonModel([90, 30], [_Flat(0.4), _Flat(0.02)], 90, levels=[0.5, 0.5], age_curve=curve,
                             reach_ages=[47, 150], curve_serves=True)
    answers = served.horizon_probabilities(deals)
    for days in (30, 90):   # the curve's own chances, not moved by the models' levels
        np.testing.assert_allclose(answers[days], curve.within(deals, days))
    np.testing.assert_allclose(served.predict_proba(deals)[:, 1], curve.within(deals, 90))
    np.testing.assert_allclose(served.judged().horizon_probabilities(deals)[90], 0.4)   # validation's view
    # without a curve there is nothing to serve alone: the models answer
    plain = rm.HorizonModel([90], [_Flat(0.4)], 90, curve_serves=True)
    assert not plain.curve_serves
    np.testing.assert_allclose(plain.horizon_probabilities(deals)[90], 0.4)
    assert pd.Series(answers[90]).is_monotonic_decreasing   # older deals, fewer wins still to come


@pytest.fixture(scope="module")
def sample_crm():
    tables = sample_tables(3000, 11)
    rules = tables["rules"].risk.model_copy(update={
        "forecast": tables["rules"].risk.forecast.model_copy(update={"backtest_dates": 3})})
    prepared = rf.prepare(tables["fact"], tables["history"], tables["activities"], tables["as_of"], rules,
                          tables["rules"].stages.order)
    return prepared, rules


@pytest.fixture(scope="module")
def judged(sample_crm):
    """The judgement on the sample CRM, and the model's replays it made."""
    prepared, rules = sample_crm
    replays = {}
    judgement = curve_judge.judge(prepared.fact, prepared.snapshots, prepared.timeline, prepared.spec, rules,
                                  "logistic", prepared.as_of, replays)
    return judgement, replays


@pytest.fixture(scope="module")
def sample_curve(sample_crm):
    """The age curve of every deal the sample CRM knew on its analysis date."""
    prepared, rules = sample_crm
    return age_curve.fitted(rm.mixture_for(prepared.spec, rules), prepared.fact, prepared.as_of, 100_000, 0)


def test_where_stages_and_activity_tell_a_lot_the_model_ranks_past_days_better_and_the_curve_does_not_serve(
        judged):
    judgement, _ = judged
    assert judgement.days == 3 and judgement.window_days == 90
    # the curve reads creation facts and age only; the sample CRM's stages and activity carry most of its signal
    assert judgement.age_auc < judgement.curve_auc < judgement.model_auc - 0.1
    assert not judgement.serves


def test_the_curve_is_replayed_only_on_days_the_model_could_be_fitted_and_knows_only_those_days(sample_crm):
    prepared, rules = sample_crm
    args = (prepared.fact, prepared.snapshots, prepared.timeline, prepared.spec, rules, "logistic")
    early = prepared.fact["created_date"].min() + pd.Timedelta(days=200)   # 81 closed deals by then
    for curve_serves in (False, True):
        with pytest.raises(rm.NotEnoughData):
            forecast.replayed(*args, early, curve_serves=curve_serves)
    day = prepared.as_of - pd.Timedelta(days=90)
    served = forecast.replayed(*args, day, curve_serves=True)
    assert len(served.deals) == len(rf.open_at(prepared.fact, day)) and (served.deals["created_date"] <= day).all()
    later = prepared.fact.assign(is_won=~prepared.fact["is_won"].astype(bool))   # every outcome after the day flipped
    later.loc[later["closed_date"] <= day, "is_won"] = prepared.fact["is_won"]
    flipped = forecast.replayed(later, *args[1:], day, curve_serves=True)
    np.testing.assert_allclose(flipped.p, served.p)   # what came after the day does not move the day's curve


def test_at_the_models_level_the_curve_shares_out_the_models_expected_wins_in_its_own_order(
        sample_crm, sample_curve):
    prepared, curve = sample_crm[0], sample_curve
    model = rm.HorizonModel([90], [_Flat(0.3)], 90)
    levels = curve_judge.model_levels(model, curve, prepared)
    served = rm.HorizonModel([90], [_Flat(0.3)], 90, age_curve=curve, curve_serves=True, curve_levels=levels)
    deals = rf.open_deals(prepared.fact, prepared.as_of)
    states = rf.open_states(deals, prepared.timeline, prepared.spec, prepared.as_of)
    p, own = served.horizon_probabilities(states)[90], curve.within(states, 90)
    assert p.sum() == pytest.approx(0.3 * len(deals), rel=1e-6) and own.sum() != pytest.approx(p.sum(), rel=0.05)
    np.testing.assert_array_equal(np.argsort(p, kind="stable"), np.argsort(own, kind="stable"))
    assert "moved to the models' served level on the open deals" in reporting.levels_note(served, 0)


def test_the_backtest_takes_the_judges_replays_of_the_model_instead_of_retraining_and_forecasts_the_same(
        sample_crm, judged, monkeypatch):
    prepared, rules = sample_crm
    _, replays = judged
    days = [prepared.as_of - pd.Timedelta(days=90 + 30 * k) for k in range(3)]
    assert sorted(replays) == sorted(("logistic", day) for day in days)
    args = (prepared.fact, prepared.timeline, prepared.spec, rules, prepared.closed_stage, "logistic", prepared.as_of)
    fresh = forecast.backtest(*args, snapshots=prepared.snapshots)
    retrained, replay = [], forecast.replayed

    def recorded(*call, **kwargs):
        retrained.append((call[5], call[6]))
        return replay(*call, **kwargs)

    monkeypatch.setattr(forecast, "replayed", recorded)
    newest_two = {key: replays[key] for key in (("logistic", days[0]), ("logistic", days[1]))}
    reused = forecast.backtest(*args, snapshots=prepared.snapshots, replays=newest_two)
    assert retrained == [("logistic", days[2])]   # only the day the judge did not replay
    assert (fresh["status"] == "ok").sum() == 3
    pd.testing.assert_frame_equal(reused, fresh)


class _Clocked:
    """A model whose chance is ``low`` on one day of the quarter (``on``:
    days to its end) and ``high`` on every other."""

    def __init__(self, on: float, low: float, high: float):
        self.on, self.low, self.high = on, low, high

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        p = np.where(features[rf.QUARTER_FEATURE].to_numpy() == self.on, self.low, self.high)
        return np.column_stack([1 - p, p])


def _today(prepared) -> float:
    """The sample CRM's analysis date on the quarter clock (days to the quarter's end)."""
    return rf.quarter_clock(rf.day_numbers([prepared.as_of]))[0][0]


def _with_clock(prepared):
    """The sample CRM's replay with the quarter clock among its features."""
    spec = replace(prepared.spec, numeric=prepared.spec.numeric + rf.CALENDAR_FEATURES)
    return replace(prepared, spec=spec)


def test_at_its_own_level_the_curve_moves_as_the_models_read_todays_place_in_the_quarter(sample_crm, sample_curve):
    prepared, curve = sample_crm[0], sample_curve
    clocked, today = _with_clock(prepared), _today(prepared)
    model = rm.HorizonModel([90], [_Clocked(today, low=0.2, high=0.3)], 90)
    shift, = curve_judge.clock_levels(model, curve, clocked)
    states = rf.open_states(rf.open_deals(prepared.fact, prepared.as_of), clocked.timeline, clocked.spec,
                            prepared.as_of)
    own = curve.within(states, 90)
    # today against the quarter's average, a week apart: one low day in thirteen
    ratio = 0.2 / ((0.2 + 12 * 0.3) / 13)
    assert shift < 0 and stats.shifted(own, shift).sum() == pytest.approx(ratio * own.sum(), rel=1e-6)
    # a model that reads the same chance on every day of the quarter moves nothing
    flat, = curve_judge.clock_levels(rm.HorizonModel([90], [_Clocked(today, 0.3, 0.3)], 90), curve, clocked)
    assert flat == pytest.approx(0.0, abs=1e-9)
    # without the quarter clock among the features (wins do not bunch at quarter ends) there is nothing to read
    assert curve_judge.clock_levels(model, curve, prepared) is None


def _settled(prepared, rules, curve, monkeypatch, usable: bool) -> rm.Training:
    """A training whose fit falls short of the open deals' ages, settled as
    if the curve had ranked past days better than its clocked model."""
    model = rm.HorizonModel([90], [_Clocked(_today(prepared), low=0.2, high=0.3)], 90, age_curve=curve,
                            reach_ages=[60])
    monkeypatch.setattr(curve_judge, "judge", lambda *args, **kwargs: _judged())
    training = rm.Training(None, [], SimpleNamespace(name="gradient_boosting"), {}, "", model=model,
                           verdict=Verdict(usable, "usable" if usable else "no better than deal age"),
                           age_reach=rm.AgeReach(60, 0.5, 0.2))
    return curve_judge.settled(training, prepared, rules)


def test_the_clock_moves_the_served_curve_only_when_the_model_that_reads_it_is_usable(sample_crm, sample_curve,
                                                                                      monkeypatch):
    prepared, rules = _with_clock(sample_crm[0]), sample_crm[1]
    served = _settled(prepared, rules, sample_curve, monkeypatch, usable=True)
    assert served.model.curve_serves and served.model.curve_by_clock and served.model.curve_levels[0] < 0
    assert served.curve_judgement.clock == ((90, served.model.curve_levels[0]),)
    odds = f"x{np.exp(served.model.curve_levels[0]):.2f} within 90 days"
    assert f"moved by the day's place in the quarter as the model reads the quarter's clock (odds {odds})" in \
        served.curve_judgement.sentence()
    assert "at its own level, moved by the day's place in the quarter" in reporting.levels_note(served.model, 0)
    weak = _settled(prepared, rules, sample_curve, monkeypatch, usable=False)
    assert weak.model.curve_serves and not weak.model.curve_by_clock and weak.model.curve_levels == [0.0]
    assert weak.curve_judgement.clock == () and "quarter's clock" not in weak.curve_judgement.sentence()
    assert "unmoved (served_by: age_curve)" in reporting.levels_note(weak.model, 0)
