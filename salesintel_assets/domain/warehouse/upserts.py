"""The star schema: fact_deals, the dimensions, stage transitions and the
SCD type 2 history of every deal.

The warehouse is maintained incrementally in DuckDB: only raw versions that
fact_deals has not seen yet are validated and upserted, and the columns that
depend on the analysis date (age, days in stage, activity counts) are
recomputed in one SQL pass. That keeps a 1 %-changed pull a small fraction of
a full load. The SQL below runs against any DuckDB connection, so tests and
benchmarks use an in-memory database with the same code.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from typing import Iterator

import duckdb
import pandas as pd

from salesintel_assets.domain.common.rules import Rules
from salesintel_assets.domain.common.tables import relation_or_empty, table_exists
from salesintel_assets.domain.warehouse.tombstones import close_deleted_history, deleted_raw_deals_sql

FACT_COLUMNS = [
    "deal_id", "created_date", "closed_date", "sales_rep_id", "industry", "region", "product_type",
    "lead_source", "deal_stage", "crm_stage", "stage_number", "deal_amount", "sales_cycle_days", "outcome",
    "is_open", "is_won", "age_days", "stage_entered_date", "days_in_stage", "last_modified",
    "activity_count", "last_activity_date", "needs_review", "review_reason", "cycle_corrected",
    "original_sales_cycle_days", "as_of_date",
]
# Raw deals validated at once by fact_deals (memory holds one part's Python strings).
PENDING_PART_ROWS = 100_000
# DuckDB's share of memory while a large load runs beside pandas frames: above it, sorts and
# uncommitted rows spill to disk (DuckDB's own default is 80 % of the machine's memory).
LOAD_MEMORY_LIMIT = "512MB"
# Lineage: the raw version a fact row was built from, and the rules it was built with.
LINEAGE = ["_row_hash", "_rules_hash"]
# What a new deal_history version is cut on.
HISTORY_TRACKED = ["deal_stage", "outcome", "deal_amount", "closed_date", "sales_rep_id", "industry",
                   "region", "product_type", "lead_source", "created_date"]
ORG_COLUMNS = ["sales_rep_id", "rep_name", "email", "team", "manager_id", "manager_name", "manager_email",
               "cro_id", "cro_name", "cro_email"]


@contextmanager
def load_memory_limit(con: duckdb.DuckDBPyConnection, limit: str = LOAD_MEMORY_LIMIT) -> Iterator[None]:
    """Cap DuckDB's memory on ``con`` for a large load, then restore the default."""
    con.execute(f"SET memory_limit = '{limit}'")
    try:
        yield
    finally:
        con.execute("RESET memory_limit")


def rules_fingerprint(rules: Rules) -> str:
    """Changes when a rule that shapes fact rows changes (then rebuild all)."""
    # max_quiet_days only judges the data (a warning check): it shapes no row
    shaping = {"stages": rules.stages.model_dump(), "quality": rules.quality.model_dump(exclude={"max_quiet_days"}),
               "columns": FACT_COLUMNS}   # a new column rebuilds the table too
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]


