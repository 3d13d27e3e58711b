"""Schema checks of large tables with pandera part by part (the fallback
for a rule that has no SQL form) still find every broken rule: row-level
rules on every row, key rules across parts."""

from __future__ import annotations

import duckdb
import pandas as pd

from salesintel_assets.domain.common.table_validation import validate_stored_table
from salesintel_assets.schemas.warehouse import DealHistory
from salesintel_assets.schemas.ingestion import RawStageHistory


def _history(deals: int) -> pd.DataFrame:
    ids = [f"D{i:05d}" for i in range(deals)]
    return pd.DataFrame({
        "deal_id": ids + ids, "version": [1] * deals + [2] * deals,
        "valid_from": pd.Timestamp("2024-01-01"), "valid_to": [pd.Timestamp("2024-02-01")] * deals + [pd.NaT] * deals,
        "is_current": [False] * deals + [True] * deals, "is_deleted": False})


def _validate(frame: pd.DataFrame, model, part_rows: int = 100):
    con = duckdb.connect()
    con.register("frame_view", frame)
    con.execute("CREATE TABLE t AS SELECT * FROM frame_view")
    return validate_stored_table(con, "t", model, part_rows=part_rows, in_sql=False)


def test_a_clean_large_table_passes_in_parts():
    result = _validate(_history(500), DealHistory)
    assert result.failure_cases is None and result.rows == 1000 and result.parts == 10


def test_every_row_rule_and_every_key_rule_is_found_across_parts():
    history = _history(500)
    history.loc[7, "version"] = 0                           # a row-level rule (version >= 1)
    history.loc[[10, 510], "is_current"] = True             # deal D00010 has two current versions
    history.loc[[20, 520], "is_current"] = False            # deal D00020 has none
    parted = _validate(history, DealHistory)
    whole = _validate(history, DealHistory, part_rows=10_000)
    assert parted.parts == 10 and whole.parts == 1
    found = set(zip(parted.failure_cases["column"].astype(str), parted.failure_cases["check"].astype(str)))
    assert found == set(zip(whole.failure_cases["column"].astype(str), whole.failure_cases["check"].astype(str)))
    assert ("version", "greater_than_or_equal_to(1)") in found
    assert any("one_current_version_per_deal" in check for _, check in found)


def test_a_table_without_a_key_is_split_by_rows():
    rows = pd.DataFrame({"deal_id": [f"D{i}" for i in range(300)], "stage": "Demo",
                         "entered_date": pd.Timestamp("2024-01-01")})
    rows.loc[250, "entered_date"] = pd.NaT
    result = _validate(rows, RawStageHistory)
    assert result.parts == 3 and len(result.failure_cases) >= 1
