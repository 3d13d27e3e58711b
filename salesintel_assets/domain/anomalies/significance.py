"""Segment tests of the anomalies layer, vectorised over every segment.

A *comparison* holds a recent window sample and a weighted baseline sample of
one measurement (won 0/1, cycle days, open age, low quality 0/1, a metric).
Each segment of a dimension set (``()`` is the whole business, ``("industry",)``
a single dimension, ``("industry", "region")`` a pair) is tested at once with
``numpy.bincount`` over integer segment codes, so thousands of segments cost
milliseconds and nothing loops over deals.

Rate tests are beta-binomial: the window count against a baseline rate that is
itself estimated (from ``n_eff`` effective baseline deals). Rank tests compare
the window's values with the weighted baseline distribution (a Mann-Whitney
probability of superiority with a tie-corrected normal approximation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats as sps

from salesintel_assets.domain.common.segment_keys import ALL, format_segment
from salesintel_assets.domain.common.stats import beta_binomial_pvalues


@dataclass
class Sample:
    """Rows of the deal frame (positions) with one value each and a weight."""

    rows: np.ndarray
    value: np.ndarray
    weight: np.ndarray | None = None
    # Distinct deals behind the rows (a deal can appear on several baseline
    # dates); None means every row is its own deal.
    first_of_deal: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.rows = np.asarray(self.rows, dtype=np.int64)
        self.value = np.asarray(self.value, dtype="float64")
        if self.weight is None:
            self.weight = np.ones(len(self.rows))


@dataclass
class Comparison:
    """One measurement of one window against its baseline."""

    anomaly_family: str          # win_rate | cycle | open_age | still_open | quality | metric_shift
    metric: str                  # the output contract's metric name
    kind: str                    # "rate" or "rank"
    alternative: str             # "two-sided" | "greater" | "less"
    window_days: int
    window_start: pd.Timestamp
    window_end: pd.Timestamp
    window: Sample
    baseline: Sample
    min_window_deals: int
    min_baseline_deals: float
    min_effect: float
    dimsets: list[tuple[str, ...]]
    # Rank tests bin their values: whole days (bin = day, capped at bins - 1)
    # or, for a metric, between the given quantile edges.
    bins: int = 0
    bin_edges: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    # Baseline weights per dimension set (each segment's own exposure);
    # None: ``baseline.weight`` for every dimension set.
    reweight: Callable[[tuple], np.ndarray] | None = None
    # Why values beyond those compared are left out (open ages: older than
    # every baseline date could show, or than a clean-up left), in words.
    older_left_out: str = ""
    # The ages compared (youngest, oldest) of a test of deals by age on each date (still open).
    ages: tuple[int, int] | None = None
    # When the baseline is not the days just before the window: when it was, in words.
    baseline_words: str = ""

    def baseline_weight(self, dimset: tuple[str, ...]) -> np.ndarray:
        return self.baseline.weight if self.reweight is None else self.reweight(tuple(dimset))

    @property
    def day_valued(self) -> bool:
        return self.kind == "rank" and self.bin_edges is None

    def value_bins(self, values: np.ndarray) -> np.ndarray:
        if self.day_valued:
            return np.clip(np.round(values), 0, self.bins - 1).astype(np.int64)
        return np.searchsorted(self.bin_edges, values, side="right").astype(np.int64)


class SegmentCodes:
    """Integer codes of every segment dimension over the whole deal frame."""

    def __init__(self, deals: pd.DataFrame, dimensions: list[str]):
        self.labels: dict[str, np.ndarray] = {}
        self.codes: dict[str, np.ndarray] = {}
        self._cache: dict = {}
        for dim in dimensions:
            values = deals[dim].to_numpy(dtype=object, na_value="(unknown)")
            codes, labels = pd.factorize(values, sort=True)
            self.codes[dim] = codes.astype(np.int64)
            self.labels[dim] = np.asarray(labels, dtype=object)

    def group_ids(self, dimset: tuple[str, ...], rows: np.ndarray) -> tuple[np.ndarray, int]:
        """Segment id of each row for a dimension set, and the number of ids
        (cached per row array: several tests share the same deals)."""
        key = (id(rows), len(rows), dimset)
        hit = self._cache.get(key)
        if hit is not None and hit[0] is rows:
            return hit[1], hit[2]
        gid = np.zeros(len(rows), dtype=np.int64)
        size = 1
        for dim in dimset:
            n = len(self.labels[dim])
            gid = gid * n + self.codes[dim][rows]
            size *= n
        self._cache[key] = (rows, gid, size)  # holding rows keeps its id unique
        return gid, size

    def gid_of(self, dimset: tuple[str, ...], keys: dict) -> int:
        """Segment id of one segment's labels."""
        gid = 0
        for dim in dimset:
            labels = self.labels[dim]
            gid = gid * len(labels) + int(np.flatnonzero(labels == keys[dim])[0])
        return gid

    def decode(self, dimset: tuple[str, ...], gid: np.ndarray) -> dict[str, np.ndarray]:
        """Segment id back to each dimension's label."""
        out = {}
        rest = np.asarray(gid, dtype=np.int64)
        for dim in reversed(dimset):
            n = len(self.labels[dim])
            out[dim] = self.labels[dim][rest % n]
            rest = rest // n
        return out


