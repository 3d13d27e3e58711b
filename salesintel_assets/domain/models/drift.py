"""How good are predicted win probabilities: discrimination (AUC), accuracy
(Brier, log loss), calibration (expected calibration error, observed vs
predicted win rate), and the live check of the champion on what happened
after it was deployed.

Each horizon the champion answers (won within 30, 90, H days) is judged on
its own matured outcomes (``matured_outcomes``): every deal the champion
scored -- open on its deployment day or created after it -- as it looked on
the first day it was scored, whose window from that day has ended by the
analysis date, labelled "won within the window" (a deal lost or still open
counts as not won). Judging a 90-day probability on eventual outcomes would
call a well-calibrated model degraded whenever deals close late. One
prediction per deal, so deals are independent and the calibration test is a
plain Poisson-binomial z-test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

LOWER_IS_BETTER = ("log_loss", "brier", "ece")
CALIBRATION_BINS = 10


def expected_calibration_error(y, p, bins: int = CALIBRATION_BINS) -> float:
    """Weighted mean |observed rate - mean prediction| over equal-width
    probability bins: 0.03 means predictions are off by 3 points on average."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    if not len(y):
        return float("nan")
    which = np.minimum((p * bins).astype(int), bins - 1)
    counts = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, y, bins) - np.bincount(which, p, bins))
    return float(gap.sum() / counts.sum())


def calibration_table(y, p, bins: int = CALIBRATION_BINS) -> pd.DataFrame:
    """Per probability bin: rows, mean prediction, observed win rate."""
    frame = pd.DataFrame({"y": np.asarray(y, float), "p": np.asarray(p, float)})
    frame["bin"] = np.minimum((frame["p"] * bins).astype(int), bins - 1)
    out = frame.groupby("bin").agg(rows=("y", "size"), predicted=("p", "mean"), observed=("y", "mean"))
    out.index = [f"{b / bins:.1f}-{(b + 1) / bins:.1f}" for b in out.index]
    return out.rename_axis("probability").reset_index()


def evaluate(y, p) -> dict:
    """AUC, Brier score, log loss, ECE, and observed vs mean predicted rate."""
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    y, p = np.asarray(y, dtype=int), np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    out = {"rows": int(len(y)), "observed_rate": float(y.mean()) if len(y) else float("nan"),
           "predicted_rate": float(p.mean()) if len(y) else float("nan")}
    if len(y) == 0 or len(np.unique(y)) < 2:
        return out | {"auc": float("nan"), "brier": float("nan"), "log_loss": float("nan"), "ece": float("nan")}
    return out | {"auc": float(roc_auc_score(y, p)), "brier": float(brier_score_loss(y, p)),
                  "log_loss": float(log_loss(y, p, labels=[0, 1])), "ece": expected_calibration_error(y, p)}


def loss(metrics: dict, metric: str) -> float:
    """A number where lower is better, for any promotion metric."""
    value = metrics[metric]
    if value != value:  # NaN never wins
        return float("inf")
    return value if metric in LOWER_IS_BETTER else -value


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    challenger_score: float
    champion_score: float | None


def champion_decision(challenger: dict, champion: dict | None, metric: str, min_improvement: float) -> Decision:
    """The challenger becomes champion only if it beats the champion on the
    same validation rows by more than ``min_improvement``."""
    new = challenger[metric]
    if champion is None:
        return Decision(True, "no champion yet", new, None)
    old = champion[metric]
    gain = loss(champion, metric) - loss(challenger, metric)
    if gain > min_improvement:
        return Decision(True, f"challenger {metric} {new:.4f} beats champion {old:.4f}", new, old)
    return Decision(False, f"champion kept: challenger {metric} {new:.4f} vs champion {old:.4f}", new, old)


def auc_standard_error(auc: float, positives: int, negatives: int) -> float:
    """Hanley & McNeil (1982) standard error of an AUC."""
    if positives < 1 or negatives < 1:
        return float("nan")
    q1, q2 = auc / (2 - auc), 2 * auc ** 2 / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc ** 2) + (negatives - 1) * (q2 - auc ** 2)) / (
        positives * negatives)
    return float(np.sqrt(max(var, 0.0)))


