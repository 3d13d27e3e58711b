"""Drivers layer domain logic: driver scores with false-discovery control,
rate/mix attribution and permutation importance, on hand-computed tables
and on real data."""

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from salesintel_assets.domain.drivers import attribution
from salesintel_assets.domain.drivers import driver_scores as drivers
from salesintel_assets.domain.drivers import importance
from salesintel_assets.domain.ingestion import pulls as ingestion
from salesintel_assets.domain.ingestion import quality
from salesintel_assets.sources import sample_crm
from salesintel_assets.domain.metrics import segment_metrics as segments
from salesintel_assets.domain.warehouse import upserts as warehouse
from salesintel_assets.domain.common.rules import Rules, default_rules_path, load_rules
from salesintel_assets.domain.common.stats import benjamini_hochberg
from salesintel_assets_tests.support import export_fact_deals

RULES = load_rules()


def rules_with(section: str, **changes) -> Rules:
    raw = yaml.safe_load(default_rules_path().read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(raw[section].get(key), dict):
            raw[section][key].update(value)
        else:
            raw[section][key] = value
    return Rules.model_validate(raw)


def segment_table(rows: list[tuple], period_type: str = "all", period: str = "all") -> pd.DataFrame:
    """segment_metrics-shaped rows from (dimension, segment, deals, won), or
    with (..., clean_up_closes, clean_up_won) among them."""
    frame = pd.DataFrame([tuple(r) + (0, 0)[:6 - len(r)] for r in rows],
                         columns=["dimension", "segment", "deals", "won", "clean_up_closes", "clean_up_won"])
    frame["period_type"] = period_type
    frame["period_start"] = pd.NaT if period == "all" else pd.Period(period).start_time
    frame["avg_cycle_won"] = frame["avg_cycle_lost"] = frame["avg_amount"] = np.nan
    return segments.finish_segment_metrics(frame, RULES)


# --- driver scores -------------------------------------------------------------------------------


def test_driver_scores_test_each_material_segment_against_the_rest():
    table = segment_table([
        ("industry", "A", 400, 120),   # 30 % vs 215/430 = 50 % for the rest: hurting
        ("industry", "B", 400, 200),   # 50 % vs 135/430 = 31.4 %: helping
        ("industry", "C", 30, 15),     # 3.6 % of deals: not material
        ("region", "East", 415, 170),  # 41 % vs 165/415 = 39.8 %: noise
        ("region", "West", 415, 165),
    ])
    scores = drivers.driver_scores(table, RULES).set_index(["dimension", "segment"])
    a = scores.loc[("industry", "A")]
    assert a["rest_deals"] == 430 and a["rest_win_rate"] == pytest.approx(0.5)
    p_a = stats.fisher_exact([[120, 280], [215, 215]]).pvalue
    assert a["p_value"] == pytest.approx(p_a)
    tested = scores["p_value"].dropna()
    assert len(tested) == 4                           # C is below the materiality bar
    q = benjamini_hochberg(tested.to_numpy())
    assert scores.loc[tested.index, "q_value"].to_numpy() == pytest.approx(q)
    assert (a["significant"], a["direction"]) == (True, "hurting")
    assert scores.loc[("industry", "B"), "direction"] == "helping"
    assert scores.loc[("region", "East"), "direction"] == "neutral"
    assert scores.loc[("region", "East"), "verdict"].startswith("not distinguishable from the rest")
    c = scores.loc[("industry", "C")]
    assert not c["material"] and pd.isna(c["rank"]) and "materiality" in c["verdict"]
    assert a["verdict"].startswith("hurting win rate: 30.0% vs 50.0% for the rest (n=400, q=")
    # Ranked: the two drivers first (by |SPI|), then the noise.
    ranked = scores.dropna(subset=["rank"]).sort_values("rank")
    assert list(ranked.index.get_level_values("segment")[:2]) in (["A", "B"], ["B", "A"])
    assert ranked["rank"].tolist() == [1, 2, 3, 4]


def test_a_small_gap_is_not_a_driver_even_when_detectable():
    table = segment_table([("lead_source", "X", 50_000, 23_000), ("lead_source", "Y", 50_000, 23_700)])
    scores = drivers.driver_scores(table, RULES)
    assert (scores["q_value"] < 0.05).all()           # 46.0 % vs 47.4 %: real but only 1.4 points
    assert not scores["significant"].any()
    assert scores["verdict"].str.startswith("distinguishable but small").all()
    loose = rules_with("drivers", min_rate_gap=0.01)
    assert drivers.driver_scores(table, loose)["significant"].all()


def test_not_enough_data_and_single_segment_dimensions_are_said_plainly():
    table = segment_table([("industry", "A", 10, 1), ("industry", "B", 10, 9), ("region", "Only", 20, 10)])
    scores = drivers.driver_scores(table, RULES).set_index("segment")
    assert scores.loc["A", "verdict"].startswith("not enough data (n=10; at least 30 needed)")
    assert not scores["significant"].any()            # 10 % vs 90 % on 10 deals each is no proof here
    assert scores.loc["Only", "verdict"].startswith("the only segment of region")
    assert pd.isna(scores.loc["Only", "p_value"])


def test_driver_scores_of_nothing_is_an_empty_table():
    empty = segments.finish_segment_metrics(
        pd.DataFrame(columns=["dimension", "segment", "period_type", "period_start", "deals", "won",
                              "avg_cycle_won", "avg_cycle_lost", "avg_amount", "clean_up_closes", "clean_up_won"]),
        RULES)
    scores = drivers.driver_scores(empty, RULES)
    assert scores.empty and list(scores.columns) == list(drivers.DRIVER_SCORES_COLUMNS)
    assert "not enough closed deals" in drivers.driver_summary(scores)


def test_stage_is_not_a_driver_dimension_by_default():
    table = segment_table([("deal_stage", "Closed", 500, 500), ("deal_stage", "Demo", 500, 0)])
    assert drivers.driver_scores(table, RULES).empty
    with_stage = rules_with("drivers", dimensions=["deal_stage"])
    assert drivers.driver_scores(table, with_stage)["significant"].all()


def test_bad_driver_rules_are_rejected():
    with pytest.raises(ValueError, match="unknown driver dimensions"):
        rules_with("drivers", dimensions=["weather"])
    with pytest.raises(ValueError, match="both period_a and period_b"):
        rules_with("drivers", attribution={"period_a": "2024Q1"})
    with pytest.raises(ValueError, match="'month' or 'quarter'"):
        rules_with("drivers", attribution={"period_type": "week"})
    with pytest.raises(ValueError, match="unknown importance factors"):
        rules_with("drivers", importance={"factors": ["industry", "moon_phase"]})
    with pytest.raises(ValueError, match="less than or equal to 0.5"):
        rules_with("drivers", fdr_alpha=0.9)


# --- attribution ---------------------------------------------------------------------------------


def two_periods(rows_a: list[tuple], rows_b: list[tuple]) -> pd.DataFrame:
    a = segment_table(rows_a, "quarter", "2024Q1")
    b = segment_table(rows_b, "quarter", "2024Q2")
    return pd.concat([a, b], ignore_index=True)


def test_attribution_midpoint_formula_hand_computed():
    table = two_periods([("industry", "X", 50, 25), ("industry", "Y", 50, 10)],
                        [("industry", "X", 80, 20), ("industry", "Y", 20, 10)])
    out = attribution.win_rate_attribution(table, RULES, pd.Timestamp("2024-07-20")).set_index("segment")
    # Rates 0.5/0.2 -> 0.25/0.5, shares 0.5/0.5 -> 0.8/0.2; R 0.35 -> 0.30.
    assert out.loc["X", "rate_effect"] == pytest.approx(-0.25 * 1.3 / 2)
    assert out.loc["X", "mix_effect"] == pytest.approx(0.3 * 0.75 / 2)
    assert out.loc["Y", "rate_effect"] == pytest.approx(0.3 * 0.7 / 2)
    assert out.loc["Y", "mix_effect"] == pytest.approx(-0.3 * 0.7 / 2)
    assert out["total_change"].iloc[0] == pytest.approx(-0.05)
    assert abs(out["total_effect"].sum() - out["total_change"].iloc[0]) < 1e-12
    assert (out["period_a"].iloc[0], out["period_b"].iloc[0]) == ("2024Q1", "2024Q2")


def test_a_segment_new_in_one_period_is_all_mix_and_still_adds_up():
    table = two_periods([("region", "East", 100, 40)],
                        [("region", "East", 60, 30), ("region", "North", 40, 8)])
    out = attribution.win_rate_attribution(table, RULES, pd.Timestamp("2024-07-20")).set_index("segment")
    north = out.loc["North"]
    assert (north["n_a"], north["share_a"], north["rate_effect"]) == (0, 0.0, 0.0)
    assert pd.isna(north["rate_a"]) and north["mix_effect"] == pytest.approx(0.4 * 0.2)
    assert abs(out["total_effect"].sum() - (0.38 - 0.40)) < 1e-12


def test_attribution_effects_always_sum_to_the_total_change():
    rng = np.random.default_rng(7)
    for _ in range(200):
        k = int(rng.integers(1, 12))
        n_a, n_b = rng.integers(0, 500, k), rng.integers(0, 500, k)
        n_a[0], n_b[-1] = max(n_a[0], 1), max(n_b[-1], 1)   # each period has deals
        won_a, won_b = rng.binomial(n_a, rng.random(k)), rng.binomial(n_b, rng.random(k))
        parts = attribution.decompose(n_a, won_a, n_b, won_b)
        change = won_b.sum() / n_b.sum() - won_a.sum() / n_a.sum()
        assert abs(parts["total_effect"].sum() - change) < 1e-9
        assert np.allclose(parts["rate_effect"] + parts["mix_effect"], parts["total_effect"])


def test_a_period_without_closed_deals_gives_no_attribution():
    only_b = segment_table([("industry", "X", 10, 5)], "quarter", "2024Q2")
    out = attribution.win_rate_attribution(only_b, RULES, pd.Timestamp("2024-07-20"))
    assert out.empty and list(out.columns) == list(attribution.ATTRIBUTION_COLUMNS)
    overall = segment_table([("overall", "all", 10, 5)], "quarter", "2024Q2")
    summary = attribution.change_summary(overall, "quarter", "2024Q1", "2024Q2")
    assert summary["verdict"] == "no closed deals in 2024Q1: nothing to attribute"


@pytest.mark.parametrize("as_of, period_type, expected", [
    ("2024-07-20", "quarter", ("2024Q1", "2024Q2")),
    ("2024-06-30", "quarter", ("2024Q1", "2024Q2")),   # the quarter ends on as_of: complete
    ("2024-06-29", "quarter", ("2023Q4", "2024Q1")),
    ("2024-03-15", "month", ("2024-01", "2024-02")),
    ("2024-01-31", "month", ("2023-12", "2024-01")),
])
def test_default_periods_are_the_last_complete_one_and_the_one_before(as_of, period_type, expected):
    rules = rules_with("drivers", attribution={"period_type": period_type})
    assert attribution.compared_periods(pd.Timestamp(as_of), rules) == (period_type, *expected)


def test_configured_periods_are_used_as_given():
    rules = rules_with("drivers", attribution={"period_a": "2023Q3", "period_b": "2024Q1"})
    assert attribution.compared_periods(pd.Timestamp("2024-07-20"), rules) == ("quarter", "2023Q3", "2024Q1")


# --- importance ----------------------------------------------------------------------------------


def synthetic_fact(n: int, signal: float, seed: int = 3) -> pd.DataFrame:
    """Closed deals whose lead source moves the win probability by +/- signal."""
    rng = np.random.default_rng(seed)
    lead = rng.choice(["Inbound", "Partner"], n)
    won = rng.random(n) < 0.45 + np.where(lead == "Partner", -signal, signal)
    return pd.DataFrame({
        "deal_id": [f"D{i}" for i in range(n)], "is_open": False, "is_won": won,
        "closed_date": pd.Timestamp("2024-01-01"), "needs_review": False,
        "industry": rng.choice(["SaaS", "FinTech", "EdTech"], n), "region": rng.choice(["EU", "US"], n),
        "product_type": rng.choice(["Core", "Pro"], n), "lead_source": lead,
        "sales_rep_id": rng.choice([f"rep_{i}" for i in range(20)], n),
        "deal_amount": rng.lognormal(9, 1, n), "sales_cycle_days": rng.integers(5, 120, n).astype(float),
    })


def test_importance_finds_a_planted_driver():
    table, info = importance.driver_importance(synthetic_fact(4000, 0.25), RULES, pd.Timestamp("2024-06-30"))
    main = table[table["kind"] == "main"].set_index("factor")
    assert main["rank"].idxmin() == "lead_source" and main.loc["lead_source", "meaningful"]
    assert info["better_than_chance"] and info["auc"] > 0.65
    assert main.drop(index="lead_source")["importance"].max() < main.loc["lead_source", "importance"] / 5
    assert (table["kind"] == "interaction").sum() == 6   # pairs of the top 4 factors
    assert "lead_source" in info["verdict"]


def test_importance_on_noise_says_the_model_is_no_better_than_chance():
    table, info = importance.driver_importance(synthetic_fact(4000, 0.0), RULES, pd.Timestamp("2024-06-30"))
    assert not info["better_than_chance"]
    assert not table["meaningful"].any()
    assert "no better than chance" in info["verdict"]
    assert table["verdict"].str.contains("noise").all()


def test_importance_subsamples_and_refuses_tiny_histories():
    capped = rules_with("drivers", importance={"max_train_rows": 500, "max_eval_rows": 300})
    _, info = importance.driver_importance(synthetic_fact(3000, 0.2), capped, pd.Timestamp("2024-06-30"))
    assert (info["train_rows"], info["eval_rows"], info["subsampled"]) == (500, 300, True)
    table, info = importance.driver_importance(synthetic_fact(120, 0.2), RULES, pd.Timestamp("2024-06-30"))
    assert table.empty and info["verdict"].startswith("not enough data: 120 closed deals")
    assert list(table.columns) == list(importance.IMPORTANCE_COLUMNS)


def test_auc_interval_narrows_with_more_deals():
    small, large = importance.auc_interval(0.6, 50, 50), importance.auc_interval(0.6, 5000, 5000)
    assert small[0] < 0.5 < small[1]
    assert 0.5 < large[0] < 0.6 < large[1]


# --- real data ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def skygeni(skygeni_csv):
    as_of = pd.Timestamp("2024-07-20")
    fact = export_fact_deals(skygeni_csv, "2024-07-20")
    return fact, segments.segment_metrics(fact, RULES, as_of), as_of


def test_skygeni_has_no_driver_that_is_more_than_noise(skygeni):
    _, table, _ = skygeni
    scores = drivers.driver_scores(table, RULES)
    tested = scores[scores["p_value"].notna()]
    assert len(tested) == 25                          # reps are each under 5 % of volume
    assert not scores["significant"].any() and (scores["direction"] == "neutral").all()
    assert tested["verdict"].str.startswith("not distinguishable from the rest").all()
    assert "within noise" in drivers.driver_summary(scores)
    partner = scores.set_index(["dimension", "segment"]).loc[("lead_source", "Partner")]
    assert (partner["deals"], round(partner["win_rate"], 4)) == (1244, 0.4349)


def test_skygeni_attribution_and_importance_are_honest(skygeni):
    fact, table, as_of = skygeni
    out = attribution.win_rate_attribution(table, RULES, as_of)
    assert set(out["period_a"]) == {"2024Q1"} and set(out["period_b"]) == {"2024Q2"}
    sums = out.groupby("dimension").agg(effects=("total_effect", "sum"), change=("total_change", "first"))
    assert (sums["effects"] - sums["change"]).abs().max() < 1e-9
    assert out["total_change"].iloc[0] == pytest.approx(270 / 623 - 474 / 1039)
    change = attribution.change_summary(table, "quarter", "2024Q1", "2024Q2")
    assert not change["significant"] and "not distinguishable from noise" in change["verdict"]
    ranked, info = importance.driver_importance(fact, RULES, as_of)
    assert not info["better_than_chance"] and not ranked["meaningful"].any()


def test_sample_crm_planted_lead_source_effects_are_found():
    snap = sample_crm.snapshot(sample_crm.generate_world(6000, 42))
    clean = quality.validate_deals(ingestion.conform_raw(ingestion.as_export_text(snap.deals)), RULES).clean
    as_of = pd.Timestamp(sample_crm.SAMPLE_END_DATE)
    fact = warehouse.build_fact_deals(clean, snap.stage_history, snap.activities, RULES, as_of)
    scores = drivers.driver_scores(segments.segment_metrics(fact, RULES, as_of), RULES)
    lead = scores[scores["dimension"] == "lead_source"].set_index("segment")
    assert lead.loc["Partner", "direction"] == "hurting" and lead.loc["Referral", "direction"] == "helping"
    _, info = importance.driver_importance(fact, RULES, as_of)
    assert info["better_than_chance"]


def test_a_dimension_with_one_value_is_not_a_cause_of_the_change():
    table = two_periods([("lead_source", "Unknown", 100, 40), ("industry", "X", 50, 25), ("industry", "Y", 50, 15)],
                        [("lead_source", "Unknown", 100, 30), ("industry", "X", 50, 20), ("industry", "Y", 50, 10)])
    out = attribution.win_rate_attribution(table, RULES, pd.Timestamp("2024-07-20"))
    assert set(out["dimension"]) == {"industry"}
