"""Benchmark: the Salesforce source against the loopback stand-in org.

    python benchmarks/salesforce_pull.py                  # 50,000 deals
    python benchmarks/salesforce_pull.py --deals 5000 --page-size 2000

A stand-in org holding the sample CRM's world (opportunities, their
history, users, accounts, tasks and events) is served over HTTPS on
127.0.0.1 in this process and read through the real simple-salesforce
client, 2,000 records a page as Salesforce sends them. The ingestion job
(pull, quality gates, warehouse) runs in full, then again after 1 % of the
opportunities changed. Figures: wall seconds of the job, of the pull step
(``crm_pull``: every SOQL query, the raw lake and the merge) and of
``raw_sales_reps`` (the User query), plus the rows each pull moved. The
stand-in runs in its own process, as a remote org would; the CPU seconds of
both processes are printed beside the wall time, since a loaded machine
stretches wall time.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deals", type=int, default=50_000)
    parser.add_argument("--page-size", type=int, default=2000)
    parser.add_argument("--changed", type=float, default=0.01, help="share of opportunities changed")
    args = parser.parse_args()

    import dagster as dg
    import duckdb

    from run import _asset_step_seconds
    from salesintel_assets.definitions import build_definitions
    from salesintel_assets.resources.factory import build_resources
    from salesintel_assets.resources.salesforce import SalesforceCRM
    from salesintel_assets_tests.salesforce_standin import TOKEN

    parent, child = mp.Pipe()
    server = mp.Process(target=serve_org, args=(child, args.deals, args.page_size), daemon=True)
    server.start()
    url, ca_bundle, summary = parent.recv()
    print(summary, flush=True)
    os.environ["REQUESTS_CA_BUNDLE"] = ca_bundle
    with tempfile.TemporaryDirectory() as home:

        def run(label: str) -> None:
            crm = SalesforceCRM(instance_url=url, access_token=TOKEN, batch_size=args.page_size)
            defs = build_definitions(build_resources(home=home, crm=crm, as_of="2026-06-30"))
            instance = dg.DagsterInstance.ephemeral()
            parent.send(("requests",))
            requests_before, server_cpu_before = parent.recv()
            start, cpu = time.perf_counter(), time.process_time()
            result = defs.resolve_job_def("ingestion_job").execute_in_process(
                instance=instance, raise_on_error=False,
                run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}})
            took, cpu = time.perf_counter() - start, time.process_time() - cpu
            steps = _asset_step_seconds(instance, result.run_id)
            parent.send(("requests",))
            requests, server_cpu = parent.recv()
            requests, server_cpu = requests - requests_before, server_cpu - server_cpu_before
            con = duckdb.connect(str(Path(home) / "warehouse.duckdb"), read_only=True)
            pulled = con.execute("SELECT batch_rows FROM data_quality_report ORDER BY pulled_at DESC LIMIT 1"
                                 ).fetchall()[0][0]
            con.close()
            print(f"{label:<12} job {took:6.2f} s   crm_pull {steps.get('crm_pull', float('nan')):6.2f} s   "
                  f"raw_sales_reps {steps.get('raw_sales_reps', float('nan')):5.2f} s   "
                  f"changed deals {pulled:>6,}   HTTP requests {requests:,}   CPU s: salesintel {cpu:.1f}, "
                  f"stand-in {server_cpu:.1f}   load {os.getloadavg()[0]:.1f}   ok={result.success}", flush=True)

        run("full")
        parent.send(("modify", args.changed))
        print(parent.recv(), flush=True)
        run("incremental")
        run("unchanged")
    parent.send(("stop",))
    server.join(timeout=10)


def serve_org(conn, deals: int, page_size: int) -> None:
    """The stand-in org in its own process, as a remote org would be."""
    from salesintel_assets_tests.salesforce_standin import SalesforceStandIn, org_from_sample

    began = time.perf_counter()
    org = org_from_sample(deals)
    summary = (f"stand-in org: {len(org['Opportunity']):,} opportunities, {len(org['OpportunityHistory']):,} "
               f"history rows, {len(org['Task']) + len(org['Event']):,} tasks and events, {len(org['User'])} users "
               f"(built in {time.perf_counter() - began:.1f} s, not timed)")
    with SalesforceStandIn(org=org, page_size=page_size) as standin:
        conn.send((standin.instance_url, standin.ca_bundle(), summary))
        while True:
            command = conn.recv()
            if command[0] == "requests":
                conn.send((len(standin.requests), time.process_time()))
            elif command[0] == "modify":
                changed = [r["Id"] for r in org["Opportunity"][:: max(int(round(1 / command[1])), 1)]]
                standin.modify(changed, Amount=12_345.0)
                conn.send(f"changed {len(changed):,} opportunities ({len(changed) / len(org['Opportunity']):.1%})")
            else:
                return


if __name__ == "__main__":
    main()
