"""Metrics layer domain logic: PVS, SMI and DQS per deal, segment metrics
and stage conversion, on small hand-computed tables and on real data."""

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml

from salesintel_assets.domain.metrics import stage_conversion as conversion
from salesintel_assets.domain.ingestion import pulls as ingestion
from salesintel_assets.domain.metrics import deal_metrics as metrics
from salesintel_assets.domain.ingestion import quality
from salesintel_assets.sources import sample_crm
from salesintel_assets.domain.metrics import segment_metrics as segments
from salesintel_assets.domain.warehouse import upserts as warehouse
from salesintel_assets.domain.common.rules import Rules, default_rules_path, load_rules
from salesintel_assets.domain.common.stats import wilson_interval
from salesintel_assets_tests.support import export_fact_deals

AS_OF = pd.Timestamp("2024-03-31")
RULES = load_rules()


def make_fact(rows: list[dict], as_of: pd.Timestamp = AS_OF) -> pd.DataFrame:
    """A fact_deals-shaped table from short rows: outcome, created, closed
    (None when open) and whatever differs from the defaults."""
    out = []
    for i, row in enumerate(rows):
        r = {"deal_id": f"D{i:03d}", "sales_rep_id": "rep_1", "industry": "SaaS", "region": "Europe",
             "product_type": "Core", "lead_source": "Inbound", "deal_stage": "Closed", "deal_amount": 10_000.0,
             "needs_review": False, **row}
        created = pd.Timestamp(r["created"])
        closed = pd.Timestamp(r["closed"]) if r.get("closed") else pd.NaT
        is_open = r["outcome"] == "Open"
        cycle = float((closed - created).days) if not is_open else np.nan
        r.update(created_date=created, closed_date=closed, is_open=is_open, is_won=r["outcome"] == "Won",
                 sales_cycle_days=cycle, age_days=float((as_of - created).days) if is_open else cycle,
                 stage_number=RULES.stages.number(r["deal_stage"]), as_of_date=as_of)
        out.append(r)
    frame = pd.DataFrame(out).drop(columns=["created", "closed"], errors="ignore")
    frame["stage_number"] = frame["stage_number"].astype("Int64")
    return frame


def rules_with(section: str, **changes) -> Rules:
    raw = yaml.safe_load(default_rules_path().read_text())
    raw[section].update(changes)
    return Rules.model_validate(raw)


# --- velocity days, PVS, SMI --------------------------------------------------------------------


def test_velocity_days_use_cycle_or_age_so_far_at_least_one_day():
    fact = make_fact([
        {"outcome": "Won", "created": "2024-01-01", "closed": "2024-01-11"},     # cycle 10
        {"outcome": "Open", "created": "2024-03-31"},                            # age 0 -> 1
        {"outcome": "Open", "created": "2024-04-03"},                            # created after as_of -> 1
        {"outcome": "Lost", "created": "2024-02-10", "closed": "2024-02-01", "needs_review": True},  # negative
        {"outcome": "Open", "created": "2024-03-01"},                            # age 30
    ])
    days = metrics.velocity_days(fact)
    assert days[[0, 1, 2, 4]].tolist() == [10.0, 1.0, 1.0, 30.0]
    assert np.isnan(days[3])


def test_smi_is_stage_over_days_banded_by_the_rules():
    fact = make_fact([
        {"outcome": "Open", "created": "2024-02-20", "deal_stage": "Demo"},          # 2 / 40 = 0.05
        {"outcome": "Open", "created": "2024-03-01", "deal_stage": "Proposal"},      # 3 / 30 = 0.10
        {"outcome": "Open", "created": "2024-03-03", "deal_stage": "Qualified"},     # 1 / 28 = 0.0357
        {"outcome": "Won", "created": "2024-03-01", "closed": "2024-03-11"},         # 5 / 10 = 0.5
        {"outcome": "Open", "created": "2024-02-26", "deal_stage": "Mystery"},       # unknown stage
    ])
    out = metrics.deal_metrics(fact, RULES, AS_OF)
    assert out["smi"].iloc[:4].round(4).tolist() == [0.05, 0.1, round(1 / 28, 4), 0.5]
    assert out["smi_band"].tolist() == ["critical", "slow", "critical", "healthy", "unknown"]
    # "Below 0.07 is critical": 0.07 itself is slow; the slow band ends below 0.12.
    bands = metrics.smi_band(np.array([0.07, 0.0699, 0.1199, 0.12]), RULES)
    assert bands.tolist() == ["slow", "critical", "slow", "healthy"]


