"""Stalled deals: open deals that have sat in their current stage longer than
almost every won deal did, or whose Stage Momentum Index is critical.

- Stage rule (needs stage history): days in the current stage above the
  ``stage_percentile`` of the days won deals spent in that stage.
- Age rule (no stage history, e.g. a CSV export, or a stage with too few won
  deals): the deal's age above the ``age_percentile`` of won deals' cycles.
- SMI rule: SMI below the metrics section's ``smi.critical_below``, for
  deals whose stage has no duration evidence. Where stage history shows how
  long won deals stay in the deal's stage, that direct evidence decides: a
  deal that just reached Demo after a slow start has a low SMI but is moving,
  and alarming on it would be noise.

Each stalled deal carries the historical win rate of closed deals that
stalled as long (at least ``min_history_deals`` of them; with fewer, the
longest-stalled ``min_history_deals`` stand in and the text says "at least").
Only deals beyond a threshold are listed, at most ``max_deals``, largest
amount first: the money at stake is the deal's amount.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from salesintel_assets.domain.anomalies.samples import DealDays, metric_values, to_timestamp
from salesintel_assets.domain.common.rules import Rules


@dataclass
class StalledResult:
    deals: pd.DataFrame       # one row per reported stalled deal (already capped)
    flagged: int              # deals beyond a threshold before the cap
    notes: list[str]


class _Survival:
    """Win rate of closed deals whose duration was at least d days, from
    counts per duration (durations are whole days)."""

    def __init__(self, days: np.ndarray, won: np.ndarray, deals: np.ndarray, min_n: int):
        order = np.argsort(days, kind="stable")
        self.days = np.asarray(days, dtype="float64")[order]
        self.won_after = np.cumsum(np.asarray(won, dtype="float64")[order][::-1])[::-1]
        self.deals_after = np.cumsum(np.asarray(deals, dtype="float64")[order][::-1])[::-1]
        # The last start that still keeps min_n deals behind a rate.
        enough = np.flatnonzero(self.deals_after >= min_n)
        self.last_start = int(enough[-1]) if len(enough) else -1

    @classmethod
    def from_values(cls, durations: np.ndarray, won: np.ndarray, min_n: int) -> "_Survival":
        days, inverse = np.unique(durations, return_inverse=True)
        return cls(days, np.bincount(inverse, weights=won.astype("float64"), minlength=len(days)),
                   np.bincount(inverse, minlength=len(days)), min_n)

    def at_least(self, days: float) -> tuple[float, int, float]:
        """(win rate, deals behind it, duration actually used)."""
        if self.last_start < 0:
            return np.nan, 0, np.nan
        first = min(int(np.searchsorted(self.days, days, side="left")), self.last_start)
        n = self.deals_after[first]
        return self.won_after[first] / n, int(n), float(self.days[first])

    def quantile(self, q: float, won_only: bool = True) -> float:
        """Smallest duration d with at least a share q of (won) deals at or below it."""
        counts = -np.diff(np.concatenate([self.won_after if won_only else self.deals_after, [0.0]]))
        cum = np.cumsum(counts)
        return float(self.days[np.searchsorted(cum, q * cum[-1] - 1e-9)])


def stalled_deals(fact: pd.DataFrame, metrics: pd.DataFrame | None, transitions: pd.DataFrame | None,
                  rules: Rules, deals: DealDays) -> StalledResult:
    cfg = rules.anomalies.stalled
    notes: list[str] = []
    # A deal that closed after the analysis date was open then, but the export
    # shows the stage it closed in: judging its stall would use the future.
    crm_open = fact["is_open"].fillna(False).to_numpy(dtype=bool)
    later = deals.open_now & ~crm_open
    if later.any():
        notes.append(f"{int(later.sum())} deals open on the analysis date closed later; their stage in the "
                     "export is the stage at close, so they are not judged as stalled")
    open_rows = np.flatnonzero(deals.open_now & crm_open)
    if not len(open_rows):
        notes.append("no open deals on the analysis date: no stalled deals to look for")
        return StalledResult(_frame([]), 0, notes)

    open_fact = fact.iloc[open_rows]
    stage = open_fact["deal_stage"].to_numpy(dtype=object, na_value="")
    days = (pd.to_numeric(open_fact["days_in_stage"], errors="coerce").to_numpy(dtype="float64")
            if "days_in_stage" in fact else np.full(len(open_rows), np.nan))
    age = (deals.as_of - deals.created[open_rows]).astype("float64")

    thresholds, stage_history = _stage_thresholds(transitions, fact, rules, deals)
    if not thresholds:
        notes.append("no usable stage history (none in the source or too few won deals per stage): "
                     "stalled deals are judged by SMI and by age against won deals' cycles")
    cycles = (deals.closed - deals.created)[deals.usable_closed].astype("float64")
    by_age = _Survival.from_values(cycles, deals.won[deals.usable_closed], cfg.min_history_deals)
    age_limit = (by_age.quantile(cfg.age_percentile)
                 if deals.won[deals.usable_closed].sum() >= cfg.min_won_stage_deals else np.nan)

    limit = pd.Series(stage).map(thresholds).to_numpy(dtype="float64")
    stage_rule = np.isfinite(limit) & np.isfinite(days)
    stalled_stage = stage_rule & (days > limit)
    stalled_age = ~stage_rule & np.isfinite(age_limit) & (age > age_limit)
    smi = metric_values(metrics, "smi")
    smi_open = smi[open_rows] if smi is not None else np.full(len(open_rows), np.nan)
    critical = rules.metrics.smi.critical_below
    smi_below = np.isfinite(smi_open) & (smi_open < critical)
    stalled_smi = smi_below & ~stage_rule
    if smi is None:
        notes.append("no deal metrics: the SMI rule was not applied")
    flagged = stalled_stage | stalled_age | stalled_smi
    if not flagged.any():
        return StalledResult(_frame([]), 0, notes)

    rule = np.select([stalled_stage, stalled_age], ["stage", "age"], default="smi")
    observed = np.select([stalled_stage, stalled_age], [days, age], default=smi_open)
    limit = np.select([stalled_stage, stalled_age], [limit, np.full(len(limit), age_limit)], default=critical)
    # How far past its limit (x times); SMI is "below", so invert it.
    overdue = np.where(rule == "smi", critical / np.maximum(smi_open, 1e-9), observed / np.maximum(limit, 1.0))
    ranking = pd.DataFrame({"i": np.flatnonzero(flagged), "amount": deals.amount[open_rows][flagged],
                            "overdue": overdue[flagged], "deal_id": open_fact["deal_id"].to_numpy()[flagged]})
    top = ranking.sort_values(["amount", "overdue", "deal_id"], ascending=[False, False, True],
                              kind="stable")["i"].to_numpy()[:cfg.max_deals]
    entered = (pd.to_datetime(open_fact["stage_entered_date"]).to_numpy()[top]
               if "stage_entered_date" in fact else np.full(len(top), np.datetime64("NaT")))
    capped = pd.DataFrame({
        "deal_id": open_fact["deal_id"].to_numpy()[top],
        "sales_rep_id": open_fact["sales_rep_id"].to_numpy()[top],
        "deal_stage": stage[top], "amount": deals.amount[open_rows][top], "age": age[top],
        "days_in_stage": days[top], "rule": rule[top], "limit": limit[top], "observed": observed[top],
        "overdue": overdue[top], "smi": smi_open[top], "smi_critical": smi_below[top], "entered": entered,
        "created": [to_timestamp(d) for d in deals.created[open_rows][top]],
    })
    _history(capped, stage_history, by_age)
    _severity(capped, deals.amount[open_rows], rules)
    return StalledResult(capped, int(flagged.sum()), notes)


def _stage_thresholds(transitions, fact, rules: Rules, deals: DealDays) -> tuple[dict, dict]:
    """Per stage: the percentile of won deals' days there, and the survival
    table of all closed deals' days there (for the historical win rate).
    Only deals closed by the analysis date count. One DuckDB join: the
    transitions table has several rows per deal (millions at scale)."""
    cfg = rules.anomalies.stalled
    if transitions is None or not len(transitions):
        return {}, {}
    closed = pd.DataFrame({"deal_id": fact["deal_id"].to_numpy()[deals.closed_by_as_of],
                           "won": deals.won[deals.closed_by_as_of]})
    con = duckdb.connect()
    try:
        con.register("_t", transitions[["deal_id", "stage", "exited_date", "days_in_stage"]])
        con.register("_c", closed)
        table = con.execute("""
            SELECT t.stage, floor(t.days_in_stage) AS days, count(*) FILTER (WHERE c.won) AS won, count(*) AS deals
            FROM _t t JOIN _c c USING (deal_id)
            WHERE t.exited_date IS NOT NULL AND t.exited_date <= ? AND t.stage <> ? AND t.days_in_stage >= 0
            GROUP BY ALL""", [to_timestamp(deals.as_of).to_pydatetime(), rules.stages.closed_stage]).df()
    finally:
        con.close()
    thresholds, history = {}, {}
    for stage_name, group in table.groupby("stage"):
        if group["won"].sum() >= cfg.min_won_stage_deals:
            survival = _Survival(group["days"].to_numpy(), group["won"].to_numpy(), group["deals"].to_numpy(),
                                 cfg.min_history_deals)
            thresholds[stage_name] = survival.quantile(cfg.stage_percentile)
            history[stage_name] = survival
    return thresholds, history


def _history(out: pd.DataFrame, stage_history: dict, by_age: _Survival) -> None:
    rate = np.full(len(out), np.nan)
    n = np.zeros(len(out), dtype=np.int64)
    used = np.full(len(out), np.nan)
    for i, row in enumerate(out.itertuples()):  # at most max_deals rows
        table = stage_history.get(row.deal_stage) if row.rule == "stage" else by_age
        value = row.days_in_stage if row.rule == "stage" else row.age
        if table is None or not np.isfinite(value):
            continue
        rate[i], n[i], used[i] = table.at_least(value)
    out["historical_win_rate"] = rate
    out["history_n"] = n
    out["history_days"] = used


def _severity(out: pd.DataFrame, open_amounts: np.ndarray, rules: Rules) -> None:
    q = rules.anomalies.stalled.severity_amount_quantiles
    cuts = np.quantile(open_amounts, [q.critical, q.high, q.medium]) if len(open_amounts) else [np.inf] * 3
    level = np.select([out["amount"] >= cuts[0], out["amount"] >= cuts[1], out["amount"] >= cuts[2]],
                      [3, 2, 1], default=0)
    # Barely past its limit: one level lower.
    level = np.where(out["overdue"] < rules.anomalies.stalled.mild_overdue_ratio, np.maximum(level - 1, 0), level)
    out["severity"] = np.array(["low", "medium", "high", "critical"], dtype=object)[level]


def _frame(rows: list) -> pd.DataFrame:
    return pd.DataFrame(rows)
