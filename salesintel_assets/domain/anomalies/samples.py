"""What the anomaly tests compare: each recent window (ending on the analysis
date) against the baseline just before it, re-weighted to what the same
process would have produced in the window.

Why re-weight: which deals close in a window depends on how many deals were
created when. A deal that closes on day t after L days was created on t - L,
so the closes of a window with cycle L are proportional to the creations
E_W(L) in [start - L, end - L]. When volume grows, or an export stops
listing new deals (the recent closes are then only the long-cycle ones),
cycles and win rates of recent closes shift although nothing about selling
changed. Each baseline deal is therefore weighted by E_W(L) / E_B(L): the
baseline then shows the cycles and win rates the window should have had.
Open deals' ages get the same treatment (a snapshot's age mix follows past
creation volumes). Only deals closed on or before the analysis date count.

When closings are seasonal (quarter ends), the baseline is also standardised
to the window's position in the quarter (``seasonality``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from salesintel_assets.domain.anomalies import seasonality
from salesintel_assets.domain.anomalies.significance import Comparison, Sample
from salesintel_assets.domain.common.rules import Rules
from salesintel_assets.domain.warehouse import clean_ups, recency

NEVER = np.int64(2**40)  # day number standing for "no date"
ENTRY_SCORE_COLUMNS = {"lead_source": "lead_source_score", "industry": "industry_score", "rep": "rep_score"}
STALE_AGE_PERCENTILE = 5  # a sweep closed deals from this percentile of the ages it closed lost on ...
STALE_SWEPT_SHARE = 0.5   # ... when it closed at least this share of the deals open at that age or older


def day_numbers(values: pd.Series) -> np.ndarray:
    raw = pd.to_datetime(values).to_numpy(dtype="datetime64[ns]")
    days = raw.astype("datetime64[D]").astype(np.int64)
    days[np.isnat(raw)] = NEVER
    return days


def day_number(ts: pd.Timestamp) -> int:
    return int(np.datetime64(pd.Timestamp(ts).normalize(), "D").astype(np.int64))


def to_timestamp(day: int) -> pd.Timestamp:
    return pd.Timestamp(np.datetime64(int(day), "D"))


@dataclass
class DealDays:
    """Day numbers and flags of every deal for one analysis date."""

    as_of: int
    created: np.ndarray
    closed: np.ndarray
    won: np.ndarray
    amount: np.ndarray            # 0 where the CRM has none
    priced: np.ndarray            # the CRM has an amount for the deal
    closed_by_as_of: np.ndarray   # a Won/Lost close on or before the analysis date
    usable_closed: np.ndarray     # ... with consistent dates (not flagged for review)
    open_now: np.ndarray          # created by the analysis date, not closed by then
    # Clean-up days by the analysis date: (day, the age from which that sweep closed deals), ``without_clean_ups``
    sweeps: tuple[tuple[int, int], ...] = ()

    @property
    def all_rows(self) -> np.ndarray:
        cached = self.__dict__.get("_all_rows")
        if cached is None:
            cached = self.__dict__["_all_rows"] = np.arange(len(self.created))
        return cached

    @classmethod
    def from_fact(cls, fact: pd.DataFrame, as_of: pd.Timestamp) -> "DealDays":
        a = day_number(as_of)
        created = day_numbers(fact["created_date"])
        closed = day_numbers(fact["closed_date"])
        outcome = fact["outcome"].astype("string").fillna("")
        amount = pd.to_numeric(fact["deal_amount"], errors="coerce")
        known = created < NEVER
        closed_by = known & (closed <= a) & outcome.isin(["Won", "Lost"]).to_numpy()
        review = fact["needs_review"].fillna(False).to_numpy(dtype=bool)
        return cls(
            as_of=a, created=created, closed=closed,
            won=outcome.eq("Won").to_numpy(dtype=bool),
            amount=amount.fillna(0.0).to_numpy(dtype="float64"), priced=amount.notna().to_numpy(dtype=bool),
            closed_by_as_of=closed_by,
            usable_closed=closed_by & ~review & (closed >= created),
            open_now=known & (created <= a) & ~(closed <= a),
        )

    def without_backlog(self, fact: pd.DataFrame, max_quiet_days: int) -> tuple["DealDays", list[str]]:
        """After a stretch whose closes are missing (``recency.missing_closes``),
        the closes of its catch-up are dated when they were recorded, not
        when they happened (and their cycles run long by as much): they are
        left out of every comparison of closed deals, with a note."""
        gap = recency.missing_closes(fact["created_date"], fact["closed_date"], to_timestamp(self.as_of),
                                     max_quiet_days)
        if gap is None:
            return self, []
        start = day_number(gap.end)
        backlog = self.usable_closed & (self.closed >= start) & (self.closed < start + gap.window_days)
        note = (f"{int(backlog.sum()):,} deals closed from {gap.end:%Y-%m-%d} to "
                f"{to_timestamp(start + gap.window_days - 1):%Y-%m-%d}, after {gap.days:,} days without a close, "
                "are a backlog recorded late: left out of the comparisons of closed deals")
        return replace(self, usable_closed=self.usable_closed & ~backlog), [note]

    def without_clean_ups(self) -> tuple["DealDays", list[str]]:
        """The closes of clean-up days (``clean_ups``: stale deals closed lost
        in one sweep) are left out of every comparison of closed deals, with
        a note: a sweep is housekeeping, not a fall of the win rate and a
        slower cycle of everything it touched."""
        swept = clean_ups.clean_up_days(self.closed[self.usable_closed], self.won[self.usable_closed])
        if not swept:
            return self, []
        days = [day_number(c.day) for c in swept]
        left_out = self.usable_closed & np.isin(self.closed, days)
        note = ("clean-up days, left out of the comparisons of closed deals: " + ", ".join(c.sentence() for c in swept)
                + ": many times a day's usual closes, nearly all lost, stale deals closed in one sweep; housekeeping, "
                  "not selling")
        sweeps = tuple((day, stale) for day in days if (stale := self._stale_age(day)) is not None)
        return replace(self, usable_closed=self.usable_closed & ~left_out, sweeps=sweeps), [note]

    def _stale_age(self, day: int) -> int | None:
        """The age from which the sweep of ``day`` closed deals: the 5th
        percentile of the ages of the deals it closed lost (the day's few
        ordinary closes, young deals lost as usual, do not set it). None
        when it left most deals open at that age or older open: a purge of
        one batch of leads, not of every stale deal."""
        swept = self.usable_closed & (self.closed == day) & ~self.won
        stale = int(np.percentile(day - self.created[swept], STALE_AGE_PERCENTILE))
        that_old = (self.created <= day - stale) & (self.closed >= day)   # open on the eve of the sweep
        return stale if (swept & that_old).sum() >= STALE_SWEPT_SHARE * that_old.sum() else None

    def earlier(self, day: int) -> "DealDays":
        """The same deals as the detector saw them on an earlier ``day``
        (a deal closed by then was closed by the analysis date too)."""
        by_then = self.closed <= day
        known = self.created < NEVER
        return DealDays(as_of=int(day), created=self.created, closed=self.closed, won=self.won, amount=self.amount,
                        priced=self.priced, closed_by_as_of=self.closed_by_as_of & by_then,
                        usable_closed=self.usable_closed & by_then, open_now=known & (self.created <= day) & ~by_then,
                        sweeps=tuple(s for s in self.sweeps if s[0] <= day))


class CreationCurve:
    """Deals created per day up to the analysis date (whatever became of
    them), per segment when segment ids are given (one row per segment)."""

    def __init__(self, created: np.ndarray, as_of: int, gid: np.ndarray | None = None, groups: int = 1):
        keep = created <= as_of
        days = created[keep]
        gid = np.zeros(len(days), dtype=np.int64) if gid is None else np.asarray(gid)[keep]
        self.as_of = as_of
        self.first = int(days.min()) if len(days) else as_of
        width = as_of - self.first + 1
        counts = np.bincount(gid * width + (days - self.first), minlength=groups * width).reshape(groups, width)
        self._cum = np.concatenate([np.zeros((groups, 1)), np.cumsum(counts, axis=1)], axis=1)

    def count(self, lo, hi, g=0) -> np.ndarray:
        """Deals of segment ``g`` created in [lo, hi] (inclusive, element-wise)."""
        width = self._cum.shape[1]
        flat = self._cum.ravel()
        base = np.asarray(g) * width
        i_lo = np.clip(np.asarray(lo) - self.first, 0, width - 1)
        i_hi = np.clip(np.asarray(hi) - self.first + 1, 0, width - 1)
        return np.maximum(flat[base + i_hi] - flat[base + i_lo], 0.0)

    def rate(self, day, g=0, half_width: int = 3) -> np.ndarray:
        """Mean creations per day over a week centred on ``day`` (weekday
        effects cancel), within the observed days."""
        day = np.asarray(day)
        lo = np.maximum(day - half_width, self.first)
        hi = np.minimum(day + half_width, self.as_of)
        width = hi - lo + 1
        return np.where(width > 0, self.count(lo, hi, g) / np.maximum(width, 1), 0.0)

    @property
    def groups(self) -> int:
        return self._cum.shape[0]

    def by_season_lag(self, runs: tuple[np.ndarray, ...], seasons: int, lags: int) -> np.ndarray:
        """Table [segment, season, L] of deals created L days before a day of
        that season in the runs (``seasonality.season_runs``): the exposure
        of each season's closes to deals of cycle L."""
        lag = np.arange(lags)[None, :]
        g = np.arange(self.groups)[:, None]
        table = np.zeros((self.groups, seasons, lags))
        for season, first, last in zip(*runs):
            table[:, season, :] += self.count(first - lag, last - lag, g)
        return table

    def by_lag(self, start: int, end: int, lags: int) -> np.ndarray:
        """Table [segment, L] of deals created in [start - L, end - L]: the
        exposure of a window to deals of cycle L (one gather per deal later)."""
        lag = np.arange(lags)[None, :]
        g = np.arange(self.groups)[:, None]
        return self.count(start - lag, end - lag, g)

    def rate_table(self) -> np.ndarray:
        """Table [segment, day - first] of ``rate`` for every observed day."""
        days = np.arange(self.first, self.as_of + 1)[None, :]
        return self.rate(days, np.arange(self.groups)[:, None])


