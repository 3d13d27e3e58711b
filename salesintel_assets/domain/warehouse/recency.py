"""Does the data cover the whole period? A live CRM creates or closes deals
every week. When nothing happened for longer than the rules allow before
the analysis date, the usual cause is an old export run as of today (the
CSV source's default date): every recent window is then empty, open deals
only age, and the figures describe a pipeline frozen long ago. When deals
were created but none closed for far longer than closes usually take to
come (months at the start of a public sample whose closes begin later, or a
broken outcome sync), the closes of that stretch are missing: the months
after it show a backlog closing at once, which a model would learn as normal
(``missing_closes``: the models learn from the first close after it).
When deals still close but none was created for far longer than creations
usually take (``creation_stop``), the export leaves out the newer deals:
one of closed deals only, or filtered by creation date."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Quiet:
    newest: pd.Timestamp | None   # the last day a deal was created or closed (None: no deals)
    as_of: pd.Timestamp
    days: int                     # from ``newest`` to the analysis date

    def too_long(self, max_days: int) -> bool:
        return self.newest is not None and self.days > max_days

    def sentence(self) -> str:
        return (f"no deal was created or closed in the {self.days:,} days before the analysis date "
                f"{self.as_of:%Y-%m-%d} (the newest on {self.newest:%Y-%m-%d}): recent windows are empty and "
                "open deals only age; if the export is that old, run it as of its own date "
                "(--as-of, SALESINTEL_AS_OF)")


def quiet_before(latest_dates, as_of) -> Quiet:
    """How long before ``as_of`` the last deal was created or closed, from
    each kind's latest date (None or NaT when there is none; dates after the
    analysis date are not known then and do not count)."""
    as_of = pd.Timestamp(as_of).normalize()
    known = [pd.Timestamp(d).normalize() for d in latest_dates if d is not None and not pd.isna(d)]
    known = [d for d in known if d <= as_of]
    if not known:
        return Quiet(None, as_of, 0)
    newest = max(known)
    return Quiet(newest, as_of, int((as_of - newest).days))


# Fewer closes than this say too little about how often deals close to call a gap in them unusual.
MIN_CLOSES = 30
# The history begins after this many deals (or 1 % of them) were created: older ones may be strays.
STRAY_DEALS = 5
# A gap is unusual beyond this many times the mean time between closes (and beyond the rules' quiet days).
GAP_FACTOR = 10
# ... and its closes are missing when a backlog follows it: this many times the closes an average stretch
# as long holds. A history that merely starts (a new CRM, or one that took over only the open deals of an
# old one) ramps up after its first close instead (0.6-0.8 times on the sample CRM; 1.3-2.4 on Maven's).
BACKLOG_FACTOR = 1.2


@dataclass(frozen=True)
class CloseGap:
    start: pd.Timestamp   # when the history began (after ``STRAY_DEALS`` creations), or the close before the gap
    end: pd.Timestamp     # the first close after the gap
    days: int
    open_deals: int       # deals open at some point of the gap (created before its end, not closed before its start)
    closes_per_day: float  # over the history, from its beginning (``start`` of a first gap) to the last close
    first: bool           # the gap runs from the history's beginning
    window_days: int      # the stretch after the gap whose closes are counted
    closes_after: int     # closes in the ``window_days`` from the gap's end on

    def sentence(self) -> str:
        where = "at the start of the data" if self.first else "in the data"
        rate = (f"about {self.closes_per_day:,.0f} deals a day" if self.closes_per_day >= 1
                else f"one deal every {1 / self.closes_per_day:,.0f} days")
        return (f"no deal was closed from {self.start:%Y-%m-%d} to {self.end:%Y-%m-%d} ({self.days:,} days, {where}) "
                f"although {self.open_deals:,} deals were open, where {rate} closed on average, and then "
                f"{self.closes_after:,} closed in {self.window_days} days (about {self.usual_closes:,.0f} usually): "
                "closes of that period are probably missing from the export, and win rates that include it see a "
                f"backlog closing at once; the risk model and its forecast learn from {self.end:%Y-%m-%d} on, and "
                f"the anomaly tests leave out the closes of the {self.window_days} days from then")

    @property
    def usual_closes(self) -> float:
        return self.closes_per_day * self.window_days


def history_start(dates: np.ndarray) -> np.datetime64:
    """The day the history starts among sorted creation ``dates``: when deals
    were being created. A few stray records years older (a test deal, an
    account's first opportunity) would otherwise open a "gap" of years
    before the first close, or stretch the time between creations."""
    return dates[min(max(STRAY_DEALS, len(dates) // 100), len(dates) - 1)]


def longest_close_gap(created: pd.Series, closed: pd.Series, as_of, window_days: int = 30) -> CloseGap | None:
    """The longest stretch without a close between the history's beginning
    and the last close known on ``as_of`` (None with fewer than
    ``MIN_CLOSES`` closes). The stretch after the last close is the quiet
    check's to judge."""
    as_of = pd.Timestamp(as_of)
    created = pd.to_datetime(created).dt.normalize()
    closed = pd.to_datetime(closed).dt.normalize()
    closed = closed.where(closed <= as_of)
    days = np.sort(closed.dropna().unique())
    if len(days) < 2 or closed.notna().sum() < MIN_CLOSES or created.isna().all():
        return None
    dates = np.sort(created.dropna().to_numpy(dtype="datetime64[D]"))
    begun = history_start(dates)
    events = np.concatenate([[begun], days]).astype("datetime64[D]")
    gaps = np.diff(events).astype(np.int64)
    k = int(gaps.argmax())
    start, end = pd.Timestamp(events[k]), pd.Timestamp(events[k + 1])
    open_then = int(((created < end) & ~(closed < start)).sum())
    span = max(int((days[-1] - events[0]).astype("timedelta64[D]").astype(np.int64)), 1)
    after = int(((closed >= end) & (closed < end + pd.Timedelta(days=window_days))).sum())
    return CloseGap(start, end, int(gaps[k]), open_then, float(closed.notna().sum() / span), k == 0, window_days,
                    after)


def closes_missing(gap: CloseGap | None, max_days: int) -> bool:
    """A gap longer than the rules' quiet days and ``GAP_FACTOR`` times the
    mean time between closes, followed by a backlog (``BACKLOG_FACTOR``)."""
    return (gap is not None and gap.days > max(max_days, GAP_FACTOR / gap.closes_per_day)
            and gap.closes_after > BACKLOG_FACTOR * gap.usual_closes)


def missing_closes(created: pd.Series, closed: pd.Series, as_of, max_quiet_days: int) -> CloseGap | None:
    """The stretch whose closes are missing (``closes_missing``) among the
    deals created by ``as_of``, or None. The models learn from its end on,
    and the anomaly tests leave out the closes of its catch-up: replayed
    through it, 74 % of the deals open on Maven's public sample on
    2017-02-28 and older than 90 days were won within 90 days, none of
    those open on 2017-06-30."""
    known = (pd.to_datetime(created) <= pd.Timestamp(as_of)).to_numpy()
    gap = longest_close_gap(created[known], closed[known], as_of, max_quiet_days)
    return gap if closes_missing(gap, max_quiet_days) else None


@dataclass(frozen=True)
class CreationStop:
    newest: pd.Timestamp      # the last day a deal was created
    as_of: pd.Timestamp
    days: int                 # from ``newest`` to the analysis date
    created_per_day: float    # over the history, from its beginning to ``newest``
    closes_since: int         # deals closed after ``newest``, up to the analysis date
    last_close: pd.Timestamp | None

    def sentence(self) -> str:
        rate = (f"about {self.created_per_day:,.0f} a day" if self.created_per_day >= 1
                else f"one every {1 / self.created_per_day:,.0f} days")
        return (f"no deal was created in the {self.days:,} days before the analysis date {self.as_of:%Y-%m-%d} "
                f"(the newest on {self.newest:%Y-%m-%d}, after {rate} until then), while {self.closes_since:,} "
                "deals closed: the export probably leaves out the newer deals (one of closed deals only, or "
                "filtered by creation date), and the deals created since are in no figure")


def creation_stop(created: pd.Series, closed: pd.Series, as_of) -> CreationStop | None:
    """How long before ``as_of`` the last deal was created, against how often
    deals were created before (None with fewer than ``MIN_CLOSES``
    creations by then)."""
    as_of = pd.Timestamp(as_of).normalize()
    created = pd.to_datetime(created).dt.normalize()
    closed = pd.to_datetime(closed).dt.normalize()
    dates = np.sort(created[created <= as_of].dropna().to_numpy(dtype="datetime64[D]"))
    if len(dates) < MIN_CLOSES:
        return None
    begun = history_start(dates)
    newest = pd.Timestamp(dates[-1])
    span = max(int((dates[-1] - begun).astype(np.int64)), 1)
    known = closed[closed <= as_of]
    return CreationStop(newest, as_of, int((as_of - newest).days), float((dates >= begun).sum() / span),
                        int((known > newest).sum()), known.max() if len(known) else None)


def creations_missing(stop: CreationStop | None, max_days: int) -> bool:
    """No creation for longer than the rules' quiet days and ``GAP_FACTOR``
    times the mean time between creations, while deals closed within the
    quiet days (when they did not, ``quiet_before`` says the data stops)."""
    return (stop is not None and stop.days > max(max_days, GAP_FACTOR / stop.created_per_day)
            and stop.last_close is not None and (stop.as_of - stop.last_close).days <= max_days)
