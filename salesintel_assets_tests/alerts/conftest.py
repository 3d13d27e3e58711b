"""Fixtures of the alerts layer's asset-level tests: one small sample
warehouse with planted anomalies, built once per session and copied per test."""

import shutil

import pandas as pd
import pytest

from salesintel_assets.resources.warehouse import SalesintelHome, Warehouse
from salesintel_assets_tests.alert_support import N_DEALS, segment, stalled
from salesintel_assets_tests.support import read_table, run_job, sample_resources


@pytest.fixture(scope="session")
def base_home(tmp_path_factory):
    """A warehouse from the sample CRM plus an anomalies table in the
    anomalies layer's contract: three large stalled deals of one rep (so the
    throttle is exercised with a cap of 2), a segment win-rate dip and a
    Partner quality drop."""
    home = tmp_path_factory.mktemp("alerts_base")
    run_job(sample_resources(home, n_deals=N_DEALS), job="ingestion_job")
    fact = read_table(home, "fact_deals")
    open_deals = fact[fact["is_open"]].sort_values("deal_id")
    rep = open_deals["sales_rep_id"].value_counts().index[0]
    mine = open_deals[open_deals["sales_rep_id"].eq(rep)].head(3)
    rows = [stalled(d, rep, 60_000.0 + i * 1000, days=50.0 + i) for i, d in enumerate(mine["deal_id"])]
    rows += [segment("win_rate_dip", "industry=FinTech&region=Europe",
                     root_cause="losses concentrated in Proposal"),
             segment("quality_drop", "lead_source=Partner", metric="dqs", observed=0.41, expected=0.62,
                     severity="low")]
    Warehouse(home=SalesintelHome(path=str(home))).write_table("anomalies", pd.DataFrame(rows))
    return home


@pytest.fixture
def alert_home(base_home, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(base_home / "warehouse.duckdb", home / "warehouse.duckdb")
    return home
