"""Which segment tests become findings: Benjamini-Hochberg over every test
of a run, the minimum effect, one window per segment, the hierarchy rule
(a segment and one inside it), findings explained by a stronger overlapping
one, and the step-up re-applied to the distinct findings."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

from salesintel_assets.domain.anomalies.significance import (
    Comparison, SegmentCodes, complement_stats, rest_p_value, run_comparison, signed_size,
)
from salesintel_assets.domain.common.rules import Rules
from salesintel_assets.domain.common.stats import benjamini_hochberg

SEGMENT_COLUMNS = ["industry", "region", "product_type", "lead_source", "sales_rep_id"]


def run_tests(comps: list[Comparison], codes: SegmentCodes, rules: Rules) -> pd.DataFrame:
    """All segment tests of the run with BH q-values over all of them."""
    frames = []
    for i, comp in enumerate(comps):
        tested = run_comparison(comp, codes, SEGMENT_COLUMNS)
        if len(tested):
            frames.append(tested.assign(comp_id=i, family=comp.anomaly_family, metric=comp.metric,
                                        window_days=comp.window_days, window_start=comp.window_start,
                                        window_end=comp.window_end, min_effect=comp.min_effect,
                                        alternative=comp.alternative, kind=comp.kind))
    if not frames:
        return pd.DataFrame()
    tests = pd.concat(frames, ignore_index=True)
    tests["q_value"] = benjamini_hochberg(tests["p_value"].to_numpy())
    tests["sign"] = np.sign(np.where(tests["kind"].eq("rank"), tests["rank_effect"], tests["effect"]))
    tests["size"] = effect_size(tests)
    tests["direction"] = np.where(tests["sign"] > 0, "up", "down")
    agrees = (tests["alternative"].eq("two-sided") | (tests["alternative"].eq("greater") & (tests["sign"] > 0))
              | (tests["alternative"].eq("less") & (tests["sign"] < 0)))
    tests["significant"] = (tests["q_value"] <= rules.anomalies.fdr_alpha) & (tests["size"] >= tests["min_effect"]) \
        & agrees
    tests["anomaly_type"] = _types(tests)
    return tests


def effect_size(tests: pd.DataFrame) -> np.ndarray:
    """|signed_size| of each test: what is compared with ``min_effect``."""
    day_valued = tests["family"].isin(["cycle", "open_age"]).to_numpy()
    return np.abs(signed_size(tests["kind"].to_numpy(), day_valued, tests["observed"], tests["expected"],
                              tests["effect"], tests["rank_effect"]))


def _types(tests: pd.DataFrame) -> np.ndarray:
    fam = tests["family"]
    return np.select(
        [fam.eq("win_rate") & (tests["sign"] < 0), fam.eq("win_rate"), fam.eq("cycle"), fam.eq("open_age"),
         fam.eq("still_open"), fam.eq("quality")],
        ["win_rate_dip", "win_rate_spike", "cycle_slowdown", "open_age_increase", "still_open_increase",
         "quality_drop"],
        default="metric_shift").astype(object)


def keys_of(row) -> dict:
    return {d: row[d] for d in row["dims"]}


def resolve_hierarchy(found: pd.DataFrame, comps: list[Comparison], codes: SegmentCodes,
                      rules: Rules) -> pd.DataFrame:
    """A segment and a segment inside it both fire (same type and direction):
    - the rest of the outer one shows no change: the inner one explains it,
      only the inner one is reported;
    - the rest changed too and the inner one no more than the rest: one
      change across the outer segment, only the outer one is reported;
    - the rest changed and the inner one clearly more: two changes, both
      are reported (the inner one's beyond the outer's).
    "Clearly more" is judged for all the inner segments of one outer
    together (Benjamini-Hochberg at ``complement_alpha``): one business-wide
    change shows in every segment, and tested one by one, a few of dozens
    would pass by chance and echo it as findings of their own."""
    alpha = rules.anomalies.hierarchy.complement_alpha
    drop: set[int] = set()
    for _, group in found.groupby(["anomaly_type", "metric", "direction"], sort=False):
        # Plain dicts: the pair loop below reads fields a few hundred thousand
        # times at 1M deals, and a Series lookup costs ~5 us each.
        rows = list(group.to_dict("index").items())
        for i, outer in rows:
            beyond = []   # (inner, one-sided p of its excess over the rest, excess at least min_effect)
            for j, inner in rows:
                if i == j or not set(outer["dims"]) < set(inner["dims"]):
                    continue
                outer_keys, inner_keys = keys_of(outer), keys_of(inner)
                if any(inner_keys[d] != v for d, v in outer_keys.items()):
                    continue
                rest = complement_stats(comps[int(outer["comp_id"])], codes, outer_keys, inner_keys)
                if not _changed(rest["p_value"], rest["size"], outer, alpha):
                    drop.add(i)
                else:
                    beyond.append((j, *_excess(inner, rest)))
            if beyond:
                q = benjamini_hochberg(np.array([p for _, p, _ in beyond]))
                drop.update(j for (j, _, large), qv in zip(beyond, q) if not (qv <= alpha and large))
    return found.drop(index=list(drop))


def _excess(inner: dict, rest: dict) -> tuple[float, bool]:
    """How surely the inner segment changed more than the rest of the outer
    one (a one-sided p-value), and whether by at least min_effect."""
    sign = inner["sign"]
    if inner["kind"] == "rate":
        gap = (inner["observed"] - inner["expected"]) - (rest["observed"] - rest["expected"])
        var = sum(p * (1 - p) * (1 / max(n, 1) + 1 / max(b, 1)) for p, n, b in (
            (inner["expected"], inner["n"], inner["baseline_n"]), (rest["expected"], rest["n"], rest["baseline_n"])))
    else:
        gap = inner["rank_effect"] - rest["rank_effect"]
        var = sum((1 / max(n, 1) + 1 / max(b, 1)) / 12 for n, b in (
            (inner["n"], inner["baseline_n"]), (rest["n"], rest["baseline_n"])))
    inner_size = signed_size(inner["kind"], inner["family"] in ("cycle", "open_age"), [inner["observed"]],
                             [inner["expected"]], [inner["effect"]], [inner["rank_effect"]])[0]
    z = sign * np.nan_to_num(gap) / np.sqrt(max(var, 1e-12))
    return float(norm.sf(z)), bool(sign * (inner_size - rest["size"]) >= inner["min_effect"])


def _changed(p: float, size: float, finding: dict, alpha: float) -> bool:
    """Does the rest of a segment still show a reportable change in the
    finding's direction (significant at ``alpha`` and at least min_effect)?"""
    return p < alpha and np.sign(size) == finding["sign"] and abs(size) >= finding["min_effect"]


