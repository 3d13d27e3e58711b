"""Deal risk model features: what an open deal looks like on the analysis
date, and what every closed deal looked like on past dates of its open life.

No leakage, by construction
---------------------------
A feature is allowed only if it is known for an open deal at scoring time
with the same meaning it had for the training rows. So the model never sees a
closed deal as it looked at its close:

* ``sales_cycle_days`` of a closed deal is its final length, a function of
  when (and often how) it ended. An open deal's age is only "how long it has
  been open so far". The model therefore learns from *replayed states*: every
  closed deal is replayed as it looked on past dates of its open life (one
  state every ``snapshot_every_days``, on a calendar grid), with the age *at
  that date*, and labelled with how it finally closed. Age is then
  time-to-event information used as such: "deals open this long so far".
* ``deal_stage`` of a closed deal is the stage it reached at close, not the
  stage it was in while open (and ``Closed`` implies the outcome). With a
  stage history, the replayed state carries the stage the deal was in on that
  date and the days it had spent in it; a state in the closed stage is never
  produced (a test guards it). Without a stage history (a plain CSV export)
  stage features are left out entirely, for training and scoring alike.
* Activities count only those logged up to the replayed date.
* Outcome-derived columns of ``fact_deals`` (``outcome``, ``is_won``,
  ``sales_cycle_days``, ``deal_stage``, ``stage_number``, ``activity_count``,
  ``last_modified`` ...) are never read into features: ``FORBIDDEN_FEATURES``
  lists them and ``assert_no_leakage`` refuses a feature set that contains
  one. The table's own ``age_days`` and ``days_in_stage`` (for a closed deal:
  its final cycle) are not read either; the features of those names are
  recomputed for the replayed date. The creation attributes (industry,
  region, product, lead source, rep, amount) are taken as known at creation.
  A test scrambles every outcome-derived column and checks the features do
  not move.

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

    @property
    def columns(self) -> list[str]:
        return list(self.categorical + self.numeric)

    def to_tags(self) -> dict:
        return {"feature_mode": self.mode, "categorical": ",".join(self.categorical),
                "numeric": ",".join(self.numeric)}

    @classmethod
    def from_tags(cls, tags: dict) -> "FeatureSpec":
        split = lambda key: tuple(v for v in tags.get(key, "").split(",") if v)  # noqa: E731
        return cls(tags.get("feature_mode", CREATION_ONLY), split("categorical"), split("numeric"))

    def describe(self) -> str:
        if self.mode == STAGE_HISTORY:
            return "replayed states from stage history: creation attributes, age, stage and days in it" + (
                ", activities so far" if "activities_so_far" in self.numeric else "")
        return ("no stage history: creation attributes and age so far only "
                "(stage at close and sales_cycle_days are never used)")


def assert_no_leakage(columns) -> None:
    leaked = sorted(set(columns) & FORBIDDEN_FEATURES)
    if leaked:
        raise ValueError(f"outcome-derived columns must not be features: {leaked}")


# --- Which deals, which features ---------------------------------------------
def labelled_deals(fact: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Closed deals whose outcome was known on the analysis date, with sane
    dates (flagged rows are left out: their dates cannot be trusted)."""
    closed = fact[~fact["is_open"] & fact["closed_date"].notna() & fact["created_date"].notna()]
    keep = (closed["closed_date"] <= as_of) & (closed["closed_date"] > closed["created_date"]) & ~closed["needs_review"]
    return closed[keep].reset_index(drop=True)


