"""The performance benchmark: `salesintel run` against a pandas script of the
original win-rate analysis, side by side, on one generated CRM export.

    .venv/bin/python benchmarks/run.py                      # 1M deals (895k closed, 105k open)
    .venv/bin/python benchmarks/run.py --deals 10000000     # 10M: time and peak of the pipeline only
    .venv/bin/python benchmarks/run.py --layers ingestion   # the per-layer benchmarks (layers.py)

In one run it writes the export (large_export.py), runs the pandas script
(pandas_analysis.py) and the whole pipeline (`salesintel run`: every asset
and check, the risk model trained and registered in MLflow, alerts delivered
to the outbox) on the same file, each in its own process, one after the
other. It prints the ratio of wall clocks, the peak memory of each (the
largest resident set of the process and its children, sampled every 0.1 s
and from the kernel's own maximum), and a table of seconds (Dagster's step
statistics from the run's event log) and peak memory (the largest sample
while the step ran) per asset and per check. Re-run fractions come from
``rerun.py`` when it is present: ``rerun_fractions(export, home, full, run)``
gets the full run's figures and a ``run(export) -> RunFigures`` that runs the
pipeline again into the same home, and returns {label: fraction of the full
run's seconds}.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from large_export import AS_OF, write_export  # noqa: E402

GB = 1024 ** 3


@dataclass
class RunFigures:
    seconds: float
    peak_bytes: int
    returncode: int
    steps: list[tuple[str, float, int]] = field(default_factory=list)   # (step, seconds, peak bytes)
    starts: dict[str, int] = field(default_factory=dict)   # step -> resident bytes when it began
    output: str = ""


def _tree_rss(root: int) -> int:
    """Resident bytes of a process and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        rss[pid] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def measured(command: list[str], env: dict[str, str] | None = None) -> tuple[RunFigures, list[tuple[float, int]]]:
    """Run ``command`` niced; wall seconds, peak memory and the memory samples."""
    samples: list[tuple[float, int]] = []
    began = time.time()
    process = subprocess.Popen(["nice", *command], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((time.time(), _tree_rss(process.pid)))
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.append(process.stdout.read()), daemon=True)
    reader.start()
    # wait4: this child's own rusage, whose maximum resident set (KiB) covers its waited-for descendants.
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.time() - began
    process.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    sampler.join()
    reader.join()
    peak = max([usage.ru_maxrss * 1024] + [rss for _, rss in samples])
    return RunFigures(seconds, peak, process.returncode, output="".join(output)), samples


def step_table(dagster_home: Path, samples: list[tuple[float, int]]) -> tuple[list[tuple[str, float, int]],
                                                                            dict[str, int]]:
    """(step, seconds, peak bytes) of every asset and check step of the last
    run recorded in ``dagster_home``, from Dagster's own step statistics, and
    the resident bytes when each step began: the run is one process, so a
    step's peak includes what earlier steps left resident."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(dagster_home)
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(limit=1)
        if not runs:
            return [], {}
        rows, starts = [], {}
        for stat in instance.get_run_step_stats(runs[0].run_id):
            if stat.start_time is None or stat.end_time is None:
                continue
            during = [rss for at, rss in samples if stat.start_time <= at <= stat.end_time]
            rows.append((stat.step_key, stat.end_time - stat.start_time, max(during, default=0)))
            starts[stat.step_key] = during[0] if during else 0
    return sorted(rows, key=lambda row: -row[1]), starts


def run_pipeline(export: Path, home: Path, dagster_home: Path) -> RunFigures:
    """`salesintel run` on ``export`` into ``home``, recorded in ``dagster_home``."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").touch()   # the default instance: runs and event logs in this folder
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "SALESINTEL_AS_OF": AS_OF}
    env.pop("SLACK_BOT_TOKEN", None)   # alerts go to the local outbox
    command = [str(Path(sys.executable).parent / "salesintel"), "run", "--csv", str(export), "--home", str(home)]
    figures, samples = measured(command, env)
    figures.steps, figures.starts = step_table(dagster_home, samples)
    return figures


def run_script(export: Path) -> RunFigures:
    figures, _ = measured([sys.executable, str(HERE / "pandas_analysis.py"), str(export), "--as-of", AS_OF])
    return figures


def _gb(value: int) -> str:
    return f"{value / GB:.2f} GB"


def _check(figures: RunFigures, what: str) -> None:
    if figures.returncode:
        sys.exit(f"{what} failed (exit code {figures.returncode}):\n{figures.output[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--script", choices=["auto", "yes", "no"], default="auto",
                        help="run the pandas script too (auto: only up to 1M deals)")
    parser.add_argument("--top", type=int, default=25, help="rows of the per-step table")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    parser.add_argument("--layers", nargs="+", help="run the per-layer benchmarks instead (see layers.py)")
    args, rest = parser.parse_known_args()
    if args.layers:
        sys.argv = [str(HERE / "layers.py"), "--layers", *args.layers, "--deals", str(args.deals), *rest]
        import layers
        layers.main()
        return
    with tempfile.TemporaryDirectory(prefix="salesintel-bench-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        export = work / f"deals_{args.deals}.csv"
        began = time.time()
        write_export(export, args.deals)
        print(f"export: {args.deals:,} deals, {export.stat().st_size / 1e6:.0f} MB, written in "
              f"{time.time() - began:.1f} s (analysis date {AS_OF})", flush=True)
        script = None
        if args.script == "yes" or (args.script == "auto" and args.deals <= 1_000_000):
            script = run_script(export)
            _check(script, "the pandas script")
            print(f"pandas script:   {script.seconds:7.1f} s   peak {_gb(script.peak_bytes)}", flush=True)
        full = run_pipeline(export, work / "home", work / "dagster_home")
        _check(full, "salesintel run")
        print(f"salesintel run:  {full.seconds:7.1f} s   peak {_gb(full.peak_bytes)}", flush=True)
        if script:
            print(f"ratio (salesintel run / pandas script): {full.seconds / script.seconds:.2f}  (goal <= 1.0)")
        print(f"peak memory: {_gb(full.peak_bytes)}  (goal <= 2 GB at 1M deals, <= 24 GB at 10M)")
        steps = full.steps
        total = sum(seconds for _, seconds, _ in steps)
        print(f"\n{len(steps)} steps, {total:.1f} s inside steps, {full.seconds - total:.1f} s outside them "
              "(start-up, imports, Dagster between steps, the run summary)")
        print(f"{'step (asset or check)':<48} {'seconds':>8} {'start GB':>8} {'peak GB':>8}")
        for step, seconds, peak in steps[: args.top]:
            print(f"{step:<48} {seconds:8.2f} {full.starts.get(step, 0) / GB:8.2f} {peak / GB:8.2f}")
        if len(steps) > args.top:
            rest_s = sum(seconds for _, seconds, _ in steps[args.top:])
            print(f"{f'... {len(steps) - args.top} more steps':<48} {rest_s:8.2f}")
        try:
            from rerun import rerun_fractions
        except ImportError:
            return
        print()
        for label, fraction in rerun_fractions(
                export, work / "home", full, lambda changed: run_pipeline(changed, work / "home",
                                                                          work / "dagster_home")).items():
            print(f"re-run {label}: {fraction:.1%} of the full run")


if __name__ == "__main__":
    main()
