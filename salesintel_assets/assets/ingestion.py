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
from salesintel_assets.domain.ingestion import quality, values
from salesintel_assets.domain.ingestion import staged as staged_pull
from salesintel_assets.domain.ingestion.blocked import BlockedInput
from salesintel_assets.domain.common.storage import RAW_DEAL_DELETIONS_LAKE, RAW_DEALS_LAKE
from salesintel_assets.domain.common import leakage, reruns
from salesintel_assets.domain.common.memory import free_cycles_after
from salesintel_assets.domain.warehouse.upserts import load_memory_limit, rules_fingerprint
from salesintel_assets.domain.common.tables import table_exists
from salesintel_assets.metadata import fail_after, frame_metadata, schema_metadata, stored_row_count, table_metadata
from salesintel_assets.resources.crm import CRMSource
from salesintel_assets.resources.settings import SalesintelSettings
from salesintel_assets.resources.warehouse import (SalesintelHome, Warehouse, append_frame, transaction,
                                                   upsert_frame)
from salesintel_assets.schemas import ingestion as schemas

FRESHNESS = fail_after(hours=4)
SCHEMA_CHECK = "raw_deals_schema_valid"
BREAKER_CHECK = "pull_within_error_budget"
# Metadata key of a failure caused by a blocked input; its value is the one sentence to show.
BLOCKED_INPUT = "blocked_input"
# The temp table a source splits its export into (on the pull's own connection).
STAGED_EXPORT = "_staged_export"


def _spec(name: str, model, description: str) -> dg.AssetSpec:
    # skippable: a pull that brings nothing new since the last complete run yields nothing, so Dagster
    # skips every step downstream of it (see domain/common/reruns.py).
    return dg.AssetSpec(name, group_name=INGESTION, freshness_policy=FRESHNESS, kinds={"duckdb"},
                        description=description, metadata=schema_metadata(model), skippable=True)


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
    gate it, and merge it into the latest version of every deal. A problem
    with the whole input (file, columns, formats, settings) stops the pull
    before anything is written; a pull that trips the circuit breaker stays in
    the lake but is not merged, so the cursor stays put and the next run pulls
    it again. The same input pulled again writes nothing; when it brings
    nothing new since the last complete run (same analysis date, rules, org
    and code too), no table is yielded and every step downstream is skipped."""
    rules, as_of = settings.rules(), settings.analysis_date()
    world = {"as_of": as_of, "rules": rules, "code": reruns.code_fingerprint()}
    source_fingerprint = crm.snapshot_fingerprint()
    with warehouse.connect() as con:
        state = reruns.read_state(con)
    if (source_fingerprint is not None and source_fingerprint == state.get(reruns.SOURCE)
            and reruns.run_stamp(state.get(reruns.RAW_VERSION), org=_org_or_none(crm), **world)
            == state.get(reruns.COMPLETED)):
        context.log.info("the source is unchanged since the last complete run: nothing pulled, downstream skipped")
        yield from _unchanged_checks()
        return
    try:
        gated = _gate_pull(crm, settings, warehouse, home)
    except BlockedInput as exc:
        raise dg.Failure(description=str(exc), metadata={BLOCKED_INPUT: str(exc)}, allow_retries=False) from None
    pulled_rows = gated["pulled_rows"]
    free_cycles_after(pulled_rows)   # judging a large pull leaves reference cycles among its frames: free them
    stored = _store_pull(context, crm, warehouse, home, gated, rules)
    raw_version = gated["pull_id"] if stored["new_data"] or not state.get(reruns.RAW_VERSION) else \
        state[reruns.RAW_VERSION]
    # The org is read after the deals, so a CRM that refuses the pull is reported by the pull.
    stamp = reruns.run_stamp(raw_version, org=_org_or_none(crm), **world)
    nothing_new = not gated["tripped"] and stamp == state.get(reruns.COMPLETED)
    with warehouse.connect() as con:
        accepted = {reruns.SOURCE: source_fingerprint or ""} if not gated["tripped"] else {}
        # Handing the tables on means downstream tables change: no complete run describes them any more.
        handed_on = {} if nothing_new else {reruns.COMPLETED: ""}
        reruns.write_state(con, **{reruns.RAW_VERSION: raw_version, reruns.PENDING: stamp,
                                   reruns.PENDING_RUN: context.run_id, **accepted, **handed_on})
    if nothing_new:
        context.log.info("nothing new since the last complete run (data, analysis date, rules, org, code): "
                         "downstream skipped")
        yield from _unchanged_checks()
        return
    yield from _pull_results(warehouse, gated, stored, rules, stamp)
    del gated, stored
    free_cycles_after(pulled_rows)   # so the steps after the pull start from what it keeps, not from its garbage


def _unchanged_checks():
    """Check outputs cannot be skipped: a pull that brought nothing new passes
    both (a tripped or incomplete pull is never skipped)."""
    for name, asset in ((SCHEMA_CHECK, "raw_deals"), (BREAKER_CHECK, "data_quality_report")):
        yield dg.AssetCheckResult(check_name=name, asset_key=asset, passed=True, metadata={"nothing_new": True})


def _org_or_none(crm: CRMSource) -> pd.DataFrame | None:
    """The org for the re-run stamp; an unreadable org file is raw_sales_reps' failure to report."""
    try:
        return crm.fetch_org()
    except BlockedInput:
        return None


