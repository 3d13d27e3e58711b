"""The serving snapshot: published by the pipeline run, switched in
atomically, old snapshots pruned, and its check passing."""

import duckdb
import pandas as pd

from salesintel_assets.domain.serving.snapshot import KEEP_SNAPSHOTS, current_snapshot, publish_snapshot
from salesintel_assets_tests.support import read_table


def test_the_run_publishes_a_snapshot_that_matches_the_warehouse(served_base):
    folder = current_snapshot(served_base)
    manifest = read_table(served_base, "serving_snapshot").set_index("file")
    assert folder is not None and set(manifest["snapshot"]) == {folder.name}
    assert {"deals.parquet", "top_risks.parquet", "win_rate_by_rep_month.parquet", "pipeline_by_rep.parquet",
            "alerts.parquet", "forecast.parquet", "attribution.parquet", "freshness.parquet"} <= set(manifest.index)
    fact = read_table(served_base, "fact_deals")
    assert manifest.loc["deals.parquet", "rows"] == len(fact)
    pipeline = pd.read_parquet(folder / "pipeline_by_rep.parquet")
    scores = read_table(served_base, "deal_risk_scores")
    assert pipeline["open_deals"].sum() == fact["is_open"].sum()
    assert pipeline["expected_won"].sum() == __import__("pytest").approx(scores["win_probability"].sum())
    monthly = pd.read_parquet(folder / "win_rate_by_rep_month.parquet")
    assert monthly["won"].sum() == (fact["outcome"].eq("Won") & fact["closed_date"].le("2026-06-30")).sum()


def test_publishing_switches_the_pointer_atomically_and_prunes(served_home):
    con = duckdb.connect(str(served_home / "warehouse.duckdb"), read_only=True)
    try:
        first = current_snapshot(served_home)
        names = [publish_snapshot(con, served_home, pd.Timestamp("2026-06-30"),
                                  now=pd.Timestamp(f"2030-07-0{i} 08:00").to_pydatetime())["snapshot"].iloc[0]
                 for i in range(1, 5)]
    finally:
        con.close()
    assert current_snapshot(served_home).name == names[-1] != first.name
    kept = sorted(p.name for p in (served_home / "serving" / "snapshots").iterdir())
    assert len(kept) == KEEP_SNAPSHOTS and kept[-1] == names[-1]
    assert not list((served_home / "serving").glob(".CURRENT*"))  # the pointer is replaced, never half-written