class SegmentCurves:
    """Creation curves of every segment of a dimension set, built on demand.
    Exposure is per segment: if one segment's volume jumps (a burst of new
    leads), only that segment's expectations move."""

    def __init__(self, deals: "DealDays", codes):
        self.deals, self.codes = deals, codes
        self._curves: dict = {}

    def __call__(self, dimset: tuple[str, ...]) -> tuple[CreationCurve, np.ndarray]:
        """The dimension set's curves and the segment id of every deal."""
        if dimset not in self._curves:
            gid, size = self.codes.group_ids(dimset, self.deals.all_rows)
            self._curves[dimset] = (CreationCurve(self.deals.created, self.deals.as_of, gid, size), gid)
        return self._curves[dimset]


def dimsets(rules: Rules, test, window_days: int | None = None) -> list[tuple[str, ...]]:
    """The whole business, every single dimension and, when the test takes
    them, the pairs; in a window (``window_days``) outside the test's
    ``pairs_and_reps_windows_days``, neither the pairs nor the reps."""
    ar = rules.anomalies
    narrow = test.pairs_and_reps_windows_days
    every = narrow is None or window_days is None or window_days in narrow
    sets = [()] + [(d,) for d in ar.dimensions if every or d != "sales_rep_id"]
    if test.with_pairs and every:
        sets += [tuple(sorted(p)) for p in ar.pairs]
    return sets