def _gate_pull(crm: CRMSource, settings: SalesintelSettings, warehouse: Warehouse, home: SalesintelHome) -> dict:
    """Read and judge the pull without writing anything (BlockedInput for a
    problem with the whole input)."""
    rules = settings.rules()
    as_of = settings.analysis_date()
    source = crm.describe()
    where = source.removeprefix("csv:")
    stated = quality.stated_formats(rules, *crm.stated_formats())
    with warehouse.connect() as con:
        since = ingestion.stored_cursor(con)
        marker = crm.change_marker()
        header = crm.stage_deals(con, STAGED_EXPORT)
        staged = None
        if header is not None:   # the export is in DuckDB: only rows not stored unchanged come to pandas
            formats = staged_pull.decide_formats(con, STAGED_EXPORT, header, stated, where)
            staged_pull.add_digests(con, STAGED_EXPORT, header, f"{formats}|{rules.quality.max_deal_amount!r}")
            fingerprint = staged_pull.fingerprint(con, STAGED_EXPORT, source,
                                                  f"{formats}|{as_of.date()}|{rules_fingerprint(rules)}")
            staged = staged_pull.load_changed(con, STAGED_EXPORT, header)
            if not staged.skipped:   # DuckDB's copy is not read again
                staged_pull.drop(con, STAGED_EXPORT)
        if staged is not None and staged.frame is not None:
            delivered = staged.frame
        else:
            pages = list(crm.fetch_deal_pages(since))
            delivered = (pages[0].reset_index(drop=True) if len(pages) == 1 else pd.concat(pages, ignore_index=True)) \
                if pages else pd.DataFrame(columns=list(ingestion.RAW_COLUMNS))
            del pages
            if staged is not None and crm.change_marker() != marker:
                staged.digests = None   # the file changed while it was read: its rows keep no digests
        pull = ingestion.conform_raw(delivered)
        # Only the columns the export format does not know are kept for the lake (not a second copy of all).
        delivered = delivered[[c for c in delivered.columns if c not in pull.columns]]
        # A connector names the fields its CRM did not deliver: that pull is kept in the lake, not merged.
        source_missing = crm.missing_fields(since)
        missing = ingestion.missing_columns(pull)
        if source_missing:
            pull = pull.assign(**{col: "" for col in missing})
        elif missing:
            raise BlockedInput(f"The pull from {where} has no column(s) {', '.join(missing)}: export it with the "
                               "contract's columns (see the README) and run again.")
        defect = pull[quality.DEFECT] != "" if quality.DEFECT in pull.columns else pd.Series(False, index=pull.index)
        if staged is None:
            formats = values.decide_formats(quality.rows_where(pull, ~defect), stated, where)
        pull, _, _ = values.normalize_frame(pull, formats, rules.quality.max_deal_amount)
        pulled_at = datetime.now(timezone.utc).replace(tzinfo=None)
        pull_id = f"{pulled_at:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"
        pull = pull.assign(_pull_id=pull_id, _pulled_at=pulled_at, _source=source,
                           _row_hash=ingestion.row_hashes(pull) if len(pull) else pd.Series(dtype="uint64"))
        if staged is None:
            fingerprint = ingestion.pull_fingerprint(pull, source,
                                                     f"{formats}|{as_of.date()}|{rules_fingerprint(rules)}")
        lake_file = None
        if staged is not None and staged.skipped:   # the lake keeps the whole pull, skipped rows included
            lake_file = home.subdir(RAW_DEALS_LAKE) / f".{pull_id}.parquet.partial"
            staged_pull.write_lake_rows(con, STAGED_EXPORT, header, pull, {
                "pull_id": pull_id, "pulled_at": pulled_at, "source": source}, lake_file)

        candidates, superseded = ingestion.latest_candidates(pull, defect.to_numpy())
        changes = ingestion.changed_rows(con, candidates)
        result = quality.with_superseded(
            quality.validate_deals(changes, rules, formats=formats, as_of=as_of, where=where), superseded)
        deletions = deletions_of(crm, since).assign(_pull_id=pull_id, _pulled_at=pulled_at, _source=source)
    if result.schema_errors:
        raise BlockedInput(f"The pull from {where} cannot be read as deals ({'; '.join(result.schema_errors)}): "
                           "check that the columns hold what their names say and run again.")
    tripped = result.breaker_tripped(rules) or bool(source_missing)
    breaker = "" if not result.breaker_tripped(rules) else quality.breaker_sentence(result, rules, where)
    # From here on only the typed rows' review flags are read (bad_rows); fact_deals types the rows itself.
    result.clean = result.clean[["needs_review"]]
    return {"pull": pull, "pull_id": pull_id, "pulled_rows": staged.rows if staged is not None else len(pull),
            "digests": staged.digests if staged is not None else None, "lake_file": lake_file,
            "pulled_at": pulled_at, "source": source, "since": since,
            "changes": changes, "result": result, "tripped": tripped, "formats": formats,
            "fingerprint": fingerprint, "delivered": delivered, "deletions": deletions,
            "source_missing": source_missing,
            "breaker": breaker}


