"""The mixture candidate: a deal's chance of being won at all from its
creation facts, times how likely a deal still open at its age is a win and
closes within the window -- learnt only from closes before its last
snapshot."""

import numpy as np
import pandas as pd
import pytest

from salesintel_assets.domain.common.rules import load_rules
from salesintel_assets.domain.models import features as rf
from salesintel_assets.domain.models import risk_model as rm
from salesintel_assets.domain.models.mixture import MIXTURE_ODDS, Mixture, Stacked

CUTOFF = pd.Timestamp("2025-06-30")
CHANCE = {"Referral": 0.8, "Outbound": 0.3}


def _rows(n: int = 4000, seed: int = 2) -> pd.DataFrame:
    """Closed deals as snapshot rows: lead source sets the chance of a win
    (``CHANCE``), wins close in 10-50 days, losses in 100-300."""
    rng = np.random.default_rng(seed)
    lead = rng.choice(list(CHANCE), n)
    won = rng.random(n) < pd.Series(lead).map(CHANCE).to_numpy()
    cycle = np.where(won, rng.integers(10, 51, n), rng.integers(100, 301, n))
    closed = CUTOFF - pd.to_timedelta(rng.integers(0, 400, n), unit="D")
    return pd.DataFrame({"deal_id": [f"D{i}" for i in range(n)], "snapshot_date": CUTOFF,
                         "created_date": closed - pd.to_timedelta(cycle, unit="D"), "closed_date": closed,
                         "won_by_as_of": won, "lead_source": lead, "product_type": "Core", "deal_amount": 10_000.0})


def _fit(rows: pd.DataFrame) -> Mixture:
    return Mixture(categorical=("lead_source", "product_type"), numeric=("deal_amount",), horizon_days=90,
                   segment="product_type").fit(rows)


def _p(model: Mixture, lead: str, age: float, product: str = "Core") -> float:
    frame = pd.DataFrame({"lead_source": [lead], "product_type": [product], "deal_amount": [10_000.0],
                          "age_days": [age]})
    return float(model.predict_proba(frame)[0, 1])


@pytest.fixture(scope="module")
def rows():
    return _rows()


def test_a_young_deal_is_as_likely_won_as_its_creation_facts_say(rows):
    model = _fit(rows)
    for lead in CHANCE:
        seen = rows.loc[rows["lead_source"] == lead, "won_by_as_of"].mean()
        assert _p(model, lead, 0) == pytest.approx(seen, abs=0.04)   # every win closes within 90 days


def test_a_deal_still_open_halfway_through_the_winning_cycles_is_judged_by_bayes(rows):
    """At 30 days about half the wins have closed and no loss has: a deal
    still open is a win with odds p/2 : (1 - p)."""
    model = _fit(rows)
    for lead, p in CHANCE.items():
        half = p * 0.5 / (p * 0.5 + 1 - p)
        assert _p(model, lead, 30) == pytest.approx(half, abs=0.06)
    assert _p(model, "Referral", 30) > _p(model, "Outbound", 30)


def test_a_deal_past_every_cycle_seen_is_no_bet(rows):
    """Past every win (60 days) or past every close at all (400 days) a deal
    is not a likely win, whatever its creation facts; it keeps their order."""
    model = _fit(rows)
    for age in (60, 400):
        referral, outbound = _p(model, "Referral", age), _p(model, "Outbound", age)
        assert referral < 0.001 and outbound < referral


def test_one_slow_win_past_every_loss_is_no_sure_bet(rows):
    """One win took 400 days, past every loss (300): a deal open 350 days
    would read as a sure win within 90 days off that one deal. Fewer than
    ``TAIL_DEALS`` deals left open is no tail to read: no bet."""
    slow = pd.DataFrame({"deal_id": ["W1"], "snapshot_date": CUTOFF, "created_date": CUTOFF - pd.Timedelta(days=420),
                         "closed_date": CUTOFF - pd.Timedelta(days=20), "won_by_as_of": True,
                         "lead_source": "Referral", "product_type": "Core", "deal_amount": 10_000.0})
    model = _fit(pd.concat([rows, slow], ignore_index=True))
    assert _p(model, "Referral", 350) < 0.001
    assert _p(model, "Referral", 30) > 0.5   # the healthy part of the curves is as before


