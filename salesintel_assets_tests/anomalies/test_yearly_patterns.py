"""A change that showed the same way at this time last year is a yearly
pattern (a stronger year-end push), not news; a new change still is."""

import pandas as pd
import pytest

from salesintel_assets.domain.anomalies import recurrence
from salesintel_assets_tests import scenarios as S
from salesintel_assets_tests.anomalies.test_seasonality import AUTO, _win_rate_findings
from salesintel_assets_tests.seasonal_study import QUARTER_PUSH, YEAR_END_PUSH, yearly_check_off


def _recurring(found: pd.DataFrame, past: pd.DataFrame):
    return recurrence.against_last_year(found, past)["recurring"]


def _finding(**overrides) -> dict:
    row = {"family": "win_rate", "metric": "win_rate", "window_days": 30, "segment": "all", "sign": -1.0,
           "size": 0.20, "p_value": 0.001, "anomaly_type": "win_rate_dip", "min_effect": 0.08}
    return row | overrides


@pytest.mark.parametrize("past, expected", [
    (_finding(p_value=0.01, size=0.13), True),              # the same way, clearly, as large but for 0.07
    (_finding(p_value=0.01, size=0.30), True),              # larger last year
    (_finding(p_value=0.01, size=0.12), False),             # this year adds a reportable change (0.08)
    (_finding(p_value=0.20, size=0.20), False),             # not clear on its own
    (_finding(p_value=0.01, sign=1.0), False),              # the other way
    (_finding(p_value=0.01, segment="region=EU"), False),   # another segment
    (_finding(p_value=0.01, window_days=7), False),         # another window
])
def test_a_finding_recurs_only_when_the_same_test_moved_the_same_way_clearly_last_year(past, expected):
    found = pd.DataFrame([_finding()])
    assert _recurring(found, pd.DataFrame([past])).tolist() == [expected]


def _ageing(size: float, p_value: float = 0.001) -> dict:
    return _finding(family="open_age", metric="open_deal_age_days", anomaly_type="open_age_increase", sign=1.0,
                    size=size, p_value=p_value, min_effect=0.15)


@pytest.mark.parametrize("last_year, expected", [
    (0.33, True),    # 49 % older than its baseline against 33 % a year ago: 12 % beyond the pattern (not 16 points)
    (0.25, False),   # 19 % beyond it: a reportable change on top of the yearly one
])
def test_an_ageing_pipeline_is_judged_by_its_ratio_to_last_years(last_year, expected):
    # stale deals pile up until a yearly clean-up: every autumn the open deals are older than in spring
    found = pd.DataFrame([_ageing(0.49)])
    assert _recurring(found, pd.DataFrame([_ageing(last_year, p_value=1e-6)])).tolist() == [expected]


def test_a_change_beyond_last_years_is_measured_against_the_size_last_year_had():
    found = pd.DataFrame([_finding(segment="lead_source=Inbound", size=0.30), _finding(segment="region=EU", size=0.30)])
    past = pd.DataFrame([_finding(segment="lead_source=Inbound", size=0.22, p_value=0.01, observed=0.11, expected=0.33),
                         _finding(segment="region=EU", size=0.22, p_value=0.01, observed=0.11, expected=0.33),
                         _finding(size=0.15, p_value=1e-6, observed=0.13, expected=0.28)])
    judged = recurrence.against_last_year(found, past)
    # the business moved less than either segment: each goes 0.15 beyond it, and the business's figures say so
    assert judged["recurring"].tolist() == [False, False] and judged["beyond"].round(3).tolist() == [0.15, 0.15]
    assert judged["business"].all() and judged[["observed", "expected"]].iloc[0].tolist() == [0.13, 0.28]
    # no yearly pattern where the business did not move that way: nothing to go beyond
    alone = recurrence.against_last_year(found, past.iloc[:2])
    assert alone["beyond"].isna().all() and not alone["business"].any()


@pytest.mark.parametrize("business_past, expected", [
    (0.25, True),    # the whole business moved as much a year ago: a yearly rhythm
    (0.16, False),   # the segment went 0.14 further than the business a year ago (noise, or its own rhythm)
])
def test_last_years_size_is_no_more_than_the_whole_business_moved(business_past, expected):
    found = pd.DataFrame([_finding(segment="lead_source=Inbound", size=0.30)])
    past = pd.DataFrame([_finding(segment="lead_source=Inbound", size=0.25, p_value=0.01),
                         _finding(size=business_past, p_value=1e-6)])
    assert _recurring(found, past).tolist() == [expected]


