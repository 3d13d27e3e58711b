"""The anomalies domain: its statistics, windows, hierarchy, root cause,
stalled deals, output contract and rules; and honesty on the shared export."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from salesintel_assets.domain.anomalies import detector as A
from salesintel_assets.domain.anomalies.explanations import segment_explanation
from salesintel_assets.domain.metrics import deal_metrics as metrics
from salesintel_assets.domain.common import stats
from salesintel_assets.domain.anomalies.samples import (
    CreationCurve, DealDays, SegmentCurves, closed_window, day_number, entry_quality,
)
from salesintel_assets.domain.anomalies.significance import SegmentCodes, segment_label
from salesintel_assets.domain.anomalies.root_cause import drill_down
from salesintel_assets.domain.common.rules import RulesError, load_rules
from salesintel_assets.domain.anomalies.stalled_deals import stalled_deals
from salesintel_assets_tests.support import export_fact_deals
from salesintel_assets.schemas.anomalies import Anomalies
from salesintel_assets_tests import scenarios as S

RULES = load_rules()
AS_OF = pd.Timestamp("2026-06-30")


def rules_with(**sections):
    """The packaged rules with some anomalies settings replaced
    (``cycle={"min_effect": 0.5}`` updates one field of a sub-section)."""
    ar = RULES.anomalies
    update = {}
    for key, value in sections.items():
        current = getattr(ar, key)
        update[key] = current.model_copy(update=value) if isinstance(value, dict) else value
    return RULES.model_copy(update={"anomalies": ar.model_copy(update=update)})


def detect(world, rules=RULES, with_metrics=True, transitions=None):
    dm = metrics.deal_metrics(world.fact, rules, world.as_of) if with_metrics else None
    return A.detect_anomalies(world.fact, dm, transitions, rules, world.as_of)


def segment_rows(report):
    table = report.anomalies
    return table[table["dimension"] != "deal"]


@pytest.fixture(scope="module")
def dip_world():
    return S.generate(24_000, 11, plants=(S.WinRatePlant({"lead_source": "Partner"}, -0.2),))


@pytest.fixture(scope="module")
def dip_report(dip_world):
    return detect(dip_world)


# --- statistics ---------------------------------------------------------------
def _beta_binomial_reference(k, n, bk, bn, alternative):
    """One scipy distribution per element: the definition the test must match."""
    out = []
    for ki, ni, a, b in zip(k, n, bk + 0.5, bn - bk + 0.5):
        dist = scipy_stats.betabinom(int(ni), a, b)
        lower, upper = dist.cdf(ki), dist.sf(ki - 1)
        out.append({"less": lower, "greater": upper}.get(alternative, min(1.0, 2 * min(lower, upper))))
    return np.array(out)


def test_vectorised_beta_binomial_matches_the_loop():
    k, n = np.array([3, 10, 0, 20, 7]), np.array([20, 20, 5, 25, 30])
    bk, bn = np.array([50, 40, 3, 100, 12]), np.array([100, 100, 10, 300, 40])
    for alternative in ("two-sided", "less", "greater"):
        np.testing.assert_allclose(stats.beta_binomial_test(k, n, bk, bn, alternative),
                                   _beta_binomial_reference(k, n, bk, bn, alternative), rtol=1e-9)
    assert np.isnan(stats.beta_binomial_pvalues([1], [0], [1.0], [1.0]))[0]


def test_segment_labels_sort_their_keys():
    assert segment_label({}) == "all"
    assert segment_label({"region": "Europe", "industry": "EdTech"}) == "industry=EdTech&region=Europe"
    assert segment_label({"industry": "Health & Life"}) == "industry=Health %26 Life"


def test_anomaly_ids_are_stable_per_day():
    first = A.anomaly_id("win_rate_dip", "win_rate", "industry=EdTech", 30, AS_OF)
    assert first == A.anomaly_id("win_rate_dip", "win_rate", "industry=EdTech", 30, AS_OF)
    assert first != A.anomaly_id("win_rate_dip", "win_rate", "industry=EdTech", 7, AS_OF)
    assert first != A.anomaly_id("win_rate_dip", "win_rate", "industry=EdTech", 30, AS_OF + pd.Timedelta(days=1))
    assert len(first) == 16


# --- windows and the exposure-weighted baseline ------------------------------------
def test_creation_curve_counts_deals_created_per_interval():
    created = np.array([10, 10, 11, 15, 30])
    curve = CreationCurve(created, as_of=20)  # the deal created on day 30 is in the future
    assert curve.count(10, 11) == 3 and curve.count(0, 9) == 0 and curve.count(12, 20) == 1
    np.testing.assert_allclose(curve.count(np.array([10, 15]), np.array([10, 40])), [2, 1])


def test_baseline_weights_scale_the_baseline_to_the_window():
    world = S.generate(6000, 3, growth=0.0)
    deals = DealDays.from_fact(world.fact, world.as_of)
    codes = SegmentCodes(world.fact, A.SEGMENT_COLUMNS)
    cw = closed_window(deals, SegmentCurves(deals, codes), RULES, 30)
    # Steady volume: the weighted baseline predicts about as many closes as the window had.
    assert cw.base_weight.sum() == pytest.approx(len(cw.rows), rel=0.12)
    assert cw.window_days == 30 and cw.end == day_number(world.as_of) and cw.end - cw.start == 29
    np.testing.assert_allclose(cw.weights(()), cw.base_weight)
    # Per segment, each segment's own volume: the weights still add up to its window.
    by_source = cw.weights(("lead_source",))
    for source in S.SOURCES:
        mine = world.fact["lead_source"].to_numpy()
        assert by_source[mine[cw.base_rows] == source].sum() == pytest.approx(
            (mine[cw.rows] == source).sum(), rel=0.25)


def test_a_burst_in_one_segment_moves_only_its_own_expectations():
    """Three times the Partner leads in the last three weeks: the business-wide
    creation curve jumps, yet the other lead sources' open deals are not
    'older than expected' (their own curves did not move)."""
    world = S.generate(24_000, 6)
    fact = world.fact
    extra = fact[(fact["lead_source"] == "Partner") & (fact["created_date"] > AS_OF - pd.Timedelta(days=21))]
    burst = pd.concat([extra.assign(deal_id=extra["deal_id"] + f"x{i}") for i in range(2)], ignore_index=True)
    report = A.detect_anomalies(pd.concat([fact, burst], ignore_index=True), None, None, RULES, AS_OF)
    ages = report.tests[report.tests["family"] == "open_age"].set_index("segment")
    for source in ("Inbound", "Outbound", "Referral"):
        assert ages.loc[f"lead_source={source}", "p_value"] > 0.01


def test_an_export_that_stops_listing_new_deals_is_not_a_slowdown():
    """Like the shared export: no deals created in the last four months, so
    the recent closes are only the long deals. Raw medians double; the
    exposure-weighted baseline knows why and nothing is reported."""
    world = S.generate(24_000, 5)
    cut = world.as_of - pd.Timedelta(days=120)
    fact = world.fact[world.fact["created_date"] <= cut].reset_index(drop=True)
    fact = fact[fact["closed_date"].notna() | fact["is_open"]]
    recent = fact[fact["closed_date"] > world.as_of - pd.Timedelta(days=30)]["sales_cycle_days"].median()
    before = fact[fact["closed_date"].between(cut - pd.Timedelta(days=180), cut)]["sales_cycle_days"].median()
    assert recent > 2 * before  # what a naive comparison would alarm on
    report = A.detect_anomalies(fact, None, None, RULES, world.as_of)
    assert segment_rows(report).empty
    cycle = report.tests[(report.tests["family"] == "cycle") & (report.tests["segment"] == "all")]
    assert len(cycle) == 1 and cycle["expected"].iloc[0] > 1.5 * before


def test_future_closes_are_not_used(dip_world):
    as_of = dip_world.as_of - pd.Timedelta(days=20)
    fact = dip_world.fact[dip_world.fact["created_date"] <= as_of].reset_index(drop=True)
    flipped = fact.copy()
    later = flipped["closed_date"] > as_of
    flipped.loc[later, "outcome"] = np.where(flipped.loc[later, "outcome"] == "Won", "Lost", "Won")
    flipped["is_won"] = flipped["outcome"] == "Won"
    first = A.detect_anomalies(fact, None, None, RULES, as_of)
    second = A.detect_anomalies(flipped, None, None, RULES, as_of)
    pd.testing.assert_frame_equal(first.tests, second.tests)
    pd.testing.assert_frame_equal(first.anomalies, second.anomalies)


# --- what is reported -------------------------------------------------------------
def test_a_planted_dip_is_reported_with_its_evidence(dip_world, dip_report):
    rows = segment_rows(dip_report)
    dip = rows[(rows["segment"] == "lead_source=Partner") & (rows["anomaly_type"] == "win_rate_dip")]
    assert len(dip) == 1
    row = dip.iloc[0]
    fact = dip_world.fact
    start = AS_OF - pd.Timedelta(days=int(row["window_days"]) - 1)
    closed = fact[(fact["lead_source"] == "Partner") & fact["closed_date"].between(start, AS_OF)]
    assert row["window_start"] == start and row["window_end"] == AS_OF and row["as_of_date"] == AS_OF
    assert row["n"] == len(closed) and row["observed"] == pytest.approx(closed["is_won"].mean())
    assert row["expected"] > row["observed"] + RULES.anomalies.win_rate.min_effect
    assert row["effect"] == pytest.approx(row["observed"] - row["expected"])
    assert row["p_value"] <= row["q_value"] <= RULES.anomalies.fdr_alpha
    assert row["direction"] == "down" and row["dimension"] == "lead_source" and row["metric"] == "win_rate"
    open_partner = fact[fact["is_open"] & (fact["lead_source"] == "Partner")]["deal_amount"].sum()
    assert row["amount_at_stake"] == pytest.approx(open_partner * abs(row["effect"]))
    assert "Partner" in row["explanation"] and f"{int(row['n'])} deals" in row["explanation"]
    assert row["root_cause"].startswith("Mostly ")
    # Nothing else: the regions, industries and reps that share Partner's deals are explained by it.
    assert set(rows["segment"]) == {"lead_source=Partner"}



@pytest.mark.parametrize("priced_share", [0.0, 0.5])
def test_a_segment_whose_open_deals_have_no_amount_never_reads_as_zero_dollars(dip_world, priced_share):
    """Many CRMs record no amount until a price is agreed: the explanation says the money is not known (or
    how many open deals the amount is on), never "$0 of open pipeline"."""
    fact = dip_world.fact.copy()
    open_partner = np.flatnonzero(fact["is_open"] & fact["lead_source"].eq("Partner"))
    unpriced = open_partner[int(priced_share * len(open_partner)):]
    fact.loc[fact.index[unpriced], "deal_amount"] = np.nan
    report = A.detect_anomalies(fact, None, None, RULES, dip_world.as_of)
    rows = segment_rows(report)
    row = rows[(rows["segment"] == "lead_source=Partner") & (rows["anomaly_type"] == "win_rate_dip")].iloc[0]
    text = row["explanation"]
    assert "$0" not in text
    if priced_share == 0:
        assert (f"None of the {len(open_partner):,} open deals in this segment has an amount, so how much less "
                "would close is not known.") in text
        assert row["amount_at_stake"] == 0
    else:
        priced = len(open_partner) - len(unpriced)
        assert (f"of open pipeline is in this segment (on the {priced:,} of its {len(open_partner):,} open deals "
                "with an amount); at the lower rate about") in text

def test_bh_runs_over_every_test_of_the_run(dip_report):
    tests = dip_report.tests
    assert set(tests["family"]) == {"win_rate", "cycle", "open_age", "still_open", "quality", "metric_shift"}
    np.testing.assert_allclose(tests["q_value"], stats.benjamini_hochberg(tests["p_value"]))
    assert (segment_rows(dip_report)["explanation"].str.contains(f"all {len(tests)} segment tests")).all()


def test_segments_below_the_minimum_sample_are_not_tested(dip_report):
    tests = dip_report.tests
    mins = {f: getattr(RULES.anomalies, f).min_window_deals for f in tests["family"].unique()}
    assert (tests["n"] >= tests["family"].map(mins)).all()
    # Most reps close too few deals in 7 days: not enough data, no test.
    reps_7d = tests[(tests["dimension"] == "sales_rep_id") & (tests["window_days"] == 7)]
    reps_30d = tests[(tests["dimension"] == "sales_rep_id") & (tests["window_days"] == 30)]
    assert len(reps_7d) < len(reps_30d)


def test_a_significant_but_small_change_is_not_reported():
    world = S.generate(48_000, 4, plants=(S.WinRatePlant({}, -0.05),))
    report = detect(world, with_metrics=False)
    everything = report.tests[(report.tests["segment"] == "all") & (report.tests["family"] == "win_rate")
                              & (report.tests["window_days"] == 30)].iloc[0]
    assert everything["q_value"] < 0.01 and abs(everything["effect"]) < RULES.anomalies.win_rate.min_effect
    assert "all" not in set(segment_rows(report)["segment"])
    smaller = detect(world, rules_with(win_rate={"min_effect": 0.03}), with_metrics=False)
    assert "all" in set(segment_rows(smaller)["segment"])


def test_a_pair_change_is_reported_on_the_pair_only():
    world = S.generate(24_000, 11, plants=(S.WinRatePlant({"industry": "EdTech", "region": "Europe"}, 0.35),))
    rows = segment_rows(detect(world))
    rates = rows[rows["metric"] == "win_rate"]
    assert list(rates["segment"]) == ["industry=EdTech&region=Europe"]
    assert rates["anomaly_type"].iloc[0] == "win_rate_spike" and rates["direction"].iloc[0] == "up"


def test_a_single_change_is_reported_on_the_single_not_its_pairs():
    world = S.generate(24_000, 11, plants=(S.WinRatePlant({"industry": "EdTech"}, -0.2),))
    rows = segment_rows(detect(world))
    assert list(rows.loc[rows["metric"] == "win_rate", "segment"]) == ["industry=EdTech"]


@pytest.mark.parametrize("seed", [1, 2])
def test_a_business_wide_change_is_reported_once_not_echoed_by_segments(seed):
    # every segment fell with the business: tested one by one against the rest, a few of dozens pass by chance
    world = S.generate(24_000, seed, plants=(S.WinRatePlant({}, -0.2),))
    rows = segment_rows(detect(world, with_metrics=False))
    assert list(rows.loc[rows["metric"] == "win_rate", "segment"]) == ["all"]


def test_a_segment_that_fell_beyond_a_business_wide_change_is_reported_too():
    world = S.generate(24_000, 1, plants=(S.WinRatePlant({}, -0.15), S.WinRatePlant({"industry": "EdTech"}, -0.33)))
    rows = segment_rows(detect(world, with_metrics=False))
    assert sorted(rows.loc[rows["metric"] == "win_rate", "segment"]) == ["all", "industry=EdTech"]


def test_a_dip_that_has_lasted_a_quarter_in_a_small_segment_is_found_in_the_90_day_window():
    # about 30 of the industry's deals close a month: too few to show the dip in 30 days
    world = S.generate(3_000, 1, plants=(S.WinRatePlant({"industry": "EdTech"}, -0.2, window_days=90),))
    report = detect(world, with_metrics=False)
    rows = segment_rows(report)
    assert list(zip(rows["anomaly_type"], rows["segment"], rows["window_days"])) == [
        ("win_rate_dip", "industry=EdTech", 90)]
    tests = report.tests[report.tests["family"] == "win_rate"]
    month = tests[(tests["segment"] == "industry=EdTech") & (tests["window_days"] == 30)].iloc[0]
    assert month["n"] < 40 and month["q_value"] > RULES.anomalies.fdr_alpha
    # pairs and reps are tested in 7 and 30 days only: dozens of small segments would spend the budget
    small = (tests["dims"].map(len) == 2) | (tests["dimension"] == "sales_rep_id")
    assert (small & (tests["window_days"] == 30)).any() and not (small & (tests["window_days"] == 90)).any()
    assert (~small & (tests["window_days"] == 90)).sum() > 5
    without = segment_rows(detect(world, rules_with(windows_days=[7, 30]), with_metrics=False))
    assert "industry=EdTech" not in set(without["segment"])


def test_a_slower_industry_is_a_cycle_slowdown():
    world = S.generate(24_000, 12, plants=(S.CyclePlant({"industry": "SaaS"}, 1.75),))
    rows = segment_rows(detect(world))
    slow = rows[rows["segment"] == "industry=SaaS"]
    assert {"cycle_slowdown", "open_age_increase"} & set(slow["anomaly_type"])
    assert (slow["observed"] > slow["expected"] * (1 + RULES.anomalies.cycle.min_effect)).all()
    assert (rows["segment"].map(lambda s: "SaaS" in s or s == "all")).all()


# --- root cause ---------------------------------------------------------------------
def test_root_cause_adds_up_and_points_at_the_source(dip_world):
    deals = DealDays.from_fact(dip_world.fact, AS_OF)
    codes = SegmentCodes(dip_world.fact, A.SEGMENT_COLUMNS)
    comps, _ = A.build_comparisons(dip_world.fact, None, RULES, deals, codes)
    comp = next(c for c in comps if c.anomaly_family == "win_rate" and c.window_days == 30)
    cause = drill_down(comp, codes, {}, RULES.anomalies.dimensions)
    assert cause.dimension == "lead_source" and cause.top[0].label == "Partner"
    assert cause.rate + cause.mix == pytest.approx(cause.change)
    assert abs(cause.top[0].rate) > abs(cause.top[0].mix)


def test_a_pure_mix_shift_shows_as_mix():
    # Two sources with fixed win rates (20 % and 60 %); the window has more of the weak one.
    def deals(source, n, won):
        return [{"lead_source": source, "won": i < won} for i in range(n)]
    base = deals("Weak", 100, 20) + deals("Strong", 100, 60)
    recent = deals("Weak", 150, 30) + deals("Strong", 50, 30)
    frame = pd.DataFrame(base + recent).assign(industry="X", region="Y", product_type="Z", sales_rep_id="r")
    codes = SegmentCodes(frame, A.SEGMENT_COLUMNS)
    from salesintel_assets.domain.anomalies.significance import Comparison, Sample
    won = frame["won"].to_numpy(dtype="float64")
    comp = Comparison("win_rate", "win_rate", "rate", "two-sided", 30, AS_OF, AS_OF,
                      window=Sample(np.arange(200, 400), won[200:]), baseline=Sample(np.arange(200), won[:200]),
                      min_window_deals=1, min_baseline_deals=1, min_effect=0.01, dimsets=[()])
    cause = drill_down(comp, codes, {}, ["lead_source"])
    assert cause.change == pytest.approx(0.30 - 0.40)
    assert cause.rate == pytest.approx(0.0) and cause.mix == pytest.approx(-0.10)


# --- quality ------------------------------------------------------------------------
def test_entry_quality_leaves_progression_out():
    world = S.generate(3000, 2)
    dm = metrics.deal_metrics(world.fact, RULES, world.as_of)
    deals = DealDays.from_fact(world.fact, world.as_of)
    shuffled = dm.assign(progression_score=np.random.default_rng(0).random(len(dm)))
    first, known, how = entry_quality(world.fact, dm, RULES, deals)
    second, _, _ = entry_quality(world.fact, shuffled, RULES, deals)
    np.testing.assert_array_equal(first, second)
    assert known.all() and "progression left out" in how
    weak, _, fallback = entry_quality(world.fact, None, RULES, deals)
    assert "no deal metrics" in fallback and set(np.unique(weak)) <= {0.0, 1.0}


def test_a_burst_of_weak_leads_is_a_quality_drop():
    world = S.generate(12_000, 8)
    fact = world.fact
    rng = np.random.default_rng(1)
    recent_partner = fact[(fact["lead_source"] == "Partner")
                          & (fact["created_date"] < AS_OF - pd.Timedelta(days=60))].sample(400, random_state=1)
    burst = recent_partner.assign(
        deal_id=[f"B{i:05d}" for i in range(400)], is_open=True, is_won=False, outcome="Open",
        created_date=AS_OF - pd.to_timedelta(rng.integers(0, 21, 400), unit="D"),
        closed_date=pd.NaT, sales_cycle_days=np.nan, deal_stage="Qualified", stage_number=1,
        sales_rep_id=rng.choice(["rep_3", "rep_7"], 400))
    burst["age_days"] = (AS_OF - burst["created_date"]).dt.days.astype(float)
    bursty = S.World(pd.concat([fact, burst], ignore_index=True), AS_OF)
    rows = segment_rows(detect(bursty))
    drops = rows[rows["anomaly_type"] == "quality_drop"]
    assert len(drops) >= 1 and (drops["direction"] == "down").all()
    assert drops["root_cause"].str.contains("Partner|rep_3|rep_7").any()


# --- stalled deals ------------------------------------------------------------------
def _fact(rows: list[dict]) -> pd.DataFrame:
    out = pd.DataFrame(rows)
    defaults = {"sales_rep_id": "rep_1", "industry": "SaaS", "region": "Europe", "product_type": "Pro",
                "lead_source": "Inbound", "deal_amount": 10_000.0, "needs_review": False,
                "stage_entered_date": pd.NaT, "days_in_stage": np.nan, "closed_date": pd.NaT}
    for col, value in defaults.items():
        if col not in out:
            out[col] = value
    out["created_date"] = pd.to_datetime(out["created_date"])
    out["closed_date"] = pd.to_datetime(out["closed_date"])
    out["is_open"] = out["outcome"] == "Open"
    out["is_won"] = out["outcome"] == "Won"
    return out


@pytest.fixture
def stall_history():
    """40 won deals spent 1..40 days in Demo (90th percentile: 36); 30 lost
    ones 30..59 days; open deals in Demo for 50, 10 and 45 days."""
    rows, transitions = [], []
    for i in range(70):
        won, days = (True, i + 1) if i < 40 else (False, i - 10)
        rows.append({"deal_id": f"C{i:03d}", "created_date": "2025-06-01", "closed_date": "2025-12-01",
                     "outcome": "Won" if won else "Lost", "deal_stage": "Closed" if won else "Demo"})
        transitions.append({"deal_id": f"C{i:03d}", "stage": "Demo", "days_in_stage": float(days),
                            "exited_date": pd.Timestamp("2025-11-01")})
    for deal, days, amount in (("OPEN1", 50, 90_000.0), ("OPEN2", 10, 95_000.0), ("OPEN3", 45, 20_000.0)):
        rows.append({"deal_id": deal, "created_date": "2026-04-01", "outcome": "Open", "deal_stage": "Demo",
                     "days_in_stage": float(days), "deal_amount": amount,
                     "stage_entered_date": AS_OF - pd.Timedelta(days=days)})
        transitions.append({"deal_id": deal, "stage": "Demo", "days_in_stage": float(days), "exited_date": pd.NaT})
    return _fact(rows), pd.DataFrame(transitions)


def test_deals_past_the_won_deals_stage_percentile_are_stalled(stall_history):
    fact, transitions = stall_history
    result = stalled_deals(fact, None, transitions, RULES, DealDays.from_fact(fact, AS_OF))
    deals = result.deals
    assert list(deals["deal_id"]) == ["OPEN1", "OPEN3"]  # no money known: stalest first; OPEN2 is not stalled
    assert (deals["limit"] == 36).all() and (deals["rule"] == "stage").all()
    # Deals that stayed in Demo 50+ days: 10 lost ones and OPEN1 itself (still open): below the minimum.
    first = deals.iloc[0]
    assert first["history_n"] == 11 and first["history_open"] == 1 and np.isnan(first["historical_win_rate"])


def test_stalled_deals_are_capped_and_become_rows(stall_history):
    fact, transitions = stall_history
    rules = rules_with(stalled={"max_deals": 1})
    report = A.detect_anomalies(fact, None, transitions, rules, AS_OF)
    stalled = report.anomalies[report.anomalies["anomaly_type"] == "stalled_deal"]
    assert list(stalled["deal_id"]) == ["OPEN1"] and report.stalled_flagged == 2
    row = stalled.iloc[0]
    assert row["segment"] == "deal_id=OPEN1" and row["dimension"] == "deal" and row["metric"] == "stage_duration"
    # Too few deals lasted 37+ days in Demo for any win chance: money at stake not known, said so.
    assert row["amount_at_stake"] == 0 and row["observed"] == 50 and row["expected"] == 36
    assert "Money at stake not known (not enough data)" in row["explanation"]
    assert pd.isna(row["window_days"]) and pd.isna(row["q_value"]) and row["sales_rep_id"] == "rep_1"
    assert "in Demo for 50 days" in row["explanation"]
    assert any("with the highest priority" in note for note in report.notes)


def test_without_stage_history_age_and_smi_decide(stall_history):
    fact, _ = stall_history
    smi = pd.DataFrame({"deal_id": fact["deal_id"], "smi": np.where(fact["deal_id"] == "OPEN2", 0.01, np.nan)})
    result = stalled_deals(fact, smi, None, RULES, DealDays.from_fact(fact, AS_OF))
    assert any("judged by their age" in note for note in result.notes)
    by_deal = result.deals.set_index("deal_id")
    assert by_deal.loc["OPEN2", "rule"] == "smi"
    won_cycles = (fact["closed_date"] - fact["created_date"]).dt.days[fact["is_won"]]
    age = (AS_OF - pd.Timestamp("2026-04-01")).days
    assert (age > np.quantile(won_cycles, 0.9)) == ("OPEN1" in by_deal.index)
    # judged by age, the figure is the deal's age: never called days in stage
    older = fact.assign(created_date=fact["created_date"].where(fact["deal_id"] != "OPEN1", pd.Timestamp("2025-01-01")))
    rows = A.detect_anomalies(older, smi, None, RULES, AS_OF).anomalies.query("anomaly_type == 'stalled_deal'")
    assert dict(zip(rows["deal_id"], rows["metric"])) == {"OPEN1": "open_deal_age_days", "OPEN2": "smi"}


def test_deals_closed_after_the_analysis_date_are_not_judged(stall_history):
    fact, transitions = stall_history
    later = fact.copy()
    later.loc[later["deal_id"] == "OPEN1", ["outcome", "closed_date"]] = ["Lost", AS_OF + pd.Timedelta(days=5)]
    later["is_open"] = later["outcome"] == "Open"
    result = stalled_deals(later, None, transitions, RULES, DealDays.from_fact(later, AS_OF))
    assert "OPEN1" not in set(result.deals["deal_id"])
    assert any("closed later" in note for note in result.notes)


# --- the output contract -----------------------------------------------------------
def test_the_table_meets_its_contract(dip_report, stall_history):
    Anomalies.validate(dip_report.anomalies)
    assert list(dip_report.anomalies.columns) == list(A.ANOMALY_COLUMNS)
    fact, transitions = stall_history
    Anomalies.validate(A.detect_anomalies(fact, None, transitions, RULES, AS_OF).anomalies)
    empty = A.empty_anomalies()
    assert list(empty.columns) == list(A.ANOMALY_COLUMNS) and empty.empty


@pytest.mark.parametrize("column, value", [("anomaly_type", "weird"), ("metric", "mood"), ("severity", "urgent"),
                                           ("window_end", pd.Timestamp("2020-01-01")), ("q_value", 1.5)])
def test_the_schema_rejects_broken_rows(dip_report, column, value):
    import pandera.pandas as pa

    broken = dip_report.anomalies.copy()
    broken.loc[broken.index[0], column] = value
    with pytest.raises(pa.errors.SchemaError):
        Anomalies.validate(broken)


def test_the_schema_wants_a_deal_on_every_stalled_row(stall_history):
    import pandera.pandas as pa

    fact, transitions = stall_history
    table = A.detect_anomalies(fact, None, transitions, RULES, AS_OF).anomalies
    table.loc[table.index[0], "deal_id"] = None
    with pytest.raises(pa.errors.SchemaError):
        Anomalies.validate(table)


def test_a_rerun_gives_the_same_table(dip_world, dip_report):
    pd.testing.assert_frame_equal(detect(dip_world).anomalies, dip_report.anomalies)


def test_summary_shows_what_was_tested(dip_report):
    summary = A.report_summary(dip_report)
    assert summary["segment_tests"] == len(dip_report.tests) and "|" in summary["closest_tests"]
    assert summary["by_type"].get("win_rate_dip") == 1


# --- rules ---------------------------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    ({"pairs": [["industry", "colour"]]}, "pair"),
    ({"windows_days": [7, 7]}, "distinct"),
    ({"baseline_days": 40}, "twice the longest window"),
    ({"cycle": {"windows_days": [14]}}, "subset"),
    ({"win_rate": {"pairs_and_reps_windows_days": [14]}}, "pairs_and_reps_windows_days must be a subset"),
    ({"cycle": {"pairs_and_reps_windows_days": [7]}}, "pairs_and_reps_windows_days must be a subset"),
    ({"stalled": {"critical": {"won_percentile": 0.9, "overdue_ratio": 2.0}}}, "at least as strict as high"),
    ({"win_rate": {"min_effect": 0.7}}, "less than 0.5"),
    ({"still_open": {"ages_days": [120, 30]}}, "still_open.ages_days must be two ages"),
    ({"surprise": 1}, "Extra inputs"),
])
def test_bad_anomaly_rules_are_rejected(tmp_path, change, message):
    import yaml

    from salesintel_assets.domain.common.rules import default_rules_path

    raw = yaml.safe_load(default_rules_path().read_text())
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(raw["anomalies"].get(key), dict):
            raw["anomalies"][key].update(value)
        else:
            raw["anomalies"][key] = value
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(RulesError, match=message):
        load_rules(path)


# --- the shared export: nothing its sample sizes do not support -------------------
@pytest.mark.parametrize("as_of", ["2024-07-20", "2024-03-31"])
def test_the_shared_export_reports_nothing_unsupported(skygeni_csv, as_of):
    fact = export_fact_deals(skygeni_csv, as_of)
    as_of = pd.Timestamp(as_of)
    report = A.detect_anomalies(fact, metrics.deal_metrics(fact, RULES, as_of), None, RULES, as_of)
    assert report.anomalies.empty, report.anomalies[["anomaly_type", "segment", "q_value"]]
    tests = report.tests
    assert len(tests) and not tests["significant"].any()
    mins = {f: getattr(RULES.anomalies, f) for f in tests["family"].unique()}
    assert (tests["n"] >= tests["family"].map(lambda f: mins[f].min_window_deals)).all()
    assert (tests["baseline_n"] >= tests["family"].map(lambda f: mins[f].min_baseline_deals)).all()
    if as_of == pd.Timestamp("2024-07-20"):
        # The export ends: recent closes are the long deals only. The raw median
        # is far above the baseline's, the weighted expectation is not fooled.
        closed = fact[fact["closed_date"] <= as_of]
        recent = closed[closed["closed_date"] > as_of - pd.Timedelta(days=30)]["sales_cycle_days"].median()
        assert recent > 1.5 * closed["sales_cycle_days"].median()
        assert any("no open deals" in note for note in report.notes)
        assert any("stopped listing new deals" in note for note in report.notes)
    else:
        assert any("closed later" in note for note in report.notes)


def test_segment_keys_round_trip_values_with_separators():
    from salesintel_assets.domain.alerts.candidates import parse_segment
    from salesintel_assets.domain.anomalies.significance import segment_label

    keys = {"region": "Europe", "industry": "M&A 100%"}
    label = segment_label(keys)
    assert label == "industry=M%26A 100%25&region=Europe"
    assert parse_segment(label) == keys
    assert segment_label({}) == "all" and parse_segment("all") == {}


def test_metrics_read_in_the_facts_order_are_what_aligning_them_gives():
    """The asset skips re-reading deal_metrics' deal ids when its rows are the
    fact's in order; otherwise (another order, a deal missing) it falls back."""
    import duckdb

    from salesintel_assets.domain.anomalies.samples import align_metrics, metrics_in_fact_order

    fact = pd.DataFrame({"deal_id": [f"D{i}" for i in range(6)]})
    dm = pd.DataFrame({"deal_id": fact["deal_id"], "pvs": [1.0, np.nan, 3.0, 4.0, 5.0, 6.0],
                       "dqs": np.linspace(0, 1, 6), "other": 0})
    columns = ("deal_id", "pvs", "smi", "dqs")   # smi absent from the table: left out, as read_table does
    con = duckdb.connect()
    con.execute("CREATE TABLE fact AS SELECT * FROM fact")
    for name, frame in {"same": dm, "shuffled": dm.iloc[::-1], "missing": dm.iloc[1:]}.items():
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
    fast = metrics_in_fact_order(con, "fact", "same", columns, fact["deal_id"].to_numpy())
    read = con.sql("SELECT deal_id, pvs, dqs FROM same").df()
    pd.testing.assert_frame_equal(align_metrics(fact, fast), align_metrics(fact, read), check_exact=True)
    assert metrics_in_fact_order(con, "fact", "shuffled", columns, fact["deal_id"].to_numpy()) is None
    assert metrics_in_fact_order(con, "fact", "missing", columns, fact["deal_id"].to_numpy()) is None


