"""Quarter-end seasonality: a recurring pattern is never an alert, a real
change on top of it still is."""

import numpy as np
import pandas as pd

from salesintel_assets.domain.anomalies import seasonality
from salesintel_assets.domain.anomalies.detector import detect_anomalies
from salesintel_assets_tests import scenarios as S
from salesintel_assets_tests.seasonal_study import QUARTER_PUSH, rules_with

AUTO, OFF = rules_with("auto"), rules_with("off")


def _day(text: str) -> int:
    return int(np.datetime64(text, "D").astype(np.int64))


def _win_rate_findings(world: S.World, rules, as_of: str) -> pd.DataFrame:
    as_of = pd.Timestamp(as_of)
    fact = world.fact[world.fact["created_date"] <= as_of].reset_index(drop=True)
    report = detect_anomalies(fact, None, None, rules, as_of)
    found = report.anomalies
    return found[found["anomaly_type"].isin(["win_rate_dip", "win_rate_spike"])], report.notes


def test_seasons_count_weeks_before_each_month_end_of_the_fiscal_quarter():
    days = np.array([_day("2026-03-31"), _day("2026-03-25"), _day("2026-03-24"), _day("2026-01-01")])
    assert list(seasonality.season_of(days, 1, 7)) == [0, 0, 1, 14]
    # A quarter-end month's first day is never its quarter's second month's last days (both about 30 days
    # before the quarter end): pushes follow months, and Maven's quarter-end months win from their 1st.
    firsts = np.array([_day("2017-03-01"), _day("2017-06-01"), _day("2017-09-01")])
    lasts = np.array([_day("2017-05-31"), _day("2017-08-31"), _day("2017-11-30")])
    assert set(seasonality.season_of(firsts, 1, 7)) == {4}
    assert set(seasonality.season_of(lasts, 1, 7)) == {5}
    # A fiscal year starting in February ends its quarter on 30 April, not 31 March.
    assert seasonality.quarter_end_day(np.array([_day("2026-03-31")]), 2)[0] == _day("2026-04-30")
    snaps = seasonality.same_point_in_earlier_quarters(_day("2026-06-20"), _day("2025-12-01"), _day("2026-05-31"), 1)
    assert _day("2026-03-21") in snaps and _day("2025-12-21") in snaps  # 10 days before each quarter end


def test_a_seasonal_world_without_change_raises_no_win_rate_alert():
    world = S.generate(12_000, 11, as_of="2026-06-30", quarter_push=QUARTER_PUSH)
    for as_of in ("2026-06-30", "2026-04-30"):  # a quarter end, and the month after one
        plain, _ = _win_rate_findings(world, OFF, as_of)
        found, notes = _win_rate_findings(world, AUTO, as_of)
        assert len(plain) >= 1  # a plain baseline alarms on the season itself
        assert found.empty, found[["anomaly_type", "segment"]]
        assert any("quarter-end seasonality found" in note for note in notes)


def test_a_real_dip_on_top_of_the_season_is_found():
    for as_of in ("2026-06-30", "2026-04-30"):
        world = S.generate(12_000, 12, as_of=as_of, quarter_push=QUARTER_PUSH,
                           plants=(S.WinRatePlant({"lead_source": "Inbound"}, -0.25),))
        found, _ = _win_rate_findings(world, AUTO, as_of)
        dips = found[found["anomaly_type"] == "win_rate_dip"]
        assert "lead_source=Inbound" in set(dips["segment"]), found[["anomaly_type", "segment"]]


def test_a_world_without_seasons_is_not_standardised():
    world = S.generate(12_000, 1)
    _, notes = _win_rate_findings(world, AUTO, "2026-06-30")
    assert any(note.startswith("no quarter-end seasonality") for note in notes)


def test_a_standardised_baseline_is_not_shortened_by_the_first_months_of_history():
    # Every day from 2025-01-01 four deals start: two take 20 days, two 120.
    # The window (March 2026) is compared with the same weeks of four earlier
    # quarters; in March 2025 no 120-day deal could have closed yet. Exposure
    # counted per season gives the baseline the window's cycle mix exactly.
    from salesintel_assets.domain.anomalies.samples import DealDays, SegmentCurves, closed_window
    from salesintel_assets.domain.anomalies.significance import SegmentCodes

    created = np.repeat(pd.date_range("2025-01-01", "2026-03-30"), 4)
    cycle = np.tile([20, 120, 20, 120], len(created) // 4)
    fact = pd.DataFrame({"created_date": created, "closed_date": created + pd.to_timedelta(cycle, unit="D"),
                         "outcome": np.tile(["Won", "Won", "Lost", "Lost"], len(created) // 4),
                         "needs_review": False, "deal_amount": 1.0, "industry": "SaaS"})
    deals = DealDays.from_fact(fact, pd.Timestamp("2026-03-30"))
    cw = closed_window(deals, SegmentCurves(deals, SegmentCodes(fact, ["industry"])), rules_with("on"), 30,
                       seasonal=True)
    window_cycle = (deals.closed - deals.created)[cw.rows]
    base_cycle = (deals.closed - deals.created)[cw.base_rows]
    assert window_cycle.mean() == 70
    assert abs(np.average(base_cycle, weights=cw.weights(())) - 70) < 0.5
