"""Tenants run side by side with the multiprocess executor, each into its
own warehouse; one tenant's broken export fails only that tenant's run."""

import dagster as dg
import pandas as pd

from salesintel_assets.domain.common.tenants import tenant_root
from salesintel_assets.run_outcome import read_outcome
from salesintel_assets.tenant_runs import run_tenants
from salesintel_assets_tests.support import export_fact_deals, read_table
from salesintel_assets_tests.tenants.tenant_support import AS_OF, csv_tenant


def test_one_broken_export_stops_only_its_own_tenant(tmp_path):
    home = tmp_path / "home"
    # two tenants are enough to show it; each one more costs its step processes' start (seconds each)
    north = csv_tenant(home, "north", 240, seed=1)
    csv_tenant(home, "broken", 200, seed=3, drop=("deal_stage",))
    with dg.instance_for_test() as instance:
        results = run_tenants(["north", "broken"], instance, "fact_deals_job", home=str(home),
                              executor="multiprocess", parallel=2, selection="key:raw_deals or key:fact_deals",
                              check_steps=False)
        runs = {name: instance.get_run_by_id(result.run_id) for name, result in results.items()}
        for name, run in runs.items():  # each run is its tenant's partition, launched with the multiprocess executor
            assert run.tags["dagster/partition"] == name
        assert results["north"].success and not results["broken"].success
        blocked = read_outcome(results["broken"]).blocked
        assert any(e.event_type_value == "STEP_WORKER_STARTED" for e in results["north"].all_events)  # step processes
    assert "deal_stage" in blocked  # one sentence naming the missing column
    stored = read_table(tenant_root(home, "north"), "fact_deals").sort_values("deal_id").reset_index(drop=True)
    expected = export_fact_deals(north, AS_OF).sort_values("deal_id").reset_index(drop=True)
    assert len(stored) == len(expected) > 0
    pd.testing.assert_series_equal(stored["deal_id"], expected["deal_id"])
    pd.testing.assert_series_equal(stored["outcome"], expected["outcome"])
    assert stored["deal_amount"].astype(float).round(2).tolist() == \
        expected["deal_amount"].astype(float).round(2).tolist()
    assert not (home / "warehouse.duckdb").exists()  # the default tenant's warehouse was never touched
