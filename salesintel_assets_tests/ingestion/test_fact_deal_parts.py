"""fact_deals validates the pending raw deals part by part (hash of
deal_id), so a full load never holds every raw row as Python strings: the
table, its flags and the quarantine are the same as from one part."""

import duckdb
import pandas as pd

from salesintel_assets.domain.common import memory
from salesintel_assets.domain.warehouse import upserts
from salesintel_assets_tests.support import csv_resources, read_table, run_job, run_selection


def test_fact_deals_built_in_parts_equal_one_part(tmp_path, skygeni_csv, monkeypatch):
    frame = pd.read_csv(skygeni_csv, dtype=str, keep_default_na=False).head(800)
    frame.loc[3, "deal_amount"] = "-10"                         # quarantined
    frame.loc[4, "deal_stage"] = "Haggling"                     # kept without a stage position
    frame.loc[8, "closed_date"] = "2000-01-01"                  # flagged: closed before created
    frame.loc[5, "sales_cycle_days"] = "999"                    # corrected from the dates
    frame.loc[6, "industry"] = ""                               # filled "Unknown"
    frame = pd.concat([frame, frame.iloc[[7]]], ignore_index=True)  # a repeated deal
    path = tmp_path / "export.csv"
    frame.to_csv(path, index=False)

    home = tmp_path / "home"
    home.mkdir()
    resources = csv_resources(home, path, as_of="2024-07-20")
    monkeypatch.setattr(upserts, "PENDING_PART_ROWS", 100)          # 800 deals in 8 parts
    collections = []
    monkeypatch.setattr(memory.gc, "collect", lambda *args: collections.append(1) or 0)
    monkeypatch.setattr(memory, "LARGE_FRAME_ROWS", 1)              # every part counts as large here
    assert run_job(resources, job="ingestion_job").success
    assert len(collections) == 2 + 8                                # after the pull, after storing it, each part
    parted = read_table(home, "fact_deals").sort_values("deal_id", ignore_index=True)
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute("DROP TABLE main.fact_deals")
    monkeypatch.setattr(upserts, "PENDING_PART_ROWS", 1_000_000)    # the same raw deals in one part
    monkeypatch.setattr(memory, "LARGE_FRAME_ROWS", 1_000)          # ... of 800: small, left to Python's collector
    collections.clear()
    assert run_selection(resources, "fact_deals").success
    assert collections == []
    whole = read_table(home, "fact_deals").sort_values("deal_id", ignore_index=True)
    pd.testing.assert_frame_equal(parted.drop(columns="as_of_date"), whole.drop(columns="as_of_date"))
    assert len(whole) == 799 and whole["needs_review"].sum() == 1 and (whole["industry"] == "Unknown").sum() >= 1
    assert whole.loc[whole["deal_stage"] == "Haggling", "stage_number"].isna().all()
    assert sorted(read_table(home, "quarantined_deals")["rule"]) == ["duplicates", "negative_amount"]


def test_pending_parts_hold_every_pending_deal_once():
    con = duckdb.connect()
    con.execute("CREATE TABLE main.raw_deals AS SELECT 'D' || i::VARCHAR AS deal_id, 1::UBIGINT AS _row_hash "
                "FROM range(1000) t(i)")
    parts = list(upserts.pending_raw_deal_parts(con, rules=None, part_rows=150))
    assert len(parts) == 7
    ids = pd.concat(parts)["deal_id"]
    assert ids.is_unique and len(ids) == 1000


def test_a_load_caps_duckdb_memory_and_restores_it_after():
    with duckdb.connect() as con:
        before = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        with upserts.load_memory_limit(con, "256MB"):
            assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "244.1 MiB"   # 256 MB
        assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == before


def test_tables_read_whole_match_duckdb_frames_with_text_values_shared():
    from salesintel_assets.resources.warehouse import shared_text_frame

    with duckdb.connect() as con:
        con.execute("""CREATE TABLE t AS SELECT i AS id, CASE WHEN i % 3 = 0 THEN NULL ELSE 'seg' || (i % 5) END AS s,
                       DATE '2024-01-01' + i::INTEGER AS d, CASE WHEN i % 4 = 0 THEN NULL ELSE i % 2 = 0 END AS b,
                       CASE WHEN i % 7 = 0 THEN NULL ELSE i END AS n, i * 1.5 AS f FROM range(50) r(i)""")
        for query in ("SELECT * FROM t", "SELECT s FROM t ORDER BY s", "SELECT id, f FROM t", "SELECT * FROM t LIMIT 0"):
            frame = shared_text_frame(con, con.sql(query))
            pd.testing.assert_frame_equal(frame, con.sql(query).df(), check_exact=True)
        segments = shared_text_frame(con, con.sql("SELECT s FROM t WHERE s = 'seg1'"))["s"]
        assert len(segments) > 1 and len({id(value) for value in segments}) == 1