def test_loo_shrunk_rate_matches_the_hand_computed_empirical_bayes_rate():
    # Segment 0: 2 won of 3, segment 1: 0 of 2; global 0.4. Method of moments:
    # observed var 0.10667 - sampling var 0.096 = 0.010667 -> m = 0.24/0.010667 - 1 = 21.5.
    codes = np.array([0, 0, 0, 1, 1])
    won = np.array([True, True, False, False, False])
    rate, strength = metrics.loo_shrunk_rate(codes, won, np.ones(5, dtype=bool), 0.4)
    assert strength == pytest.approx(21.5)
    # Deal 0 is scored without its own win: (2 - 1 + 21.5 x 0.4) / (3 - 1 + 21.5).
    assert rate[0] == pytest.approx((1 + 8.6) / 23.5)
    assert rate[2] == pytest.approx((2 + 8.6) / 23.5)        # a lost deal: (2 - 0 + m p) / (3 - 1 + m)
    assert rate[3] == pytest.approx((0 + 8.6) / (1 + 21.5))
    # Without deal 4 the segments differ less than sampling noise allows:
    # the prior takes over completely and every rate is the global one.
    rate, strength = metrics.loo_shrunk_rate(codes, won, np.array([True, True, True, True, False]), 0.4)
    assert strength == 1e6 and rate[4] == pytest.approx(0.4, abs=1e-5)


def test_pvs_is_amount_times_shrunk_win_probability_over_days():
    rows = [{"outcome": "Won" if i % 2 else "Lost", "created": "2024-01-01", "closed": "2024-02-01",
             "lead_source": "Referral" if i < 40 else "Partner"} for i in range(80)]
    rows.append({"outcome": "Open", "created": "2024-03-11", "deal_amount": 30_000.0, "deal_stage": "Demo"})
    out = metrics.deal_metrics(make_fact(rows), RULES, AS_OF)
    deal = out.iloc[-1]
    assert deal["velocity_days"] == 20
    assert deal["pvs"] == pytest.approx(30_000 * deal["win_probability"] / 20)
    # Segments with identical rates: the probability is the global rate, 0.5.
    assert deal["win_probability"] == pytest.approx(0.5, abs=1e-3)


def test_tiny_segments_are_shrunk_toward_the_global_rate():
    rows = [{"outcome": "Won" if i < 30 else "Lost", "created": "2024-01-01", "closed": "2024-02-01",
             "industry": "SaaS"} for i in range(100)]
    rows += [{"outcome": "Won" if i < 70 else "Lost", "created": "2024-01-01", "closed": "2024-02-01",
              "industry": "FinTech"} for i in range(100)]
    rows += [{"outcome": "Won", "created": "2024-01-01", "closed": "2024-02-01", "industry": "EdTech"}]
    rows += [{"outcome": "Open", "created": "2024-03-01", "industry": ind, "deal_stage": "Demo"}
             for ind in ("SaaS", "FinTech", "EdTech")]
    out = metrics.deal_metrics(make_fact(rows), RULES, AS_OF)
    saas, fintech, edtech = out.iloc[-3:]["industry_score"]
    assert saas < 0.5 < fintech                       # big segments keep their real difference
    assert 0.5 < edtech < fintech  # one won deal is not a 100 % segment: it ranks below 70 of 100
    # The one-deal segment's own deal is scored without itself: exactly the global prior.
    assert out.loc[200, "industry_score"] == pytest.approx(0.5, abs=1e-12)


