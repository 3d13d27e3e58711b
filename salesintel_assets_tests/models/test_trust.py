"""Numbers people can believe on CRM-shaped data: deals that never close,
a column that encodes the outcome, a model with no signal, the forecast by
horizon. Small worlds, deterministic seeds."""

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from salesintel_assets.domain.alerts.candidates import quotable_risk
from salesintel_assets.domain.common import leakage
from salesintel_assets.domain.common.rules import load_rules
from salesintel_assets.domain.ingestion import pulls as ingestion
from salesintel_assets.domain.models import features as rf
from salesintel_assets.domain.models import forecast
from salesintel_assets.domain.models import horizons
from salesintel_assets.domain.models import risk_model as rm
from salesintel_assets.domain.models.verdict import AGE_BASELINE, judge
from salesintel_assets.sources import sample_crm
from salesintel_assets.resources.warehouse import SalesintelHome, Warehouse
from salesintel_assets.summary import must_know, run_summary
from salesintel_assets_tests.trust_study import WorldSpec, world_tables

NO_HISTORY = pd.DataFrame({"deal_id": pd.Series(dtype=object), "stage": pd.Series(dtype=object),
                           "entered_date": pd.Series(dtype="datetime64[ns]")})
NO_ACTIVITIES = pd.DataFrame({"deal_id": pd.Series(dtype=object), "activity_date": pd.Series(dtype="datetime64[ns]")})


def _trained(tables):
    rules = tables["rules"]
    prepared = rf.prepare(tables["fact"], tables["history"], tables["activities"], tables["as_of"], rules.risk,
                          rules.stages.order)
    return prepared, rm.train(prepared, rules.risk)


def _open_probabilities(prepared, training):
    open_frame = rf.open_deals(prepared.fact, prepared.as_of)
    features = rf.open_states(open_frame, prepared.timeline, prepared.spec, prepared.as_of)
    return open_frame, rm.predict_horizons(training.model, features)


# --- Deals that never close ----------------------------------------------------------
@pytest.fixture(scope="module")
def never_closing():
    tables = world_tables(WorldSpec("never_closing", never_close_share=0.5), 2500, 1)
    return tables, *_trained(tables)


def test_never_closing_world_model_ranks_open_deals_better_than_deal_age(never_closing):
    tables, prepared, training = never_closing
    open_frame, by_horizon = _open_probabilities(prepared, training)
    truth = tables["world"].deals.set_index("deal_id").reindex(open_frame["deal_id"])
    won_90 = ((truth["outcome"] == "Won") & (truth["closed_date"] <= prepared.as_of + pd.Timedelta(days=90)))
    model_auc = roc_auc_score(won_90, by_horizon[90])
    age_auc = roc_auc_score(won_90, -open_frame["age_days"])
    assert model_auc > age_auc + 0.02, (model_auc, age_auc)
    assert training.verdict.usable, training.verdict.reason
    assert (by_horizon[30] <= by_horizon[90] + 1e-9).all() and (by_horizon[90] <= by_horizon[180] + 1e-9).all()


def test_very_old_open_deals_get_low_probabilities(never_closing):
    _, prepared, training = never_closing
    open_frame, by_horizon = _open_probabilities(prepared, training)
    old = open_frame["age_days"].to_numpy() > 300          # history says such deals are (almost) never won
    assert old.sum() > 50
    assert by_horizon[180][old].mean() < 0.05
    assert by_horizon[180][~old].mean() > 3 * by_horizon[180][old].mean()


def test_an_open_deal_without_an_amount_reads_as_a_typical_deal_not_as_a_loser(never_closing):
    """A closed deal always has an amount, so in the replayed past a missing
    one marks exactly the deals still open today (mostly never won): read
    raw, the model would learn "no amount -> lost" and score such deals down."""
    tables, known_prepared, known_training = never_closing
    fact = tables["fact"].copy()
    is_open = fact["is_open"].to_numpy(bool)
    blank = is_open & (np.random.default_rng(5).random(len(fact)) < 0.3)
    fact.loc[blank, "deal_amount"] = np.nan
    prepared, training = _trained({**tables, "fact": fact})
    assert "deal_amount" in prepared.spec.columns                      # too few blanks to call it filled at close
    replayed = prepared.snapshots.set_index("deal_id")["deal_amount"]
    assert replayed.notna().all()
    assert np.allclose(replayed.loc[replayed.index.isin(fact.loc[blank, "deal_id"])],
                       fact["deal_amount"].median())
    # the same deals, scored by the model of the same world with every amount known (read raw, the gap was 0.065)
    scored = [(frame["deal_id"].isin(fact.loc[blank, "deal_id"]).to_numpy(), p[180])
              for frame, p in (_open_probabilities(prepared, training), _open_probabilities(known_prepared,
                                                                                          known_training))]
    (without, p_without), (same, p_known) = scored
    assert without.sum() == same.sum() > 200
    assert abs(p_known[same].mean() - p_without[without].mean()) < 0.035


