"""Benchmark: how long a deal changed in the CRM takes to reach Slack as an
alert, through the unattended deployment of ``deploy/``.

    python benchmarks/bench_event_latency.py --deals 3000 --changes 3

Set up on this machine: ``deploy/dagster.yaml`` on a real PostgreSQL
(loopback), the real code location (``salesintel_assets.definitions``) as
its own gRPC process (``dagster code-server start``), a real
``dagster-daemon``, and Slack at a local stand-in that speaks the Web API.
The CRM is an export file written from the sample CRM (``SALESINTEL_SOURCE
=csv``). After the first run has built the warehouse, each change rewrites
one open deal so that it has sat 200 days in its stage with $480,000 at
stake (a Deal Velocity Crisis, P1, sent at once), and the clock runs from
the moment the file is replaced to the moment Slack accepts the first
message naming that deal. The path: the ``pull_on_crm_change`` sensor sees
the file change (every 10 s at most), the queued run coordinator dequeues
the run, the code server starts it in a new process, ``crm_change_job``
pulls, checks, updates the warehouse, metrics, anomalies and alerts and
delivers them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

TARGET_SECONDS = 60.0


def _message_time(slack, deal: str) -> float | None:
    """Monotonic time at which Slack accepted the first message naming the deal."""
    times = [r.at for r in slack.calls("chat.postMessage") if deal in str(r.params.get("text") or "")]
    return min(times) if times else None


def _run_for(instance, after: set[str]):
    import dagster as dg

    records = instance.get_run_records(filters=dg.RunsFilter(job_name="crm_change_job"))
    return [r for r in records if r.dagster_run.run_id not in after]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deals", type=int, default=3000, help="deals in the CRM export")
    parser.add_argument("--changes", type=int, default=3, help="deals changed one after another")
    args = parser.parse_args()

    import dagster as dg

    from salesintel_assets_tests.deployment import (Deployment, deployment_environment, reps_with_p1, stall_a_deal,
                                                    wait_for, write_crm_export)
    from salesintel_assets_tests.postgres_loopback import LoopbackPostgres
    from salesintel_assets_tests.slack_standin import SlackStandIn

    folder = Path(tempfile.mkdtemp(prefix="bench_event_latency_"))
    with LoopbackPostgres(folder / "postgres") as postgres, SlackStandIn(token="xoxb-deployment-test") as slack:
        os.environ.update(postgres.environment())
        export, org = write_crm_export(folder / "crm", n_deals=args.deals)
        env = {**deployment_environment(folder / "home", export, org, slack.base_url), **postgres.environment()}
        deploy = Deployment(folder / "deployment", env)
        try:
            started = time.monotonic()
            deploy.start_code_server()
            print(f"code server serving after {time.monotonic() - started:.1f} s", flush=True)
            deploy.start_daemon()
            instance = deploy.instance()
            first = wait_for(lambda: [r for r in _run_for(instance, set()) if r.dagster_run.is_finished],
                             "the first crm_change_job run", 600)[0]
            if first.dagster_run.status != dg.DagsterRunStatus.SUCCESS:
                print(f"the first run failed: see {deploy.folder}", file=sys.stderr)
                return 1
            print(f"first run (whole warehouse from the export): {first.end_time - first.start_time:.1f} s, "
                  f"{len(slack.posted)} Slack messages", flush=True)
            rows = []
            for _ in range(args.changes):
                seen = {r.dagster_run.run_id for r in _run_for(instance, set())}
                time.sleep(11)  # let the sensor's minimum interval pass, as between two real edits
                deal = stall_a_deal(export, avoid_reps=reps_with_p1(slack.posted))
                changed_at, changed_wall = time.monotonic(), time.time()
                arrived = wait_for(lambda: _message_time(slack, deal), f"a Slack message about {deal}", 600, every=0.2)
                [record] = wait_for(lambda: [r for r in _run_for(instance, seen) if r.dagster_run.is_finished],
                                    "the change's run finishing", 600)
                rows.append((deal, arrived - changed_at, record.create_timestamp.timestamp() - changed_wall,
                             record.start_time - record.create_timestamp.timestamp(),
                             record.end_time - record.start_time))
        finally:
            deploy.stop()
    print()
    print(f"{'deal':<8} {'to Slack s':>10} {'sensor s':>9} {'queue+launch s':>15} {'run s':>7}")
    for deal, total, sensed, launched, ran in rows:
        print(f"{deal:<8} {total:>10.1f} {sensed:>9.1f} {launched:>15.1f} {ran:>7.1f}")
    totals = [r[1] for r in rows]
    print(f"\nCRM change to Slack: median {statistics.median(totals):.1f} s, max {max(totals):.1f} s over "
          f"{len(totals)} changes ({args.deals:,} deals, load average {os.getloadavg()[0]:.1f}); "
          f"target under {TARGET_SECONDS:.0f} s: {'met' if max(totals) < TARGET_SECONDS else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
