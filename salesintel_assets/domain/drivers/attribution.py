"""Win-rate attribution: why did the win rate change between two periods?

For each dimension the overall rate R = sum_i s_i r_i (s: a segment's share
of closed deals, r: its win rate). The change from period a to period b
splits per segment with the midpoint formula

    rate effect_i = (r_b,i - r_a,i) x (s_a,i + s_b,i) / 2
    mix effect_i  = (s_b,i - s_a,i) x (r_a,i + r_b,i) / 2

whose sum over the segments is exactly R_b - R_a (no residual). A segment
absent in one period has share 0 there; its rate in that period is taken to
be its rate in the other, so its whole contribution is mix (it appeared or
disappeared), and the identity still holds.

Periods come from the rules: by default the last complete quarter before the
analysis date (b) against the quarter before it (a).

The closes of clean-up days are left out of both periods (``segment_metrics``
counts them apart): a January sweep of 575 stale deals closed lost made a
generated CRM's first quarter read "win rate 43.3 % -> 17.9 %, a real change"
split over every segment that held stale deals, where its own closes won
46 %. A sweep is how the CRM was tidied, not how the quarter sold.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from salesintel_assets.domain.metrics.deal_metrics import empty_frame
from salesintel_assets.domain.metrics.segment_metrics import own_closes
from salesintel_assets.domain.common.rules import Rules
from salesintel_assets.domain.common.stats import wilson_interval

ATTRIBUTION_COLUMNS = {
    "dimension": "object", "segment": "object", "period_a": "object", "period_b": "object",
    "n_a": "int64", "n_b": "int64", "won_a": "int64", "won_b": "int64", "share_a": "float64",
    "share_b": "float64", "rate_a": "float64", "rate_b": "float64", "rate_effect": "float64",
    "mix_effect": "float64", "total_effect": "float64", "overall_rate_a": "float64",
    "overall_rate_b": "float64", "total_change": "float64",
}


def _label(period: pd.Period) -> str:
    return str(period) if period.freqstr.startswith("Q") else period.strftime("%Y-%m")


def compared_periods(as_of: pd.Timestamp, rules: Rules) -> tuple[str, str, str]:
    """(period_type, period_a, period_b): the configured periods, or the last
    complete one before ``as_of`` and the one before it."""
    a = rules.drivers.attribution
    if a.period_a is not None:
        return a.period_type, a.period_a, a.period_b
    freq = "Q" if a.period_type == "quarter" else "M"
    # The period containing the day after as_of is incomplete unless as_of ends it.
    last_complete = (pd.Timestamp(as_of) + pd.Timedelta(days=1)).to_period(freq) - 1
    return a.period_type, _label(last_complete - 1), _label(last_complete)


def decompose(n_a, won_a, n_b, won_b) -> dict[str, np.ndarray]:
    """Midpoint rate/mix decomposition of one dimension's segments."""
    n_a, won_a = np.asarray(n_a, dtype="float64"), np.asarray(won_a, dtype="float64")
    n_b, won_b = np.asarray(n_b, dtype="float64"), np.asarray(won_b, dtype="float64")
    share_a, share_b = n_a / n_a.sum(), n_b / n_b.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        rate_a, rate_b = won_a / n_a, won_b / n_b
    # An absent segment borrows the other period's rate: its share there is 0.
    fill_a = np.where(n_a > 0, rate_a, rate_b)
    fill_b = np.where(n_b > 0, rate_b, rate_a)
    rate_effect = (fill_b - fill_a) * (share_a + share_b) / 2
    mix_effect = (share_b - share_a) * (fill_a + fill_b) / 2
    return {"share_a": share_a, "share_b": share_b, "rate_a": np.where(n_a > 0, rate_a, np.nan),
            "rate_b": np.where(n_b > 0, rate_b, np.nan), "rate_effect": rate_effect,
            "mix_effect": mix_effect, "total_effect": rate_effect + mix_effect,
            "overall_rate_a": won_a.sum() / n_a.sum(), "overall_rate_b": won_b.sum() / n_b.sum()}


