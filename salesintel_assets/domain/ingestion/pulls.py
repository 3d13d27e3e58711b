"""Incremental pulls: text normalisation, change detection by content hash,
and the merge that keeps the latest version of every deal."""

from __future__ import annotations

import hashlib

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from salesintel_assets.constants import DERIVABLE_EXPORT_COLUMNS, EXPORT_COLUMNS
from salesintel_assets.domain.common.rules import STAGE_KEY_SQL, stage_key
from salesintel_assets.domain.common.tables import table_columns, table_exists

# Optional columns a CRM may deliver beside the export format.
OPTIONAL_COLUMNS = ("last_modified", "stage_entered_date")
RAW_COLUMNS = EXPORT_COLUMNS + OPTIONAL_COLUMNS
EMPTY_WHEN_ABSENT = OPTIONAL_COLUMNS + DERIVABLE_EXPORT_COLUMNS
# Where a row came from in a file and why it could not be split: carried
# through the pull for the quarantine's reasons, never stored in raw_deals.
SOURCE_POSITION = ("_line", "_defect")


def as_export_text(deals: pd.DataFrame) -> pd.DataFrame:
    """Render typed deals as the text a CRM export holds ("" for missing),
    so every source lands in the raw layer in one form."""
    out = pd.DataFrame(index=deals.index)
    for col in deals.columns:
        values = deals[col]
        if pd.api.types.is_datetime64_any_dtype(values):
            unit = "s" if col == "last_modified" else "D"
            text = pd.Series(np.datetime_as_string(values.to_numpy(), unit=unit), index=values.index)
        elif pd.api.types.is_float_dtype(values):
            whole = values.notna() & (values == values.round())
            text = values.astype(object).where(~whole, values.round().astype("Int64").astype(str))
            text = text.astype(str)
        else:
            text = values.astype(str)
        out[col] = text.where(values.notna(), "")
    return out


def conform_raw(page: pd.DataFrame) -> pd.DataFrame:
    """Keep the known columns as text, adding empty optional and derivable
    ones (``EMPTY_WHEN_ABSENT``). Missing required columns stay missing: the
    schema gate reports them."""
    # Column by column, without a copy of the whole page: a million-row page is large.
    index = pd.RangeIndex(len(page))
    text = {col: stripped_text(page[col]).to_numpy() if col in page.columns
            else np.full(len(page), "", dtype=object)
            for col in RAW_COLUMNS if col in page.columns or col in EMPTY_WHEN_ABSENT}
    text.update({col: page[col].to_numpy() for col in SOURCE_POSITION if col in page.columns})
    return pd.DataFrame(text, index=index, copy=False)


def with_unknown_columns(pull: pd.DataFrame, delivered: pd.DataFrame) -> pd.DataFrame:
    """The conformed pull plus every column the CRM delivered that the
    export format does not know: kept in the raw lake, ignored downstream."""
    extra = [c for c in delivered.columns if c not in pull.columns]
    if not extra:
        return pull
    return pd.concat([pull, delivered[extra].reset_index(drop=True).astype(str)], axis=1)


def stripped_text(values: pd.Series) -> pd.Series:
    """Text without surrounding whitespace, as Python strings. Arrow trims a
    million values in milliseconds where ``.str.strip()`` takes seconds."""
    text = values.astype(str)
    arrow = pa.array(text.to_numpy(dtype=object), type=pa.string())
    trimmed = pc.utf8_trim_whitespace(arrow)
    if trimmed.equals(arrow):   # nothing to trim: keep the strings (repeated values share one object)
        return text.astype(object)
    return pd.Series(trimmed.to_pandas(deduplicate_objects=True).to_numpy(dtype=object), index=values.index,
                     dtype=object)


def row_hashes(raw: pd.DataFrame) -> pd.Series:
    """A content hash of each row over the known columns (lineage excluded)."""
    cols = [c for c in RAW_COLUMNS if c in raw.columns]
    return pd.util.hash_pandas_object(raw[cols], index=False).astype("uint64")


def changed_rows(con: duckdb.DuckDBPyConnection, pull: pd.DataFrame) -> pd.DataFrame:
    """Rows of the pull whose content differs from the stored latest version
    of the same deal (all rows when nothing is stored yet), in pull order."""
    if not table_exists(con, "raw_deals") or pull.empty:
        return pull
    con.register("_pull", pull[["deal_id", "_row_hash"]].assign(_pos=np.arange(len(pull))))
    try:
        keep = con.sql("SELECT p._pos FROM _pull p ANTI JOIN main.raw_deals r "
                       "ON p.deal_id = r.deal_id AND p._row_hash = r._row_hash ORDER BY p._pos").df()["_pos"]
    finally:
        con.unregister("_pull")
    return pull.iloc[keep.to_numpy()].reset_index(drop=True)


def latest_first_order(raw: pd.DataFrame) -> np.ndarray:
    """Positions sorted so that, per deal, the most recent version comes last:
    by last_modified when known, then by arrival order."""
    modified = pd.to_datetime(raw["last_modified"].replace("", None), errors="coerce")
    order = pd.DataFrame({"m": modified.to_numpy(), "pos": np.arange(len(raw))})
    return order.sort_values(["m", "pos"], na_position="first", kind="stable")["pos"].to_numpy()