def _store_pull(context: dg.AssetExecutionContext, crm: CRMSource, warehouse: Warehouse, home: SalesintelHome,
                gated: dict, rules) -> dict:
    """Write the pull (lake, raw tables, report); say whether it changed any stored row."""
    pull, changes, result, tripped = gated["pull"], gated["changes"], gated["result"], gated["tripped"]
    pull_id, pulled_at, source, since = gated["pull_id"], gated["pulled_at"], gated["source"], gated["since"]
    lake_folder = home.subdir(RAW_DEALS_LAKE)
    previous = lake.latest_note(lake_folder)
    repeated = previous is not None and previous.get("fingerprint") == gated["fingerprint"]
    if repeated:  # the same input again, unless the run that kept it died before the warehouse took it
        with warehouse.connect() as con:
            repeated = ingestion.pull_committed(con, previous.get("pull_id"))
    deletions = gated["deletions"]
    note = {"pulled_at": pulled_at, "source": source, "since": since, "run_id": context.run_id}
    lake_note = {**note, "fingerprint": gated["fingerprint"], "date_order": gated["formats"].date_order,
                 "decimal_mark": gated["formats"].decimal_mark, "accepted": not tripped,
                 "blocked": gated["breaker"] or None}
    if gated["lake_file"] is not None:
        if repeated:
            gated["lake_file"].unlink()
        else:
            lake.keep_pull_file(lake_folder, pull_id, gated["lake_file"], gated["pulled_rows"], lake_note)
    elif not repeated:
        lake.write_pull(lake_folder, pull_id, ingestion.with_unknown_columns(pull, gated["delivered"]), lake_note)
    if not repeated or len(deletions):
        lake.write_pull(home.subdir(RAW_DEAL_DELETIONS_LAKE), pull_id, deletions, note)
    report = quality.report_rows(result, rules, detail="; ".join(gated["source_missing"]) or gated["breaker"]).assign(
        pull_id=pull_id, pulled_at=pulled_at, source=source, accepted=not tripped)
    raw_columns = list(ingestion.RAW_COLUMNS) + ["_pull_id", "_pulled_at", "_source", "_row_hash"]
    history, activities = crm.fetch_stage_history(since), crm.fetch_activities(since)
    with warehouse.connect() as con:
        with transaction(con):
            new_data = False
            if not tripped:
                unreadable = result.quarantined.loc[
                    result.quarantined["rule"].isin(["malformed_row", "unparseable_value"]), "_row_hash"]
                storable = quality.rows_where(
                    changes, ((changes["deal_id"] != "") & ~changes["_row_hash"].isin(unreadable)).to_numpy())
                latest, _ = ingestion.keep_latest(storable)
                unseen = ingestion.unseen_quarantine(con, result.quarantined)
                new_data = bool(len(latest) or len(unseen)) or reruns.rows_change(
                    con, "raw_deal_deletions", deletions, "deal_id", ["deal_id", "deleted_at"])
                stored = staged_pull.with_digests(latest[raw_columns], latest.get(quality.LINE), gated["digests"])
                with load_memory_limit(con):
                    staged_pull.ensure_digest_column(con)
                    upsert_frame(con, "raw_deals", quality.renumbered(stored), "deal_id")
                upsert_frame(con, "raw_deal_deletions", deletions, "deal_id")
                append_frame(con, "quarantined_deals", unseen)
            else:
                for table, frame in (("raw_deals", staged_pull.with_digests(pull[raw_columns].iloc[:0], None, None)),
                                     ("raw_deal_deletions", deletions)):
                    if not table_exists(con, table):
                        upsert_frame(con, table, frame.iloc[:0], "deal_id")
            if not table_exists(con, "quarantined_deals"):
                append_frame(con, "quarantined_deals", result.quarantined.iloc[:0])
            if not repeated:
                report = pd.concat([report, _leakage_rows(con, report, rules)], ignore_index=True)
                append_frame(con, "data_quality_report", report)
            new_data = (new_data or reruns.rows_change(con, "raw_stage_history", history, "deal_id")
                        or reruns.rows_change(con, "raw_activities", activities, "activity_id"))
            upsert_frame(con, "raw_stage_history", history, "deal_id")
            upsert_frame(con, "raw_activities", activities, "activity_id")
    context.log.info(f"pull {pull_id}: {gated['pulled_rows']} rows pulled, {len(changes)} changed, "
                     f"{len(deletions)} deleted, "
                     f"{len(result.quarantined)} quarantined, accepted={not tripped}"
                     + (" (same input as the previous pull: nothing new written)" if repeated else ""))
    return {"new_data": new_data, "report": report, "repeated": repeated}


