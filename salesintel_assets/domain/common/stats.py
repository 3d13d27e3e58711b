"""Honest statistics for proportions of small counts: intervals, exact tests
and false-discovery control. Shared by the metrics, drivers and anomalies
layers so every segment rate is judged the same way."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

Z95 = 1.959963984540054


def wilson_interval(successes, trials, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval per element; NaN where there are no trials.
    Unlike the normal interval it stays inside [0, 1] and is sane at 0 or n."""
    k = np.asarray(successes, dtype="float64")
    n = np.asarray(trials, dtype="float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    low = np.where(n > 0, np.clip(centre - half, 0, 1), np.nan)
    high = np.where(n > 0, np.clip(centre + half, 0, 1), np.nan)
    return low, high


def binomial_test(successes, trials, p0, alternative: str = "two-sided") -> np.ndarray:
    """Exact binomial test p-values, element-wise (NaN where trials == 0)."""
    k = np.atleast_1d(np.asarray(successes, dtype="int64"))
    n = np.atleast_1d(np.asarray(trials, dtype="int64"))
    p = np.broadcast_to(np.asarray(p0, dtype="float64"), k.shape)
    out = np.full(k.shape, np.nan)
    for i in range(k.size):
        if n[i] > 0 and 0 < p[i] < 1:
            out[i] = stats.binomtest(int(k[i]), int(n[i]), float(p[i]), alternative=alternative).pvalue
    return out


def benjamini_hochberg(p_values) -> np.ndarray:
    """BH-adjusted q-values (scipy's ``false_discovery_control``); NaN p-values
    stay NaN and do not count as tests."""
    p = np.asarray(p_values, dtype="float64")
    q = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        q[ok] = stats.false_discovery_control(p[ok], method="bh")
    return q


def shrunk_rate(successes, trials, prior_rate: float, prior_strength: float) -> np.ndarray:
    """Empirical-Bayes (beta prior) rate: (k + m*p0) / (n + m). Tiny segments
    stay near the prior instead of swinging to 0 or 1."""
    k = np.asarray(successes, dtype="float64")
    n = np.asarray(trials, dtype="float64")
    return (k + prior_strength * prior_rate) / (n + prior_strength)


def beta_prior_strength(successes, trials) -> float:
    """Method-of-moments strength m of a beta prior fitted to segment rates:
    how many pseudo-deals of the global rate a segment's own deals must
    outweigh. Large when segments barely differ (heavy shrinkage)."""
    k = np.asarray(successes, dtype="float64")
    n = np.asarray(trials, dtype="float64")
    keep = n > 0
    if keep.sum() < 2:
        return 1e6
    k, n = k[keep], n[keep]
    p = k.sum() / n.sum()
    rates = k / n
    observed = np.average((rates - p) ** 2, weights=n)
    sampling = p * (1 - p) * len(n) / n.sum()
    between = observed - sampling
    if between <= 1e-12 or p in (0, 1):
        return 1e6
    return float(max(p * (1 - p) / between - 1, 1.0))


def rate_table(frame: pd.DataFrame, by, won_col: str = "is_won") -> pd.DataFrame:
    """deals, won, win_rate and its Wilson interval per group."""
    grouped = frame.groupby(by, observed=True)[won_col].agg(deals="size", won="sum")
    grouped["won"] = grouped["won"].astype("int64")
    grouped["win_rate"] = grouped["won"] / grouped["deals"]
    grouped["ci_low"], grouped["ci_high"] = wilson_interval(grouped["won"], grouped["deals"])
    return grouped.reset_index()


def beta_binomial_pvalues(successes, trials, a, b, alternative: str = "two-sided") -> np.ndarray:
    """Vectorised beta-binomial test: P-values of ``successes`` out of
    ``trials`` when the rate is Beta(a, b) (NaN where trials <= 0 or a, b <= 0).
    One scipy call over the whole array: thousands of segments in milliseconds."""
    k, n, a, b = np.broadcast_arrays(*(np.atleast_1d(np.asarray(x, dtype="float64"))
                                       for x in (successes, trials, a, b)))
    ok = (n > 0) & (a > 0) & (b > 0) & np.isfinite(k)
    out = np.full(k.shape, np.nan)
    if not ok.any():
        return out
    kk, nn, aa, bb = k[ok], n[ok], a[ok], b[ok]
    lower = stats.betabinom.cdf(kk, nn, aa, bb)
    upper = stats.betabinom.sf(kk - 1, nn, aa, bb)
    if alternative == "less":
        p = lower
    elif alternative == "greater":
        p = upper
    else:
        p = np.minimum(1.0, 2 * np.minimum(lower, upper))
    out[ok] = np.clip(p, 0.0, 1.0)
    return out


def beta_binomial_test(successes, trials, base_successes, base_trials,
                       alternative: str = "two-sided") -> np.ndarray:
    """P-values for a window rate against a baseline rate that is itself
    estimated: the window count is beta-binomial under Beta(base_k + 1/2,
    base_n - base_k + 1/2), so a small baseline widens the null instead of
    being taken as the truth."""
    base_k = np.asarray(base_successes, dtype="float64")
    base_n = np.asarray(base_trials, dtype="float64")
    return beta_binomial_pvalues(successes, trials, base_k + 0.5, base_n - base_k + 0.5, alternative)


def win_incidence(times, won, lost, still_open, horizon: float, z: float = Z95) -> dict:
    """Cumulative incidence of winning within ``horizon`` (Aalen-Johansen,
    winning and losing as competing outcomes, deals still open censored at
    the time they have lasted so far) from counts per time: ``won``, ``lost``
    and ``still_open`` deals at each ``times`` value (same units as horizon).

    A still-open deal is neither won nor lost: it counts while it is
    observed and then leaves the risk set, so a pile of young open deals
    never reads as "not won". The standard error is the delta-method
    (Dinse-Larson) variance; the interval is Wilson's with the effective
    sample size that variance implies, so it stays inside [0, 1] and is
    sane at 0 %. Returns rate, low, high, n (deals), still_open, and
    ``followed``: the deals whose fate within the horizon is known (an
    outcome within it, or followed past it); the others are censored
    before it, and a young history has few followed deals however many it
    has."""
    t = np.asarray(times, dtype="float64")
    w, l, c = (np.asarray(x, dtype="float64") for x in (won, lost, still_open))
    n_total, open_total = float(w.sum() + l.sum() + c.sum()), float(c.sum())
    out = {"rate": np.nan, "low": np.nan, "high": np.nan, "n": int(n_total), "still_open": int(open_total),
           "followed": int(n_total - c[t <= horizon].sum())}
    if n_total <= 0:
        return out
    grid, inverse = np.unique(t, return_inverse=True)
    count = lambda x: np.bincount(inverse, weights=x, minlength=len(grid))
    wins, events, leaving = count(w), count(w + l), count(w + l + c)
    at_risk = np.cumsum(leaving[::-1])[::-1]           # still in the risk set just before each time
    keep = (grid <= horizon) & (events > 0)
    if not keep.any():
        # No outcome within the horizon: 0 % only as far as deals were followed
        # that long; deals censored before it tell nothing.
        followed = float(at_risk[grid > horizon][0]) if (grid > horizon).any() else 0.0
        if followed > 0:
            out.update(rate=0.0, low=0.0, high=float(wilson_interval([0], [followed], z)[1][0]))
        return out
    n, d, d1 = at_risk[keep], events[keep], wins[keep]
    survival = np.cumprod(1 - d / n)
    before = np.concatenate([[1.0], survival[:-1]])    # all-cause survival just before each time
    step = before * d1 / n
    cif = np.cumsum(step)
    total = cif[-1]
    gap = total - cif
    safe = np.where(n > d, n * (n - d), np.inf)
    variance = float(np.sum(gap**2 * d / safe + before**2 * d1 * (n - d1) / n**3 - 2 * gap * before * d1 / n**2))
    variance = max(variance, 0.0)
    n_eff = min(total * (1 - total) / variance, n_total) if variance > 0 else n_total
    low, high = wilson_interval([total * n_eff], [n_eff], z)
    out.update(rate=float(total), low=float(low[0]), high=float(high[0]))
    return out


# --- Log-odds levels ------------------------------------------------------------
def logit(p: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    """Log odds, with ``p`` kept ``floor`` away from 0 and 1 (a certain 0 or 1 has none)."""
    p = np.clip(np.asarray(p, dtype=float), floor, 1 - floor)
    return np.log(p / (1 - p))


def level_shift(p: np.ndarray, actual: float, weights=None) -> float:
    """The shared log-odds shift that makes the expected total (of
    ``weights``: 1 for deal counts, amounts for revenue) equal ``actual``."""
    from scipy.optimize import brentq

    p = np.asarray(p, dtype=float)
    w = np.ones(len(p)) if weights is None else np.asarray(weights, dtype=float)
    if not len(p) or w.sum() <= 0:
        return float("nan")
    edge = 0.5 * float(w[w > 0].min())  # an all-won or all-lost total has no finite shift
    target = float(np.clip(actual, edge, w.sum() - edge))
    logits = logit(p)
    return float(brentq(lambda d: (w / (1 + np.exp(-(logits + d)))).sum() - target, -20, 20))


def level_information(p: np.ndarray, weights=None, rows_per_deal: float = 1.0) -> float:
    """Inverse variance of an estimated shift from independent deals (delta
    method): (sum w p(1-p))^2 / sum w^2 p(1-p); sum p(1-p) for counts."""
    p = np.asarray(p, dtype=float)
    w = np.ones(len(p)) if weights is None else np.asarray(weights, dtype=float)
    v = p * (1 - p)
    denominator = float((w ** 2 * v).sum())
    if denominator <= 0:
        return 0.0
    return float((w * v).sum() ** 2 / denominator / max(rows_per_deal, 1.0))


def shrunk(change: float, se: float) -> float:
    """A noisy estimate shrunk toward 0 for its standard error (positive-part
    James-Stein: change x (1 - se^2 / change^2)); an unmeasured one (se inf) is 0."""
    return change * max(0.0, 1 - se ** 2 / change ** 2) if change else 0.0


def selection_adjusted(change: float, se: float, threshold_z: float) -> float:
    """A change kept because its |z| passed ``threshold_z``, corrected for
    having been picked (the winner's curse): the mean effect given the
    estimate and that it passed (a flat prior on the effect, the likelihood
    conditional on passing; Ghosh, Zou & Wright 2008). Just past the bar it
    falls about half way to 0, since among many tested segments the one that
    passed by noise is the likeliest to pass; far past it, it is the
    estimate. Unlike the conditional maximum likelihood it moves smoothly
    with the estimate."""
    if not change or not np.isfinite(se) or se <= 0:
        return 0.0
    z = abs(change) / se
    mu = np.linspace(-threshold_z - 2, z + 8, 4001)   # the effect in se units: the likelihood's mass and 0's bump
    passing = np.logaddexp(stats.norm.logsf(threshold_z - mu), stats.norm.logsf(threshold_z + mu))
    log_likelihood = stats.norm.logpdf(z - mu) - passing
    weight = np.exp(log_likelihood - log_likelihood.max())
    mean = float(np.clip((mu * weight).sum() / weight.sum(), 0.0, z))
    return float(np.sign(change) * mean * se)


def shifted(p: np.ndarray, shift) -> np.ndarray:
    """Probabilities moved by a log-odds shift (one for all, or one per deal)."""
    return 1 / (1 + np.exp(-(logit(p) + shift)))


def auc_difference_se(won, first, second) -> float:
    """DeLong's standard error of AUC(``first``) - AUC(``second``), two
    scores of the same cases (DeLong, DeLong & Clarke-Pearson 1988): each
    AUC is the mean of its won and lost cases' placements, and the two
    scores' placements covary case by case. NaN without two cases of each
    outcome."""
    won = np.asarray(won, dtype=bool)
    positives, negatives = int(won.sum()), int((~won).sum())
    if positives < 2 or negatives < 2:
        return float("nan")
    won_places, lost_places = [], []
    for score in (np.asarray(first, dtype=float), np.asarray(second, dtype=float)):
        at_won, at_lost = score[won], score[~won]
        wins, losses = np.sort(at_won), np.sort(at_lost)
        # a won case's share of lost ones scored below it, a lost case's of won ones above it (ties count half)
        won_places.append((np.searchsorted(losses, at_won, "left")
                           + np.searchsorted(losses, at_won, "right")) / 2 / negatives)
        lost_places.append(1 - (np.searchsorted(wins, at_lost, "left")
                                + np.searchsorted(wins, at_lost, "right")) / 2 / positives)
    variance = sum(float(np.var(np.subtract(*places), ddof=1)) / len(places[0])
                   for places in (won_places, lost_places))
    return float(np.sqrt(max(variance, 0.0)))