def explain_away(found: pd.DataFrame, comps: list[Comparison], codes: SegmentCodes, alpha: float) -> pd.DataFrame:
    """Strongest finding first: a finding whose change is gone once the deals
    of an already kept, overlapping finding of the same kind and direction
    are left out is explained by it (a region whose win rate fell only
    through the lead source that fell; a rep whose slower deals are those of
    a slowed industry). The rest must pass the run's own bar (``alpha``, the
    current step-up threshold), or a chance wobble plus a share of another
    finding's change would be reported as a second finding. Custom metrics
    (PVS, SMI, DQS are built from win rates, cycles and quality) are
    explained by a finding of any kind: on the same segment at once, on an
    overlapping one by the same rest test; several custom metrics shifting
    on one segment are one finding."""
    primary = found.loc[found["family"] != "metric_shift", "segment"]
    found = found[(found["family"] != "metric_shift") | ~found["segment"].isin(primary)]
    # PVS, SMI and DQS share their inputs: shifts of several on one segment are one finding (the surest).
    shifts = found[found["family"] == "metric_shift"].sort_values(["q_value", "window_days"], kind="stable")
    found = found.drop(index=shifts.index[shifts.duplicated("segment")])
    kept: list[int] = []
    records = found.to_dict("index")   # plain dicts: cheap field reads in the loop below
    for idx in found.sort_values(["q_value", "window_days"], kind="stable").index:
        row = records[idx]
        keys = keys_of(row)
        explained = False
        for other_idx in kept:
            other_row = records[other_idx]
            other = keys_of(other_row)
            related_kind = row["family"] == "metric_shift" or (
                other_row["family"] == row["family"] and other_row["sign"] == row["sign"])
            # Same segment (another metric), disjoint segments, or one containing this one: nothing to explain.
            if not related_kind or other == keys or set(other) <= set(keys) \
                    or any(keys.get(d, v) != v for d, v in other.items()):
                continue
            p, size = rest_p_value(comps[int(row["comp_id"])], codes, keys, other)
            if not _changed(p, size, row, alpha):
                explained = True
                break
        if not explained:
            kept.append(idx)
    return found.loc[kept]


def select_findings(tests: pd.DataFrame, comps: list[Comparison], codes: SegmentCodes,
                    rules: Rules) -> pd.DataFrame:
    """The distinct findings of a run.

    A real change in one segment also shows in many segments around it (its
    pairs, its parent), and each of those is a BH rejection, which loosens the
    step-up threshold for everything else. So after collapsing windows,
    hierarchy and explained findings, the step-up is re-applied with the
    number of distinct findings (p <= fdr_alpha x findings / tests) until it
    holds for all of them: the false-discovery rate is then controlled over
    what is reported, not over the redundant rejections behind it."""
    m = int(tests["p_value"].notna().sum())
    candidates = tests[tests["significant"]].sort_values(["q_value", "window_days"], kind="stable")
    limit = float(candidates["p_value"].max()) if len(candidates) else 0.0  # the BH threshold
    while True:
        found = candidates[candidates["p_value"] <= limit]
        found = found.drop_duplicates(["anomaly_type", "metric", "segment"], keep="first")
        found = resolve_hierarchy(found, comps, codes, rules)
        found = explain_away(found, comps, codes, alpha=limit)
        step_up = rules.anomalies.fdr_alpha * len(found) / max(m, 1)
        if (found["p_value"] <= step_up).all():
            return found
        limit = step_up