def win_rate_attribution(segment_metrics: pd.DataFrame, rules: Rules, as_of: pd.Timestamp,
                         periods: tuple[str, str, str] | None = None) -> pd.DataFrame:
    """Rate and mix effects per segment of every driver dimension, without
    clean-up days' closes; empty when either period has no other closed deals."""
    period_type, period_a, period_b = periods or compared_periods(as_of, rules)
    segment_metrics = own_closes(segment_metrics, rules.metrics.min_sample)
    rows = segment_metrics[(segment_metrics["period_type"] == period_type)
                           & segment_metrics["period"].isin([period_a, period_b])
                           & segment_metrics["dimension"].isin(rules.drivers.dimensions)]
    parts = []
    for dimension, group in rows.groupby("dimension", sort=False):
        wide = group.pivot_table(index="segment", columns="period", values=["deals", "won"],
                                 aggfunc="sum", fill_value=0)
        if period_a not in wide["deals"] or period_b not in wide["deals"]:
            continue  # a period without closed deals: nothing to attribute
        if len(wide.index) < 2:
            continue  # one value in the data (every lead source "Unknown"): it is the whole business, not a cause
        n_a, n_b = wide["deals"][period_a].to_numpy(), wide["deals"][period_b].to_numpy()
        won_a, won_b = wide["won"][period_a].to_numpy(), wide["won"][period_b].to_numpy()
        if n_a.sum() == 0 or n_b.sum() == 0:
            continue
        parts.append(pd.DataFrame({"dimension": dimension, "segment": wide.index, "period_a": period_a,
                                   "period_b": period_b, "n_a": n_a, "n_b": n_b, "won_a": won_a,
                                   "won_b": won_b, **decompose(n_a, won_a, n_b, won_b)}))
    if not parts:
        return empty_frame(ATTRIBUTION_COLUMNS)
    out = pd.concat(parts, ignore_index=True)
    out["total_change"] = out["overall_rate_b"] - out["overall_rate_a"]
    order = {d: i for i, d in enumerate(rules.drivers.dimensions)}
    out = out.assign(_d=out["dimension"].map(order), _abs=out["total_effect"].abs())
    out = out.sort_values(["_d", "_abs"], ascending=[True, False], kind="stable")
    return out[list(ATTRIBUTION_COLUMNS)].astype(ATTRIBUTION_COLUMNS).reset_index(drop=True)


def change_summary(segment_metrics: pd.DataFrame, period_type: str, period_a: str, period_b: str,
                   alpha: float = 0.05) -> dict:
    """The company's win-rate change between the periods, with intervals and
    a Fisher exact test: is the change itself distinguishable from noise?
    Clean-up days' closes are left out and counted (``clean_ups_a``, ``_b``)."""
    rows = segment_metrics[(segment_metrics["dimension"] == "overall")
                           & (segment_metrics["period_type"] == period_type)]
    every, overall = rows.set_index("period"), own_closes(rows, 0).set_index("period")
    found = [p for p in (period_a, period_b) if p in overall.index]
    summary: dict = {"period_a": period_a, "period_b": period_b}
    for key, period in (("a", period_a), ("b", period_b)):
        summary[f"closed_{key}"] = int(overall.loc[period, "deals"]) if period in found else 0
        summary[f"clean_ups_{key}"] = int(every.loc[period, "clean_up_closes"]) if period in every.index else 0
    swept = [f"{n:,} closes of clean-up days in {p}" for k, p in (("a", period_a), ("b", period_b))
             if (n := summary[f"clean_ups_{k}"])]
    left_out = (f"; left out: {', '.join(swept)} (stale deals closed lost at once: how the CRM was tidied, "
                "not how the period sold)") if swept else ""
    if len(found) < 2:
        missing = [p for p in (period_a, period_b) if p not in found]
        summary["verdict"] = f"no closed deals in {', '.join(missing)}: nothing to attribute{left_out}"
        return summary
    n = overall.loc[[period_a, period_b], "deals"].to_numpy()
    k = overall.loc[[period_a, period_b], "won"].to_numpy()
    low, high = wilson_interval(k, n)
    p_value = stats.fisher_exact([[k[0], n[0] - k[0]], [k[1], n[1] - k[1]]]).pvalue
    change = k[1] / n[1] - k[0] / n[0]
    summary.update({
        "win_rate_a": round(k[0] / n[0], 4), "win_rate_b": round(k[1] / n[1], 4),
        "ci_a": [round(float(low[0]), 4), round(float(high[0]), 4)],
        "ci_b": [round(float(low[1]), 4), round(float(high[1]), 4)],
        "total_change": round(float(change), 4), "p_value": round(float(p_value), 4),
        "significant": bool(p_value <= alpha),
    })
    judged = "a real change" if p_value <= alpha else "not distinguishable from noise"
    summary["verdict"] = (f"win rate {k[0] / n[0]:.1%} (n={n[0]:,}) in {period_a} -> {k[1] / n[1]:.1%} "
                          f"(n={n[1]:,}) in {period_b}: {change * 100:+.1f} points, {judged} "
                          f"(Fisher p={p_value:.2g}){left_out}")
    return summary
