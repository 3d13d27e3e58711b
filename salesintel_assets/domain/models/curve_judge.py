"""Whether the age curve should answer the open deals instead of the model.

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

On long histories the curve ranked the replayed days' open deals a little
better too (three generated CRMs of 12 to 34 months: 0.795 against 0.789,
0.874 against 0.863, and on the 12-month one 0.785 against 0.694), but
its own level read today's 90-day wins 20-43 % high where the model's,
measured on many finished windows, read -3 % to +17 %. So the curve
serves wherever neither the model nor deal age ranked the replayed
days' open deals better beyond the noise (below): at its own level only
where the fit falls short of the open deals' ages (``AgeReach.short``),
elsewhere at the model's (``model_levels``).

A few replayed days of a few hundred open deals each judge AUCs to about
0.01-0.03, so a lead within one standard error of the difference is a tie,
and a tie goes to the curve, the simpler of the two. Judged on the bare
means, outside world 723 as of 2024-09-30 (nine months) kept its gradient
boosting, as the curve read 0.7225 on the one replayed day against 0.7236
for deal age (error 0.028) and 0.7400 for the model (0.021): today the
model ranked the open deals at 0.776, the curve 0.806 (the best achievable
0.807), and served, the 90-day wins read -0.7 % off instead of -6.7 %.

At its own level the curve reads an average day of the quarter: it is
fitted on every deal's cycle, whatever the day. Where wins bunch at
quarter ends, the models read the quarter's clock and the curve is moved
by it as they read it (``clock_levels``). On five generated CRMs nine and
ten months old as of a quarter's last day, the 90-day wins read +10 % to
+29 % high by the curve alone (19 % on average) and -10 % to +14 % moved
(8 %), where the worlds' own chances read -8 % to +3 %.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from salesintel_assets.domain.common import stats
from salesintel_assets.domain.common.rules import RiskRules
from salesintel_assets.domain.models import age_curve
from salesintel_assets.domain.models import features as rf
from salesintel_assets.domain.models import forecast
from salesintel_assets.domain.models import risk_model as rm


# The latest past days the curve is judged on (a month apart by default: a quarter's worth), so every
# training pays for a handful of replays, not the backtest's dozen.
JUDGE_DAYS = 4


@dataclass(frozen=True)
class CurveJudgement:
    candidate: str       # the model kind the curve was judged against
    window_days: int     # the outcome window each replayed day was judged on
    days: int            # replayed past days where both were scored
    curve_auc: float     # mean over those days: the curve's AUC on the deals open then
    model_auc: float     # the model's, retrained then
    age_auc: float       # deal age alone
    own_level: bool = True   # served at its own level (a young CRM's), else moved to the models'
    clock: tuple = ()        # at its own level: (days, log odds) per horizon, the clock's move (``clock_levels``)
    gap_se: float = 0.0      # standard error of model_auc - curve_auc (``auc_gap_se``)
    age_gap_se: float = 0.0  # standard error of age_auc - curve_auc

    @property
    def serves(self) -> bool:
        """Unless the model or deal age ranked the past days' open deals
        better by more than the noise of one standard error of the
        difference (``gap_se``, ``age_gap_se``): the curve, knowing nothing
        of stages or activity, is the simpler of the models, and a tie is
        no evidence for the model's extra parts."""
        return (self.days > 0 and self.model_auc - self.curve_auc <= self.gap_se
                and self.age_auc - self.curve_auc <= self.age_gap_se)

    def sentence(self) -> str:
        if not self.days:
            return ("the age curve was not tried alone: no past day could replay both it and the model "
                    "on deals of both outcomes")
        read = (f"on {self.days} past day{'s' if self.days > 1 else ''} it ranked the deals open then by what they "
                f"did in the next {self.window_days} days at AUC {self.curve_auc:.3f}, against {self.model_auc:.3f} "
                f"for the {self.candidate} model retrained then and {self.age_auc:.3f} for deal age")
        leads = [f"{rival} lead of {auc - self.curve_auc:.3f} is within one standard error of the difference "
                 f"({se:.3f})" for rival, auc, se in (("the model's", self.model_auc, self.gap_se),
                                                      ("deal age's", self.age_auc, self.age_gap_se))
                 if auc > self.curve_auc]
        if self.serves and leads:
            read += f" ({'; '.join(leads)}: a tie is no evidence against the simpler curve)"
        if self.serves and self.own_level:
            clock = "" if not self.clock else (
                ", moved by the day's place in the quarter as the model reads the quarter's clock (odds "
                + ", ".join(f"x{np.exp(shift):.2f} within {days} days" for days, shift in sorted(self.clock)) + ")")
            return ("every open deal's probabilities come from the age curve alone (fitted on every deal known on "
                    f"the analysis date, closed or still open, it knows nothing of stages or activity){clock}, as "
                    f"{read}")
        if self.serves:
            return ("the open deals are ranked by the age curve (fitted on every deal known on the analysis date, "
                    "closed or still open, it knows nothing of stages or activity) at the model's level: each "
                    "horizon's expected wins are the model's, shared out by the curve, as "
                    f"{read}")
        return f"the age curve alone was not served: {read}"