def baseline_start(rules: Rules, as_of: int, window_days: int, seasonal: bool = False) -> int:
    """First day of a closed-deal window's baseline."""
    return _windows(rules, as_of, window_days, seasonal)[2]


def _windows(rules: Rules, as_of: int, window_days: int, seasonal: bool = False) -> tuple[int, int, int, int]:
    """Window [start, as_of] and its baseline just before it (longer when
    seasonal, for closed deals: only the same weeks of earlier quarters count,
    so it spans more quarters)."""
    start = as_of - window_days + 1
    days = rules.anomalies.baseline_days
    if seasonal:
        days = max(days, rules.anomalies.seasonality.baseline_days)
    return start, as_of, start - days, start - 1


@dataclass
class ClosedWindow:
    """Deals closed in one window and in its baseline; shared by every test
    on closed deals of that window. ``weights(dimset)`` are the baseline's
    exposure weights from each segment's own creation curve."""

    window_days: int
    start: int
    end: int
    b_start: int
    b_end: int
    rows: np.ndarray
    base_rows: np.ndarray
    base_cycle: np.ndarray
    base_weight: np.ndarray       # from the business-wide creation curve
    dropped: int
    curves: SegmentCurves
    # Seasonal closings: per baseline deal, its season and the factor giving
    # the baseline the window's season mix; the runs of each season in the
    # window and in the baseline (None when closings are not seasonal).
    season_factor: np.ndarray | None = None
    base_season: np.ndarray | None = None
    runs: tuple | None = None

    def weights(self, dimset: tuple[str, ...]) -> np.ndarray:
        cache = self.__dict__.setdefault("_weights", {})
        if dimset not in cache:
            curve, gid = self.curves(dimset)
            weight = exposure_weights(curve, gid[self.base_rows], self.base_cycle, (self.start, self.end),
                                      (self.b_start, self.b_end), self.base_season, self.runs)
            cache[dimset] = weight if self.season_factor is None else weight * self.season_factor
        return cache[dimset]


