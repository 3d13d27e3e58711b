"""Anomalies layer: segment win-rate dips and spikes, slower cycles, older
open deals, new-pipeline quality drops, shifts of the deal metrics and
stalled deals, one row per anomaly for the alert engine. Daily at 07:00."""

import dagster as dg
import pandas as pd

from salesintel_assets.constants import ANOMALIES
from salesintel_assets.domain.anomalies import detector as model
from salesintel_assets.metadata import fail_after, frame_metadata, schema_metadata
from salesintel_assets.resources.crm import CRMSource
from salesintel_assets.resources.settings import SalesintelSettings
from salesintel_assets.resources.warehouse import TABLE_SCHEMA, Warehouse
from salesintel_assets.schemas import anomalies as schemas

FRESHNESS = fail_after(hours=26)


def _columns(warehouse: Warehouse, table: str, wanted: tuple) -> pd.DataFrame | None:
    """The wanted columns of a warehouse table that has them (None if absent)."""
    with warehouse.connect() as con:
        present = {r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            [TABLE_SCHEMA, table]).fetchall()}
        if not present:
            return None
        cols = ", ".join(f'"{c}"' for c in wanted if c in present)
        return con.sql(f'SELECT {cols} FROM {TABLE_SCHEMA}."{table}"').df()


@dg.asset(group_name=ANOMALIES, freshness_policy=FRESHNESS, kinds={"duckdb"},
          deps=["fact_deals", "deal_metrics", "fact_stage_transitions"],
          metadata=schema_metadata(schemas.Anomalies))
def anomalies(warehouse: Warehouse, settings: SalesintelSettings, crm: CRMSource) -> dg.Output[pd.DataFrame]:
    """Every anomaly of the analysis date. Segment changes are tested against
    the preceding months (exact beta-binomial and rank tests, Benjamini-Hochberg
    over every test of the run, minimum sample sizes and effects from the rules
    file, one finding per overlapping group); stalled deals are capped and
    ordered by amount. Each row explains itself in plain words."""
    rules, as_of = settings.rules(), settings.analysis_date(crm)
    fact = _columns(warehouse, "fact_deals", model.FACT_COLUMNS)
    metrics = _columns(warehouse, "deal_metrics", model.METRIC_COLUMNS)
    transitions = _columns(warehouse, "fact_stage_transitions", model.TRANSITION_COLUMNS)
    report = model.detect_anomalies(fact, metrics, transitions, rules, as_of)
    summary = model.report_summary(report)
    extra = {k: v for k, v in summary.items() if k not in ("notes", "closest_tests", "by_type")}
    return dg.Output(report.anomalies, metadata=frame_metadata(
        report.anomalies, as_of=str(as_of.date()), **extra,
        by_type=dg.MetadataValue.json(summary["by_type"]),
        notes=dg.MetadataValue.md("\n".join(f"- {note}" for note in summary["notes"]) or "none"),
        closest_tests=dg.MetadataValue.md(summary["closest_tests"]),
    ))