def test_sample_crm_options_leave_the_default_world_alone():
    plain = sample_crm.generate_world(400, 5, with_activities=False)
    lingering = sample_crm.generate_world(400, 5, with_activities=False, never_close_share=0.5)
    assert "lingering" not in plain.deals and lingering.deals["lingering"].sum() > 20
    attributes = ["deal_id", "created_date", "sales_rep_id", "industry", "region", "product_type", "lead_source",
                  "deal_amount", "win_probability"]
    pd.testing.assert_frame_equal(plain.deals[attributes], lingering.deals[attributes])
    same = ~lingering.deals["lingering"]
    pd.testing.assert_series_equal(plain.deals.loc[same, "closed_date"], lingering.deals.loc[same, "closed_date"])
    never = lingering.deals["outcome"] == "Open"
    assert never.sum() > 5 and lingering.deals.loc[never, "closed_date"].isna().all()
    with pytest.raises(ValueError, match="never_close_share"):
        sample_crm.generate_world(10, 1, never_close_share=1.0)


# --- A column that encodes the outcome ----------------------------------------------
@pytest.fixture(scope="module")
def leaking():
    tables = world_tables(WorldSpec("leak", never_close_share=0.3, leaking_amount=True, export_only=True), 2500, 2)
    return tables, *_trained(tables)


def test_leaking_amount_is_named_and_excluded_and_no_open_deal_looks_certain(leaking):
    tables, prepared, training = leaking
    assert leakage.excluded(prepared.leaks) == {"deal_amount"}
    assert leakage.sentences(prepared.leaks) == [
        "deal_amount looks like it encodes the outcome: 0 on 100 % of lost deals and 0 % of the others"]
    assert "deal_amount" not in prepared.spec.columns
    _, by_horizon = _open_probabilities(prepared, training)
    assert by_horizon[180].max() < 0.99
    assert training.chosen.metrics["auc"] < 0.99


def test_leak_is_reported_at_ingestion_and_kept_out_of_the_drivers(leaking):
    tables = leaking[0]
    snap = sample_crm.snapshot(tables["world"])
    findings, screened = leakage.screen_export(ingestion.as_export_text(snap.deals))
    rows = leakage.report_rows(findings, screened)
    assert set(rows["rule"]) == {"leakage:deal_amount", "leakage:sales_cycle_days"}
    assert (rows["action"] == "exclude").all() and screened > 1000
    guarded, _ = leakage.driver_rules(tables["rules"], tables["fact"])
    assert "amount_tier" not in guarded.drivers.dimensions and "cycle_bin" not in guarded.drivers.dimensions
    assert not {"deal_amount", "sales_cycle_days"} & set(guarded.drivers.importance.factors)
    assert "industry" in guarded.drivers.dimensions


def test_leakage_screen_on_bad_and_honest_columns():
    rng = np.random.default_rng(0)
    n = 600
    won = rng.random(n) < 0.4
    frame = pd.DataFrame({
        "honest": np.where(rng.random(n) < 0.5, "A", "B"),
        "status_code": np.where(won, "W-" + pd.Series(rng.integers(0, 3, n)).astype(str), "L"),
        "amount": np.where(won, rng.uniform(1000, 5000, n), np.nan),   # empty on every lost deal
        "score": np.where(won, 10.0, 1.0) + rng.normal(0, 0.5, n),
        "noisy_amount": rng.lognormal(9, 1, n),
    })
    found = {f.column: f for f in leakage.screen(frame, won, list(frame.columns) + ["sales_cycle_days"])}
    assert set(found) == {"status_code", "amount", "score", "sales_cycle_days"}
    assert found["amount"].sentence.startswith("amount looks like it encodes the outcome: empty on 100 % of lost")
    assert found["sales_cycle_days"].kind == "post_close"
    few = leakage.screen(frame.head(15), won[:15], ["score"])
    assert few == []                                    # too few deals of each outcome: no verdict



