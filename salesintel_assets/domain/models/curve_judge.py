"""Whether the age curve alone should answer a young CRM's open deals.

On a young CRM the models are fitted on the earliest labelled states and
judged on the next ones, all of them young (``risk_model.AgeReach``). The
age curve (``age_curve``: the mixture fitted on every deal known on the
analysis date, open ones counted as open so far) learns from the whole
history up to today instead. The validation cannot judge it, as it is
fitted after the validation's outcomes. A replay can: on each past day of
the backtest, the model kind retrained on what was known then and the
curve fitted on what was known then both score every deal open then, and
what those deals did in the next 90 days judges them.

On four generated CRMs eight to ten months old (outside-world seeds 573,
576, 577 and 579), the curve ranked the open deals better than the
retrained gradient boosting on every past day where both could be
replayed (AUC 0.741 against 0.705, 0.718 against 0.683, 0.778 against
0.750, 0.721 against 0.664 on the latest), and served today it ranked the
open deals at 0.781, 0.785, 0.823 and 0.719 where the models, with the curve
past their reach, ranked 0.753, 0.749, 0.791 and 0.674.

The curve serves only where the fit falls short of the open deals' ages
(``AgeReach.short``) and it ranked the replayed days' open deals better
than both the model and deal age; elsewhere nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from salesintel_assets.domain.common.rules import RiskRules
from salesintel_assets.domain.models import features as rf
from salesintel_assets.domain.models import forecast
from salesintel_assets.domain.models import risk_model as rm


@dataclass(frozen=True)
class CurveJudgement:
    candidate: str       # the model kind the curve was judged against
    window_days: int     # the outcome window each replayed day was judged on
    days: int            # replayed past days where both were scored
    curve_auc: float     # mean over those days: the curve's AUC on the deals open then
    model_auc: float     # the model's, retrained then
    age_auc: float       # deal age alone

    @property
    def serves(self) -> bool:
        return self.days > 0 and self.curve_auc > max(self.model_auc, self.age_auc)

    def sentence(self) -> str:
        if not self.days:
            return ("the age curve was not tried alone: no past day could replay both it and the model "
                    "on deals of both outcomes")
        read = (f"on {self.days} past day{'s' if self.days > 1 else ''} it ranked the deals open then by what they "
                f"did in the next {self.window_days} days at AUC {self.curve_auc:.3f}, against {self.model_auc:.3f} "
                f"for the {self.candidate} model retrained then and {self.age_auc:.3f} for deal age")
        if self.serves:
            return ("every open deal's probabilities come from the age curve alone (fitted on every deal known on "
                    "the analysis date, closed or still open, it knows nothing of stages or activity), as "
                    f"{read}")
        return f"the age curve alone was not served: {read}"


def judge(fact: pd.DataFrame, snapshots: pd.DataFrame, timeline: rf.Timeline, spec: rf.FeatureSpec,
          rules: RiskRules, candidate: str, as_of: pd.Timestamp) -> CurveJudgement:
    """The curve against ``candidate`` and deal age on the backtest's past
    days (``forecast.replayed``), each fitted on what was known then."""
    cfg = rules.forecast
    scores = []
    for k in range(cfg.backtest_dates):
        day = pd.Timestamp(as_of) - pd.Timedelta(days=cfg.backtest_horizon_days + k * cfg.backtest_step_days)
        try:
            by_model = forecast.replayed(fact, snapshots, timeline, spec, rules, candidate, day)
            by_curve = forecast.replayed(fact, snapshots, timeline, spec, rules, candidate, day, curve_serves=True)
        except rm.NotEnoughData:
            continue
        won = forecast.won_within(by_model.deals, day, cfg.backtest_horizon_days)
        if len(np.unique(won)) < 2:
            continue
        scores.append([roc_auc_score(won, by_curve.p), roc_auc_score(won, by_model.p),
                       roc_auc_score(won, -by_model.states["age_days"].to_numpy(dtype=float))])
    means = np.mean(scores, axis=0) if scores else [float("nan")] * 3
    return CurveJudgement(candidate, cfg.backtest_horizon_days, len(scores), *(float(m) for m in means))


def settled(training: rm.Training, prepared: rf.Prepared, rules: RiskRules) -> rm.Training:
    """``training`` with the age curve serving alone where its fit falls
    short of the open deals' ages and the curve judged better
    (``CurveJudgement.serves``); the judgement is kept either way."""
    model = training.model
    if model is None or model.age_curve is None:   # the curve is fitted only where the fit falls short
        return training
    judgement = judge(prepared.fact, prepared.snapshots, prepared.timeline, prepared.spec, rules,
                      training.chosen.name, prepared.as_of)
    if judgement.serves:
        model = rm.HorizonModel(model.horizons, model.models, model.main, model.levels, model.calibration_levels,
                                model.trend_levels, model.age_curve, model.reach_ages, curve_serves=True)
    return replace(training, model=model, curve_judgement=judgement)
