"""The metrics and drivers layers as Dagster assets: ingestion, warehouse,
metrics and drivers materialised into a temporary home with real DuckDB, on
the shared SkyGeni export and on a small sample CRM."""

import dagster as dg
import pandas as pd
import pytest

from salesintel_assets.definitions import build_definitions
from salesintel_assets_tests.support import (
    check_results, csv_resources, read_table, run_selection, sample_resources,
)

LAYERS = "group:ingestion or group:warehouse or group:metrics or group:drivers"
OUR_CHECKS = {
    "deal_metrics_schema_valid", "every_deal_scored", "segment_metrics_schema_valid",
    "segments_partition_closed_deals", "stage_conversion_schema_valid", "driver_scores_schema_valid",
    "win_rate_attribution_schema_valid", "attribution_effects_add_up", "driver_importance_schema_valid",
}


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    (event,) = result.asset_materializations_for_node(asset)
    return event.metadata


@pytest.fixture(scope="module")
def skygeni_run(skygeni_csv, tmp_path_factory):
    home = tmp_path_factory.mktemp("skygeni_home")
    result = run_selection(csv_resources(home, skygeni_csv, as_of="2024-07-20"), LAYERS)
    return home, result


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("sample_home")
    result = run_selection(sample_resources(home, n_deals=3000), LAYERS)
    return home, result


def test_skygeni_figures_are_right_and_honest(skygeni_run):
    home, result = skygeni_run
    assert result.success
    checks = check_results(result)
    assert {name: checks.get(name) for name in OUR_CHECKS} == {name: True for name in OUR_CHECKS}

    segments = read_table(home, "segment_metrics")
    overall = segments[(segments["dimension"] == "overall") & (segments["period_type"] == "all")].iloc[0]
    assert (overall["deals"], overall["won"]) == (5000, 2263)
    assert _metadata(result, "segment_metrics")["win_rate"].value == pytest.approx(0.4526)
    # no sweep of stale deals in this export: nothing counted apart, nothing left out of the attribution
    assert _metadata(result, "segment_metrics")["clean_up_closes"].value == 0
    assert segments["clean_up_closes"].eq(0).all() and segments["clean_up_won"].eq(0).all()

    deals = read_table(home, "deal_metrics")
    assert len(deals) == 5000 and not deals["low_quality"].any() and not deals["is_open"].any()

    scores = read_table(home, "driver_scores")
    tested = scores[scores["p_value"].notna()]
    # cycle_bin is left out: a deal's final cycle is known only after it closes (leakage guard)
    assert len(tested) == 20 and not scores["significant"].any() and "cycle_bin" not in set(scores["dimension"])
    assert "within noise" in _metadata(result, "driver_scores")["summary"].value

    attribution = read_table(home, "win_rate_attribution")
    assert set(attribution["period_a"]) == {"2024Q1"} and set(attribution["period_b"]) == {"2024Q2"}
    verdict = _metadata(result, "win_rate_attribution")["verdict"].value
    assert "not distinguishable from noise" in verdict and "left out" not in verdict

    importance = read_table(home, "driver_importance")
    assert not importance["meaningful"].any()
    assert "no better than chance" in _metadata(result, "driver_importance")["verdict"].value
    assert read_table(home, "stage_conversion").empty   # a file export has no stage history


def test_plots_are_embedded_in_the_metadata(skygeni_run):
    _, result = skygeni_run
    for asset, key in (("segment_metrics", "win_rate_by_month"), ("driver_scores", "drivers_chart"),
                       ("win_rate_attribution", "waterfall"), ("driver_importance", "importance_chart")):
        assert _metadata(result, asset)[key].value.startswith("![plot](data:image/png;base64,")