def test_the_mixture_reads_only_closes_by_its_last_snapshot(rows):
    """Deals that closed after the last snapshot date were open then: how
    they ended (outcome and date) must not move anything. Deals created
    after it did not exist yet."""
    later = _rows(1500, seed=9)
    later["deal_id"] = "L" + later["deal_id"]
    later["closed_date"] = later["closed_date"] + pd.Timedelta(days=500)
    assert (later["created_date"] <= CUTOFF).sum() > 300          # open on the last snapshot date: they count
    flipped = later.assign(won_by_as_of=~later["won_by_as_of"],
                           closed_date=later["closed_date"] + pd.Timedelta(days=200))
    frame = pd.DataFrame({"lead_source": ["Referral", "Outbound"] * 3, "product_type": "Core",
                          "deal_amount": 10_000.0, "age_days": [0, 0, 30, 30, 120, 120]})
    one, two = (_fit(pd.concat([rows, extra], ignore_index=True)).predict_proba(frame) for extra in (later, flipped))
    np.testing.assert_allclose(one, two)
    unborn = later.assign(created_date=CUTOFF + pd.Timedelta(days=1))
    np.testing.assert_allclose(_fit(pd.concat([rows, unborn], ignore_index=True)).predict_proba(frame),
                               _fit(rows).predict_proba(frame))


def _never_closing_rows(n: int = 6000, seed: int = 4, never: float = 0.3) -> pd.DataFrame:
    """Deals created over two years before ``CUTOFF`` as one snapshot row
    each: a share ``never`` never closes; of the rest lead source sets the
    chance of a win, wins close in 10-150 days and losses in 100-300. A deal
    whose close is after the cutoff is open there."""
    rng = np.random.default_rng(seed)
    lead = rng.choice(list(CHANCE), n)
    stuck = rng.random(n) < never
    won = ~stuck & (rng.random(n) < pd.Series(lead).map(CHANCE).to_numpy())
    cycle = np.where(won, rng.integers(10, 151, n), rng.integers(100, 301, n))
    created = CUTOFF - pd.to_timedelta(rng.integers(0, 730, n), unit="D")
    closed = pd.Series(created + pd.to_timedelta(cycle, unit="D")).where(~stuck)
    closed = closed.where(closed <= CUTOFF)
    return pd.DataFrame({"deal_id": [f"N{i}" for i in range(n)], "snapshot_date": CUTOFF, "created_date": created,
                         "closed_date": closed, "won_by_as_of": won & closed.notna(), "lead_source": lead,
                         "product_type": "Core", "deal_amount": 10_000.0})


def test_deals_that_never_close_are_read_as_non_wins_still_open():
    """A CRM that never closes its dead deals: 30 % stay open for ever. Read
    from closes alone, a deal open 60 days would be a likely win (every loss
    takes 100 days or more); among the deals that have been open that long,
    the stuck ones are many, and the mixture counts them (as non-wins still
    open, by Bayes: the same odds the world itself gives)."""
    model = _fit(_never_closing_rows())
    wins_left = (150 - 60) / 141                      # wins still open at 60 days, all closing within 90 more
    for lead, q in CHANCE.items():
        win = 0.7 * q
        truth = win * wins_left / (win * wins_left + 1 - win)
        assert _p(model, lead, 60) == pytest.approx(truth, abs=0.05)
        assert _p(model, lead, 0) == pytest.approx(win * 81 / 141, abs=0.05)   # a stuck deal is never won
    assert _p(model, "Referral", 400) < 0.01             # only the stuck ones are left at 400 days


def test_a_product_with_few_closes_leans_on_every_products_cycles(rows):
    """Three slow Enterprise wins alone would say a 30-day-old Enterprise
    deal has not had time; pulled toward all products' cycles it reads
    between that and Core. An unseen product reads every product's curve."""
    few = pd.DataFrame({"deal_id": ["E1", "E2", "E3"], "snapshot_date": CUTOFF,
                        "created_date": CUTOFF - pd.Timedelta(days=300), "closed_date": CUTOFF - pd.Timedelta(days=10),
                        "won_by_as_of": True, "lead_source": "Referral", "product_type": "Enterprise",
                        "deal_amount": 10_000.0})
    model = _fit(pd.concat([rows, few], ignore_index=True))
    core, enterprise = _p(model, "Referral", 30), _p(model, "Referral", 30, "Enterprise")
    assert 0 < enterprise < core
    every = pd.concat([rows, few], ignore_index=True)
    cycles = (every["closed_date"] - every["created_date"]).dt.days[every["won_by_as_of"]]
    unseen = model.won_survival_[len(model.levels_)]   # the row an unseen product reads
    assert unseen[30] == pytest.approx((cycles > 30).mean())


