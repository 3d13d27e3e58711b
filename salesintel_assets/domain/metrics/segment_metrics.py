"""Segment metrics: win rate (with its Wilson 95 % interval), cycle of won
and of lost deals, average amount, Segment Performance Index and lost-deal
velocity ratio, for every segment of every dimension, per month, per quarter
and over all history. Periods are by closed date; only deals closed on or
before the analysis date count.

The aggregation is one DuckDB query over the fact table: one pass of
GROUPING SETS puts every dimension's deals into months, and the small
monthly sums roll up to quarters and all history, so a million deals
aggregate in about a second; pandas only finishes the small result.

Notes on meaning:
- ``deal_stage`` of a closed deal is the stage it had reached when it
  closed, so its segments describe where deals end, not a cause.
- ``cycle_bin`` and the cycle averages leave out deals flagged for review
  (their dates contradict each other); every other dimension counts them.
- ``volume_share`` and the global rate in SPI are relative to the
  dimension's own total in the period, so the SPIs of a dimension sum to 0.
- The dimension ``overall`` (segment ``all``) holds the company totals.
- ``clean_up_closes`` and ``clean_up_won`` count the closes (and wins)
  among ``deals`` that fell on clean-up days (``warehouse.clean_ups``: stale
  deals closed lost in one sweep). Every rate here counts them, as the CRM
  records them; what compares periods (``drivers.attribution``, the monthly
  chart) reads ``own_closes``, without them: a sweep is how the CRM was
  tidied, not how that period sold.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from salesintel_assets.domain.metrics.deal_metrics import empty_frame
from salesintel_assets.domain.common.rules import Rules
from salesintel_assets.domain.common.stats import wilson_interval
from salesintel_assets.domain.warehouse.clean_ups import clean_ups_in

SEGMENT_DIMENSIONS = ("industry", "region", "product_type", "lead_source", "deal_stage", "sales_rep_id",
                      "cycle_bin", "amount_tier")
OVERALL = "overall"
PERIOD_TYPES = ("month", "quarter", "all")
SEGMENT_METRICS_COLUMNS = {
    "dimension": "object", "segment": "object", "period_type": "object", "period": "object",
    "period_start": "datetime64[ns]", "deals": "int64", "won": "int64", "lost": "int64",
    "win_rate": "float64", "ci_low": "float64", "ci_high": "float64", "avg_cycle_won": "float64",
    "avg_cycle_lost": "float64", "avg_amount": "float64", "volume_share": "float64",
    "dimension_win_rate": "float64", "spi": "float64", "lost_velocity_ratio": "float64",
    "enough_data": "bool", "clean_up_closes": "int64", "clean_up_won": "int64",
}
_FACT_COLUMNS = ["is_open", "is_won", "closed_date", "needs_review", "sales_cycle_days", "deal_amount",
                 "industry", "region", "product_type", "lead_source", "deal_stage", "sales_rep_id"]


def _money(value: float) -> str:
    for size, unit in ((1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:g}{unit}"
    return f"{value:g}"


def cycle_bin_labels(edges: list[float]) -> list[str]:
    """[15, 30] -> ['0-14d', '15-29d', '30d+'] (lower edge inclusive, whole days)."""
    lows = [0.0] + list(edges)
    return [f"{lo:g}-{hi - 1:g}d" for lo, hi in zip(lows, edges)] + [f"{edges[-1]:g}d+"]


def amount_tier_labels(edges: list[float]) -> list[str]:
    """[5000, 15000] -> ['<5k', '5k-15k', '15k+']."""
    middle = [f"{_money(lo)}-{_money(hi)}" for lo, hi in zip(edges, edges[1:])]
    return [f"<{_money(edges[0])}"] + middle + [f"{_money(edges[-1])}+"]


def _case(column: str, edges: list[float], labels: list[str]) -> str:
    """A SQL CASE putting ``column`` into the bins (NULL stays NULL)."""
    whens = " ".join(f"WHEN {column} < {edge!r} THEN '{label}'" for edge, label in zip(edges, labels))
    return f"CASE WHEN {column} IS NULL THEN NULL {whens} ELSE '{labels[-1]}' END"


def segment_counts_sql(rules: Rules, relation: str = "fact", clean_up_days=()) -> str:
    """The aggregation over the fact ``relation`` (parameter: as_of): every
    dimension per month in one pass of GROUPING SETS over the deals, then
    months rolled up to quarters and all history from those small sums;
    closes on ``clean_up_days`` (timestamps) counted apart as well."""
    m = rules.metrics
    cycle_bin = _case("cycle", m.cycle_bin_edges_days, cycle_bin_labels(m.cycle_bin_edges_days))
    amount_tier = _case("amount", m.amount_tier_edges, amount_tier_labels(m.amount_tier_edges))
    text_dims = ", ".join(f"CAST({d} AS VARCHAR) AS {d}" for d in SEGMENT_DIMENSIONS[:6])
    dims = SEGMENT_DIMENSIONS
    sets = ", ".join(f"({d}, month_start)" for d in dims)
    which = " ".join(f"WHEN GROUPING({d}) = 0 THEN '{d}'" for d in dims)
    value = " ".join(f"WHEN GROUPING({d}) = 0 THEN {d}" for d in dims)
    days = ", ".join(f"DATE '{pd.Timestamp(day):%Y-%m-%d}'" for day in clean_up_days)
    swept = f"CAST(CAST(closed_date AS DATE) IN ({days}) AS INTEGER)" if days else "0"
    return f"""
    WITH closed AS (
        SELECT CAST(is_won AS INTEGER) AS won,
               CASE WHEN needs_review OR sales_cycle_days < 0 THEN NULL
                    ELSE CAST(sales_cycle_days AS DOUBLE) END AS cycle,
               CAST(deal_amount AS DOUBLE) AS amount,
               CAST(date_trunc('month', closed_date) AS TIMESTAMP) AS month_start,
               {swept} AS swept,
               {text_dims}
        FROM {relation}
        WHERE NOT is_open AND closed_date IS NOT NULL AND closed_date <= $as_of
    ),
    binned AS (SELECT *, {cycle_bin} AS cycle_bin, {amount_tier} AS amount_tier FROM closed),
    monthly AS (
        SELECT CASE {which} ELSE '{OVERALL}' END AS dimension,
               CASE {value} ELSE 'all' END AS segment,
               month_start,
               COUNT(*) AS deals, SUM(won) AS won, SUM(swept) AS swept, SUM(swept * won) AS swept_won,
               SUM(cycle) FILTER (WHERE won = 1) AS cycle_won_sum,
               COUNT(cycle) FILTER (WHERE won = 1) AS cycle_won_n,
               SUM(cycle) FILTER (WHERE won = 0) AS cycle_lost_sum,
               COUNT(cycle) FILTER (WHERE won = 0) AS cycle_lost_n,
               SUM(amount) AS amount_sum, COUNT(amount) AS amount_n
        FROM binned
        GROUP BY GROUPING SETS ({sets}, (month_start))
    )
    SELECT dimension, segment,
           CASE WHEN GROUPING(month_start) = 0 THEN 'month'
                WHEN GROUPING(quarter_start) = 0 THEN 'quarter' ELSE 'all' END AS period_type,
           COALESCE(month_start, quarter_start) AS period_start,
           SUM(deals) AS deals, SUM(won) AS won,
           SUM(swept) AS clean_up_closes, SUM(swept_won) AS clean_up_won,
           SUM(cycle_won_sum) / NULLIF(SUM(cycle_won_n), 0) AS avg_cycle_won,
           SUM(cycle_lost_sum) / NULLIF(SUM(cycle_lost_n), 0) AS avg_cycle_lost,
           SUM(amount_sum) / NULLIF(SUM(amount_n), 0) AS avg_amount
    -- A missing value (e.g. no cycle bin for a deal under review) is no segment.
    FROM (SELECT *, CAST(date_trunc('quarter', month_start) AS TIMESTAMP) AS quarter_start
          FROM monthly WHERE segment IS NOT NULL)
    GROUP BY GROUPING SETS ((dimension, segment, month_start), (dimension, segment, quarter_start),
                            (dimension, segment))
    """


def segment_metrics(fact: pd.DataFrame, rules: Rules, as_of: pd.Timestamp) -> pd.DataFrame:
    """One row per dimension x segment x period (see the module docstring),
    from a fact DataFrame."""
    if fact.empty:
        return empty_frame(SEGMENT_METRICS_COLUMNS)
    con = duckdb.connect()
    try:
        con.register("fact", fact[_FACT_COLUMNS])
        return segment_metrics_in(con, "fact", rules, as_of)
    finally:
        con.close()


def segment_metrics_in(con: duckdb.DuckDBPyConnection, relation: str, rules: Rules,
                       as_of: pd.Timestamp) -> pd.DataFrame:
    """The same, straight from a fact table in DuckDB (no deal rows move)."""
    swept = [c.day for c in clean_ups_in(con, relation, as_of)]
    counts = con.execute(segment_counts_sql(rules, relation, swept),
                         {"as_of": pd.Timestamp(as_of).to_pydatetime()}).df()
    if counts.empty:
        return empty_frame(SEGMENT_METRICS_COLUMNS)
    return finish_segment_metrics(counts, rules)


def period_label(period_type: pd.Series, start: pd.Series) -> pd.Series:
    """'2024-03' for a month, '2024Q1' for a quarter, 'all' for all history."""
    start = pd.to_datetime(start)
    quarter = start.dt.year.astype("Int64").astype(str) + "Q" + start.dt.quarter.astype("Int64").astype(str)
    return pd.Series(np.select([period_type.eq("month"), period_type.eq("quarter")],
                               [start.dt.strftime("%Y-%m"), quarter], default="all"), index=start.index)


def finish_segment_metrics(counts: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """Rates, intervals and indices from the aggregated counts."""
    out = counts.copy()
    out["period_start"] = pd.to_datetime(out["period_start"])
    out["deals"] = out["deals"].astype("int64")
    out["won"] = out["won"].astype("int64")
    for column in ("clean_up_closes", "clean_up_won"):
        out[column] = out[column].fillna(0).astype("int64")
    out["lost"] = out["deals"] - out["won"]
    out["period"] = period_label(out["period_type"], out["period_start"])
    out["win_rate"] = out["won"] / out["deals"]
    out["ci_low"], out["ci_high"] = wilson_interval(out["won"], out["deals"])
    keys = ["dimension", "period_type", "period"]
    totals = out.groupby(keys)[["deals", "won"]].transform("sum")
    out["volume_share"] = out["deals"] / totals["deals"]
    out["dimension_win_rate"] = totals["won"] / totals["deals"]
    out["spi"] = (out["win_rate"] - out["dimension_win_rate"]) * out["volume_share"]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = out["avg_cycle_lost"] / out["avg_cycle_won"]
    out["lost_velocity_ratio"] = ratio.where(out["avg_cycle_won"] > 0)
    out["enough_data"] = out["deals"] >= rules.metrics.min_sample
    order = {d: i for i, d in enumerate((OVERALL,) + SEGMENT_DIMENSIONS)}
    out["_dim"] = out["dimension"].map(order)
    out["_period"] = out["period_type"].map({p: i for i, p in enumerate(PERIOD_TYPES)})
    out = out.sort_values(["_dim", "_period", "period_start", "segment"], kind="stable")
    return out[list(SEGMENT_METRICS_COLUMNS)].astype(SEGMENT_METRICS_COLUMNS).reset_index(drop=True)


def own_closes(segments: pd.DataFrame, min_sample: int) -> pd.DataFrame:
    """The rows' counts, win rates and intervals without the closes of
    clean-up days (what compares periods reads); a row left with no close is
    dropped. Only the keys, counts, rates and intervals are kept: the other
    figures describe every close."""
    keys = ["dimension", "segment", "period_type", "period", "period_start"]
    out = segments[keys].assign(deals=segments["deals"] - segments["clean_up_closes"],
                                won=segments["won"] - segments["clean_up_won"])
    out = out[out["deals"] > 0].copy()
    out["lost"] = out["deals"] - out["won"]
    out["win_rate"] = out["won"] / out["deals"]
    out["ci_low"], out["ci_high"] = wilson_interval(out["won"], out["deals"])
    out["enough_data"] = out["deals"] >= min_sample
    return out.reset_index(drop=True)


def overall_by_period(segments: pd.DataFrame, period_type: str = "month") -> pd.DataFrame:
    """The company's win rate per period (the ``overall`` rows)."""
    rows = segments[(segments["dimension"] == OVERALL) & (segments["period_type"] == period_type)]
    return rows.sort_values("period_start").reset_index(drop=True)