def test_dqs_is_sigmoid_of_weighted_component_lifts_and_flags_low_quality():
    rows = []
    for source, wins in (("Referral", 70), ("Partner", 20), ("Inbound", 50)):
        rows += [{"outcome": "Won" if i < wins else "Lost", "created": "2024-01-01", "closed": "2024-01-21",
                  "lead_source": source, "sales_rep_id": f"rep_{i % 5}"} for i in range(100)]
    rows += [{"outcome": "Open", "created": "2024-03-21", "lead_source": s, "deal_stage": "Demo"}
             for s in ("Referral", "Partner")]
    out = metrics.deal_metrics(make_fact(rows), RULES, AS_OF)
    referral, partner = out.iloc[-2], out.iloc[-1]
    assert referral["lead_source_score"] > 0.5 > partner["lead_source_score"]
    assert partner["dqs"] < RULES.metrics.dqs.low_quality_below and partner["low_quality"]
    assert not referral["low_quality"]
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    w = RULES.metrics.dqs.weights
    lift = sum(getattr(w, c) * logit(partner[f"{c}_score"]) for c in metrics.COMPONENTS)
    assert partner["dqs"] == pytest.approx(1 / (1 + np.exp(-lift)))
    # Weights are read from the rules: a zero weight removes the component.
    rules = rules_with("metrics", dqs={"weights": {"lead_source": 0.0, "industry": 1.0, "progression": 1.0,
                                                   "rep": 1.0}, "low_quality_below": 0.4})
    no_source = metrics.deal_metrics(make_fact(rows), rules, AS_OF).iloc[-1]
    assert no_source["dqs"] > partner["dqs"] and not no_source["low_quality"]


def test_progression_rate_is_the_win_rate_of_deals_still_open_at_that_age():
    fact = make_fact([
        {"outcome": "Won", "created": "2024-01-01", "closed": "2024-01-11"},   # cycle 10
        {"outcome": "Won", "created": "2024-01-01", "closed": "2024-01-21"},   # cycle 20
        {"outcome": "Lost", "created": "2024-01-01", "closed": "2024-01-31"},  # cycle 30
        {"outcome": "Lost", "created": "2024-01-01", "closed": "2024-02-10"},  # cycle 40
        {"outcome": "Open", "created": "2024-03-06"},                          # age 25
    ])
    history = metrics.history_mask(fact, AS_OF)
    days = metrics.velocity_days(fact)
    rate = metrics.progression_rate(days, fact, fact["is_won"].to_numpy(), history, 0.5, 2.0)
    assert rate[4] == pytest.approx((0 + 1) / (2 + 2))      # cycles >= 25: 30, 40, both lost
    assert rate[1] == pytest.approx((0 + 1) / (2 + 2))      # >= 20 without itself: 30, 40
    assert rate[0] == pytest.approx((1 + 1) / (3 + 2))      # >= 10 without itself: 20 won, 30, 40


def test_future_closes_are_not_history_and_do_not_leak():
    base = [{"outcome": "Won" if i % 3 else "Lost", "created": "2024-01-01", "closed": "2024-02-01",
             "lead_source": ("Partner", "Referral")[i % 2]} for i in range(60)]
    late_won = base + [{"outcome": "Won", "created": "2024-03-01", "closed": "2024-04-15"}]
    late_lost = base + [{"outcome": "Lost", "created": "2024-03-01", "closed": "2024-04-15"}]
    a = metrics.deal_metrics(make_fact(late_won), RULES, AS_OF)
    b = metrics.deal_metrics(make_fact(late_lost), RULES, AS_OF)
    assert not a["in_history"].iloc[-1] and a["in_history"].iloc[:-1].all()
    cols = ["win_probability", "dqs", "lead_source_score", "rep_score", "progression_score"]
    pd.testing.assert_frame_equal(a[cols], b[cols])


