"""Data that does not cover its period: an old export run as of today (the
data stops long before the analysis date), a history whose closes of a
long stretch are missing, or an export that leaves out the newer deals. The warehouse checks say so in words the run
summary can lead with."""

import numpy as np
import pandas as pd
import pytest

from salesintel_assets.checks.warehouse import (closes_recorded_without_gaps, deals_reach_the_analysis_date,
                                                new_deals_reach_the_analysis_date)
from salesintel_assets.domain.warehouse.recency import (closes_missing, creation_stop, creations_missing,
                                                        longest_close_gap, missing_closes, quiet_before)
from salesintel_assets.resources.settings import SalesintelSettings
from salesintel_assets.resources.warehouse import SalesintelHome, Warehouse

T = pd.Timestamp


@pytest.mark.parametrize("latest, days", [
    ([T("2024-07-20"), T("2024-03-26")], 135),        # the later of created and closed counts
    ([T("2024-03-26"), None], 251),                   # no deal closed yet
    ([T("2024-03-26"), T("2025-01-01")], 251),        # a close after the analysis date is not known then
    ([T("2024-12-02 17:30"), pd.NaT], 0),             # a time of day is still that day
])
def test_quiet_days_count_from_the_newest_known_date(latest, days):
    quiet = quiet_before(latest, "2024-12-02")
    assert quiet.days == days and quiet.too_long(30) == (days > 30)


def test_no_deals_is_not_called_quiet():
    quiet = quiet_before([None, pd.NaT], "2024-12-02")
    assert quiet.newest is None and not quiet.too_long(30)


def _warehouse(tmp_path, created, closed, as_of):
    warehouse = Warehouse(home=SalesintelHome(path=str(tmp_path)))
    warehouse.write_table("fact_deals", pd.DataFrame({
        "deal_id": ["D1", "D2"], "created_date": pd.to_datetime(created), "closed_date": pd.to_datetime(closed),
        "as_of_date": pd.to_datetime([as_of] * 2)}))
    return warehouse


def test_an_export_a_year_older_than_the_analysis_date_is_a_warning_that_says_what_to_do(tmp_path):
    warehouse = _warehouse(tmp_path, ["2023-01-05", "2023-11-02"], ["2023-12-20", None], "2024-12-31")
    result = deals_reach_the_analysis_date(warehouse=warehouse, settings=SalesintelSettings())
    assert not result.passed and result.severity.value == "WARN"
    assert result.description.startswith("no deal was created or closed in the 377 days before the analysis date "
                                         "2024-12-31 (the newest on 2023-12-20)")
    assert "--as-of, SALESINTEL_AS_OF" in result.description
    assert result.metadata["quiet_days"].value == 377 and result.metadata["max_quiet_days"].value == 30


def test_a_live_crm_passes(tmp_path):
    warehouse = _warehouse(tmp_path, ["2024-11-05", "2024-12-20"], ["2024-12-01", None], "2024-12-31")
    result = deals_reach_the_analysis_date(warehouse=warehouse, settings=SalesintelSettings())
    assert result.passed and result.metadata["quiet_days"].value == 11


def _history(first_close_day: int, hole: tuple[int, int] | None = None, deals: int = 600, seed: int = 5,
             backlog: bool = True):
    """Deals created daily over a year from 2024-01-01, each closed 5-60 days
    later; none closed before ``first_close_day`` or within ``hole`` (days
    from the start). With ``backlog`` those closes land on the first day
    after (closes missing, then caught up); without it the deals created
    before ``first_close_day`` are fewer and close slowly, over the next
    300 days (a history that starts, with the open deals an older system
    handed over)."""
    rng = np.random.default_rng(seed)
    created = rng.integers(0, 365, deals)
    if not backlog:
        early = created < first_close_day
        created = np.where(early & (rng.random(deals) < 0.5), rng.integers(first_close_day, 365, deals), created)
        early = created < first_close_day
        closed = np.where(early, first_close_day + rng.integers(0, 300, deals), created + rng.integers(5, 60, deals))
    else:
        closed = np.maximum(created + rng.integers(5, 60, deals), first_close_day)
    if hole:
        closed = np.where((closed >= hole[0]) & (closed < hole[1]), hole[1], closed)
    start = np.datetime64("2024-01-01")
    return pd.Series(start + created), pd.Series(start + closed), pd.Timestamp("2025-03-31")


