"""Storing deal_metrics without a round trip of the fact's own columns.

Most of deal_metrics' columns are fact_deals' columns unchanged (ids,
segments, dates, amount). Read into pandas and written back, a million deal
ids and segment names cost seconds; so the scores are computed from the fact
read without its ids (``SCORE_INPUT_COLUMNS``, in deal_id order) and the
table is put together in DuckDB: the fact's columns in the same order, side
by side with the computed ones. The content is what ``deal_metrics`` returns.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from salesintel_assets.domain.metrics.deal_metrics import (
    DEAL_METRICS_COLUMNS, FACT_INPUT_COLUMNS, PASSED_THROUGH_COLUMNS,
)

# What the scores read from the fact: everything but the ids (``ORDER BY`` them instead).
SCORE_INPUT_COLUMNS = [c for c in FACT_INPUT_COLUMNS if c != "deal_id"]
ORDER = "deal_id"


def write_deal_metrics_in(con: duckdb.DuckDBPyConnection, fact_table: str, target: str,
                          computed: pd.DataFrame) -> None:
    """Replace ``target`` with deal_metrics: ``computed`` holds the computed
    columns of the fact's deals as read ``ORDER BY deal_id`` (one row each)."""
    deals = con.execute(f"SELECT count(*) FROM {fact_table}").fetchall()[0][0]
    if deals != len(computed):
        raise ValueError(f"{fact_table} has {deals} deals but {len(computed)} were scored: it changed meanwhile")
    passed = ", ".join(f'"{c}"' for c in PASSED_THROUGH_COLUMNS)
    select = ", ".join(f'{"f" if c in PASSED_THROUGH_COLUMNS else "s"}."{c}"' for c in DEAL_METRICS_COLUMNS)
    con.register("_computed", computed)
    try:
        con.execute(f'CREATE OR REPLACE TABLE {target} AS SELECT {select} '
                    f'FROM (SELECT {passed} FROM {fact_table} ORDER BY "{ORDER}") f POSITIONAL JOIN _computed s')
    finally:
        con.unregister("_computed")
