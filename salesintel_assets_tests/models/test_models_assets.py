"""The models layer materialised with real DuckDB and a real MLflow store in
a temporary home: two daily runs of the sample CRM (the second sees deals
that closed after the first champion was deployed), the SkyGeni export (all
closed), and a world too small to train on."""

import json
import shutil

import mlflow
import numpy as np
import pandas as pd
import pytest

from salesintel_assets.domain.common.rules import load_rules
from salesintel_assets.domain.models import forecast
from salesintel_assets.domain.models import horizons
from salesintel_assets.domain.models import features as rf
from salesintel_assets.domain.models import reporting, segment_changes
from salesintel_assets.domain.models import risk_scores as rs
from salesintel_assets.resources.factory import build_resources
from salesintel_assets.resources.crm import SampleCRM
from salesintel_assets.resources.warehouse import SalesintelHome, Warehouse
from salesintel_assets.summary import run_summary
from salesintel_assets_tests.models_support import rules_file, seed_mlflow_store
from salesintel_assets_tests.support import (check_results, csv_resources, read_table, run_selection,
                                             sample_resources)

CHAIN = "group:ingestion or group:warehouse or group:models"
# the chain up to the scores, for tests that look at neither the forecast nor its backtest (a third of a run)
TO_SCORES = "group:ingestion or group:warehouse or key:deal_risk_drift or key:deal_risk_model or key:deal_risk_scores"
FIRST, SECOND = "2026-05-15", "2026-06-30"
WARN_CHECKS = {"model_beats_baseline", "forecast_win_rate_within_target", "champion_not_degraded"}
FAST = {"forecast__backtest_dates": 2, "forecast__simulations": 500}
SAMPLE_DEALS = 1500


def _client(home):
    uri = f"sqlite:///{home}/mlflow.db"
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def _materialization(result, asset):
    return result.asset_materializations_for_node(asset)[-1].metadata


@pytest.fixture(scope="module")
def sample_runs(tmp_path_factory):
    """Day 1 trains the first champion; day 2 (six weeks later) checks it on
    the deals closed since, then trains a challenger."""
    home = tmp_path_factory.mktemp("models") / "home"
    seed_mlflow_store(home)
    rules = rules_file(tmp_path_factory.mktemp("rules"), **FAST)
    runs, replays = {}, {}
    real_prepare = rf.prepare

    def recorded_prepare(*args, **kwargs):   # each replay, with a copy to show no step changed it
        prepared = real_prepare(*args, **kwargs)
        replays[day].append((prepared, {k: getattr(prepared, k).copy() for k in ("fact", "snapshots", "states")}))
        return prepared

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rf, "prepare", recorded_prepare)
        for day in (FIRST, SECOND):
            replays[day] = []
            resources = sample_resources(home, n_deals=SAMPLE_DEALS, clock=day, rules_path=str(rules))
            runs[day] = run_selection(resources, CHAIN)
    return home, {day: runs[day] for day in (FIRST, SECOND)}, rules, replays


def test_every_check_passes_and_quality_signals_are_reported(sample_runs):
    _, runs, _, _ = sample_runs
    for result in runs.values():
        checks = {name: ok for name, ok in check_results(result).items() if name not in WARN_CHECKS}
        assert [name for name, ok in checks.items() if not ok] == []
        assert WARN_CHECKS <= set(check_results(result))
        # a warning the run prints must say what failed, not only the check's name
        failed = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
                  and not e.event_specific_data.passed]
        assert all(evaluation.description for evaluation in failed)


