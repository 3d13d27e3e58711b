"""A pull of an export that DuckDB has split into a temp table (the usual
plain CSV file): what can be decided without loading it into Python.

Every row gets a digest of its raw cells and of the choices that turn them
into stored text (the file's formats, the amount limit). A row whose digest
is stored with the same deal in ``raw_deals`` would be normalised into the
very text stored there, so the change detection of a full pull would drop
it: it is left in DuckDB, and only the other rows are loaded into pandas and
judged. The file-wide decisions read the whole table: the formats from its
distinct date and amount values, the fingerprint from every row's digest.
A row sharing its deal with a loaded row (a duplicated deal_id) makes the
whole file load, so ``keep_latest`` sees every version as in a full pull.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from salesintel_assets.domain.common.tables import table_columns
from salesintel_assets.domain.ingestion import values
from salesintel_assets.domain.ingestion.pulls import RAW_COLUMNS, stripped_text

DIGEST = "_raw_digest"   # column of raw_deals: the digest of the raw row the stored version came from
_SKIPPED = "_skipped_rows"


@dataclass
class StagedRows:
    """The rows of a staged export that must be judged in pandas."""

    frame: pd.DataFrame | None  # as the CSV reader gives them (header-named text, _line, _defect);
    #                             None: every row must be judged, read the file itself
    digests: pd.DataFrame | None  # _line, _raw_digest of the loaded rows
    skipped: int               # rows left in DuckDB: stored unchanged
    rows: int                  # rows in the export


def columns_of(header: list[str]) -> dict[str, str]:
    """Header name -> staged column (c0, c1, ...)."""
    return {name: f"c{i}" for i, name in enumerate(header)}


def decide_formats(con: duckdb.DuckDBPyConnection, table: str, header: list[str], stated: values.Formats,
                   where: str) -> values.Formats:
    """``values.decide_formats`` over the whole staged export, reading only
    its distinct date values and the amounts that are not plain numbers
    (stripped as ``conform_raw`` strips them, in order of first appearance)."""
    cols = columns_of(header)
    distinct: dict[str, pd.Series] = {}
    for name in values.DATE_COLUMNS + values.TIMESTAMP_COLUMNS + values.AMOUNT_COLUMNS:
        if name not in cols:
            continue
        if name in values.AMOUNT_COLUMNS and stated.decimal_mark:
            continue
        if name not in values.AMOUNT_COLUMNS and stated.date_order:
            continue
        # A raw value that is a plain ASCII number strips to itself and gives no evidence of a mark.
        plain = (rf"AND NOT regexp_full_match({cols[name]}, '{values.PLAIN_NUMBER}')"
                 if name in values.AMOUNT_COLUMNS else "")
        raw = con.execute(f"SELECT {cols[name]} FROM {table} WHERE coalesce({cols[name]}, '') <> '' {plain} "
                          f"GROUP BY {cols[name]} ORDER BY min(_line)").fetchnumpy()[cols[name]]
        distinct[name] = pd.Series(pd.unique(stripped_text(pd.Series(raw, dtype=object))), dtype=object)
    longest = max((len(s) for s in distinct.values()), default=0)
    frame = pd.DataFrame({name: np.concatenate([s.to_numpy(), np.full(longest - len(s), "", dtype=object)])
                          for name, s in distinct.items()})
    if "deal_amount" not in frame.columns:
        frame["deal_amount"] = pd.Series("", index=frame.index, dtype=object)
    return values.decide_formats(frame, stated, where)


def add_digests(con: duckdb.DuckDBPyConnection, table: str, header: list[str], context: str) -> None:
    """Give every staged row ``_digest``: a hash of its known raw cells and ``context``."""
    cols = columns_of(header)
    cells = ", ".join(f"coalesce({cols[c]}, '')" if c in cols else "''" for c in RAW_COLUMNS)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS "
                f"SELECT *, hash(list_value($context, {cells})) AS _digest FROM {table}", {"context": context})


def fingerprint(con: duckdb.DuckDBPyConnection, table: str, source: str, settings: str) -> str:
    """What identifies the pull's content (see ``pulls.pull_fingerprint``), from the digests."""
    rows, body = con.execute(f"SELECT count(*), md5(string_agg(_line::VARCHAR || ':' || _digest::VARCHAR, ',' "
                             f"ORDER BY _line)) FROM {table}").fetchall()[0]
    return hashlib.sha256(f"staged|{source}|{settings}|{rows}|{body}".encode()).hexdigest()[:32]


