"""Where a CRM's quarters end, read from its wins.

Seasonal comparisons and the models' quarter clock count the quarters of
the fiscal year the rules name (calendar quarters by default). A company
whose fiscal year starts in February pushes deals to close by the ends of
January, April, July and October. Counted in calendar quarters, its push
sits a month before each "quarter end": the models' features about a
quarter's last days point at the wrong days, and the anomalies' notes name
the wrong month.

With ``quarter_ends: auto`` the wins say where quarters end. A month that
ends a quarter wins more deals per day than the months either side (the
pushed wins come from them). Each whole month's wins per day are compared,
on a log scale, with the mean of its two neighbours', so growth or decline
cancels. Months are grouped by their place in a quarter (which of every
third month they are). The rules' quarters stand unless another group's
months stand out above the rules' quarter-end months, clearly (a
one-sided test at the season test's ``detect_alpha``, ``from_wins``) and
by at least ``MIN_LIFT``. The callers ask only once past closes show a
season: without one, where quarters end changes nothing but a note.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from salesintel_assets.domain.anomalies.seasonality import month_numbers

# Smallest lift (log of wins per day against the neighbours' mean) that moves
# the quarters: at a million deals a trace is significant.
MIN_LIFT = 0.1
MIN_MONTHS_PER_GROUP = 2
MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
               "October", "November", "December")


@dataclass(frozen=True)
class QuarterEnds:
    fiscal_start_month: int   # the rules' month, or one whose quarters end where wins bunch
    note: str = ""            # why the rules' quarters were not used; empty when they were


def _ending(place: int) -> str:
    """The four months at ``place`` in their quarters (0: January, April, July, October)."""
    return ", ".join(MONTH_NAMES[m] for m in range(place, 12, 3))


def monthly_rates(won_close_days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(month since 1970-01, log wins per day) for each whole month of the
    wins' span (half a win added, so an empty month stays finite)."""
    days = np.asarray(won_close_days, dtype="int64")
    if not len(days):
        return np.zeros(0, np.int64), np.zeros(0)
    months = month_numbers(days)
    first_day = lambda m: np.asarray(m).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)  # noqa: E731
    lo, hi = int(months.min()), int(months.max())
    lo += int(first_day(lo) < days.min())           # a month the wins enter part-way is not whole
    hi -= int(first_day(hi + 1) - 1 > days.max())   # nor one they leave part-way
    if hi < lo:
        return np.zeros(0, np.int64), np.zeros(0)
    span = np.arange(lo, hi + 1)
    counts = np.bincount(months[(months >= lo) & (months <= hi)] - lo, minlength=len(span))
    return span, np.log((counts + 0.5) / (first_day(span + 1) - first_day(span)))


def from_wins(won_close_days: np.ndarray, rules_start_month: int, alpha: float) -> QuarterEnds:
    """Quarters for these wins: the rules' (``rules_start_month``) unless
    another place in the quarter clearly holds the bunching (module doc).

    A month's lift is its log rate less the mean of its neighbours'. The
    contrast (mean lift of one group less the rules' quarter-end group's) is
    a weighted sum of the monthly rates; its variance follows from the
    weights and the rates' noise, estimated from the lifts' spread within
    groups. Adjacent lifts share a month and are negatively correlated, so
    a plain two-sample test would be too ready to move the quarters."""
    months, rate = monthly_rates(won_close_days)
    inner = months[1:-1]
    lift = rate[1:-1] - (rate[:-2] + rate[2:]) / 2
    place = inner % 3   # 0 for January, April, July, October
    sizes = np.bincount(place, minlength=3)
    if len(inner) < 3 or sizes.min() < MIN_MONTHS_PER_GROUP:
        return QuarterEnds(rules_start_month)
    means = np.bincount(place, weights=lift, minlength=3) / sizes
    rules_end = (rules_start_month + 1) % 3   # the place of the rules' quarter-end months
    top = int(np.argmax(means))
    gap = float(means[top] - means[rules_end])
    df = len(inner) - 3
    if top == rules_end or gap < MIN_LIFT or df < 1:
        return QuarterEnds(rules_start_month)
    contrast = np.where(place == top, 1 / sizes[top], 0.0) - np.where(place == rules_end, 1 / sizes[rules_end], 0.0)
    weights = np.zeros(len(rate))   # the contrast as a sum over the monthly rates
    weights[1:-1] += contrast
    weights[:-2] -= contrast / 2
    weights[2:] -= contrast / 2
    noise = float(((lift - means[place]) ** 2).sum() / df / 1.5)   # a lift's variance is 1.5 rates'
    # one-sided, and doubled: the group was picked as the higher of two
    p = min(1.0, 2 * float(sps.t.sf(gap / np.sqrt(max(noise, 1e-12) * (weights ** 2).sum()), df)))
    if not p < alpha:
        return QuarterEnds(rules_start_month)
    start = (top + 1) % 3 + 1   # quarters start the month after the bunching months
    ends, rules_ends = _ending(top), _ending(rules_end)
    return QuarterEnds(start, (
        f"wins bunch at the ends of {ends} (deals won per day, against the months either side: "
        f"x{np.exp(means[top]):.2f} in {ends}, x{np.exp(means[rules_end]):.2f} in {rules_ends}, the rules' "
        f"quarter ends; p = {p:.2g} over {len(inner)} months): seasonal "
        f"comparisons and the models' quarter clock use quarters starting in {MONTH_NAMES[start - 1]}. If that "
        f"is your fiscal quarter, set anomalies.seasonality.fiscal_year_start_month to {start} (or {start + 3}, "
        f"{start + 6}, {start + 9}) so that the forecast's quarter_end is yours too; quarter_ends: fiscal_year "
        "keeps the rules' quarters"))


def following_wins(anomaly_rules, won_close_days: np.ndarray) -> tuple[object, str]:
    """The rules' ``anomalies`` section with its seasonality's fiscal start
    month moved to where these wins bunch (``quarter_ends: auto``), and the
    note saying so (the section as it was, and no note, when it stands)."""
    cfg = anomaly_rules.seasonality
    if cfg.mode == "off" or cfg.quarter_ends != "auto":
        return anomaly_rules, ""
    ends = from_wins(won_close_days, cfg.fiscal_year_start_month, cfg.detect_alpha)
    if not ends.note:
        return anomaly_rules, ""
    moved = cfg.model_copy(update={"fiscal_year_start_month": ends.fiscal_start_month})
    return anomaly_rules.model_copy(update={"seasonality": moved}), ends.note


def moved_note(rules_start_month: int, used_start_month: int) -> str | None:
    """In words, for the run summary: the models counted other quarters than
    the rules' fiscal year (None when they did not)."""
    if (used_start_month - rules_start_month) % 3 == 0:
        return None
    return (f"wins bunch at the ends of {_ending((used_start_month + 1) % 3)}, not at the rules' quarter ends: the models' quarter clock follows "
            f"them, but the forecast's quarter_end is the rules' quarter; if your fiscal quarters end then, set "
            f"anomalies.seasonality.fiscal_year_start_month to {(used_start_month - 1) % 3 + 1} in the rules file "
            "(SALESINTEL_RULES)")
