"""Seconds of the deal_metrics, driver_scores, driver_importance and
anomalies assets on a stored home (the warehouse a whole run left behind),
each invoked directly with its real resources: no Dagster run around them.

    python benchmarks/bench_analytics_assets.py --home /tmp/analytics/home --as-of 2026-06-30

driver_scores and driver_importance share one context, as they share a run:
the leakage screen is done by the first. deal_metrics rewrites its table in
that home (with the same content). Print one JSON line of seconds per asset.
"""

from __future__ import annotations

import argparse
import json
import time

import dagster as dg

from salesintel_assets.assets import anomalies, drivers, metrics
from salesintel_assets.resources.settings import SalesintelSettings
from salesintel_assets.resources.warehouse import SalesintelHome, Warehouse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", required=True)
    parser.add_argument("--as-of", required=True)
    args = parser.parse_args()
    resources = {"warehouse": Warehouse(home=SalesintelHome(path=args.home)),
                 "settings": SalesintelSettings(as_of=args.as_of, home=args.home)}
    seconds = {}
    with dg.build_resources(resources) as res:
        context = dg.build_asset_context()
        with res.warehouse.connect(read_only=True) as con:
            segments = con.sql("SELECT * FROM main.segment_metrics").df()
        for name, call in (
                ("deal_metrics", lambda: metrics.deal_metrics(warehouse=res.warehouse, settings=res.settings)),
                ("driver_scores", lambda: drivers.driver_scores(context, segment_metrics=segments,
                                                               settings=res.settings, warehouse=res.warehouse)),
                ("driver_importance", lambda: drivers.driver_importance(context, warehouse=res.warehouse,
                                                                       settings=res.settings)),
                ("anomalies", lambda: anomalies.anomalies(warehouse=res.warehouse, settings=res.settings))):
            began = time.perf_counter()
            call()
            seconds[name] = round(time.perf_counter() - began, 2)
    print(json.dumps(seconds))


if __name__ == "__main__":
    main()
