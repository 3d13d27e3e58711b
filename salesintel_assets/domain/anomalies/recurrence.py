"""Changes that recur every year at the same time are not news.

Quarter-end seasonality is compared like with like by the baselines
(``seasonality``). A year can have its own rhythm on top: the year-end push
is often stronger than the other quarter ends, summer slower. A November
compared with the weeks of earlier quarters then "dips" every year.

So each finding of a run is looked up one year (52 weeks, the same weekday
and nearly the same week of the quarter) earlier: the same test on the same
segment and window, run as the detector would have run it on that day with
only what was known then (a metric shift with today's scores, ``FAMILIES``).
When it moved the same way then, clearly (raw p <= ``RECURRING_P``), and
this year adds less than a reportable change (the test's ``min_effect``) to
last year's size (no more than the whole business's then; for cycles and
ages, relative changes, this year's ratio to last year's:
``beyond_last_year``), the finding is a yearly pattern: it is said in the
run's notes, not raised. A segment with too few deals to test a year ago is
judged by the whole business then (a yearly clean-up closing stale deals
lost in January took every segment down; on a generated CRM with one, a
segment of 46 deals then, untested, dipped with the business the next
January and was raised as news). A change
the history has never shown at this time of year is still raised, and so is
a real change on top of the yearly one (this year's dip a reportable change
deeper than last year's).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

YEAR_DAYS = 364              # 52 weeks: the same weekday, the same week of the quarter within a day or two
RECURRING_P = 0.05           # last year's change must be clear on its own (one test, no correction needed)
# Replayable from dates and outcomes, and metric shifts with today's scores of
# the deals closed then: a closed deal's SMI no longer changes, and PVS and DQS
# then measure both years with one ruler (their segment rates move slowly).
FAMILIES = ("win_rate", "cycle", "open_age", "still_open", "metric_shift")
KEY = ["family", "metric", "window_days", "segment"]
RELATIVE_FAMILIES = ("cycle", "open_age")   # sizes relative to the baseline (``selection.effect_size``)


def last_year(as_of: pd.Timestamp) -> pd.Timestamp:
    return pd.Timestamp(as_of) - pd.Timedelta(days=YEAR_DAYS)


def replayable(found: pd.DataFrame, first_created: int, baseline_start) -> np.ndarray:
    """Per finding: can its test be run again a year back? Its family is
    replayed and its window's baseline then (``baseline_start(window_days)``,
    a day number) starts within the history (``first_created``). Judged per
    window: a history too short for a 30-day window's baseline a year back
    may hold a 7-day one's (on a history of 750 days, 8 too few for the
    30-day window, a clean-up's week was raised in one segment although the
    whole business fell further in the same week a year before)."""
    fits = {w: baseline_start(int(w)) >= first_created for w in found["window_days"].unique()}
    return (found["family"].isin(FAMILIES) & found["window_days"].map(fits).fillna(False).astype(bool)).to_numpy()


def against_last_year(found: pd.DataFrame, past_tests: pd.DataFrame | None) -> pd.DataFrame:
    """Per finding, in order: ``recurring`` when the same test moved the same
    way a year earlier, clearly, and by as much as this year's less than a
    reportable change (with no test of the segment then: the whole
    business's); where it moved so and last year's size is not 0, what this
    year adds (``beyond``, ``beyond_last_year``) and last year's ``observed`` and ``expected``
    of the size it is measured against (``business``: the whole business's,
    for a segment untested then or that moved more than the business), NaN
    elsewhere.
    Last year's size is the smaller of the segment's and the whole
    business's (0 when the business did not move that way): a yearly rhythm
    is the business's, and one segment's size a year ago is a noisy
    estimate of it, so a real change on top is not hidden by last year's
    noise (a rhythm of one segment only is still raised)."""
    out = pd.DataFrame({"recurring": np.zeros(len(found), dtype=bool), "beyond": np.nan, "observed": np.nan,
                        "expected": np.nan, "business": np.zeros(len(found), dtype=bool)})
    if not len(found) or past_tests is None or not len(past_tests):
        return out
    figures = [c for c in ("observed", "expected") if c in past_tests]
    past = past_tests[KEY + ["sign", "size", "p_value"] + figures].drop_duplicates(KEY).rename(
        columns={"sign": "past_sign", "size": "past_size", "p_value": "past_p", "observed": "past_observed",
                 "expected": "past_expected"})
    business = past[past["segment"] == "all"].drop(columns="segment").rename(
        columns=lambda c: c.replace("past_", "all_"))
    joined = (found[KEY + ["sign", "size", "min_effect"]].reset_index(drop=True)
              .merge(past, on=KEY, how="left").merge(business, on=KEY[:-1], how="left"))
    sign = joined["sign"].to_numpy(dtype=float)
    same_way = joined["past_sign"].to_numpy(dtype=float) == sign
    clear = joined["past_p"].to_numpy(dtype=float) <= RECURRING_P
    business_way = joined["all_sign"].to_numpy(dtype=float) == sign
    business_size = np.where(business_way, np.nan_to_num(joined["all_size"].to_numpy(dtype=float)), 0.0)
    # A segment too small to test a year ago is read by the business then: a yearly clean-up that closed
    # every stale deal lost took each segment's win rate down with it, tested or not.
    untested = joined["past_sign"].isna().to_numpy()
    business_clear = business_way & (joined["all_p"].to_numpy(dtype=float) <= RECURRING_P)
    last_year_size = np.where(untested, business_size,
                              np.minimum(joined["past_size"].to_numpy(dtype=float), business_size))
    added = beyond_last_year(joined["family"].to_numpy(), sign, joined["size"].to_numpy(dtype=float), last_year_size)
    moved = np.where(untested, business_clear, same_way & clear) & found["family"].isin(FAMILIES).to_numpy()
    out["recurring"] = moved & (added < joined["min_effect"].to_numpy(dtype=float))
    # Beyond a pattern only where there was one: a segment whose business did not move that way has none.
    grown = moved & (last_year_size > 0)
    out["beyond"] = np.where(grown, added, np.nan)
    # last year's figures are those of the size taken: the business's when it moved less than the segment
    by_business = untested | (business_size < joined["past_size"].to_numpy(dtype=float))
    out["business"] = grown & by_business
    for figure in ("observed", "expected"):
        then = np.where(by_business, joined.get(f"all_{figure}", np.nan), joined.get(f"past_{figure}", np.nan))
        out[figure] = np.where(grown, pd.to_numeric(pd.Series(then), errors="coerce").to_numpy(dtype=float), np.nan)
    return out


def beyond_last_year(family: np.ndarray, sign: np.ndarray, size: np.ndarray, last_year_size: np.ndarray) -> np.ndarray:
    """What this year's change adds to last year's. Rates: the difference
    of the two (points). Cycles and ages, whose sizes are relative (0.49:
    49 % older than the baseline): this year's ratio to last year's, less 1.
    A pipeline that ages 33 % every summer and 49 % this one is 12 % older
    than its yearly pattern, not 16 points (an outside world whose stale
    deals pile up until a January clean-up raised "open deals are getting
    older" as critical each autumn, by 0.16 against a reportable 0.15)."""
    relative = np.isin(np.asarray(family, dtype=object), RELATIVE_FAMILIES)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.abs((1 + sign * size) / (1 + sign * last_year_size) - 1)
    return np.where(relative & np.isfinite(ratio), ratio, size - last_year_size)


def note(found: pd.DataFrame, day: pd.Timestamp) -> str:
    """The run's note for the findings left out."""
    what = "; ".join(f"{r['anomaly_type']} {r['segment']} ({int(r['window_days'])} days)"
                     for _, r in found.iterrows())
    return (f"not raised, the same change showed at this time last year (as of {day.date()}): {what}: a yearly "
            "pattern, not news")
