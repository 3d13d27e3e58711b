"""Benchmark: the pull of a CSV export and the warehouse built from it
(``ingestion_job``: crm_pull, raw_sales_reps, fact_deals and the rest of
the warehouse group), first on an empty home, then again with a share of
the rows edited.

    python benchmarks/bench_csv_pull.py --csv deals_1m.csv --as-of 2026-06-30 --home /tmp/pull
    python benchmarks/bench_csv_pull.py ... --changed 0.01      # edits a copy of the export

Each pull runs in a fresh subprocess, so its peak memory (max RSS) is its own.
Figures: seconds of every asset step, of the whole job, and peak memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def one_pull(csv: str, home: str, as_of: str) -> dict:
    """The ingestion job once in this process: step seconds, job seconds, peak MB."""
    import dagster as dg

    from benchmarks_support import asset_step_seconds
    from salesintel_assets.definitions import build_definitions
    from salesintel_assets.resources.crm import CsvCRM
    from salesintel_assets.resources.factory import build_resources
    from salesintel_assets.tenant_runs import run_in_process

    defs = build_definitions(build_resources(home=home, crm=CsvCRM(path=csv), as_of=as_of))
    instance = dg.DagsterInstance.ephemeral()
    began = time.perf_counter()
    result = run_in_process(defs.resolve_job_def("ingestion_job"), instance=instance, raise_on_error=False,
                            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
    seconds = time.perf_counter() - began
    steps = asset_step_seconds(instance, result.run_id)
    return {"success": result.success, "job_s": round(seconds, 1),
            "steps_s": {step: round(s, 1) for step, s in sorted(steps.items(), key=lambda kv: -kv[1])},
            "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def _in_subprocess(csv: Path, home: Path, as_of: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", "--csv", str(csv), "--home", str(home),
                          "--as-of", as_of], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", required=True)
    parser.add_argument("--home", required=True)
    parser.add_argument("--as-of", required=True)
    parser.add_argument("--changed", type=float, default=0.0, help="share of rows edited for the second pull")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_pull(args.csv, args.home, args.as_of)))
        return
    from rerun import edit_share

    home = Path(args.home)
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    export = home / "export.csv"
    shutil.copyfile(args.csv, export)
    print("full pull:", json.dumps(_in_subprocess(export, home / "home", args.as_of)), flush=True)
    if args.changed:
        edited = edit_share(export, args.changed)
        print(f"pull with {edited:,} rows edited:", json.dumps(_in_subprocess(export, home / "home", args.as_of)),
              flush=True)


if __name__ == "__main__":
    main()
