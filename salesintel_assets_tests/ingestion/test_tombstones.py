"""Deletions as tombstones: a deal the CRM deleted leaves fact_deals and every
metric, keeps its raw versions and stage history, and its deal_history
version is closed with a deleted flag."""

import pandas as pd

from salesintel_assets.domain.warehouse import tombstones
from salesintel_assets.sources import sample_crm
from salesintel_assets_tests.support import check_results, read_table, run_job, sample_resources

N_DEALS = 800
NEXT_DAY = (pd.Timestamp(sample_crm.SAMPLE_END_DATE) + pd.Timedelta(days=1)).date().isoformat()


def pull(home, **crm):
    return run_job(sample_resources(home, n_deals=N_DEALS, **crm), job="ingestion_job")


def test_deleted_deals_leave_the_facts_and_keep_their_history(home):
    pull(home)
    fact = read_table(home, "fact_deals")
    gone = fact.loc[fact["is_open"], "deal_id"].head(2).tolist() + fact.loc[~fact["is_open"], "deal_id"].head(1).tolist()
    result = pull(home, clock=NEXT_DAY, deleted_deal_ids=gone)
    assert [name for name, passed in check_results(result).items() if not passed] == []

    after = read_table(home, "fact_deals")
    assert not after["deal_id"].isin(gone).any()
    assert set(fact["deal_id"]) - set(after["deal_id"]) == set(gone)
    assert set(read_table(home, "raw_deal_deletions")["deal_id"]) == set(gone)
    assert read_table(home, "raw_deals")["deal_id"].isin(gone).sum() == 3          # raw versions kept
    assert read_table(home, "raw_stage_history")["deal_id"].isin(gone).any()       # history kept
    assert not read_table(home, "fact_stage_transitions")["deal_id"].isin(gone).any()
    history = read_table(home, "deal_history")
    closed = history[history["deal_id"].isin(gone)]
    assert len(closed) == 3 and closed["is_deleted"].all() and not closed["is_current"].any()
    assert closed["valid_to"].notna().all()
    assert not history.loc[~history["deal_id"].isin(gone), "is_deleted"].any()

    # The same pull again changes nothing.
    pull(home, clock=NEXT_DAY, deleted_deal_ids=gone)
    assert len(read_table(home, "deal_history")) == len(history)
    assert len(read_table(home, "fact_deals")) == len(after)
    assert len(read_table(home, "raw_deal_deletions")) == 3


def test_a_restored_deal_is_live_again_with_the_next_version(home):
    import duckdb

    con = duckdb.connect()
    con.execute("CREATE TABLE raw_deals AS SELECT * FROM (VALUES ('D1', '2026-06-01 10:00:00'), "
                "('D2', '2026-06-01 10:00:00')) t(deal_id, last_modified)")
    con.execute("CREATE TABLE raw_deal_deletions AS SELECT 'D1' AS deal_id, TIMESTAMP '2026-06-02' AS deleted_at "
                "UNION ALL SELECT 'D2', TIMESTAMP '2026-05-01'")
    # D2's tombstone predates its newest version: it was restored and edited since.
    assert con.sql(f"SELECT deal_id FROM {tombstones.deleted_raw_deals_sql(con)}").fetchall() == [("D1",)]