def exposure_weights(curve: CreationCurve, gid: np.ndarray, cycle: np.ndarray, window: tuple[int, int],
                     base: tuple[int, int], season: np.ndarray | None = None, runs: tuple | None = None) -> np.ndarray:
    """Per baseline deal of cycle L: E_W(L) / E_B(L), the deals created L
    days before a window day over those created L days before a baseline
    day. Seasonal closings: per season too (E(L, s) over the days of season
    s only). A standardised baseline takes each season from a few quarters;
    when creation volume differs between them (growth, or the first months
    of the history, which cannot hold long cycles yet), a baseline-wide
    ratio would let one quarter's cycle mix stand for the season's."""
    lags = int(cycle.max()) + 1 if len(cycle) else 1
    if season is None:
        ratio = curve.by_lag(*window, lags) / np.maximum(curve.by_lag(*base, lags), 1.0)
        return ratio.ravel()[gid * lags + cycle]
    w_runs, b_runs = runs
    seasons = int(max(w_runs[0].max(initial=0), b_runs[0].max(initial=0))) + 1
    ratio = curve.by_season_lag(w_runs, seasons, lags) / np.maximum(curve.by_season_lag(b_runs, seasons, lags), 1.0)
    return ratio[gid, season, cycle]


def season_check(deals: DealDays, rules: Rules) -> seasonality.SeasonCheck:
    """Are closings seasonal? Judged on the closes before the last
    ``seasonality.held_out_days`` and the open-age window (a recent change
    must not decide how it is itself judged). Closes soon
    after the first deal can only be short deals, which would look like a
    season, so only deals of cycle at most C count, closed C days or more
    after the first deal: every such day can hold every such cycle, and
    without a season their mix is the same on each. C is ``baseline_days``,
    shorter in a young CRM so that two quarters of closes are judged, but
    not below ``seasonality.MIN_JUDGED_CYCLE_DAYS`` (a blanket
    ``baseline_days`` left a CRM's first 300 days untested, and its first
    quarter ends raised win-rate spikes)."""
    ar = rules.anomalies
    before = deals.as_of - max(ar.seasonality.held_out_days, ar.open_age.window_days) + 1
    known = deals.created[deals.created < NEVER]
    first = int(known.min()) if len(known) else before
    longest = int(np.clip(before - first - 2 * seasonality.QUARTER_DAYS, seasonality.MIN_JUDGED_CYCLE_DAYS,
                          max(ar.baseline_days, seasonality.MIN_JUDGED_CYCLE_DAYS)))
    cycles = (deals.closed - deals.created).astype("float64")
    rows = np.flatnonzero(deals.usable_closed & (deals.closed < before) & (deals.closed >= first + longest)
                          & (cycles <= longest))
    cycles = cycles[rows]
    return seasonality.detect(deals.closed[rows], deals.won[rows], cycles, ar.seasonality,
                              ar.win_rate.min_effect, ar.cycle.min_effect)


