"""Ingestion layer: incremental CRM pulls through the data-quality gates.

The pull writes its tables with SQL upserts instead of returning frames, so
an incremental pull touches only the rows that changed."""

import uuid
from datetime import datetime, timezone

import dagster as dg
import pandas as pd

from salesintel_assets.constants import INGESTION
from salesintel_assets.domain.ingestion import pulls as ingestion
from salesintel_assets.domain.ingestion import deletions as deletions_domain
from salesintel_assets.domain.ingestion import lake
from salesintel_assets.domain.ingestion import quality
from salesintel_assets.domain.common.storage import RAW_DEAL_DELETIONS_LAKE, RAW_DEALS_LAKE
from salesintel_assets.domain.common import leakage
from salesintel_assets.domain.common.tables import table_exists
from salesintel_assets.metadata import fail_after, frame_metadata, schema_metadata, stored_row_count, table_metadata
from salesintel_assets.resources.crm import CRMSource
from salesintel_assets.resources.settings import SalesintelSettings
from salesintel_assets.resources.warehouse import (TABLE_SCHEMA, SalesintelHome, Warehouse, append_frame, transaction,
                                                   upsert_frame)
from salesintel_assets.schemas import ingestion as schemas

FRESHNESS = fail_after(hours=4)
SCHEMA_CHECK = "raw_deals_schema_valid"
BREAKER_CHECK = "pull_within_error_budget"


def _spec(name: str, model, description: str) -> dg.AssetSpec:
    return dg.AssetSpec(name, group_name=INGESTION, freshness_policy=FRESHNESS, kinds={"duckdb"},
                        description=description, metadata=schema_metadata(model))