def _pull_results(warehouse: Warehouse, gated: dict, stored: dict, rules, stamp: str):
    """The pull's tables and checks, each table with the run stamp as its data version."""
    changes, result, tripped = gated["changes"], gated["result"], gated["tripped"]
    since, source, deletions, report = gated["since"], gated["source"], gated["deletions"], stored["report"]
    repeated, version = stored["repeated"], dg.DataVersion(stamp)
    with warehouse.connect() as con:
        yield dg.MaterializeResult(asset_key="raw_deals", data_version=version, metadata=table_metadata(
            con, "raw_deals", pulled_rows=gated["pulled_rows"], changed_rows=len(changes), cursor=str(since),
            source=source,
            accepted=not tripped, repeated_input=repeated))
        yield dg.MaterializeResult(asset_key="quarantined_deals", data_version=version, metadata=table_metadata(
            con, "quarantined_deals", new_rows=0 if tripped else len(result.quarantined)))
        yield dg.MaterializeResult(asset_key="data_quality_report", data_version=version, metadata={**frame_metadata(
            report[["rule", "action", "rows", "share", "batch_rows", "breaker_tripped", "detail"]],
            bad_share=round(result.bad_share, 4)), **stored_row_count(con, "data_quality_report")})
        for name in ("raw_stage_history", "raw_activities"):
            yield dg.MaterializeResult(asset_key=name, data_version=version, metadata=table_metadata(con, name))
        yield dg.MaterializeResult(asset_key="raw_deal_deletions", data_version=version, metadata=table_metadata(
            con, "raw_deal_deletions", reported_deletions=len(deletions)))
    source_missing = gated["source_missing"]
    yield dg.AssetCheckResult(
        check_name=SCHEMA_CHECK, asset_key="raw_deals", passed=not source_missing,
        metadata={"errors": "; ".join(source_missing) or "none"},
        description=f"{'; '.join(source_missing)}: the pull is kept in the lake, not merged; restore the field "
                    "in the CRM and run again." if source_missing else None)
    limit = rules.quality.circuit_breaker.max_bad_share
    yield dg.AssetCheckResult(
        check_name=BREAKER_CHECK, asset_key="data_quality_report", passed=not gated["breaker"],
        metadata={"bad_rows": result.bad_rows, "batch_rows": result.batch_rows,
                  "bad_share": round(result.bad_share, 4), "limit": limit,
                  "by_rule": {rule: n for rule, n in result.rule_counts.items() if n}},
        description=gated["breaker"] or None)


