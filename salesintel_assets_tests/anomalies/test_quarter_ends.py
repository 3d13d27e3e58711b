"""Quarters end where wins bunch: a fiscal year the rules do not name is
read from the wins, and the rules' quarters stand when the wins do not say
otherwise clearly."""

from datetime import date

import numpy as np
import pytest

from salesintel_assets.domain.anomalies import quarter_ends
from salesintel_assets.domain.anomalies.detector import detect_anomalies
from salesintel_assets_tests.trust_study import WORLDS, world_tables

FIRST_MONTH = np.datetime64("2025-01", "M")


def _wins(months: int, per_month: float, growth: float, pushed_place: int | None, seed: int = 5) -> np.ndarray:
    """Won close days over ``months`` whole months from January 2025, Poisson
    per month and growing; with ``pushed_place`` (0 for January, April,
    July, October), 45 % of the wins of the two months before each such
    month close in its last three weeks instead."""
    rng = np.random.default_rng(seed)
    days = []
    for m in range(months):
        first = (FIRST_MONTH + m).astype("datetime64[D]").astype(np.int64)
        end = (FIRST_MONTH + m + 1).astype("datetime64[D]").astype(np.int64)
        day = rng.integers(first, end, rng.poisson(per_month * (end - first) / 30.4 * (1 + growth) ** m))
        target = m + 3 - (m - pushed_place) % 3 if pushed_place is not None else m   # the month the push ends in
        if m < target < months:
            after_it = (FIRST_MONTH + target + 1).astype("datetime64[D]").astype(np.int64)
            pushed = rng.random(len(day)) < 0.45
            day = np.where(pushed, after_it - rng.integers(1, 22, len(day)), day)
        days.append(day)
    return np.concatenate(days)


def test_wins_that_bunch_at_the_ends_of_january_april_july_october_move_the_quarters():
    ends = quarter_ends.from_wins(_wins(18, 80, 0.03, pushed_place=0), 1, 0.01)
    assert ends.fiscal_start_month == 2
    assert ends.note.startswith("wins bunch at the ends of January, April, July, October")
    assert "March, June, September, December, the rules' quarter ends" in ends.note
    assert "fiscal_year_start_month to 2 (or 5, 8, 11)" in ends.note
    # at the ends of February, May, August, November: quarters starting in March
    assert quarter_ends.from_wins(_wins(18, 80, 0.03, pushed_place=1), 1, 0.01).fiscal_start_month == 3


def test_the_rules_quarters_stand_unless_the_wins_say_otherwise_clearly():
    calendar = _wins(18, 80, 0.03, pushed_place=2)
    assert quarter_ends.from_wins(calendar, 1, 0.01) == quarter_ends.QuarterEnds(1)
    # a fiscal year starting in April has the calendar's quarter ends: the rules' month is kept
    assert quarter_ends.from_wins(calendar, 4, 0.01) == quarter_ends.QuarterEnds(4)
    # steep growth (8 % a month) and no push; a push with too few whole months to compare (4)
    assert quarter_ends.from_wins(_wins(18, 80, 0.08, pushed_place=None), 1, 0.01) == quarter_ends.QuarterEnds(1)
    assert quarter_ends.from_wins(_wins(4, 300, 0.0, pushed_place=0), 1, 0.01) == quarter_ends.QuarterEnds(1)
    assert quarter_ends.from_wins(np.zeros(0, np.int64), 1, 0.01) == quarter_ends.QuarterEnds(1)


@pytest.mark.parametrize("seed", range(12))
def test_noise_alone_does_not_move_the_quarters(seed):
    wins = _wins(18, 60, 0.03, pushed_place=None, seed=100 + seed)
    assert quarter_ends.from_wins(wins, 1, 0.01).fiscal_start_month == 1


def test_the_months_compared_are_whole():
    # wins from 2025-01-15 to 2025-06-10: February to May are whole, and only March and April have both
    # neighbours whole too
    days = np.arange(np.datetime64("2025-01-15"), np.datetime64("2025-06-11")).astype(np.int64)
    months, rate = quarter_ends.monthly_rates(days)
    assert list(months.astype("datetime64[M]").astype(str)) == ["2025-02", "2025-03", "2025-04", "2025-05"]
    np.testing.assert_allclose(rate, np.log(1 + 0.5 / np.array([28, 31, 30, 31])))


def test_the_rules_can_keep_their_own_quarters():
    from salesintel_assets.domain.common.rules import load_rules

    anomalies = load_rules().anomalies
    cfg = anomalies.seasonality
    assert cfg.quarter_ends == "auto"
    wins = _wins(18, 80, 0.03, pushed_place=0)
    moved, note = quarter_ends.following_wins(anomalies, wins)
    assert moved.seasonality.fiscal_year_start_month == 2 and note.startswith("wins bunch")
    assert moved.model_copy(update={"seasonality": cfg}) == anomalies   # nothing else moves
    for kept in (cfg.model_copy(update={"quarter_ends": "fiscal_year"}), cfg.model_copy(update={"mode": "off"})):
        section = anomalies.model_copy(update={"seasonality": kept})
        assert quarter_ends.following_wins(section, wins) == (section, "")


@pytest.fixture(scope="module")
def february_world():
    """3,000 deals of a CRM whose fiscal year starts in February, analysed on
    2026-07-31, the end of its second fiscal quarter."""
    spec = next(w for w in WORLDS if w.name == "fiscal_seasonal_export")
    assert spec.fiscal_start_month == 2
    return world_tables(spec, 3000, 91, date(2026, 7, 31))


def test_the_anomalies_name_the_quarters_the_wins_keep(february_world):
    rules, fact, as_of = february_world["rules"], february_world["fact"], february_world["as_of"]
    notes = detect_anomalies(fact, None, None, rules, as_of).notes
    moved = [n for n in notes if n.startswith("wins bunch at the ends of January, April, July, October")]
    assert len(moved) == 1
    season = next(n for n in notes if n.startswith("quarter-end seasonality found"))
    assert "% 0-6 days before quarter end;" in season   # the highest win rate: the fiscal quarter's last week
    fixed = rules.anomalies.seasonality.model_copy(update={"quarter_ends": "fiscal_year"})
    kept = rules.model_copy(update={"anomalies": rules.anomalies.model_copy(update={"seasonality": fixed})})
    notes = detect_anomalies(fact, None, None, kept, as_of).notes
    assert not [n for n in notes if n.startswith("wins bunch")]
    season = next(n for n in notes if n.startswith("quarter-end seasonality found"))
    assert "0-6 days before the end of the quarter's first month;" in season
