"""The scenario worlds through the run-time contract: each export-shaped
world of ``trust_study`` is written as the CSV export its CRM would give on
the analysis date (dirty rows and stale duplicates included), run with
``salesintel run --csv ... --as-of D`` in its own home, and what the
warehouse then holds is judged against the world's truth: the 90-day wins
forecast and its 80 % interval, the open deals' ranking (model against deal
age), the highest open-deal probability, segment anomalies and alerts.

``trust_study`` measures the same models from the inside, on tables it
builds itself; this replay checks that a user's run says the same.

Run: ``python -m salesintel_assets_tests.world_replay [--deals 6000]
[--seeds 401] [--dates 2026-10-31 2026-05-31] [--worlds plain_export ...]``
(about a minute per world and date at 6,000 deals).
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import date
from pathlib import Path

import pandas as pd

from salesintel_assets.domain.ingestion.pulls import as_export_text
from salesintel_assets.sources import sample_crm
from salesintel_assets_tests.export_replay import judged, run_as_of, won_within
from salesintel_assets_tests.trust_study import WORLDS, WorldSpec, generate

EXPORT_WORLDS = tuple(w for w in WORLDS if w.export_only)   # a CSV export carries no stage history


def replay(spec: WorldSpec, n_deals: int, seed: int, as_of: date, home: Path) -> dict:
    world = generate(spec, n_deals, seed, as_of)
    csv = home / "deals.csv"
    as_export_text(sample_crm.snapshot(world).deals)[list(sample_crm.EXPORT_COLUMNS)].to_csv(csv, index=False)
    ran = run_as_of(csv, pd.Timestamp(as_of), home)
    row = {"world": spec.name, "seed": seed, "as_of": as_of.isoformat(), "exit": ran["exit"]}
    if "message" in ran:
        return row | {"message": ran["message"]}
    row |= judged(ran, won_within(world.deals, ran["scores"]["deal_id"], pd.Timestamp(as_of)))
    segments = ran["anomalies"][~ran["anomalies"]["segment"].astype(str).str.startswith("deal_id=")]
    return row | {"max_probability": round(float(ran["scores"]["win_probability_90d"].max()), 3),
                  "segment_anomalies": len(segments), "alerts": len(ran["alerts"]),
                  "p1_alerts": int(ran["alerts"]["priority"].eq("P1").sum())}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=6000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[401])
    parser.add_argument("--dates", type=date.fromisoformat, nargs="+", default=[sample_crm.SAMPLE_END_DATE])
    parser.add_argument("--worlds", nargs="+", default=[w.name for w in EXPORT_WORLDS])
    args = parser.parse_args(argv)
    rows = []
    for seed in args.seeds:
        for day in args.dates:
            for spec in (w for w in EXPORT_WORLDS if w.name in args.worlds):
                with tempfile.TemporaryDirectory() as home:
                    rows.append(replay(spec, args.deals, seed, day, Path(home)))
                print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(frame.to_string(index=False))
    ran = frame[frame["exit"].eq(0) & frame.get("error", pd.Series(dtype=float)).notna()]
    if len(ran):
        print(f"{len(ran)} runs: 90-day wins within 10 % on {int(ran['error'].abs().le(0.10).sum())}, "
              f"inside the 80 % interval on {int(ran['in_interval'].sum())}; ranking above deal age by 0.02 on "
              f"{int((ran['auc_model'] - ran['auc_age']).ge(0.02).sum())}")


if __name__ == "__main__":
    main()
