"""The verdict over more than one out-of-time period: the gain over a
baseline is ranked within each period and averaged, every period counts
only deals the fit never saw, and a lead that one period shows and the
other does not is judged on the mean, with its bound."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from salesintel_assets.domain.common.rules import load_rules
from salesintel_assets.domain.ingestion import pulls as ingestion
from salesintel_assets.domain.ingestion import quality
from salesintel_assets.domain.models import features as rf
from salesintel_assets.domain.models import risk_model as rm
from salesintel_assets.domain.models import verdict
from salesintel_assets.domain.warehouse import upserts as warehouse
from salesintel_assets_tests.models.test_ranking_features import NO_ACTIVITIES, NO_HISTORY, _lingering_fact
from salesintel_assets_tests.skygeni_like import skygeni_like_export

AGE = verdict.AGE_BASELINE


def _fold(name, won, model, base, deals):
    rows = pd.DataFrame({"deal_id": deals, "won": won})
    return verdict.ValidationFold(name, rows, np.asarray(model, float), {AGE: np.asarray(base, float)})


def test_gain_is_ranked_within_each_period_not_across_them():
    """A model that only knows which period is busier looks good on the pooled
    rows and has no gain within either period."""
    rng = np.random.default_rng(3)
    n = 4000
    folds = []
    for k, (rate, level) in enumerate(((0.5, 0.8), (0.1, 0.2))):
        won = (rng.random(n) < rate).astype(int)
        age = rng.uniform(0, 1, n)
        folds.append(_fold(f"p{k}", won, level + 0.01 * age, age, [f"{k}-{i}" for i in range(n)]))
    mean, per = verdict.fold_gain(folds, AGE)
    assert per == [pytest.approx(0.0), pytest.approx(0.0)]      # within a period it ranks exactly like age
    assert not verdict.fold_gain_lower_bound(folds, AGE, seed=1) > 0
    pooled = pd.concat([f.rows for f in folds])
    scores = [np.concatenate([f.model for f in folds]), np.concatenate([f.baselines[AGE] for f in folds])]
    # pooled, it would pass
    assert verdict.auc_gain_lower_bound(pooled["won"], *scores, pooled["deal_id"], seed=1) > 0.2


def test_a_real_lead_in_both_periods_has_a_positive_lower_bound():
    rng = np.random.default_rng(4)
    folds = []
    for k in range(2):
        n = 3000
        signal, age = rng.normal(size=n), rng.normal(size=n)
        won = (rng.random(n) < 1 / (1 + np.exp(-(signal + age)))).astype(int)
        folds.append(_fold(f"p{k}", won, signal + age, age, [f"{k}-{i}" for i in range(n)]))
    mean, per = verdict.fold_gain(folds, AGE)
    assert min(per) > 0.05 and verdict.fold_gain_lower_bound(folds, AGE, seed=1) > 0.05


def test_one_deal_in_both_periods_is_resampled_as_one():
    """Deals, not rows, are resampled: the same deals in both periods widen the
    bound compared with as many distinct deals."""
    rng = np.random.default_rng(5)
    n = 400
    noise, age = rng.normal(size=n), rng.normal(size=n)
    won = (rng.random(n) < 1 / (1 + np.exp(-age))).astype(int)
    model = age + 0.3 * noise
    same = [_fold(f"p{k}", won, model, age, [f"d{i}" for i in range(n)]) for k in range(2)]
    distinct = [_fold(f"p{k}", won, model, age, [f"{k}-{i}" for i in range(n)]) for k in range(2)]
    assert verdict.fold_gain(same, AGE)[0] == pytest.approx(verdict.fold_gain(distinct, AGE)[0])
    assert verdict.fold_gain_lower_bound(same, AGE, seed=2) < verdict.fold_gain_lower_bound(distinct, AGE, seed=2)


def test_the_verdict_counts_only_deals_the_fit_never_saw():
    rules = load_rules().risk
    fact = _lingering_fact(np.random.default_rng(21), 900, signal=1.0)
    prepared = rf.prepare(fact, NO_HISTORY, NO_ACTIVITIES, pd.Timestamp("2025-12-31"), rules, ["Proposal", "Closed"])
    training = rm.train(prepared, rules)
    split = training.split
    p = rm.predict(training.chosen.model, split.validate[prepared.spec.columns])
    folds = rm.validation_folds(split, training.chosen, prepared.spec, rules, p, rm.baseline_predictions(split, rules))
    assert [f.name for f in folds] == ["calibrate", "validate"]
    for fold, period in zip(folds, (split.calibrate, split.validate)):
        assert len(fold.rows) > 100 and not fold.rows["deal_id"].isin(split.fit["deal_id"]).any()
        assert period["deal_id"].isin(split.fit["deal_id"]).any()      # there were such deals to leave out
        assert len(fold.model) == len(fold.rows) == len(fold.baselines[AGE])
    # each other horizon's validation period too, and the verdict's figures are those of the unseen deals
    assert [f.name for f in training.folds] == ["calibrate", "validate", "validate 30d", "validate 90d"]
    for fold, days in zip(training.folds[2:], (30, 90)):
        part = rm.sampled_for_fit(rm.time_split(prepared.rows_for(days), prepared.labelled, rules),
                                  rules.max_fit_rows, rules.seed)
        assert len(fold.rows) > 100 and not fold.rows["deal_id"].isin(part.fit["deal_id"]).any()
    unseen = folds[1]
    assert f"on {len(unseen.rows):,} validation snapshots of deals the fit never saw" in training.verdict.reason
    assert f"AUC {roc_auc_score(unseen.rows['won'], unseen.model):.3f}" in training.verdict.reason
    assert "pooled over 4 validation sets" in training.verdict.reason and training.verdict.usable, training.verdict.reason


def test_an_export_without_signal_cut_at_a_date_is_no_better_than_deal_age():
    """The SkyGeni-shaped export as its CRM stood on 2023-09-30: every deal
    open then closes within 120 days, won or lost at random. Judged on the
    validation rows of deals the fit had seen, with their outcome in its
    labels, gradient boosting learnt the deals themselves (amount, rep and
    segment) and "beat" deal age by 0.04 AUC."""
    rules = load_rules()
    as_of = pd.Timestamp("2023-09-30")
    export = skygeni_like_export()
    export = export[pd.to_datetime(export["created_date"]) <= as_of]
    later = pd.to_datetime(export["closed_date"]) > as_of
    export = export.assign(closed_date=export["closed_date"].where(~later, ""),
                           sales_cycle_days=export["sales_cycle_days"].where(~later, ""),
                           outcome=export["outcome"].where(~later, "Open"),
                           deal_stage=export["deal_stage"].where(~later | (export["deal_stage"] != "Closed"),
                                                                 "Negotiation"))
    clean = quality.validate_deals(ingestion.conform_raw(export), rules).clean
    fact = warehouse.build_fact_deals(clean, NO_HISTORY, NO_ACTIVITIES, rules, as_of)
    prepared = rf.prepare(fact, NO_HISTORY, NO_ACTIVITIES, as_of, rules.risk, rules.stages.order, rules.anomalies)
    training = rm.train(prepared, rules.risk)
    assert {c.name for c in training.candidates} == {rm.STACKED, "gradient_boosting", rm.MIXTURE, rm.BLEND}
    assert not training.verdict.usable and training.verdict.reason.startswith("no better than"), \
        training.verdict.reason


BASE = {AGE: {"auc": 0.840, "log_loss": 0.315}}


def test_verdict_reads_the_mean_gain_over_periods():
    rules = load_rules().risk
    metrics = {"auc": 0.851, "log_loss": 0.309}           # +0.011 on the last period alone
    usable = verdict.judge(metrics, BASE, rules, 9000, {AGE: 0.004}, {AGE: 0.016}, periods=2)
    assert usable.usable and "+0.016 over deal age" in usable.reason
    # the last period's lead alone would pass; the mean over both periods does not
    weak = verdict.judge(metrics, BASE, rules, 9000, {AGE: 0.001}, {AGE: 0.004}, periods=2)
    assert not weak.usable and weak.reason.startswith("no better than deal age: ")
    assert "gain pooled over 2 validation sets +0.004" in weak.reason
    chance = verdict.judge(metrics, BASE, rules, 9000, {AGE: -0.002}, {AGE: 0.016}, periods=2)
    assert not chance.usable and chance.reason.startswith("no better than deal age beyond chance")


def test_verdict_on_bad_input_is_weak_with_a_reason():
    rules = load_rules().risk
    metrics = {"auc": 0.851, "log_loss": 0.309}
    assert not verdict.judge(metrics, BASE, rules, 9000, {AGE: float("nan")}, {AGE: float("nan")}, periods=2).usable
    worse_loss = verdict.judge({"auc": 0.9, "log_loss": 0.4}, BASE, rules, 9000, {AGE: 0.05}, {AGE: 0.06}, periods=2)
    assert not worse_loss.usable and "log loss 0.4000 vs 0.3150" in worse_loss.reason
    nothing = verdict.judge({"auc": float("nan"), "log_loss": 0.3}, BASE, rules, 0)
    assert not nothing.usable and nothing.reason == "no validation AUC (one outcome only)"


# --- Which candidate: the blend unless another is clearly better ---------------------
def _candidate(name, p, y):
    from salesintel_assets.domain.models import drift

    return rm.Candidate(name, None, "sigmoid", drift.evaluate(y, p), {}, np.asarray(p, float))


def _validation(n_deals=300, rows_per_deal=5, seed=7):
    rng = np.random.default_rng(seed)
    truth = np.repeat(rng.uniform(0.05, 0.6, n_deals), rows_per_deal)
    y = (rng.random(len(truth)) < truth).astype(int)
    rows = pd.DataFrame({"deal_id": np.repeat([f"d{i}" for i in range(n_deals)], rows_per_deal), "won": y})
    return rows, truth, rng


def test_the_blend_is_kept_when_another_candidate_is_better_only_by_noise():
    rows, truth, rng = _validation()
    noisy = lambda: np.clip(truth + rng.normal(0, 0.03, len(truth)), 0.01, 0.99)  # noqa: E731
    logistic, blend = _candidate("logistic", noisy(), rows["won"]), _candidate(rm.BLEND, noisy(), rows["won"])
    if logistic.metrics["log_loss"] > blend.metrics["log_loss"]:      # make the member the validation's pick
        logistic, blend = _candidate("logistic", blend.validation_p, rows["won"]), \
            _candidate(rm.BLEND, logistic.validation_p, rows["won"])
    assert logistic.metrics["log_loss"] < blend.metrics["log_loss"]
    assert rm.choose([logistic, blend], "log_loss").name == "logistic"          # without the rows: plain minimum
    assert rm.choose([logistic, blend], "log_loss", rows).name == rm.BLEND


def test_a_clearly_better_candidate_beats_the_blend():
    rows, truth, rng = _validation()
    good = _candidate("gradient_boosting", truth, rows["won"])
    poor = _candidate(rm.BLEND, np.full(len(truth), rows["won"].mean()), rows["won"])
    assert rm.choose([good, poor], "log_loss", rows).name == "gradient_boosting"
    assert rm.choose([good, poor], "brier", rows).name == "gradient_boosting"
    assert rm.choose([good, poor], "auc", rows).name == "gradient_boosting"   # no row loss: plain best


def test_choice_on_bad_input_falls_back_to_the_blend_or_the_plain_best():
    rows, truth, _ = _validation()
    good = _candidate("logistic", truth, rows["won"])
    blend = _candidate(rm.BLEND, np.full(len(truth), 0.3), rows["won"])
    unscored = rm.Candidate("logistic", None, "sigmoid", good.metrics)        # no validation probabilities kept
    assert rm.choose([unscored, blend], "log_loss", rows).name == rm.BLEND
    assert rm.choose([good, blend], "log_loss", rows.iloc[:0]).name == rm.BLEND
    assert rm.choose([good], "log_loss", rows).name == "logistic"              # no blend among the candidates
