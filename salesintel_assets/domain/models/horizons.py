"""Forecast horizons: each open deal's probability of being won within 30
days, 90 days and by the quarter's end, read from the probabilities the risk
model answers at fixed horizons (``features.HORIZONS`` and the main one).

The quarter's end rarely falls on one of those horizons, so its probability
lies between two of them. Where in between is a question of *when* wins
come: evenly in days (a straight line), or bunched up at the quarter's end,
as on CRMs whose reps push deals over the line before the quarter closes.
A straight line cannot see a push: mid-quarter on such CRMs it read the
wins by the quarter's end 16-33 % too low. So the place in between is
measured (``timing_share``): at the same place in earlier quarters, the
share of the deals then open and won between the two horizons that were won
by that quarter's end. The same reading spreads each deal's chance over
the months up to the main horizon (``month_spread``): the forecast by close
month, and each deal's expected close month.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from salesintel_assets.domain.models import features as rf

TIMING_QUARTERS = 8     # earlier quarters whose timing is read (two years: recent habits, enough wins)
TIMING_PRIOR = 30.0     # pseudo-wins at the straight line's share: few wins barely move it
QUARTER_END_SLACK_DAYS = 2   # the longest quarter (92 days) against a 90-day horizon


def quarter_end(as_of: pd.Timestamp, fiscal_start_month: int = 1) -> pd.Timestamp:
    """The end of the analysis date's (fiscal) quarter; on its last day, the next quarter's end."""
    day = pd.Timestamp(as_of).normalize()
    ahead = rf.quarter_clock(rf.day_numbers([day]), fiscal_start_month)[0][0]
    return day + pd.Timedelta(days=int(ahead))


def bracket(horizons, days: float) -> tuple[float, float]:
    """The two horizons (0 counts as one) around ``days``, clipped to the longest."""
    xs = np.array([0.0] + sorted(float(h) for h in horizons))
    days = float(np.clip(days, 0, xs[-1]))
    k = int(np.clip(np.searchsorted(xs, days, side="right") - 1, 0, len(xs) - 2))
    return float(xs[k]), float(xs[k + 1])


def within_days(by_horizon: dict[int, np.ndarray], days: float, share: float | None = None) -> np.ndarray:
    """Win probability within ``days`` from the model's horizons (days ->
    probability per deal), 0 at day 0, the longest horizon's beyond it (a
    conservative reading: wins bunch up early). Between two horizons it lies
    ``share`` of the way from the shorter one's to the longer one's: the
    share of the wins between them that come by ``days`` (``timing_share``);
    without it, a straight line in days."""
    lo, hi = bracket(by_horizon, days)
    n = len(next(iter(by_horizon.values())))
    below = by_horizon[int(lo)] if lo > 0 else np.zeros(n)
    if share is None:
        share = (float(np.clip(days, 0, hi)) - lo) / (hi - lo)
    return below + float(np.clip(share, 0, 1)) * (by_horizon[int(hi)] - below)


def timing_share(won: pd.DataFrame, as_of: pd.Timestamp, days: int, lo: float, hi: float) -> dict:
    """Of the deals open ``days`` before the same place in an earlier quarter
    as the target day ``days`` after ``as_of`` (a month's last day stays one:
    a quarter's end maps to earlier quarters' ends), in the last
    ``TIMING_QUARTERS`` whose window ended by ``as_of``, and won between ``lo``
    and ``hi`` days after that date, the share won within ``days``: by the
    target's place. ``won``: won deals (``created_date``, ``closed_date``)
    known on ``as_of``. Shrunk to the straight line's share by
    ``TIMING_PRIOR`` pseudo-wins, so a CRM with few wins reads nearly the
    straight line. Returns the share with its evidence: wins counted, the
    share among them, the straight line's share and the quarters read."""
    as_of = pd.Timestamp(as_of).normalize()
    line = (min(days, hi) - lo) / (hi - lo)
    target = as_of + pd.Timedelta(days=days)
    created = won["created_date"].to_numpy("datetime64[ns]")
    closed = won["closed_date"].to_numpy("datetime64[ns]")
    first = created.min() if len(created) else np.datetime64(as_of)
    inside = between = quarters = 0
    for k in range(1, TIMING_QUARTERS + 2 + int(hi // 91)):   # the latest windows may not have ended yet
        earlier = target - pd.DateOffset(months=3 * k)
        if target.is_month_end:
            earlier += pd.offsets.MonthEnd(0)
        start = earlier - pd.Timedelta(days=days)
        if quarters == TIMING_QUARTERS or np.datetime64(start) < first:
            break   # enough quarters, or before the first deal
        if start + pd.Timedelta(days=hi) > as_of:
            continue   # that window has not ended yet
        quarters += 1
        after = (closed - np.datetime64(start)) / np.timedelta64(1, "D")
        open_then = (created <= np.datetime64(start)) & (after > lo) & (after <= hi)
        between += int(open_then.sum())
        inside += int((open_then & (after <= days)).sum())
    share = (inside + TIMING_PRIOR * line) / (between + TIMING_PRIOR)
    return {"share": float(share), "wins": between, "observed": inside / between if between else None,
            "straight_line": float(line), "quarters": quarters}


def known_wins(fact: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """The won deals ``timing_share`` reads, as known on ``as_of`` (what
    ``reporting.SEGMENT_CLOSES_SQL`` over ``timing_window`` reads from the warehouse)."""
    after, _ = timing_window(as_of)
    keep = rf.labelled_mask(fact, as_of) & fact["is_won"].fillna(False).to_numpy(dtype=bool) \
        & (fact["closed_date"] > after).to_numpy(dtype=bool)
    return fact.loc[keep, ["created_date", "closed_date"]]


def scored_horizons(scores: pd.DataFrame, main: int) -> dict[int, np.ndarray]:
    """The horizons ``deal_risk_scores`` answers (days -> probability per
    deal): the main one, and 30 and 90 days when the model answers them."""
    by_horizon = {int(main): scores["win_probability"].to_numpy(float)}
    for days in rf.HORIZONS:
        column = f"win_probability_{days}d"
        if column in scores and scores[column].notna().all():
            by_horizon[days] = scores[column].to_numpy(float)
    return by_horizon


def timing_window(as_of: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The close dates (after, up to) ``timing_share`` reads. Its earliest
    date lies ``TIMING_QUARTERS`` + 2 quarters back with a 180-day main
    horizon (the quarters whose window had not ended are skipped); four more
    quarters leave room for a longer one."""
    as_of = pd.Timestamp(as_of).normalize()
    return as_of - pd.DateOffset(months=3 * (TIMING_QUARTERS + 6)), as_of


def horizon_probabilities(by_horizon: dict[int, np.ndarray], as_of: pd.Timestamp, fiscal_start_month: int = 1,
                          won: pd.DataFrame | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """Per forecast key (30d, 90d, quarter_end: of the fiscal year starting
    in ``fiscal_start_month``): each deal's probability of being won within
    it, and how the quarter's end was placed between the model's horizons
    (``timing_share`` from the won deals ``won``; a straight line without them)."""
    to_quarter_end = (quarter_end(as_of, fiscal_start_month) - pd.Timestamp(as_of).normalize()).days
    lo, hi = bracket(by_horizon, to_quarter_end)
    timing = {"days": to_quarter_end, "between_days": [int(lo), int(hi)]}
    if won is not None and to_quarter_end < hi:
        timing |= timing_share(won, as_of, to_quarter_end, lo, hi)
    # A key beyond the model's longest horizon is not answered (a rules file's 30-day horizon on a history
    # too short for 90 days); a quarter's last day is 90-92 days from the next one's: the 90-day answer.
    longest = max(by_horizon)
    keyed = {"30d": within_days(by_horizon, 30)}
    if longest >= 90:
        keyed["90d"] = within_days(by_horizon, 90)
    if to_quarter_end <= longest + QUARTER_END_SLACK_DAYS:
        keyed["quarter_end"] = within_days(by_horizon, to_quarter_end, timing.get("share"))
    return keyed, timing


def timing_note(timing: dict) -> str:
    """In words: where the quarter's end was placed between the model's horizons, and on what evidence."""
    lo, hi = timing["between_days"]
    head = f"{timing['days']} days to the quarter's end"
    if timing["days"] >= hi:
        return f"{head}: the {hi}-day answer"
    if "share" not in timing:
        return f"{head}: a straight line between the {lo}- and {hi}-day answers (no past wins read)"
    span = f"the way from the {lo}- to the {hi}-day answer" if lo else f"the {hi}-day answer"
    where = f"{head}: {timing['share']:.0%} of {span} (a straight line in days: {timing['straight_line']:.0%})"
    if not timing["wins"]:
        return f"{where}; not enough data: no deal won {lo}-{hi} days after the same place in an earlier quarter"
    return (f"{where}; in the last {timing['quarters']} quarters, {timing['observed']:.0%} of the "
            f"{timing['wins']} deals open then and won {lo}-{hi} days later were won by that quarter's end")


# --- Months ---------------------------------------------------------------------------
@dataclass(frozen=True)
class MonthSpread:
    """Each open deal's probability of being won in each month up to the
    main horizon: ``p`` is deals x ``months`` (YYYY-MM), a row sums to the
    deal's main-horizon probability."""

    months: list
    p: np.ndarray

    def close_months(self) -> np.ndarray:
        """Each deal's expected close month if won: the month by whose end
        half its chance within the horizon has come (the first month for a
        deal with none)."""
        if not self.p.shape[1]:
            return np.full(len(self.p), None, dtype=object)
        cumulative = np.cumsum(self.p, axis=1)
        k = np.argmax(cumulative >= 0.5 * cumulative[:, -1:] - 1e-12, axis=1)
        return np.asarray(self.months, dtype=object)[k]


def month_ends(as_of: pd.Timestamp, horizon_days: int) -> list[tuple[str, int]]:
    """(YYYY-MM, days from ``as_of`` to that month's last day) for every
    month ending after ``as_of``, the last one cut at ``horizon_days``."""
    as_of = pd.Timestamp(as_of).normalize()
    last = as_of + pd.Timedelta(days=int(horizon_days))
    out, end = [], as_of + pd.offsets.MonthEnd(1)
    while end < last:
        out.append((end.strftime("%Y-%m"), (end - as_of).days))
        end += pd.offsets.MonthEnd(1)
    return out + [(last.strftime("%Y-%m"), int(horizon_days))]


def month_spread(by_horizon: dict[int, np.ndarray], as_of: pd.Timestamp, main: int,
                 won: pd.DataFrame | None = None) -> MonthSpread:
    """Each deal's chance within the ``main`` horizon spread over the months
    it spans: won by each month's end (between the model's horizons where
    earlier quarters' wins came at that place, ``timing_share``; a straight
    line without ``won``), less won by the month before."""
    points = month_ends(as_of, main)
    columns = []
    for _, days in points:
        lo, hi = bracket(by_horizon, days)
        share = timing_share(won, as_of, days, lo, hi)["share"] if won is not None and lo < days < hi else None
        columns.append(within_days(by_horizon, days, share))
    cumulative = np.maximum.accumulate(np.column_stack(columns), axis=1)
    return MonthSpread([label for label, _ in points], np.diff(cumulative, axis=1, prepend=0.0))