def load_changed(con: duckdb.DuckDBPyConnection, table: str, header: list[str]) -> StagedRows:
    """The staged rows that cannot be stored unchanged, in file order (all of
    them when nothing was stored with digests yet)."""
    from salesintel_assets.sources.csv_export import text_frame

    cols = columns_of(header)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_SKIPPED} AS SELECT NULL::BIGINT AS _line, "
                "NULL::VARCHAR AS deal_id LIMIT 0")
    if DIGEST in table_columns(con, "raw_deals"):
        # Unique digests only: a line repeated in the file is a duplicate to judge.
        con.execute(f"""CREATE OR REPLACE TEMP TABLE {_SKIPPED} AS
            SELECT e._line, r.deal_id
            FROM (SELECT _line, _digest, trim({cols['deal_id']}) AS deal_id,
                         count(*) OVER (PARTITION BY _digest) AS copies FROM {table}) e
            JOIN main.raw_deals r ON r.{DIGEST} = e._digest AND r.deal_id = e.deal_id
            WHERE e.copies = 1""")
    if not con.execute(f"SELECT count(*) FROM {_SKIPPED}").fetchall()[0][0]:
        # Nothing to leave out: the caller reads the file as a whole-file pull does (its memory is lower
        # than this table's copy converted beside it); only the digests are taken along.
        digests = con.sql(f"SELECT _line, _digest::UBIGINT AS {DIGEST} FROM {table} ORDER BY _line").df()
        rows = len(digests)
        return StagedRows(None, digests, 0, rows)
    loaded = _load(con, table, header, text_frame)
    if len(loaded.frame) < loaded.rows and _shares_a_deal(con, loaded.frame["deal_id"]):
        con.execute(f"DELETE FROM {_SKIPPED}")
        loaded = _load(con, table, header, text_frame)
    return loaded


def _load(con, table: str, header: list[str], text_frame) -> StagedRows:
    cells = ", ".join(f"coalesce(c{i}, '') AS c{i}" for i in range(len(header)))
    arrow = con.sql(f"SELECT {cells}, _line, _digest FROM {table} ANTI JOIN {_SKIPPED} USING (_line) "
                    "ORDER BY _line").to_arrow_table()
    digests = pd.DataFrame({"_line": arrow.column("_line").to_numpy(),
                            DIGEST: arrow.column("_digest").to_numpy().astype("uint64")})
    held = [arrow.drop_columns(["_digest"])]
    del arrow
    frame = text_frame(held, header)
    rows = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    return StagedRows(frame, digests, rows - len(frame), rows)


def _shares_a_deal(con: duckdb.DuckDBPyConnection, loaded_ids: pd.Series) -> bool:
    """Whether a loaded row's deal (stripped as ``conform_raw`` strips it) is also a skipped row's."""
    ids = pd.DataFrame({"deal_id": stripped_text(loaded_ids).to_numpy()})
    con.register("_loaded_ids", ids)
    try:
        return con.execute(f"SELECT count(*) FROM {_SKIPPED} WHERE deal_id IN "
                           "(SELECT deal_id FROM _loaded_ids)").fetchall()[0][0] > 0
    finally:
        con.unregister("_loaded_ids")


def drop(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Free the staged export once nothing more is read from it."""
    con.execute(f"DROP TABLE IF EXISTS {table}")
    con.execute(f"DROP TABLE IF EXISTS {_SKIPPED}")


def write_lake_rows(con: duckdb.DuckDBPyConnection, table: str, header: list[str], pull: pd.DataFrame,
                    lineage: dict, target) -> int:
    """Write the whole pull as a full pull keeps it in the lake, in file
    order: the judged rows from ``pull``, the skipped ones as stored in
    ``raw_deals``, each with the file's columns the export format does not
    know. Returns the number of rows."""
    cols = columns_of(header)
    unknown = [name for name in header if name not in pull.columns]
    extra = "".join(f', coalesce(e.{cols[name]}, \'\') AS "{name}"' for name in unknown)
    known = ", ".join(f'r."{c}"' for c in RAW_COLUMNS)
    con.register("_judged", pull)
    try:
        con.execute(f"""COPY (
            SELECT {known}, s._line, '' AS _defect, $pull_id AS _pull_id, $pulled_at::TIMESTAMP AS _pulled_at,
                   $source AS _source, r._row_hash{extra}
            FROM {_SKIPPED} s JOIN main.raw_deals r USING (deal_id) JOIN {table} e USING (_line)
            UNION ALL BY NAME
            SELECT j.*{extra} FROM _judged j JOIN {table} e USING (_line)
            ORDER BY _line) TO '{target}' (FORMAT parquet)""", lineage)
    finally:
        con.unregister("_judged")
    return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def with_digests(rows: pd.DataFrame, lines: pd.Series | None, digests: pd.DataFrame | None) -> pd.DataFrame:
    """``rows`` with the raw digest of the line each came from (empty without
    digests: a pull the staged reader could not split, or a connector's), so
    raw_deals has the same columns whichever pull created it."""
    if digests is None:
        return rows.assign(**{DIGEST: pd.array([pd.NA] * len(rows), dtype="UInt64")})
    by_line = pd.Series(digests[DIGEST].to_numpy(), index=digests["_line"].to_numpy())
    return rows.assign(**{DIGEST: by_line.reindex(lines.to_numpy()).to_numpy()})


def ensure_digest_column(con: duckdb.DuckDBPyConnection) -> None:
    """raw_deals written before digests were kept gets the column (empty: those rows are judged once more)."""
    if table_columns(con, "raw_deals") and DIGEST not in table_columns(con, "raw_deals"):
        con.execute(f"ALTER TABLE main.raw_deals ADD COLUMN {DIGEST} UBIGINT")