def test_a_column_filled_in_only_at_close_is_named_and_kept_out_of_the_model(leaking):
    """A lead source typed in when the deal closes: empty ("Unknown") on the
    open deals, filled on the closed ones. Replayed, every deal still open
    carries "Unknown", so a model would learn that "Unknown" never wins."""
    tables = leaking[0]
    fact = tables["fact"]
    fact = fact.assign(lead_source=fact["lead_source"].where(~fact["is_open"], "Unknown"))
    rules = tables["rules"]
    prepared = rf.prepare(fact, tables["history"], tables["activities"], tables["as_of"], rules.risk,
                          rules.stages.order)
    found = {f.column: f for f in prepared.leaks}
    assert found["lead_source"].kind == "post_close"
    assert found["lead_source"].sentence == ("lead_source looks like it is filled in only when a deal closes: "
                                             "empty on 100 % of open deals and 0 % of closed ones")
    assert "lead_source" not in prepared.spec.columns and "industry" in prepared.spec.columns
    guarded, _ = leakage.driver_rules(rules, fact)
    assert "lead_source" not in guarded.drivers.dimensions
    # an honest optional field, as often blank on open deals as on closed ones, stays
    original = tables["fact"]
    honest = original.assign(lead_source=np.where(np.arange(len(fact)) % 3 == 0, "Unknown", original["lead_source"]))
    assert "lead_source" not in leakage.excluded(leakage.screen_deals(honest, ["lead_source"]))


def test_the_raw_screen_counts_blank_fields_of_open_deals_in_duckdb():
    con = duckdb.connect()
    con.execute("CREATE TABLE raw_deals AS SELECT * FROM (VALUES ('1', '', '', 'Demo', ''),"
                " ('2', '', '', 'Demo', 'Web'), ('3', 'Open', '', 'Demo', 'Unknown'),"
                " ('4', '', '2024-01-01', 'Won', 'Web'), ('5', '', '', 'LOST', ''), ('6', '', '', 'closed_lost', ''),"
                " ('7', 'open', '2026-09-30', 'Demo', ''))"
                " t(deal_id, outcome, closed_date, deal_stage, lead_source)")
    counts = ingestion.open_raw_empty_counts(con, ["lead_source", "not_a_column"], ["Won", "Closed Lost", "Lost"])
    # deals 5 and 6 are closed by their stage names, deal 4 by its date; deal 7's date is an expected close
    assert counts == {"lead_source": (4, 3)}
    closed = ingestion.closed_raw_deals(con, ["lead_source"], ["Won", "Closed Lost", "Lost"])
    assert sorted(closed["deal_stage"]) == ["LOST", "Won", "closed_lost"]   # closed by stage name, however spelt

# --- No signal: the model is weak, not promoted, and says so -----------------------
def _no_signal_fact(n=900, seed=9) -> pd.DataFrame:
    """Every deal closed; outcome, cycle and attributes independent (like a
    public export with no signal)."""
    rng = np.random.default_rng(seed)
    won = rng.random(n) < 0.45
    created = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 600, n), unit="D")
    cycle = 5 + rng.integers(0, 120, n)
    fact = pd.DataFrame({
        "deal_id": [f"N{i:05d}" for i in range(n)], "created_date": created,
        "closed_date": created + pd.to_timedelta(cycle, unit="D"),
        "sales_rep_id": rng.choice([f"rep_{i}" for i in range(8)], n),
        "industry": rng.choice(["SaaS", "FinTech", "EdTech"], n), "region": rng.choice(["Europe", "APAC"], n),
        "product_type": rng.choice(["Core", "Pro"], n), "lead_source": rng.choice(["Inbound", "Referral"], n),
        "deal_stage": "Closed", "deal_amount": rng.lognormal(9.5, 0.8, n).round(),
        "sales_cycle_days": cycle.astype(float), "outcome": np.where(won, "Won", "Lost"),
        "is_open": False, "is_won": won, "needs_review": False,
    })
    return fact.assign(age_days=fact["sales_cycle_days"], days_in_stage=np.nan)


def test_a_model_without_signal_is_weak_and_never_promoted():
    rules = load_rules().risk.model_copy(update={"candidates": ["logistic"]})
    fact = _no_signal_fact()
    prepared = rf.prepare(fact, NO_HISTORY, NO_ACTIVITIES, fact["closed_date"].max(), rules, ["Proposal", "Closed"])
    training = rm.train(prepared, rules)
    assert not training.verdict.usable and training.verdict.label == "weak"
    assert training.verdict.reason.startswith("no better than")
    decision = rm.challenge(training, prepared, rules).decision
    assert not decision.promote and decision.reason.startswith("not promoted: no better than")