def test_sample_crm_metrics_and_drivers(sample_run):
    home, result = sample_run
    assert result.success
    checks = check_results(result)
    assert all(checks[name] for name in OUR_CHECKS)
    fact = read_table(home, "fact_deals")
    deals = read_table(home, "deal_metrics")
    assert len(deals) == len(fact) and deals["is_open"].sum() > 100
    open_deals = deals[deals["is_open"]]
    assert open_deals["pvs"].notna().all() and open_deals["dqs"].between(0, 1).all()
    assert {"critical", "healthy"} <= set(open_deals["smi_band"])
    conversion = read_table(home, "stage_conversion")
    assert set(conversion.loc[conversion["period_type"] == "all", "from_stage"]) == {
        "Qualified", "Demo", "Proposal", "Negotiation"}
    scores = read_table(home, "driver_scores").set_index(["dimension", "segment"])
    assert scores.loc[("lead_source", "Partner"), "direction"] == "hurting"
    importance = read_table(home, "driver_importance")
    assert importance["meaningful"].any()
    backtest = _metadata(result, "deal_metrics")["dqs_backtest"].value
    assert backtest["auc"]["dqs"] > 0.6


def test_failed_check_is_reported_when_attribution_is_tampered_with(sample_run):
    home, _ = sample_run
    from salesintel_assets.checks.drivers import attribution_effects_add_up
    from salesintel_assets.resources.warehouse import SalesintelHome, Warehouse

    warehouse = Warehouse(home=SalesintelHome(path=str(home)))
    table = warehouse.read_table("win_rate_attribution")
    try:
        warehouse.write_table("win_rate_attribution", table.assign(
            total_effect=table["total_effect"] + pd.Series([1e-6] + [0.0] * (len(table) - 1))))
        evaluation = attribution_effects_add_up(warehouse=warehouse)
        assert not evaluation.passed and evaluation.metadata["largest_gap"].value > 1e-9
    finally:
        warehouse.write_table("win_rate_attribution", table)


def test_jobs_and_schedules_follow_the_design_cadence(tmp_path):
    defs = build_definitions(sample_resources(tmp_path))
    metrics_job, drivers_job = defs.resolve_job_def("metrics_job"), defs.resolve_job_def("drivers_job")
    assert {"deal_metrics", "segment_metrics", "stage_conversion"} <= {
        n.name for n in metrics_job.graph.node_defs}
    assert {"driver_scores", "win_rate_attribution", "driver_importance"} <= {
        n.name for n in drivers_job.graph.node_defs}
    crons = {s.name: s.cron_schedule for s in defs.schedules}
    assert crons["metrics_every_4_hours"] == "30 */4 * * *" and crons["drivers_daily"] == "0 6 * * *"


def test_a_crm_with_no_closed_deals_gives_empty_tables_not_a_crash(tmp_path):
    export = tmp_path / "open_only.csv"
    header = "deal_id,created_date,closed_date,sales_rep_id,industry,region,product_type,lead_source," \
             "deal_stage,deal_amount,sales_cycle_days,outcome"
    rows = [f"D{i},2024-06-{i + 1:02d},,rep_{i % 3},SaaS,Europe,Core,Inbound,Demo,{1000 * (i + 1)},,Open"
            for i in range(8)]
    export.write_text("\n".join([header] + rows) + "\n")
    home = tmp_path / "home"
    result = run_selection(csv_resources(home, export, as_of="2024-07-01"), LAYERS)
    assert result.success
    checks = check_results(result)
    assert all(checks[name] for name in OUR_CHECKS)
    deals = read_table(home, "deal_metrics")
    assert len(deals) == 8 and deals["dqs"].isna().all() and deals["smi"].notna().all()
    for table in ("segment_metrics", "driver_scores", "win_rate_attribution", "driver_importance"):
        frame = read_table(home, table)
        assert frame.empty and len(frame.columns) > 5, table
    assert "not enough data" in _metadata(result, "driver_importance")["verdict"].value
    assert "no closed deals" in _metadata(result, "win_rate_attribution")["verdict"].value
