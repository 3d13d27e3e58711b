"""Tombstones: a deal the CRM deleted leaves fact_deals (and so every metric,
model and alert built on it) but keeps its raw versions, its stage history
and its deal_history, whose last version is closed with a deleted flag.

A tombstone only covers the raw version it post-dates: a deal restored in
the CRM comes back with a newer last_modified and is live again."""

from __future__ import annotations

import duckdb

from salesintel_assets.domain.common.tables import table_exists

TOMBSTONES = "raw_deal_deletions"


def deleted_raw_deals_sql(con: duckdb.DuckDBPyConnection) -> str:
    """A relation of (deal_id, deleted_at) for raw deals whose latest stored
    version is covered by a tombstone (empty without tombstones)."""
    if not table_exists(con, TOMBSTONES) or not table_exists(con, "raw_deals"):
        return "(SELECT NULL::VARCHAR AS deal_id, NULL::TIMESTAMP AS deleted_at LIMIT 0)"
    return f"""(SELECT r.deal_id, t.deleted_at FROM main.raw_deals r JOIN main.{TOMBSTONES} t USING (deal_id)
               WHERE TRY_CAST(NULLIF(r.last_modified, '') AS TIMESTAMP) IS NULL
                  OR t.deleted_at >= TRY_CAST(NULLIF(r.last_modified, '') AS TIMESTAMP))"""


def remove_deleted_deals(con: duckdb.DuckDBPyConnection) -> int:
    """Delete tombstoned deals from fact_deals; returns how many left."""
    if not table_exists(con, "fact_deals"):
        return 0
    deleted = deleted_raw_deals_sql(con)
    return con.execute(f"DELETE FROM main.fact_deals WHERE deal_id IN (SELECT deal_id FROM {deleted})"
                       ).fetchall()[0][0]


def close_deleted_history(con: duckdb.DuckDBPyConnection) -> int:
    """Close the current deal_history version of every tombstoned deal
    (valid_to = when it was deleted, is_deleted = true). Returns how many."""
    if not table_exists(con, "deal_history"):
        return 0
    deleted = deleted_raw_deals_sql(con)
    return con.execute(f"""
        UPDATE main.deal_history SET valid_to = greatest(d.deleted_at, main.deal_history.valid_from),
               is_current = false, is_deleted = true
        FROM {deleted} d
        WHERE main.deal_history.deal_id = d.deal_id AND main.deal_history.is_current""").fetchall()[0][0]
