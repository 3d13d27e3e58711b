"""Root-cause drill-down of a segment anomaly: which sub-segments carry the
change, and how much of it is *rate* (the sub-segment itself got better or
worse) versus *mix* (more or fewer deals came from a sub-segment that was
already above or below average).

For a breakdown dimension with sub-segments j, window shares s1_j and means
m1_j, baseline shares s0_j and means m0_j (baseline mean m0):

    change = sum_j s1_j m1_j - sum_j s0_j m0_j
           = sum_j s1_j (m1_j - m0_j)          rate effect
           + sum_j (s1_j - s0_j)(m0_j - m0)    mix effect

exactly (the shares of each side sum to one). The dimension reported is the
one whose single largest contributor explains the most of the change. It is
descriptive: small sub-segments are noisy, so their deal counts are shown.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from salesintel_assets.domain.anomalies.significance import Comparison, SegmentCodes, comp_dims, in_segment


@dataclass
class Contribution:
    dimension: str
    label: str
    n: int
    window_mean: float
    baseline_mean: float
    window_share: float
    baseline_share: float
    rate: float
    mix: float

    @property
    def total(self) -> float:
        return self.rate + self.mix


@dataclass
class RootCause:
    change: float
    dimension: str
    rate: float          # summed over the dimension's sub-segments
    mix: float
    top: list[Contribution]


def drill_down(comp: Comparison, codes: SegmentCodes, keys: dict, dimensions: list[str],
               top_n: int = 2) -> RootCause | None:
    """The breakdown that best explains the segment's change, or None when
    there is nothing to break down (no other dimension, no deals)."""
    w_keep = in_segment(codes, comp.window.rows, keys)
    b_keep = in_segment(codes, comp.baseline.rows, keys)
    w_rows, b_rows = comp.window.rows[w_keep], comp.baseline.rows[b_keep]
    if not len(w_rows) or not len(b_rows):
        return None
    w_val = comp.window.value[w_keep]
    b_val = comp.baseline.value[b_keep]
    b_w = comp.baseline_weight(comp_dims(comp, keys))[b_keep]
    if b_w.sum() <= 0:
        return None
    m1, m0 = float(w_val.mean()), float(np.average(b_val, weights=b_w))
    change = m1 - m0
    best: RootCause | None = None
    best_score = -np.inf
    for dim in dimensions:
        if dim in keys:
            continue
        parts = _contributions(codes, dim, w_rows, w_val, b_rows, b_val, b_w, m0)
        if len(parts) < 2:  # one value inside the segment: it names the segment, it explains nothing
            continue
        sign = 1.0 if change >= 0 else -1.0
        ranked = sorted(parts, key=lambda c: -sign * c.total)
        score = sign * ranked[0].total
        if score > best_score:
            best_score = score
            best = RootCause(change=change, dimension=dim, rate=sum(c.rate for c in parts),
                             mix=sum(c.mix for c in parts),
                             top=[c for c in ranked[:top_n] if sign * c.total > 0])
    return best


def _contributions(codes, dim, w_rows, w_val, b_rows, b_val, b_w, m0) -> list[Contribution]:
    size = len(codes.labels[dim])
    cw, cb = codes.codes[dim][w_rows], codes.codes[dim][b_rows]
    n1 = np.bincount(cw, minlength=size).astype("float64")
    sum1 = np.bincount(cw, weights=w_val, minlength=size)
    w0 = np.bincount(cb, weights=b_w, minlength=size)
    sum0 = np.bincount(cb, weights=b_w * b_val, minlength=size)
    s1, s0 = n1 / n1.sum(), w0 / w0.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        mean1 = np.where(n1 > 0, sum1 / n1, np.nan)
        # A sub-segment new in the window is judged against the segment's mean.
        mean0 = np.where(w0 > 0, sum0 / w0, m0)
    rate = np.where(n1 > 0, s1 * (np.nan_to_num(mean1) - mean0), 0.0)
    mix = (s1 - s0) * (mean0 - m0)
    return [Contribution(dim, str(codes.labels[dim][j]), int(n1[j]), float(mean1[j]), float(mean0[j]),
                         float(s1[j]), float(s0[j]), float(rate[j]), float(mix[j]))
            for j in range(size) if n1[j] > 0 or w0[j] > 0]
