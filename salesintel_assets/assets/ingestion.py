"""Ingestion layer: incremental CRM pulls through the data-quality gates."""


import uuid
from datetime import datetime, timezone

import dagster as dg
import pandas as pd

from salesintel_assets.constants import INGESTION
from salesintel_assets.domain import ingestion, lake, quality
from salesintel_assets.metadata import fail_after, frame_metadata, schema_metadata
from salesintel_assets.resources.crm import CRMSource
from salesintel_assets.resources.settings import SalesintelSettings
from salesintel_assets.resources.warehouse import SalesintelHome, Warehouse
from salesintel_assets.schemas import ingestion as schemas

FRESHNESS = fail_after(hours=4)
SCHEMA_CHECK = "raw_deals_schema_valid"
BREAKER_CHECK = "pull_within_error_budget"


@dg.multi_asset(
    outs={
        "raw_deals": dg.AssetOut(
            group_name=INGESTION, freshness_policy=FRESHNESS, kinds={"duckdb"},
            description="Latest pulled version of every deal, as the CRM delivered it.",
            metadata=schema_metadata(schemas.RawDeals)),
        "quarantined_deals": dg.AssetOut(
            group_name=INGESTION, freshness_policy=FRESHNESS, kinds={"duckdb"},
            description="Every rejected row of every pull, with its rule and reason.",
            metadata=schema_metadata(schemas.QuarantinedDeals)),
        "data_quality_report": dg.AssetOut(
            group_name=INGESTION, freshness_policy=FRESHNESS, kinds={"duckdb"},
            description="Per pull and rule: rows touched, action taken, circuit breaker state.",
            metadata=schema_metadata(schemas.DataQualityReport)),
    },
    check_specs=[
        dg.AssetCheckSpec(SCHEMA_CHECK, asset="raw_deals", blocking=True,
                          description="Every required column is present and parses."),
        dg.AssetCheckSpec(BREAKER_CHECK, asset="data_quality_report", blocking=True,
                          description="Circuit breaker: the share of bad rows in the pull is within the limit."),
    ],
)
def crm_pull(context: dg.AssetExecutionContext, crm: CRMSource, settings: SalesintelSettings,
             warehouse: Warehouse, home: SalesintelHome):
    """Pull what changed since the last stored pull, keep it in the raw lake,
    gate it, and merge it into the latest version of every deal. A pull that
    fails a gate is kept in the lake but not merged, so the cursor stays put
    and the next run retries it."""
    rules = settings.rules()
    previous = warehouse.read_table("raw_deals")
    since = ingestion.cursor_of(previous)
    pulled_at = datetime.now(timezone.utc).replace(tzinfo=None)
    pull_id = f"{pulled_at:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"
    pages = list(crm.fetch_deal_pages(since))
    pull = ingestion.conform_raw(pd.concat(pages, ignore_index=True) if pages else pd.DataFrame())
    pull = pull.assign(_pull_id=pull_id, _pulled_at=pulled_at, _source=crm.describe(),
                       _row_hash=ingestion.row_hashes(pull) if len(pull) else pd.Series(dtype="uint64"))
    lake.write_pull(home.subdir("lake/raw_deals"), pull_id, pull,
                    {"pulled_at": pulled_at, "source": crm.describe(), "since": since, "run_id": context.run_id})

    changes = ingestion.changed_rows(pull, previous)
    result = quality.validate_deals(changes, rules)
    tripped = result.breaker_tripped(rules)
    accepted = not result.schema_errors and not tripped
    raw = ingestion.merge_latest(previous, changes) if accepted else _unchanged(previous, pull)

    report = quality.report_rows(result, rules).assign(pull_id=pull_id, pulled_at=pulled_at,
                                                      source=crm.describe(), accepted=accepted)
    report = _append(warehouse.read_table("data_quality_report"), report)
    quarantined = _append(warehouse.read_table("quarantined_deals"), result.quarantined)
    context.log.info(f"pull {pull_id}: {len(pull)} rows pulled, {len(changes)} changed, "
                     f"{len(result.quarantined)} quarantined, accepted={accepted}")

    yield dg.Output(raw, output_name="raw_deals", metadata=frame_metadata(
        raw, pulled_rows=len(pull), changed_rows=len(changes), cursor=str(since), source=crm.describe()))
    yield dg.Output(quarantined, output_name="quarantined_deals",
                    metadata=frame_metadata(quarantined, new_rows=len(result.quarantined)))
    yield dg.Output(report, output_name="data_quality_report",
                    metadata=frame_metadata(report.tail(len(quality.RULE_ACTIONS))))
    yield dg.AssetCheckResult(
        check_name=SCHEMA_CHECK, asset_key="raw_deals", passed=not result.schema_errors,
        metadata={"errors": "; ".join(result.schema_errors) or "none"},
        description="Schema broken: data team, fix the export." if result.schema_errors else None)
    yield dg.AssetCheckResult(
        check_name=BREAKER_CHECK, asset_key="data_quality_report", passed=not tripped,
        metadata={"bad_rows": result.bad_rows, "batch_rows": result.batch_rows,
                  "bad_share": round(result.bad_share, 4),
                  "limit": rules.quality.circuit_breaker.max_bad_share},
        description=(f"{result.bad_share:.1%} of the pull broke rules (limit "
                     f"{rules.quality.circuit_breaker.max_bad_share:.0%}): pull not merged") if tripped else None)


def _append(previous: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    if previous is None or previous.empty:
        return new.reset_index(drop=True)
    if new.empty:
        return previous
    return pd.concat([previous, new], ignore_index=True)


def _unchanged(previous: pd.DataFrame | None, pull: pd.DataFrame) -> pd.DataFrame:
    return previous if previous is not None else pull.iloc[:0]


@dg.asset(group_name=INGESTION, freshness_policy=FRESHNESS, metadata=schema_metadata(schemas.RawStageHistory))
def raw_stage_history(crm: CRMSource) -> dg.Output[pd.DataFrame]:
    """When each deal entered each stage, as the CRM records it (empty for a file export)."""
    history = crm.fetch_stage_history()
    return dg.Output(history, metadata=frame_metadata(history))


@dg.asset(group_name=INGESTION, freshness_policy=FRESHNESS, metadata=schema_metadata(schemas.RawActivities))
def raw_activities(crm: CRMSource) -> dg.Output[pd.DataFrame]:
    """Calls, emails and meetings logged against deals."""
    activities = crm.fetch_activities()
    return dg.Output(activities, metadata=frame_metadata(activities))


@dg.asset(group_name=INGESTION, freshness_policy=FRESHNESS, metadata=schema_metadata(schemas.RawSalesReps))
def raw_sales_reps(crm: CRMSource) -> dg.Output[pd.DataFrame]:
    """The sales org (rep -> manager -> CRO) when the CRM or an org file has one."""
    org = crm.fetch_org()
    org = org if org is not None else pd.DataFrame({"sales_rep_id": pd.Series(dtype=str)})
    return dg.Output(org, metadata=frame_metadata(org))