def open_deals(fact: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    return fact[fact["is_open"] & (fact["created_date"] <= as_of)].reset_index(drop=True)


def choose_features(labelled: pd.DataFrame, stage_history: pd.DataFrame, activities: pd.DataFrame,
                    rules: RiskRules) -> FeatureSpec:
    """Stage features only when the history covers enough closed deals;
    activity features only when activities are recorded at all."""
    numeric_base = ("deal_amount", "age_days")
    covered = labelled["deal_id"].isin(stage_history["deal_id"]).mean() if len(labelled) else 0.0
    if len(stage_history) and covered >= rules.min_history_coverage:
        numeric = numeric_base + ("days_in_stage",)
        if len(activities):
            numeric += ACTIVITY_FEATURES
        spec = FeatureSpec(STAGE_HISTORY, CREATION_CATEGORICAL + ("stage",), numeric)
    else:
        spec = FeatureSpec(CREATION_ONLY, CREATION_CATEGORICAL, numeric_base)
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


class Timeline:
    """Stage history and activities indexed for "as of day d" look-ups over
    millions of (deal, day) pairs without Python loops."""

    def __init__(self, deal_ids, stage_history: pd.DataFrame, activities: pd.DataFrame,
                 stage_order: list[str]):
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
    out = pd.DataFrame({c: deals[c].to_numpy(dtype=object) for c in CREATION_CATEGORICAL})
    out["deal_amount"] = deals["deal_amount"].to_numpy(dtype="float64")
    out["age_days"] = (day - created).astype("float64")
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


def _grid(labelled: pd.DataFrame, as_of: pd.Timestamp, every_days: int) -> tuple[np.ndarray, np.ndarray]:
    """(row position, day) for every grid date on which a labelled deal was
    open: created <= day < closed, days on a grid ending at the analysis date."""
    created, closed = day_numbers(labelled["created_date"]), day_numbers(labelled["closed_date"])
    end = day_numbers([as_of])[0]
    if not len(created):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    start = end - ((end - created.min()) // every_days) * every_days
    grid = np.arange(start, end + 1, every_days)
    lo = np.searchsorted(grid, created, side="left")
    hi = np.searchsorted(grid, closed, side="left")
    count = np.maximum(hi - lo, 0)
    pos = np.repeat(np.arange(len(created)), count)
    offset = np.arange(len(pos)) - np.repeat(np.cumsum(count) - count, count)
    return pos, grid[lo[pos] + offset]


def training_states(labelled: pd.DataFrame, timeline: Timeline, spec: FeatureSpec, as_of: pd.Timestamp,
                    rules: RiskRules, closed_stage: str) -> pd.DataFrame:
    """Replayed states of labelled deals: deal_id, snapshot_date, closed_date,
    won plus the features. A random sample when above ``max_training_rows``."""
    pos, day = _grid(labelled, as_of, rules.snapshot_every_days)
    if len(pos) > rules.max_training_rows:
        keep = np.sort(np.random.default_rng(rules.seed).choice(len(pos), rules.max_training_rows, replace=False))
        pos, day = pos[keep], day[keep]
    deals = labelled.iloc[pos]
    states = states_at(deals, day, timeline, spec)
    states.insert(0, "deal_id", deals["deal_id"].to_numpy(dtype=object))
    states.insert(1, "snapshot_date", day.astype("datetime64[D]").astype("datetime64[ns]"))
    states.insert(2, "created_date", deals["created_date"].to_numpy())
    states.insert(3, "closed_date", deals["closed_date"].to_numpy())
    states.insert(4, "won", deals["is_won"].to_numpy(dtype=np.int64))
    if "stage" in states:
        # A recorded close before closed_date would reveal the outcome: drop it.
        states = states[states["stage"] != closed_stage]
    return states.reset_index(drop=True)


def features_for(rows: pd.DataFrame, timeline: Timeline, spec: FeatureSpec) -> pd.DataFrame:
    """Features of replayed rows (deal_id, snapshot_date, created_date and the
    creation attributes) under another feature spec, e.g. the champion's."""
    return states_at(rows, day_numbers(rows["snapshot_date"]), timeline, spec)


def spec_feasible(spec: FeatureSpec, current: FeatureSpec) -> bool:
    """Can the data behind ``current`` provide every feature of ``spec``?"""
    return set(spec.columns) <= set(current.columns)


@dataclass
class Prepared:
    """What every models-layer asset starts from."""

    as_of: pd.Timestamp
    fact: pd.DataFrame
    labelled: pd.DataFrame
    spec: FeatureSpec
    timeline: Timeline
    states: pd.DataFrame
    closed_stage: str


def prepare(fact: pd.DataFrame, stage_history: pd.DataFrame, activities: pd.DataFrame, as_of: pd.Timestamp,
            rules: RiskRules, stage_order: list[str]) -> Prepared:
    as_of = pd.Timestamp(as_of)
    labelled = labelled_deals(fact, as_of)
    spec = choose_features(labelled, stage_history, activities, rules)
    timeline = Timeline(fact["deal_id"], stage_history, activities, stage_order)
    states = training_states(labelled, timeline, spec, as_of, rules, stage_order[-1])
    return Prepared(as_of, fact, labelled, spec, timeline, states, stage_order[-1])


def open_states(open_frame: pd.DataFrame, timeline: Timeline, spec: FeatureSpec, as_of: pd.Timestamp) -> pd.DataFrame:
    """Open deals' features as of the analysis date: the same function that
    replays closed deals, so every feature means the same thing."""
    return states_at(open_frame, np.full(len(open_frame), day_numbers([as_of])[0]), timeline, spec)
