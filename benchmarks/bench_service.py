"""Service benchmark: build a warehouse of N synthetic deals in DuckDB,
publish the serving snapshot, then time every API endpoint and dashboard view
through the real FastAPI app for a leader, a manager and a rep.

    .venv/bin/python benchmarks/bench_service.py --deals 1000000

Prints seconds per view (the first, cold request and the median of --repeat more) and
the snapshot's publication time. Views should stay under 2 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPS, MANAGERS = 400, 40


def build_warehouse(database: Path, deals: int) -> None:
    """Tables in the warehouse's column contract, generated in SQL."""
    import duckdb

    with duckdb.connect(str(database)) as con:
        con.execute("SELECT setseed(0.42)")
        con.execute(f"""
            CREATE TABLE dim_sales_reps AS
            SELECT 'rep_' || i AS sales_rep_id, 'Rep ' || i AS rep_name, 'mgr_' || (i % {MANAGERS}) AS manager_id,
                   'Manager ' || (i % {MANAGERS}) AS manager_name, 'cro_1' AS cro_id, 'Team ' || (i % {MANAGERS}) AS team
            FROM range({REPS}) t(i)""")
        con.execute(f"""
            CREATE TABLE fact_deals AS
            WITH base AS (
                SELECT i, random() AS u, random() AS w,
                       DATE '2023-01-01' + CAST(floor(random() * 1270) AS INTEGER) AS created_date
                FROM range({deals}) t(i))
            SELECT printf('D%08d', i) AS deal_id, created_date,
                   CASE WHEN u < 0.85 THEN created_date + CAST(20 + floor(w * 160) AS INTEGER) END AS closed_date,
                   'rep_' || (i % {REPS}) AS sales_rep_id,
                   (['SaaS', 'FinTech', 'EdTech', 'HealthTech', 'Ecommerce'])[1 + i % 5] AS industry,
                   (['Europe', 'APAC', 'North America', 'India'])[1 + (i // 5) % 4] AS region,
                   (['Core', 'Pro', 'Enterprise'])[1 + (i // 7) % 3] AS product_type,
                   (['Inbound', 'Outbound', 'Referral', 'Partner'])[1 + (i // 11) % 4] AS lead_source,
                   (['Qualified', 'Demo', 'Proposal', 'Negotiation'])[1 + (i // 3) % 4] AS deal_stage,
                   round(2000 + w * 98000) AS deal_amount,
                   CASE WHEN u >= 0.85 THEN 'Open' WHEN u < 0.38 THEN 'Won' ELSE 'Lost' END AS outcome,
                   u >= 0.85 AS is_open, CAST(floor(w * 200) AS DOUBLE) AS age_days,
                   CAST(floor(w * 60) AS DOUBLE) AS days_in_stage
            FROM base""")
        con.execute("""
            CREATE TABLE deal_risk_scores AS
            SELECT deal_id, sales_rep_id, p AS win_probability,
                   CASE WHEN p < 0.25 THEN 'high' WHEN p < 0.5 THEN 'medium' ELSE 'low' END AS risk_band,
                   deal_amount * (1 - p) AS revenue_at_risk,
                   'Open ' || CAST(age_days AS INTEGER) || ' days: deals this old win less' AS reason_1,
                   'In ' || deal_stage || ': wins below the overall rate' AS reason_2,
                   industry || ' deals win below the overall rate' AS reason_3,
                   '2026-08' AS expected_close_month
            FROM (SELECT *, random() AS p FROM fact_deals WHERE is_open)""")
        con.execute("""
            CREATE TABLE pipeline_forecast AS
            SELECT 'horizon' AS grouping, k AS key, n AS open_deals, n * 50000.0 AS pipeline_amount,
                   n * 0.3 AS expected_won_deals, n * 15000.0 AS expected_won_revenue,
                   n * 13000.0 AS revenue_p10, n * 17000.0 AS revenue_p90, n * 0.27 AS won_deals_p10,
                   n * 0.33 AS won_deals_p90
            FROM (VALUES ('30d', 20000), ('90d', 60000), ('quarter_end', 90000)) v(k, n)""")
        con.execute("""
            CREATE TABLE win_rate_attribution AS
            SELECT 'industry' AS dimension, s AS segment, '2025Q4' AS period_a, '2026Q1' AS period_b,
                   CAST(r AS DOUBLE) AS rate_effect, CAST(m AS DOUBLE) AS mix_effect, CAST(r + m AS DOUBLE) AS total_effect,
                   0.45 AS overall_rate_a, CAST(0.45 + sum(r + m) OVER () AS DOUBLE) AS overall_rate_b
            FROM (VALUES ('SaaS', -0.012, 0.002), ('FinTech', 0.006, -0.004), ('EdTech', -0.004, 0.001),
                         ('HealthTech', 0.003, 0.0), ('Ecommerce', -0.002, -0.001)) v(s, r, m)""")
        con.execute("""
            CREATE TABLE segment_metrics AS
            SELECT 'industry' AS dimension, industry AS segment, 'all' AS period_type, 'all' AS period,
                   count(*) AS deals, count(*) FILTER (WHERE outcome = 'Won') AS won
            FROM fact_deals WHERE NOT is_open GROUP BY ALL""")
        con.execute("""
            CREATE TABLE alerts AS
            SELECT 'a' || i AS alert_id, 'k' || i AS dedup_key, 'stalled_deal' AS alert_type,
                   'Stalled Deal' AS alert_name, 'P2' AS priority, 'open' AS status,
                   deal_id || ' has been in Proposal for 40 days' AS title, 'deal_id=' || deal_id AS segment,
                   deal_id, sales_rep_id, sales_rep_id AS recipients, 'rep' AS recipient_roles,
                   deal_amount AS amount_at_stake, DATE '2026-06-30' AS first_seen, DATE '2026-06-30' AS last_seen,
                   'digest' AS delivery
            FROM (SELECT row_number() OVER () AS i, * FROM fact_deals WHERE is_open LIMIT 2000)""")
        con.execute("""
            CREATE TABLE data_quality_report AS
            SELECT 'pull-1' AS pull_id, r AS rule, a AS action, n AS rows, n / 1e6 AS share
            FROM (VALUES ('duplicates', 'keep_latest', 120), ('critical_nulls', 'quarantine', 40)) v(r, a, n)""")


