"""Stalled deals: open deals that have sat in their current stage (or, without
stage history, stayed open) longer than almost every won deal did.

- Stage rule (needs stage history): days in the current stage above the
  ``stage_percentile`` of the days won deals spent in that stage.
- Age rule (no stage history, e.g. a CSV export, or a stage with too few won
  deals): the deal's age above the ``age_percentile`` of won deals' cycles.
- SMI rule: SMI below the metrics section's ``smi.critical_below``, for
  deals whose stage has no duration evidence. SMI is an index, not evidence
  of how long won deals take: such deals are listed at low severity only
  (and the rules file never makes an alert of them).

Both percentiles come from won deals that started (were created, or entered
the stage) at least ``follow_up_factor`` times the limit before the analysis
date (``WonDurations``): in a young CRM only the quick wins have happened
yet, and a limit read from every won deal would call ordinary deals stalled.
When fewer deals than ``min_history_deals`` started that long ago, the
history is too short to judge stalls by time.

Win chance (the evidence): among every deal that reached the deal's days
(in its stage, or open) by the analysis date, the estimated share won within
the risk model's horizon (``risk.win_horizon_days``) after that point:
Aalen-Johansen cumulative incidence of winning, losing competing, deals
still open censored (they count while observed, never as "not won"). With an
interval and the sample size; below ``min_history_deals`` deals it is "not
enough data" and the longest stay past the limit that enough deals reached
speaks for it.

Money at stake = amount x the drop in win chance attributable to the stall:
the chance of a deal fresh in that stage (age rule: a new deal) minus the
chance at the deal's days. Unknown (0, said so) without enough data.

Priority: staleness sets the level (how far beyond won deals' durations);
money decides within a level and gates the extremes. A crisis (critical)
needs critical staleness, a drop the interval confirms, and money at stake
of at least ``crisis_stake_quantile`` of what open deals are expected to
bring (amount x a new deal's win chance); at most ``max_crises`` per run
(most money at stake first), the others are high. A stall whose money at
stake is below ``small_stake_quantile`` of that is one level lower.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from salesintel_assets.domain.anomalies.samples import DealDays, metric_values, to_timestamp
from salesintel_assets.domain.common.rules import Rules
from salesintel_assets.domain.common.stats import win_incidence

LEVELS = np.array(["low", "medium", "high", "critical"], dtype=object)
COUNTS = ("n", "open", "followed")   # per win chance: deals that lasted as long, still open, fate known


@dataclass
class StalledResult:
    deals: pd.DataFrame       # one row per reported stalled deal (already capped)
    flagged: int              # deals beyond a threshold before the cap
    notes: list[str]


class StallHistory:
    """Deals by how long they lasted (whole days in the stage, or open) up to
    the analysis date, with the days from leaving the stage to the outcome
    (or to the analysis date for deals still open), and how they ended:
    counts of won, lost and still-open deals per (days, after) pair."""

    def __init__(self, days, after, won, lost, still_open, min_n: int, horizon: float):
        # Sorted by duration: the deals that lasted at least d are a suffix.
        order = np.argsort(np.asarray(days, dtype="float64"), kind="stable")
        self.days, self.after, self.won, self.lost, self.still_open = (
            np.asarray(x, dtype="float64")[order] for x in (days, after, won, lost, still_open))
        self.min_n, self.horizon = min_n, float(horizon)
        self.won_durations: WonDurations | None = None   # how long its won deals took, with their follow-up
        self._cache: dict[float, dict] = {}
        # Distinct durations and how many deals lasted at least each of them.
        self._by_days, inverse = np.unique(self.days, return_inverse=True)
        per_day = np.bincount(inverse, weights=self.won + self.lost + self.still_open, minlength=len(self._by_days))
        self._reached = np.cumsum(per_day[::-1])[::-1]

    @classmethod
    def from_deals(cls, days, won, lost, still_open, min_n: int, horizon: float) -> "StallHistory":
        """One row per deal (the age rule: the outcome ends the time, so nothing comes after)."""
        frame = pd.DataFrame({"days": np.floor(np.asarray(days, dtype="float64")), "won": won, "lost": lost,
                              "open": still_open}).astype({"won": "int64", "lost": "int64", "open": "int64"})
        g = frame.groupby("days", sort=True)[["won", "lost", "open"]].sum().reset_index()
        return cls(g["days"], np.zeros(len(g)), g["won"], g["lost"], g["open"], min_n, horizon)

    def chance(self, days: float) -> dict:
        """Win chance within the horizon of the deals that lasted at least
        ``days`` (from that point on), with its interval, the number of such
        deals, how many are still open and how many were followed to an
        outcome or through the horizon; the rate is NaN below ``min_n``
        deals (or followed deals, when most were not followed)."""
        start = float(np.floor(days))
        cached = self._cache.get(start)
        if cached is not None:
            return dict(cached)
        reached = slice(int(np.searchsorted(self.days, start, side="left")), None)
        # Whole days from that point on; an outcome after the horizon is "not
        # within it": such deals stay at risk to the end, like open ones.
        late = int(self.horizon) + 1
        t = np.minimum(self.days[reached] - start + self.after[reached], late).astype(np.int64)
        beyond = t >= late
        won, lost, still_open = self.won[reached], self.lost[reached], self.still_open[reached]
        count = lambda x: np.bincount(t, weights=x, minlength=late + 1)
        found = win_incidence(np.arange(late + 1), count(np.where(beyond, 0, won)), count(np.where(beyond, 0, lost)),
                              count(np.where(beyond, won + lost, 0) + still_open), self.horizon)
        found["still_open"] = int(still_open.sum())
        # When most deals' fate within the horizon is unknown (a young CRM censors them early), the minimum
        # sample applies to those followed to an outcome or through it: the few that ended soon (mostly
        # lost) would otherwise speak for all.
        unfollowed = 2 * found["followed"] < found["n"]
        if found["n"] < self.min_n or (unfollowed and found["followed"] < self.min_n):
            found.update(rate=np.nan, low=np.nan, high=np.nan)
        self._cache[start] = found
        return dict(found)

    def longest_with_sample(self, days: float) -> float:
        """The longest duration up to ``days`` that at least ``min_n`` deals
        reached (NaN when none): the nearest evidence when too few deals
        lasted as long as the deal itself."""
        # Deals reaching each duration only fall as it grows: the last one with enough.
        last = np.searchsorted(self._by_days, np.floor(days), side="right") - 1
        enough = np.flatnonzero(self._reached[: last + 1] >= self.min_n) if last >= 0 else []
        return float(self._by_days[enough[-1]]) if len(enough) else np.nan


class WonDurations:
    """How long won deals took (in their stage, or open), each with how long
    it could be watched: the days from its start (entering the stage, or
    creation) to the analysis date, ``count`` deals per row; and how long
    every deal (won, lost or open) could be watched (``watched``, with
    ``watched_count``).

    In a young CRM only the quick wins have happened yet, so a limit read
    from every won deal is too short and ordinary deals look stalled (a CRM
    two months old: "90 % of won deals closed within 31 days", where its
    wins take 57 days at the median). ``limit`` reads the percentile from
    the won deals that started at least ``follow`` times the limit before
    the analysis date, whose wins up to that long are all in (a fixed point:
    the limit chooses those deals, and only grows). Fewer than ``min_n``
    deals of any outcome started that long ago: the history is too short to
    say. Enough deals but too few of them won: the older deals rarely won,
    which says nothing more about how long wins take; the limit stays."""

    def __init__(self, days, follow_up, watched, count=None, watched_count=None):
        days = np.floor(np.asarray(days, dtype="float64"))
        order = np.argsort(days, kind="stable")
        self.days = days[order]
        self.follow_up = np.asarray(follow_up, dtype="float64")[order]
        self.count = (np.ones(len(days)) if count is None else np.asarray(count, dtype="float64"))[order]
        self.total = float(self.count.sum())
        watched = np.asarray(watched, dtype="float64")
        weights = np.ones(len(watched)) if watched_count is None else np.asarray(watched_count, dtype="float64")
        by_follow = np.argsort(watched, kind="stable")
        self._watched = watched[by_follow]
        self._watched_at_least = np.cumsum(weights[by_follow][::-1])[::-1]   # deals watched at least each value
        self.cohort = np.ones(len(self.days), dtype=bool)   # the won deals the limit was read from

    @property
    def counted(self) -> float:
        return float(self.count[self.cohort].sum())

    def watched_at_least(self, days: float) -> float:
        at = np.searchsorted(self._watched, days, side="left")
        return float(self._watched_at_least[at]) if at < len(self._watched) else 0.0

    def limit(self, q: float, min_won: int, follow: float, min_n: int) -> float:
        """The ``q`` percentile of won deals' durations, read from those
        watched at least ``follow`` times it; NaN when fewer than ``min_won``
        won deals, or fewer than ``min_n`` deals watched that long."""
        self.cohort = np.ones(len(self.days), dtype=bool)
        if self.total < min_won:
            return np.nan
        limit = self._quantile(self.cohort, q)
        for _ in range(50):   # each step reads older deals, so the limit only grows: a few steps
            if self.watched_at_least(follow * limit) < min_n:
                return np.nan
            older = self.follow_up >= follow * limit
            if self.count[older].sum() < min_won:
                break
            self.cohort, previous = older, limit
            limit = max(previous, self._quantile(older, q))
            if limit <= previous:
                break
        return float(limit)

    def share_within(self, days: np.ndarray) -> np.ndarray:
        """Share of the won deals the limit was read from that took at most ``days``."""
        days = np.atleast_1d(np.asarray(days, dtype="float64"))
        cum = np.concatenate([[0.0], np.cumsum(self.count[self.cohort])])
        if cum[-1] <= 0:
            return np.full(len(days), np.nan)
        return cum[np.searchsorted(self.days[self.cohort], np.floor(days), side="right")] / cum[-1]

    def _quantile(self, cohort: np.ndarray, q: float) -> float:
        """Smallest duration with at least a share q of the cohort's won deals at or below it."""
        cum = np.cumsum(self.count[cohort])
        return float(self.days[cohort][np.searchsorted(cum, q * cum[-1] - 1e-9)])


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

    # Column by column: ``fact.iloc[open_rows]`` would copy every column of every open deal.
    open_column = lambda name: fact[name].iloc[open_rows]  # noqa: E731
    stage = open_column("deal_stage").to_numpy(dtype=object, na_value="")
    days = (pd.to_numeric(open_column("days_in_stage"), errors="coerce").to_numpy(dtype="float64")
            if "days_in_stage" in fact else np.full(len(open_rows), np.nan))
    age = (deals.as_of - deals.created[open_rows]).astype("float64")

    by_stage = _stage_history(transitions, fact, rules, deals)
    def limit_of(won: WonDurations, q: float) -> float:
        return won.limit(q, cfg.min_won_stage_deals, cfg.follow_up_factor, cfg.min_history_deals)

    limits = {name: limit_of(h.won_durations, cfg.stage_percentile) for name, h in by_stage.items()}
    thresholds = {name: value for name, value in limits.items() if np.isfinite(value)}
    if not thresholds:
        notes.append("no usable stage history (none in the source, too few won deals per stage, or a history too "
                     "short to have seen the slower ones): stalled deals are judged by their age against won "
                     "deals' cycles")
    by_age = _age_history(deals, rules)
    won = by_age.won_durations
    age_limit = limit_of(won, cfg.age_percentile)
    if won.total < cfg.min_won_stage_deals:
        notes.append(f"only {won.total:,.0f} won deals (fewer than {cfg.min_won_stage_deals}): not enough "
                     "data to judge stalls by age or to call any stalled deal a crisis")
    elif not np.isfinite(age_limit):
        notes.append(f"the history is too short to say how long won deals take: fewer than "
                     f"{cfg.min_history_deals} deals were created long enough ago for the slower wins to have "
                     f"happened ({cfg.follow_up_factor:g} times the limit the {won.total:,.0f} won deals so far "
                     "give): stalls are not judged by age")
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
    # NaN when the CRM has no amount for the deal: unknown, never $0 (the explanation says so)
    amounts = pd.to_numeric(open_column("deal_amount"), errors="coerce").to_numpy(dtype="float64")
    out = pd.DataFrame({
        "deal_id": open_column("deal_id").to_numpy()[rows], "sales_rep_id": open_column("sales_rep_id").to_numpy()[rows],
        "deal_stage": stage[rows], "amount": amounts[rows], "age": age[rows],
        # What the CRM calls the stage (a file export's own names), for the words a user reads.
        "crm_stage": (open_column("crm_stage").fillna(open_column("deal_stage")).to_numpy(dtype=object)[rows]
                      if "crm_stage" in fact else stage[rows]),
        "days_in_stage": days[rows], "rule": rule, "limit": lim, "observed": observed,
        # How many times its limit the deal has run (SMI is "below": inverted).
        "overdue": np.where(rule == "smi", critical / np.maximum(smi_open[rows], 1e-9), observed / np.maximum(lim, 1.0)),
        "smi": smi_open[rows], "smi_critical": smi_below[rows],
        # A deal listed for its SMI alone was judged by time too, unless no time limit could be set.
        "time_judged": stage_rule[rows] | np.isfinite(age_limit),
        "entered": (pd.to_datetime(open_column("stage_entered_date")).to_numpy()[rows]
                    if "stage_entered_date" in fact else np.full(len(rows), np.datetime64("NaT"))),
        # Day numbers to dates at once (an open deal's creation day is always known).
        "created": deals.created[open_rows][rows].astype("datetime64[D]").astype("datetime64[ns]"),
    })
    _evidence(out, by_stage, by_age)
    notes += _priority(out, deals.amount[open_rows], by_age.chance(0)["rate"], rules)
    out = out.sort_values(["level", "stake", "won_percentile", "overdue", "amount", "deal_id"],
                          ascending=[False, False, False, False, False, True], kind="stable", na_position="last")
    out["severity"] = LEVELS[out["level"].to_numpy()]
    return StalledResult(out.head(cfg.max_deals).reset_index(drop=True), int(flagged.sum()), notes)