def live_check(y, p, validation_auc: float | None, min_deals: int, max_auc_drop: float,
               max_calibration_gap: float, alpha: float) -> dict:
    """The champion's predictions for deals whose outcome (within the
    horizon judged) is known, against it. Degraded when AUC fell more than ``max_auc_drop`` below the
    validation AUC and beyond its one-sided ``alpha`` noise, or when the
    observed win rate differs from the predicted one by more than
    ``max_calibration_gap`` *and* significantly (z-test on the
    Poisson-binomial variance). Fewer than ``min_deals``: no verdict."""
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    metrics = evaluate(y, p)
    out = {"new_deals": int(len(y)), "won": int(y.sum()), "expected_won": float(p.sum()),
           "live_auc": metrics["auc"], "live_brier": metrics["brier"], "live_log_loss": metrics["log_loss"],
           "live_ece": metrics["ece"], "observed_rate": metrics["observed_rate"],
           "predicted_rate": metrics["predicted_rate"], "validation_auc": validation_auc,
           "calibration_p_value": float("nan"), "degraded": False}
    if len(y) < min_deals:
        return out | {"status": "not enough data",
                      "reason": f"{len(y)} deals with a finished window; at least {min_deals} needed for a verdict"}
    var = float((p * (1 - p)).sum())
    z = (y.sum() - p.sum()) / np.sqrt(var) if var > 0 else 0.0
    out["calibration_p_value"] = float(2 * sps.norm.sf(abs(z)))
    gap = out["observed_rate"] - out["predicted_rate"]
    reasons = []
    live_auc = metrics["auc"]
    if validation_auc is not None and live_auc == live_auc:
        se = auc_standard_error(live_auc, int(y.sum()), int(len(y) - y.sum()))
        out["live_auc_se"] = se
        # a drop must be material *and* beyond what this many deals could show by chance
        if validation_auc - live_auc > max(max_auc_drop, sps.norm.isf(alpha) * se):
            reasons.append(f"AUC fell from {validation_auc:.3f} to {live_auc:.3f} (se {se:.3f})")
    if abs(gap) > max_calibration_gap and out["calibration_p_value"] < alpha:
        reasons.append(f"observed win rate {out['observed_rate']:.1%} vs predicted {out['predicted_rate']:.1%} "
                       f"(p={out['calibration_p_value']:.2g})")
    out["degraded"] = bool(reasons)
    out["status"] = "degraded" if reasons else "ok"
    out["reason"] = "; ".join(reasons) or (f"AUC {metrics['auc']:.3f}, observed {out['observed_rate']:.1%} "
                                            f"vs predicted {out['predicted_rate']:.1%}")
    return out


def matured_outcomes(fact: pd.DataFrame, as_of: pd.Timestamp, deployed: pd.Timestamp, horizon_days: int,
                     timeline, spec) -> tuple[pd.DataFrame, np.ndarray]:
    """(features, won within ``horizon_days``) of every deal the champion
    scored whose window has ended: open on ``deployed`` or created after it,
    as it looked on the first day it was scored (the deployment day, or
    creation if later), that day no later than ``as_of - horizon_days``. A
    deal still open, or closed after its window, counts as not won."""
    from salesintel_assets.domain.models import features as rf

    if not window_ended(deployed, as_of, horizon_days):   # nothing can have matured: no data needed
        return pd.DataFrame({c: pd.Series(dtype=object) for c in spec.columns}), np.zeros(0, dtype=int)
    deals = rf.trustworthy_deals(fact, as_of)
    first = np.maximum(rf.day_numbers(deals["created_date"]), rf.day_numbers([deployed])[0])
    ends = rf.day_numbers(deals["closed_date"])          # still open: a very large day number
    keep = (first <= rf.day_numbers([as_of])[0] - horizon_days) & (ends > first)
    deals, first, ends = deals[keep].reset_index(drop=True), first[keep], ends[keep]
    won = deals["is_won"].to_numpy(dtype=bool) & (ends <= first + horizon_days)
    return rf.states_at(deals, first, timeline, spec), won.astype(int)


def window_ended(deployed: pd.Timestamp, as_of: pd.Timestamp, horizon_days: int) -> bool:
    """Whether a ``horizon_days`` window of a deal scored on or after ``deployed`` can have ended by ``as_of``."""
    return pd.Timestamp(deployed).normalize() <= pd.Timestamp(as_of).normalize() - pd.Timedelta(days=horizon_days)


def judged_horizons(model, tags: dict, rules) -> list[int]:
    """The horizons the champion answers (its main one when it has no others)."""
    return sorted(getattr(model, "horizons", None) or [int(tags.get("win_horizon_days", rules.win_horizon_days))])


def horizon_checks(model, tags: dict, fact: pd.DataFrame, as_of: pd.Timestamp, deployed: pd.Timestamp, timeline,
                   spec, rules) -> list[dict]:
    """``live_check`` for each horizon the champion answers (``model.horizons``;
    a model without them answers its main horizon only), on that horizon's
    matured outcomes, against the validation AUC its version recorded for it
    (tags ``validation_auc_<days>d``; ``validation_auc`` for the main one)."""
    from salesintel_assets.domain.models import risk_model as rm

    main = int(tags.get("win_horizon_days", rules.win_horizon_days))
    horizons = getattr(model, "horizons", None)
    out = []
    for days in judged_horizons(model, tags, rules):
        features, won = matured_outcomes(fact, as_of, deployed, days, timeline, spec)
        p = np.zeros(0)
        if len(won):
            p = rm.predict_horizons(model, features)[days] if horizons else rm.predict(model, features)
        recorded = tags.get(f"validation_auc_{days}d", tags.get("validation_auc") if days == main else None)
        validation_auc = float(recorded) if recorded is not None else float("nan")
        check = live_check(won, p, validation_auc if validation_auc == validation_auc else None,
                           rules.drift.min_new_deals, rules.drift.max_auc_drop, rules.drift.max_calibration_gap,
                           rules.drift.alpha)
        if not len(won):
            check["reason"] = (f"no {days}-day window since the champion was deployed on {deployed:%Y-%m-%d} has "
                               "ended yet")
        out.append(check | {"horizon_days": days})
    return out