def test_backtest_scores_deals_open_at_the_cutoff_by_outcomes_known_at_as_of():
    rows = [{"outcome": ("Won", "Lost")[i % 2], "created": "2023-10-01", "closed": "2023-11-01",
             "lead_source": ("Referral", "Partner")[i % 2]} for i in range(60)]
    rows += [{"outcome": ("Won", "Lost")[i % 2], "created": "2023-12-01", "closed": "2024-02-01",
              "lead_source": ("Referral", "Partner")[i % 2]} for i in range(60)]
    rows += [{"outcome": "Won", "created": "2023-12-01", "closed": "2024-04-15"}]   # after as_of
    backtest = metrics.backtest_auc(make_fact(rows), RULES, AS_OF)
    assert backtest["cutoff"] == "2024-01-01" and backtest["deals"] == 60
    assert backtest["auc"]["lead_source_score"] == 1.0   # the source told them apart perfectly


def test_no_closed_deals_gives_nan_scores_and_empty_input_gives_empty_table():
    fact = make_fact([{"outcome": "Open", "created": "2024-03-01", "deal_stage": "Demo"}] * 2)
    out = metrics.deal_metrics(fact, RULES, AS_OF)
    assert len(out) == 2 and out["dqs"].isna().all() and out["pvs"].isna().all()
    assert not out["low_quality"].any() and out["smi"].notna().all()
    empty = metrics.deal_metrics(fact.iloc[:0], RULES, AS_OF)
    assert empty.empty and list(empty.columns) == list(metrics.DEAL_METRICS_COLUMNS)
    assert str(empty["dqs"].dtype) == "float64" and str(empty["stage_number"].dtype) == "Int64"
    assert metrics.backtest_auc(fact, RULES, AS_OF)["auc"] is None


# --- segment metrics ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hand_fact():
    return make_fact([
        # January: SaaS 2 (1 won), FinTech 1 won
        {"outcome": "Won", "created": "2023-12-22", "closed": "2024-01-11", "deal_amount": 1000.0},   # cycle 20
        {"outcome": "Lost", "created": "2023-12-02", "closed": "2024-01-11", "deal_amount": 3000.0},  # cycle 40
        {"outcome": "Won", "created": "2024-01-01", "closed": "2024-01-31", "industry": "FinTech",
         "deal_amount": 20_000.0},                                                                 # cycle 30
        # February: SaaS 1 lost; FinTech 1 lost flagged for review (no cycle stats, no cycle bin)
        {"outcome": "Lost", "created": "2024-01-01", "closed": "2024-02-20", "deal_amount": 8000.0},  # cycle 50
        {"outcome": "Lost", "created": "2024-02-25", "closed": "2024-02-15", "industry": "FinTech",
         "needs_review": True, "deal_amount": 60_000.0},
        # Never counted: open, closed after as_of
        {"outcome": "Open", "created": "2024-03-01", "deal_stage": "Demo"},
        {"outcome": "Won", "created": "2024-03-01", "closed": "2024-04-02"},
    ])


def _row(table, dimension, segment, period):
    hit = table[(table["dimension"] == dimension) & (table["segment"] == segment) & (table["period"] == period)]
    assert len(hit) == 1, (dimension, segment, period)
    return hit.iloc[0]


