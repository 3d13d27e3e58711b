"""Closed deals are compared only when their history can tell a change from
the season, and never with a backlog recorded late."""

from unittest import mock

import numpy as np
import pandas as pd

from salesintel_assets.domain.anomalies import detector
from salesintel_assets.domain.anomalies.detector import detect_anomalies
from salesintel_assets.domain.anomalies.samples import DealDays, day_number
from salesintel_assets_tests import scenarios as S
from salesintel_assets_tests.seasonal_study import QUARTER_PUSH, rules_with

AUTO = rules_with("auto")
CLOSED_FAMILIES = ("win_rate_dip", "win_rate_spike", "cycle_slowdown", "metric_shift")


def _closed_findings(fact: pd.DataFrame, as_of: str, min_history: int = detector.MIN_CLOSED_HISTORY_DAYS,
                     rules=AUTO):
    with mock.patch.object(detector, "MIN_CLOSED_HISTORY_DAYS", min_history):
        report = detect_anomalies(fact, None, None, rules, pd.Timestamp(as_of))
    found = report.anomalies
    return found[found["anomaly_type"].isin(CLOSED_FAMILIES)], report.notes


def test_a_seasonal_crm_with_less_than_a_quarter_of_closes_compares_no_closed_deals():
    # two months of closes, all in a quarter's first month and the month before: against a plain
    # baseline (seasonality off in the rules) April looks like a dip
    world = S.generate(8000, 23, as_of="2026-04-30", history_days=60, quarter_push=QUARTER_PUSH)
    unguarded, _ = _closed_findings(world.fact, "2026-04-30", min_history=0, rules=rules_with("off"))
    assert "win_rate_dip" in set(unguarded["anomaly_type"])
    for rules in (rules_with("off"), AUTO):
        found, notes = _closed_findings(world.fact, "2026-04-30", rules=rules)
        assert found.empty, found[["anomaly_type", "segment"]]
        said = [n for n in notes if n.startswith("deals closed in the last 30 days: not compared")]
        assert said and "fewer than a quarter's 91" in said[0]


def test_a_quarter_of_closes_before_the_window_is_enough():
    world = S.generate(8000, 23, as_of="2026-06-30", history_days=540, quarter_push=QUARTER_PUSH)
    _, notes = _closed_findings(world.fact, "2026-06-30")
    assert not any(": not compared, the " in n for n in notes)


def _with_backlog(fact: pd.DataFrame, first_close: str) -> pd.DataFrame:
    """Every close before ``first_close`` missing until then, when it is recorded at once."""
    closed = fact["closed_date"]
    late = closed.notna() & (closed < pd.Timestamp(first_close))
    return fact.assign(closed_date=closed.mask(late, pd.Timestamp(first_close)))


def test_a_backlog_recorded_late_is_left_out_of_closed_comparisons():
    world = S.generate(8000, 31, as_of="2026-06-30", history_days=540)
    fact = _with_backlog(world.fact, "2025-09-01")
    deals = DealDays.from_fact(fact, world.as_of)
    kept, notes = deals.without_backlog(fact, AUTO.quality.max_quiet_days)
    start = day_number(pd.Timestamp("2025-09-01"))
    backlog = deals.usable_closed & (deals.closed >= start) & (deals.closed < start + 30)
    assert backlog.sum() > 1000   # the year before, all at once
    np.testing.assert_array_equal(kept.usable_closed, deals.usable_closed & ~backlog)
    assert notes[0].startswith(f"{int(backlog.sum()):,} deals closed from 2025-09-01 to 2025-09-30, after ")
    # the detector says so, and still compares the recent windows with the closes since
    _, said = _closed_findings(fact, "2026-06-30")
    assert notes[0] in said and not any(": not compared, the " in n for n in said)
    # an ordinary history keeps every close
    same, none = DealDays.from_fact(world.fact, world.as_of).without_backlog(world.fact, 30)
    assert none == [] and same.usable_closed.sum() == DealDays.from_fact(world.fact, world.as_of).usable_closed.sum()