def judge(fact: pd.DataFrame, snapshots: pd.DataFrame, timeline: rf.Timeline, spec: rf.FeatureSpec,
          rules: RiskRules, candidate: str, as_of: pd.Timestamp, replays: dict | None = None) -> CurveJudgement:
    """The curve against ``candidate`` and deal age on the backtest's past
    days (``forecast.replayed``), each fitted on what was known then.
    ``replays`` keeps the model's replays by ``(candidate, day)``, for the
    backtest of the same run to use instead of retraining on those days."""
    cfg = rules.forecast
    scores, gap_ses, age_gap_ses = [], [], []
    for day in forecast.backtest_days(as_of, cfg, JUDGE_DAYS):
        try:
            by_model = forecast.replayed(fact, snapshots, timeline, spec, rules, candidate, day)
            if replays is not None:
                replays[(candidate, day)] = by_model.kept()
            # the same day's open deals, already read (and the day accepted) by the model's replay
            by_curve = forecast.curve_replayed(fact, by_model.deals, timeline, spec, rules, day)
        except rm.NotEnoughData:
            continue
        won = forecast.won_within(by_model.deals, day, cfg.backtest_horizon_days)
        if len(np.unique(won)) < 2:
            continue
        by_age = -by_model.states["age_days"].to_numpy(dtype=float)
        scores.append([roc_auc_score(won, by_curve.p), roc_auc_score(won, by_model.p), roc_auc_score(won, by_age)])
        gap_ses.append(stats.auc_difference_se(won, by_model.p, by_curve.p))
        age_gap_ses.append(stats.auc_difference_se(won, by_age, by_curve.p))
    means = np.mean(scores, axis=0) if scores else [float("nan")] * 3
    return CurveJudgement(candidate, cfg.backtest_horizon_days, len(scores), *(float(m) for m in means),
                          gap_se=auc_gap_se(gap_ses), age_gap_se=auc_gap_se(age_gap_ses))


def auc_gap_se(day_ses: list[float]) -> float:
    """The standard error of a mean over days of an AUC gain over the
    curve, from each day's (``stats.auc_difference_se``), the days taken as
    independent. Days a month apart share many open deals, so this
    understates the noise a little: it leans toward the curve's rival."""
    if not day_ses:
        return 0.0
    return float(np.sqrt(np.nansum(np.square(day_ses))) / len(day_ses))