def test_segment_metrics_hand_computed(hand_fact):
    table = segments.segment_metrics(hand_fact, RULES, AS_OF)
    overall = _row(table, "overall", "all", "all")
    assert (overall["deals"], overall["won"], overall["lost"]) == (5, 2, 3)
    low, high = wilson_interval(2, 5)
    assert overall["ci_low"] == pytest.approx(low) and overall["ci_high"] == pytest.approx(high)
    assert overall["avg_cycle_won"] == pytest.approx(25.0)          # 20, 30
    assert overall["avg_cycle_lost"] == pytest.approx(45.0)         # 40, 50 (review row left out)
    assert overall["lost_velocity_ratio"] == pytest.approx(45 / 25)
    assert overall["avg_amount"] == pytest.approx(92_000 / 5)
    saas = _row(table, "industry", "SaaS", "all")
    assert (saas["deals"], saas["won"], saas["volume_share"]) == (3, 1, pytest.approx(0.6))
    assert saas["spi"] == pytest.approx((1 / 3 - 2 / 5) * 0.6)
    fintech = _row(table, "industry", "FinTech", "all")
    assert fintech["spi"] == pytest.approx((1 / 2 - 2 / 5) * 0.4)
    assert fintech["avg_cycle_lost"] != fintech["avg_cycle_lost"]  # NaN: its only lost deal is under review
    jan = _row(table, "industry", "SaaS", "2024-01")
    assert (jan["period_type"], jan["period_start"], jan["deals"], jan["win_rate"]) == (
        "month", pd.Timestamp("2024-01-01"), 2, 0.5)
    q1 = _row(table, "overall", "all", "2024Q1")
    assert (q1["period_type"], q1["deals"]) == ("quarter", 5)
    assert pd.isna(overall["period_start"])
    # Cycle bins leave the review row out; amount tiers do not.
    bins = table[(table["dimension"] == "cycle_bin") & (table["period"] == "all")].set_index("segment")["deals"]
    assert bins.to_dict() == {"15-29d": 1, "30-59d": 3}
    tiers = table[(table["dimension"] == "amount_tier") & (table["period"] == "all")]
    assert tiers["deals"].sum() == 5 and set(tiers["segment"]) == {"<5k", "5k-15k", "15k-50k", "50k+"}
    # The SPIs of a dimension sum to zero in every period.
    sums = table.groupby(["dimension", "period_type", "period"])["spi"].sum()
    assert np.allclose(sums, 0.0)


def test_one_deal_segment_and_enough_data_flag(hand_fact):
    table = segments.segment_metrics(hand_fact, RULES, AS_OF)
    one = _row(table, "industry", "FinTech", "2024-01")
    assert (one["deals"], one["win_rate"], one["enough_data"]) == (1, 1.0, False)
    assert one["ci_high"] == 1.0 and 0 < one["ci_low"] < 0.5
    assert pd.isna(one["lost_velocity_ratio"])
    rules = rules_with("metrics", min_sample=1)
    assert segments.segment_metrics(hand_fact, rules, AS_OF)["enough_data"].all()


def test_segment_metrics_no_closed_deals_gives_empty_table(hand_fact):
    open_only = hand_fact[hand_fact["is_open"]]
    for fact, as_of in ((open_only, AS_OF), (hand_fact, pd.Timestamp("2023-12-31")), (hand_fact.iloc[:0], AS_OF)):
        table = segments.segment_metrics(fact, RULES, as_of)
        assert table.empty and list(table.columns) == list(segments.SEGMENT_METRICS_COLUMNS)


def test_dataframe_and_warehouse_table_paths_agree(hand_fact):
    con = duckdb.connect()
    con.register("_f", hand_fact)
    con.execute("CREATE TABLE main.fact_deals AS SELECT * FROM _f")
    from_table = segments.segment_metrics_in(con, "main.fact_deals", RULES, AS_OF)
    pd.testing.assert_frame_equal(from_table, segments.segment_metrics(hand_fact, RULES, AS_OF))


def test_bin_labels_follow_the_rules_edges():
    assert segments.cycle_bin_labels([15, 30, 60, 90]) == ["0-14d", "15-29d", "30-59d", "60-89d", "90d+"]
    assert segments.amount_tier_labels([5000, 15000, 1_500_000]) == ["<5k", "5k-15k", "15k-1.5M", "1.5M+"]


def test_bad_metrics_rules_are_rejected():
    with pytest.raises(ValueError, match="slow_below"):
        rules_with("metrics", smi={"critical_below": 0.1, "slow_below": 0.07})
    with pytest.raises(ValueError, match="DQS weight"):
        rules_with("metrics", dqs={"weights": {"lead_source": 0, "industry": 0, "progression": 0, "rep": 0},
                                   "low_quality_below": 0.4})
    with pytest.raises(ValueError, match="strictly increasing"):
        rules_with("metrics", cycle_bin_edges_days=[30, 15])
    with pytest.raises(ValueError, match="unknown"):
        rules_with("metrics", win_probability_segment=["planet"])
    with pytest.raises(ValueError, match="Extra inputs"):
        rules_with("metrics", smi_thresholds=[0.07])


