"""A pipeline that stops closing: of the deals created between ``ages_days``
ago, the share still open on the analysis date against the share of deals
as old still open on the same day a year earlier (a younger history: on
dates in the baseline before the window).

Why a test of its own: when new deals stop closing (a broken hand-off, a
frozen budget cycle, a rep team that stopped working its pipeline), the
closes that do happen look as usual, so win rate and cycle of closed deals do
not move; the open deals pile up at every age, so their median age barely
moves either. What moves is how many deals of an age are still open.

Ages are counted as in the open-age test: each baseline deal is weighted by
the segment's creations as many days before the analysis date over as many
days before its snapshot, so growth (more young deals in the cohort, which
are more often open) is not a stall. A year back is like with like for
every season (more deals are open just before a quarter's end than just
after it, and more still before a fiscal year's end); on a younger history
with seasonal closings the baseline dates are the same point of earlier
quarters.
"""

from __future__ import annotations

import numpy as np

from salesintel_assets.domain.anomalies.recurrence import YEAR_DAYS
from salesintel_assets.domain.anomalies.samples import (
    NEVER, DealDays, SegmentCurves, creation_reweight, dimsets, first_of_deal, on_snapshots, snapshot_days,
    to_timestamp, untouched_ages,
)
from salesintel_assets.domain.anomalies.significance import Comparison, Sample
from salesintel_assets.domain.common.rules import Rules

MIN_SNAPSHOTS = 4   # baseline dates (eight weeks of them) whose whole age range the history holds
MIN_AGE_SPAN = 30   # days of ages, at least, compared


def still_open_comparison(deals: DealDays, curves: SegmentCurves, rules: Rules,
                          seasonal: bool = False) -> tuple[Comparison | None, str]:
    """The comparison, or None, and a note: why not (a history too short to
    hold the age range on enough baseline dates), or which ages a clean-up
    left comparable."""
    test = rules.anomalies.still_open
    youngest, oldest = test.ages_days
    known = deals.created < NEVER
    first = int(deals.created[known].min()) if known.any() else deals.as_of
    snapshots, then = _baseline_dates(deals.as_of, rules, seasonal, first, oldest)
    if not len(snapshots):
        return None, (f"deals still open at {youngest}-{oldest} days old: not compared, the history holds "
                      f"{deals.as_of - first} days, too few for that age on {MIN_SNAPSHOTS} baseline dates")
    # A clean-up that closed deals of these ages on some compared dates but not others would pass for a change.
    oldest, sweep = untouched_ages(deals, int(snapshots.min()), oldest)
    note = ""
    if sweep is not None:
        swept = f"the clean-up of {to_timestamp(sweep[0]):%d %b %Y} closed deals from about {sweep[1]} days old"
        if oldest - youngest < MIN_AGE_SPAN:
            return None, f"deals still open at {youngest}-{test.ages_days[1]} days old: not compared, {swept}"
        note = f"deals still open compared at {youngest}-{oldest} days old: {swept}"

    def aged(day, age):
        return (age >= youngest) & (age <= oldest)
    rows_w, _, _ = on_snapshots(deals, np.array([deals.as_of]), aged)
    rows_b, ages_b, days_b = on_snapshots(deals, snapshots, aged)
    reweight = creation_reweight(deals, curves, rows_b, ages_b, days_b)
    comp = Comparison(
        anomaly_family="still_open", metric="still_open_share", kind="rate", alternative="greater",
        window_days=test.window_days, window_start=to_timestamp(deals.as_of - test.window_days + 1),
        window_end=to_timestamp(deals.as_of),
        window=Sample(rows_w, deals.closed[rows_w] > deals.as_of),
        baseline=Sample(rows_b, deals.closed[rows_b] > days_b, reweight(()), first_of_deal(rows_b)),
        min_window_deals=test.min_window_deals, min_baseline_deals=test.min_baseline_deals,
        min_effect=test.min_effect, dimsets=dimsets(rules, test, test.window_days), reweight=reweight,
        ages=(youngest, oldest), baseline_words=then,
    )
    return comp, note


def _baseline_dates(as_of: int, rules: Rules, seasonal: bool, first: int, oldest: int) -> tuple[np.ndarray, str]:
    """The baseline dates whose oldest deals the history holds (none when
    too few), and how they were chosen, in words.

    The same day a year earlier when the history holds it: many B2B CRMs
    hold wins back for the fiscal year's end, so in its last quarter more
    deals are open than at the same point of other quarters, every year.
    On generated worlds with such a push, false alarms per run were 0.60
    against the same point of earlier quarters, 0.33 against the days
    around the same day last year (a week or two either side straddles the
    push), and 0.28, as without this test, against that day alone.
    Otherwise every ``snapshot_every_days`` in the baseline before the
    window (on seasonal closings the same point of earlier quarters), at
    least ``MIN_SNAPSHOTS`` of them."""
    year_ago = as_of - YEAR_DAYS
    if year_ago - oldest >= first:
        then = to_timestamp(year_ago)
        return np.array([year_ago]), f"a year earlier, on {then.day} {then:%b %Y}"
    test = rules.anomalies.still_open
    recent = snapshot_days(rules, as_of, test.window_days, test.snapshot_every_days, seasonal)
    recent = recent[recent - oldest >= first]
    where = "at the same point of earlier quarters" if seasonal else f"in the {rules.anomalies.baseline_days} days"
    return (recent if len(recent) >= MIN_SNAPSHOTS else recent[:0]), f"on dates {where} before"
