"""Seconds of the metrics, drivers and anomalies steps in a whole run and in
a re-run with 1 % of the deals changed, on a copy of an existing export.

    python benchmarks/analytics_rerun.py --csv /path/deals_1m.csv --work /tmp/somewhere

Runs `salesintel run` on a copy of the export (``run.run_pipeline``: every
asset and check), edits 1 % of the copy's rows as ``rerun.py`` does (amount
up by 1 %), runs again into the same home and prints, for both runs, the
wall clock and the seconds of each step of those layers (Dagster's step
statistics). One whole run at a time on a shared machine.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from rerun import edit_share  # noqa: E402
from run import run_pipeline  # noqa: E402

STEPS = ("deal_metrics", "segment_metrics", "stage_conversion", "driver_scores", "win_rate_attribution",
         "driver_importance", "anomalies")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, required=True, help="the export (copied, never edited)")
    parser.add_argument("--work", type=Path, required=True, help="folder for the copy, the home and the runs")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    export = args.work / args.csv.name
    shutil.copy(args.csv, export)
    runs = {"whole run": run_pipeline(export, args.work / "home", args.work / "dagster_home")}
    edited = edit_share(export, 0.01)
    runs[f"1 % changed ({edited:,} deals)"] = run_pipeline(export, args.work / "home", args.work / "dagster_home")
    for label, figures in runs.items():
        if figures.returncode not in (0, 1):   # 1: a failed check; the run itself completed
            sys.exit(f"the {label} failed:\n{figures.output[-2000:]}")
        seconds = {step: s for step, s, _ in figures.steps}
        shown = "  ".join(f"{step} {seconds.get(step, 0.0):.2f}" for step in STEPS)
        print(f"{label}: {figures.seconds:.1f} s; these steps {sum(seconds.get(s, 0.0) for s in STEPS):.2f} s: "
              f"{shown}", flush=True)


if __name__ == "__main__":
    main()
