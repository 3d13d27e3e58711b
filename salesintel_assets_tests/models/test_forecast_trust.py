"""How far the forecast can be trusted, said in words from the backtest."""

import pandas as pd

from salesintel_assets.domain.models.forecast_trust import trust_note


def _backtest(expected, actual, held, judged_by=4):
    n = len(expected)
    return pd.DataFrame({"status": ["ok"] * n, "expected_won_deals": expected, "actual_won_deals": actual,
                         "won_deals_in_interval": held, "judged_by_dates": [judged_by] * n})


def test_a_tight_forecast_with_a_good_record_is_trusted_to_its_width():
    past = _backtest([204, 196, 251, 230, 188], [200, 210, 240, 228, 190], [True, True, True, False, True])
    note = trust_note(250, 228, 272, past)
    assert note.startswith("expect it within about ±9 % in 80 % of cases (its 80 % interval; a change not yet")
    assert "checked on 5 dates (one independent 90-day window) missed by 3 % on average (worst 7 %)" in note
    assert "held on 4 of 5" in note and "too narrow" not in note


def test_a_wide_interval_says_the_forecast_is_not_within_ten_percent():
    past = _backtest([120, 95, 130], [100, 110, 101], [True, True, False])
    note = trust_note(110, 85, 140, past)
    assert note.startswith("it cannot be trusted to within 10 %: the 80 % interval spans ±25 %")


def test_intervals_that_held_too_rarely_are_called_too_narrow():
    past = _backtest([150] * 6, [100, 110, 120, 100, 150, 105], [False, False, False, True, True, False])
    assert "read them as too narrow" in trust_note(150, 140, 160, past)


def test_without_forward_judged_dates_there_is_not_enough_data():
    assert trust_note(100, 80, 120, None).startswith("not enough data to say how far it can be trusted")
    barely = _backtest([100, 90], [95, 99], [True, True], judged_by=1)     # no date judged by two earlier ones
    assert trust_note(100, 80, 120, barely).startswith("not enough data")
    # Their point errors are still said, with a lean they all share (a real export's ran 27-59 % high).
    assert trust_note(100, 80, 120, barely).startswith(
        "not enough data to say how far it can be trusted: past forecasts replayed on 2 dates, too early in the "
        "history to size their intervals as today's is sized, missed by 7 % on average (worst 9 %), so read the "
        "80 % interval (±20 %) as a rough guide")
    high = _backtest([796, 947, 874, 787], [625, 695, 549, 576], [False] * 4, judged_by=0)
    assert "missed by 40 % on average, all too high (worst 59 %)" in trust_note(100, 80, 120, high)
    failed = pd.DataFrame({"status": ["not enough data: 12 deals"], "judged_by_dates": [None]})
    assert "±20 %" in trust_note(100, 80, 120, failed)


def test_a_width_that_prints_as_the_target_counts_as_within_it():
    past = _backtest([204, 196, 251], [200, 210, 240], [True, True, True])
    assert trust_note(100, 89.9, 110.1, past).startswith("expect it within about ±10 % in 80 % of cases")
    assert trust_note(100, 89, 111, past).startswith("it cannot be trusted to within 10 %: the 80 % interval spans ±11 %")


def test_a_narrow_interval_over_a_poor_record_is_not_trusted_to_its_width():
    past = _backtest([120, 95, 130, 140, 90, 118], [100, 110, 101, 120, 105, 100], [True] * 6)
    note = trust_note(150, 140, 160, past)
    assert note.startswith("it cannot be trusted to within 10 %: its 80 % interval spans ±7 %, but past forecasts "
                           "missed by more than 10 % on average")
    assert "checked on 6 dates (about 2 independent 90-day windows) missed by 19 % on average" in note
    assert "6 dates (about 6 independent" in trust_note(150, 140, 160, past, steps_per_window=1)