def settled(training: rm.Training, prepared: rf.Prepared, rules: RiskRules,
            replays: dict | None = None) -> rm.Training:
    """``training`` with the age curve serving where it was judged better
    (``CurveJudgement.serves``): at its own level where the fit falls short
    of the open deals' ages (``AgeReach.short``: the models' level rests on
    young states too), moved by the quarter's clock where a usable model
    reads one (``clock_levels``), else at the models' served level, each horizon's
    expected wins among today's open deals kept (``model_levels``). The
    judgement is kept either way; the model's replays in ``replays``
    (``judge``)."""
    model = training.model
    if model is None:
        return training
    judgement = judge(prepared.fact, prepared.snapshots, prepared.timeline, prepared.spec, rules,
                      training.chosen.name, prepared.as_of, replays)
    if not judgement.serves:
        return replace(training, curve_judgement=judgement)
    own_level = training.age_reach is not None and training.age_reach.short
    curve = model.age_curve if model.age_curve is not None else \
        age_curve.fitted(rm.mixture_for(prepared.spec, rules), prepared.fact, prepared.as_of, rules.max_fit_rows,
                         rules.seed)
    # a model no better than deal age serves no probability, so its reading of the clock is not taken either
    usable = training.verdict is not None and training.verdict.usable
    clock = clock_levels(model, curve, prepared, rules.seed) if own_level and usable else None
    served = rm.HorizonModel(model.horizons, model.models, model.main, model.levels, model.calibration_levels,
                             model.trend_levels, curve, model.reach_ages, curve_serves=True,
                             curve_levels=clock if own_level else model_levels(model, curve, prepared),
                             curve_by_clock=clock is not None, cohort_levels=model.cohort_levels)
    judgement = replace(judgement, own_level=own_level, clock=tuple(zip(model.horizons, clock or ())))
    return replace(training, model=served, curve_judgement=judgement)


def model_levels(model: rm.HorizonModel, curve, prepared: rf.Prepared) -> list[float]:
    """Per horizon of ``model``: the log-odds shift that brings the curve's
    expected wins among today's open deals to the model's."""
    deals = rf.open_deals(prepared.fact, prepared.as_of)
    if not len(deals):
        return [0.0] * len(model.horizons)
    states = rf.open_states(deals, prepared.timeline, prepared.spec, prepared.as_of)
    by_model = model.horizon_probabilities(states)
    return [_shift_to(curve.within(states, days), float(by_model[days].sum())) for days in model.horizons]


def _shift_to(p: np.ndarray, wins: float) -> float:
    """The log-odds shift that brings the expected wins of chances ``p`` to
    ``wins`` (0 where none can)."""
    shift = stats.level_shift(p, wins)
    return float(shift) if np.isfinite(shift) else 0.0


CLOCK_DEALS = 5000       # open deals the clock's move is read on (a random sample of more)
CLOCK_STEP_DAYS = 7      # the quarter's days it is averaged over, a week apart


def clock_levels(model: rm.HorizonModel, curve, prepared: rf.Prepared, seed: int = 0) -> list[float] | None:
    """Per horizon of ``model``: the log-odds shift that moves the curve's
    expected wins among today's open deals as the models' move between
    today's place in the quarter and the quarter's average (the same deals,
    the clock moved back a week at a time over a quarter); None where the
    models read no quarter clock (wins do not bunch at quarter ends).

    A quarter's last day is no average day where wins bunch: many deals due
    to close early next quarter were pulled in and closed already, and a
    90-day window ends before the next quarter's last days. Mid-quarter the
    move is small: x1.04 and x1.07 in the 90-day odds on two such worlds,
    whose 90-day wins the curve alone read -0.4 % and -6.1 % off, and
    moved +2.3 % and -1.4 %."""
    if rf.QUARTER_FEATURE not in prepared.spec.numeric:
        return None
    deals = rf.open_deals(prepared.fact, prepared.as_of)
    if not len(deals):
        return None
    if len(deals) > CLOCK_DEALS:
        deals = deals.sample(CLOCK_DEALS, random_state=seed)
    states = rf.open_states(deals, prepared.timeline, prepared.spec, prepared.as_of)
    today, age = rf.day_numbers([prepared.as_of])[0], states["age_days"].to_numpy()
    fiscal_start = prepared.spec.fiscal_start_month

    def on(day):   # the same deals, as the models read them with the clock on ``day``
        return model.horizon_probabilities(states.assign(**rf.clock_columns(day, age, fiscal_start)))
    by_day = [on(today - back) for back in range(0, rf.QUARTER_DAYS, CLOCK_STEP_DAYS)]
    shifts = []
    for days in model.horizons:
        ratio = by_day[0][days].sum() / np.mean([p[days].sum() for p in by_day])
        own = curve.within(states, days)
        shifts.append(_shift_to(own, ratio * own.sum()))
    return shifts
