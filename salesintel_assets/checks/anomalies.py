"""Checks of the anomalies layer: the table satisfies its pandera model, and
every reported segment anomaly is supported by the evidence the rules file
asks for (sample sizes, false-discovery level, minimum effect); stalled deals
respect their cap."""

import dagster as dg
import numpy as np

from salesintel_assets.checks.schema import table_schema_check
from salesintel_assets.domain.anomalies.detector import FAMILY_OF_TYPE, reported_effect_size
from salesintel_assets.resources.settings import SalesintelSettings
from salesintel_assets.resources.warehouse import Warehouse
from salesintel_assets.schemas import anomalies as schemas

anomalies_schema_valid = table_schema_check("anomalies", schemas.Anomalies)


@dg.asset_check(asset="anomalies", description="Every segment anomaly meets the rules file's minimum window "
                "and baseline sample sizes, false-discovery level and minimum effect.")
def segment_anomalies_supported_by_evidence(warehouse: Warehouse,
                                            settings: SalesintelSettings) -> dg.AssetCheckResult:
    table = warehouse.read_table("anomalies")
    if table is None:
        return dg.AssetCheckResult(passed=False, description="table anomalies does not exist")
    ar = settings.rules().anomalies
    segment = table[table["anomaly_type"] != "stalled_deal"].copy()
    if segment.empty:
        return dg.AssetCheckResult(passed=True, metadata={"segment_anomalies": 0})
    segment["family"] = segment["anomaly_type"].map(FAMILY_OF_TYPE)
    test = {f: getattr(ar, f) for f in set(FAMILY_OF_TYPE.values())}   # each family's test in the rules file
    min_n = segment["family"].map(lambda f: test[f].min_window_deals)
    min_base = segment["family"].map(lambda f: test[f].min_baseline_deals)
    min_effect = segment["family"].map(lambda f: test[f].min_effect)
    size = reported_effect_size(segment)
    # A metric shift's size is a rank effect, which the table does not keep: not checked here.
    too_small = segment["family"].ne("metric_shift") & (size < min_effect - 1e-9)
    broken = segment[(segment["n"] < min_n) | (segment["baseline_n"] < np.floor(min_base))
                     | (segment["q_value"] > ar.fdr_alpha) | too_small]
    return dg.AssetCheckResult(passed=broken.empty, metadata={
        "segment_anomalies": len(segment), "unsupported": len(broken),
        "examples": dg.MetadataValue.md(broken[["anomaly_id", "anomaly_type", "segment", "n", "baseline_n",
                                               "q_value", "effect"]].head(10).to_markdown(index=False)
                                        if len(broken) else "none")})


@dg.asset_check(asset="anomalies", description="No more stalled deals than the rules file's cap, each "
                "with a positive amount at stake.")
def stalled_deals_capped(warehouse: Warehouse, settings: SalesintelSettings) -> dg.AssetCheckResult:
    table = warehouse.read_table("anomalies")
    if table is None:
        return dg.AssetCheckResult(passed=False, description="table anomalies does not exist")
    cap = settings.rules().anomalies.stalled.max_deals
    stalled = table[table["anomaly_type"] == "stalled_deal"]
    return dg.AssetCheckResult(passed=bool(len(stalled) <= cap and (stalled["amount_at_stake"] >= 0).all()),
                               metadata={"stalled_deals": len(stalled), "cap": cap})