def test_one_outcome_only_falls_back_to_the_share_won(rows):
    wins = rows[rows["won_by_as_of"]]
    model = _fit(wins)
    assert model.chance_ is None
    assert _p(model, "Referral", 0) == pytest.approx(_p(model, "Outbound", 0)) == pytest.approx(
        len(wins) / (len(wins) + 1), abs=0.01)


def test_no_creation_fact_falls_back_to_the_share_won(rows):
    """Every creation column excluded (a leak guard can take the amount, an
    export may hold no segment): the chance is the share won, the cycles
    still tell old from young."""
    model = Mixture(horizon_days=90).fit(rows)
    assert model.chance_ is None
    frame = pd.DataFrame({"age_days": [0.0, 30.0, 400.0]})
    young, halfway, old = model.predict_proba(frame)[:, 1]
    assert young == pytest.approx(rows["won_by_as_of"].mean(), abs=0.01)
    assert young > halfway > 0.05 > 0.001 > old


# --- As a candidate of the risk model --------------------------------------------
def test_the_mixture_is_a_candidate_only_without_stage_history():
    rules = load_rules().risk
    assert rm.MIXTURE in rules.candidates
    creation = rf.FeatureSpec(rf.CREATION_ONLY, ("lead_source",), ("age_days",))
    staged = rf.FeatureSpec(rf.STAGE_HISTORY, ("lead_source", "stage"), ("age_days", "days_in_stage"))
    seasonal = rf.FeatureSpec(rf.CREATION_ONLY, ("lead_source",), ("age_days",) + rf.CALENDAR_FEATURES)
    for spec in (creation, seasonal):   # where wins bunch at quarter ends, it is read with the clock
        assert rm.candidate_names(rules, spec) == [rm.STACKED, "gradient_boosting", rm.MIXTURE, rm.BLEND]
        assert rm.blend_members(rules, spec) == (rm.STACKED, "gradient_boosting", rm.MIXTURE)
    assert rm.MIXTURE not in rm.candidate_names(rules, staged)
    assert rm.blend_members(rules, staged) == (rm.STACKED, "gradient_boosting")
    only = rules.model_copy(update={"candidates": [rm.MIXTURE]})
    assert rm.blend_members(only, creation) == rm.BLEND_MEMBERS   # a blend needs two members


# --- Stacked under a snapshot learner --------------------------------------------
CYCLES = {"Starter": (10, 50), "Suite": (100, 200)}   # wins' cycles (days) per product; losses take 100-300


def _snapshots(n: int, seed: int) -> pd.DataFrame:
    """Every 20 days of age while open, labelled "won within 90 days". A
    Starter deal's chance is over at 50 days, a Suite deal's starts later:
    age means opposite things per product. ``engaged`` says something of the
    outcome that no creation fact does (much more common on wins)."""
    rng = np.random.default_rng(seed)
    lead, product = rng.choice(list(CHANCE), n), rng.choice(list(CYCLES), n)
    won = rng.random(n) < pd.Series(lead).map(CHANCE).to_numpy()
    low, high = np.array([CYCLES[p] for p in product]).T
    cycle = np.where(won, rng.integers(low, high + 1), rng.integers(100, 301, n))
    created = CUTOFF - pd.to_timedelta(rng.integers(400, 900, n), unit="D")
    deals = pd.DataFrame({"deal_id": [f"S{seed}-{i}" for i in range(n)], "created_date": created,
                          "closed_date": created + pd.to_timedelta(cycle, unit="D"), "won_by_as_of": won,
                          "lead_source": lead, "product_type": product, "deal_amount": 10_000.0, "cycle": cycle})
    rows = deals.loc[deals.index.repeat(np.ceil(cycle / 20).astype(int))].reset_index(drop=True)
    rows["age_days"] = rows.groupby("deal_id").cumcount().to_numpy() * 20.0
    rows["snapshot_date"] = rows["created_date"] + pd.to_timedelta(rows["age_days"], unit="D")
    rows["won"] = (rows["won_by_as_of"] & (rows["cycle"] <= rows["age_days"] + 90)).astype(int)
    rows["engaged"] = (rng.random(len(rows)) < np.where(rows["won_by_as_of"], 0.7, 0.2)).astype(float)
    return rows