def test_mlflow_holds_the_runs_and_the_registered_versions(sample_runs):
    home, runs, _, _ = sample_runs
    client = _client(home)
    experiment = client.get_experiment_by_name("deal_risk")
    assert experiment.artifact_location.startswith("file:") and "mlartifacts" in experiment.artifact_location
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # the UI's training view
    model_runs = client.search_runs([experiment.experiment_id], "tags.fingerprint != ''")
    assert len(model_runs) == 2
    for run in model_runs:
        inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
        assert set(inputs) == {"deal_risk_training", "deal_risk_validation"}
        assert inputs["deal_risk_training"].tags[0].value == "training"
        assert json.loads(inputs["deal_risk_training"].dataset.profile)["num_rows"] > 0
    for run in model_runs:
        for metric in ("val_auc", "val_brier", "val_log_loss", "val_ece", "baseline_auc", "baseline_brier",
                       "baseline_log_loss", "baseline_ece", "age_baseline_auc", "model_usable",
                       "no_better_than_deal_age", "h90d_val_auc", "unseen_val_auc", "unseen_age_baseline_auc"):
            assert metric in run.data.metrics
        assert 0 < run.data.metrics["unseen_validation_rows"] < float(run.data.params["validation_rows"])
        assert run.data.tags["model_verdict"] == "usable" and run.data.tags["target"] == "won within 180 days"
    versions = client.search_model_versions("name='deal_risk'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    champion = client.get_model_version_by_alias("deal_risk", "champion")
    table = read_table(home, "deal_risk_model")
    assert list(table["version"]) == [1, 2] and list(table["status"]) == ["trained", "trained"]
    assert table["decision"].iloc[0] == "no champion yet"
    assert int(table["champion_version"].iloc[-1]) == int(champion.version)
    second = table.iloc[-1]
    if int(champion.version) == 1:     # the day-2 model did not beat the day-1 champion on the same deals
        assert str(client.get_model_version_by_alias("deal_risk", "challenger").version) == "2"
        assert second["decision"].startswith("champion kept")
    else:
        assert second["decision"].startswith("challenger")
    assert second["champion_score"] == second["champion_score"]           # both scores recorded
    meta = _materialization(runs[SECOND], "deal_risk_model")
    assert meta["decision"].value == second["decision"]
    assert {"challenger_score", "champion_score", "champion_version", "validation", "reliability"} <= set(meta)
    assert meta["model_verdict"].value == "usable" and meta["verdict_reason"].value.startswith("beats deal age")
    assert "mlflow ui --backend-store-uri sqlite:///" in meta["mlflow_ui"].value
    run = client.get_run(client.get_model_version("deal_risk", str(second["version"])).run_id)
    metrics = run.data.metrics   # the four levels recorded, and said
    levels = {days: [metrics[f"{name}_level_{days}d"] for name in ("calibration", "recent", "trend", "cohort")]
              for days in (30, 90, 180)}
    note = meta["served_levels"].value
    assert all(f"- {days} days: odds x{np.exp(sum(parts)):.2f} (the calibration and validation periods' level "
               f"x{np.exp(parts[0]):.2f}, the latest windows' x{np.exp(parts[1]):.2f}, "
               f"the cohort trend's x{np.exp(parts[3]):.2f})" in note
               and parts[2] == 0 for days, parts in levels.items())
    assert "off: risk.level_trend_quarters is 0" in note and "the trend's" not in note   # the shipped rules
    assert run.data.params["level_trend_quarters"] == "0"   # the zero trend metrics read as off in MLflow too
    # the sample CRM's cohorts win alike: the trend is measured, said with its noise, and moves nothing
    assert run.data.params["cohort_trend_min_z"] == "3.0"
    assert abs(metrics["cohort_trend_per_year"]) < 3 * metrics["cohort_trend_se"]
    assert metrics["cohort_trend_served_per_year"] == 0 and not any(parts[3] for parts in levels.values())
    assert "within noise, so no level moves for it" in meta["cohort_trend"].value


def test_scores_follow_the_contract_and_come_from_the_champion(sample_runs):
    home, _, _, _ = sample_runs
    scores = read_table(home, "deal_risk_scores")
    fact = read_table(home, "fact_deals")
    assert list(scores.columns) == rs.SCORE_COLUMNS
    assert set(scores["deal_id"]) == set(fact.loc[fact["is_open"], "deal_id"])
    champion = _client(home).get_model_version_by_alias("deal_risk", "champion")
    assert (scores["model_version"] == int(champion.version)).all()
    assert (scores["as_of_date"] == pd.Timestamp(SECOND)).all()
    assert scores["reason_1"].notna().all() and set(scores["risk_band"]) <= {"low", "medium", "high"}
    assert (scores["model_verdict"] == "usable").all()
    assert (scores["win_probability_30d"] <= scores["win_probability_90d"]).all()
    assert (scores["win_probability_90d"] <= scores["win_probability"]).all()


def test_drift_judges_each_horizon_on_its_own_matured_outcomes(sample_runs):
    home, _, _, _ = sample_runs
    drift = read_table(home, "deal_risk_drift")
    assert list(drift["status"].iloc[:1]) == ["no champion"]
    live = drift[drift["as_of_date"] == pd.Timestamp(SECOND)].set_index("horizon_days")
    assert list(live.index) == [30, 90, 180]
    assert (live["model_version"] == 1).all() and (live["deployed_as_of"] == pd.Timestamp(FIRST)).all()
    # 30 days: every deal open on FIRST or created after it, as first scored, whose 30 days ended by SECOND
    fact = read_table(home, "fact_deals")
    deals = fact[~fact["needs_review"] & (fact["is_open"] | (fact["closed_date"] > fact["created_date"]))]
    first = deals["created_date"].clip(lower=pd.Timestamp(FIRST))
    judged = (first <= pd.Timestamp(SECOND) - pd.Timedelta(days=30)) & (
        deals["is_open"] | (deals["closed_date"] > first))
    won = judged & deals["is_won"].astype(bool) & (deals["closed_date"] <= first + pd.Timedelta(days=30))
    month = live.loc[30]
    assert month["new_deals"] == judged.sum() > 100 and month["won"] == won.sum()
    assert 0.5 < month["live_auc"] <= 1 and month["status"] in ("ok", "degraded")
    for days in (90, 180):     # six weeks after deployment no 90- or 180-day window has ended: no verdict
        assert live.loc[days, "status"] == "not enough data" and live.loc[days, "new_deals"] == 0
        assert f"no {days}-day window" in live.loc[days, "reason"]
    client = _client(home)
    runs = client.search_runs([client.get_experiment_by_name("deal_risk").experiment_id], "tags.kind = 'drift'")
    assert len(runs) == 1 and runs[0].data.metrics["h30d_live_auc"] == pytest.approx(month["live_auc"])
    assert client.get_model_version("deal_risk", "1").tags["live_status"] == month["status"]


def test_forecast_by_close_month_and_segment_with_a_backtest(sample_runs):
    home, runs, _, _ = sample_runs
    table = read_table(home, "pipeline_forecast")
    scores = read_table(home, "deal_risk_scores")
    assert list(table.columns) == forecast.FORECAST_COLUMNS
    assert {"close_month", "industry", "lead_source", "total"} <= set(table["grouping"])
    total = table[table["grouping"] == "total"].iloc[0]
    assert total["open_deals"] == len(scores)
    assert total["expected_won_deals"] == pytest.approx(scores["win_probability"].sum(), abs=0.01)
    assert total["revenue_p10"] < total["expected_won_revenue"] < total["revenue_p90"]
    # by close month: every deal's chance spread over the months of the main horizon; a month's deals are
    # those the scores expect to close in it
    months = table[table["grouping"] == "close_month"].set_index("key")
    assert months["expected_won_deals"].sum() == pytest.approx(total["expected_won_deals"], abs=0.05)
    assert len(months) >= 6 and (months["expected_won_deals"] > 0).sum() >= 5
    expected_months = scores["expected_close_month"].value_counts()
    assert months["open_deals"].to_dict() == expected_months.reindex(months.index).fillna(0).astype(int).to_dict()
    rows = table[table["grouping"] == "horizon"].set_index("key")
    assert list(rows.index) == ["30d", "90d", "quarter_end"]
    assert (rows["won_deals_p10"] <= rows["expected_won_deals"]).all()
    assert (rows["expected_won_deals"] <= rows["won_deals_p90"]).all()
    # the horizon rows move only the segments whose latest closes moved (at 1,500 deals the
    # planted drop is too small to prove: a few dozen closes at most, none found); the past lean is shown, not removed
    meta = _materialization(runs[SECOND], "pipeline_forecast")
    rules = load_rules(sample_runs[2]).risk
    closes = Warehouse(home=SalesintelHome(path=str(home))).query(
        reporting.SEGMENT_CLOSES_SQL, list(forecast.segment_window(pd.Timestamp(SECOND), rules)))
    changes = segment_changes.find(closes, pd.Timestamp(SECOND), rules.forecast.segment_changes)
    assert meta["segment_changes"].value == segment_changes.note(changes)
    p90 = scores["win_probability_90d"].to_numpy()
    moved = forecast.shifted(p90, segment_changes.applied(scores, p90, changes)[0]).sum()
    assert rows.loc["90d", "expected_won_deals"] == pytest.approx(moved, abs=0.05)
    assert meta["model_expected_won_deals_90d"].value == pytest.approx(p90.sum(), abs=0.05)
    # the quarter's end lies between the 30- and 90-day answers where earlier quarters' wins came
    as_of = pd.Timestamp(SECOND)
    won = Warehouse(home=SalesintelHome(path=str(home))).query(reporting.SEGMENT_CLOSES_SQL,
                                                               list(horizons.timing_window(as_of)))
    keyed, timing = horizons.horizon_probabilities(horizons.scored_horizons(scores, rules.win_horizon_days), as_of,
                                                   won=won[won["is_won"]])
    assert timing["wins"] > 0 and meta["quarter_end_timing"].value == horizons.timing_note(timing)
    at_quarter_end = forecast.shifted(keyed["quarter_end"], segment_changes.applied(scores, p90, changes)[0]).sum()
    assert rows.loc["quarter_end", "expected_won_deals"] == pytest.approx(at_quarter_end, abs=0.05)
    assert "backtest dates; not removed" in meta["past_lean_note"].value
    table = read_table(home, "forecast_backtest")
    backtest = table[table["status"] != forecast.LATE_STATUS]
    assert len(backtest) == 2 and (backtest["status"] == "ok").all()
    assert (backtest["pending_deals"] == 0).all()   # every deal open then, judged on its 90-day window
    assert _materialization(runs[SECOND], "pipeline_forecast")["sigma_source"].value.startswith("backtest")
    # two dates a month apart: neither saw the other's 90-day window end, so no past forecast was judged
    assert (backtest["judged_by_dates"] == 0).all()
    # and the latest 30-day windows that have ended, against the level just before them
    late = table[table["status"].str.startswith(forecast.LATE_STATUS)]
    assert len(late) == 1 and late["window_days"].iloc[0] == 30
    assert _materialization(runs[SECOND], "forecast_backtest")["late_window_sigma"].value == pytest.approx(
        forecast.late_change(table), abs=1e-4)
    assert meta["trust_note"].value.startswith("not enough data to say how far it can be trusted")


def test_rerunning_on_the_same_data_registers_nothing_new(sample_runs):
    home, _, rules, _ = sample_runs
    resources = sample_resources(home, n_deals=SAMPLE_DEALS, clock=SECOND, rules_path=str(rules))
    scores = read_table(home, "deal_risk_scores")
    result = run_selection(resources, "key:deal_risk_model or key:deal_risk_scores")
    table = read_table(home, "deal_risk_model")
    assert len(table) == 2 and table["status"].iloc[-1] == "unchanged"
    assert len(_client(home).search_model_versions("name='deal_risk'")) == 2
    # same version, day and deals: every score is carried, none predicted again, and the table is the same
    assert _materialization(result, "deal_risk_scores")["deals_predicted"].value == 0
    pd.testing.assert_frame_equal(read_table(home, "deal_risk_scores"), scores)


def test_each_run_replays_the_deals_once_for_every_models_step_and_no_step_changes_it(sample_runs):
    """Day 1: the model, scores and backtest share one replay (no champion to judge yet); day 2 the drift
    check's replay serves them too."""
    *_, replays = sample_runs
    assert {day: len(made) for day, made in replays.items()} == {FIRST: 1, SECOND: 1}
    for made in replays.values():
        for prepared, copies in made:
            for name, copy in copies.items():
                pd.testing.assert_frame_equal(getattr(prepared, name), copy)


@pytest.fixture(scope="module")
def skygeni_run(tmp_path_factory, skygeni_csv):
    folder = tmp_path_factory.mktemp("skygeni_models")
    home, export = folder / "home", folder / "export.csv"
    shutil.copy(skygeni_csv, export)
    seed_mlflow_store(home)
    rules = rules_file(folder, **FAST)
    return home, export, rules, run_selection(csv_resources(home, export, rules_path=str(rules)), CHAIN)


def test_skygeni_export_trains_on_creation_facts_and_is_not_promoted(skygeni_run):
    home, _, _, result = skygeni_run
    assert result.success
    model = read_table(home, "deal_risk_model").iloc[-1]
    assert model["status"] == "trained" and model["feature_mode"] == rf.CREATION_ONLY
    tags = _client(home).get_model_version("deal_risk", str(int(model["version"]))).tags
    assert "stage" not in tags["categorical"].split(",") and "sales_cycle_days" not in tags["numeric"]
    assert "creation attributes and age so far only" in tags["feature_description"]
    # no signal beyond deal age: weak, never the champion, and the run says so
    assert model["model_verdict"] == "weak" and model["verdict_reason"].startswith("no better than")
    assert tags["model_verdict"] == "weak" and _client(home).get_registered_model("deal_risk").aliases.get(
        "champion") is None
    assert "no better than" in run_summary(Warehouse(home=SalesintelHome(path=str(home))))
    scores, table = read_table(home, "deal_risk_scores"), read_table(home, "pipeline_forecast")
    assert scores.empty and list(scores.columns) == rs.SCORE_COLUMNS   # every deal in the export is closed
    assert table.empty and list(table.columns) == forecast.FORECAST_COLUMNS


def _edit_amounts(export, share: float, seed: int) -> int:
    frame = pd.read_csv(export, dtype=str, keep_default_na=False)
    rows = np.random.default_rng(seed).choice(len(frame), int(len(frame) * share), replace=False)
    frame.loc[rows, "deal_amount"] = (pd.to_numeric(frame.loc[rows, "deal_amount"]) + 100).astype(str).to_numpy()
    frame.to_csv(export, index=False)
    return len(rows)


def test_a_weak_model_is_kept_on_a_same_day_rerun_with_few_changes_and_retrained_when_many_changed(skygeni_run):
    """A weak model is never champion; a same-day re-run still keeps it (and
    its backtest) when at most retrain_changed_share of the deals changed."""
    home, export, rules, _ = skygeni_run
    resources = csv_resources(home, export, rules_path=str(rules))
    rerun = "group:ingestion or group:warehouse or key:deal_risk_model or key:forecast_backtest"
    first, backtest = read_table(home, "deal_risk_model").iloc[-1], read_table(home, "forecast_backtest")
    assert first["model_verdict"] == "weak"
    edited = _edit_amounts(export, 0.01, seed=1)
    run_selection(resources, rerun)
    kept = read_table(home, "deal_risk_model").iloc[-1]
    assert kept["status"] == "kept" and kept["version"] == first["version"]
    assert kept["decision"].startswith(f"kept: {edited:,} of ")
    assert len(_client(home).search_model_versions("name='deal_risk'")) == 1
    pd.testing.assert_frame_equal(read_table(home, "forecast_backtest"), backtest)
    _edit_amounts(export, 0.1, seed=2)      # above retrain_changed_share (5 %)
    run_selection(resources, rerun)
    retrained = read_table(home, "deal_risk_model").iloc[-1]
    assert retrained["status"] == "trained" and retrained["version"] == first["version"] + 1
    assert len(_client(home).search_model_versions("name='deal_risk'")) == 2


SHORT_AS_OF = "2023-07-31"   # seven months into the SkyGeni-shaped export: too short for 180-day windows


def _short_history_run(folder, **overrides):
    """The SkyGeni-shaped export as its CRM stood seven months in."""
    from salesintel_assets_tests.export_replay import as_of_export
    from salesintel_assets_tests.skygeni_like import skygeni_like_export

    home, export = folder / "home", folder / "export.csv"
    as_of_export(skygeni_like_export(), pd.Timestamp(SHORT_AS_OF), load_rules().stages).to_csv(export, index=False)
    seed_mlflow_store(home)
    rules = rules_file(folder, **FAST, **overrides)
    return home, run_selection(csv_resources(home, export, as_of=SHORT_AS_OF, rules_path=str(rules)), CHAIN)


def test_a_history_too_short_for_the_main_horizon_gets_a_90_day_model_scores_and_a_forecast(tmp_path):
    home, result = _short_history_run(tmp_path)
    assert result.success
    model = read_table(home, "deal_risk_model").iloc[-1]
    assert model["status"] == "trained" and model["win_horizon_days"] == 90
    assert model["served_by"] == model["candidate"]   # as old as the open deals: the model answers
    assert model["horizon_note"].startswith("the history is too short for 180-day win probabilities: the model "
                                            "answers won within 90 days")
    tags = _client(home).get_model_version("deal_risk", str(int(model["version"]))).tags
    assert tags["win_horizon_days"] == "90" and tags["target"] == "won within 90 days"
    scores = read_table(home, "deal_risk_scores")
    assert len(scores) == read_table(home, "fact_deals")["is_open"].sum() > 0
    # the main probability is the 90-day one, and the 30-day one is never above it
    np.testing.assert_array_equal(scores["win_probability"], scores["win_probability_90d"])
    assert (scores["win_probability_30d"] <= scores["win_probability"]).all()
    table = read_table(home, "pipeline_forecast")
    assert set(table.loc[table["grouping"] == "horizon", "key"]) == {"30d", "90d", "quarter_end"}
    summary = run_summary(Warehouse(home=SalesintelHome(path=str(home))))
    assert f"  - {model['horizon_note']}" in summary.splitlines()
    assert "wins expected in the next 90 days:" in summary
    assert pd.isna(model["quarter_note"]) and "wins bunch" not in summary   # no season, no quarters moved


def _outside_world_scored(folder, as_of: str, seed: int, **world):
    """A generated CRM's export on ``as_of`` (``outside_world``) run through the
    scores and the backtest in ``folder``: its home and the deals open then."""
    from salesintel_assets_tests.outside_world import export_on, generate

    home, export = folder / "home", folder / "export.csv"
    frame, still_open = export_on(generate(seed, **world), pd.Timestamp(as_of))
    frame.to_csv(export, index=False)
    seed_mlflow_store(home)
    rules = rules_file(folder, **FAST)
    assert run_selection(csv_resources(home, export, as_of=as_of, rules_path=str(rules)),
                         f"{TO_SCORES} or key:forecast_backtest").success
    return home, still_open


def test_a_young_crm_whose_open_deals_linger_is_answered_by_the_age_curve_that_ranked_past_days_better(tmp_path):
    """Eight months of a CRM whose stuck deals stay open: the 180-day model's
    fit saw deals up to about two months old, most open deals are older,
    and many wins came later in a deal's life. The age curve of every deal,
    fitted on every deal known on each past day, ranked the deals open then
    better than the model retrained then, so it answers today's open deals
    alone, the backtest replays it, and the summary says so."""
    from sklearn.metrics import roc_auc_score

    from salesintel_assets_tests.outside_world import best_probability, won_within

    as_of = "2024-08-31"
    home, still_open = _outside_world_scored(tmp_path, as_of, 573, deals=2500, months=8)
    model = read_table(home, "deal_risk_model").iloc[-1]
    assert model["status"] == "trained" and model["win_horizon_days"] == 180 and model["served_by"] == "age_curve"
    assert model["horizon_note"].startswith("the history is short for the open deals' ages: ")
    assert "are older than any deal the 180-day model learned from (" in model["horizon_note"]
    assert ("every open deal's probabilities come from the age curve alone (fitted on every deal known on the "
            "analysis date") in model["horizon_note"]
    assert f"for the {model['candidate']} model retrained then and " in model["horizon_note"]
    tags = _client(home).get_model_version("deal_risk", str(int(model["version"]))).tags
    assert tags["horizon_note"] == model["horizon_note"] and tags["served_by"] == "age_curve"
    logged = _client(home).get_run(model["run_id"]).data.metrics
    assert logged["age_curve_serves"] == 1 and logged["replayed_days"] == 1
    # the model's replay ranked a hair better (0.7486 against 0.7481), well within the difference's noise
    assert logged["replayed_curve_auc"] > logged["replayed_age_auc"]
    assert logged["replayed_model_auc"] - logged["replayed_curve_auc"] <= logged["replayed_auc_gap_se"]
    # the backtest replays the curve (its one replay read 124 wins where 122 came; the model's read 161 before
    # it followed the curve past its reach)
    backtest = read_table(home, "forecast_backtest")
    replay = backtest.query("status == 'ok'")
    assert len(replay) == 1 and (replay["model"] == "age_curve").all()
    assert abs(replay["expected_won_deals"].iloc[0] / replay["actual_won_deals"].iloc[0] - 1) < 0.1
    scores = read_table(home, "deal_risk_scores")
    won = won_within(still_open, pd.Timestamp(as_of)).reindex(scores["deal_id"]).to_numpy()
    old, expected = scores["age_days"].to_numpy() > 90, scores["win_probability_90d"].to_numpy()
    # carried on from the young states the models learned, the deals over 90 days old read 52 wins where 11 came
    # and all open deals 202 where 140 came; with the curve past the models' reach 14 and 163; by the curve
    # alone 13 and 146, moved for the day's place in the quarter (two earlier quarters read it low) 160; the
    # world's own chances read 150
    assert won[old].sum() / 2 < expected[old].sum() < 2 * won[old].sum()
    own = best_probability(still_open, pd.Timestamp(as_of), 1573, 0.3, True, 0.5)
    assert abs(expected.sum() / own.sum() - 1) < 0.1
    # and it ranks the open deals above deal age alone (0.789 against 0.759; the models past their reach 0.772)
    assert roc_auc_score(won, expected) > roc_auc_score(won, -scores["age_days"]) + 0.02
    # the curve at its own level reads no clock: the same day of two earlier quarters, read on it, moves it
    assert "; today's place in the quarter: on the same day of 2 earlier quarters the 90-day chances" in \
        model["horizon_note"]
    summary = run_summary(Warehouse(home=SalesintelHome(path=str(home))))
    assert f"  - {model['horizon_note']}" in summary.splitlines()


def test_on_a_quarters_last_day_a_young_crms_age_curve_reads_the_quarters_clock_as_the_model_does(tmp_path):
    """Nine months of a CRM whose wins are pulled into quarter ends, on a
    quarter's last day: many deals due early next quarter have closed
    already. The age curve alone reads an average day of the quarter; moved
    by the clock as the model reads it, its 90-day wins come close."""
    from salesintel_assets_tests.outside_world import won_within

    as_of = "2024-09-30"
    home, still_open = _outside_world_scored(tmp_path, as_of, 591, months=9)
    model = read_table(home, "deal_risk_model").iloc[-1]
    assert model["served_by"] == "age_curve" and model["model_verdict"] == "usable"
    assert "moved by the day's place in the quarter as the model reads the quarter's clock (odds x" in \
        model["horizon_note"]
    served = mlflow.sklearn.load_model(_client(home).get_model_version_download_uri("deal_risk",
                                                                                   str(int(model["version"]))))
    assert served.curve_by_clock and all(level < 0 for level in served.curve_levels)   # fewer wins than on average
    # the curve takes the model's clock, so the day's place is read on the model: two earlier quarters' same
    # day read +0.035 in log odds against the days around it, within noise, so the 90-day chances stay
    logged = _client(home).get_run(model["run_id"]).data.metrics
    assert logged["place_quarters_90d"] == 2 and logged["place_level_90d"] == 0
    assert dict(zip(served.horizons, served.place_levels))[90] == 0
    scores = read_table(home, "deal_risk_scores")
    won = won_within(still_open, pd.Timestamp(as_of)).reindex(scores["deal_id"]).to_numpy()
    expected = scores["win_probability_90d"].to_numpy()
    # 339 came; the curve alone read 402 (+19 %), moved by the clock 356 (+5 %)
    assert abs(expected.sum() / won.sum() - 1) < 0.1


def test_a_longer_history_whose_open_deals_the_age_curve_ranked_better_is_ranked_by_it_at_the_models_level(
        tmp_path):
    """Three years of a CRM with a low win rate: the age curve, fitted on
    each of the latest past days with what was known then, ranked the deals
    open then better than the blend retrained then, so it ranks today's
    open deals, at the model's level (its own is not measured on finished
    windows)."""
    from sklearn.metrics import roc_auc_score

    from salesintel_assets_tests.outside_world import won_within

    as_of = "2026-03-31"
    home, still_open = _outside_world_scored(tmp_path, as_of, 583, deals=3000, base=-1)
    model = read_table(home, "deal_risk_model").iloc[-1]
    assert model["served_by"] == "age_curve_at_model_level"
    assert model["horizon_note"].startswith("the open deals are ranked by the age curve (fitted on every deal known "
                                            "on the analysis date")
    assert f"for the {model['candidate']} model retrained then and " in model["horizon_note"]
    served = mlflow.sklearn.load_model(_client(home).get_model_version_download_uri("deal_risk",
                                                                                   str(int(model["version"]))))
    assert served.curve_serves and all(level != 0 for level in served.curve_levels)
    # the backtest judges the totals, which are the models': it replays them
    replays = read_table(home, "forecast_backtest").query("status == 'ok'")
    assert len(replays) and (replays["model"] == model["candidate"]).all()
    scores = read_table(home, "deal_risk_scores")
    won = won_within(still_open, pd.Timestamp(as_of)).reindex(scores["deal_id"]).to_numpy()
    # 0.822 against deal age's 0.768; the blend alone ranked them 0.788
    assert roc_auc_score(won, scores["win_probability_90d"]) > roc_auc_score(won, -scores["age_days"]) + 0.03
    summary = run_summary(Warehouse(home=SalesintelHome(path=str(home))))
    assert f"  - {model['horizon_note']}" in summary.splitlines()


def test_wins_that_bunch_at_other_months_ends_than_the_rules_quarters_are_in_the_run_summary(tmp_path):
    """A CRM whose fiscal year starts in February, run on the default rules
    (calendar quarters): the models' quarter clock follows its wins, and the
    summary says the forecast's quarter_end is still the rules' quarter."""
    from datetime import date

    from salesintel_assets.domain.ingestion import pulls as ingestion
    from salesintel_assets.sources import sample_crm

    world = sample_crm.generate_world(1500, 91, end_date=date(2026, 7, 31), never_close_share=0.3,
                                      with_activities=False, quarter_end_seasonality=True, fiscal_year_start_month=2)
    home, export = tmp_path / "home", tmp_path / "export.csv"
    ingestion.as_export_text(sample_crm.snapshot(world).deals).to_csv(export, index=False)
    seed_mlflow_store(home)
    rules = rules_file(tmp_path, **FAST)
    assert run_selection(csv_resources(home, export, as_of="2026-07-31", rules_path=str(rules)), TO_SCORES).success
    model = read_table(home, "deal_risk_model").iloc[-1]
    assert model["quarter_note"].startswith("wins bunch at the ends of January, April, July, October, not at the "
                                            "rules' quarter ends")
    assert "fiscal_year_start_month to 2 in the rules file" in model["quarter_note"]
    tags = _client(home).get_model_version("deal_risk", str(int(model["version"]))).tags
    assert tags["fiscal_year_start_month"] == "2" and "quarters starting in February" in tags["feature_description"]
    summary = run_summary(Warehouse(home=SalesintelHome(path=str(home))))
    assert f"  - {model['quarter_note']}" in summary.splitlines()


def test_without_the_fallback_a_short_history_gets_no_model_and_is_told_more_history_is_needed(tmp_path):
    home, result = _short_history_run(tmp_path, short_history_fallback=False)
    assert result.success
    model = read_table(home, "deal_risk_model").iloc[-1]
    assert model["status"] == "not enough data" and model["win_horizon_days"] == 180
    assert model["decision"].endswith("more history is needed, or a risk.win_horizon_days shorter than 180 in the "
                                      "rules file")
    assert read_table(home, "deal_risk_scores").empty and read_table(home, "pipeline_forecast").empty


def test_a_history_whose_first_closes_are_missing_trains_from_its_first_close_and_says_so(tmp_path):
    from salesintel_assets_tests.export_replay import as_of_export
    from salesintel_assets_tests.models.test_risk_model import _backlog_export

    home, export, day = tmp_path / "home", tmp_path / "export.csv", "2023-12-31"
    as_of_export(_backlog_export("2023-05-01"), pd.Timestamp(day), load_rules().stages).to_csv(export, index=False)
    seed_mlflow_store(home)
    result = run_selection(csv_resources(home, export, as_of=day, rules_path=str(rules_file(tmp_path, **FAST))),
                           TO_SCORES)
    assert result.success and check_results(result)["closes_recorded_without_gaps"] is False
    model = read_table(home, "deal_risk_model").iloc[-1]
    assert model["status"] == "trained" and model["fit_label_cutoff"] > pd.Timestamp("2023-05-01")
    tags = _client(home).get_model_version("deal_risk", str(int(model["version"]))).tags
    assert tags["learned_from"] == "2023-05-01"
    assert not read_table(home, "deal_risk_scores").empty


def test_too_little_history_since_missing_closes_says_why_there_is_no_model(tmp_path):
    from salesintel_assets_tests.export_replay import as_of_export
    from salesintel_assets_tests.models.test_risk_model import _backlog_export

    home, export, day = tmp_path / "home", tmp_path / "export.csv", "2023-07-15"
    as_of_export(_backlog_export("2023-05-01"), pd.Timestamp(day), load_rules().stages).to_csv(export, index=False)
    seed_mlflow_store(home)
    result = run_selection(csv_resources(home, export, as_of=day, rules_path=str(rules_file(tmp_path, **FAST))), CHAIN)
    assert result.success
    model = read_table(home, "deal_risk_model").iloc[-1]
    assert model["status"] == "not enough data"
    assert model["decision"].endswith("; closes before 2023-05-01 are missing, so the model learns from then on")
    assert read_table(home, "deal_risk_scores").empty


def test_too_few_closed_deals_registers_no_model_and_never_crashes(home, tmp_path):
    rules = rules_file(tmp_path, min_closed_deals=100_000, **FAST)
    result = run_selection(sample_resources(home, n_deals=600, rules_path=str(rules)), CHAIN)
    assert result.success
    # a first run without a model still writes tables that keep their schemas
    assert {name: ok for name, ok in check_results(result).items() if name.endswith("_schema_valid") and not ok} == {}
    model = read_table(home, "deal_risk_model")
    assert list(model["status"]) == ["not enough data"] and model["version"].isna().all()
    assert read_table(home, "deal_risk_scores").empty and read_table(home, "pipeline_forecast").empty
    assert _client(home).search_model_versions("name='deal_risk'") == []


def test_mlflow_store_defaults_to_the_home_and_a_tracking_uri_overrides_it(tmp_path):
    default = build_resources(home=str(tmp_path / "h"), crm=SampleCRM())["mlflow"]
    assert default.uri() == f"sqlite:///{tmp_path / 'h' / 'mlflow.db'}"
    assert default.artifact_location() == (tmp_path / "h" / "mlartifacts").as_uri()
    other = build_resources(home=str(tmp_path / "h"), crm=SampleCRM(),
                            mlflow_tracking_uri="http://127.0.0.1:5999")["mlflow"]
    assert other.uri() == "http://127.0.0.1:5999" and other.artifact_location() is None


def test_the_environment_maps_mlflow_tracking_uri(monkeypatch, tmp_path):
    import dagster as dg

    from salesintel_assets.resources.factory import environment_resources

    monkeypatch.setenv("SALESINTEL_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert environment_resources()["mlflow"].tracking_uri is None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert environment_resources()["mlflow"].tracking_uri == dg.EnvVar("MLFLOW_TRACKING_URI")
