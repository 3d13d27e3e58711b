"""Clean-up days: stale deals closed lost in one sweep are told from busy
days, pushed wins, a growing business and batched closes."""

import numpy as np
import pandas as pd

from salesintel_assets.domain.warehouse.clean_ups import CleanUp, clean_up_days, clean_ups_by_day, clean_ups_of

FIRST = int(np.datetime64("2025-01-01", "D").astype(np.int64))
SWEEP = FIRST + 400


def _ordinary(days=730, per_day=8.0, growth=0.0, seed=0):
    """Day numbers and outcomes of closes at ``per_day`` a day (rising by
    ``growth`` times over the span), 40 % won."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(per_day * (1 + growth * np.arange(days) / days))
    closed = np.repeat(FIRST + np.arange(days), counts)
    return closed, rng.random(len(closed)) < 0.4


def _with_day(closed, won, day, n, won_share, seed=1):
    rng = np.random.default_rng(seed)
    return np.concatenate([closed, np.full(n, day)]), np.concatenate([won, rng.random(n) < won_share])


def test_a_sweep_of_lost_deals_is_a_clean_up_day():
    closed, won = _with_day(*_ordinary(), SWEEP, 300, won_share=0.0)
    on_day = closed == SWEEP
    assert clean_up_days(closed, won) == [CleanUp(pd.Timestamp("2026-02-05"), int(on_day.sum()),
                                                  int((on_day & ~won).sum()))]
    # the same from dates, with a close whose date is missing
    dates = pd.Series(pd.to_datetime(closed.astype("datetime64[D]"))).astype("datetime64[ns]")
    assert clean_ups_of(pd.concat([dates, pd.Series([pd.NaT])], ignore_index=True),
                        np.append(won, False)) == clean_up_days(closed, won)
    # and from closes already counted per day, in any order, with days that closed nothing
    days, closes = np.unique(closed, return_counts=True)
    lost = np.bincount(np.searchsorted(days, closed[~won]), minlength=len(days))
    order = np.random.default_rng(2).permutation(len(days))
    assert clean_ups_by_day(days[order], closes[order], lost[order]) == clean_up_days(closed, won)
    assert clean_ups_by_day(np.append(days, SWEEP + 9), np.append(closes, 0), np.append(lost, 0)) == clean_up_days(
        closed, won)


def test_a_day_of_pushed_wins_or_an_ordinary_busy_day_is_none():
    assert clean_up_days(*_with_day(*_ordinary(), SWEEP, 300, won_share=0.6)) == []   # wins pulled to a quarter end
    assert clean_up_days(*_with_day(*_ordinary(), SWEEP, 50, won_share=0.0)) == []    # 7x a usual day: not a sweep
    assert clean_up_days(*_ordinary()) == []
    closed, won = _ordinary()
    days, closes = np.unique(closed, return_counts=True)
    assert clean_ups_by_day(days, closes, np.bincount(np.searchsorted(days, closed[~won]), minlength=len(days))) == []


def test_a_day_is_judged_against_its_own_months_in_a_growing_business():
    # closes grow thirteenfold: a lost day of 180 is 13 times the two years' usual, 8 times its own months'
    closed, won = _with_day(*_ordinary(per_day=2.0, growth=12.0), FIRST + 700, 180, won_share=0.0)
    assert clean_up_days(closed, won) == []
    closed, won = _with_day(*_ordinary(per_day=2.0, growth=12.0), FIRST + 700, 400, won_share=0.0)
    assert [c.day for c in clean_up_days(closed, won)] == [pd.Timestamp(np.datetime64(FIRST + 700, "D"))]


def test_closes_recorded_in_monthly_batches_are_no_clean_ups():
    rng = np.random.default_rng(3)
    firsts = np.array([np.datetime64(f"2025-{m:02d}-01", "D").astype(np.int64) for m in range(1, 13)])
    closed = np.repeat(firsts, 200)
    assert clean_up_days(closed, rng.random(len(closed)) < 0.05) == []


def test_a_sweep_with_too_little_history_around_it_is_not_judged():
    closed, won = _ordinary(days=20)
    assert clean_up_days(*_with_day(closed, won, FIRST + 10, 300, won_share=0.0)) == []
