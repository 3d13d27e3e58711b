"""Segments whose win rate moved in the latest weeks, for the forecast.

A segment that starts losing (a competitor in one region's fintech deals)
shows in its latest closes weeks before the 90-day backtest can see it, and
a model trained on many months has barely moved. Each segment (every value
of the single dimensions and of the pairs in the rules) compares the win
rate of its deals closed in the last ``recent_days`` with the
``baseline_days`` before them (closes of deals at least ``min_age_days``
old: a burst of new leads disqualified within days says how leads arrive,
not how the deals in play will end), against the same change in the rest
of the business: a difference of log odds ratios, so a business-wide swing
or the quarter-end bunching that moves every segment alike is no segment
change.

Benjamini-Hochberg across every tested segment controls false discoveries,
and only a material change counts (``min_change`` in log odds: a smaller
one moves the forecast by less than its noise, and is more often an echo of
a stronger change elsewhere than news).
One real change also moves the segments that contain it (a pair's drop shows
in both its singles), so the discoveries are resolved greedily: the
strongest is kept, the others are re-tested without its deals and kept only
if they still pass. A kept change, shrunk by its noise (positive-part James-
Stein: change x (1 - se^2 / change^2)), moves the log odds of that segment's
open deals in the forecast, and its standard error widens the interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from salesintel_assets.domain.common import stats

READ_COLUMNS = ("created_date", "closed_date", "is_won", "industry", "region", "product_type", "lead_source")
CHANGE_COLUMNS = ["segment", "change", "shift", "se", "q_value", "recent_deals", "recent_win_rate",
                  "baseline_deals", "baseline_win_rate"]


@dataclass(frozen=True)
class SegmentChange:
    """A segment's win-rate change in log odds beyond the rest of the
    business (``change``), what the forecast applies (``shift``, shrunk) and
    the evidence."""

    columns: tuple[str, ...]
    values: tuple[str, ...]
    change: float
    shift: float
    se: float
    q_value: float
    recent_deals: int
    recent_won: int
    baseline_deals: int
    baseline_won: int

    @property
    def label(self) -> str:
        return ", ".join(f"{c}={v}" for c, v in zip(self.columns, self.values))

    def row(self) -> dict:
        return {"segment": self.label, "change": round(self.change, 3), "shift": round(self.shift, 3),
                "se": round(self.se, 3), "q_value": float(f"{self.q_value:.3g}"), "recent_deals": self.recent_deals,
                "recent_win_rate": round(self.recent_won / self.recent_deals, 3),
                "baseline_deals": self.baseline_deals,
                "baseline_win_rate": round(self.baseline_won / self.baseline_deals, 3)}

    def sentence(self) -> str:
        return (f"{self.label} won {self.recent_won / self.recent_deals:.0%} of {self.recent_deals} deals closed "
                f"lately against {self.baseline_won / self.baseline_deals:.0%} of {self.baseline_deals} before")


def _cells(frame: pd.DataFrame, groups: list[tuple[str, ...]]) -> list[tuple[tuple[str, ...], np.ndarray, list]]:
    """Per dimension group present in ``frame``: each row's cell code and the
    cells' values (as text, as ``applied`` matches them). Each column is
    factorised once; a pair's codes combine its columns' codes."""
    present = [g for g in groups if set(g) <= set(frame.columns)]
    coded = {}
    for column in {c for g in present for c in g}:
        codes, labels = pd.factorize(frame[column], use_na_sentinel=False)
        coded[column] = (codes.astype(np.int64), [str(v) for v in labels])
    out = []
    for columns in present:
        codes, labels = coded[columns[0]][0], [(v,) for v in coded[columns[0]][1]]
        for column in columns[1:]:
            more, more_labels = coded[column]
            combined, codes = np.unique(codes * len(more_labels) + more, return_inverse=True)
            labels = [labels[c // len(more_labels)] + (more_labels[c % len(more_labels)],) for c in combined]
        out.append((columns, codes.reshape(-1), labels))
    return out


def _log_odds(won: float, deals: float) -> tuple[float, float]:
    """Log odds of a win rate and its variance (0.5 added to each count)."""
    return float(np.log((won + 0.5) / (deals - won + 0.5))), 1 / (won + 0.5) + 1 / (deals - won + 0.5)


def _contrast(cell: np.ndarray, keep: np.ndarray, recent: np.ndarray, won: np.ndarray) -> tuple:
    """(change, se, counts) of a cell's log odds ratio (recent against
    baseline) less the rest's, on the rows ``keep`` holds."""
    inside, rest = cell & keep, ~cell & keep
    parts = []
    for rows in (inside & recent, inside & ~recent, rest & recent, rest & ~recent):
        parts.append((int(np.count_nonzero(rows & won)), int(np.count_nonzero(rows))))
    lo = [_log_odds(w, n) for w, n in parts]
    change = (lo[0][0] - lo[1][0]) - (lo[2][0] - lo[3][0])
    return change, float(np.sqrt(sum(v for _, v in lo))), parts


