"""A win rate that moves with the deals' creation date.

Every level a model serves is read off snapshots whose window is over, so
the deals behind it were created long before today's open ones: for the
90-day horizon its calibration period's deals were created about 0.8 years
before (outside world, as of 2026-06-30). Where each new cohort of deals
wins less than the one before (a market cooling, a product ageing), that
level is stale, and no level read off the past can see it: on 18 runs of
outside worlds whose odds fall 0.4 log odds a year the served 90-day sums
of the open deals' chances read -8 % to +40 % against the world's own,
+14.3 % on average (15 of 18 high).

So the odds of being won within ``WINDOW_DAYS`` of creation are regressed
on the creation date, beside the creation facts the model reads (a change
in the mix is not a trend: the model sees it), over every deal whose window
is over. The slope serves only beyond noise (``|z|`` at least
``risk.cohort_trend_min_z``), shrunk for it; each horizon's level then
moves by it times the years between the creation date its calibration rows
sit at (where its probabilities take their level from) and today's open
deals' (``level_shift``); the other parts of the level are then read beyond
the trend (``risk_model.deployed_levels``), so a fall is not counted twice.
On the 18 runs the sums then missed by 10.3 % on average where they had
missed by 15.3 %, and -1.1 % on the mean: the bias is gone, a level's own
noise is not (the three runs already right read 13-19 % low); on 60
readings of steady worlds it never served (``calibration_study``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from salesintel_assets.domain.common import stats
from salesintel_assets.domain.models.features import trustworthy_deals

WINDOW_DAYS = 90        # "won within this many days of creation": short, so recent cohorts count
MIN_DEALS = 300         # fewer deals whose window is over: not measured
MIN_SPAN_DAYS = 180     # their creation dates must span this much: a slope needs a run of cohorts
MIN_LEVEL_DEALS = 20    # rarer values of a creation fact are pooled
MAX_DEALS = 50_000      # a random sample of them above this (its standard error is the sample's)
# The creation facts read beside the date. Not the rep: hundreds of values would cost more
# than they explain, and a rep's deals are spread over the history.
FACTS = ("industry", "region", "product_type", "lead_source")
DAYS_PER_YEAR = 365.25
BELOW_BAR = "|z| below risk.cohort_trend_min_z"
EPOCH = pd.Timestamp("2000-01-01")
NEWTON_STEPS = 50
RIDGE = 1e-4            # on the summed log-likelihood: nothing against thousands of deals


@dataclass(frozen=True)
class CohortTrend:
    """The measured slope (log odds a year of creation), its standard error,
    the deals it was read from, and what serves: 0 below the bar."""

    per_year: float = 0.0
    se: float = float("inf")
    deals: int = 0
    served_per_year: float = 0.0
    reason: str = "not measured"

    @property
    def z(self) -> float:
        return self.per_year / self.se if np.isfinite(self.se) and self.se > 0 else 0.0

    def level_shift(self, open_created: pd.Series, open_p: np.ndarray, reference: pd.Timestamp | None) -> float:
        """Log odds that move a level read off deals created about
        ``reference`` (``reference_day``) to today's open deals, created at
        ``open_created``, with probabilities ``open_p`` before this move."""
        if not self.served_per_year or not len(open_created) or reference is None:
            return 0.0
        years = (reference_day(open_created, open_p) - reference) / pd.Timedelta(days=DAYS_PER_YEAR)
        return float(self.served_per_year * years)

    def sentence(self) -> str:
        """The run summary's line where the trend moved the levels, else empty."""
        if not self.served_per_year:
            return ""
        way = "less" if self.per_year < 0 else "more"
        return (f"each new cohort of deals wins {way} than the one before ({self.per_year:+.2f} log odds a year of "
                f"creation, z {self.z:+.1f}, {self.deals:,} deals), so the open deals are scored and forecast at "
                "their own cohort's level, not at the older deals' the model was calibrated on")

    def note(self) -> str:
        """In words for the model's metadata: measured or not, its noise, and whether it moved the levels."""
        if not np.isfinite(self.se):
            return f"The win rate by creation date was not measured: {self.reason}."
        measured = (f"Deals' odds of being won within {WINDOW_DAYS} days of creation move "
                    f"{self.per_year:+.2f} log odds a year of creation (standard error {self.se:.2f}, "
                    f"z {self.z:+.1f}, {self.deals:,} deals)")
        if not self.served_per_year:
            within = self.reason.startswith(BELOW_BAR)
            return f"{measured}{': within noise, so' if within else '. But'} no level moves for it ({self.reason})."
        return (f"{measured}: beyond noise, so each horizon's level moves {self.served_per_year:+.2f} a year "
                "(shrunk for noise) over the time between its calibration deals' creation and today's open deals'.")