# --- stage conversion -----------------------------------------------------------------------------


def test_stage_conversion_counts_unresolved_deals_apart():
    t = pd.Timestamp
    transitions = pd.DataFrame([
        # D1 won: Qualified -> Demo -> Closed
        ("D1", "Qualified", 1, t("2024-01-02"), t("2024-01-10"), 8.0, False, "Won"),
        ("D1", "Demo", 2, t("2024-01-10"), t("2024-01-30"), 20.0, False, "Won"),
        ("D1", "Closed", 5, t("2024-01-30"), t("2024-01-30"), 0.0, True, "Won"),
        # D2 lost in Qualified
        ("D2", "Qualified", 1, t("2024-01-05"), t("2024-01-20"), 15.0, True, "Lost"),
        # D3 still open in Qualified
        ("D3", "Qualified", 1, t("2024-02-01"), pd.NaT, 59.0, True, "Open"),
        # D4 moved on to Demo after the analysis date: not advanced yet
        ("D4", "Qualified", 1, t("2024-03-01"), t("2024-04-10"), 40.0, False, "Open"),
    ], columns=["deal_id", "stage", "stage_number", "entered_date", "exited_date", "days_in_stage",
                "is_current", "outcome"])
    table = conversion.stage_conversion(transitions, RULES, AS_OF)
    qualified = table[(table["period_type"] == "all") & (table["from_stage"] == "Qualified")].iloc[0]
    assert qualified["to_stage"] == "Demo"
    assert (qualified["entered"], qualified["resolved"], qualified["advanced"], qualified["still_in_stage"]) == (
        4, 2, 1, 2)
    assert qualified["conversion_rate"] == 0.5 and qualified["avg_days_to_advance"] == 8.0
    demo = table[(table["period_type"] == "all") & (table["from_stage"] == "Demo")].iloc[0]
    assert (demo["resolved"], demo["advanced"], demo["to_stage"]) == (1, 1, "Proposal")
    assert "Closed" not in set(table["from_stage"])  # the last stage converts to nothing
    assert conversion.stage_conversion(transitions.iloc[:0], RULES, AS_OF).empty


# --- real data ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def skygeni_fact(skygeni_csv):
    return export_fact_deals(skygeni_csv, "2024-07-20")


@pytest.fixture(scope="module")
def sample_fact():
    snap = sample_crm.snapshot(sample_crm.generate_world(6000, 42))
    clean = quality.validate_deals(ingestion.conform_raw(ingestion.as_export_text(snap.deals)), RULES).clean
    return warehouse.build_fact_deals(clean, snap.stage_history, snap.activities, RULES,
                                      pd.Timestamp(sample_crm.SAMPLE_END_DATE))


def test_skygeni_segment_figures(skygeni_fact):
    table = segments.segment_metrics(skygeni_fact, RULES, pd.Timestamp("2024-07-20"))
    overall = _row(table, "overall", "all", "all")
    assert (overall["deals"], overall["won"]) == (5000, 2263)
    alls = table[table["period_type"] == "all"].groupby("dimension")["deals"].sum()
    assert (alls == 5000).all()
    rates = table[(table["period_type"] == "all") & table["dimension"].isin(
        ["industry", "region", "product_type", "lead_source"])]["win_rate"]
    assert rates.between(0.42, 0.48).all()  # the export's weak signal, as documented
    fintech = _row(table, "industry", "FinTech", "all")
    assert (fintech["deals"], fintech["won"]) == (979, 444)


def test_skygeni_dqs_says_nothing_when_there_is_no_signal(skygeni_fact):
    out = metrics.deal_metrics(skygeni_fact, RULES, pd.Timestamp("2024-07-20"))
    assert len(out) == 5000 and out["in_history"].all()
    assert out["win_probability"].sub(2263 / 5000).abs().max() < 0.01   # shrunk to the global rate
    assert out["lead_source_score"].sub(0.5).abs().max() < 0.01
    assert not out["low_quality"].any()
    backtest = metrics.backtest_auc(skygeni_fact, RULES, pd.Timestamp("2024-07-20"))
    assert 0.4 < backtest["auc"]["dqs"] < 0.6


