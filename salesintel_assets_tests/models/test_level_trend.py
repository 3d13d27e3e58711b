"""A level that keeps moving: the line through past quarters' levels, read
on the analysis date and shrunk for its noise."""

import numpy as np
import pandas as pd
import pytest

from salesintel_assets.domain.models import level_trend as lt

NEWEST = pd.Timestamp("2026-01-01")
START_LOGIT = np.log(0.3 / 0.7)


def _history(quarter_shifts, deals_per_date: int = 300, rows_per_deal: int = 1) -> tuple[np.ndarray, pd.DataFrame]:
    """Weekly snapshot dates, 13 per quarter, oldest quarter first, ending on
    ``NEWEST``; in quarter q the wins are exactly (evenly spread draws) those
    of 30 % moved by ``quarter_shifts[q]`` log odds. The model says 30 % throughout."""
    quarters = len(quarter_shifts)
    frames = []
    for q, shift in enumerate(quarter_shifts):
        rate = 1 / (1 + np.exp(-(START_LOGIT + shift)))
        for week in range(13):
            back = (quarters - 1 - q) * 13 + (12 - week)
            even = (np.random.default_rng(back).permutation(deals_per_date) + 0.5) / deals_per_date
            frames.append(pd.DataFrame({"snapshot_date": NEWEST - pd.Timedelta(days=7 * back),
                                        "won": (even < rate).astype(int),
                                        "deal_id": [f"{back}-{i // rows_per_deal}" for i in range(deals_per_date)]}))
    rows = pd.concat(frames, ignore_index=True)
    return np.full(len(rows), 0.3), rows


def test_a_steady_fall_is_followed_to_the_analysis_date():
    """Odds falling 0.6 a year: the line through eight quarters, read half a
    year after the newest snapshot, asks for about the fall by then."""
    per_quarter = -0.6 * 91 / 365.25
    p, rows = _history([per_quarter * q for q in range(8)])
    as_of = NEWEST + pd.Timedelta(days=182)
    reading = lt.trend_shift(p, rows, as_of)
    newest_quarter_centre = NEWEST - pd.Timedelta(days=42)
    expected = per_quarter * 7 - 0.6 * (as_of - newest_quarter_centre).days / 365.25
    assert reading.blocks == 8
    assert reading.slope == pytest.approx(-0.6, abs=0.05)
    assert reading.raw == pytest.approx(expected, abs=0.05)
    assert reading.shift == pytest.approx(reading.raw, rel=0.05)     # clear beyond its noise: kept nearly whole
    rising = lt.trend_shift(*_history([-per_quarter * q for q in range(8)]), as_of)
    assert rising.shift == pytest.approx(-reading.shift, abs=0.05)


def test_a_flat_history_or_one_whose_quarters_only_differ_by_luck_moves_nothing():
    p, rows = _history([0.0] * 8)
    assert lt.trend_shift(p, rows, NEWEST + pd.Timedelta(days=120)).shift == 0.0
    lucky = [0.2, -0.15, 0.1, -0.2, 0.15, -0.1, 0.2, -0.15]     # quarters apart by a window's luck, no trend
    reading = lt.trend_shift(*_history(lucky), NEWEST + pd.Timedelta(days=120))
    assert reading.raw != 0.0 and abs(reading.shift) < abs(reading.raw) / 2
    assert abs(reading.shift) < 0.03


def test_the_same_fall_is_trusted_less_from_fewer_deals_or_amid_luck():
    """Rows of one deal are not independent; quarters that scatter beyond
    binomial noise widen the line's error by their scatter."""
    per_quarter = -0.4 * 91 / 365.25
    as_of = NEWEST + pd.Timedelta(days=120)
    exact = lt.trend_shift(*_history([per_quarter * q for q in range(6)], 100), as_of)
    replayed = lt.trend_shift(*_history([per_quarter * q for q in range(6)], 100, rows_per_deal=13), as_of)
    assert replayed.raw == pytest.approx(exact.raw, abs=0.02)
    assert replayed.se == pytest.approx(exact.se * np.sqrt(13), rel=0.05)
    assert abs(replayed.shift) < abs(exact.shift)
    lucky = lt.trend_shift(*_history([per_quarter * q + (0.15 if q % 2 else -0.15) for q in range(6)], 100), as_of)
    assert lucky.se > 2 * exact.se and abs(lucky.shift) < abs(exact.shift)


def test_fewer_than_four_quarters_draw_no_line():
    p, rows = _history([0.0, -0.3, -0.6])
    assert lt.trend_shift(p, rows, NEWEST + pd.Timedelta(days=90)) == lt.NO_TREND
    assert not lt.spans_enough_quarters(rows["snapshot_date"])
    assert lt.spans_enough_quarters(_history([0.0] * 4)[1]["snapshot_date"])
    assert lt.trend_shift(p[:0], rows.iloc[:0], NEWEST) == lt.NO_TREND


def test_quarters_are_counted_back_from_the_newest_snapshot():
    p, rows = _history([0.0, 0.0, 0.5, -0.5])
    levels = lt.quarter_levels(p, rows)
    assert len(levels) == 4 and levels["years"].is_monotonic_decreasing
    assert levels.loc[0, "shift"] == pytest.approx(-0.5, abs=0.01)    # the newest quarter first
    assert levels.loc[1, "shift"] == pytest.approx(0.5, abs=0.01)
    assert levels.loc[0, "years"] == pytest.approx(-42 / 365.25)


def test_the_line_reads_the_latest_quarters_from_a_year_after_the_first_deal():
    dates = pd.Series(pd.date_range("2024-01-01", "2026-01-01", freq="7D"))
    kept = dates[lt.read_dates(dates, 6, pd.Timestamp("2023-06-01"))]
    assert kept.max() == dates.max() and (dates.max() - kept.min()).days < 6 * 91
    assert (dates.max() - kept.min()).days >= 5 * 91
    young = dates[lt.read_dates(dates, 20, pd.Timestamp("2024-01-01"))]
    assert young.min() >= pd.Timestamp("2025-01-01") and young.max() == dates.max()
    assert not lt.read_dates(dates.iloc[:0], 6, pd.Timestamp("2024-01-01")).any()
