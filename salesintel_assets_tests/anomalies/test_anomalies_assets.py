"""The anomalies asset on a real warehouse: the sample CRM and the shared
export, materialised with DuckDB into a temporary home, with the layer's
checks; its job and schedule."""

import pandas as pd
import pytest

from salesintel_assets.definitions import build_definitions
from salesintel_assets.domain.common.rules import load_rules
from salesintel_assets.schemas.anomalies import Anomalies
from salesintel_assets_tests.support import (
    check_results, csv_resources, read_table, run_job, run_selection, sample_resources,
)

CHAIN = "key:deal_metrics or key:anomalies"
CHECKS = ("anomalies_schema_valid", "segment_anomalies_supported_by_evidence", "stalled_deals_capped")


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("anomalies_sample")
    resources = sample_resources(home, n_deals=3000)
    run_job(resources, job="ingestion_job")
    result = run_selection(resources, CHAIN)
    return home, resources, result


def test_the_sample_crm_gets_its_anomalies(sample_run):
    home, _, result = sample_run
    table = read_table(home, "anomalies")
    Anomalies.validate(table)
    stalled = table[table["anomaly_type"] == "stalled_deal"]
    assert 0 < len(stalled) <= load_rules().anomalies.stalled.max_deals
    # Most severe (stalest) first, then money at stake (amount x the drop in win chance), not the biggest.
    for _, group in stalled[stalled["metric"] == "stage_duration"].groupby("severity", sort=False):
        assert group["amount_at_stake"].is_monotonic_decreasing
    assert stalled["severity"].map({"critical": 0, "high": 1, "medium": 2, "low": 3}).is_monotonic_increasing
    assert (stalled["severity"] == "critical").sum() <= load_rules().anomalies.stalled.max_crises
    known = stalled["historical_win_rate"].notna()
    assert (stalled.loc[known, "n"] >= load_rules().anomalies.stalled.min_history_deals).all()
    assert (stalled.loc[known, "historical_win_low"] <= stalled.loc[known, "historical_win_rate"]).all()
    fact = read_table(home, "fact_deals")
    assert set(stalled["deal_id"]) <= set(fact.loc[fact["is_open"], "deal_id"])
    assert (table["as_of_date"] == fact["as_of_date"].iloc[0]).all()
    checks = check_results(result)
    for name in CHECKS:
        assert checks[name], name


def test_a_rerun_keeps_the_anomaly_ids(sample_run):
    home, resources, _ = sample_run
    before = read_table(home, "anomalies")
    run_selection(resources, "key:anomalies")
    after = read_table(home, "anomalies")
    assert sorted(after["anomaly_id"]) == sorted(before["anomaly_id"])
    pd.testing.assert_frame_equal(after.sort_values("anomaly_id").reset_index(drop=True),
                                  before.sort_values("anomaly_id").reset_index(drop=True))


def test_the_shared_export_yields_no_anomalies(tmp_path, skygeni_csv):
    resources = csv_resources(tmp_path, skygeni_csv, as_of="2024-07-20")
    run_job(resources, job="ingestion_job")
    result = run_selection(resources, CHAIN)
    table = read_table(tmp_path, "anomalies")
    assert table.empty and list(table.columns) == list(Anomalies.to_schema().columns)
    checks = check_results(result)
    for name in CHECKS:
        assert checks[name], name
    event = result.get_asset_materialization_events()[-1]
    meta = event.materialization.metadata
    assert meta["segment_tests"].value > 0 and meta["segment_anomalies"].value == 0
    assert "no open deals" in meta["notes"].value


def test_the_job_runs_daily_at_seven(tmp_path):
    defs = build_definitions(sample_resources(tmp_path))
    job = defs.resolve_job_def("anomalies_job")
    assert {key.path[-1] for key in job.asset_layer.executable_asset_keys} == {"anomalies"}
    schedule = next(s for s in defs.schedules if s.job_name == "anomalies_job")
    assert schedule.cron_schedule == "0 7 * * *"


def _stored(tmp_path, rows: list[dict]):
    from salesintel_assets.resources.warehouse import SalesintelHome, Warehouse

    warehouse = Warehouse(home=SalesintelHome(path=str(tmp_path)))
    warehouse.write_table("anomalies", pd.DataFrame(rows))
    return warehouse


def _segment_row(**changes) -> dict:
    row = {"anomaly_id": "a" * 16, "anomaly_type": "win_rate_dip", "metric": "win_rate", "segment": "all",
           "dimension": "all", "direction": "down", "n": 120, "baseline_n": 700, "q_value": 0.001,
           "effect": -0.2, "observed": 0.25, "expected": 0.45, "amount_at_stake": 0.0}
    row.update(changes)
    return row


@pytest.mark.parametrize("bad", [{"n": 5}, {"baseline_n": 10}, {"q_value": 0.4},
                                 {"effect": -0.01, "observed": 0.44},
                                 {"anomaly_type": "cycle_slowdown", "metric": "sales_cycle_days", "direction": "up",
                                  "observed": 41.0, "expected": 40.0, "effect": 1.0}])
def test_the_evidence_check_fails_on_unsupported_rows(tmp_path, bad):
    from salesintel_assets.checks.anomalies import segment_anomalies_supported_by_evidence
    from salesintel_assets.resources.settings import SalesintelSettings

    settings = SalesintelSettings()
    good = segment_anomalies_supported_by_evidence(warehouse=_stored(tmp_path, [_segment_row()]), settings=settings)
    assert good.passed
    result = segment_anomalies_supported_by_evidence(warehouse=_stored(tmp_path, [_segment_row(**bad)]),
                                                     settings=settings)
    assert not result.passed and result.metadata["unsupported"].value == 1


def test_the_cap_check_fails_past_the_cap(tmp_path):
    from salesintel_assets.checks.anomalies import stalled_deals_capped
    from salesintel_assets.resources.settings import SalesintelSettings

    cap = load_rules().anomalies.stalled.max_deals
    rows = [{"anomaly_type": "stalled_deal", "amount_at_stake": 1000.0} for _ in range(cap + 1)]
    assert not stalled_deals_capped(warehouse=_stored(tmp_path, rows), settings=SalesintelSettings()).passed
    assert stalled_deals_capped(warehouse=_stored(tmp_path, rows[:cap]), settings=SalesintelSettings()).passed