def _age_history(deals: DealDays, rules: Rules) -> StallHistory:
    """Every deal by how long it stayed open: closed ones (consistent dates)
    by their cycle, open ones by their age so far."""
    rows = np.flatnonzero(deals.usable_closed | deals.open_now)
    end = np.where(deals.open_now[rows], deals.as_of, deals.closed[rows])
    won = deals.won[rows] & deals.usable_closed[rows]
    lost = ~deals.won[rows] & deals.usable_closed[rows]
    days = (end - deals.created[rows]).astype("float64")
    history = StallHistory.from_deals(days, won, lost, deals.open_now[rows],
                                      rules.anomalies.stalled.min_history_deals, rules.risk.win_horizon_days)
    watched = (deals.as_of - deals.created[rows]).astype("float64")
    history.won_durations = WonDurations(days[won], watched[won], watched)
    return history


def _stage_history(transitions, fact, rules: Rules, deals: DealDays) -> dict[str, StallHistory]:
    """Per stage: every deal that entered it by the analysis date, by its
    days there (so far, if it is still there), the days from leaving it to
    the outcome (or to the analysis date), won, lost or still open then.
    One DuckDB aggregate: the transitions table has several rows per deal."""
    cfg = rules.anomalies.stalled
    if transitions is None or not len(transitions):
        return {}
    known = deals.usable_closed | deals.open_now
    end = np.where(deals.open_now, deals.as_of, deals.closed)[known]
    status = pd.DataFrame({"deal_id": fact["deal_id"].to_numpy()[known],
                           "won": (deals.won & deals.usable_closed)[known],
                           "lost": (~deals.won & deals.usable_closed)[known], "still_open": deals.open_now[known],
                           "end_date": pd.to_datetime(end.astype("datetime64[D]"))})
    con = duckdb.connect()
    try:
        con.register("_t", transitions[["deal_id", "stage", "exited_date", "days_in_stage"]])
        con.register("_c", status)
        con.execute("""
            CREATE TEMP TABLE d AS
                SELECT t.stage, c.won, c.lost, c.still_open,
                       CASE WHEN t.exited_date IS NULL OR t.exited_date <= $as_of THEN t.days_in_stage
                            ELSE t.days_in_stage - date_diff('day', $as_of, t.exited_date) END AS days,
                       CASE WHEN t.exited_date IS NULL OR t.exited_date > $as_of THEN 0
                            ELSE greatest(date_diff('day', t.exited_date, c.end_date), 0) END AS after,
                       -- days from leaving the stage to the analysis date (0 while still in it)
                       CASE WHEN t.exited_date IS NULL OR t.exited_date > $as_of THEN 0
                            ELSE date_diff('day', t.exited_date, $as_of) END AS since_exit
                FROM _t t JOIN _c c USING (deal_id)
                WHERE t.stage <> $closed AND t.days_in_stage IS NOT NULL""",
                    {"as_of": to_timestamp(deals.as_of).to_pydatetime(), "closed": rules.stages.closed_stage})
        table = con.execute("""
            SELECT stage, floor(days) AS days, after, count(*) FILTER (WHERE won) AS won,
                   count(*) FILTER (WHERE lost) AS lost, count(*) FILTER (WHERE still_open) AS still_open
            FROM d WHERE days >= 0 GROUP BY ALL""").df()
        # How long each stay could be watched (from entering the stage), won ones by their days, for the limits.
        won = con.execute("""SELECT stage, floor(days) AS days, days + since_exit AS follow_up, count(*) AS n
                             FROM d WHERE won AND days >= 0 GROUP BY ALL""").df()
        watched = con.execute("""SELECT stage, days + since_exit AS follow_up, count(*) AS n
                                 FROM d WHERE days >= 0 GROUP BY ALL""").df()
    finally:
        con.close()
    histories = {}
    won_by_stage, watched_by_stage = dict(iter(won.groupby("stage"))), dict(iter(watched.groupby("stage")))
    for name, g in table.groupby("stage"):
        history = StallHistory(g["days"], g["after"], g["won"], g["lost"], g["still_open"], cfg.min_history_deals,
                               rules.risk.win_horizon_days)
        stays, all_stays = won_by_stage.get(name, won.iloc[:0]), watched_by_stage[name]
        history.won_durations = WonDurations(stays["days"], stays["follow_up"], all_stays["follow_up"],
                                             stays["n"], all_stays["n"])
        histories[str(name)] = history
    return histories