def reference_day(created: pd.Series, p: np.ndarray) -> pd.Timestamp | None:
    """The creation date a level read off these deals sits at: their mean,
    each deal weighted by how far its odds move the sum of their
    probabilities ``p`` (p(1 - p)). Unweighted, the old deals that linger
    open at a chance near 0 pulled it months back: on outside worlds whose
    odds fall 0.4 a year the 90-day sums read 10.7 % off the world's own
    against 7.7 % (eight runs). None without deals."""
    if not len(created):
        return None
    days = (pd.to_datetime(created) - EPOCH).dt.days.to_numpy(dtype=float)
    p = np.asarray(p, dtype=float)
    weight = p * (1 - p)
    mean = float((days * weight).sum() / weight.sum()) if weight.sum() > 0 else float(days.mean())
    return EPOCH + pd.Timedelta(days=mean)


def offsets(created: pd.Series, reference: pd.Timestamp | None, per_year: float) -> np.ndarray:
    """Per deal created at ``created``: the log odds a trend of ``per_year``
    puts between it and ``reference`` (0 everywhere without a trend or a
    reference)."""
    if not per_year or reference is None:
        return np.zeros(len(created))
    days = (pd.to_datetime(created) - reference).dt.total_seconds().to_numpy(dtype=float) / 86400
    return per_year * days / DAYS_PER_YEAR


def measure(fact: pd.DataFrame, as_of: pd.Timestamp, creation_facts, min_z: float, seed: int = 0) -> CohortTrend:
    """The cohort trend on ``as_of`` from every deal created at least
    ``WINDOW_DAYS`` before it (as known then), beside those of ``FACTS`` in
    ``creation_facts`` (the model's categorical columns: not one the leakage
    guard excluded). ``min_z`` 0: off (measured, never served)."""
    as_of = pd.Timestamp(as_of)
    facts = [c for c in FACTS if c in creation_facts and c in fact]
    deals = trustworthy_deals(fact[["created_date", "closed_date", "is_open", "is_won", "needs_review", *facts]],
                              as_of)   # only the columns read: a copy of every column cost more than the fit
    deals = deals[deals["created_date"] <= as_of - pd.Timedelta(days=WINDOW_DAYS)]
    if len(deals) > MAX_DEALS:
        deals = deals.sample(MAX_DEALS, random_state=seed)
    created = deals["created_date"]
    if len(deals) < MIN_DEALS or (created.max() - created.min()).days < MIN_SPAN_DAYS:
        return CohortTrend(deals=len(deals), reason=f"fewer than {MIN_DEALS} deals whose {WINDOW_DAYS}-day window "
                                                    f"is over, across at least {MIN_SPAN_DAYS} days of creation")
    won = (deals["is_won"].to_numpy(dtype=bool)
           & ((deals["closed_date"] - created).dt.days <= WINDOW_DAYS).to_numpy(dtype=bool))
    if won.all() or not won.any():
        outcome = "won" if won.all() else "not won"
        return CohortTrend(deals=len(deals), reason=f"every such deal {outcome} in its window")
    years = ((created - as_of).dt.days / DAYS_PER_YEAR).to_numpy(dtype=float)
    per_year, se = slope_and_se(years, _facts(deals, facts), won)
    if not (np.isfinite(per_year) and np.isfinite(se)):
        return CohortTrend(deals=len(deals), reason="the regression did not converge")
    z = abs(per_year) / se if se > 0 else 0.0
    if not min_z:
        return CohortTrend(per_year, se, len(deals), 0.0, "off: risk.cohort_trend_min_z is 0")
    if z < min_z:
        return CohortTrend(per_year, se, len(deals), 0.0, f"{BELOW_BAR}, {min_z:g}")
    return CohortTrend(per_year, se, len(deals), stats.shrunk(per_year, se), "served")


def _facts(deals: pd.DataFrame, columns) -> np.ndarray:
    """The creation facts one-hot, rare values pooled, the first of each dropped."""
    encoded = []
    for column in columns:
        values = deals[column].astype(str).fillna("Unknown")
        counts = values.value_counts()
        values = values.where(values.isin(counts.index[counts >= MIN_LEVEL_DEALS]), "(rare)")
        encoded.append(pd.get_dummies(values, drop_first=True, dtype=float))
    return pd.concat(encoded, axis=1).to_numpy() if encoded else np.empty((len(deals), 0))


def slope_and_se(years: np.ndarray, facts: np.ndarray, won: np.ndarray) -> tuple[float, float]:
    """The logistic regression's coefficient on ``years`` (beside ``facts``
    and an intercept) and its standard error from the Fisher information:
    Newton's method, a whisker of ridge keeping a fact that alone separates
    the outcomes finite. (inf, inf) when it does not converge."""
    x = np.column_stack([np.ones(len(years)), years - years.mean(), facts])
    ridge = RIDGE * np.eye(x.shape[1])
    beta = np.zeros(x.shape[1])
    for _ in range(NEWTON_STEPS):
        p = 1 / (1 + np.exp(-np.clip(x @ beta, -30, 30)))
        information = x.T @ (x * (p * (1 - p))[:, None]) + ridge
        step = np.linalg.solve(information, x.T @ (won - p) - ridge @ beta)
        beta = beta + step
        if np.abs(step).max() < 1e-8:
            variance = np.linalg.inv(information)[1, 1]
            return float(beta[1]), float(np.sqrt(variance)) if variance > 0 else float("inf")
    return float("inf"), float("inf")
