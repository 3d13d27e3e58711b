"""Benchmark of the anomalies layer's domain work.

    python benchmarks/bench_anomalies.py --deals 100000 1000000

``benchmark(fact_deals)`` times ``detect_anomalies`` on a given fact table
(the deal metrics it reads are computed first and timed apart: they belong to
the metrics layer). Run as a script it builds fact_deals, the stage
transitions and the deal metrics from the sample CRM for each size.
"""

from __future__ import annotations

import argparse
import json
import time

import pandas as pd

from sample_tables import sample_inputs


def benchmark(fact_deals: pd.DataFrame, deal_metrics: pd.DataFrame | None = None,
              transitions: pd.DataFrame | None = None, repeats: int = 1) -> dict[str, float]:
    """Seconds of the anomalies layer on ``fact_deals`` (best of ``repeats``)."""
    from salesintel_assets.domain.metrics import deal_metrics as metrics
    from salesintel_assets.domain.anomalies.detector import detect_anomalies
    from salesintel_assets.domain.common.rules import load_rules

    rules = load_rules()
    as_of = pd.Timestamp(fact_deals["as_of_date"].iloc[0])
    began = time.perf_counter()
    if deal_metrics is None:
        deal_metrics = metrics.deal_metrics(fact_deals, rules, as_of)
    metrics_s = time.perf_counter() - began
    best, report = float("inf"), None
    for _ in range(repeats):
        began = time.perf_counter()
        report = detect_anomalies(fact_deals, deal_metrics, transitions, rules, as_of)
        best = min(best, time.perf_counter() - began)
    counts = report.anomalies["anomaly_type"].value_counts()
    return {
        "deals": float(len(fact_deals)),
        "anomalies_s": best,
        "deal_metrics_input_s": metrics_s,
        "segment_tests": float(len(report.tests)),
        "segment_anomalies": float((report.anomalies["dimension"] != "deal").sum()),
        "stalled_deals_reported": float(counts.get("stalled_deal", 0)),
        "with_stage_history": float(transitions is not None and len(transitions) > 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, nargs="+", default=[100_000])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    for n in args.deals:
        fact, transitions = sample_inputs(n)
        result = benchmark(fact, transitions=transitions, repeats=args.repeats)
        print(json.dumps({k: round(v, 3) for k, v in result.items()}))


if __name__ == "__main__":
    main()