def test_an_implausibly_perfect_model_is_never_usable():
    rules = load_rules().risk
    perfect = {"auc": 0.995, "log_loss": 0.05}
    baselines = {AGE_BASELINE: {"auc": 0.6, "log_loss": 0.6}}
    verdict = judge(perfect, baselines, rules, 1000)
    assert not verdict.usable and "implausibly perfect" in verdict.reason
    assert judge({"auc": 0.8, "log_loss": 0.4}, baselines, rules, 1000).usable
    close = judge({"auc": 0.605, "log_loss": 0.59}, baselines, rules, 1000)
    assert not close.usable and close.reason.startswith("no better than deal age")


def test_alerts_quote_no_probability_from_a_weak_model():
    scores = pd.DataFrame({"deal_id": ["a", "b"], "win_probability": [0.7, 0.2], "model_verdict": ["weak"] * 2})
    assert quotable_risk(scores) is None
    assert quotable_risk(scores.assign(model_verdict="usable")) is not None


def test_summary_says_what_a_user_must_know(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE TABLE data_quality_report AS SELECT 'p1' AS pull_id, 'exclude' AS action, "
                "'deal_amount looks like it encodes the outcome: 0 on 100 % of lost deals' AS detail")
    con.execute("CREATE TABLE deal_risk_model AS SELECT DATE '2026-06-30' AS as_of_date, 'weak' AS model_verdict, "
                "'no better than deal age: validation AUC 0.61 vs 0.60' AS verdict_reason")
    con.execute("CREATE TABLE pipeline_forecast AS SELECT 'horizon' AS grouping, '90d' AS key, "
                "41.6 AS expected_won_deals, 33.0 AS won_deals_p10, 50.0 AS won_deals_p90")
    con.execute("ALTER TABLE data_quality_report ADD COLUMN rule VARCHAR DEFAULT 'leakage:deal_amount'")
    lines = must_know(con)
    assert lines[0] == "excluded column: deal_amount looks like it encodes the outcome: 0 on 100 % of lost deals"
    assert lines[1].startswith("no signal found: the risk model is weak and not promoted (no better than deal age")
    assert lines[2] == ("wins expected in the next 90 days: 42 (80 % interval 33-50); not enough data to say how far "
                        "it can be trusted: no past forecast could be checked against what closed, so read the 80 % "
                        "interval (±20 %) as a rough guide")


# --- Forecast by horizon ----------------------------------------------------------------
def test_forecast_by_horizon_holds_its_expectation_inside_the_interval():
    rules = load_rules().risk
    rng = np.random.default_rng(4)
    n = 400
    p30 = rng.uniform(0, 0.3, n)
    by_horizon = {30: p30, 90: p30 + rng.uniform(0, 0.2, n), 180: p30 + rng.uniform(0.2, 0.4, n)}
    scored = pd.DataFrame({"win_probability": by_horizon[180], "deal_amount": rng.uniform(1e3, 5e4, n),
                           "industry": "SaaS", "region": "Europe", "product_type": "Core", "lead_source": "Inbound"})
    as_of = pd.Timestamp("2026-05-15")
    keyed, _ = horizons.horizon_probabilities(by_horizon, as_of)
    table = forecast.forecast(scored, np.full(n, "2026-06"), 0.2, 0.25, rules, keyed)
    rows = table[table["grouping"] == "horizon"].set_index("key")
    assert list(rows.index) == ["30d", "90d", "quarter_end"]
    assert (rows["won_deals_p10"] <= rows["expected_won_deals"]).all()
    assert (rows["expected_won_deals"] <= rows["won_deals_p90"]).all()
    assert (rows["revenue_p10"] <= rows["expected_won_revenue"]).all()
    assert rows.loc["30d", "expected_won_deals"] == pytest.approx(p30.sum(), abs=0.01)
    # 46 days to the quarter's end: between the 30- and 90-day answers
    assert rows.loc["30d", "expected_won_deals"] < rows.loc["quarter_end", "expected_won_deals"] \
        < rows.loc["90d", "expected_won_deals"]
    assert horizons.quarter_end(as_of) == pd.Timestamp("2026-06-30")
    assert horizons.quarter_end(pd.Timestamp("2026-06-30")) == pd.Timestamp("2026-09-30")
    # a fiscal year starting in February: its quarter ends on 2026-07-31, 77 days on
    assert horizons.quarter_end(as_of, 2) == pd.Timestamp("2026-07-31")
    fiscal = horizons.horizon_probabilities(by_horizon, as_of, 2)[0]["quarter_end"]
    assert (keyed["quarter_end"] <= fiscal).all() and (fiscal < keyed["90d"]).any()
    np.testing.assert_allclose(fiscal, horizons.within_days(by_horizon, 77))


