"""Today's place in the quarter read off earlier quarters at the same place:
the served chances move only by what those quarters show beyond noise."""

import numpy as np
import pandas as pd
import pytest

from salesintel_assets.domain.common import stats
from salesintel_assets.domain.models import quarter_place as qp
from salesintel_assets.domain.models import risk_model as rm
from salesintel_assets.domain.models.features import day_numbers

QUARTER_END = int(day_numbers(["2025-09-30"])[0])


def _days(*dates: str) -> np.ndarray:
    return day_numbers(list(dates))


def test_one_grid_day_per_earlier_quarter_at_todays_place():
    # A weekly grid; today is a quarter's last day, which counts as the quarter passed (as the models' clock
    # counts it): the same place in June is 30 June or 1 July, whichever the grid holds, never both.
    grid = day_numbers(pd.date_range("2025-01-01", "2025-09-24", freq="7D"))
    chosen = qp.same_place_days(np.r_[grid, _days("2025-06-30")], QUARTER_END, 1)
    assert [str(np.datetime64(int(d), "D")) for d in chosen] == ["2025-01-01", "2025-04-02", "2025-06-30"]
    # mid-quarter: the grid day nearest the same place, within three days
    mid = qp.same_place_days(grid[grid < _days("2025-07-01")[0]], int(_days("2025-08-15")[0]), 1)
    assert [str(np.datetime64(int(d), "D")) for d in mid] == ["2025-02-12", "2025-05-14"]


def _snapshots(place_odds: float, quarters: int = 4, deals_per_day: int = 400, seed: int = 0):
    """Weekly snapshots of open deals ending before 2025-09-30, each served
    a chance p; on the grid day at a quarter's last-day place their true
    odds are moved by ``place_odds`` (the day's wins came elsewhere)."""
    rng = np.random.default_rng(seed)
    days = np.arange(QUARTER_END - 7 * 13 * quarters, QUARTER_END - 90, 7)
    at_place = set(qp.same_place_days(days, QUARTER_END, 1).tolist())
    rows = []
    for k, day in enumerate(days):
        deal = np.arange(deals_per_day) + 60 * k   # a deal stays open about seven weeks
        p = 1 / (1 + np.exp(-rng.normal(-1.2, 0.8, deals_per_day)))
        true_p = stats.shifted(p, place_odds) if day in at_place else p
        rows.append((p, rng.random(deals_per_day) < true_p, np.full(deals_per_day, day), deal))
    p, won, day, deal = (np.concatenate(part) for part in zip(*rows))
    return p, won.astype(float), day, deal


def test_a_place_whose_wins_came_elsewhere_moves_todays_chances_down():
    level = qp.place_level(*_snapshots(-0.4), QUARTER_END, 1, 90)
    assert level.quarters >= 3
    assert level.change == pytest.approx(-0.4, abs=0.15)
    assert level.change < level.shift < 0   # shrunk toward 0 for its noise, not past it
    assert level.se > 0


def test_an_average_place_moves_nothing_beyond_noise_and_its_error_is_honest():
    # twenty worlds where the place is like any other day: the readings scatter about 0 as far as their error
    # says, and what is served scatters far less
    levels = [qp.place_level(*_snapshots(0.0, seed=seed), QUARTER_END, 1, 90) for seed in range(20)]
    change = np.array([level.change for level in levels])
    se = np.array([level.se for level in levels])
    served = np.array([level.shift for level in levels])
    assert abs(change.mean()) < 0.03
    assert 0.6 < change.std() / se.mean() < 1.4
    assert np.abs(served).mean() < np.abs(change).mean() / 2


def test_days_too_thin_to_read_give_no_level():
    p, won, day, deal = _snapshots(-0.4, deals_per_day=20)
    level = qp.place_level(p, won, day, deal, QUARTER_END, 1, 90)
    assert level.quarters == 0 and level.shift == 0


def test_a_place_level_moves_every_served_chance_of_its_horizon_and_nothing_else():
    class Fixed:   # a calibrated member answering 0.3 for every deal
        def predict_proba(self, rows):
            return np.column_stack([np.full(len(rows), 0.7), np.full(len(rows), 0.3)])

    model = rm.HorizonModel([90, 180], [Fixed(), Fixed()], 180)
    rows = pd.DataFrame({"age_days": [10.0, 50.0]})
    moved = model.at_place([-0.5, 0.0])
    assert moved.horizon_probabilities(rows)[90] == pytest.approx(stats.shifted(np.full(2, 0.3), -0.5))
    assert moved.horizon_probabilities(rows)[180] == pytest.approx(np.full(2, 0.3))
    assert model.horizon_probabilities(rows)[90] == pytest.approx(np.full(2, 0.3))   # the original is untouched
    assert moved.judged().horizon_probabilities(rows)[90] == pytest.approx(np.full(2, 0.3))


def test_the_sentence_says_how_far_and_on_how_many_quarters():
    said = qp.sentence([qp.PlaceLevel(90, -0.3, 0.05, 5)])
    assert said.startswith("today's place in the quarter: on the same day of 5 earlier quarters the 90-day chances "
                           "read above what came")
    assert "moved by -0.292 (odds x0.75)" in said
    assert qp.sentence([qp.PlaceLevel(90, -0.02, 0.05, 5)]) is None   # within noise: nothing moved, nothing said