def _contained_at_same_point(curve: CreationCurve, base_runs: tuple, season: np.ndarray,
                             cycle: np.ndarray) -> np.ndarray:
    """Per window deal: was any deal created ``cycle`` days before a baseline
    day of the deal's season?"""
    if not len(cycle):
        return np.zeros(0, dtype=bool)
    seasons = int(max(season.max(), base_runs[0].max(initial=0))) + 1
    exposure = curve.by_season_lag(base_runs, seasons, int(cycle.max()) + 1)[0]
    return exposure[season, cycle] > 0


def closed_window(deals: DealDays, curves: SegmentCurves, rules: Rules, window_days: int,
                  seasonal: bool = False) -> ClosedWindow:
    start, end, b_start, b_end = _windows(rules, deals.as_of, window_days, seasonal)
    rows_w = np.flatnonzero(deals.usable_closed & (deals.closed >= start) & (deals.closed <= end))
    rows_b = np.flatnonzero(deals.usable_closed & (deals.closed >= b_start) & (deals.closed <= b_end))
    cycle_w = deals.closed[rows_w] - deals.created[rows_w]
    cycle_b = deals.closed[rows_b] - deals.created[rows_b]
    curve = curves(())[0]
    # A recent cycle the baseline could not contain (created before any
    # baseline deal could have been) has nothing to be compared with.
    comparable = curve.count(b_start - cycle_w, b_end - cycle_w) > 0
    zeros = np.zeros(len(rows_b), dtype=np.int64)
    factor = base_season = runs = None
    if seasonal:
        cfg = rules.anomalies.seasonality
        season = lambda rows: seasonality.season_of(deals.closed[rows], cfg.fiscal_year_start_month, cfg.bin_days)
        base_season = season(rows_b)
        runs = tuple(seasonality.season_runs(lo, hi, cfg.fiscal_year_start_month, cfg.bin_days)
                     for lo, hi in ((start, end), (b_start, b_end)))
        # ... nor one the baseline's days at the same point of the quarter
        # could not (a young CRM's one earlier quarter end held short deals only).
        comparable &= _contained_at_same_point(curve, runs[1], season(rows_w), cycle_w)
    weight = exposure_weights(curve, zeros, cycle_b, (start, end), (b_start, b_end), base_season, runs)
    if seasonal:
        factor = seasonality.standardising_factors(season(rows_w[comparable]), base_season, weight)
        weight = weight * factor
    return ClosedWindow(window_days, start, end, b_start, b_end, rows_w[comparable], rows_b, cycle_b, weight,
                        int((~comparable).sum()), curves, factor, base_season, runs)


def closed_comparison(cw: ClosedWindow, rules: Rules, *, family: str, metric: str, kind: str,
                      alternative: str, values: np.ndarray, test, valid: np.ndarray | None = None,
                      bins: int = 0, bin_edges=None) -> Comparison:
    """Deals closed in the window against exposure-weighted baseline closes."""
    rows_w, rows_b, weight = cw.rows, cw.base_rows, cw.base_weight
    keep_b = None
    if valid is not None:  # e.g. deals without a metric value
        keep_w, keep_b = valid[rows_w], valid[rows_b]
        rows_w, rows_b, weight = rows_w[keep_w], rows_b[keep_b], weight[keep_b]
    comp = Comparison(
        anomaly_family=family, metric=metric, kind=kind, alternative=alternative,
        window_days=cw.window_days, window_start=to_timestamp(cw.start), window_end=to_timestamp(cw.end),
        window=Sample(rows_w, values[rows_w]), baseline=Sample(rows_b, values[rows_b], weight),
        min_window_deals=test.min_window_deals, min_baseline_deals=test.min_baseline_deals,
        min_effect=test.min_effect, dimsets=dimsets(rules, test, cw.window_days), bins=bins,
        bin_edges=bin_edges, reweight=(cw.weights if keep_b is None else (lambda dimset: cw.weights(dimset)[keep_b])),
    )
    if cw.dropped and family == "win_rate":
        where = "" if cw.season_factor is None else " at the same point of earlier quarters"
        comp.notes.append(f"{cw.dropped} deals closed in the last {cw.window_days} days have cycles longer than "
                          f"the history before the baseline allows{where} and were left out of the comparisons")
    return comp


