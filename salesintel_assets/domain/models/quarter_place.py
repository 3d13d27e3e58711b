"""Today's place in the quarter, read off earlier quarters at the same place.

Where wins bunch at quarter ends, a quarter's last day is no average day:
deals due early next quarter were pulled in and are won already, and a
90-day window from it ends before the next quarter's last days. The models
read a quarter clock only where past closes show the season clearly
(``quarter_position_alpha``), and the age curve reads none: where it serves
at its own level without the models' clock (a young CRM's model no better
than deal age, or no clock to take), it serves an average day.

What a history with finished windows at the same place can say: how the
served chances fared on the grid day nearest today's place in each earlier
quarter, against the grid days around it (half a quarter either side), in
log odds (``place_level``). Their mean moves every served chance of that
horizon (``HorizonModel.place_levels``), shrunk for its noise: a deal open
on neighbouring days is one deal, so the error is clustered by deal, and
no smaller than the quarters' own spread. Where the curve serves at a
level the models set today and the models read the clock, the reading is
the models' (``settled``): what is left of the day that their clock missed.

End to end on six outside worlds (seeds 737-742) as of 2024-09-30, nine
months in, the 90-day wins read 14.2 % above the world's own chances on
average before and 3.5 % after (mean absolute error against what came
16.6 % to 9.5 %); two years in (2025-12-31) and mid-quarter (2024-11-15)
four of six moved by less than 2 points, two mid-quarter ones by +5.

On six more (seeds 731-736) as of three quarters' last days nine
to fifteen months into their history, the served 90-day wins read 8.8 %
above the world's own chances on average, 7.4 % moved (mean absolute
9.7 % to 8.9 %; the curve served alone at its own level on a quarter's last
day: +5.8 % to -4.3 %, and +11.5 % to +4.5 %). On the same worlds two
years in, where the models read the clock, +9.2 % to +8.3 %; a quarter's
second month end or its middle moved by 1.6 points at most. The 30-day
chances move most where nothing served reads the clock: a quarter's last
day lost its pushed wins (-0.19 to -0.54 in log odds), its second month's
end has the push ahead (+0.17 to +0.34).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from salesintel_assets.domain.common import stats
from salesintel_assets.domain.models import features as rf

SAME_PLACE_DAYS = 3     # a grid day is at today's place when its days to the quarter's end differ by at most this
AROUND_DAYS = 45        # the days it is compared with: half a quarter either side
MIN_DAY_DEALS = 30      # open deals a day needs to be read
MAX_DEALS = 10_000      # deals the level is read on (a random sample of more: one deal's rows stay together)


@dataclass(frozen=True)
class PlaceLevel:
    """One horizon's reading: the mean log-odds difference between the
    served chances' level on the same-place days and on the days around
    them (``change``), its standard error and the quarters it rests on."""

    days: int
    change: float = 0.0
    se: float = float("inf")
    quarters: int = 0

    @property
    def shift(self) -> float:
        """What the served chances are moved by: ``change`` shrunk for its noise."""
        return stats.shrunk(self.change, self.se) if self.quarters else 0.0


def same_place_days(days: np.ndarray, today: int, fiscal_start_month: int) -> np.ndarray:
    """Of grid ``days`` (day numbers), the one nearest today's place in each
    earlier quarter (days to the quarter's end within ``SAME_PLACE_DAYS``).

    Counted on the models' quarter clock (``features.quarter_clock``: a
    quarter's last day counts as passed), not the anomaly layer's
    ``seasonality.same_point_in_earlier_quarters``: within a few days of a
    quarter's end that one matches a day before the push with the last day
    of an earlier quarter, after it."""
    days = np.unique(np.asarray(days, dtype=np.int64))
    ahead = rf.quarter_clock(days, fiscal_start_month)[0]
    gap = np.abs(ahead - rf.quarter_clock(np.array([today]), fiscal_start_month)[0][0])
    # the quarter a day's clock counts in: its next quarter end (a last day counts as passed)
    quarter = days + ahead.astype(np.int64)
    keep = gap <= SAME_PLACE_DAYS
    order = np.lexsort((gap[keep], quarter[keep]))
    chosen, seen = [], set()
    for day, q in zip(days[keep][order], quarter[keep][order]):
        if q not in seen:
            seen.add(q)
            chosen.append(day)
    return np.array(sorted(chosen), dtype=np.int64)


def place_level(p: np.ndarray, won: np.ndarray, day: np.ndarray, deal: np.ndarray, today: int,
                fiscal_start_month: int, horizon_days: int) -> PlaceLevel:
    """The reading from labelled snapshots: served chances ``p``, whether
    each was won within the horizon (``won``), its grid ``day`` and its
    ``deal`` (integer codes).

    Per quarter, the shift that matches the same-place day's chances to its
    wins less the shift for the days around it. The error is the
    delta-method sandwich summed per deal before squaring (a deal's rows on
    neighbouring days move together), floored at the quarters' spread."""
    changes, influence = [], np.zeros(int(deal.max()) + 1 if len(deal) else 0)
    for at_day in same_place_days(day, today, fiscal_start_month):
        at = day == at_day
        around = (np.abs(day - at_day) <= AROUND_DAYS) & ~at
        if np.unique(deal[at]).size < MIN_DAY_DEALS or not around.any() or not won[at | around].any():
            continue
        part = np.zeros_like(influence)
        shifts = []
        for rows, sign in ((at, 1.0), (around, -1.0)):
            shift = stats.level_shift(p[rows], float(won[rows].sum()))
            if not np.isfinite(shift):
                break
            q = stats.shifted(p[rows], shift)
            np.add.at(part, deal[rows], sign * (won[rows] - q) / float((q * (1 - q)).sum()))
            shifts.append(shift)
        if len(shifts) == 2:
            changes.append(shifts[0] - shifts[1])
            influence += part
    if not changes:
        return PlaceLevel(horizon_days)
    n = len(changes)
    clustered = float(((influence / n) ** 2).sum())
    spread = float(np.var(changes, ddof=1)) / n if n > 1 else 0.0
    return PlaceLevel(horizon_days, float(np.mean(changes)), float(np.sqrt(max(clustered, spread))), n)


def place_levels(model, prepared: rf.Prepared, seed: int = 0) -> list[PlaceLevel]:
    """Per horizon of ``model`` (a ``HorizonModel`` as it serves), its
    reading on the snapshots ``prepared`` replayed: the rows of at most
    ``MAX_DEALS`` deals on the days a reading looks at, scored once."""
    today = int(rf.day_numbers([prepared.as_of])[0])
    fiscal, shortest = prepared.spec.fiscal_start_month, min(model.horizons)
    snapshots = prepared.snapshots
    grid = rf.day_numbers(pd.Series(snapshots["snapshot_date"].unique()))
    grid = grid[grid + shortest <= today]
    places = same_place_days(grid, today, fiscal)
    read = grid[np.abs(grid[:, None] - places[None, :]).min(axis=1) <= AROUND_DAYS] if len(places) else grid[:0]
    day = rf.day_numbers(snapshots["snapshot_date"])
    near = np.isin(day, read)
    deals = snapshots.loc[near, "deal_id"].unique()
    if len(deals) > MAX_DEALS:
        picked = np.random.default_rng(seed).choice(deals, MAX_DEALS, replace=False)
        near &= snapshots["deal_id"].isin(picked).to_numpy()
    if not near.any():
        return [PlaceLevel(days) for days in model.horizons]
    rows, day = snapshots[near].reset_index(drop=True), day[near]
    p = model.horizon_probabilities(rows)
    deal = pd.factorize(rows["deal_id"])[0]
    out = []
    for days in model.horizons:
        labelled = rf.label(rows, days, prepared.as_of)   # rows whose window is over, in the same order
        over = day + days <= today
        out.append(place_level(p[days][over], labelled["won"].to_numpy(dtype=float), day[over], deal[over],
                               today, fiscal, days))
    return out


def settled(training, prepared: rf.Prepared, seed: int = 0):
    """``training`` with its served model moved to today's place in the
    quarter (``place_levels``), and the readings kept.

    Read on what serves as it would have served on each past day: where the
    age curve serves at a level the models set today (theirs, or their clock's
    move) and the models read the quarter clock, that is the models, whose
    reading of the day the curve takes on; a level fixed today would read the
    curve's blindness to the quarter although the clock already moved it."""
    model = training.model
    if model is None:
        return training
    own_level = training.curve_judgement is not None and training.curve_judgement.own_level
    follows_clock = model.curve_serves and rf.QUARTER_FEATURE in prepared.spec.numeric and \
        (model.curve_by_clock or not own_level)
    levels = place_levels(model.by_models() if follows_clock else model, prepared, seed)
    return replace(training, model=model.at_place([level.shift for level in levels]), place_levels=tuple(levels))


def sentence(levels, horizon_days: int = 90) -> str | None:
    """In words, for the model's notes: how today's place in the quarter
    moved the ``horizon_days`` chances, the forecast's (None where it did not)."""
    level = next((lv for lv in levels if lv.days == horizon_days), None)
    if level is None or not level.shift:
        return None
    lean = "above" if level.change < 0 else "below"
    return (f"today's place in the quarter: on the same day of {level.quarters} earlier quarter"
            f"{'' if level.quarters == 1 else 's'} the {horizon_days}-day chances read {lean} what came, against "
            f"the days around it ({level.change:+.3f} in log odds, standard error {level.se:.3f}), so today's are "
            f"moved by {level.shift:+.3f} (odds x{np.exp(level.shift):.2f})")
