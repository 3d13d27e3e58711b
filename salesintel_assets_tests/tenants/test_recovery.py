"""Recovery of one tenant: a run killed mid-way re-runs cleanly (tables
right, every message delivered exactly once), and a backup restored under
another folder reproduces the tables and the champion model."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from salesintel_assets.domain.common.backup import BackupError, backup_tenant, restore_tenant
from salesintel_assets.domain.common.storage import RAW_DEALS_LAKE
from salesintel_assets.domain.common.tenants import TenantConfig, add_tenant, tenant_root
from salesintel_assets.resources.mlflow import MLflowTracking
from salesintel_assets.resources.warehouse import SalesintelHome
from salesintel_assets_tests.support import light_rules, read_ledger, read_table, run_job, sample_resources

TENANT = "acme"
N_DEALS = 800


def _tables(root: Path) -> dict[str, pd.DataFrame]:
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        names = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                           "WHERE table_schema = 'main' ORDER BY 1").fetchall()]
        return {name: con.sql(f'SELECT * FROM main."{name}"').df() for name in names}
    finally:
        con.close()


def _champion(root: Path):
    tracking = MLflowTracking(home=SalesintelHome(path=str(root)), model_name=f"deal_risk_{TENANT}")
    return tracking.version_by_alias("champion"), tracking


def _kill_mid_run(home: Path) -> int:
    """`salesintel run --tenant acme` in a process of its own, killed once its
    pull is stored in the lake (the warehouse and later layers still to come)."""
    lake = tenant_root(home, TENANT) / RAW_DEALS_LAKE
    env = {**os.environ, "SALESINTEL_HOME": str(home)}
    env.pop("DAGSTER_HOME", None)
    process = subprocess.Popen([sys.executable, "-m", "salesintel_assets.cli", "run", "--tenant", TENANT],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        while process.poll() is None and not any(lake.glob("*.parquet")):
            try:
                process.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return process.returncode


@pytest.fixture(scope="module")
def recovered(tmp_path_factory):
    home = tmp_path_factory.mktemp("tenants") / "home"
    rules = light_rules(tmp_path_factory.mktemp("rules"))  # one model candidate: recovery, not model choice
    add_tenant(home, TENANT, TenantConfig(source="sample", n_deals=N_DEALS, seed=5, rules=str(rules)))
    killed = _kill_mid_run(home)
    result = run_job(sample_resources(home), tenant=TENANT, raise_on_error=False)
    return home, killed, result


def test_a_killed_run_reruns_cleanly(recovered):
    home, killed, result = recovered
    root = tenant_root(home, TENANT)
    assert killed == -signal.SIGKILL  # the first run really died mid-way
    assert result.success
    fact, raw = read_table(root, "fact_deals"), read_table(root, "raw_deals")
    assert fact["deal_id"].is_unique and raw["deal_id"].is_unique and set(fact["deal_id"]) <= set(raw["deal_id"])
    assert len(fact) >= 0.98 * N_DEALS  # the sample's planted bad rows are quarantined, nothing else is lost
    # wherever the kill fell (before or after the warehouse took its pull), every reported pull is in the
    # lake and no pull is reported twice
    report = read_table(root, "data_quality_report")
    lake_pulls = {path.stem for path in (root / RAW_DEALS_LAKE).glob("*.parquet")}
    assert len(report) > 0 and set(report["pull_id"]) <= lake_pulls
    assert not report.duplicated(subset=["pull_id", "rule"]).any()
    quarantined = read_table(root, "quarantined_deals")
    assert len(quarantined) > 0 and not quarantined.duplicated(subset=["deal_id", "rule"]).any()
    assert len(list((root / RAW_DEALS_LAKE).glob("*.parquet"))) >= 1
    ledger = read_ledger(root)
    assert len(ledger) > 0 and ledger["delivery_id"].is_unique
    assert set(ledger["status"]) == {"sent"}
    delivered = pd.read_json(root / "outbox" / "outbox.jsonl", lines=True)
    assert delivered["delivery_id"].is_unique and len(delivered) == len(ledger)  # exactly once
    assert not (home / "warehouse.duckdb").exists()  # the default tenant was never touched


def test_backup_restored_elsewhere_reproduces_tables_and_champion(recovered, tmp_path):
    home, _, _ = recovered
    root = tenant_root(home, TENANT)
    champion, tracking = _champion(root)
    assert champion is not None
    backup = tmp_path / "backup"
    manifest = backup_tenant(root, backup, TENANT)
    assert "warehouse.duckdb" in manifest["files"] and "mlflow.db" in manifest["files"]
    with pytest.raises(BackupError, match="not empty"):
        backup_tenant(root, backup, TENANT)

    elsewhere = tmp_path / "other-home" / "tenants" / TENANT
    restore_tenant(backup, elsewhere)
    before, after = _tables(root), _tables(elsewhere)
    assert before.keys() == after.keys() and len(before) > 20
    for name in before:
        pd.testing.assert_frame_equal(before[name], after[name], obj=name)
    assert sorted(p.name for p in (elsewhere / RAW_DEALS_LAKE).glob("*.parquet")) == \
        sorted(p.name for p in (root / RAW_DEALS_LAKE).glob("*.parquet"))

    restored, restored_tracking = _champion(elsewhere)
    assert (restored.version, restored.run_id) == (champion.version, champion.run_id)
    original, copy = tracking.load_model(), restored_tracking.load_model()  # the copy loads from its new folder
    example = _input_example(elsewhere)
    assert (original.predict_proba(example) == copy.predict_proba(example)).all()

    with pytest.raises(BackupError, match="--replace"):
        restore_tenant(backup, elsewhere)
    (backup / "mlflow.db").write_bytes(b"damaged")
    with pytest.raises(BackupError, match="damaged: mlflow.db"):
        restore_tenant(backup, elsewhere, replace=True)


def _input_example(root: Path) -> pd.DataFrame:
    """The input example MLflow stored with the model (rows the model accepts)."""
    from mlflow.models import Model

    folder = str(sorted((root / "mlartifacts" / "models").glob("*/artifacts"))[0])
    return Model.load(folder).load_input_example(folder)
