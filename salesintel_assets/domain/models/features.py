"""Deal risk model features: what an open deal looks like on the analysis
date, and what every deal looked like on past dates of its open life.

Whom the model learns from
--------------------------
Every deal that was open on a grid date (one every ``snapshot_every_days``,
ending on the analysis date, plus every quarter's last day when the model
reads the quarter) -- deals later won, later lost, and deals still
open today, including those that never close -- as it looked on that date,
labelled "won within H days of the snapshot" (``label``). A snapshot whose
H-day window is not over on the analysis date is censored (left out), so a
deal that lingers is learnt as what it is: not won in the windows that have
ended. Learning only from deals that eventually closed would tell the model
that every open deal closes, and score deals that linger for months as
likely wins.

No leakage, by construction
---------------------------
A feature is allowed only if it is known for an open deal at scoring time
with the same meaning it had for the training rows:

* ``sales_cycle_days`` of a closed deal is its final length; an open deal's
  age is only "how long it has been open so far". The replayed state carries
  the age *on the snapshot date*.
* ``deal_stage`` of a closed deal is the stage it reached at close. With a
  stage history, the replayed state carries the stage the deal was in on
  that date and the days it had spent in it; a state in the closed stage is
  never produced (a test guards it). Without a stage history (a plain CSV
  export) stage features are left out entirely.
* Activities count only those logged up to the snapshot date.
* ``won_cycle_share`` (the age against the segment's winning cycles) reads
  only deals won before the snapshot's week (``WonCycles``; a test moves
  later wins and checks earlier snapshots do not move).
* Outcome-derived columns of ``fact_deals`` are never read into features:
  ``FORBIDDEN_FEATURES`` lists them and ``assert_no_leakage`` refuses a
  feature set that contains one. The creation attributes (industry, region,
  product, lead source, rep, amount) are taken as known at creation -- unless
  the leakage guard (``domain/common/leakage.py``) finds one encodes the
  outcome (an amount that is 0 on every lost deal), in which case it is left
  out. A test scrambles every outcome-derived column and checks the features
  do not move.

A calendar grid samples each deal in proportion to how long it stayed open,
which is how the open pipeline on any given day is sampled too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from salesintel_assets.domain.common.rules import RiskRules

STAGE_HISTORY = "stage_history"
CREATION_ONLY = "creation_and_age"
CREATION_CATEGORICAL = ("industry", "region", "product_type", "lead_source", "sales_rep_id")
ACTIVITY_FEATURES = ("activities_so_far", "activities_last_14d", "days_since_activity")
RECENT_ACTIVITY_DAYS = 14
WON_CYCLE_SHARE = "won_cycle_share"  # the age against the segment's winning cycles (``WonCycles``)
CYCLE_SEGMENT = "product_type"       # what sets a cycle's typical length
# Where in the (fiscal) quarter a state is, used when wins bunch up at
# quarter ends (``quarter_seasonal``): closings then crowd the last weeks, so
# what an open deal will do in the next weeks depends on it.
# It is the same for every deal on one day: a context, never a deal's reason.
QUARTER_FEATURE = "days_to_quarter_end"
# With it, the deal's age at the latest quarter end (-1 when created after
# it): a deal that stayed open through a quarter-end push was not among the
# deals pushed to close, so it is a poorer bet than a deal as old mid-quarter,
# which may yet be pushed. Both are read off ``quarter_clock``.
QUARTER_AGE_FEATURE = "age_at_quarter_end"
CALENDAR_FEATURES = (QUARTER_FEATURE, QUARTER_AGE_FEATURE)   # from the day and the age alone: never a reason
CYCLE_BIN_DAYS, CYCLE_BINS = 7, 105  # cycle lengths in weeks up to two years (longer ones share the last)
CYCLE_PRIOR_DEALS = 20
UNKNOWN_STAGE = "unknown"
# Columns of fact_deals whose value (for a closed deal) depends on how or when
# it ended, plus bookkeeping that is not a property of the deal.
FORBIDDEN_FEATURES = frozenset({
    "outcome", "is_won", "is_open", "won", "closed_date", "sales_cycle_days", "original_sales_cycle_days",
    "cycle_corrected", "deal_stage", "stage_number", "stage_entered_date",
    "activity_count", "last_activity_date", "last_modified", "needs_review", "review_reason",
    "as_of_date", "deal_id", "snapshot_date", "_row_hash", "_rules_hash",
})

@dataclass(frozen=True)
class FeatureSpec:
    """Which features the model uses, decided by what the data records."""

    mode: str
    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    fiscal_start_month: int = 1   # where the quarter clock's quarters start (with the calendar features)

    @property
    def columns(self) -> list[str]:
        return list(self.categorical + self.numeric)

    def to_tags(self) -> dict:
        return {"feature_mode": self.mode, "categorical": ",".join(self.categorical),
                "numeric": ",".join(self.numeric), "fiscal_year_start_month": str(self.fiscal_start_month)}

    @classmethod
    def from_tags(cls, tags: dict) -> "FeatureSpec":
        split = lambda key: tuple(v for v in tags.get(key, "").split(",") if v)  # noqa: E731
        return cls(tags.get("feature_mode", CREATION_ONLY), split("categorical"), split("numeric"),
                   int(tags.get("fiscal_year_start_month", 1)))

    def describe(self) -> str:
        from salesintel_assets.domain.anomalies.quarter_ends import MONTH_NAMES

        quarters = "" if self.fiscal_start_month % 3 == 1 else \
            f" (quarters starting in {MONTH_NAMES[self.fiscal_start_month - 1]})"
        seasonal = (f"; wins bunch at quarter ends{quarters}, so also where in the quarter the day is, how many of "
                    "the quarters' last days the window takes in, and the deal's age at the latest quarter end"
                    if QUARTER_FEATURE in self.numeric else "")
        if self.mode == STAGE_HISTORY:
            return "replayed states from stage history: creation attributes, age (also against the segment's " \
                   "winning cycles), stage and days in it" + (
                ", activities so far" if "activities_so_far" in self.numeric else "") + seasonal
        return ("no stage history: creation attributes and age so far only (age also against the segment's "
                "winning cycles; stage at close and sales_cycle_days are never used)" + seasonal)


def assert_no_leakage(columns) -> None:
    leaked = sorted(set(columns) & FORBIDDEN_FEATURES)
    if leaked:
        raise ValueError(f"outcome-derived columns must not be features: {leaked}")


# --- Which deals, which features ---------------------------------------------
def labelled_mask(fact: pd.DataFrame, as_of: pd.Timestamp) -> np.ndarray:
    """Which rows are closed deals whose outcome was known on the analysis
    date, with sane dates (flagged rows are left out: their dates cannot be
    trusted)."""
    closed, created = fact["closed_date"], fact["created_date"]
    keep = ~fact["is_open"] & closed.notna() & created.notna() & (closed <= as_of) & (closed > created)
    return (keep & ~fact["needs_review"]).to_numpy(dtype=bool)


def labelled_deals(fact: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    return fact[labelled_mask(fact, as_of)].reset_index(drop=True)


def open_deals(fact: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    return fact[fact["is_open"] & (fact["created_date"] <= as_of)].reset_index(drop=True)


def open_at(fact: pd.DataFrame, day: pd.Timestamp) -> pd.DataFrame:
    """The deals open on a past ``day`` as known then (``trustworthy_deals``
    on that day without a close), with their outcome as known today
    (``closed_date``, ``is_won``): only those rows are copied."""
    day = pd.Timestamp(day)
    closed_later = ~fact["is_open"] & (fact["closed_date"] > day)
    keep = fact["created_date"].notna() & (fact["created_date"] <= day) & ~fact["needs_review"]
    return fact[keep & (fact["is_open"] | closed_later)].reset_index(drop=True)


def choose_features(labelled: pd.DataFrame, stage_history: pd.DataFrame, activities: pd.DataFrame,
                    rules: RiskRules, exclude=(), seasonal: bool = False, fiscal_start_month: int = 1) -> FeatureSpec:
    """Stage features only when the history covers enough closed deals;
    activity features only when activities are recorded at all; where in
    the quarter only when closings are ``seasonal`` (quarters of the fiscal
    year starting in ``fiscal_start_month``). Creation columns the
    leakage guard excluded (``exclude``) are left out."""
    keep = lambda names: tuple(n for n in names if n not in set(exclude))  # noqa: E731
    numeric_base = keep(("deal_amount",)) + ("age_days", WON_CYCLE_SHARE) + (CALENDAR_FEATURES if seasonal else ())
    categorical = keep(CREATION_CATEGORICAL)
    covered = labelled["deal_id"].isin(stage_history["deal_id"]).mean() if len(labelled) else 0.0
    if len(stage_history) and covered >= rules.min_history_coverage:
        numeric = numeric_base + ("days_in_stage",)
        if len(activities):
            numeric += ACTIVITY_FEATURES
        spec = FeatureSpec(STAGE_HISTORY, categorical + ("stage",), numeric, fiscal_start_month)
    else:
        spec = FeatureSpec(CREATION_ONLY, categorical, numeric_base, fiscal_start_month)
    assert_no_leakage(spec.columns)
    return spec


# --- Replaying deals at past dates -------------------------------------------
def day_numbers(values) -> np.ndarray:
    """Datetimes to int day numbers (NaT -> a very large number)."""
    raw = pd.to_datetime(pd.Series(values)).to_numpy(dtype="datetime64[ns]")
    out = raw.astype("datetime64[D]").astype(np.int64)
    out[np.isnat(raw)] = np.iinfo(np.int32).max
    return out


_SHIFT = 1 << 22  # day numbers fit below this; keys are code * _SHIFT + day


class WonCycles:
    """How long won deals took, as known on any past day. For a deal of age
    ``a`` on day ``d``: the share of its segment's deals won before the week
    of ``d`` that had closed by age ``a`` -- the deal's age measured against
    its segment's typical winning cycle (an Enterprise deal open 60 days is
    young, a small one is late). Segments with few wins lean on all
    segments' share (``CYCLE_PRIOR_DEALS`` pseudo-deals). Only deals closed
    before the snapshot's week count, so a replayed snapshot never sees a
    later close."""

    def __init__(self, won: pd.DataFrame, segment: str | None):
        closed, created = day_numbers(won["closed_date"]), day_numbers(won["created_date"])
        ok = (closed >= created) & (closed < np.iinfo(np.int32).max)
        closed, cycle = closed[ok], closed[ok] - created[ok]
        keys = won[segment].astype(str).to_numpy()[ok] if segment and segment in won else np.full(ok.sum(), "")
        self.segment = segment
        self.levels = pd.Index(pd.unique(keys))
        self.first_week = int(closed.min() // 7) if len(closed) else 0
        weeks = int(closed.max() // 7) - self.first_week + 1 if len(closed) else 0
        # counts[segment (last: all), week, cycle bin], cumulated over bins and then over weeks
        counts = np.zeros((len(self.levels) + 1, weeks + 1, CYCLE_BINS), np.int32)
        bins = np.minimum(cycle // CYCLE_BIN_DAYS, CYCLE_BINS - 1)
        week = closed // 7 - self.first_week + 1  # row k holds deals closed in weeks before k
        np.add.at(counts, (self.levels.get_indexer(keys), week, bins), 1)
        np.add.at(counts, (np.full(len(week), len(self.levels)), week, bins), 1)
        self.cum = np.cumsum(np.cumsum(counts, axis=2), axis=1)

    def share_by_age(self, segments, day: np.ndarray, age: np.ndarray) -> np.ndarray:
        """Share of the segment's earlier wins that closed by this age (NaN before any win)."""
        if not self.cum.shape[1]:
            return np.full(len(day), np.nan)
        code = self.levels.get_indexer(np.asarray(segments, dtype=object).astype(str)) if self.segment else \
            np.zeros(len(day), np.int64)
        code = np.where(code >= 0, code, len(self.levels))
        week = np.clip(day // 7 - self.first_week, 0, self.cum.shape[1] - 1)
        b = np.clip(np.floor(age / CYCLE_BIN_DAYS), 0, CYCLE_BINS - 1).astype(np.int64)
        overall_n = self.cum[-1, week, -1].astype(float)
        overall = np.where(overall_n > 0, self.cum[-1, week, b] / np.maximum(overall_n, 1), np.nan)
        n = self.cum[code, week, -1].astype(float)
        return (self.cum[code, week, b] + CYCLE_PRIOR_DEALS * overall) / (n + CYCLE_PRIOR_DEALS)


class Timeline:
    """Stage history and activities indexed for "as of day d" look-ups over
    millions of (deal, day) pairs without Python loops; ``won_cycles`` for
    the age against the segment's winning cycles."""

    def __init__(self, deal_ids, stage_history: pd.DataFrame, activities: pd.DataFrame,
                 stage_order: list[str], won_cycles: WonCycles | None = None, typical_amount: float = np.nan):
        self.won_cycles = won_cycles
        self.typical_amount = typical_amount   # what a deal without an amount is read as (``states_at``)
        self.ids = pd.Index(pd.unique(np.asarray(deal_ids, dtype=object)))
        ranks = {s: i for i, s in enumerate(stage_order)}
        history = stage_history[["deal_id", "stage", "entered_date"]].dropna()
        codes = self.codes(history["deal_id"])
        rank = history["stage"].map(ranks).fillna(-1).to_numpy()
        ok = codes >= 0
        keys = codes[ok] * _SHIFT + day_numbers(history["entered_date"])[ok]
        order = np.lexsort((rank[ok], keys))
        self.stage_keys = keys[order]
        self.stage_names = history["stage"].to_numpy(dtype=object)[ok][order]
        acts = activities[["deal_id", "activity_date"]].dropna()
        codes = self.codes(acts["deal_id"])
        ok = codes >= 0
        self.activity_keys = np.sort(codes[ok] * _SHIFT + day_numbers(acts["activity_date"])[ok])

    def codes(self, deal_ids) -> np.ndarray:
        return self.ids.get_indexer(np.asarray(deal_ids, dtype=object)).astype(np.int64)

    def stage_at(self, codes: np.ndarray, day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(stage name, day it was entered) on ``day``; unknown when no entry yet."""
        idx = np.searchsorted(self.stage_keys, codes * _SHIFT + day, side="right") - 1
        safe = np.clip(idx, 0, max(len(self.stage_keys) - 1, 0))
        found = (idx >= 0) & (len(self.stage_keys) > 0)
        if len(self.stage_keys):
            found &= (self.stage_keys[safe] // _SHIFT) == codes
        stage = np.where(found, self.stage_names[safe] if len(self.stage_names) else UNKNOWN_STAGE, UNKNOWN_STAGE)
        entered = np.where(found, self.stage_keys[safe] % _SHIFT if len(self.stage_keys) else 0, -1)
        return stage.astype(object), entered

    def activities_at(self, codes: np.ndarray, day: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(count up to day, count in the last 14 days, day of the latest or -1)."""
        keys = self.activity_keys
        start = np.searchsorted(keys, codes * _SHIFT, side="left")
        upto = np.searchsorted(keys, codes * _SHIFT + day, side="right")
        before = np.searchsorted(keys, codes * _SHIFT + day - RECENT_ACTIVITY_DAYS, side="right")
        count = upto - start
        last = np.where(count > 0, keys[np.clip(upto - 1, 0, max(len(keys) - 1, 0))] % _SHIFT
                        if len(keys) else -1, -1)
        return count, upto - before, last


def states_at(deals: pd.DataFrame, day: np.ndarray, timeline: Timeline, spec: FeatureSpec) -> pd.DataFrame:
    """The model's features for each deal row as it looked on ``day`` (an
    int day number per row). Only creation attributes and what was recorded
    up to that day are read."""
    created = day_numbers(deals["created_date"])
    out = pd.DataFrame({c: deals[c].to_numpy(dtype=object) for c in CREATION_CATEGORICAL if c in spec.columns})
    if "deal_amount" in spec.columns:
        # An open deal may have no amount yet; a closed one always has one, so a gap would mark exactly the
        # deals still open today and teach "no amount -> not won". It reads as a typical deal instead.
        amount = deals["deal_amount"].to_numpy(dtype="float64")
        out["deal_amount"] = np.where(np.isnan(amount), timeline.typical_amount, amount)
    out["age_days"] = (day - created).astype("float64")
    if WON_CYCLE_SHARE in spec.numeric:
        segments = deals[CYCLE_SEGMENT] if CYCLE_SEGMENT in deals else np.full(len(deals), "")
        out[WON_CYCLE_SHARE] = timeline.won_cycles.share_by_age(segments, day, out["age_days"].to_numpy())
    if set(CALENDAR_FEATURES) & set(spec.numeric):
        for name, values in clock_columns(day, out["age_days"].to_numpy(), spec.fiscal_start_month).items():
            out[name] = values
    if spec.mode == STAGE_HISTORY:
        codes = timeline.codes(deals["deal_id"])
        stage, entered = timeline.stage_at(codes, day)
        out["stage"] = stage
        out["days_in_stage"] = np.where(entered >= 0, day - entered, np.nan)
        if "activities_so_far" in spec.numeric:
            count, recent, last = timeline.activities_at(codes, day)
            out["activities_so_far"] = count.astype("float64")
            out["activities_last_14d"] = recent.astype("float64")
            # "since the last touch, or since creation when never touched"
            out["days_since_activity"] = np.where(last >= 0, day - last, day - created).astype("float64")
    return out[spec.columns]


def quarter_clock(day: np.ndarray, fiscal_start_month: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(days to the next quarter end, days since the latest one) for each day
    number, in quarters of the fiscal year starting in ``fiscal_start_month``
    (the anomaly rules' ``seasonality.fiscal_year_start_month``, as in the
    season test that turns these features on).

    A quarter's last day counts as its end passed: its push is over by the
    end of that day, so a snapshot then sits where the next quarter's first
    days do. Counted as the quarter's own, a last-day snapshot sat among the
    push days just before it (and is rare: one grid date a quarter at most),
    so the model took it for one of them: quarter-end 90-day forecasts came
    6-13 % too low on seasonal worlds of 12,000 deals, against -1..+9 % from
    the generator's own probabilities this way."""
    from salesintel_assets.domain.anomalies.seasonality import quarter_end_day, quarter_start_day

    day = np.asarray(day, dtype=np.int64)
    after = day + 1
    return ((quarter_end_day(after, fiscal_start_month) - day).astype("float64"),
            (after - quarter_start_day(after, fiscal_start_month)).astype("float64"))


def clock_columns(day, age_days: np.ndarray, fiscal_start_month: int = 1) -> dict[str, np.ndarray]:
    """The quarter clock's features (``CALENDAR_FEATURES``) of states of
    ``age_days`` on ``day`` (a day number, or one per state)."""
    ahead, since = quarter_clock(np.broadcast_to(day, np.shape(age_days)), fiscal_start_month)
    return {QUARTER_FEATURE: ahead, QUARTER_AGE_FEATURE: np.maximum(np.asarray(age_days) - since, -1.0)}


QUARTER_DAYS = 91   # a quarter's length, within a day (90-92)
QUARTER_LAST_DAYS = (1, 3, 7, 21)   # a quarter's last day, three days, week, three weeks: where pushed wins crowd


def quarter_end_days_in_window(days_to_quarter_end, horizon_days: int) -> np.ndarray:
    """How many of the quarters' last days (each width of
    ``QUARTER_LAST_DAYS``: the last day, three days, week, three weeks) lie inside a
    window of ``horizon_days`` after a snapshot, from the snapshot's days to
    the next quarter end (``quarter_clock``); one column per width. Where
    wins crowd a quarter's last days, this is what a window's chance turns
    on: on a quarter's last day a 90-day window ends two days before the
    next quarter end and takes in none of its last day, while one that
    starts a week later takes it in, though both sit in the same week of
    the quarter. Quarter ends after the first are taken 91 days apart, a
    day or two off."""
    days = np.asarray(days_to_quarter_end, dtype="float64").ravel()   # one column, as the pipeline passes it
    ends = days[:, None] + QUARTER_DAYS * np.arange(horizon_days // QUARTER_DAYS + 2)   # offsets from the snapshot
    inside = np.minimum(ends, horizon_days)
    return np.column_stack([np.clip(inside - np.maximum(ends - width, 0), 0, None).sum(axis=1)
                            for width in QUARTER_LAST_DAYS])


def _grid(created: np.ndarray, ends: np.ndarray, as_of: pd.Timestamp, every_days: int,
          last_day: int, max_rows: int | None = None, seed: int = 0,
          fiscal_start_month: int | None = None, first_day: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(row position, day) for every grid date on which a deal was open:
    created <= day < end, days on a grid ending at the analysis date, none
    before ``first_day`` or after ``last_day``; with ``fiscal_start_month``,
    every quarter's last day too. Above ``max_rows`` a uniform random sample
    of them, drawn without listing them all (deals open for years would not
    fit)."""
    end = day_numbers([as_of])[0]
    if not len(created):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    begin = created.min() if first_day is None else max(created.min(), first_day)
    start = end - ((end - begin) // every_days) * every_days
    grid = np.arange(start, min(end, last_day) + 1, every_days)
    if fiscal_start_month is not None:
        days = np.arange(start, min(end, last_day) + 1)
        grid = np.union1d(grid, days[quarter_clock(days, fiscal_start_month)[1] == 0])
    lo = np.searchsorted(grid, created, side="left")
    hi = np.searchsorted(grid, ends, side="left")
    count = np.maximum(hi - lo, 0)
    total = int(count.sum())
    if max_rows is not None and total > max_rows:
        flat = np.sort(np.random.default_rng(seed).choice(total, max_rows, replace=False))
        before = np.cumsum(count) - count
        pos = np.searchsorted(before + count, flat, side="right")
        return pos, grid[lo[pos] + flat - before[pos]]
    pos = np.repeat(np.arange(len(created)), count)
    offset = np.arange(len(pos)) - np.repeat(np.cumsum(count) - count, count)
    return pos, grid[lo[pos] + offset]


def trustworthy_deals(fact: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Every deal created by the analysis date with sane dates, as it stood
    then: a close after the analysis date is not known yet (the deal counts
    as open). Flagged rows are left out: their dates cannot be trusted."""
    as_of = pd.Timestamp(as_of)
    created, ended = fact["created_date"], fact["closed_date"]
    closed = ~fact["is_open"] & ended.notna() & (ended <= as_of)
    sane = ~closed | (ended > created)
    drop = ~fact["is_open"] & ended.isna()  # closed without a date: no timeline
    keep = (created.notna() & (created <= as_of) & ~fact["needs_review"] & sane & ~drop).to_numpy(dtype=bool)
    deals, closed = fact[keep], closed.to_numpy(dtype=bool)[keep]   # one copy of the kept rows, then one more
    deals = deals.assign(closed_date=deals["closed_date"].where(closed), is_won=deals["is_won"].astype(bool) & closed)
    deals.index = pd.RangeIndex(len(deals))
    return deals


def snapshot_states(fact: pd.DataFrame, timeline: Timeline, spec: FeatureSpec, as_of: pd.Timestamp,
                    rules: RiskRules, closed_stage: str, last_day: pd.Timestamp | None = None,
                    deals: pd.DataFrame | None = None, first_day: pd.Timestamp | None = None) -> pd.DataFrame:
    """Every deal that was open on each grid date from ``first_day`` (the
    history's start when None) up to ``last_day`` -- won,
    lost, or still open today (deals that never close included) -- as it
    looked then: deal_id, snapshot_date, created_date, closed_date (NaT while
    open at the analysis date), won_by_as_of plus the features. A random
    sample when above ``max_training_rows``. ``deals``: ``trustworthy_deals(fact, as_of)`` when the caller
    has it already."""
    deals = trustworthy_deals(fact, as_of) if deals is None else deals
    created, ends = day_numbers(deals["created_date"]), day_numbers(deals["closed_date"])
    last = day_numbers([last_day if last_day is not None else as_of])[0]
    # A seasonal model reads where in the quarter a day is. A quarter's last day is where its 90-day window
    # stops just short of the next quarter's last days, and a common analysis date (month-end runs); the
    # weekly grid lands on it in few quarters (3 of the 13 before 2026-06-30 on a grid ending then), so the
    # model had barely seen it.
    quarter_ends = spec.fiscal_start_month if QUARTER_FEATURE in spec.numeric else None
    first = day_numbers([first_day])[0] if first_day is not None else None
    pos, day = _grid(created, ends, pd.Timestamp(as_of), rules.snapshot_every_days, last, rules.max_training_rows,
                     rules.seed, quarter_ends, first)
    rows = deals.iloc[pos]
    states = states_at(rows, day, timeline, spec)
    states.insert(0, "deal_id", rows["deal_id"].to_numpy(dtype=object))
    states.insert(1, "snapshot_date", day.astype("datetime64[D]").astype("datetime64[ns]"))
    states.insert(2, "created_date", rows["created_date"].to_numpy())
    states.insert(3, "closed_date", rows["closed_date"].to_numpy())
    states.insert(4, "won_by_as_of", rows["is_won"].to_numpy(dtype=bool))
    if "stage" in states:
        # A recorded close before closed_date would reveal the outcome: drop it.
        states = states[states["stage"] != closed_stage]
    return states.reset_index(drop=True)


def label(states: pd.DataFrame, horizon_days: int, as_of: pd.Timestamp) -> pd.DataFrame:
    """The rows whose target "won within ``horizon_days`` of the snapshot" is
    known on the analysis date, with that target as ``won``. A snapshot
    whose window is not over yet is censored: dropped, never counted as lost
    (keeping only its early wins would bias the target upwards)."""
    over = states["snapshot_date"] + pd.Timedelta(days=horizon_days) <= pd.Timestamp(as_of)
    rows = states[over]
    won = rows["won_by_as_of"] & ((rows["closed_date"] - rows["snapshot_date"]).dt.days <= horizon_days)
    return rows.assign(won=won.fillna(False).astype(np.int64)).reset_index(drop=True)


def features_for(rows: pd.DataFrame, timeline: Timeline, spec: FeatureSpec) -> pd.DataFrame:
    """Features of replayed rows (deal_id, snapshot_date, created_date and the
    creation attributes) under another feature spec, e.g. the champion's."""
    return states_at(rows, day_numbers(rows["snapshot_date"]), timeline, spec)


def spec_feasible(spec: FeatureSpec, current: FeatureSpec) -> bool:
    """Can the data behind ``current`` provide every feature of ``spec``?
    (The calendar is always there.)"""
    return set(spec.columns) - set(CALENDAR_FEATURES) <= set(current.columns)


@dataclass
class Prepared:
    """What every models-layer asset starts from. ``snapshots``: every open
    deal on every grid date (unlabelled); ``states``: those labelled for the
    main horizon (``won`` = won within ``horizon`` days). ``learn_from``:
    the first grid day the snapshots may start on (None: the history's
    start), after a stretch whose closes are missing."""

    as_of: pd.Timestamp
    fact: pd.DataFrame
    labelled: pd.DataFrame
    spec: FeatureSpec
    timeline: Timeline
    states: pd.DataFrame
    closed_stage: str
    snapshots: pd.DataFrame = None
    horizon: int = 180
    leaks: list = None
    learn_from: pd.Timestamp | None = None

    def rows_for(self, horizon_days: int) -> pd.DataFrame:
        return self.states if horizon_days == self.horizon else label(self.snapshots, horizon_days, self.as_of)


SCREENED_COLUMNS = CREATION_CATEGORICAL + ("deal_amount",)


def quarter_seasonal(labelled: pd.DataFrame, anomalies, alpha: float) -> bool:
    """Do past closes show that wins bunch up at quarter ends? The anomaly
    layer's season test (``anomalies`` is the rules' anomaly section) on the
    labelled deals, its win-rate part only and at ``alpha``: the anomaly
    layer's own level also standardises for cycle lengths that differ by
    week of the quarter (clean-up closes do that), but a model feature needs
    wins that bunch, clearly. Which months end the quarters does not change
    the test (it compares every week of every month of the quarter). The
    rules' mode on / off decides alone."""
    from salesintel_assets.domain.anomalies import seasonality

    if anomalies is None or not len(labelled) or anomalies.seasonality.mode == "off":
        return False
    if anomalies.seasonality.mode == "on":
        return True
    close = day_numbers(labelled["closed_date"])
    cycles = (close - day_numbers(labelled["created_date"])).astype("float64")
    check = seasonality.detect(close, labelled["is_won"].to_numpy(dtype=bool), cycles, anomalies.seasonality,
                               anomalies.win_rate.min_effect, anomalies.cycle.min_effect)
    return bool(check.p_rate < alpha and check.rate_gap >= anomalies.win_rate.min_effect / 2)


def quarters_of_the_wins(labelled: pd.DataFrame, anomalies):
    """The rules' anomaly section with its quarters where the labelled
    deals' wins bunch, when that clearly differs from the fiscal year's
    (``quarter_ends.following_wins``): the quarter clock must point at the
    days deals are pushed into."""
    from salesintel_assets.domain.anomalies import quarter_ends

    if anomalies is None or not len(labelled):
        return anomalies
    won = day_numbers(labelled.loc[labelled["is_won"].astype(bool), "closed_date"])
    return quarter_ends.following_wins(anomalies, won)[0]


def prepare(fact: pd.DataFrame, stage_history: pd.DataFrame, activities: pd.DataFrame, as_of: pd.Timestamp,
            rules: RiskRules, stage_order: list[str], anomalies=None,
            learn_from: pd.Timestamp | None = None) -> Prepared:
    """Everything the models steps share. With the rules' anomaly section
    (``anomalies``), where in the quarter a state is becomes a feature when
    past closes show quarter-end seasonality (``quarter_seasonal``), in the
    quarters of the rules' fiscal year or, when wins clearly bunch at other
    months' ends, in the wins' own (``quarters_of_the_wins``). With
    ``learn_from`` (the end of ``recency.missing_closes``), deals are replayed only from
    that day on: before it, closes are missing and a backlog closes at once."""
    from salesintel_assets.domain.common import leakage

    as_of = pd.Timestamp(as_of)
    labelled = labelled_deals(fact, as_of)
    leaks = leakage.screen(labelled, labelled["is_won"].to_numpy(dtype=bool), SCREENED_COLUMNS,
                           leakage.open_empty_counts(open_deals(fact, as_of), SCREENED_COLUMNS))
    seasonal = quarter_seasonal(labelled, anomalies, rules.quarter_position_alpha)
    anomalies = quarters_of_the_wins(labelled, anomalies) if seasonal else anomalies
    spec = choose_features(labelled, stage_history, activities, rules, exclude=leakage.excluded(leaks),
                           seasonal=seasonal,
                           fiscal_start_month=anomalies.seasonality.fiscal_year_start_month if anomalies else 1)
    deals = trustworthy_deals(fact, as_of)
    segment = CYCLE_SEGMENT if CYCLE_SEGMENT in spec.categorical else None
    known = fact["deal_amount"].dropna()
    timeline = Timeline(fact["deal_id"], stage_history, activities, stage_order,
                        WonCycles(deals[deals["is_won"]], segment), float(known.median()) if len(known) else np.nan)
    snapshots = replayed_snapshots(fact, timeline, spec, as_of, rules, stage_order[-1], deals, learn_from)
    del deals
    states = label(snapshots, rules.win_horizon_days, as_of)
    return Prepared(as_of, fact, labelled, spec, timeline, states, stage_order[-1], snapshots,
                    rules.win_horizon_days, leaks, learn_from)


HORIZONS = (30, 90)  # days; besides the rules' main horizon, the model also answers these


def replayed_snapshots(fact: pd.DataFrame, timeline: Timeline, spec: FeatureSpec, as_of: pd.Timestamp,
                       rules: RiskRules, closed_stage: str, deals: pd.DataFrame | None = None,
                       learn_from: pd.Timestamp | None = None) -> pd.DataFrame:
    """The replayed states every models-layer step shares: every grid date up
    to the shortest horizon before the analysis date (so each horizon's
    labels can be read from them), built once. A past analysis date T reads
    the rows of its own past from them: a state on day s only uses what was
    recorded by s, and "won within H days of s" is already known on T when
    s + H <= T, so ``label(snapshots, H, T)`` is exactly what replaying on
    T would give (on a 7-day grid that ends on the analysis date instead of
    on T: the same sampling). None before ``learn_from``."""
    shortest = min(HORIZONS + (rules.win_horizon_days,))
    return snapshot_states(fact, timeline, spec, as_of, rules, closed_stage,
                           pd.Timestamp(as_of) - pd.Timedelta(days=shortest), deals, learn_from)


def open_states(open_frame: pd.DataFrame, timeline: Timeline, spec: FeatureSpec, as_of: pd.Timestamp) -> pd.DataFrame:
    """Open deals' features as of the analysis date: the same function that
    replays closed deals, so every feature means the same thing."""
    return states_at(open_frame, np.full(len(open_frame), day_numbers([as_of])[0]), timeline, spec)