def test_a_learner_reading_the_mixtures_odds_ranks_beyond_both():
    """The logistic regression alone adds age and product on the log-odds
    scale and cannot learn that age means opposite things per product; the
    mixture cannot read ``engaged``. Reading the mixture's log odds as one
    more feature, the stacked learner ranks unseen deals above both."""
    from sklearn.metrics import roc_auc_score

    spec = rf.FeatureSpec(rf.CREATION_ONLY, ("lead_source", "product_type"), ("deal_amount", "age_days", "engaged"))
    rules = load_rules().risk
    fit, unseen = _snapshots(3000, seed=3), _snapshots(3000, seed=4)
    auc = {name: roc_auc_score(unseen["won"], rm.fitted_candidate(name, fit, spec, rules, 90)
                               .predict_proba(unseen[spec.columns])[:, 1])
           for name in ("logistic", rm.MIXTURE, rm.STACKED)}
    assert auc[rm.STACKED] > auc["logistic"] + 0.05   # 0.92 against 0.82 and 0.89
    assert auc[rm.STACKED] > auc[rm.MIXTURE] + 0.015
    stacked = rm.fitted_candidate(rm.STACKED, fit, spec, rules, 90)
    odds = stacked.with_odds(unseen[spec.columns])[MIXTURE_ODDS]
    p = stacked.mixture_.predict_proba(unseen[spec.columns])[:, 1].clip(1e-4, 1 - 1e-4)
    np.testing.assert_allclose(odds, np.log(p / (1 - p)))


def test_the_calibration_reads_the_mixtures_log_odds():
    """Starter deals past 50 days are past every win: the mixture says
    almost 0. A sigmoid calibrated on its probabilities lifted every such deal
    to about 5 %; on its log odds they stay near the nothing they win, in the
    mixture and in the logistic regression stacked on it alike."""
    spec = rf.FeatureSpec(rf.CREATION_ONLY, ("lead_source", "product_type"), ("deal_amount", "age_days", "engaged"))
    rules = load_rules().risk
    fit, calibrate, unseen = _snapshots(3000, seed=3), _snapshots(3000, seed=5), _snapshots(3000, seed=4)
    past = (unseen["product_type"] == "Starter") & (unseen["age_days"] > 60)
    assert past.sum() > 500 and unseen.loc[past, "won"].sum() == 0
    for name in (rm.MIXTURE, rm.STACKED):
        model, _ = rm.fit_calibrated(name, fit, calibrate, spec, rules, 90)
        p = rm.predict(model, unseen[spec.columns])
        assert p[past.to_numpy()].mean() < 0.01, name   # on the probabilities: about 0.05 each


def test_where_wins_bunch_at_quarter_ends_the_mixture_is_read_with_the_clock():
    """Windows that reach a quarter's end win three times as often as those
    that do not. The mixture alone cannot tell them apart; read with the
    quarter's clock (and nothing else), its chances follow the truth."""
    from sklearn.metrics import roc_auc_score

    def seasonal(rows, seed):
        ahead, since = rf.quarter_clock(rf.day_numbers(rows["snapshot_date"]))
        rows = rows.assign(**{rf.QUARTER_FEATURE: ahead,
                              rf.QUARTER_AGE_FEATURE: np.maximum(rows["age_days"].to_numpy() - since, -1.0)})
        thinned = np.random.default_rng(seed).random(len(rows)) < 0.3
        return rows.assign(won=(rows["won"].astype(bool) & ((ahead <= 30) | thinned)).astype(int))

    plain = rf.FeatureSpec(rf.CREATION_ONLY, ("lead_source", "product_type"), ("deal_amount", "age_days"))
    clocked = rf.FeatureSpec(rf.CREATION_ONLY, plain.categorical, plain.numeric + rf.CALENDAR_FEATURES)
    rules = load_rules().risk
    fit, unseen = seasonal(_snapshots(3000, seed=3), 1), seasonal(_snapshots(3000, seed=4), 2)
    alone = rm.fitted_candidate(rm.MIXTURE, fit, plain, rules, 30)
    read = rm.fitted_candidate(rm.MIXTURE, fit, clocked, rules, 30)
    assert isinstance(alone, Mixture) and isinstance(read, Stacked)
    reaching = (unseen[rf.QUARTER_FEATURE] <= 30).to_numpy()
    truth = unseen.loc[reaching, "won"].mean() / unseen.loc[~reaching, "won"].mean()
    assert 2.5 < truth < 3.5
    for model, ratio in ((alone, (0.8, 1.25)), (read, (0.8 * truth, 1.25 * truth))):
        p = model.predict_proba(unseen[clocked.columns])[:, 1]
        assert ratio[0] < p[reaching].mean() / p[~reaching].mean() < ratio[1]
    auc = {name: roc_auc_score(unseen["won"], model.predict_proba(unseen[clocked.columns])[:, 1])
           for name, model in (("alone", alone), ("read", read))}
    assert auc["read"] > auc["alone"] + 0.03
