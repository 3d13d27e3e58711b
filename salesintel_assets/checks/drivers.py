"""Checks of the drivers layer: each table satisfies its pandera model, and
the attribution's effects add up exactly to the change they explain."""

import dagster as dg

from salesintel_assets.checks.schema import table_schema_check
from salesintel_assets.resources.warehouse import TABLE_SCHEMA, Warehouse
from salesintel_assets.schemas import drivers as schemas

drivers_checks = [
    table_schema_check("driver_scores", schemas.DriverScores),
    table_schema_check("win_rate_attribution", schemas.WinRateAttribution),
    table_schema_check("driver_importance", schemas.DriverImportance),
]

TOLERANCE = 1e-9


@dg.asset_check(asset="win_rate_attribution",
                description=f"Per dimension, rate + mix effects sum to the total change within {TOLERANCE}.")
def attribution_effects_add_up(warehouse: Warehouse) -> dg.AssetCheckResult:
    gaps = warehouse.query(f"""
        SELECT dimension, abs(sum(total_effect) - any_value(total_change)) AS gap,
               abs(sum(rate_effect) + sum(mix_effect) - sum(total_effect)) AS split_gap
        FROM {TABLE_SCHEMA}.win_rate_attribution GROUP BY dimension
    """)
    worst = float(gaps[["gap", "split_gap"]].to_numpy().max()) if len(gaps) else 0.0
    return dg.AssetCheckResult(passed=worst <= TOLERANCE, metadata={"largest_gap": worst,
                                                                   "dimensions": len(gaps)})