def _evidence(out: pd.DataFrame, by_stage: dict[str, StallHistory], by_age: StallHistory) -> None:
    """Per deal: the win chance of deals that lasted as long (with interval
    and counts), of deals that lasted the longest stay past the limit with
    enough of them (the fallback when too few lasted as long), of deals fresh
    in the stage (or new), and the deal's percentile among won deals' durations.
    Computed once per history and whole day, whatever the number of deals."""
    n = len(out)
    fields = {f"{prefix}_{f}": np.full(n, np.nan) for prefix in ("history", "past_limit", "base")
              for f in ("win_rate", "win_low", "win_high", *COUNTS)}
    percentile, past_days = np.full(n, np.nan), np.full(n, np.nan)
    won_read, won_total = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)   # the limit's won deals, of all
    by_stage_rule = out["rule"].eq("stage").to_numpy()
    value = np.floor(np.where(by_stage_rule, out["days_in_stage"], out["age"]).astype("float64"))
    key = np.where(by_stage_rule, out["deal_stage"].astype(str), "").astype(object)
    for name in pd.unique(key):
        history = by_stage.get(name) if name else by_age
        rows = np.flatnonzero((key == name) & np.isfinite(value))
        if history is None or not len(rows):
            continue
        days, inverse = np.unique(value[rows], return_inverse=True)
        limit = float(out["limit"].to_numpy()[rows[0]])   # one limit per stage (or for ages)
        # Too few deals lasted as long: the longest stay past the limit that enough deals reached.
        nearest = np.array([history.longest_with_sample(d) for d in days])
        nearest = np.where(nearest > limit, nearest, np.nan)
        for prefix, points in (("history", days), ("past_limit", nearest), ("base", np.zeros(len(days)))):
            chances = [history.chance(d) if np.isfinite(d) else None for d in points]
            for f, src in (("win_rate", "rate"), ("win_low", "low"), ("win_high", "high"), ("n", "n"),
                           ("open", "still_open"), ("followed", "followed")):
                per_day = np.array([c[src] if c else (0 if f in COUNTS else np.nan) for c in chances],
                                   dtype="float64")
                fields[f"{prefix}_{f}"][rows] = per_day[inverse]
        percentile[rows] = history.won_durations.share_within(days)[inverse]
        past_days[rows] = nearest[inverse]
        won_read[rows], won_total[rows] = history.won_durations.counted, history.won_durations.total
    counted = tuple(f"_{c}" for c in COUNTS)
    for name, column in fields.items():
        out[name] = np.nan_to_num(column).astype(np.int64) if name.endswith(counted) else column
    out["historical_win_rate"] = out["history_win_rate"]
    out["won_percentile"] = percentile
    out["past_limit_days"] = past_days
    out["won_read"], out["won_total"] = won_read, won_total