def keep_latest(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(latest version of each deal_id, the superseded versions), both in
    their original order."""
    if raw["deal_id"].is_unique:
        return raw, raw.iloc[:0]
    order = latest_first_order(raw)
    superseded = pd.Series(raw["deal_id"].to_numpy()[order]).duplicated(keep="last").to_numpy()
    return raw.iloc[np.sort(order[~superseded])], raw.iloc[np.sort(order[superseded])]


def latest_candidates(pull: pd.DataFrame, defect: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows to judge in pull order: the latest version of each deal, rows
    without an id and rows the source could not split; the superseded
    versions). A clean pull of unique ids is handed on without a copy."""
    body = pull if not defect.any() else pull[~defect]
    has_id = (body["deal_id"] != "").to_numpy(bool)
    latest, superseded = keep_latest(body if has_id.all() else body[has_id])
    if has_id.all() and not defect.any():
        candidates = latest
    else:
        candidates = pd.concat([latest, body[~has_id], pull[defect]]).sort_index()
    if not (isinstance(candidates.index, pd.RangeIndex) and candidates.index.start == 0
            and candidates.index.step == 1):
        candidates = candidates.reset_index(drop=True)
    return candidates, superseded


def stored_cursor(con: duckdb.DuckDBPyConnection) -> pd.Timestamp | None:
    """The incremental cursor: the newest last_modified already stored. It
    only moves when a pull is merged, so a failed pull is pulled again."""
    if not table_exists(con, "raw_deals"):
        return None
    newest = con.execute("SELECT max(TRY_CAST(NULLIF(last_modified, '') AS TIMESTAMP)) "
                         "FROM main.raw_deals").fetchall()[0][0]
    return None if newest is None else pd.Timestamp(newest)


def missing_columns(pull: pd.DataFrame) -> list[str]:
    return [c for c in EXPORT_COLUMNS if c not in pull.columns]


def pull_fingerprint(pull: pd.DataFrame, source: str, settings: str) -> str:
    """What identifies a pull's content: the same file pulled again with the
    same settings has the same fingerprint, so it can be recognised and
    nothing is written twice."""
    digest = hashlib.sha256(f"{source}|{settings}|{len(pull)}".encode())
    if len(pull):
        cols = [c for c in RAW_COLUMNS + SOURCE_POSITION if c in pull.columns]
        digest.update(pd.util.hash_pandas_object(pull[cols].astype(str), index=False).to_numpy().tobytes())
    return digest.hexdigest()[:32]


def unseen_quarantine(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame) -> pd.DataFrame:
    """Quarantine rows not recorded yet (same content, rule and reason), so a
    file pulled again does not quarantine its bad rows again."""
    if rows.empty or not table_exists(con, "quarantined_deals"):
        return rows
    keyed = rows[["_row_hash", "rule", "reason"]].assign(_pos=np.arange(len(rows)))
    con.register("_q", keyed)
    try:
        keep = con.sql("SELECT q._pos FROM _q q ANTI JOIN main.quarantined_deals s "
                       "ON q._row_hash = s._row_hash AND q.rule = s.rule AND q.reason = s.reason "
                       "ORDER BY q._pos").df()["_pos"]
    finally:
        con.unregister("_q")
    return rows.iloc[keep.to_numpy()].reset_index(drop=True)


def pull_committed(con: duckdb.DuckDBPyConnection, pull_id: str | None) -> bool:
    """Whether a pull reached the warehouse (its quality report rows did). A
    pull kept in the lake by a run that died before its warehouse
    transaction committed did not: the next run stores its input afresh."""
    if not pull_id or not table_exists(con, "data_quality_report"):
        return False
    return con.execute("SELECT count(*) FROM main.data_quality_report WHERE pull_id = ?", [pull_id]).fetchone()[0] > 0


def open_raw_empty_counts(con: duckdb.DuckDBPyConnection, columns, closed_stages=()) -> dict[str, tuple[int, int]]:
    """Per column of the stored raw deals that are open (Open, or no outcome
    and no close date; not in a won or lost stage): (open deals, of them blank
    or "Unknown"), counted in DuckDB: what the leakage screen needs to find
    a column filled in only at close."""
    present = table_columns(con, "raw_deals")
    columns = [c for c in columns if c in present]
    if not columns or not {"outcome", "closed_date"} <= present:
        return {}
    empty = ", ".join(f"""count(*) FILTER (WHERE lower(coalesce("{c}", '')) IN ('', 'unknown'))""" for c in columns)
    stage = (f"AND NOT list_contains($stages, {STAGE_KEY_SQL.format(column='deal_stage')})"
             if "deal_stage" in present else "")
    outcome = STAGE_KEY_SQL.format(column="outcome")   # an Open deal's close date is its expected one
    row = con.execute(f"""SELECT count(*), {empty} FROM main.raw_deals
                          WHERE ({outcome} = 'open' OR ({outcome} = '' AND coalesce(closed_date, '') = ''))
                                {stage}""",
                      {"stages": sorted(map(stage_key, closed_stages))} if stage else {}).fetchone()
    return {c: (int(row[0]), int(n)) for c, n in zip(columns, row[1:])}


def closed_raw_deals(con: duckdb.DuckDBPyConnection, columns, closed_stages=()) -> pd.DataFrame:
    """The outcome, stage and ``columns`` of the stored raw deals whose
    outcome is won or lost, or empty with a stage in ``closed_stages`` (the
    CRM's won and lost stage names): what the leakage screen reads, without
    loading the table whole; raw text is stripped already."""
    present = table_columns(con, "raw_deals")
    selected = ", ".join(f'"{c}"' for c in dict.fromkeys(("outcome", "deal_stage", *columns)) if c in present)
    outcome = STAGE_KEY_SQL.format(column="outcome")   # read as ingestion reads it: any case, a won or lost name
    by_stage = (f"OR ({outcome} = '' AND list_contains($stages, {STAGE_KEY_SQL.format(column='deal_stage')}))"
                if "deal_stage" in present else "")
    return con.execute(f"SELECT {selected} FROM main.raw_deals WHERE {outcome} IN ('won', 'lost') "
                       f"OR list_contains($stages, {outcome}) {by_stage}",
                       {"stages": sorted(map(stage_key, closed_stages))}).df()