def segment_label(keys: dict[str, str]) -> str:
    """``industry=EdTech&region=Europe`` (keys sorted); ``all`` without keys."""
    return format_segment(keys)


def dimension_label(dimset: tuple[str, ...]) -> str:
    return "&".join(sorted(dimset)) if dimset else ALL


def run_comparison(comp: Comparison, codes: SegmentCodes, segment_columns: list[str]) -> pd.DataFrame:
    """One row per tested segment of every dimension set of ``comp``;
    segments below the minimum sample sizes are not tested (not returned)."""
    frames = [_test_dimset(comp, codes, dimset, segment_columns) for dimset in comp.dimsets]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def _test_dimset(comp: Comparison, codes: SegmentCodes, dimset: tuple[str, ...],
                 segment_columns: list[str]) -> pd.DataFrame:
    sums = segment_sums(comp, codes, dimset)
    agg = finalize(comp, sums)
    tested = (agg["n"] >= comp.min_window_deals) & (agg["baseline_n"] >= comp.min_baseline_deals)
    idx = np.flatnonzero(tested)
    if not len(idx):
        return pd.DataFrame()
    labels = codes.decode(dimset, idx)
    columns = {k: v[idx] for k, v in agg.items()}
    columns.update({col: labels[col] if col in labels else np.full(len(idx), None, dtype=object)
                    for col in segment_columns})
    columns["dimension"] = np.full(len(idx), dimension_label(dimset), dtype=object)
    columns["segment"] = [segment_label({d: labels[d][i] for d in dimset}) for i in range(len(idx))]
    columns["dims"] = [dimset] * len(idx)
    return pd.DataFrame(columns)