def test_a_history_whose_first_months_have_no_close_and_then_a_backlog_is_called_incomplete():
    created, closed, as_of = _history(first_close_day=120)   # a public sample whose closes begin in May
    gap = longest_close_gap(created, closed, as_of)
    # the history begins once a few deals were created (older ones may be strays): in its first days here
    assert gap.first and pd.Timestamp("2024-01-01") <= gap.start <= pd.Timestamp("2024-01-10")
    assert gap.end == pd.Timestamp("2024-04-30") and gap.days == (gap.end - gap.start).days > 90
    assert closes_missing(gap, 30)
    assert gap.open_deals == int((created < gap.end).sum())
    assert gap.closes_after > 1.2 * gap.usual_closes
    assert gap.sentence().startswith(f"no deal was closed from {gap.start:%Y-%m-%d} to 2024-04-30 ({gap.days} days, at "
                                     "the start of the data) although ")
    assert "closes of that period are probably missing from the export" in gap.sentence()
    # the models learn from the first close after it, and the sentence says so
    assert missing_closes(created, closed, as_of, 30) == gap
    assert gap.sentence().endswith("the risk model and its forecast learn from 2024-04-30 on, and the anomaly tests "
                                   "leave out the closes of the 30 days from then")


def test_a_history_that_merely_starts_late_is_not():
    """A new CRM, or one that took over only the open deals of an old one:
    no close for months, but no backlog after (the sample CRM's shape)."""
    gap = longest_close_gap(*_history(first_close_day=120, backlog=False))
    assert gap.first and gap.days >= 80 and gap.closes_after < gap.usual_closes
    assert not closes_missing(gap, 30)
    assert missing_closes(*_history(first_close_day=120, backlog=False), 30) is None   # its whole history is learnt


def test_a_hole_in_the_middle_is_found_and_ordinary_histories_pass():
    gap = longest_close_gap(*_history(first_close_day=0, hole=(200, 250)))
    assert not gap.first and gap.end == pd.Timestamp("2024-01-01") + pd.Timedelta(days=250)
    assert gap.days >= 50 and closes_missing(gap, 30)
    assert missing_closes(*_history(first_close_day=0, hole=(200, 250)), 30).end == gap.end
    ordinary = longest_close_gap(*_history(first_close_day=0))
    assert ordinary.days <= 7 and not closes_missing(ordinary, 30)
    assert missing_closes(*_history(first_close_day=0), 30) is None


def test_a_few_stray_deals_years_older_open_no_gap():
    created, closed, as_of = _history(first_close_day=0)
    stray = pd.Series(pd.to_datetime(["2016-03-01", "2019-07-15"]))
    gap = longest_close_gap(pd.concat([stray, created], ignore_index=True),
                            pd.concat([pd.Series([pd.NaT, pd.NaT]), closed], ignore_index=True), as_of)
    assert gap.start >= pd.Timestamp("2024-01-01") and not closes_missing(gap, 30)


def test_few_or_sparse_closes_are_not_judged():
    created, closed, as_of = _history(first_close_day=0, deals=20)
    assert longest_close_gap(created, closed, as_of) is None                 # fewer than 30 closes
    created, closed, as_of = _history(first_close_day=0, deals=60)          # a close every 6 days or so
    gap = longest_close_gap(created, closed, as_of)
    assert gap.days >= 14 and not closes_missing(gap, 30)                    # weeks without one are normal


def _gap_warehouse(tmp_path, backlog: bool):
    created, closed, as_of = _history(first_close_day=120, backlog=backlog)
    warehouse = Warehouse(home=SalesintelHome(path=str(tmp_path)))
    warehouse.write_table("fact_deals", pd.DataFrame({
        "deal_id": [f"D{i}" for i in range(len(created))], "created_date": created, "closed_date": closed,
        "as_of_date": as_of}))
    return warehouse