def _shrunk(change: float, se: float) -> float:
    return change * max(0.0, 1 - se ** 2 / change ** 2) if change else 0.0


def find(closed: pd.DataFrame, as_of: pd.Timestamp, cfg) -> list[SegmentChange]:
    """The segment changes to apply, strongest first. ``closed``: deals
    closed on or before ``as_of`` with ``closed_date``, ``is_won`` and the
    segment columns; ``cfg``: the rules' ``risk.forecast.segment_changes``."""
    if not cfg.enabled or not len(closed):
        return []
    as_of = pd.Timestamp(as_of)
    when = closed["closed_date"]
    start = as_of - pd.Timedelta(days=cfg.recent_days + cfg.baseline_days)
    age = (when - closed["created_date"]).dt.days
    frame = closed[(when <= as_of) & (when > start) & (age >= cfg.min_age_days)]
    recent = (frame["closed_date"] > as_of - pd.Timedelta(days=cfg.recent_days)).to_numpy()
    won = frame["is_won"].astype(bool).to_numpy()
    groups = [(d,) for d in cfg.dimensions] + [tuple(p) for p in cfg.pairs]
    everything = np.ones(len(frame), dtype=bool)
    tests = []   # (columns, values, mask, change, se, parts)
    for columns, codes, labels in _cells(frame, groups):
        recent_n = np.bincount(codes[recent], minlength=len(labels))
        baseline_n = np.bincount(codes[~recent], minlength=len(labels))
        for k in np.flatnonzero((recent_n >= cfg.min_recent_deals) & (baseline_n >= cfg.min_baseline_deals)):
            mask = codes == k
            tests.append((columns, labels[k], mask, *_contrast(mask, everything, recent, won)))
    if not tests:
        return []
    from scipy.stats import norm

    p = np.array([2 * norm.sf(abs(t[3]) / t[4]) for t in tests])
    q = stats.benjamini_hochberg(p)
    found = q <= cfg.fdr_alpha
    if not found.any():
        return []
    cutoff = float(p[found].max())   # the step-up's p-value threshold
    candidates = [(t, qv) for t, qv, f in zip(tests, q, found) if f]
    kept, taken = [], np.zeros(len(frame), dtype=bool)
    while candidates:
        retested = []
        for t, qv in candidates:
            change, se, parts = _contrast(t[2], ~taken, recent, won)
            if parts[0][1] >= cfg.min_recent_deals and parts[1][1] >= cfg.min_baseline_deals \
                    and 2 * norm.sf(abs(change) / se) <= cutoff and abs(change) >= cfg.min_change:
                retested.append((abs(change) / se, t, qv, change, se, parts))
        if not retested:
            break
        _, t, qv, change, se, parts = max(retested, key=lambda r: r[0])
        (recent_won, recent_n), (baseline_won, baseline_n) = parts[0], parts[1]
        kept.append(SegmentChange(t[0], t[1], change, _shrunk(change, se), se, float(qv),
                                  recent_n, recent_won, baseline_n, baseline_won))
        taken |= t[2]
        candidates = [(r[1], r[2]) for r in retested if r[1] is not t]
    return kept


def _members(deals: pd.DataFrame, changes: list[SegmentChange]) -> list[np.ndarray]:
    """Per change, the deals it applies to: those in its segment and in no
    stronger change's segment (a deal takes one change)."""
    done = np.zeros(len(deals), dtype=bool)
    out = []
    for change in changes:
        inside = np.ones(len(deals), dtype=bool)
        for column, value in zip(change.columns, change.values):
            inside &= (deals[column].astype(str) == value).to_numpy() if column in deals else False
        out.append(inside & ~done)
        done |= inside
    return out


def applied(deals: pd.DataFrame, p: np.ndarray, changes: list[SegmentChange]) -> tuple[np.ndarray, float]:
    """What the changes do to ``deals`` (probabilities ``p``): each deal's
    log-odds shift (that of the strongest change whose segment holds it, 0
    for the others), and the pipeline-wide log-odds sd equivalent to the
    changes' own standard errors (a segment holding a share s of the
    pipeline's binomial information, sum p(1-p), moves the total as a shared
    shift of s x se)."""
    shift = np.zeros(len(deals))
    v = np.asarray(p, dtype=float) * (1 - np.asarray(p, dtype=float))
    total, variance = float(v.sum()), 0.0
    for change, members in zip(changes, _members(deals, changes)):
        shift[members] = change.shift
        if total > 0:
            variance += (float(v[members].sum()) / total * change.se) ** 2
    return shift, float(np.sqrt(variance))


def note(changes: list[SegmentChange]) -> str:
    """The changes in words, for the forecast's metadata."""
    if not changes:
        return "no segment's latest closes moved beyond the rest of the business"
    return "; ".join(c.sentence() for c in changes) + ": their open deals are forecast at the new level"


def changes_table(changes: list[SegmentChange]) -> pd.DataFrame:
    return pd.DataFrame([c.row() for c in changes], columns=CHANGE_COLUMNS)
