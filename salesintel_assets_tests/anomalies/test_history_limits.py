"""Closed deals are compared only when their history can tell a change from
the season, never with a backlog recorded late, never with a clean-up day's
sweep; open deals' ages never across what a sweep took out."""

import io
from unittest import mock

import numpy as np
import pandas as pd

from salesintel_assets.domain.anomalies import detector, samples
from salesintel_assets.domain.anomalies.detector import detect_anomalies
from salesintel_assets.domain.anomalies.samples import NEVER, DealDays, day_number
from salesintel_assets_tests import outside_world, scenarios as S
from salesintel_assets_tests.seasonal_study import QUARTER_PUSH, rules_with
from salesintel_assets_tests.support import export_fact_deals

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


def _with_sweep(fact: pd.DataFrame, day: str, n: int, seed: int = 5) -> pd.DataFrame:
    """``n`` deals lost months ago left to linger instead, then closed lost in one sweep on ``day``."""
    day = pd.Timestamp(day)
    old_losses = np.flatnonzero((fact["outcome"].eq("Lost") & (fact["created_date"] < day - pd.Timedelta(days=180)))
                                .to_numpy())
    swept = np.random.default_rng(seed).choice(old_losses, n, replace=False)
    fact = fact.copy()
    fact.loc[swept, "closed_date"] = day
    fact.loc[swept, "sales_cycle_days"] = (day - fact.loc[swept, "created_date"]).dt.days.astype("float64")
    return fact


def test_a_clean_up_day_is_left_out_of_closed_comparisons_and_said():
    world = S.generate(8000, 31, as_of="2026-06-30", history_days=540)
    fact = _with_sweep(world.fact, "2026-06-15", 300)
    # read as closes, the sweep is a collapse of the win rate and a slower cycle for the whole business
    with mock.patch.object(samples.clean_ups, "clean_up_days", lambda closed, won: []):
        unguarded, _ = _closed_findings(fact, "2026-06-30")
    assert {"win_rate_dip", "cycle_slowdown"} <= set(unguarded.loc[unguarded["segment"] == "all", "anomaly_type"])
    found, notes = _closed_findings(fact, "2026-06-30")
    assert found.empty, found[["anomaly_type", "segment"]]
    on_day = fact["closed_date"].eq(pd.Timestamp("2026-06-15"))   # the sweep and the day's ordinary closes
    lost = (on_day & fact["outcome"].eq("Lost")).sum() / on_day.sum()
    assert f"comparisons of closed deals: 15 Jun 2026 ({on_day.sum()} closes, {lost:.0%} lost): " in "".join(notes)
    # stalled deals still learn from the sweep: lingering until swept out lost is what staleness leads to
    with mock.patch.object(detector, "stalled_deals", wraps=detector.stalled_deals) as stalled:
        detect_anomalies(fact, None, None, AUTO, pd.Timestamp("2026-06-30"))
    assert stalled.call_args.args[-1].usable_closed[on_day.to_numpy()].all()


def test_open_deals_are_not_getting_older_merely_since_the_last_clean_up():
    """A CRM in its second year that sweeps stale deals out every January:
    from one sweep to the next its open deals age, every year alike. Too
    young for the yearly check, it was told "open deals are getting older"
    (critical) at most month ends."""
    day = pd.Timestamp("2025-07-31")
    export, _ = outside_world.export_on(outside_world.generate(305), day)
    fact = export_fact_deals(io.StringIO(export.to_csv(index=False)), day)
    deals, _ = DealDays.from_fact(fact, day).without_clean_ups()
    (swept, stale), = deals.sweeps   # the world sweeps out deals at least 180 days old
    assert swept == day_number(pd.Timestamp("2025-01-15")) and 180 <= stale < 200
    # ages compared as far as any date would show them: the sawtooth reads as ageing
    with mock.patch.object(samples.DealDays, "_stale_age", lambda self, on: 10 ** 6):
        unguarded = detect_anomalies(fact, None, None, AUTO, day).anomalies
    assert unguarded.loc[unguarded["segment"] == "all", "anomaly_type"].eq("open_age_increase").any()
    report = detect_anomalies(fact, None, None, AUTO, day)
    assert not report.anomalies["anomaly_type"].eq("open_age_increase").any()
    said = f"days: the clean-up of 15 Jan 2025 closed deals from about {stale} days old"
    assert any(note.startswith("open deals' ages compared up to ") and said in note for note in report.notes)


def _deal_days(created, closed, won, as_of: int) -> DealDays:
    created, closed, won = (np.asarray(v) for v in (created, closed, won))
    shut = closed <= as_of
    return DealDays(as_of=as_of, created=created, closed=closed, won=won, amount=np.zeros(len(created)),
                    priced=np.zeros(len(created), dtype=bool), closed_by_as_of=shut, usable_closed=shut,
                    open_now=~shut)


def test_a_purge_of_one_batch_of_leads_does_not_limit_the_ages_compared():
    """A sweep that closed every deal past an age limits the open ages
    compared; a day that closed lost one batch of new leads, and left the
    older open deals open, is a clean-up day for closed deals but takes no
    age out of the pipeline."""
    day = 20_000   # the sweep's day number
    ordinary = np.arange(day - 120, day + 60)              # a close a day, half of them won
    lingering = np.arange(300) + day - 500                 # open deals 200-500 days old on the sweep's day
    batch = day - 3 - np.arange(100) % 8                   # leads created in the week before it

    def days(sweep_lingering: bool) -> DealDays:
        closed_lingering = np.full(300, day if sweep_lingering else NEVER)
        return _deal_days(np.concatenate([ordinary - 20, lingering, batch]),
                          np.concatenate([ordinary, closed_lingering, np.full(100, NEVER if sweep_lingering else day)]),
                          np.concatenate([np.arange(len(ordinary)) % 2 == 1, np.zeros(400, dtype=bool)]), day + 60)

    swept, notes = days(sweep_lingering=True).without_clean_ups()
    (on, stale), = swept.sweeps
    assert notes and on == day and 200 <= stale < 220
    purged, notes = days(sweep_lingering=False).without_clean_ups()
    assert notes and purged.sweeps == ()   # its closes are left out all the same
