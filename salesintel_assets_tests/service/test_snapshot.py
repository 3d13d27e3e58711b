"""The serving snapshot: published by the pipeline run, switched in
atomically, old snapshots pruned, and its check passing."""

import duckdb
import pandas as pd

from salesintel_assets.domain.serving.snapshot import KEEP_SNAPSHOTS, current_snapshot, publish_snapshot
from salesintel_assets.service import queries
from salesintel_assets_tests.service.service_support import with_clean_up_day
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
    closed = fact[~fact["is_open"] & fact["closed_date"].le("2026-06-30")]
    assert monthly["closed"].sum() == len(closed)   # the sample CRM is never swept: every close counts
    assert pd.read_parquet(folder / "clean_ups.parquet").empty


def test_a_clean_up_day_is_left_out_of_the_monthly_win_rate_and_named(served_home):
    # 300 stale deals closed lost on one day: read as closes, May's win rate would collapse
    day = pd.Timestamp("2026-05-12")
    on_day = with_clean_up_day(served_home, day)
    folder = current_snapshot(served_home)
    fact = read_table(served_home, "fact_deals")
    lost = int((fact["closed_date"].eq(day) & fact["outcome"].ne("Won")).sum())
    assert pd.read_parquet(folder / "clean_ups.parquet").to_dict("records") == [
        {"day": day, "closes": on_day, "lost": lost}]
    monthly = pd.read_parquet(folder / "win_rate_by_rep_month.parquet")
    closed = fact[~fact["is_open"] & fact["closed_date"].le("2026-06-30")]
    assert monthly["closed"].sum() == len(closed) - on_day
    may = monthly[pd.to_datetime(monthly["month"]).eq("2026-05-01")]
    in_may = closed[closed["closed_date"].dt.to_period("M").eq(pd.Period("2026-05")) & closed["closed_date"].ne(day)]
    assert (may["closed"].sum(), may["won"].sum()) == (len(in_may), in_may["outcome"].eq("Won").sum())
    data = queries.ServingData(served_home)
    assert queries.clean_ups(data, "2025-01") == [f"12 May 2026 ({on_day:,} closes, {lost / on_day:.0%} lost)"]
    assert queries.clean_ups(data, "2026-06") == []   # before the months the chart shows: not said


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
