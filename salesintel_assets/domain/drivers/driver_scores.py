"""Driver scores: which segments pull the win rate down or up, and whether
that is distinguishable from noise.

Each segment of each driver dimension (rules ``drivers.dimensions``, over all
closed history) gets its Segment Performance Index (SPI: win-rate gap to the
dimension's rate x volume share). Only material segments (more than
``material_share`` of the dimension's closed deals) are tested and ranked:
each against the rest of its dimension with Fisher's exact test, the
p-values adjusted with Benjamini-Hochberg across every tested segment of
every dimension. A segment is a driver ('hurting' / 'helping') only when its
q-value is within ``fdr_alpha``, its gap to the rest is at least
``min_rate_gap`` and it has enough deals; otherwise it is 'neutral' and its
verdict says why in plain words.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from salesintel_assets.domain.metrics.deal_metrics import empty_frame
from salesintel_assets.domain.common.rules import Rules
from salesintel_assets.domain.common.stats import benjamini_hochberg

DRIVER_SCORES_COLUMNS = {
    "dimension": "object", "segment": "object", "deals": "int64", "won": "int64",
    "volume_share": "float64", "win_rate": "float64", "ci_low": "float64", "ci_high": "float64",
    "rest_deals": "int64", "rest_win_rate": "float64", "rate_gap": "float64", "spi": "float64",
    "material": "bool", "enough_data": "bool", "p_value": "float64", "q_value": "float64",
    "significant": "bool", "direction": "object", "rank": "Int64", "verdict": "object",
}


def fisher_p_values(won: np.ndarray, deals: np.ndarray, rest_won: np.ndarray,
                    rest_deals: np.ndarray) -> np.ndarray:
    """Two-sided Fisher exact test of each segment against the rest (one
    call per segment, not per deal)."""
    out = np.full(len(won), np.nan)
    for i in range(len(won)):
        if deals[i] > 0 and rest_deals[i] > 0:
            table = [[won[i], deals[i] - won[i]], [rest_won[i], rest_deals[i] - rest_won[i]]]
            out[i] = stats.fisher_exact(table).pvalue
    return out


def driver_scores(segment_metrics: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """One row per segment of the driver dimensions, drivers first."""
    r = rules.drivers
    rows = segment_metrics[(segment_metrics["period_type"] == "all")
                           & segment_metrics["dimension"].isin(r.dimensions)]
    if rows.empty:
        return empty_frame(DRIVER_SCORES_COLUMNS)
    out = rows[["dimension", "segment", "deals", "won", "volume_share", "win_rate", "ci_low", "ci_high",
                "spi", "enough_data"]].copy()
    totals = out.groupby("dimension")[["deals", "won"]].transform("sum")
    out["rest_deals"] = totals["deals"] - out["deals"]
    rest_won = totals["won"] - out["won"]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["rest_win_rate"] = rest_won / out["rest_deals"].where(out["rest_deals"] > 0)
    out["rate_gap"] = out["win_rate"] - out["rest_win_rate"]
    out["material"] = out["volume_share"] > r.material_share
    tested = (out["material"] & (out["rest_deals"] > 0)).to_numpy()
    p = np.full(len(out), np.nan)
    p[tested] = fisher_p_values(out["won"].to_numpy()[tested], out["deals"].to_numpy()[tested],
                                rest_won.to_numpy()[tested], out["rest_deals"].to_numpy()[tested])
    out["p_value"] = p
    out["q_value"] = benjamini_hochberg(p)
    out["significant"] = (out["q_value"].le(r.fdr_alpha) & out["rate_gap"].abs().ge(r.min_rate_gap)
                          & out["enough_data"])
    out["direction"] = np.select([out["significant"] & (out["rate_gap"] < 0),
                                  out["significant"] & (out["rate_gap"] > 0)],
                                 ["hurting", "helping"], default="neutral")
    out = _ranked(out)
    out["verdict"] = [verdict(row, rules) for row in out.itertuples(index=False)]
    return out[list(DRIVER_SCORES_COLUMNS)].astype(DRIVER_SCORES_COLUMNS).reset_index(drop=True)


def _ranked(out: pd.DataFrame) -> pd.DataFrame:
    """Material segments ranked 1..n: significant drivers first, then by
    |SPI|; segments below the materiality bar get no rank."""
    keys = out.assign(_abs=out["spi"].abs(), _sig=out["significant"], _mat=out["material"])
    order = keys.sort_values(["_mat", "_sig", "_abs", "dimension", "segment"],
                             ascending=[False, False, False, True, True], kind="stable").index
    out = out.loc[order]
    rank = pd.Series(np.arange(1, len(out) + 1), index=out.index, dtype="Int64")
    out["rank"] = rank.where(out["material"], pd.NA)
    return out


def _pct(x: float) -> str:
    return "n/a" if pd.isna(x) else f"{x:.1%}"


def verdict(row, rules: Rules) -> str:
    """A plain-words judgement of one segment."""
    r = rules.drivers
    n = f"n={row.deals:,}"
    compare = f"{_pct(row.win_rate)} vs {_pct(row.rest_win_rate)} for the rest"
    if not row.material:
        return f"{row.volume_share:.1%} of deals ({n}): below the {r.material_share:.0%} materiality bar, not ranked"
    if row.rest_deals == 0:
        return f"the only segment of {row.dimension} ({n}): nothing to compare with"
    if not row.enough_data:
        return f"not enough data ({n}; at least {rules.metrics.min_sample} needed): {compare}"
    q = f"q={row.q_value:.2g}"
    if row.significant:
        effect = "hurting" if row.rate_gap < 0 else "helping"
        return f"{effect} win rate: {compare} ({n}, {q})"
    if row.q_value <= r.fdr_alpha:
        return (f"distinguishable but small: {compare}, a gap under {r.min_rate_gap:.0%} points "
                f"({n}, {q})")
    return f"not distinguishable from the rest: {compare} ({n}, {q})"


def driver_summary(scores: pd.DataFrame) -> str:
    """One honest sentence for the asset's metadata."""
    tested = scores[scores["p_value"].notna()]
    if tested.empty:
        return "No material segment could be tested: not enough closed deals."
    drivers = scores[scores["significant"]]
    if drivers.empty:
        return (f"None of the {len(tested)} material segments has a win rate distinguishable from the rest "
                "after false-discovery control: the differences are within noise, so nothing is ranked "
                "as a driver.")
    names = lambda d: ", ".join(f"{r.dimension}={r.segment}" for r in d.itertuples())  # noqa: E731
    hurting, helping = drivers[drivers["direction"] == "hurting"], drivers[drivers["direction"] == "helping"]
    parts = [f"{len(drivers)} of {len(tested)} material segments differ from the rest"]
    if len(hurting):
        parts.append(f"hurting: {names(hurting)}")
    if len(helping):
        parts.append(f"helping: {names(helping)}")
    return "; ".join(parts) + "."
