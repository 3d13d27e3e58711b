"""Stalled deals: open deals that have sat in their current stage (or, without
stage history, stayed open) longer than almost every won deal did.

- Stage rule (needs stage history): days in the current stage above the
  ``stage_percentile`` of the days won deals spent in that stage.
- Age rule (no stage history, e.g. a CSV export, or a stage with too few won
  deals): the deal's age above the ``age_percentile`` of won deals' cycles.
- SMI rule: SMI below the metrics section's ``smi.critical_below``, for
  deals whose stage has no duration evidence. SMI is an index, not evidence
  of how long won deals take: such deals are listed at low severity only.

Priority is staleness first: how far the deal's time lies beyond won deals
(its percentile among won deals' durations and how many times its limit it
has run). Money decides only between equally stale deals and lowers the
level of a deal whose money at stake x win-probability drop is small; the
oldest, stalest deals rank first, not the biggest.

Evidence ("deals stalled this long won X %") counts every deal that reached
the deal's days by the analysis date: closed ones, and those still open
(counted as not won yet, and said so). Below ``min_history_deals`` deals the
answer is "not enough data".
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from salesintel_assets.domain.anomalies.samples import DealDays, metric_values, to_timestamp
from salesintel_assets.domain.common.rules import Rules

LEVELS = np.array(["low", "medium", "high", "critical"], dtype=object)


@dataclass
class StalledResult:
    deals: pd.DataFrame       # one row per reported stalled deal (already capped)
    flagged: int              # deals beyond a threshold before the cap
    notes: list[str]


class Reached:
    """Deals by how long they lasted (whole days) up to the analysis date:
    for each duration, how many deals, how many were won by then and how
    many were still open (their duration is how long they have lasted so far)."""

    def __init__(self, days, won, still_open, deals, min_n: int):
        order = np.argsort(np.asarray(days, dtype="float64"), kind="stable")
        self.days = np.asarray(days, dtype="float64")[order]
        self.won = np.asarray(won, dtype="float64")[order]
        tail = lambda x: np.cumsum(np.asarray(x, dtype="float64")[order][::-1])[::-1]
        self.won_after, self.open_after, self.deals_after = tail(won), tail(still_open), tail(deals)
        self.won_total = float(self.won.sum())
        self.min_n = min_n

    @classmethod
    def from_values(cls, durations, won, still_open, min_n: int) -> "Reached":
        days, inverse = np.unique(np.floor(durations), return_inverse=True)
        count = lambda x: np.bincount(inverse, weights=np.asarray(x, dtype="float64"), minlength=len(days))
        return cls(days, count(won), count(still_open), np.bincount(inverse, minlength=len(days)), min_n)

    def at_least(self, days: float) -> tuple[float, int, int]:
        """(share won so far, deals, of which still open) among the deals
        that lasted at least ``days``; the share is NaN below ``min_n`` deals."""
        first = int(np.searchsorted(self.days, np.floor(days), side="left"))
        if first >= len(self.days):
            return np.nan, 0, 0
        n, still_open = int(self.deals_after[first]), int(self.open_after[first])
        rate = self.won_after[first] / n if n >= self.min_n else np.nan
        return float(rate), n, still_open

    def won_quantile(self, q: float) -> float:
        """Smallest duration with at least a share q of won deals at or below it."""
        cum = np.cumsum(self.won)
        return float(self.days[np.searchsorted(cum, q * cum[-1] - 1e-9)])

    def won_share_within(self, days: np.ndarray) -> np.ndarray:
        """Share of won deals that took at most ``days`` (the deal's percentile among won deals)."""
        if self.won_total <= 0:
            return np.full(len(np.atleast_1d(days)), np.nan)
        cum = np.concatenate([[0.0], np.cumsum(self.won)])
        return cum[np.searchsorted(self.days, np.floor(days), side="right")] / self.won_total


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
        return StalledResult(pd.DataFrame(), 0, notes)

    open_fact = fact.iloc[open_rows]
    stage = open_fact["deal_stage"].to_numpy(dtype=object, na_value="")
    days = (pd.to_numeric(open_fact["days_in_stage"], errors="coerce").to_numpy(dtype="float64")
            if "days_in_stage" in fact else np.full(len(open_rows), np.nan))
    age = (deals.as_of - deals.created[open_rows]).astype("float64")

    by_stage = _stage_history(transitions, fact, rules, deals)
    thresholds = {s: h.won_quantile(cfg.stage_percentile) for s, h in by_stage.items()
                  if h.won_total >= cfg.min_won_stage_deals}
    if not thresholds:
        notes.append("no usable stage history (none in the source or too few won deals per stage): "
                     "stalled deals are judged by their age against won deals' cycles")
    by_age = _age_history(deals, cfg.min_history_deals)
    age_limit = by_age.won_quantile(cfg.age_percentile) if by_age.won_total >= cfg.min_won_stage_deals else np.nan

    limit = pd.Series(stage).map(thresholds).to_numpy(dtype="float64")
    stage_rule = np.isfinite(limit) & np.isfinite(days)
    stalled_stage = stage_rule & (days > limit)
    stalled_age = ~stage_rule & np.isfinite(age_limit) & (age > age_limit)
    smi = metric_values(metrics, "smi")
    smi_open = smi[open_rows] if smi is not None else np.full(len(open_rows), np.nan)
    critical = rules.metrics.smi.critical_below
    smi_below = np.isfinite(smi_open) & (smi_open < critical)
    stalled_smi = smi_below & ~stage_rule & ~stalled_age
    if smi is None:
        notes.append("no deal metrics: the SMI rule was not applied")
    flagged = stalled_stage | stalled_age | stalled_smi
    if not flagged.any():
        return StalledResult(pd.DataFrame(), 0, notes)

    rows = np.flatnonzero(flagged)
    rule = np.select([stalled_stage, stalled_age], ["stage", "age"], default="smi")[rows]
    observed = np.select([stalled_stage, stalled_age], [days, age], default=smi_open)[rows]
    lim = np.select([stalled_stage, stalled_age], [limit, np.full(len(limit), age_limit)], default=critical)[rows]
    out = pd.DataFrame({
        "deal_id": open_fact["deal_id"].to_numpy()[rows], "sales_rep_id": open_fact["sales_rep_id"].to_numpy()[rows],
        "deal_stage": stage[rows], "amount": deals.amount[open_rows][rows], "age": age[rows],
        "days_in_stage": days[rows], "rule": rule, "limit": lim, "observed": observed,
        # How many times its limit the deal has run (SMI is "below": inverted).
        "overdue": np.where(rule == "smi", critical / np.maximum(smi_open[rows], 1e-9), observed / np.maximum(lim, 1.0)),
        "smi": smi_open[rows], "smi_critical": smi_below[rows],
        "entered": (pd.to_datetime(open_fact["stage_entered_date"]).to_numpy()[rows]
                    if "stage_entered_date" in fact else np.full(len(rows), np.datetime64("NaT"))),
        "created": [to_timestamp(d) for d in deals.created[open_rows][rows]],
    })
    _evidence(out, by_stage, by_age, deals)
    _priority(out, deals.amount[open_rows], rules)
    out = out.sort_values(["level", "won_percentile", "overdue", "stake", "deal_id"],
                          ascending=[False, False, False, False, True], kind="stable", na_position="last")
    out["severity"] = LEVELS[out["level"].to_numpy()]
    return StalledResult(out.head(cfg.max_deals).reset_index(drop=True), int(flagged.sum()), notes)


def _age_history(deals: DealDays, min_n: int) -> Reached:
    """Every deal by how long it stayed open: closed ones (consistent dates)
    by their cycle, open ones by their age so far."""
    rows = np.flatnonzero(deals.usable_closed | deals.open_now)
    end = np.where(deals.open_now[rows], deals.as_of, deals.closed[rows])
    won = deals.won[rows] & deals.usable_closed[rows]
    return Reached.from_values((end - deals.created[rows]).astype("float64"), won, deals.open_now[rows], min_n)


def _stage_history(transitions, fact, rules: Rules, deals: DealDays) -> dict[str, Reached]:
    """Per stage: every deal that entered it by the analysis date, by its
    days there (so far, if it is still there), won by then or still open.
    One DuckDB aggregate: the transitions table has several rows per deal."""
    cfg = rules.anomalies.stalled
    if transitions is None or not len(transitions):
        return {}
    known = deals.usable_closed | deals.open_now
    status = pd.DataFrame({"deal_id": fact["deal_id"].to_numpy()[known],
                           "won": (deals.won & deals.usable_closed)[known], "still_open": deals.open_now[known]})
    con = duckdb.connect()
    try:
        con.register("_t", transitions[["deal_id", "stage", "exited_date", "days_in_stage"]])
        con.register("_c", status)
        table = con.execute("""
            WITH d AS (
                SELECT t.stage, c.won, c.still_open,
                       CASE WHEN t.exited_date IS NULL OR t.exited_date <= $as_of THEN t.days_in_stage
                            ELSE t.days_in_stage - date_diff('day', $as_of, t.exited_date) END AS days
                FROM _t t JOIN _c c USING (deal_id)
                WHERE t.stage <> $closed AND t.days_in_stage IS NOT NULL)
            SELECT stage, floor(days) AS days, count(*) FILTER (WHERE won) AS won,
                   count(*) FILTER (WHERE still_open) AS still_open, count(*) AS deals
            FROM d WHERE days >= 0 GROUP BY ALL""",
                            {"as_of": to_timestamp(deals.as_of).to_pydatetime(),
                             "closed": rules.stages.closed_stage}).df()
    finally:
        con.close()
    return {str(name): Reached(g["days"].to_numpy(), g["won"].to_numpy(), g["still_open"].to_numpy(),
                               g["deals"].to_numpy(), cfg.min_history_deals)
            for name, g in table.groupby("stage")}


def _evidence(out: pd.DataFrame, by_stage: dict[str, Reached], by_age: Reached, deals: DealDays) -> None:
    """Per deal: share won among deals that lasted as long (with counts), the
    same share among all deals that reached the stage (or all deals), and
    the deal's percentile among won deals' durations."""
    n = len(out)
    rate, base, past_rate = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    reached, still_open = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    past_n, past_open = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    percentile = np.full(n, np.nan)
    for i, row in enumerate(out.itertuples()):
        history = by_stage.get(row.deal_stage) if row.rule == "stage" else by_age
        value = row.days_in_stage if row.rule == "stage" else row.age
        if history is None or not np.isfinite(value):
            continue
        rate[i], reached[i], still_open[i] = history.at_least(value)
        # Deals past the stall limit at all: a broader sample when few lasted as long as this one.
        past_rate[i], past_n[i], past_open[i] = history.at_least(np.floor(row.limit) + 1)
        base[i] = history.at_least(0)[0]
        percentile[i] = history.won_share_within(np.array([value]))[0]
    out["historical_win_rate"], out["history_n"], out["history_open"] = rate, reached, still_open
    out["past_limit_win_rate"], out["past_limit_n"], out["past_limit_open"] = past_rate, past_n, past_open
    out["base_win_rate"], out["won_percentile"] = base, percentile


def _priority(out: pd.DataFrame, open_amounts: np.ndarray, rules: Rules) -> None:
    """Level 0-3 (low..critical) from staleness, lowered one step when the
    money at stake x win-probability drop is small; ``stake`` is that product."""
    cfg = rules.anomalies.stalled
    pct, over = out["won_percentile"].to_numpy(), out["overdue"].to_numpy()
    by_time = out["rule"].ne("smi").to_numpy()
    level = np.where(by_time, 1, 0)
    level = np.where(by_time & (pct >= cfg.high.won_percentile) & (over >= cfg.high.overdue_ratio), 2, level)
    level = np.where(by_time & (pct >= cfg.critical.won_percentile) & (over >= cfg.critical.overdue_ratio), 3, level)
    base = out["base_win_rate"].to_numpy()
    # Too few deals this stale: deals past the limit at all speak for it; with
    # too few of those either, assume the deal's chance is gone.
    now = np.where(np.isfinite(out["historical_win_rate"]), out["historical_win_rate"], out["past_limit_win_rate"])
    drop = np.clip(np.where(np.isfinite(now), base - now, base), 0, 1)
    stake = out["amount"].to_numpy() * np.nan_to_num(drop)
    typical = np.nanmedian(base) if np.isfinite(base).any() else 0.0
    small = stake < np.quantile(open_amounts, cfg.small_stake_quantile) * typical if len(open_amounts) else False
    out["stake"] = stake
    out["win_probability_drop"] = drop
    out["level"] = np.where(small, np.maximum(level - 1, 0), level).astype(np.int64)
