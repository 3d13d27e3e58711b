"""Forecast horizons: where the quarter's end lies between the model's
30- and 90-day answers is measured from when earlier quarters' wins came."""

import numpy as np
import pandas as pd
import pytest

from salesintel_assets.domain.models import horizons

AS_OF = pd.Timestamp("2026-05-15")   # 46 days to the quarter's end: between the 30- and 90-day answers


def _won(close_days, seed=0) -> pd.DataFrame:
    """Won deals over three years, each created 20-200 days before its close."""
    rng = np.random.default_rng(seed)
    closed = pd.to_datetime(np.asarray(close_days, dtype="datetime64[D]"))
    created = closed - pd.to_timedelta(rng.integers(20, 200, len(closed)), unit="D")
    return pd.DataFrame({"created_date": created, "closed_date": closed})


def _pushed_to_quarter_ends(n: int, seed=0) -> pd.DataFrame:
    """Every win in the last ten days of a calendar quarter."""
    rng = np.random.default_rng(seed)
    ends = pd.date_range("2023-03-31", "2026-03-31", freq="QE").to_numpy("datetime64[D]")
    return _won(rng.choice(ends, n) - rng.integers(0, 10, n).astype("timedelta64[D]"), seed)


def _spread_evenly(n: int, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return _won(np.datetime64("2023-05-15") + rng.integers(0, 1096, n).astype("timedelta64[D]"), seed)


def test_a_quarter_end_push_places_the_quarter_end_near_the_longer_horizon():
    timing = horizons.timing_share(_pushed_to_quarter_ends(3000), AS_OF, 46, 30, 90)
    assert timing["straight_line"] == pytest.approx(16 / 60)
    # every win 30-90 days after a date 46 days before a quarter's end came in that quarter's last ten days
    assert timing["observed"] == 1.0 and timing["wins"] > 500
    assert timing["share"] > 0.95
    assert timing["quarters"] == horizons.TIMING_QUARTERS


def test_wins_spread_evenly_read_about_the_straight_line():
    timing = horizons.timing_share(_spread_evenly(6000), AS_OF, 46, 30, 90)
    assert timing["wins"] > 300
    assert timing["share"] == pytest.approx(16 / 60, abs=0.06)


def test_few_wins_barely_move_the_straight_line():
    timing = horizons.timing_share(_pushed_to_quarter_ends(15), AS_OF, 46, 30, 90)
    assert 0 < timing["wins"] <= 15 and timing["observed"] == 1.0
    assert timing["share"] < 0.6
    empty = horizons.timing_share(_won([]), AS_OF, 46, 30, 90)
    assert empty["wins"] == 0 and empty["observed"] is None and empty["share"] == pytest.approx(16 / 60)


def test_only_windows_that_have_ended_and_deals_open_then_are_read():
    # won 35 days after the latest date 46 days before a quarter's end (2026-02-13), open on it
    won = _won(["2026-03-20"]).assign(created_date=pd.Timestamp("2026-01-01"))
    assert horizons.timing_share(won, AS_OF, 46, 30, 90)["wins"] == 1
    # read against a 180-day horizon, that date's window has not ended by the analysis date; the date
    # a quarter earlier (2025-11-15) came before the deal was created
    assert horizons.timing_share(won, AS_OF, 46, 30, 180)["wins"] == 0
    assert horizons.timing_share(won.assign(created_date=pd.Timestamp("2026-02-20")), AS_OF, 46, 30, 90)["wins"] == 0
    # history starting a year ago: only the quarters since then are read
    recent = _pushed_to_quarter_ends(3000)
    recent = recent[recent["created_date"] >= "2025-04-01"]
    assert horizons.timing_share(recent, AS_OF, 46, 30, 90)["quarters"] == 4


def test_the_quarter_end_reading_lies_the_measured_share_between_the_horizons():
    rng = np.random.default_rng(3)
    p30 = rng.uniform(0, 0.2, 500)
    by_horizon = {30: p30, 90: p30 + 0.3, 180: p30 + 0.5}
    straight, plain = horizons.horizon_probabilities(by_horizon, AS_OF)
    np.testing.assert_allclose(straight["quarter_end"], p30 + 0.3 * 16 / 60)
    assert plain == {"days": 46, "between_days": [30, 90]}
    keyed, timing = horizons.horizon_probabilities(by_horizon, AS_OF, won=_pushed_to_quarter_ends(3000))
    np.testing.assert_allclose(keyed["quarter_end"], p30 + 0.3 * timing["share"])
    np.testing.assert_allclose(keyed["90d"], by_horizon[90])
    np.testing.assert_allclose(keyed["30d"], p30)
    # under 30 days: a share of the 30-day answer
    near, timing = horizons.horizon_probabilities(by_horizon, pd.Timestamp("2026-06-10"),
                                                  won=_pushed_to_quarter_ends(3000))
    assert timing["between_days"] == [0, 30] and timing["share"] > 0.9
    np.testing.assert_allclose(near["quarter_end"], p30 * timing["share"])


def test_a_window_beyond_the_models_longest_horizon_is_not_answered():
    p30 = np.full(10, 0.1)
    keyed, _ = horizons.horizon_probabilities({30: p30}, AS_OF)   # a model of 30 days only
    assert set(keyed) == {"30d"}
    # a 90-day model answers a quarter's end up to 92 days away (from a quarter's last day) with its 90 days
    last_day = pd.Timestamp("2026-06-30")
    keyed, timing = horizons.horizon_probabilities({30: p30, 90: p30 + 0.2}, last_day)
    assert timing["days"] == 92 and set(keyed) == {"30d", "90d", "quarter_end"}
    np.testing.assert_allclose(keyed["quarter_end"], p30 + 0.2)
    keyed, _ = horizons.horizon_probabilities({30: p30, 90: p30 + 0.2}, pd.Timestamp("2026-04-01"))
    assert set(keyed) == {"30d", "90d", "quarter_end"}


def test_the_timing_is_said_in_words():
    by_horizon = {30: np.full(3, 0.1), 90: np.full(3, 0.3), 180: np.full(3, 0.5)}
    _, timing = horizons.horizon_probabilities(by_horizon, AS_OF, won=_pushed_to_quarter_ends(3000))
    note = horizons.timing_note(timing)
    assert note.startswith("46 days to the quarter's end: 9")
    assert "of the way from the 30- to the 90-day answer (a straight line in days: 27%)" in note
    assert f"in the last 8 quarters, 100% of the {timing['wins']} deals open then and won 30-90 days later" in note
    _, plain = horizons.horizon_probabilities(by_horizon, AS_OF)
    assert horizons.timing_note(plain) == ("46 days to the quarter's end: a straight line between the 30- and "
                                           "90-day answers (no past wins read)")
    _, none = horizons.horizon_probabilities(by_horizon, AS_OF, won=_won([]))
    assert "not enough data: no deal won 30-90 days after the same place in an earlier quarter" in \
        horizons.timing_note(none)


def test_month_ends_run_to_the_horizon():
    assert horizons.month_ends(AS_OF, 90) == [("2026-05", 16), ("2026-06", 46), ("2026-07", 77), ("2026-08", 90)]
    # on a month's last day that month is over; a horizon ending on a month's last day is that month
    assert horizons.month_ends(pd.Timestamp("2026-06-30"), 31) == [("2026-07", 31)]


def test_a_deals_chance_is_spread_over_the_months_and_sums_to_the_main_horizon():
    rng = np.random.default_rng(5)
    p30 = rng.uniform(0, 0.2, 300)
    by_horizon = {30: p30, 90: p30 + 0.3, 180: p30 + 0.4}
    plain = horizons.month_spread(by_horizon, AS_OF, 180)
    assert plain.months == ["2026-05", "2026-06", "2026-07", "2026-08", "2026-09", "2026-10", "2026-11"]
    np.testing.assert_allclose(plain.p.sum(axis=1), by_horizon[180])
    np.testing.assert_allclose(plain.p[:, 0], p30 * 16 / 30)   # a straight line within the first 30 days
    assert (plain.p >= 0).all()
    pushed = horizons.month_spread(by_horizon, AS_OF, 180, _pushed_to_quarter_ends(3000))
    np.testing.assert_allclose(pushed.p.sum(axis=1), by_horizon[180])
    # wins pushed to quarter ends: June and September hold nearly all of what lies between the horizons
    share = pushed.p.sum(axis=0) / pushed.p.sum()
    assert share[1] > 0.5 and share[4] > 0.1
    assert share[2] + share[3] < plain.p[:, 2:4].sum() / plain.p.sum() / 3
    assert set(pushed.close_months()) == {"2026-06"}
    assert set(plain.close_months()) <= {"2026-06", "2026-07"}


def test_a_deal_without_a_chance_closes_in_the_first_month():
    spread = horizons.MonthSpread(["2026-06", "2026-07"], np.array([[0.0, 0.0], [0.1, 0.3], [0.2, 0.2]]))
    assert list(spread.close_months()) == ["2026-06", "2026-07", "2026-06"]
