"""A pipeline that stops closing is found by how many deals of an age are
still open, not mistaken for growth, and not compared across a clean-up or
before the history can show it."""

import io
from dataclasses import replace
from unittest import mock

import numpy as np
import pandas as pd
import pytest

from salesintel_assets.domain.anomalies import still_open
from salesintel_assets.domain.anomalies.detector import detect_anomalies
from salesintel_assets.domain.anomalies.samples import DealDays, SegmentCurves, day_number
from salesintel_assets.domain.anomalies.significance import SegmentCodes
from salesintel_assets.domain.common.rules import load_rules
from salesintel_assets_tests import outside_world
from salesintel_assets_tests.support import export_fact_deals

RULES = load_rules()
DAY = pd.Timestamp("2026-05-31")


def _fact(world: pd.DataFrame, day: pd.Timestamp = DAY) -> pd.DataFrame:
    export, _ = outside_world.export_on(world, day)
    return export_fact_deals(io.StringIO(export.to_csv(index=False)), day)


def _segment_findings(fact: pd.DataFrame, rules=RULES, day: pd.Timestamp = DAY):
    report = detect_anomalies(fact, None, None, rules, day)
    found = report.anomalies
    return found[found["dimension"] != "deal"], report


def _without_still_open(rules):
    ar = rules.anomalies
    off = ar.still_open.model_copy(update={"min_window_deals": 10 ** 9})
    return rules.model_copy(update={"anomalies": ar.model_copy(update={"still_open": off})})


def test_new_deals_that_stop_closing_are_found_where_closed_deals_show_nothing():
    """Half the deals created since mid-January never move: the deals that
    do close look as usual, so only the share still open shows it."""
    stalled = _fact(outside_world.generate(305, stall=(0.5, pd.Timestamp("2026-01-15"))))
    found, report = _segment_findings(stalled)
    business = found[found["segment"] == "all"]
    assert business["anomaly_type"].tolist() == ["still_open_increase"]
    row = business.iloc[0]
    assert row["metric"] == "still_open_share" and row["direction"] == "up"
    assert row["observed"] - row["expected"] > 0.15 and row["q_value"] < 0.001
    assert row["explanation"].startswith("Deals are not closing: of the ")
    assert "deals created between 31 Jan 2026 and 1 May 2026 (30-120 days old), " in row["explanation"]
    assert "of deals as old still open a year earlier, on 1 Jun 2025 (about " in row["explanation"]
    assert "would have closed (won or lost) by now at the usual pace." in row["explanation"]
    # the money is the part of the stuck deals' amount beyond the usual share still open
    window = fact_window(stalled)
    open_amount = float(stalled.loc[window & stalled["is_open"].astype(bool), "deal_amount"].sum())
    effect = row["observed"] - row["expected"]
    assert row["amount_at_stake"] == pytest.approx(open_amount * effect / row["observed"], rel=1e-6)
    # without this test nothing is said about the whole business
    blind, _ = _segment_findings(stalled, _without_still_open(RULES))
    assert not (blind["segment"] == "all").any(), blind[["anomaly_type", "segment"]]
    # and the same world without the stall raises nothing
    calm, _ = _segment_findings(_fact(outside_world.generate(305)))
    assert calm.empty, calm[["anomaly_type", "segment", "observed", "expected"]]


def fact_window(fact: pd.DataFrame) -> pd.Series:
    age = (DAY - fact["created_date"]).dt.days
    return (age >= 30) & (age <= 120)


def test_a_surge_of_new_deals_is_not_a_stall():
    """Deals created in the last two months are about six times as many as
    in the half year before (most of those thinned out; a year ago as usual):
    the deals 30-120 days old are younger than a year ago, so more of them
    are open. Weighted by creation volume, the baseline expects it."""
    world = outside_world.generate(308)
    thinned = ((world["created"] <= DAY - pd.Timedelta(days=60))
               & (world["created"] > DAY - pd.Timedelta(days=250))).to_numpy()
    fact = _fact(world[~thinned | (np.random.default_rng(308).random(len(world)) < 0.15)].reset_index(drop=True))

    def unweighted(deals, curves, rows, ages, days):
        return lambda dimset: np.ones(len(rows))

    with mock.patch.object(still_open, "creation_reweight", unweighted):
        blind, _ = _segment_findings(fact)
    assert "still_open_increase" in set(blind["anomaly_type"])
    found, report = _segment_findings(fact)
    assert "still_open_increase" not in set(found["anomaly_type"])
    business = report.tests[(report.tests["family"] == "still_open") & (report.tests["segment"] == "all")]
    assert len(business) == 1 and business["observed"].iloc[0] - business["expected"].iloc[0] < 0.08


def _comparison(fact: pd.DataFrame, day: pd.Timestamp, sweeps=()):
    deals = replace(DealDays.from_fact(fact, day), sweeps=sweeps)
    curves = SegmentCurves(deals, SegmentCodes(fact, list(RULES.anomalies.dimensions)))
    return still_open.still_open_comparison(deals, curves, RULES)


def test_a_history_too_short_for_the_ages_is_not_compared_and_says_so():
    day = pd.Timestamp("2024-06-30")   # six months after the world's first deal: 3 baseline dates hold the ages
    fact = _fact(outside_world.generate(305), day)
    comp, why = _comparison(fact, day)
    assert comp is None
    assert why.startswith("deals still open at 30-120 days old: not compared, the history holds ")
    _, report = _segment_findings(fact, day=day)
    assert why in report.notes
    # half a year later, the baseline dates before the window hold them
    later = pd.Timestamp("2024-12-31")
    comp, why = _comparison(_fact(outside_world.generate(305), later), later)
    assert comp is not None and why == "" and comp.ages == (30, 120)
    assert comp.baseline_words in ("on dates in the 180 days before", "on dates at the same point of earlier "
                                   "quarters before")
    # and from a year and 120 days on, the same day a year earlier does
    later = pd.Timestamp("2025-05-31")
    fact = _fact(outside_world.generate(305), later)
    comp, _ = _comparison(fact, later)
    assert comp.baseline_words == "a year earlier, on 1 Jun 2024"
    ages = (pd.Timestamp("2024-06-01") - fact["created_date"].iloc[comp.baseline.rows]).dt.days
    assert ages.between(30, 120).all() and len(ages) == (pd.Timestamp("2024-06-01") - fact["created_date"]).dt.days \
        .between(30, 120).sum()


def test_ages_a_clean_up_closed_on_some_compared_dates_are_left_out():
    fact = _fact(outside_world.generate(305))
    swept_on = day_number(DAY) - 100   # after the baseline date (a year earlier), which lacks no age
    comp, why = _comparison(fact, DAY, sweeps=((swept_on, 95),))
    assert comp.ages == (30, 95)   # on the dates after it, ages from 95 days are missing
    assert why == "deals still open compared at 30-95 days old: the clean-up of 20 Feb 2026 closed deals from " \
                  "about 95 days old"
    ages = DAY - fact["created_date"].iloc[comp.window.rows]
    assert ages.dt.days.max() == 95
    comp, why = _comparison(fact, DAY, sweeps=((swept_on, 50),))
    assert comp is None
    assert why.endswith("not compared, the clean-up of 20 Feb 2026 closed deals from about 50 days old")
    # a sweep of stale deals (180 days and older, as CRMs do) leaves these ages alone
    comp, why = _comparison(fact, DAY, sweeps=((swept_on, 187),))
    assert comp.ages == (30, 120) and why == ""
