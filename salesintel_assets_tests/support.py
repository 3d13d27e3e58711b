"""Test helpers: build resources in a temporary home, run jobs in process,
read tables back from the real DuckDB file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

import dagster as dg
import duckdb
import pandas as pd
import yaml

from salesintel_assets.definitions import build_definitions
from salesintel_assets.domain.common.rules import default_rules_path
from salesintel_assets.domain.common.tenants import DEFAULT_TENANT
from salesintel_assets.resources.factory import build_resources
from salesintel_assets.tenant_runs import run_in_process


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """A folder ``build`` fills once per test session, however many workers
    ask (pytest-xdist runs each worker's session fixtures again): the first
    builds it under a lock in the folder all workers share, the others wait
    and reuse it. Callers copy it before changing anything."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):   # one process: its own temporary folder
        folder = tmp_path_factory.mktemp(name)
        build(folder)
        return folder
    from filelock import FileLock

    folder = tmp_path_factory.getbasetemp().parent / name   # this session's folder, above each worker's
    with FileLock(f"{folder}.lock"):
        if not (folder / ".built").exists():
            shutil.rmtree(folder, ignore_errors=True)      # a worker that failed half way
            folder.mkdir()
            build(folder)
            (folder / ".built").touch()
    return folder


def run_job(resources: dict, job: str = "salesintel_job", raise_on_error: bool = True,
            instance: dg.DagsterInstance | None = None, tenant: str = DEFAULT_TENANT,
            **kwargs) -> dg.ExecuteInProcessResult:
    """Run a job of the real definitions with these resources, in process,
    for one tenant (the default one unless named)."""
    defs = build_definitions(resources)
    return run_in_process(defs.resolve_job_def(job), tenant, instance, raise_on_error=raise_on_error, **kwargs)


def run_selection(resources: dict, selection: str, raise_on_error: bool = True,
                  instance: dg.DagsterInstance | None = None, tenant: str = DEFAULT_TENANT,
                  **kwargs) -> dg.ExecuteInProcessResult:
    """Materialise an asset selection string (e.g. ``"group:ingestion group:warehouse"``,
    ``"*deal_metrics"``) of the real definitions for one tenant."""
    defs = build_definitions(resources)
    job = dg.define_asset_job("test_selection_job", selection=selection)
    defs = dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
    return run_in_process(defs.resolve_job_def("test_selection_job"), tenant, instance,
                          raise_on_error=raise_on_error, **kwargs)


def read_table(home: Path, name: str) -> pd.DataFrame:
    con = duckdb.connect(str(Path(home) / "warehouse.duckdb"), read_only=True)
    try:
        return con.sql(f'SELECT * FROM main."{name}"').df()
    finally:
        con.close()


def read_ledger(home: Path) -> pd.DataFrame:
    """The live delivery ledger (SQLite) of a home."""
    from salesintel_assets.domain.alerts.ledger_store import LedgerStore
    from salesintel_assets.domain.common.storage import DELIVERIES_DIR

    store = LedgerStore(Path(home) / DELIVERIES_DIR)
    try:
        return store.read()
    finally:
        store.close()


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    """check name -> passed, for every check evaluated in the run."""
    out = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            out[evaluation.check_name] = evaluation.passed
    return out


def sample_resources(home: Path, **kwargs) -> dict:
    """Resources on the embedded sample CRM in a temporary home."""
    from salesintel_assets.resources.crm import SampleCRM

    crm_args = {k: kwargs.pop(k) for k in ("n_deals", "seed", "clock", "deleted_deal_ids") if k in kwargs}
    return build_resources(home=str(home), crm=SampleCRM(**crm_args), **kwargs)


def csv_resources(home: Path, path: Path, **kwargs) -> dict:
    from salesintel_assets.resources.crm import CsvCRM

    org_path = kwargs.pop("org_path", None)
    return build_resources(home=str(home), crm=CsvCRM(path=str(path), org_path=org_path), **kwargs)


def export_fact_deals(path: Path, as_of: str) -> pd.DataFrame:
    """fact_deals of a CRM export file (no stage history, no activities),
    through the real quality gates and warehouse SQL, in memory."""
    from salesintel_assets.domain.ingestion import pulls as ingestion
    from salesintel_assets.domain.ingestion import quality
    from salesintel_assets.domain.warehouse import upserts as warehouse
    from salesintel_assets.domain.common.rules import load_rules

    rules = load_rules()
    raw = ingestion.conform_raw(pd.read_csv(path, dtype=str, keep_default_na=False))
    clean = quality.validate_deals(raw, rules).clean
    return warehouse.build_fact_deals(clean, None, None, rules, pd.Timestamp(as_of))


def light_rules(folder: Path) -> Path:
    """The packaged rules with one model candidate and fewer backtests: the
    same pipeline, less training time (for tests about other things)."""
    rules = yaml.safe_load(default_rules_path().read_text())
    rules["risk"]["candidates"] = ["logistic"]
    rules["risk"]["forecast"].update(backtest_dates=2, simulations=200)
    path = folder / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    return path