@dg.multi_asset(
    specs=[
        _spec("raw_deals", schemas.RawDeals, "Latest pulled version of every deal, as the CRM delivered it."),
        _spec("quarantined_deals", schemas.QuarantinedDeals, "Every rejected row of every pull, with rule and reason."),
        _spec("data_quality_report", schemas.DataQualityReport,
              "Per pull and rule: rows touched, action taken, circuit-breaker state."),
        _spec("raw_stage_history", schemas.RawStageHistory, "When each deal entered each stage (CRM history)."),
        _spec("raw_activities", schemas.RawActivities, "Calls, emails and meetings logged against deals."),
        _spec("raw_deal_deletions", schemas.RawDealDeletions,
              "Tombstones: deals the CRM deleted, and when (they leave fact_deals, keep their history)."),
    ],
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
    fails a gate stays in the lake but is not merged, so the cursor stays put
    and the next run pulls it again."""
    rules = settings.rules()
    source = crm.describe()
    with warehouse.connect() as con:
        since = ingestion.stored_cursor(con)
        pulled_at = datetime.now(timezone.utc).replace(tzinfo=None)
        pull_id = f"{pulled_at:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"
        pages = list(crm.fetch_deal_pages(since))
        delivered = pd.concat(pages, ignore_index=True) if pages else pd.DataFrame(columns=list(ingestion.RAW_COLUMNS))
        pull = ingestion.conform_raw(delivered)
        pull = pull.assign(_pull_id=pull_id, _pulled_at=pulled_at, _source=source,
                           _row_hash=ingestion.row_hashes(pull) if len(pull) else pd.Series(dtype="uint64"))
        lake.write_pull(home.subdir(RAW_DEALS_LAKE), pull_id, ingestion.with_unknown_columns(pull, delivered),
                        {"pulled_at": pulled_at, "source": source, "since": since, "run_id": context.run_id})

        deletions = deletions_of(crm, since).assign(_pull_id=pull_id, _pulled_at=pulled_at, _source=source)
        lake.write_pull(home.subdir(RAW_DEAL_DELETIONS_LAKE), pull_id, deletions,
                        {"pulled_at": pulled_at, "source": source, "since": since, "run_id": context.run_id})

        changes = ingestion.changed_rows(con, pull)
        result = quality.validate_deals(changes, rules)
        result.schema_errors.extend(crm.missing_fields(since))
        tripped = result.breaker_tripped(rules)
        accepted = not result.schema_errors and not tripped
        report = quality.report_rows(result, rules).assign(pull_id=pull_id, pulled_at=pulled_at, source=source,
                                                          accepted=accepted)
        with transaction(con):
            if accepted:
                with_id = changes[changes["deal_id"].str.strip() != ""]
                latest, _ = ingestion.keep_latest(with_id)
                upsert_frame(con, "raw_deals", latest.reset_index(drop=True), "deal_id")
                upsert_frame(con, "raw_deal_deletions", deletions, "deal_id")
            else:
                for table, frame in (("raw_deals", pull), ("raw_deal_deletions", deletions)):
                    if not table_exists(con, table):
                        upsert_frame(con, table, frame.iloc[:0], "deal_id")
            append_frame(con, "quarantined_deals", result.quarantined)
            report = pd.concat([report, _leakage_rows(con, report)], ignore_index=True)
            append_frame(con, "data_quality_report", report)
            upsert_frame(con, "raw_stage_history", crm.fetch_stage_history(since), "deal_id")
            upsert_frame(con, "raw_activities", crm.fetch_activities(since), "activity_id")
        context.log.info(f"pull {pull_id}: {len(pull)} rows pulled, {len(changes)} changed, {len(deletions)} deleted, "
                         f"{len(result.quarantined)} quarantined, accepted={accepted}")

        yield dg.MaterializeResult(asset_key="raw_deals", metadata=table_metadata(
            con, "raw_deals", pulled_rows=len(pull), changed_rows=len(changes), cursor=str(since), source=source,
            accepted=accepted))
        yield dg.MaterializeResult(asset_key="quarantined_deals", metadata=table_metadata(
            con, "quarantined_deals", new_rows=len(result.quarantined)))
        yield dg.MaterializeResult(asset_key="data_quality_report", metadata={**frame_metadata(
            report[["rule", "action", "rows", "share", "batch_rows", "breaker_tripped", "detail"]],
            bad_share=round(result.bad_share, 4)), **stored_row_count(con, "data_quality_report")})
        yield dg.MaterializeResult(asset_key="raw_stage_history", metadata=table_metadata(con, "raw_stage_history"))
        yield dg.MaterializeResult(asset_key="raw_activities", metadata=table_metadata(con, "raw_activities"))
        yield dg.MaterializeResult(asset_key="raw_deal_deletions", metadata=table_metadata(
            con, "raw_deal_deletions", reported_deletions=len(deletions)))
    yield dg.AssetCheckResult(
        check_name=SCHEMA_CHECK, asset_key="raw_deals", passed=not result.schema_errors,
        metadata={"errors": "; ".join(result.schema_errors) or "none"},
        description="Schema broken: the export must be fixed (data team)." if result.schema_errors else None)
    limit = rules.quality.circuit_breaker.max_bad_share
    yield dg.AssetCheckResult(
        check_name=BREAKER_CHECK, asset_key="data_quality_report", passed=not tripped,
        metadata={"bad_rows": result.bad_rows, "batch_rows": result.batch_rows,
                  "bad_share": round(result.bad_share, 4), "limit": limit},
        description=(f"{result.bad_share:.1%} of the pull broke rules (limit {limit:.0%}): "
                     "pull kept in the lake, not merged") if tripped else None)


def deletions_of(crm: CRMSource, since) -> pd.DataFrame:
    """The CRM's deletions since the cursor, conformed to tombstones."""
    return deletions_domain.conform_deletions(crm.fetch_deletions(since))


def _leakage_rows(con, report: pd.DataFrame) -> pd.DataFrame:
    """Columns of the stored deals that give the outcome away (named here,
    excluded by the models and drivers layers), as report rows of this pull."""
    if not table_exists(con, "raw_deals"):
        return report.iloc[:0]
    findings, screened = leakage.screen_export(con.sql(
        f"SELECT * FROM {TABLE_SCHEMA}.raw_deals").df())
    rows = leakage.report_rows(findings, screened)
    for col in ("pull_id", "pulled_at", "source", "accepted", "breaker_tripped", "bad_rows", "bad_share"):
        if col in report:
            rows[col] = report[col].iloc[0] if len(report) else None
    return rows


@dg.asset(group_name=INGESTION, freshness_policy=FRESHNESS, metadata=schema_metadata(schemas.RawSalesReps),
          kinds={"duckdb"})
def raw_sales_reps(crm: CRMSource) -> dg.Output[pd.DataFrame]:
    """The sales org (rep -> manager -> CRO) when the CRM or an org file has one."""
    org = crm.fetch_org()
    org = org if org is not None else pd.DataFrame({"sales_rep_id": pd.Series(dtype=str)})
    return dg.Output(org, metadata=frame_metadata(org))