def test_a_leaking_export_is_named_in_the_quality_report_and_the_summary(tmp_path):
    from salesintel_assets.resources.crm import SampleCRM
    from salesintel_assets.resources.factory import build_resources
    from salesintel_assets_tests.support import read_table, run_selection

    home = tmp_path / "home"
    crm = SampleCRM(n_deals=800, seed=3, leaking_amount=True, with_activities=False)
    assert run_selection(build_resources(home=str(home), crm=crm), "group:ingestion").success
    report = read_table(home, "data_quality_report")
    leaks = report[report["action"] == "exclude"].set_index("rule")
    assert leaks.loc["leakage:deal_amount", "detail"].startswith(
        "deal_amount looks like it encodes the outcome: 0 on 100 % of lost deals")
    assert "leakage:sales_cycle_days" in leaks.index
    summary = run_summary(Warehouse(home=SalesintelHome(path=str(home))))
    assert "excluded column: deal_amount looks like it encodes the outcome" in summary


def test_a_leak_is_named_when_the_export_says_won_and_lost_only_by_stage(tmp_path, skygeni_csv):
    """Many exports have no outcome column worth the name: the stage is Won
    or Lost and the closed value is the amount (0 on every lost deal)."""
    from salesintel_assets_tests.support import csv_resources, read_table, run_job

    frame = pd.read_csv(skygeni_csv, dtype=str, keep_default_na=False)
    lost = frame["outcome"] == "Lost"
    frame = frame.assign(deal_stage=frame["outcome"].str.upper(), outcome="",
                         deal_amount=frame["deal_amount"].where(~lost, "0"))
    path = tmp_path / "export.csv"
    frame.to_csv(path, index=False)
    home = tmp_path / "home"
    assert run_job(csv_resources(home, path, as_of="2024-07-20"), job="ingestion_job").success
    leaks = read_table(home, "data_quality_report").query("action == 'exclude'").set_index("rule")
    assert leaks.loc["leakage:deal_amount", "detail"].startswith(
        "deal_amount looks like it encodes the outcome: 0 on 100 % of lost deals")
    assert leaks.loc["leakage:deal_amount", "rows"] == 5000
    # an outcome that contradicts nothing wins over the stage; an open deal is never screened
    raw = pd.DataFrame({"outcome": ["Won", "", "", "Open", "lost", "CLOSED_WON", ""],
                        "deal_stage": ["Lost", "won", "Demo", "Lost", "Demo", "Demo", "closed-lost"]})
    assert leakage.export_outcomes(raw, ["Won", "Closed Won"], ["Lost", "Closed Lost"]).tolist() == \
        ["won", "won", "", "", "lost", "won", "lost"]     # spelt any way, as ingestion reads them


def test_the_backtest_check_judges_only_dates_with_open_deals(tmp_path):
    """A closed-only export analysed today: no deal was open on any backtest
    date, so nothing was forecast and nothing missed; a date that did miss
    is said in numbers."""
    from salesintel_assets.checks.models import forecast_win_rate_within_target

    warehouse = Warehouse(home=SalesintelHome(path=str(tmp_path)))
    with warehouse.connect() as con:
        con.register("_b", pd.DataFrame({"status": ["ok", "ok", "ok"], "open_deals": [0, 0, 40],
                                         "error_points": [np.nan, np.nan, -7.5], "within_target": [False] * 3,
                                         "won_deals_in_interval": [True, True, False]}))
        con.execute("CREATE TABLE forecast_backtest AS SELECT * FROM _b")
    result = forecast_win_rate_within_target(warehouse=warehouse)
    assert not result.passed and result.description == (
        "the forecast win rate missed its target on 1 of 1 backtest dates (worst 7.5 points off the share of "
        "deals that then closed won)")
    with warehouse.connect() as con:
        con.execute("DELETE FROM forecast_backtest WHERE open_deals > 0")
    result = forecast_win_rate_within_target(warehouse=warehouse)
    assert result.passed and result.description.startswith("not enough data for any backtest date")