def test_a_metric_shift_says_how_consistent_it_is_not_only_its_means():
    """A real export's deal quality score 'fell to 0.56 (baseline 0.57)': a consistent shift of a tight
    distribution, which the means alone make look like noise."""
    row = {"window_start": pd.Timestamp("2017-08-02"), "window_end": pd.Timestamp("2017-08-31"),
           "baseline_days": 180, "q_value": 1.6e-5, "n": 250, "baseline_n": 210.0, "anomaly_type": "metric_shift",
           "amount_at_stake": 515_000.0, "metric": "dqs", "direction": "down", "observed": 0.5625,
           "expected": 0.5736, "rank_effect": -0.12, "money_deals": 40, "money_priced": 40}
    text = segment_explanation(row, {"region": "West"}, 126)
    assert "average 0.562, against 0.574 expected" in text
    assert "a recent deal scored lower than a comparable earlier one 62 % of the time, where no change would be " \
           "50 %" in text


def test_open_age_says_which_open_deals_it_compared():
    """Only ages every baseline date could show are compared: a segment with 43 open deals, 9 of them older
    than that, is not said to have 34 open deals."""
    row = {"window_start": pd.Timestamp("2017-12-02"), "window_end": pd.Timestamp("2017-12-31"),
           "baseline_days": 180, "q_value": 4.2e-8, "n": 34, "baseline_n": 118.4, "anomaly_type": "open_age_increase",
           "amount_at_stake": 0.0, "metric": "open_deal_age_days", "direction": "up", "observed": 159.0,
           "expected": 68.0, "rank_effect": 0.3, "money_deals": 43, "money_priced": 0,
           "older_left_out": "could not have been open on every baseline date"}
    text = segment_explanation(row, {"industry": "software"}, 133)
    assert text.startswith("Open software deals are getting older: the 34 of its 43 deals open on 31 Dec 2017 young "
                           "enough to compare (an older one could not have been open on every baseline date) have a "
                           "median age of 159 days")
    assert text.endswith("None of the 43 open deals in this segment has an amount, so the money in it is not known.")
    every = segment_explanation({**row, "n": 43}, {"industry": "software"}, 133)
    assert "getting older: the 43 deals open on 31 Dec 2017 have a median age" in every
    swept = segment_explanation({**row, "older_left_out": "may have been closed in the clean-up of 15 Jan 2017"},
                                {"industry": "software"}, 133)
    assert "young enough to compare (an older one may have been closed in the clean-up of 15 Jan 2017) have" in swept
