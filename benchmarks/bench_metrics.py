"""Benchmark of the metrics and drivers layers' domain work.

    python benchmarks/bench_metrics.py --deals 100000 1000000

``benchmark(fact_deals)`` times every computation behind the metrics assets
(deal_metrics with its DQS backtest, segment_metrics in DuckDB, and
stage_conversion when transitions are given) and the drivers assets
(driver_scores, win_rate_attribution, driver_importance on its capped
subsample) on a given fact table. Run as a script it builds fact_deals and
the stage transitions from the sample CRM (without activities) for each size.
"""

from __future__ import annotations

import argparse
import json
import time

import pandas as pd

from sample_tables import sample_inputs


def _timed(figures: dict, key: str, fn, *args):
    began = time.perf_counter()
    out = fn(*args)
    figures[key] = time.perf_counter() - began
    return out


def benchmark(fact_deals: pd.DataFrame, transitions: pd.DataFrame | None = None) -> dict[str, float]:
    """Seconds of each step of the metrics + drivers layers on ``fact_deals``."""
    from salesintel_assets.domain.drivers import attribution
    from salesintel_assets.domain.metrics import stage_conversion as conversion
    from salesintel_assets.domain.drivers import driver_scores as drivers
    from salesintel_assets.domain.drivers import importance
    from salesintel_assets.domain.metrics import deal_metrics as metrics
    from salesintel_assets.domain.metrics import segment_metrics as segments
    from salesintel_assets.domain.common.rules import load_rules

    rules = load_rules()
    as_of = pd.Timestamp(fact_deals["as_of_date"].iloc[0])
    fig: dict[str, float] = {"deals": float(len(fact_deals))}
    _timed(fig, "deal_metrics_s", metrics.deal_metrics, fact_deals, rules, as_of)
    _timed(fig, "dqs_backtest_s", metrics.backtest_auc, fact_deals, rules, as_of)
    seg = _timed(fig, "segment_metrics_s", segments.segment_metrics, fact_deals, rules, as_of)
    if transitions is not None:
        _timed(fig, "stage_conversion_s", conversion.stage_conversion, transitions, rules, as_of)
    fig["metrics_layer_s"] = sum(v for k, v in fig.items() if k.endswith("_s"))
    scores = _timed(fig, "driver_scores_s", drivers.driver_scores, seg, rules)
    _timed(fig, "attribution_s", attribution.win_rate_attribution, seg, rules, as_of)
    _, info = _timed(fig, "driver_importance_s", importance.driver_importance, fact_deals, rules, as_of)
    fig["drivers_layer_s"] = fig["driver_scores_s"] + fig["attribution_s"] + fig["driver_importance_s"]
    fig["total_s"] = fig["metrics_layer_s"] + fig["drivers_layer_s"]
    fig["segment_rows"] = float(len(seg))
    fig["significant_drivers"] = float(scores["significant"].sum())
    fig["importance_train_rows"] = float(info.get("train_rows", 0))
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, nargs="+", default=[100_000])
    args = parser.parse_args()
    for n in args.deals:
        fact, transitions = sample_inputs(n)
        result = benchmark(fact, transitions)
        print(json.dumps({k: round(v, 3) for k, v in result.items()}), flush=True)


if __name__ == "__main__":
    main()