def snapshot_days(rules: Rules, as_of: int, window_days: int, every_days: int, seasonal: bool) -> np.ndarray:
    """Baseline dates of a test of open deals (latest first): every
    ``every_days`` through the baseline before the window; on seasonal
    closings the same point of earlier quarters (when two or more fit)."""
    _, _, b_start, b_end = _windows(rules, as_of, window_days)
    snapshots = np.arange(b_end, b_start - 1, -every_days)
    if seasonal:
        alike = seasonality.same_point_in_earlier_quarters(
            as_of, b_start, b_end, rules.anomalies.seasonality.fiscal_year_start_month)
        snapshots = alike if len(alike) >= 2 else snapshots
    return snapshots


def untouched_ages(deals: DealDays, first_snapshot: int, oldest: int) -> tuple[int, tuple[int, int] | None]:
    """Ages up to which no clean-up can have closed deals on any snapshot
    from ``first_snapshot`` on (at most ``oldest``), and the sweep (day,
    stale age) that set the limit, if one did. A sweep on day d closed the
    deals from ``stale`` days old: on a later date s, ages from
    stale + (s - d) are missing."""
    limit = None
    for day, stale in deals.sweeps:
        untouched = max(first_snapshot - day, 0) + stale
        if untouched < oldest:
            oldest, limit = untouched, (day, stale)
    return oldest, limit


def open_age_comparison(deals: DealDays, curves: SegmentCurves, rules: Rules,
                        seasonal: bool = False) -> Comparison | None:
    """Ages of deals open on the analysis date against the ages of deals open
    on baseline dates every ``snapshot_every_days`` (seasonal closings: on
    the same point of earlier quarters), re-weighted by each segment's
    creation volume (how many deals of an age a snapshot holds follows how
    many were created that long before)."""
    test = rules.anomalies.open_age
    start, end = deals.as_of - test.window_days + 1, deals.as_of
    snapshots = snapshot_days(rules, deals.as_of, test.window_days, test.snapshot_every_days, seasonal)
    oldest = int(snapshots.min()) - curves(())[0].first  # an age every snapshot could show
    older_left_out, notes = "could not have been open on every baseline date", []
    # A clean-up closed every deal past an age (``stale``): on a date after it, ages beyond the time since it
    # plus that age are missing, and come back as the pipeline fills up again. Only ages no sweep could have
    # removed on any compared date are compared; otherwise open deals "get older" all year from one January
    # sweep to the next (on a generated CRM in its second year, critical or high at four of six month ends).
    oldest, sweep = untouched_ages(deals, int(snapshots.min()), oldest)
    if sweep is not None:
        day, stale = sweep
        older_left_out = f"may have been closed in the clean-up of {to_timestamp(day):%d %b %Y}"
        notes = [f"open deals' ages compared up to {oldest} days: the clean-up of {to_timestamp(day):%d %b %Y} "
                 f"closed deals from about {stale} days old, and such ages come back only as the pipeline fills "
                 "up again"]
    if oldest < 1:
        return None
    age_now = deals.as_of - deals.created
    rows_w = np.flatnonzero(deals.open_now & (age_now <= oldest))
    rows_b, ages_b, days_b = on_snapshots(
        deals, snapshots, lambda day, age: (deals.created <= day) & (deals.closed > day) & (age <= oldest))
    reweight = creation_reweight(deals, curves, rows_b, ages_b, days_b)
    bins = rules.anomalies.max_days + 1
    return Comparison(
        anomaly_family="open_age", metric="open_deal_age_days", kind="rank", alternative="greater",
        window_days=test.window_days, window_start=to_timestamp(start), window_end=to_timestamp(end),
        window=Sample(rows_w, age_now[rows_w]),
        baseline=Sample(rows_b, ages_b, reweight(()), first_of_deal(rows_b)),
        min_window_deals=test.min_window_deals, min_baseline_deals=test.min_baseline_deals,
        min_effect=test.min_effect, dimsets=dimsets(rules, test), bins=bins, reweight=reweight,
        notes=notes, older_left_out=older_left_out,
    )