def _priority(out: pd.DataFrame, open_amounts: np.ndarray, new_deal_chance: float, rules: Rules) -> list[str]:
    """Level 0-3 (low..critical) from staleness, gated by money: ``stake`` =
    amount x the drop in win chance (0 and ``stake_known`` False without
    enough data). Returns notes for the run."""
    cfg = rules.anomalies.stalled
    pct, over = out["won_percentile"].to_numpy(), out["overdue"].to_numpy()
    by_time = out["rule"].ne("smi").to_numpy()
    level = np.where(by_time, 1, 0)
    level = np.where(by_time & (pct >= cfg.high.won_percentile) & (over >= cfg.high.overdue_ratio), 2, level)
    level = np.where(by_time & (pct >= cfg.critical.won_percentile) & (over >= cfg.critical.overdue_ratio), 3, level)

    # Too few deals lasted as long: the nearest stay with enough deals speaks for it.
    own = np.isfinite(out["history_win_rate"].to_numpy())
    now = np.where(own, out["history_win_rate"], out["past_limit_win_rate"])
    now_high = np.where(own, out["history_win_high"], out["past_limit_win_high"])
    base = out["base_win_rate"].to_numpy()
    known = np.isfinite(now) & np.isfinite(base)
    drop = np.where(known, np.clip(base - now, 0, 1), np.nan)
    amount = np.maximum(np.nan_to_num(out["amount"].to_numpy(dtype="float64")), 0.0)
    stake = np.where(known, amount * np.nan_to_num(drop), 0.0)
    confirmed = known & (now_high < base)   # the interval says the chance really fell

    # What open deals are expected to bring: amount x a new deal's win chance.
    usable_chance = np.isfinite(new_deal_chance) and new_deal_chance > 0
    expected = np.maximum(open_amounts, 0.0) * (new_deal_chance if usable_chance else np.nan)
    ok = np.isfinite(expected)
    small_at = np.quantile(expected[ok], cfg.small_stake_quantile) if ok.any() else np.nan
    crisis_at = np.quantile(expected[ok], cfg.crisis_stake_quantile) if ok.any() else np.inf
    small = known & (stake < small_at)
    level = np.where(small, np.maximum(level - 1, 0), level)
    crisis = (level == 3) & known & confirmed & (stake >= crisis_at)
    # A handful of crises: the highest money at stake, then the stalest.
    ranked = np.lexsort((-np.nan_to_num(over), -stake))
    over_budget = ranked[crisis[ranked]][cfg.max_crises:]
    crisis[over_budget] = False
    level = np.where((level == 3) & ~crisis, 2, level)

    out["win_probability_drop"], out["stake"], out["stake_known"] = drop, stake, known
    out["drop_confirmed"], out["level"] = confirmed, level.astype(np.int64)
    out["crisis_stake"] = crisis_at
    notes = []
    if not usable_chance:
        notes.append("not enough data to estimate a new deal's win chance (too few closed deals, or too few "
                     "followed through the horizon): no stalled deal is a crisis")
    elif by_time.any():
        notes.append(f"a stalled-deal crisis needs critical staleness, a confirmed drop in win chance and at "
                     f"least ${crisis_at:,.0f} at stake (the {cfg.crisis_stake_quantile:.0%} quantile of what "
                     f"open deals are expected to bring); {int(crisis.sum()) + len(over_budget)} of "
                     f"{int(by_time.sum())} stalled deals qualify"
                     + (f", the {cfg.max_crises} with most at stake are crises, the other {len(over_budget)} "
                        "high priority" if len(over_budget) else ""))
    return notes
