"""The warehouse kept open between the uses of a run
(``domain/common/database_hold.py``): while the resource is set up for a run
the file stays open after each use, it is let go after a moment without use
and at the run's end, and outside a run nothing stays open."""

import subprocess
import sys

import dagster as dg
import pandas as pd
import pytest

from salesintel_assets.domain.common import database_hold
from salesintel_assets.resources.warehouse import SalesintelHome, Warehouse
from salesintel_assets_tests.deployment import wait_for


def _another_process_can_open(path) -> bool:
    code = f"import duckdb; duckdb.connect({str(path)!r}, read_only=True).close()"
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


@pytest.fixture
def warehouse(tmp_path):
    warehouse = Warehouse(home=SalesintelHome(path=str(tmp_path / "home")))
    warehouse.write_table("deals", pd.DataFrame({"deal_id": ["D1", "D2"]}))
    return warehouse


def test_outside_a_run_nothing_stays_open(warehouse):
    assert len(warehouse.read_table("deals")) == 2
    assert _another_process_can_open(warehouse.home.database)


def test_during_a_run_the_file_stays_open_between_uses_until_the_run_ends(warehouse, monkeypatch):
    monkeypatch.setattr(database_hold, "IDLE_SECONDS", 60.0)
    database = warehouse.home.database
    with dg.build_resources({"warehouse": warehouse}) as resources:   # set up and torn down as in a run
        assert len(resources.warehouse.read_table("deals")) == 2
        assert not _another_process_can_open(database)
        # a read-only use beside the open file (DuckDB refuses one opened differently in the same process)
        assert len(resources.warehouse.read_table("deals", read_only=True)) == 2
        resources.warehouse.write_table("deals", pd.DataFrame({"deal_id": ["D3"]}))
    assert _another_process_can_open(database)
    assert list(warehouse.read_table("deals", read_only=True)["deal_id"]) == ["D3"]


def test_an_idle_file_is_let_go_during_a_run_and_opened_again_on_the_next_use(warehouse, monkeypatch):
    monkeypatch.setattr(database_hold, "IDLE_SECONDS", 0.2)
    database = warehouse.home.database
    with dg.build_resources({"warehouse": warehouse}) as resources:
        with resources.warehouse.connect() as con:
            assert con.execute("SELECT count(*) FROM deals").fetchone() == (2,)
        wait_for(lambda: _another_process_can_open(database), "the idle warehouse let go", 30)
        assert len(resources.warehouse.read_table("deals")) == 2