def test_sample_crm_dqs_ranks_deals_and_flags_partner_leads(sample_fact):
    as_of = pd.Timestamp(sample_crm.SAMPLE_END_DATE)
    out = metrics.deal_metrics(sample_fact, RULES, as_of)
    history = out[out["in_history"]]
    assert history.groupby("outcome")["dqs"].mean()["Won"] > history.groupby("outcome")["dqs"].mean()["Lost"]
    open_deals = out[out["is_open"]]
    by_source = open_deals.groupby("lead_source")["low_quality"].mean()
    assert by_source["Partner"] > by_source["Referral"]
    assert set(open_deals["smi_band"]) >= {"critical", "slow", "healthy"}
    backtest = metrics.backtest_auc(sample_fact, RULES, as_of)
    assert backtest["auc"]["dqs"] > 0.65 and backtest["deals"] > 300


@pytest.mark.parametrize("segment", [["industry", "lead_source"], ["industry"]])
def test_shared_segment_codes_and_the_column_summary_change_no_figure(sample_fact, segment):
    """The asset factorises the segment columns once for today's scores and
    the backtest, and sums the summary column by column: the same figures
    as scoring and summarising the whole frame afresh."""
    as_of = pd.Timestamp(sample_crm.SAMPLE_END_DATE)
    rules = RULES.model_copy(update={"metrics": RULES.metrics.model_copy(update={"win_probability_segment": segment})})
    codes = metrics.score_codes(sample_fact, rules)
    table = metrics.deal_metrics(sample_fact, rules, as_of, codes)
    pd.testing.assert_frame_equal(table, metrics.deal_metrics(sample_fact, rules, as_of), check_exact=True)
    assert metrics.backtest_auc(sample_fact, rules, as_of, codes=codes) == metrics.backtest_auc(sample_fact, rules, as_of)
    open_deals, history = table[table["is_open"]], table[table["in_history"]]
    assert metrics.deal_metrics_summary(table) == {
        "closed_deals_in_history": len(history), "global_win_rate": round(float(history["outcome"].eq("Won").mean()), 4),
        "open_deals": len(open_deals), "open_low_quality": int(open_deals["low_quality"].sum()),
        "open_smi_critical": int(open_deals["smi_band"].eq("critical").sum()),
        "open_pipeline_velocity": round(float(open_deals["pvs"].sum()), 2)}


def test_the_table_put_together_in_duckdb_is_what_deal_metrics_returns(sample_fact):
    """The asset scores the fact read without its ids and lets DuckDB take the
    copied columns from fact_deals: same rows, order, values and types."""
    from salesintel_assets.domain.metrics import deal_metrics_table as stored
    from salesintel_assets.resources.warehouse import write_frame

    as_of = pd.Timestamp(sample_crm.SAMPLE_END_DATE)
    con = duckdb.connect()
    write_frame(con, "fact_deals", sample_fact.sample(frac=1.0, random_state=1))   # stored in no particular order
    write_frame(con, "expected", metrics.deal_metrics(sample_fact.sort_values("deal_id"), RULES, as_of))
    fact = con.sql(f"SELECT {', '.join(stored.SCORE_INPUT_COLUMNS)} FROM main.fact_deals ORDER BY deal_id").df()
    stored.write_deal_metrics_in(con, "main.fact_deals", "main.deal_metrics",
                                 metrics.computed_columns(fact, RULES, as_of))
    assert con.sql("DESCRIBE main.deal_metrics").fetchall() == con.sql("DESCRIBE main.expected").fetchall()
    pd.testing.assert_frame_equal(con.sql("SELECT * FROM main.deal_metrics").df(),
                                  con.sql("SELECT * FROM main.expected").df(), check_exact=True)
    with pytest.raises(ValueError, match="changed meanwhile"):
        stored.write_deal_metrics_in(con, "main.fact_deals", "main.deal_metrics",
                                     metrics.computed_columns(fact.iloc[1:], RULES, as_of))


