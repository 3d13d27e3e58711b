"""Anomalies layer: segment win-rate dips and spikes, slower cycles, older
open deals, new-pipeline quality drops, shifts of the deal metrics and
stalled deals, one row per anomaly for the alert engine. Daily at 07:00."""

import dagster as dg
import pandas as pd

from salesintel_assets.constants import ANOMALIES
from salesintel_assets.domain.anomalies import detector as model
from salesintel_assets.domain.anomalies.samples import metrics_in_fact_order
from salesintel_assets.domain.common.tables import table_exists
from salesintel_assets.metadata import fail_after, frame_metadata, schema_metadata
from salesintel_assets.resources.settings import SalesintelSettings
from salesintel_assets.resources.warehouse import TABLE_SCHEMA, Warehouse
from salesintel_assets.schemas import anomalies as schemas

FRESHNESS = fail_after(hours=26)


def _deal_metrics(warehouse: Warehouse, fact: pd.DataFrame | None) -> pd.DataFrame | None:
    """deal_metrics, given the fact's deal ids when its rows are the fact's in order."""
    with warehouse.connect() as con:
        if fact is not None and table_exists(con, "deal_metrics") and table_exists(con, "fact_deals"):
            aligned = metrics_in_fact_order(con, f"{TABLE_SCHEMA}.fact_deals", f"{TABLE_SCHEMA}.deal_metrics",
                                            model.METRIC_COLUMNS, fact["deal_id"].to_numpy())
            if aligned is not None:
                return aligned
    return warehouse.read_table("deal_metrics", model.METRIC_COLUMNS)


@dg.asset(group_name=ANOMALIES, freshness_policy=FRESHNESS, kinds={"duckdb"},
          deps=["fact_deals", "deal_metrics", "fact_stage_transitions"],
          metadata=schema_metadata(schemas.Anomalies))
def anomalies(warehouse: Warehouse, settings: SalesintelSettings) -> dg.Output[pd.DataFrame]:
    """Every anomaly of the analysis date. Segment changes are tested against
    the preceding months (exact beta-binomial and rank tests, Benjamini-Hochberg
    over every test of the run, minimum sample sizes and effects from the rules
    file, one finding per overlapping group); stalled deals are capped and
    ordered by staleness, then money at stake (amount x the drop in win
    chance). Each row explains itself in plain words."""
    rules, as_of = settings.rules(), settings.analysis_date()
    fact = warehouse.read_table("fact_deals", model.FACT_COLUMNS)
    metrics = _deal_metrics(warehouse, fact)
    transitions = warehouse.read_table("fact_stage_transitions", model.TRANSITION_COLUMNS)
    report = model.detect_anomalies(fact, metrics, transitions, rules, as_of)
    summary = model.report_summary(report)
    extra = {k: v for k, v in summary.items() if k not in ("notes", "closest_tests", "by_type")}
    return dg.Output(report.anomalies, metadata=frame_metadata(
        report.anomalies, as_of=str(as_of.date()), **extra,
        by_type=dg.MetadataValue.json(summary["by_type"]),
        notes=dg.MetadataValue.md("\n".join(f"- {note}" for note in summary["notes"]) or "none"),
        closest_tests=dg.MetadataValue.md(summary["closest_tests"]),
    ))
