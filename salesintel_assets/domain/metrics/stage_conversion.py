"""Stage-to-stage conversion from the stage history (empty for exports
without one): of the deals that entered a stage and have since left it, the
share that moved on to a later stage rather than being lost there.

A deal still sitting in the stage on the analysis date has not resolved and
is counted apart (``still_in_stage``), not as a failure. ``to_stage`` is the
next stage in the rules' order; a deal that skips it (e.g. Demo straight to
Closed) still counts as advanced. Cohorts are by the month / quarter the
deal entered the stage, so recent cohorts are incomplete: read their rates
together with ``still_in_stage``.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from salesintel_assets.domain.metrics.deal_metrics import empty_frame
from salesintel_assets.domain.common.rules import Rules
from salesintel_assets.domain.metrics.segment_metrics import PERIOD_TYPES, period_label
from salesintel_assets.domain.common.stats import wilson_interval

STAGE_CONVERSION_COLUMNS = {
    "from_stage": "object", "to_stage": "object", "stage_number": "int64", "period_type": "object",
    "period": "object", "period_start": "datetime64[ns]", "entered": "int64", "still_in_stage": "int64",
    "resolved": "int64", "advanced": "int64", "conversion_rate": "float64", "ci_low": "float64",
    "ci_high": "float64", "avg_days_to_advance": "float64", "enough_data": "bool",
}

_SQL = """
WITH stays AS (
    SELECT CAST(stage_number AS INTEGER) AS stage_number,
           CAST(date_trunc('month', entered) AS TIMESTAMP) AS month_start,
           CAST(date_trunc('quarter', entered) AS TIMESTAMP) AS quarter_start,
           (NOT current AND exited <= $as_of) AS advanced,
           (exited IS NOT NULL AND exited <= $as_of AND (NOT current OR outcome IN ('Won', 'Lost'))) AS resolved,
           CAST(days_in_stage AS DOUBLE) AS days_in_stage
    FROM (SELECT *, CAST(entered_date AS TIMESTAMP) AS entered, CAST(exited_date AS TIMESTAMP) AS exited,
                 CAST(is_current AS BOOLEAN) AS current FROM {relation})
    WHERE entered <= $as_of AND stage_number IS NOT NULL AND stage_number < $last_stage
)
SELECT stage_number,
       CASE WHEN GROUPING(month_start) = 0 THEN 'month'
            WHEN GROUPING(quarter_start) = 0 THEN 'quarter' ELSE 'all' END AS period_type,
       COALESCE(month_start, quarter_start) AS period_start,
       COUNT(*) AS entered,
       COUNT(*) FILTER (WHERE resolved) AS resolved,
       COUNT(*) FILTER (WHERE advanced) AS advanced,
       AVG(days_in_stage) FILTER (WHERE advanced) AS avg_days_to_advance
FROM stays
GROUP BY GROUPING SETS ((stage_number, month_start), (stage_number, quarter_start), (stage_number))
"""


def stage_conversion(transitions: pd.DataFrame, rules: Rules, as_of: pd.Timestamp) -> pd.DataFrame:
    """Conversion of every stage but the last to a later stage, per cohort,
    from a ``fact_stage_transitions`` DataFrame."""
    if transitions is None or transitions.empty:
        return empty_frame(STAGE_CONVERSION_COLUMNS)
    frame = transitions[["stage_number", "entered_date", "exited_date", "is_current", "outcome",
                         "days_in_stage"]]
    con = duckdb.connect()
    try:
        con.register("transitions", frame)
        return stage_conversion_in(con, "transitions", rules, as_of)
    finally:
        con.close()


def stage_conversion_in(con: duckdb.DuckDBPyConnection, relation: str, rules: Rules,
                        as_of: pd.Timestamp) -> pd.DataFrame:
    """The same, straight from a transitions table in DuckDB."""
    counts = con.execute(_SQL.format(relation=relation), {"as_of": pd.Timestamp(as_of).to_pydatetime(),
                                                         "last_stage": len(rules.stages.order)}).df()
    if counts.empty:
        return empty_frame(STAGE_CONVERSION_COLUMNS)
    order = rules.stages.order
    out = counts.copy()
    out["stage_number"] = out["stage_number"].astype("int64")
    out["from_stage"] = [order[i - 1] for i in out["stage_number"]]
    out["to_stage"] = [order[i] for i in out["stage_number"]]
    out["period_start"] = pd.to_datetime(out["period_start"])
    out["period"] = period_label(out["period_type"], out["period_start"])
    out["still_in_stage"] = out["entered"] - out["resolved"]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["conversion_rate"] = out["advanced"] / out["resolved"].where(out["resolved"] > 0)
    out["ci_low"], out["ci_high"] = wilson_interval(out["advanced"], out["resolved"])
    out["enough_data"] = out["resolved"] >= rules.metrics.min_sample
    out["_period"] = out["period_type"].map({p: i for i, p in enumerate(PERIOD_TYPES)})
    out = out.sort_values(["_period", "stage_number", "period_start"], kind="stable")
    return out[list(STAGE_CONVERSION_COLUMNS)].astype(STAGE_CONVERSION_COLUMNS).reset_index(drop=True)
