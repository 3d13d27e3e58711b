"""Days the CRM was tidied, not sold in. Many CRMs close every deal that
has not moved for months as lost in one sweep (a yearly pipeline review,
a new admin). Such a day holds many times the usual closes, nearly all of
them lost, of deals that lingered: the outcome of deals nobody worked, not
a change in how deals are won. Read as closes, a sweep is a collapse of the
win rate and a slower cycle for the whole business (on a generated CRM
with one each January, 258 deals closed lost on one day against 3.6 closes
a day: "win rate fell to 18 %" and "cycles 211 days against 42" were both
raised as critical), and it moves segments by how many stale deals they
held. The forecast's segment changes, the anomaly tests and the dashboard's
monthly win rate leave such days' closes out and say so; the models still
learn from them (a stale deal does end lost).

The usual closes of a day are the mean of the other days within half a
year either side of it (inside the closes given): a growing business's
busy days are judged against their own months, not against its first
year."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

FACTOR = 10              # a clean-up day holds at least this many times the usual closes of a day ...
MIN_CLOSES = 20          # ... and at least this many closes ...
LOST_SHARE = 0.9         # ... this share or more lost (a day of wins pushed to the quarter's end is none)
HALF_YEAR_DAYS = 182     # the usual closes: the other days within this many days either side
MIN_OTHER_DAYS = 28      # fewer days around it say too little of what is usual
# Sweeps are rare: when more of the days with closes qualify, the CRM records its closes in batches (a
# monthly sync) and those days are how deals close, not a tidy-up.
MAX_DAY_SHARE = 0.1


@dataclass(frozen=True)
class CleanUp:
    """A day whose closes were a clean-up: how many, how many lost."""

    day: pd.Timestamp
    closes: int
    lost: int

    def sentence(self) -> str:
        return f"{self.day:%d %b %Y} ({self.closes:,} closes, {self.lost / self.closes:.0%} lost)"


def clean_up_days(day_numbers: np.ndarray, won: np.ndarray) -> list[CleanUp]:
    """The clean-up days among closes given as day numbers (days since
    1970-01-01) with their outcomes, in date order."""
    days = np.asarray(day_numbers, dtype=np.int64)
    if len(days) < MIN_CLOSES:
        return []
    first = int(days.min())
    closes = np.bincount(days - first)
    lost = np.bincount(days[~np.asarray(won, dtype=bool)] - first, minlength=len(closes))
    return _clean_ups_among(first, closes, lost)


def clean_ups_by_day(days, closes, lost) -> list[CleanUp]:
    """``clean_up_days`` of closes already counted per day: day numbers (each
    once), closes and lost deals on each (a warehouse aggregates a million
    deals faster than it hands them over)."""
    days = np.asarray(days, dtype=np.int64)
    if not len(days) or int(np.sum(closes)) < MIN_CLOSES:
        return []
    first = int(days.min())
    at = days - first
    counts = [np.bincount(at, weights=np.asarray(v, dtype=float), minlength=int(at.max()) + 1).astype(np.int64)
              for v in (closes, lost)]
    return _clean_ups_among(first, *counts)


def _clean_ups_among(first: int, closes: np.ndarray, lost: np.ndarray) -> list[CleanUp]:
    """The clean-up days among per-day counts from day number ``first`` on."""
    candidates = np.flatnonzero((closes >= MIN_CLOSES) & (lost >= LOST_SHARE * closes))
    if not len(candidates):
        return []
    total = np.concatenate([[0], np.cumsum(closes)])
    low = np.maximum(candidates - HALF_YEAR_DAYS, 0)
    high = np.minimum(candidates + HALF_YEAR_DAYS + 1, len(closes))
    other_days = high - low - 1
    usual = (total[high] - total[low] - closes[candidates]) / np.maximum(other_days, 1)
    hit = (other_days >= MIN_OTHER_DAYS) & (closes[candidates] >= FACTOR * usual)
    if hit.sum() > MAX_DAY_SHARE * np.count_nonzero(closes):
        return []
    return [CleanUp(pd.Timestamp(np.datetime64(first + int(d), "D")), int(closes[d]), int(lost[d]))
            for d in candidates[hit]]


def clean_ups_in(con, relation: str, as_of, won: str = "is_won", after=None) -> list[CleanUp]:
    """``clean_up_days`` of the closes of a DuckDB ``relation`` (with
    ``is_open`` and ``closed_date``) on or before ``as_of``, and after
    ``after`` when given, counted per day in DuckDB. ``won``: the SQL that
    says a close was won."""
    params = {"as_of": pd.Timestamp(as_of).to_pydatetime()}
    since = ""
    if after is not None:
        params["after"], since = pd.Timestamp(after).to_pydatetime(), "AND closed_date > $after"
    daily = con.execute(f"""SELECT CAST(closed_date AS DATE) - DATE '1970-01-01' AS day, COUNT(*) AS closes,
                                   COUNT(*) FILTER (WHERE NOT ({won})) AS lost
                            FROM {relation} WHERE NOT is_open AND closed_date IS NOT NULL AND closed_date <= $as_of
                                 {since}
                            GROUP BY 1""", params).df()
    return clean_ups_by_day(daily["day"], daily["closes"], daily["lost"])


def clean_ups_of(closed_dates: pd.Series, won) -> list[CleanUp]:
    """``clean_up_days`` of closes given as dates (missing dates skipped)."""
    raw = pd.to_datetime(closed_dates).to_numpy(dtype="datetime64[ns]")
    known = ~np.isnat(raw)
    return clean_up_days(raw[known].astype("datetime64[D]").astype(np.int64), np.asarray(won, dtype=bool)[known])
