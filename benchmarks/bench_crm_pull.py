"""Benchmark: a full and an incremental pull from a CRM stand-in account
through ``salesintel``'s ingestion job (pull, raw lake, quality gates,
warehouse), with the source's real client library.

    python benchmarks/bench_crm_pull.py --source hubspot --deals 50000
    python benchmarks/bench_crm_pull.py --source hubspot --deals 50000 --changed 0.01
    python benchmarks/bench_crm_pull.py --source salesforce --deals 50000

The stand-in (the sample CRM served in the CRM's wire format) runs in a
process of its own, as a remote CRM would, so its work is not counted. The
full pull reads the whole account; then ``--changed`` of the deals are
edited and the incremental pull reads what changed since the cursor.
Figures: seconds of the pull step (``crm_pull``), of every asset step, and
of the whole job; the number of requests the CRM answered.

A source is added in ``SOURCES``: its stand-in class (with
``change_share(share)`` and ``requests``) and the resource that reads it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import multiprocessing as mp
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def _hubspot_crm(base_url: str, with_activities: bool):
    from salesintel_assets.resources.hubspot import HubSpotCRM
    from salesintel_assets_tests.hubspot_standin import TOKEN

    return HubSpotCRM(access_token=TOKEN, base_url=base_url, search_lag_seconds=0, with_activities=with_activities)


def _salesforce_crm(base_url: str, with_activities: bool):
    from salesintel_assets.resources.salesforce import SalesforceCRM
    from salesintel_assets_tests.salesforce_standin import TOKEN, certificate

    os.environ["REQUESTS_CA_BUNDLE"] = certificate()[0]   # the stand-in's self-signed TLS certificate
    return SalesforceCRM(instance_url=base_url, access_token=TOKEN)


# source -> (stand-in "module:Class", resource builder taking the stand-in's base URL)
SOURCES = {
    "hubspot": ("salesintel_assets_tests.hubspot_standin:HubSpotStandIn", _hubspot_crm),
    "salesforce": ("salesintel_assets_tests.salesforce_standin:SalesforceStandIn", _salesforce_crm),
}


def _serve(standin_path: str, deals: int, with_activities: bool, commands, answers) -> None:
    """The stand-in's process: serve, and obey commands until told to stop."""
    module, name = standin_path.split(":")
    with getattr(importlib.import_module(module), name)(n_deals=deals, with_activities=with_activities) as standin:
        answers.put(standin.base_url)
        while True:
            command, argument = commands.get()
            if command == "stop":
                return
            if command == "change":
                answers.put(standin.change_share(argument))
            elif command == "requests":
                answers.put(len(standin.requests))


def _run_ingestion(crm, home: Path, as_of: str) -> dict:
    import dagster as dg

    from benchmarks_support import asset_step_seconds
    from salesintel_assets.definitions import build_definitions
    from salesintel_assets.resources.factory import build_resources
    from salesintel_assets.tenant_runs import run_in_process

    defs = build_definitions(build_resources(home=str(home), crm=crm, as_of=as_of))
    instance = dg.DagsterInstance.ephemeral()
    began = time.perf_counter()
    result = run_in_process(defs.resolve_job_def("ingestion_job"), instance=instance,
                                run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
    job_s = time.perf_counter() - began
    assert result.success
    steps = asset_step_seconds(instance, result.run_id)
    return {"pull_s": steps["crm_pull"], "assets_s": sum(steps.values()), "job_s": job_s}


def benchmark(source: str, deals: int, changed: float, home: Path, with_activities: bool = True) -> dict:
    import duckdb

    standin_path, build_crm = SOURCES[source]
    context = mp.get_context("spawn")
    commands, answers = context.Queue(), context.Queue()
    began = time.perf_counter()
    server = context.Process(target=_serve, args=(standin_path, deals, with_activities, commands, answers), daemon=True)
    server.start()
    try:
        base_url = answers.get(timeout=600)
        figures = {"standin_start_s": time.perf_counter() - began}
        as_of = "2026-06-30"
        for key, value in _run_ingestion(build_crm(base_url, with_activities), home, as_of).items():
            figures[f"full_{key}"] = value
        commands.put(("requests", None))
        figures["full_requests"] = answers.get()
        commands.put(("change", changed))
        figures["changed_deals"] = answers.get()
        incremental_began = datetime.now(timezone.utc).replace(tzinfo=None)
        for key, value in _run_ingestion(build_crm(base_url, with_activities), home, as_of).items():
            figures[f"incremental_{key}"] = value
        commands.put(("requests", None))
        figures["incremental_requests"] = answers.get() - figures["full_requests"]
    finally:
        commands.put(("stop", None))
        server.join(timeout=30)
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    figures["deals_stored"] = con.sql("SELECT count(*) FROM raw_deals").fetchall()[0][0]
    figures["activities_stored"] = con.sql("SELECT count(*) FROM raw_activities").fetchall()[0][0]
    # Deal versions the incremental pull stored (the report's batch_rows counts what the pull examined,
    # and a pull that repeats its input writes no report rows at all).
    figures["incremental_changed_rows"] = con.execute(
        "SELECT count(*) FROM raw_deals WHERE _pulled_at >= ?", [incremental_began]).fetchall()[0][0]
    con.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=sorted(SOURCES), default="hubspot")
    parser.add_argument("--deals", type=int, default=50_000)
    parser.add_argument("--changed", type=float, default=0.01, help="share of deals edited before the incremental pull")
    parser.add_argument("--no-activities", action="store_true", help="an account without engagements")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = benchmark(args.source, args.deals, args.changed, Path(tmp), not args.no_activities)
    width = max(map(len, figures))
    print(f"{args.source}: {args.deals:,} deals{' without activities' if args.no_activities else ''}, "
          f"{args.changed:.0%} changed; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for key, value in figures.items():
        print(f"  {key:<{width}}  {value:,.2f}" if isinstance(value, float) else f"  {key:<{width}}  {value:,}")


if __name__ == "__main__":
    main()