@pytest.fixture(scope="module")
def swept_fact():
    """A close a day through the first half of 2025, every other one won,
    SaaS and FinTech in turn; on 14 Feb (its own close a lost SaaS deal) a
    sweep of 150 stale deals closed lost (120 SaaS, 30 FinTech); on 31 Mar 30
    wins pushed to the quarter's end, which is no sweep."""
    rows = [{"outcome": "Won" if i % 2 else "Lost", "created": "2024-11-01", "closed": day,
             "industry": "SaaS" if i % 4 < 2 else "FinTech"}
            for i, day in enumerate(pd.date_range("2025-01-01", "2025-06-30").strftime("%Y-%m-%d"))]
    rows += [{"outcome": "Lost", "created": "2024-05-01", "closed": "2025-02-14",
              "industry": "SaaS" if i < 120 else "FinTech"} for i in range(150)]
    rows += [{"outcome": "Won", "created": "2025-01-10", "closed": "2025-03-31"} for _ in range(30)]
    return make_fact(rows, pd.Timestamp("2025-06-30"))


def test_closes_of_a_clean_up_day_are_counted_apart(swept_fact):
    table = segments.segment_metrics(swept_fact, RULES, pd.Timestamp("2025-06-30"))
    counted = table.set_index(["dimension", "segment", "period"])[["deals", "clean_up_closes", "clean_up_won"]]
    assert tuple(counted.loc[("overall", "all", "2025Q1")]) == (90 + 150 + 30, 151, 0)   # still among the closes
    assert tuple(counted.loc[("industry", "SaaS", "2025-02")])[1:] == (121, 0)
    assert tuple(counted.loc[("industry", "FinTech", "2025-02")])[1:] == (30, 0)
    assert tuple(counted.loc[("overall", "all", "all")])[1:] == (151, 0)
    # the quarter-end day of wins and every other month hold no sweep
    assert counted.loc[("overall", "all", "2025-03"), "clean_up_closes"] == 0
    assert counted.xs("2025Q2", level="period")["clean_up_closes"].eq(0).all()
    # what compares periods reads each period's own closes: February's 27 (28 days, less the sweep's), 14 won
    own = segments.own_closes(table, RULES.metrics.min_sample).set_index(["dimension", "segment", "period"])
    february = own.loc[("overall", "all", "2025-02")]
    assert (february["deals"], february["won"], february["lost"]) == (27, 14, 13)
    assert (february["ci_low"], february["ci_high"]) == pytest.approx(tuple(np.ravel(wilson_interval(14, 27))))
    assert own.loc[("overall", "all", "2025-04"), "deals"] == counted.loc[("overall", "all", "2025-04"), "deals"]


def test_a_quarter_is_not_compared_by_its_clean_up_day(swept_fact):
    from salesintel_assets.domain.drivers import attribution

    table = segments.segment_metrics(swept_fact, RULES, pd.Timestamp("2025-06-30"))
    change = attribution.change_summary(table, "quarter", "2025Q1", "2025Q2")
    # the sweep day's 151 closes left out: 119 others (45 + 30 won) against Q2's 91 (45 won), no real change
    assert (change["closed_a"], change["clean_ups_a"], change["clean_ups_b"]) == (119, 151, 0)
    assert change["win_rate_a"] == pytest.approx(75 / 119, abs=1e-4) and not change["significant"]
    assert change["verdict"].endswith("left out: 151 closes of clean-up days in 2025Q1 (stale deals closed lost at "
                                      "once: how the CRM was tidied, not how the period sold)")
    split = attribution.win_rate_attribution(table, RULES, pd.Timestamp("2025-06-30"), ("quarter", "2025Q1", "2025Q2"))
    saas = split[(split["dimension"] == "industry") & (split["segment"] == "SaaS")].iloc[0]
    assert saas["n_a"] == table.set_index(["dimension", "segment", "period"]).loc[
        ("industry", "SaaS", "2025Q1"), "deals"] - 121