def fact_rows(clean: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """Fact rows for validated deals; the date-dependent columns are left for
    ``refresh_time_columns``."""
    fact = clean.copy()
    fact["stage_number"] = fact["deal_stage"].map(rules.stages.numbers).astype("Int64")
    fact["is_open"] = fact["outcome"].eq("Open")
    fact["is_won"] = fact["outcome"].eq("Won")
    for col in ("age_days", "days_in_stage"):
        fact[col] = float("nan")
    fact["activity_count"] = 0
    fact["last_activity_date"] = pd.NaT
    fact["as_of_date"] = pd.NaT
    for col in ("stage_entered_date", "last_modified", "last_activity_date", "as_of_date"):
        fact[col] = pd.to_datetime(fact[col])
    if "_row_hash" not in fact.columns:
        fact["_row_hash"] = pd.util.hash_pandas_object(fact[["deal_id"]], index=False).astype("uint64")
    fact["_rules_hash"] = rules_fingerprint(rules)
    return fact[FACT_COLUMNS + LINEAGE].astype(_FACT_DTYPES)


_FACT_DTYPES = {
    **{c: "datetime64[ns]" for c in ("created_date", "closed_date", "stage_entered_date", "last_modified",
                                       "last_activity_date", "as_of_date")},
    **{c: "float64" for c in ("deal_amount", "sales_cycle_days", "age_days", "days_in_stage",
                              "original_sales_cycle_days")},
    **{c: bool for c in ("is_open", "is_won", "needs_review", "cycle_corrected")},
    "stage_number": "Int64", "activity_count": "int64", "_row_hash": "uint64",
}


def refresh_time_columns(con: duckdb.DuckDBPyConnection, as_of: pd.Timestamp) -> None:
    """Recompute every column that depends on the analysis date, for all rows."""
    history = relation_or_empty(con, "raw_stage_history",
                                 "SELECT NULL::VARCHAR AS deal_id, NULL::TIMESTAMP AS entered_date LIMIT 0")
    activities = relation_or_empty(con, "raw_activities",
                                    "SELECT NULL::VARCHAR AS deal_id, NULL::TIMESTAMP AS activity_date LIMIT 0")
    con.execute(f"""
        CREATE OR REPLACE TABLE main.fact_deals AS
        WITH h AS (SELECT deal_id, max(entered_date)::TIMESTAMP AS entered FROM {history} GROUP BY deal_id),
             a AS (SELECT deal_id, count(*) AS n, max(activity_date)::TIMESTAMP AS last_at FROM {activities}
                   WHERE activity_date <= $as_of GROUP BY deal_id),
             f AS (SELECT f.* REPLACE (coalesce(f.stage_entered_date, h.entered) AS stage_entered_date),
                          a.n, a.last_at
                   FROM main.fact_deals f LEFT JOIN h USING (deal_id) LEFT JOIN a USING (deal_id))
        SELECT f.* EXCLUDE (n, last_at) REPLACE (
            CASE WHEN is_open THEN date_diff('day', created_date, $as_of)::DOUBLE
                 ELSE sales_cycle_days END AS age_days,
            CASE WHEN is_open THEN date_diff('day', stage_entered_date, $as_of)::DOUBLE END AS days_in_stage,
            coalesce(n, 0)::BIGINT AS activity_count,
            last_at AS last_activity_date,
            $as_of AS as_of_date)
        FROM f ORDER BY deal_id
    """, {"as_of": pd.Timestamp(as_of).to_pydatetime()})


def pending_raw_deal_parts(con: duckdb.DuckDBPyConnection, rules: Rules,
                           part_rows: int = PENDING_PART_ROWS) -> Iterator[pd.DataFrame]:
    """Raw versions fact_deals was not built from (all of them when fact_deals
    is missing or was built with other rules; deleted deals left out), in
    parts of at most about ``part_rows`` deals split by the hash of deal_id
    (a deal's rows stay in one part), so a full load never holds a million
    raw rows as Python strings at once."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _pending AS {_pending_sql(con, rules)}")
    try:
        rows = con.execute("SELECT count(*) FROM _pending").fetchall()[0][0]
        parts = max(1, -(-rows // part_rows))
        for part in range(parts):
            where = "" if parts == 1 else f" WHERE hash(deal_id) % {parts} = {part}"
            yield con.sql(f"SELECT * FROM _pending{where}").df()
    finally:
        con.execute("DROP TABLE IF EXISTS _pending")


def _pending_sql(con: duckdb.DuckDBPyConnection, rules: Rules) -> str:
    live = f"(SELECT * FROM main.raw_deals ANTI JOIN {deleted_raw_deals_sql(con)} d USING (deal_id))"
    if table_exists(con, "fact_deals"):
        stale = con.execute("SELECT count(*) FROM main.fact_deals WHERE _rules_hash <> ?",
                            [rules_fingerprint(rules)]).fetchall()[0][0]
        if not stale:
            return (f"SELECT r.* FROM {live} r ANTI JOIN main.fact_deals f "
                    "ON r.deal_id = f.deal_id AND r._row_hash = f._row_hash")
        con.execute("DROP TABLE main.fact_deals")
    return f"SELECT * FROM {live}"


def build_fact_deals(clean: pd.DataFrame, stage_history: pd.DataFrame, activities: pd.DataFrame,
                     rules: Rules, as_of: pd.Timestamp) -> pd.DataFrame:
    """The whole fact table in memory (tests, benchmarks, notebooks): the same
    SQL the warehouse runs, on an in-memory DuckDB."""
    return build_in_memory(clean, stage_history, activities, rules, as_of)[0]


def build_in_memory(clean: pd.DataFrame, stage_history: pd.DataFrame, activities: pd.DataFrame,
                    rules: Rules, as_of: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fact_deals, fact_stage_transitions) from validated deals, built with
    the warehouse's own SQL on an in-memory DuckDB."""
    con = duckdb.connect()
    try:
        con.register("_fact", fact_rows(clean, rules))
        con.execute("CREATE TABLE main.fact_deals AS SELECT * FROM _fact")
        for name, frame in (("raw_stage_history", stage_history), ("raw_activities", activities)):
            if frame is not None and not frame.empty:
                con.register("_src", frame)
                con.execute(f"CREATE TABLE main.{name} AS SELECT * FROM _src")
                con.unregister("_src")
        refresh_time_columns(con, as_of)
        rebuild_stage_transitions(con, rules, as_of)
        return (con.sql("SELECT * FROM main.fact_deals").df(),
                con.sql("SELECT * FROM main.fact_stage_transitions").df())
    finally:
        con.close()


def update_deal_history(con: duckdb.DuckDBPyConnection, observed_at: pd.Timestamp) -> int:
    """SCD type 2 from fact_deals: a new version when a tracked attribute
    changes; the old one gets valid_to and stays queryable. ``valid_from`` is
    the CRM's last_modified when known, else when we saw it. A deal the CRM
    deleted has its current version closed with ``is_deleted``. Returns the
    number of versions added."""
    tracked = ", ".join(HISTORY_TRACKED)
    params = {"seen": pd.Timestamp(observed_at).to_pydatetime()}
    if not table_exists(con, "deal_history"):
        con.execute(f"""
            CREATE TABLE main.deal_history AS
            SELECT deal_id, 1::BIGINT AS version, coalesce(last_modified, $seen) AS valid_from,
                   NULL::TIMESTAMP AS valid_to, true AS is_current, false AS is_deleted, {tracked}
            FROM main.fact_deals ORDER BY deal_id""", params)
        return con.execute("SELECT count(*) FROM main.deal_history").fetchall()[0][0]
    differs = " OR ".join(f"h.{c} IS DISTINCT FROM f.{c}" for c in HISTORY_TRACKED)
    con.execute("ALTER TABLE main.deal_history ADD COLUMN IF NOT EXISTS is_deleted BOOLEAN DEFAULT false")
    con.execute("BEGIN TRANSACTION")
    try:
        # A deal restored after a deletion has no current version: it continues its numbering.
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _changed AS
            SELECT f.deal_id, coalesce(m.version, 0) + 1 AS version,
                   coalesce(f.last_modified, $seen) AS valid_from, {", ".join("f." + c for c in HISTORY_TRACKED)}
            FROM main.fact_deals f LEFT JOIN main.deal_history h ON h.deal_id = f.deal_id AND h.is_current
            LEFT JOIN (SELECT deal_id, max(version) AS version FROM main.deal_history GROUP BY deal_id) m
                   ON m.deal_id = f.deal_id
            WHERE h.deal_id IS NULL OR {differs}""", params)
        con.execute("""
            UPDATE main.deal_history SET valid_to = c.valid_from, is_current = false
            FROM _changed c WHERE main.deal_history.deal_id = c.deal_id AND main.deal_history.is_current""")
        con.execute(f"""
            INSERT INTO main.deal_history BY NAME
            SELECT deal_id, version, valid_from, NULL::TIMESTAMP AS valid_to, true AS is_current,
                   false AS is_deleted, {tracked}
            FROM _changed""")
        added = con.execute("SELECT count(*) FROM _changed").fetchall()[0][0]
        close_deleted_history(con)
        con.execute("COMMIT")
        return added
    except Exception:
        con.execute("ROLLBACK")
        raise


def rebuild_stage_transitions(con: duckdb.DuckDBPyConnection, rules: Rules, as_of: pd.Timestamp) -> None:
    """One row per stage a deal entered: when, until when, and for how long.
    The exit of the last stage is the close (or still open at the analysis date)."""
    history = relation_or_empty(con, "raw_stage_history",
                                 "SELECT NULL::VARCHAR AS deal_id, NULL::VARCHAR AS stage, "
                                 "NULL::TIMESTAMP AS entered_date LIMIT 0")
    stages = pd.DataFrame({"stage": rules.stages.order, "stage_number": range(1, len(rules.stages.order) + 1)})
    con.register("_stages", stages)
    con.execute(f"""
        CREATE OR REPLACE TABLE main.fact_stage_transitions AS
        WITH t AS (
            SELECT h.deal_id, h.stage, s.stage_number, h.entered_date::TIMESTAMP AS entered_date,
                   lead(h.entered_date::TIMESTAMP) OVER w AS next_entry, f.closed_date, f.outcome
            FROM {history} h JOIN main.fact_deals f USING (deal_id)
            LEFT JOIN _stages s ON s.stage = h.stage
            WINDOW w AS (PARTITION BY h.deal_id ORDER BY h.entered_date))
        SELECT deal_id, stage, stage_number, entered_date, coalesce(next_entry, closed_date) AS exited_date,
               date_diff('day', entered_date, coalesce(next_entry, closed_date, $as_of))::DOUBLE AS days_in_stage,
               next_entry IS NULL AS is_current, outcome
        FROM t ORDER BY deal_id, entered_date""", {"as_of": pd.Timestamp(as_of).to_pydatetime()})
    con.unregister("_stages")


def rebuild_dimension(con: duckdb.DuckDBPyConnection, table: str, column: str) -> None:
    """A small segment dimension (industry, product type) with its volume."""
    con.execute(f"""
        CREATE OR REPLACE TABLE main.{table} AS
        SELECT {column}, count(*) AS deals, count(*) FILTER (WHERE is_open) AS open_deals,
               count(*) FILTER (WHERE NOT is_open) AS closed_deals, count(*) FILTER (WHERE is_won) AS won_deals,
               min(created_date) AS first_created
        FROM main.fact_deals GROUP BY {column} ORDER BY {column}""")


def build_dim_sales_reps(rep_stats: pd.DataFrame, org: pd.DataFrame | None) -> pd.DataFrame:
    """Every rep seen in the deals with their routing chain (rep -> manager
    -> CRO); without an org the chain is empty and alerts go to the
    leadership default. ``rep_stats``: sales_rep_id, deals, open_deals."""
    reps = rep_stats[["sales_rep_id"]].copy()
    if org is not None and not org.empty:
        org = org.reindex(columns=ORG_COLUMNS).replace("", None).drop_duplicates("sales_rep_id", keep="last")
        reps = reps.merge(org, on="sales_rep_id", how="outer")
    else:
        reps = reps.reindex(columns=ORG_COLUMNS)
    reps["rep_name"] = reps["rep_name"].fillna(reps["sales_rep_id"])
    reps = reps.merge(rep_stats, on="sales_rep_id", how="left")
    reps[["deals", "open_deals"]] = reps[["deals", "open_deals"]].fillna(0).astype("int64")
    reps["has_org"] = reps["manager_id"].notna()
    return reps.sort_values("sales_rep_id", kind="stable").reset_index(drop=True)


def fact_deals_summary(con: duckdb.DuckDBPyConnection) -> dict:
    """Headline figures of ``fact_deals`` for the asset's metadata."""
    open_deals, closed, win_rate, flagged, corrected, pipeline = con.execute("""
        SELECT count(*) FILTER (WHERE is_open), count(*) FILTER (WHERE NOT is_open),
               avg(is_won::INT) FILTER (WHERE NOT is_open), count(*) FILTER (WHERE needs_review),
               count(*) FILTER (WHERE cycle_corrected), coalesce(sum(deal_amount) FILTER (WHERE is_open), 0)
        FROM main.fact_deals""").fetchall()[0]
    return {"open_deals": open_deals, "closed_deals": closed,
            "win_rate": round(win_rate, 4) if win_rate is not None else None,
            "flagged_for_review": flagged, "cycles_corrected": corrected, "open_pipeline_amount": float(pipeline)}


def dim_sales_reps_frame(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """``dim_sales_reps`` from the reps seen in ``fact_deals`` and the CRM's org."""
    stats = con.sql("SELECT sales_rep_id, count(*) AS deals, count(*) FILTER (WHERE is_open) AS open_deals "
                    "FROM main.fact_deals GROUP BY sales_rep_id").df()
    org = con.sql("SELECT * FROM main.raw_sales_reps").df()
    return build_dim_sales_reps(stats, org if len(org) else None)