def segment_sums(comp: Comparison, codes: SegmentCodes, dimset: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Additive window and baseline sums of every segment id of a dimension
    set (cached on the comparison): the sums of a segment without one inside
    it are a subtraction, which is how the hierarchy rule tests the rest."""
    cache = comp.__dict__.setdefault("_sums", {})
    if dimset not in cache:
        w_gid, size = codes.group_ids(dimset, comp.window.rows)
        b_gid, _ = codes.group_ids(dimset, comp.baseline.rows)
        cache[dimset] = _compute_sums(comp, w_gid, b_gid, size, comp.baseline_weight(dimset))
    return cache[dimset]


def _compute_sums(comp: Comparison, w_gid: np.ndarray, b_gid: np.ndarray, size: int,
                  weight: np.ndarray) -> dict:
    win, base = comp.window, comp.baseline
    sums = {
        "n": np.bincount(w_gid, minlength=size).astype("float64"),
        "k": np.bincount(w_gid, weights=win.value, minlength=size),
        "w_sum": np.bincount(b_gid, weights=weight, minlength=size),
        "w_sq": np.bincount(b_gid, weights=weight ** 2, minlength=size),
        "wv": np.bincount(b_gid, weights=weight * base.value, minlength=size),
        "rows": np.bincount(b_gid, minlength=size).astype("float64"),
        "deals": (np.bincount(b_gid, weights=base.first_of_deal.astype("float64"), minlength=size)
                  if base.first_of_deal is not None else None),
    }
    if comp.kind == "rank":
        nb = comp.bins
        w_bin, b_bin = _bins(comp)
        sums["h1"] = np.bincount(w_gid * nb + w_bin, minlength=size * nb).reshape(size, nb).astype("float64")
        sums["h0"] = np.bincount(b_gid * nb + b_bin, weights=weight, minlength=size * nb).reshape(size, nb)
    return sums


def _bins(comp: Comparison) -> tuple[np.ndarray, np.ndarray]:
    cached = comp.__dict__.get("_bin_cache")
    if cached is None:
        cached = (comp.value_bins(comp.window.value), comp.value_bins(comp.baseline.value))
        comp.__dict__["_bin_cache"] = cached
    return cached


def finalize(comp: Comparison, sums: dict[str, np.ndarray | None]) -> dict[str, np.ndarray]:
    """Test statistics and p-values from the sums of each segment."""
    n, w_sum, w_sq = sums["n"], sums["w_sum"], sums["w_sq"]
    with np.errstate(invalid="ignore", divide="ignore"):
        n_eff = np.where(w_sq > 0, w_sum ** 2 / w_sq, 0.0)
        if sums.get("deals") is not None:
            # A deal seen on several baseline dates is not several deals.
            n_eff = np.where(sums["rows"] > 0, n_eff * sums["deals"] / np.maximum(sums["rows"], 1), 0.0)
        observed = sums["k"] / n
        expected = sums["wv"] / w_sum
    if comp.kind == "rate":
        a = np.nan_to_num(expected) * n_eff + 0.5
        b = (1 - np.nan_to_num(expected)) * n_eff + 0.5
        p = beta_binomial_pvalues(sums["k"], n, a, b, alternative=comp.alternative)
        return {"n": n, "k": sums["k"], "baseline_n": n_eff, "observed": observed, "expected": expected,
                "effect": observed - expected, "rank_effect": np.full(len(n), np.nan), "p_value": p}
    h1, h0 = sums["h1"], sums["h0"]
    with np.errstate(invalid="ignore", divide="ignore"):
        f0 = h0 / w_sum[:, None]
        mid_cdf = np.cumsum(f0, axis=1) - 0.5 * f0
        auc = (h1 * mid_cdf).sum(axis=1) / n
        ties = 1 - (f0 ** 3).sum(axis=1)
        sd = np.sqrt(np.clip(ties, 1e-12, None) / 12 * (1 / n + 1 / n_eff))
        z = (auc - 0.5) / sd
    if comp.alternative == "greater":
        p = sps.norm.sf(z)
    elif comp.alternative == "less":
        p = sps.norm.cdf(z)
    else:
        p = 2 * sps.norm.sf(np.abs(z))
    if comp.day_valued:  # days read best as medians; metrics as means
        observed, expected = _hist_median(h1), _hist_median(h0)
    return {"n": n, "k": np.full(len(n), np.nan), "baseline_n": n_eff, "observed": observed,
            "expected": expected, "effect": observed - expected, "rank_effect": auc - 0.5,
            "p_value": np.where(np.isfinite(z), p, np.nan)}


def _hist_median(hist: np.ndarray) -> np.ndarray:
    """Median day of each row of a (weighted) day histogram."""
    total = hist.sum(axis=1)
    cum = np.cumsum(hist, axis=1)
    idx = (cum < (total / 2)[:, None]).sum(axis=1)
    return np.where(total > 0, np.clip(idx, 0, hist.shape[1] - 1), np.nan).astype("float64")


def complement_stats(comp: Comparison, codes: SegmentCodes, outer: dict, inner: dict) -> dict:
    """Test statistics of the outer segment without the inner one (the
    hierarchy rule: is the outer segment's change all inside the inner?),
    as scalars, with ``size`` (see ``signed_size``)."""
    outer_dims, inner_dims = comp_dims(comp, outer), comp_dims(comp, inner)
    o_sums, i_sums = segment_sums(comp, codes, outer_dims), segment_sums(comp, codes, inner_dims)
    o_gid, i_gid = codes.gid_of(outer_dims, outer), codes.gid_of(inner_dims, inner)
    rest: dict[str, np.ndarray | None] = {}
    for key, values in o_sums.items():
        if values is None:
            rest[key] = None
            continue
        diff = values[o_gid] - i_sums[key][i_gid]
        if key != "k" or comp.kind == "rate":  # sums of counts and weights cannot go below 0
            diff = np.maximum(diff, 0.0)
        rest[key] = diff[None, :] if key in ("h0", "h1") else np.array([diff])
    agg = finalize(comp, rest)
    out = {k: float(v[0]) for k, v in agg.items()}
    out["p_value"], out["size"] = _p_and_size(comp, agg)
    return out


def rest_p_value(comp: Comparison, codes: SegmentCodes, keys: dict, without: dict) -> tuple[float, float]:
    """p-value and effect of a segment without the deals of another
    (overlapping) segment: is its change still there?"""
    w_keep = in_segment(codes, comp.window.rows, keys) & ~in_segment(codes, comp.window.rows, without)
    b_keep = in_segment(codes, comp.baseline.rows, keys) & ~in_segment(codes, comp.baseline.rows, without)
    sums = _compute_sums(comp, np.where(w_keep, 0, 1), np.where(b_keep, 0, 1), 2,
                         comp.baseline_weight(comp_dims(comp, keys)))
    return _p_and_size(comp, finalize(comp, {k: (None if v is None else v[:1]) for k, v in sums.items()}))


def _p_and_size(comp: Comparison, agg: dict) -> tuple[float, float]:
    if agg["n"][0] < 1 or agg["baseline_n"][0] < 1:
        return 1.0, 0.0
    size = signed_size(comp.kind, comp.day_valued, agg["observed"], agg["expected"], agg["effect"],
                       agg["rank_effect"])[0]
    return float(np.nan_to_num(agg["p_value"][0], nan=1.0)), float(np.nan_to_num(size))


def signed_size(kind, day_valued, observed, expected, effect, rank_effect) -> np.ndarray:
    """The change that is compared with ``min_effect``, signed: rates and
    shares in absolute points; days (cycles, ages) as the relative change of
    the median (0.2 = 20 % longer), counted only when it agrees with the rank
    test; metrics as the rank effect (probability of superiority - 1/2)."""
    kind, day_valued = np.asarray(kind), np.asarray(day_valued, dtype=bool)
    observed, expected = np.asarray(observed, dtype="float64"), np.asarray(expected, dtype="float64")
    rank_effect = np.asarray(rank_effect, dtype="float64")
    relative = observed / np.maximum(expected, 1.0) - 1
    relative = np.where(np.sign(relative) == np.sign(rank_effect), relative, 0.0)
    rank = np.where(day_valued, relative, rank_effect)
    return np.where(kind == "rank", rank, np.asarray(effect, dtype="float64"))


def comp_dims(comp: Comparison, keys: dict) -> tuple[str, ...]:
    """The comparison's dimension set holding exactly these keys."""
    for dimset in comp.dimsets:
        if set(dimset) == set(keys):
            return dimset
    return tuple(sorted(keys))


def in_segment(codes: SegmentCodes, rows: np.ndarray, keys: dict) -> np.ndarray:
    """Which of these rows belong to the segment."""
    keep = np.ones(len(rows), dtype=bool)
    for dim, label in keys.items():
        code = np.flatnonzero(codes.labels[dim] == label)
        keep &= codes.codes[dim][rows] == (code[0] if len(code) else -1)
    return keep