def on_snapshots(deals: DealDays, snapshots: np.ndarray, keep) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The deals ``keep(day, age)`` selects on each snapshot date (a mask
    over every deal, ``age`` its age that day; deals without a creation day
    never), stacked: their rows, their ages then and the dates."""
    known = deals.created < NEVER
    rows_b, ages_b, days_b = [], [], []
    for day in snapshots:  # a dozen dates, each vectorised over every deal
        age = day - deals.created
        rows = np.flatnonzero(known & keep(day, age))
        rows_b.append(rows)
        ages_b.append(age[rows])
        days_b.append(np.full(len(rows), day))
    return np.concatenate(rows_b), np.concatenate(ages_b), np.concatenate(days_b)


def first_of_deal(rows: np.ndarray) -> np.ndarray:
    """Marks one row of each deal (a deal open on several snapshot dates is one deal)."""
    first = np.zeros(len(rows), dtype=bool)
    first[np.unique(rows, return_index=True)[1]] = True
    return first


def creation_reweight(deals: DealDays, curves: SegmentCurves, rows: np.ndarray, ages: np.ndarray,
                      days: np.ndarray):
    """Weights per dimension set of deals seen at ``ages`` on snapshot
    ``days``: deals created per day in the segment as many days before the
    analysis date over as many days before the snapshot (a snapshot holds as
    many deals of an age as were created that long before it)."""
    cache: dict = {}

    def reweight(dimset: tuple[str, ...]) -> np.ndarray:
        if dimset not in cache:
            curve, gid = curves(dimset)
            table = curve.rate_table()
            flat, at = table.ravel(), gid[rows] * table.shape[1] - curve.first
            now = flat[at + deals.as_of - ages]
            then = flat[at + days - ages]  # the deal's own creation day: never empty
            cache[dimset] = now / np.maximum(then, 1e-9)
        return cache[dimset]

    return reweight


def created_comparison(deals: DealDays, rules: Rules, window_days: int, acceptable: np.ndarray,
                       valid: np.ndarray) -> Comparison:
    """Share of acceptable-quality deals among those created in the window
    against those created in the baseline (creation is seen at once: no weights)."""
    test = rules.anomalies.quality
    start, end, b_start, b_end = _windows(rules, deals.as_of, window_days)
    known = valid & (deals.created < NEVER)
    rows_w = np.flatnonzero(known & (deals.created >= start) & (deals.created <= end))
    rows_b = np.flatnonzero(known & (deals.created >= b_start) & (deals.created <= b_end))
    return Comparison(
        anomaly_family="quality", metric="deal_quality", kind="rate", alternative="less",
        window_days=window_days, window_start=to_timestamp(start), window_end=to_timestamp(end),
        window=Sample(rows_w, acceptable[rows_w]), baseline=Sample(rows_b, acceptable[rows_b]),
        min_window_deals=test.min_window_deals, min_baseline_deals=test.min_baseline_deals,
        min_effect=test.min_effect, dimsets=dimsets(rules, test, window_days),
    )


def entry_quality(fact: pd.DataFrame, metrics: pd.DataFrame | None, rules: Rules,
                  deals: DealDays) -> tuple[np.ndarray, np.ndarray, str]:
    """Per deal: acceptable quality at entry (1/0) and whether it is known.

    The DQS itself also scores progression, which depends on a deal's age:
    new deals would look better or worse than older ones for that reason
    alone. Quality at entry is the DQS of the components fixed when a deal
    enters the pipeline (rules: ``quality.entry_components``), against the
    same low-quality threshold. Without deal metrics, a deal from a lead
    source whose historical win rate is clearly below the rest counts as low."""
    components = rules.anomalies.quality.entry_components
    columns = [ENTRY_SCORE_COLUMNS[c] for c in components]
    threshold = rules.metrics.dqs.low_quality_below
    if metrics is not None and set(columns) <= set(metrics.columns):
        lift = np.zeros(len(fact))
        weights = rules.metrics.dqs.weights
        for component, column in zip(components, columns):
            p = np.clip(metric_values(metrics, column), 1e-6, 1 - 1e-6)
            lift = lift + getattr(weights, component) * np.log(p / (1 - p))
        known = np.isfinite(lift)
        dqs_entry = 1 / (1 + np.exp(-lift))
        how = (f"quality at entry = DQS of {', '.join(components)} (progression left out: it depends on age); "
               f"low below {threshold}")
        return np.where(known, (dqs_entry >= threshold).astype("float64"), np.nan), known, how
    weak = _weak_lead_sources(fact, deals)
    acceptable = (~fact["lead_source"].isin(weak)).to_numpy(dtype="float64")
    how = (f"no deal metrics: low quality = a lead source with a clearly weaker historical win rate "
           f"({', '.join(weak) if weak else 'none'})")
    return acceptable, np.ones(len(fact), dtype=bool), how


def _weak_lead_sources(fact: pd.DataFrame, deals: DealDays) -> list[str]:
    """Lead sources whose 95 % upper win-rate bound is below the rate of the rest."""
    from salesintel_assets.domain.common.stats import wilson_interval

    closed = fact.loc[deals.closed_by_as_of, ["lead_source"]].assign(won=deals.won[deals.closed_by_as_of])
    table = closed.groupby("lead_source")["won"].agg(["sum", "size"])
    weak = []
    for source, row in table.iterrows():
        rest_k, rest_n = table["sum"].sum() - row["sum"], table["size"].sum() - row["size"]
        _, high = wilson_interval(row["sum"], row["size"])
        if rest_n and float(high) < rest_k / rest_n:
            weak.append(str(source))
    return weak


def align_metrics(fact: pd.DataFrame, metrics: pd.DataFrame | None) -> pd.DataFrame | None:
    """deal_metrics in the fact's row order (all-NaN rows for deals it lacks);
    None when there are no deal metrics at all."""
    if metrics is None or not len(metrics) or "deal_id" not in metrics.columns:
        return None
    ids = metrics["deal_id"].to_numpy()
    if len(ids) == len(fact) and np.array_equal(ids, fact["deal_id"].to_numpy()):
        same = metrics.index.equals(pd.RangeIndex(len(metrics)))
        return metrics if same else metrics.reset_index(drop=True)   # no whole-frame copy when not needed
    unique = metrics.drop_duplicates("deal_id", keep="last").set_index("deal_id")
    return unique.reindex(fact["deal_id"].to_numpy()).reset_index()


def metrics_in_fact_order(con, fact_table: str, metrics_table: str, columns, deal_ids: np.ndarray
                          ) -> pd.DataFrame | None:
    """``columns`` of the metrics table with the fact's ``deal_ids`` (as the
    fact table's rows were read), when both tables hold the same deals in the
    same row order (as deal_metrics is written); None otherwise. Saves reading
    a second million deal ids (~1 s at 1M deals): what ``align_metrics``
    would return anyway when the ids are equal."""
    fact_rows, metric_rows, aligned = con.execute(f"""
        SELECT (SELECT count(*) FROM {fact_table}), (SELECT count(*) FROM {metrics_table}),
               coalesce(bool_and(f.deal_id IS NOT DISTINCT FROM m.deal_id), true)
        FROM (SELECT deal_id FROM {fact_table}) f POSITIONAL JOIN (SELECT deal_id FROM {metrics_table}) m
        """).fetchall()[0]
    if not (aligned and fact_rows == metric_rows == len(deal_ids)):
        return None
    present = {c for c, *_ in con.execute(f"DESCRIBE {metrics_table}").fetchall()}
    values = [c for c in dict.fromkeys(columns) if c in present and c != "deal_id"]
    frame = con.sql("SELECT " + ", ".join(f'"{c}"' for c in values) + f" FROM {metrics_table}").df() \
        if values else pd.DataFrame(index=pd.RangeIndex(len(deal_ids)))
    frame.insert(0, "deal_id", deal_ids)
    return frame[[c for c in dict.fromkeys(columns) if c in present]]


def metric_values(metrics: pd.DataFrame | None, metric: str) -> np.ndarray | None:
    """A column of the aligned deal metrics as floats (NaN where unknown)."""
    if metrics is None or metric not in metrics.columns:
        return None
    return pd.to_numeric(metrics[metric], errors="coerce").to_numpy(dtype="float64")


def quantile_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Inner edges of up to ``bins`` equal-count bins (ties share a bin)."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return np.array([])
    return np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
