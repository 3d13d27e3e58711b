"""Re-run fractions for ``run.py``: the same `salesintel run` again with
nothing new, then with 1 % of the deals edited, as fractions of the full run.

``run.py`` calls ``rerun_fractions(export, home, full, run)`` after its full
run; ``run(export)`` runs the pipeline again into the same home. The export
is edited in place (1 % of the rows get a 1 % higher amount), so the source
is the same file with new content, as a nightly export would be.
Goals (issue 12): nothing new <= 5 %, 1 % changed <= 10 % of the full run.
"""

from __future__ import annotations

from pathlib import Path

GOALS = {"nothing new": 0.05, "1 % changed": 0.10}


def edit_share(path: Path, share: float, seed: int = 1) -> int:
    """Edit ``share`` of the export's rows in place (amount up by 1 %); returns how many."""
    import numpy as np
    import pandas as pd

    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    rows = np.random.default_rng(seed).choice(len(frame), size=max(1, int(len(frame) * share)), replace=False)
    amounts = pd.to_numeric(frame.loc[rows, "deal_amount"], errors="coerce")
    frame.loc[rows, "deal_amount"] = (amounts * 1.01).round(2).astype(str).to_numpy()
    frame.to_csv(path, index=False)
    return len(rows)


def rerun_fractions(export: Path, home: Path, full, run) -> dict[str, float]:
    """{label: seconds of the re-run / seconds of the full run}."""
    out = {}
    again = run(export)
    if again.returncode not in (0, 1):   # 1: a failed check; the run itself completed
        raise RuntimeError(f"re-run with nothing new failed:\n{again.output[-2000:]}")
    out[f"with nothing new: {again.seconds:.1f} s (goal <= {GOALS['nothing new']:.0%})"] = again.seconds / full.seconds
    edited = edit_share(export, 0.01)
    changed = run(export)
    if changed.returncode not in (0, 1):
        raise RuntimeError(f"re-run with 1 % changed failed:\n{changed.output[-2000:]}")
    label = f"with 1 % changed ({edited:,} deals): {changed.seconds:.1f} s (goal <= {GOALS['1 % changed']:.0%})"
    out[label] = changed.seconds / full.seconds
    slowest = sorted(changed.steps, key=lambda row: -row[1])[:8]
    if slowest:
        print("slowest steps of the 1 %-changed re-run: "
              + ", ".join(f"{step} {seconds:.1f} s" for step, seconds, _ in slowest), flush=True)
    return out
