"""The sample CRM's warehouse tables for the layer benchmarks, built with the
warehouse layer's own SQL in memory."""

import pandas as pd


def sample_inputs(n_deals: int, seed: int = 42) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fact_deals, fact_stage_transitions) of a sample CRM world without activities."""
    from salesintel_assets.domain.ingestion import pulls as ingestion
    from salesintel_assets.domain.ingestion import quality
    from salesintel_assets.sources import sample_crm
    from salesintel_assets.domain.warehouse import upserts as warehouse
    from salesintel_assets.domain.common.rules import load_rules

    rules = load_rules()
    snap = sample_crm.snapshot(sample_crm.generate_world(n_deals, seed, with_activities=False))
    clean = quality.validate_deals(ingestion.conform_raw(ingestion.as_export_text(snap.deals)), rules).clean
    return warehouse.build_in_memory(clean, snap.stage_history, snap.activities, rules,
                                     pd.Timestamp(sample_crm.SAMPLE_END_DATE))
