"""The risk model's verdict: the two baselines it must beat (deal age alone,
the segment win rate), the out-of-time validation sets it is ranked on, the
AUC gain over a baseline pooled over those sets with a bootstrap lower
bound over deals, and the verdict itself ("usable" or "weak", in words).

Plain statistics on arrays and frames: ``risk_model`` fits the candidates
and the baselines and builds the validation sets; this module judges them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from salesintel_assets.domain.common import stats
from salesintel_assets.domain.common.rules import RiskRules
from salesintel_assets.domain.models import drift

@dataclass
class SegmentBaseline:
    """Each snapshot gets its segment's historical rate of the target, shrunk
    to the overall rate so small segments do not swing (empirical Bayes)."""

    columns: list[str]
    rates: pd.Series
    overall: float

    @classmethod
    def fit(cls, rows: pd.DataFrame, columns: list[str]) -> "SegmentBaseline":
        columns = [c for c in columns if c in rows]
        overall = float(rows["won"].mean())
        if not columns:
            return cls([], pd.Series(dtype=float), overall)
        table = rows.groupby(columns, observed=True)["won"].agg(["sum", "size"])
        strength = stats.beta_prior_strength(table["sum"], table["size"])
        rates = pd.Series(stats.shrunk_rate(table["sum"], table["size"], overall, strength), index=table.index)
        return cls(list(columns), rates, overall)

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        if not len(rows):
            return np.zeros(0)
        if not self.columns:
            return np.full(len(rows), self.overall)
        keys = pd.MultiIndex.from_frame(rows[self.columns]) if len(self.columns) > 1 else rows[self.columns[0]]
        return pd.Series(self.rates.reindex(keys).to_numpy()).fillna(self.overall).to_numpy()


@dataclass
class AgeBaseline:
    """Deal age alone: the historical rate of the target per age decile,
    read as a curve through the deciles' median ages (interpolated between
    them), so the baseline ranks deals by age as finely as the data allow.
    Ten flat steps would tie most validation pairs and hand the model an
    easy win (about 0.002-0.003 AUC on the study's worlds, measured)."""

    ages: np.ndarray
    rates: np.ndarray

    @classmethod
    def fit(cls, rows: pd.DataFrame, bins: int = 10) -> "AgeBaseline":
        age = rows["age_days"].to_numpy(dtype=float)
        overall = float(rows["won"].mean()) if len(rows) else 0.5
        if not len(age):
            return cls(np.zeros(1), np.array([overall]))
        edges = np.unique(np.quantile(age, np.linspace(0, 1, bins + 1)[1:-1]))
        which = np.searchsorted(edges, age, side="right")
        won = np.bincount(which, rows["won"].to_numpy(dtype=float), len(edges) + 1)
        size = np.bincount(which, minlength=len(edges) + 1)
        keep = size > 0
        middle = np.array([np.median(age[which == k]) if size[k] else np.nan for k in range(len(edges) + 1)])
        return cls(middle[keep], ((won + overall) / (size + 1))[keep])  # one pseudo-row keeps a bin near the mean

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        return np.interp(rows["age_days"].to_numpy(dtype=float), self.ages, self.rates)


AGE_BASELINE, SEGMENT_BASELINE = "deal age", "the segment win rate"


GAIN_DRAWS = 200


@dataclass
class ValidationFold:
    """One out-of-time period on which the model and the baselines are
    ranked: rows (deal_id, won), the model's scores and each baseline's, all
    from fits on snapshots before the period."""

    name: str
    rows: pd.DataFrame
    model: np.ndarray
    baselines: dict[str, np.ndarray]

    def evaluate(self, baseline: str | None = None) -> dict:
        """The model's metrics on the period (a baseline's, when named)."""
        return drift.evaluate(self.rows["won"], self.model if baseline is None else self.baselines[baseline])


VALIDATE = "validate"   # the main horizon's validation period among the verdict sets


def validation_fold(folds: list[ValidationFold]) -> ValidationFold | None:
    """The main horizon's validation period (its deals the fit never saw)."""
    return next((f for f in folds if f.name == VALIDATE), None)


def _fold_arrays(folds: list[ValidationFold], baseline: str):
    rows = pd.concat([f.rows[["deal_id", "won"]] for f in folds], ignore_index=True)
    which = np.concatenate([np.full(len(f.rows), k) for k, f in enumerate(folds)])
    model = np.concatenate([np.asarray(f.model, dtype=float) for f in folds])
    base = np.concatenate([np.asarray(f.baselines[baseline], dtype=float) for f in folds])
    return rows["won"].to_numpy(dtype=float), model, base, rows["deal_id"], which


def fold_gain(folds: list[ValidationFold], baseline: str) -> tuple[float, list[float]]:
    """The AUC gain over ``baseline`` pooled over the periods (each period's
    gain weighted by its deals), and each period's gain."""
    y, model, base, deals, which = _fold_arrays(folds, baseline)
    levels = _fold_levels(model, base, which, deals)
    return _pooled(y, np.ones(len(y)), levels), [g for g, _ in _gains(y, np.ones(len(y)), levels)]


def fold_gain_lower_bound(folds: list[ValidationFold], baseline: str, seed: int, level: float = 0.95) -> float:
    """The one-sided lower bound of the pooled gain, from one bootstrap over
    deals shared by all periods (a deal's snapshots move together, in
    whichever period they fall)."""
    y, model, base, deals, which = _fold_arrays(folds, baseline)
    return auc_gain_lower_bound(y, model, base, deals, seed, level, folds=which)


def _fold_levels(model, base, which, deals) -> list[tuple]:
    """Per period: its rows, the model's and the baseline's score ranks
    there, and its number of deals (the period's weight)."""
    out = []
    deals = pd.Series(deals).to_numpy()
    for k in np.unique(which):
        at = np.flatnonzero(which == k)
        ranks = [np.unique(p[at], return_inverse=True)[1] for p in (model, base)]
        out.append((at, *ranks, len(pd.unique(deals[at]))))
    return out


def _gains(y, weight, levels) -> list[tuple[float, int]]:
    """(gain, deals) of each period with both outcomes."""
    out = []
    for at, model_level, base_level, n_deals in levels:
        m = _weighted_auc(model_level, y[at], weight[at])
        b = _weighted_auc(base_level, y[at], weight[at])
        if m == m and b == b:
            out.append((m - b, n_deals))
    return out


def _pooled(y, weight, levels) -> float:
    per = _gains(y, weight, levels)
    return float(np.average([g for g, _ in per], weights=[n for _, n in per])) if per else float("nan")


def auc_gain_lower_bound(y, p_model, p_base, deals, seed: int, level: float = 0.95, folds=None) -> float:
    """One-sided lower bound of the AUC gain of the model over a baseline,
    from a bootstrap over *deals* (a deal's snapshots move together: rows
    are not independent, and a gain seen on a few hundred deals is often
    noise). With ``folds`` (a period per row) the gain is pooled over the
    periods, each ranked within its period and weighted by its deals."""
    y = np.asarray(y, dtype=float)
    which = np.zeros(len(y), np.int64) if folds is None else np.asarray(folds)
    levels = _fold_levels(np.asarray(p_model, dtype=float), np.asarray(p_base, dtype=float), which, deals)
    codes, uniques = pd.factorize(pd.Series(deals))
    rng = np.random.default_rng(seed)
    gains = []
    for _ in range(GAIN_DRAWS):
        weight = np.bincount(rng.integers(0, len(uniques), len(uniques)), minlength=len(uniques))[codes]
        gain = _pooled(y, weight.astype(float), levels)
        if gain == gain:
            gains.append(gain)
    return float(np.quantile(gains, 1 - level)) if gains else float("nan")


def _weighted_auc(level: np.ndarray, y: np.ndarray, weight: np.ndarray) -> float:
    """AUC (ties count half) with row weights; ``level`` ranks the scores."""
    n = int(level.max()) + 1 if len(level) else 0
    pos = np.bincount(level, weight * y, n)
    neg = np.bincount(level, weight * (1 - y), n)
    total = pos.sum() * neg.sum()
    if total <= 0:
        return float("nan")
    below = np.cumsum(neg) - neg
    return float((pos * (below + 0.5 * neg)).sum() / total)


@dataclass(frozen=True)
class Verdict:
    usable: bool
    reason: str

    @property
    def label(self) -> str:
        return "usable" if self.usable else "weak"


def judge(metrics: dict, baselines: dict[str, dict], rules: RiskRules, rows: int,
          gain_lower_bounds: dict[str, float] | None = None, gains: dict[str, float] | None = None,
          periods: int = 1) -> Verdict:
    """Usable only when the model beats every baseline by ``min_auc_gain`` AUC
    (``gains``: the gain pooled over ``periods`` out-of-time sets; without
    it, the validation AUCs' difference) and on validation log loss, the
    gain holds at the lower end of its 95 % bootstrap bound (over deals),
    and the validation AUC is plausible (not perfect). ``train`` gives AUCs
    on the ``rows`` validation snapshots of deals the fit never saw and log
    losses on every validation snapshot."""
    auc = metrics["auc"]
    bounds, gains = gain_lower_bounds or {}, gains or {}
    if auc != auc:
        return Verdict(False, "no validation AUC (one outcome only)")
    if auc >= rules.implausible_auc:
        return Verdict(False, f"validation AUC {auc:.3f} is implausibly perfect: a column probably encodes the "
                              "outcome, so the model is not trusted")
    over = f" pooled over {periods} validation sets" if periods > 1 else ""
    for name, base in baselines.items():
        gain = gains.get(name, auc - base["auc"])
        if gain != gain or not (gain >= rules.min_auc_gain and metrics["log_loss"] < base["log_loss"]):
            return Verdict(False, f"no better than {name}: validation AUC {auc:.3f} vs {base['auc']:.3f} "
                                  f"on {rows:,} validation snapshots of deals the fit never saw (gain{over} "
                                  f"{gain:+.3f}, at least {rules.min_auc_gain:+.3f} needed), log loss "
                                  f"{metrics['log_loss']:.4f} vs {base['log_loss']:.4f} on every validation snapshot")
        if not bounds.get(name, 1.0) > 0:
            return Verdict(False, f"no better than {name} beyond chance: validation AUC {auc:.3f} vs "
                                  f"{base['auc']:.3f}, gain{over} {gain:+.3f}, but its 95 % lower bound over "
                                  f"the validation deals is {bounds[name]:+.3f}")
    said = ", ".join(f"{name} (AUC {base['auc']:.3f})" for name, base in baselines.items())
    lead = ", ".join(f"{gains[name]:+.3f} over {name}" for name in baselines if name in gains)
    return Verdict(True, f"beats {said} with AUC {auc:.3f} on {rows:,} validation snapshots of deals the fit "
                         f"never saw" + (f" (gain{over}: {lead})" if lead else ""))
