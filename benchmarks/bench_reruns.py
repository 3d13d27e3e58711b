"""Benchmark: what a re-run costs against a full run of the main job.

    python benchmarks/bench_reruns.py --deals 1000000                 # CSV export and sample CRM
    python benchmarks/bench_reruns.py --deals 100000 --sources csv

Three runs in one fresh home, each timed on the wall clock:
``full`` (empty home), ``nothing_new`` (the same input again) and
``changed_1pct`` (1 % of the deals edited). The CSV export (large_export.py)
runs the real ``salesintel run`` command in a subprocess (imports and the
printed summary included, as a user sees it); the sample CRM runs the main
job in process (its 1M-deal simulation is the CRM's time, done before
timing): a changed CRM is the sample CRM one day later, analysed on the same
analysis date, so only the data changes. Goals (issue 12): nothing new <= 5 %
of a full run, 1 % changed <= 10 %. ``run.py`` prints the CSV fractions
through ``rerun.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

GOALS = {"nothing_new": 0.05, "changed_1pct": 0.10}
EXPORT_AS_OF = "2026-06-30"   # large_export.AS_OF


def _cli_run(csv: Path, home: Path) -> float:
    env = {**os.environ, "SALESINTEL_CSV": "", "SALESINTEL_SOURCE": "", "SALESINTEL_AS_OF": ""}
    began = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "salesintel_assets.cli", "run", "--csv", str(csv), "--as-of",
                          EXPORT_AS_OF, "--home", str(home)], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - began
    if out.returncode not in (0, 1):  # 1: a failed check, still a complete run
        raise RuntimeError(f"salesintel run failed ({out.returncode}): {out.stderr[-1500:]}")
    return seconds


def bench_csv(deals: int, folder: Path) -> dict:
    from large_export import write_export
    from rerun import edit_share

    csv, home = folder / "export.csv", folder / "csv_home"
    write_export(csv, deals)
    figures = {"full_s": _cli_run(csv, home), "nothing_new_s": _cli_run(csv, home)}
    figures["changed_deals"] = edit_share(csv, 0.01)
    figures["changed_1pct_s"] = _cli_run(csv, home)
    return figures


def bench_sample(deals: int, folder: Path) -> dict:
    import dagster as dg
    import pandas as pd

    from benchmarks_support import asset_step_seconds
    from salesintel_assets.definitions import build_definitions
    from salesintel_assets.main_run import execute
    from salesintel_assets.run_outcome import read_outcome
    from salesintel_assets.resources.crm import SampleCRM, _snapshot_at
    from salesintel_assets.resources.factory import build_resources
    from salesintel_assets.resources.warehouse import SalesintelHome, Warehouse
    from salesintel_assets.sources import sample_crm

    home = folder / "sample_home"
    next_day = (pd.Timestamp(sample_crm.SAMPLE_END_DATE) + pd.Timedelta(days=1)).date()
    activities = deals <= 100_000
    _snapshot_at(deals, 42, sample_crm.SAMPLE_END_DATE, activities), _snapshot_at(deals, 42, next_day, activities)
    quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    figures, slowest = {}, {}

    def run(label: str, clock: str | None) -> None:
        crm = SampleCRM(n_deals=deals, clock=clock, with_activities=activities)
        defs = build_definitions(build_resources(home=str(home), crm=crm, as_of=next_day.isoformat()))
        instance = dg.DagsterInstance.ephemeral()
        began = time.perf_counter()
        results = execute(defs, "salesintel_job", instance, quiet, Warehouse(home=SalesintelHome(path=str(home))),
                          warnings=lambda _: [])
        figures[f"{label}_s"] = time.perf_counter() - began
        failed = read_outcome(results).failed_steps
        if failed:
            raise RuntimeError(f"{label} run failed: {failed}")
        steps = asset_step_seconds(instance, results[0].run_id)
        slowest[label] = dict(sorted(steps.items(), key=lambda kv: -kv[1])[:6])

    run("full", None)
    run("nothing_new", None)
    run("changed_1pct", next_day.isoformat())
    figures["slowest_steps"] = {k: {s: round(v, 1) for s, v in d.items()} for k, d in slowest.items()}
    return figures


def benchmark(deals: int, sources: tuple[str, ...] = ("csv", "sample")) -> dict:
    """Seconds of a full run, a nothing-new re-run and a 1 %-changed re-run,
    and the re-runs as fractions of the full run, per source."""
    out = {}
    for source in sources:
        with tempfile.TemporaryDirectory() as tmp:
            figures = (bench_csv if source == "csv" else bench_sample)(deals, Path(tmp))
        for case, goal in GOALS.items():
            figures[f"{case}_fraction"] = figures[f"{case}_s"] / figures["full_s"]
            figures[f"{case}_goal_met"] = figures[f"{case}_fraction"] <= goal
        out[source] = figures
    return out


def report(deals: int, results: dict) -> str:
    lines = [f"re-runs at {deals:,} deals (goals: nothing new <= {GOALS['nothing_new']:.0%}, "
             f"1 % changed <= {GOALS['changed_1pct']:.0%} of a full run)"]
    for source, f in results.items():
        lines.append(f"  {source:<7} full {f['full_s']:7.1f} s   nothing new {f['nothing_new_s']:6.1f} s "
                     f"({f['nothing_new_fraction']:6.1%}, {'met' if f['nothing_new_goal_met'] else 'NOT met'})   "
                     f"1 % changed {f['changed_1pct_s']:6.1f} s ({f['changed_1pct_fraction']:6.1%}, "
                     f"{'met' if f['changed_1pct_goal_met'] else 'NOT met'})")
        if "slowest_steps" in f:
            lines.append(f"          slowest steps: {json.dumps(f['slowest_steps'])}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--sources", nargs="+", default=["csv", "sample"], choices=["csv", "sample"])
    args = parser.parse_args()
    print(report(args.deals, benchmark(args.deals, tuple(args.sources))), flush=True)


if __name__ == "__main__":
    main()
