"""Layer benchmarks: seconds and peak memory per layer on the sample CRM.

    python benchmarks/layers.py                      # 100,000 deals, every layer
    python benchmarks/layers.py --deals 100000 1000000 --layers ingestion metrics

Each (layer, size) runs in a fresh subprocess so peak memory (max RSS) is
that scenario's own. The ingestion layer runs the real Dagster job (pull,
quality gates, warehouse in DuckDB) for a full load, then an incremental pull
after advancing the sample CRM's clock by a day (about 1 % of deals change).
The analytics layers time their domain work on the fact_deals table that
the ingestion benchmark left in the warehouse.
"""

from __future__ import annotations

import argparse
import importlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from salesintel_assets.domain.common.storage import DATABASE_FILE

LAYERS = ("ingestion", "metrics", "models", "anomalies", "alerts")
HERE = Path(__file__).resolve().parent


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_ingestion(deals: int, home: Path) -> dict:
    """Full load, then an incremental pull one CRM day later. Reports the
    pull step, all asset steps (ingestion + quality + warehouse) and the
    whole job including the pandera table checks and Dagster's overhead."""
    import dagster as dg
    import duckdb
    import pandas as pd

    from benchmarks_support import asset_step_seconds
    from salesintel_assets.definitions import build_definitions
    from salesintel_assets.sources import sample_crm
    from salesintel_assets.resources.crm import SampleCRM, _snapshot_at
    from salesintel_assets.resources.factory import build_resources
    from salesintel_assets.tenant_runs import run_in_process

    end = sample_crm.SAMPLE_END_DATE
    next_day = (pd.Timestamp(end) + pd.Timedelta(days=1)).date()
    start = time.perf_counter()
    # The CRM's own simulation is the CRM's time, not ours: done before timing.
    # Activities (about 14 per deal) are left out above 100,000 deals to fit memory.
    activities = deals <= 100_000
    _snapshot_at(deals, 42, end, activities), _snapshot_at(deals, 42, next_day, activities)
    figures = {"crm_simulation_s": time.perf_counter() - start}

    def run(label: str, clock: str | None) -> None:
        defs = build_definitions(build_resources(home=str(home), crm=SampleCRM(n_deals=deals, clock=clock,
                                                                        with_activities=activities)))
        instance = dg.DagsterInstance.ephemeral()
        began = time.perf_counter()
        result = run_in_process(defs.resolve_job_def("ingestion_job"), instance=instance,
                                run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
        figures[f"{label}_job_s"] = time.perf_counter() - began
        assert result.success
        steps = asset_step_seconds(instance, result.run_id)
        figures[f"{label}_pull_s"] = steps["crm_pull"]
        figures[f"{label}_assets_s"] = sum(steps.values())

    run("full", None)
    run("incremental", next_day.isoformat())
    con = duckdb.connect(str(home / DATABASE_FILE), read_only=True)
    batches = con.sql("SELECT pull_id, max(batch_rows) AS rows FROM data_quality_report "
                      "GROUP BY pull_id ORDER BY pull_id").df()["rows"].tolist()
    con.close()
    figures["incremental_changed_share"] = batches[-1] / batches[0]
    figures["pull_incremental_vs_full"] = figures["incremental_pull_s"] / figures["full_pull_s"]
    figures["assets_incremental_vs_full"] = figures["incremental_assets_s"] / figures["full_assets_s"]
    return figures


def bench_layer(layer: str, deals: int, home: Path) -> dict:
    """Time an analytics layer's domain work on the stored warehouse tables."""
    import duckdb

    database = home / DATABASE_FILE
    if not database.exists():
        bench_ingestion(deals, home)
    con = duckdb.connect(str(database), read_only=True)
    fact = con.sql("SELECT * FROM fact_deals").df()
    transitions = con.sql("SELECT * FROM fact_stage_transitions").df()
    reps = con.sql("SELECT * FROM dim_sales_reps").df()
    con.close()
    module = importlib.import_module(f"bench_{layer}")
    inputs = {
        "metrics": {"transitions": transitions},
        "models": {"stage_history": transitions[["deal_id", "stage", "entered_date"]]},
        "anomalies": {"transitions": transitions},
        "alerts": {"transitions": transitions, "reps": reps},
    }[layer]
    return module.benchmark(fact, **inputs)


def scenario(layer: str, deals: int, home: Path) -> dict:
    sys.path.insert(0, str(HERE))
    figures = bench_ingestion(deals, home) if layer == "ingestion" else bench_layer(layer, deals, home)
    figures["peak_rss_mb"] = _peak_mb()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deals", type=int, nargs="+", default=[100_000])
    parser.add_argument("--layers", nargs="+", default=list(LAYERS), choices=LAYERS)
    parser.add_argument("--scenario", nargs=3, metavar=("LAYER", "DEALS", "HOME"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scenario:
        layer, deals, home = args.scenario
        print(json.dumps(scenario(layer, int(deals), Path(home))))
        return
    for deals in args.deals:
        with tempfile.TemporaryDirectory() as tmp:
            for layer in args.layers:
                out = subprocess.run([sys.executable, __file__, "--scenario", layer, str(deals), tmp],
                                     capture_output=True, text=True)
                if out.returncode:
                    print(f"{layer:<10} {deals:>9,} deals  FAILED\n{out.stderr[-2000:]}")
                    continue
                figures = json.loads(out.stdout.strip().splitlines()[-1])
                shown = "  ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
                print(f"{layer:<10} {deals:>9,} deals  {shown}", flush=True)


if __name__ == "__main__":
    main()