def deletions_of(crm: CRMSource, since) -> pd.DataFrame:
    """The CRM's deletions since the cursor, conformed to tombstones."""
    return deletions_domain.conform_deletions(crm.fetch_deletions(since))


def _leakage_rows(con, report: pd.DataFrame, rules) -> pd.DataFrame:
    """Columns of the stored deals that give the outcome away (named here,
    excluded by the models and drivers layers), as report rows of this pull."""
    if not table_exists(con, "raw_deals"):
        return report.iloc[:0]
    stages = rules.stages
    closed_stages = stages.won + stages.lost
    findings, screened = leakage.screen_export(
        ingestion.closed_raw_deals(con, leakage.EXPORT_SCREENED, closed_stages), stages.won, stages.lost,
        ingestion.open_raw_empty_counts(con, leakage.EXPORT_SCREENED, closed_stages))
    rows = leakage.report_rows(findings, screened)
    for col in ("pull_id", "pulled_at", "source", "accepted", "breaker_tripped", "bad_rows", "bad_share"):
        if col in report:
            rows[col] = report[col].iloc[0] if len(report) else None
    return rows


@dg.asset(group_name=INGESTION, freshness_policy=FRESHNESS, metadata=schema_metadata(schemas.RawSalesReps),
          kinds={"duckdb"}, deps=["raw_deals"])
def raw_sales_reps(crm: CRMSource) -> dg.Output[pd.DataFrame]:
    """The sales org (rep -> manager -> CRO) when the CRM or an org file has
    one. It follows the deal pull, so a blocked pull writes no org either."""
    try:
        org = crm.fetch_org()
    except BlockedInput as exc:
        raise dg.Failure(description=str(exc), metadata={BLOCKED_INPUT: str(exc)}, allow_retries=False) from None
    org = org if org is not None else pd.DataFrame({"sales_rep_id": pd.Series(dtype=str)})
    return dg.Output(org, metadata=frame_metadata(org))