def test_the_gap_check_warns_on_the_warehouse_only_when_a_backlog_follows(tmp_path):
    result = closes_recorded_without_gaps(warehouse=_gap_warehouse(tmp_path / "a", True), settings=SalesintelSettings())
    assert not result.passed and result.severity.value == "WARN"
    assert result.description.startswith("no deal was closed from 2024-01-")
    assert " to 2024-04-30 (" in result.description and result.metadata["longest_gap_days"].value > 90
    started = closes_recorded_without_gaps(warehouse=_gap_warehouse(tmp_path / "b", False),
                                           settings=SalesintelSettings())
    assert started.passed and started.metadata["longest_gap_days"].value >= 80


def _creations(every_days: float, stop_day: int, close_after: tuple[int, int] = (5, 400), seed: int = 3):
    """Deals created every ``every_days`` on average from 2024-01-01 until
    day ``stop_day``, each closed uniformly ``close_after`` days later (or
    open); judged on 2025-06-30 (day 546)."""
    rng = np.random.default_rng(seed)
    created = np.cumsum(rng.exponential(every_days, int(stop_day / every_days) + 50))
    created = np.floor(created[created < stop_day]).astype(int)
    closed = created + rng.integers(*close_after, len(created))
    start = np.datetime64("2024-01-01")
    as_of = pd.Timestamp("2025-06-30")
    return pd.Series(start + created), pd.Series(start + closed).where(start + closed <= np.datetime64(as_of)), as_of


def test_an_export_whose_creations_stop_while_closes_go_on_leaves_out_the_newer_deals():
    created, closed, as_of = _creations(every_days=0.5, stop_day=420)        # none created in the last 126 days
    stop = creation_stop(created, closed, as_of)
    assert creations_missing(stop, 30) and stop.days >= 126 and stop.closes_since > 100
    assert stop.sentence().startswith(f"no deal was created in the {stop.days} days before the analysis date "
                                      f"2025-06-30 (the newest on {stop.newest:%Y-%m-%d}, after about 2 a day until "
                                      f"then), while {stop.closes_since} deals closed: the export probably leaves "
                                      "out the newer deals")


@pytest.mark.parametrize("every_days, stop_day, close_after", [
    (0.5, 546, (5, 400)),    # a live CRM: deals created up to the analysis date
    (10, 490, (5, 400)),     # one deal every 10 days: 56 days without one is normal (under ten times that)
    (0.5, 420, (5, 60)),     # closes stopped too: the data stops, which the quiet check says
])
def test_creations_that_reach_the_analysis_date_or_are_sparse_or_stop_with_the_closes_are_no_finding(
        every_days, stop_day, close_after):
    created, closed, as_of = _creations(every_days, stop_day, close_after)
    stop = creation_stop(created, closed, as_of)
    assert stop is not None and not creations_missing(stop, 30)


def test_fewer_than_thirty_creations_are_not_judged():
    created, closed, as_of = _creations(every_days=20, stop_day=500)
    assert creation_stop(created.iloc[:29], closed.iloc[:29], as_of) is None


def test_the_creation_check_warns_on_the_warehouse(tmp_path):
    for name, stop_day in (("stopped", 420), ("live", 546)):
        created, closed, as_of = _creations(every_days=0.5, stop_day=stop_day)
        warehouse = Warehouse(home=SalesintelHome(path=str(tmp_path / name)))
        warehouse.write_table("fact_deals", pd.DataFrame({
            "deal_id": [f"D{i}" for i in range(len(created))], "created_date": created, "closed_date": closed,
            "as_of_date": as_of}))
        result = new_deals_reach_the_analysis_date(warehouse=warehouse, settings=SalesintelSettings())
        assert result.severity.value == "WARN" and result.passed == (name == "live")
        assert result.description.startswith("no deal was created in the ") == (name == "stopped")
        assert result.metadata["days_since"].value == (as_of - created.max()).days