@pytest.mark.parametrize("business_past, expected", [
    (_finding(size=0.25, p_value=1e-6), True),              # every segment fell with the business a year ago
    (_finding(size=0.12, p_value=1e-6), False),             # this year adds a reportable change (0.09)
    (_finding(size=0.25, p_value=0.20), False),             # the business's move was not clear
    (_finding(size=0.25, p_value=1e-6, sign=1.0), False),   # it went the other way
])
def test_a_segment_untested_last_year_is_read_by_the_business_then(business_past, expected):
    # a yearly clean-up closing stale deals lost: a segment too small to test then still fell with it
    found = pd.DataFrame([_finding(segment="lead_source=Event", size=0.21)])
    past = pd.DataFrame([business_past, _finding(segment="lead_source=Web", size=0.30, p_value=1e-4)])
    assert _recurring(found, past).tolist() == [expected]


def test_each_window_is_replayed_when_its_baseline_a_year_back_fits_the_history():
    found = pd.DataFrame([_finding(window_days=7), _finding(window_days=30),
                          _finding(family="quality", metric="low_quality_share", window_days=7)])
    baseline_starts = {7: 1000, 30: 977}   # day numbers, a year back: the longer window's baseline starts earlier
    assert recurrence.replayable(found, 990, baseline_starts.__getitem__).tolist() == [True, False, False]
    assert recurrence.replayable(found, 970, baseline_starts.__getitem__).tolist() == [True, True, False]
    assert recurrence.replayable(found, 1001, baseline_starts.__getitem__).tolist() == [False, False, False]


def test_only_families_replayable_from_closed_deals_are_judged():
    # a quality drop (new deals' lead quality) is not in recurrence.FAMILIES: it is never replayed
    found = pd.DataFrame([_finding(family="quality", metric="low_quality_share")])
    assert _recurring(found, pd.DataFrame([_finding(family="quality", metric="low_quality_share")])).tolist() \
        == [False]
    shift = pd.DataFrame([_finding(family="metric_shift", metric="smi")])
    assert _recurring(shift, pd.DataFrame([_finding(family="metric_shift", metric="smi")])).tolist() == [True]
    assert _recurring(shift, pd.DataFrame()).tolist() == [False]


def test_a_metric_shift_that_showed_last_november_is_not_raised():
    world = S.generate(12_000, 1400, as_of="2026-11-30", history_days=900, quarter_push=QUARTER_PUSH,
                       year_end_push=YEAR_END_PUSH)
    as_of = pd.Timestamp("2026-11-15")
    with yearly_check_off():
        unchecked = S.segment_anomalies(world, as_of, AUTO)
    assert ("smi", "region=India") in set(zip(unchecked["metric"], unchecked["segment"]))
    found = S.segment_anomalies(world, as_of, AUTO)
    assert ("smi", "region=India") not in set(zip(found["metric"], found["segment"]))


def test_a_stronger_year_end_push_is_not_raised_every_november():
    world = S.generate(12_000, 1400, as_of="2026-11-30", history_days=900, quarter_push=QUARTER_PUSH,
                       year_end_push=YEAR_END_PUSH)
    found, notes = _win_rate_findings(world, AUTO, "2026-11-30")
    assert found.empty, found[["anomaly_type", "segment"]]
    said = [n for n in notes if n.startswith("not raised, the same change showed at this time last year")]
    assert said and "(as of 2025-12-01)" in said[0] and "win_rate_dip all" in said[0]


def test_a_real_dip_on_top_of_the_yearly_pattern_is_still_raised():
    world = S.generate(12_000, 1402, as_of="2026-11-30", history_days=900, quarter_push=QUARTER_PUSH,
                       year_end_push=YEAR_END_PUSH,
                       plants=(S.WinRatePlant({"lead_source": "Inbound"}, -0.25),))
    found, _ = _win_rate_findings(world, AUTO, "2026-11-30")
    assert "lead_source=Inbound" in set(found.loc[found["anomaly_type"] == "win_rate_dip", "segment"])
    # said and sized against last year's pattern: the business dipped then too, by less
    inbound = found[found["segment"].eq("lead_source=Inbound")].iloc[0]
    said = inbound["explanation"].split("At this time last year (as of 1 Dec 2025) the whole business moved the "
                                        "same way (")[1]
    then, expected = (float(x.split(" %")[0]) / 100 for x in said.split(" against ", 1))
    beyond = round(abs(inbound["observed"] - inbound["expected"]) - (expected - then), 2)
    assert f"this year's goes {100 * beyond:.0f} points beyond last year's" in said
    assert inbound["severity"] != "critical" and beyond < 0.25   # what it adds, not its whole 30 points