def time_views(home: Path, repeat: int) -> list[tuple[str, str, float]]:
    from fastapi.testclient import TestClient

    from salesintel_assets.service.app import create_app
    from salesintel_assets.service.settings import ServiceSettings
    from salesintel_assets.service.tokens import TokenStore

    settings = ServiceSettings(home=home)
    store = TokenStore(settings.tokens_path)
    tokens = {"leader": store.create("leader")[0], "manager": store.create("manager", "mgr_3")[0],
              "rep": store.create("rep", "rep_7")[0]}
    paths = ["/", "/forecast", "/risks", "/alerts", "/data", "/api/v1/deals/D00000107",
             "/api/v1/deals?limit=100", "/api/v1/alerts", "/api/v1/forecast", "/api/v1/segments",
             "/api/v1/freshness"]
    results = []
    with TestClient(create_app(settings)) as client:
        for role, token in tokens.items():
            for path in paths:
                api = path.startswith("/api")
                headers = {"Authorization": f"Bearer {token}"} if api else {}
                cookies = {} if api else {"salesintel_session": token}
                client.cookies.clear()
                client.cookies.update(cookies)
                start = time.perf_counter()
                answer = client.get(path, headers=headers)  # the first request reads the files cold
                first = time.perf_counter() - start
                if answer.status_code not in (200, 404):
                    raise SystemExit(f"{role} {path}: HTTP {answer.status_code}")
                seconds = []
                for _ in range(repeat):
                    start = time.perf_counter()
                    client.get(path, headers=headers)
                    seconds.append(time.perf_counter() - start)
                results.append((role, path, first, statistics.median(seconds), answer.status_code))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import duckdb
    import pandas as pd

    from salesintel_assets.domain.serving.snapshot import publish_snapshot

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        start = time.perf_counter()
        build_warehouse(home / "warehouse.duckdb", args.deals)
        built = time.perf_counter() - start
        with duckdb.connect(str(home / "warehouse.duckdb")) as con:
            start = time.perf_counter()
            manifest = publish_snapshot(con, home, pd.Timestamp("2026-06-30"))
            published = time.perf_counter() - start
        print(f"{args.deals:,} deals: warehouse built in {built:.1f} s; snapshot published in {published:.2f} s "
              f"({len(manifest)} files, deals.parquet {manifest.set_index('file').loc['deals.parquet', 'rows']:,} rows)")
        results = time_views(home, args.repeat)
    print(f"{'role':<8} {'view':<28} {'status':>6} {'first s':>8} {'median s':>9}")
    for role, path, first, seconds, status in results:
        print(f"{role:<8} {path:<28} {status:>6} {first:>8.3f} {seconds:>9.3f}")
    worst = max(results, key=lambda r: max(r[2], r[3]))
    print(f"slowest: {worst[0]} {worst[1]} first {worst[2]:.3f} s, median {worst[3]:.3f} s (target < 2 s per view)")


if __name__ == "__main__":
    main()
