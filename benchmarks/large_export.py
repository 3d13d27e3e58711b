"""A large CRM export in the CSV contract, generated in DuckDB SQL.

    .venv/bin/python benchmarks/large_export.py deals.csv --deals 1000000

Shaped like the public sample at scale: 10.5 % of deals open (empty
closed_date and sales_cycle_days, outcome ``Open``, deal_stage the current
stage), the rest won or lost; 200 reps; deals created over three years up to
the analysis date ``AS_OF``; segments and reps tilt win rate a few points and
the last quarter loses some, so there is something to find. Deterministic
for a given size.
"""

from __future__ import annotations

import argparse
from pathlib import Path

AS_OF = "2026-06-30"
OPEN_SHARE = 0.105
REPS = 200


def write_export(path: Path, deals: int) -> Path:
    """Write ``deals`` rows to ``path`` (CSV with a header) and return it."""
    import duckdb

    with duckdb.connect() as con:
        con.execute("SET preserve_insertion_order = true")
        con.execute("CREATE MACRO h(i, k) AS CAST(hash(i, k) % 1000000007 AS BIGINT)")
        con.execute(f"""
            COPY (
            WITH base AS (
                SELECT i, h(i, 1) % 1000000 / 1e6 AS u, h(i, 2) % 1000000 / 1e6 AS w,
                       h(i, 3) % 1000000 / 1e6 AS v, h(i, 4) % 1000000 / 1e6 AS x
                FROM range({deals}) t(i)),
            shaped AS (
                SELECT *, (['SaaS', 'FinTech', 'HealthTech', 'EdTech', 'Ecommerce'])[1 + h(i, 5) % 5] AS industry,
                       (['North America', 'Europe', 'APAC', 'India'])[1 + h(i, 6) % 4] AS region,
                       (['Core', 'Pro', 'Enterprise'])[1 + h(i, 7) % 3] AS product_type,
                       (['Inbound', 'Outbound', 'Referral', 'Partner'])[1 + h(i, 8) % 4] AS lead_source,
                       1 + h(i, 9) % {REPS} AS rep,
                       CAST(7 + floor(v * 114) AS INTEGER) AS cycle, u < {OPEN_SHARE} AS still_open
                FROM base),
            dated AS (
                -- closed deals closed by AS_OF; open deals were created in its last 180 days
                SELECT *, DATE '{AS_OF}' - CASE WHEN still_open THEN CAST(floor(x * 180) AS INTEGER)
                                                ELSE cycle + CAST(floor(x * (1095 - cycle)) AS INTEGER) END AS created
                FROM shaped),
            judged AS (
                SELECT *, created + cycle AS closed,
                       0.45 + CASE lead_source WHEN 'Referral' THEN 0.04 WHEN 'Partner' THEN -0.03 ELSE 0 END
                            + CASE region WHEN 'India' THEN 0.02 WHEN 'APAC' THEN -0.02 ELSE 0 END
                            + CASE WHEN industry = 'FinTech' AND created + cycle >= DATE '{AS_OF}' - 120
                                   THEN -0.08 ELSE 0 END
                            + (rep % 7 - 3) * 0.01 - cycle * 0.0008 AS p_win
                FROM dated)
            SELECT printf('D%08d', i + 1) AS deal_id, strftime(created, '%Y-%m-%d') AS created_date,
                   CASE WHEN still_open THEN '' ELSE strftime(closed, '%Y-%m-%d') END AS closed_date,
                   'rep_' || rep AS sales_rep_id, industry, region, product_type, lead_source,
                   CASE WHEN still_open
                        THEN (['Qualified', 'Demo', 'Proposal', 'Negotiation'])[1 + h(i, 10) % 4]
                        ELSE (['Qualified', 'Demo', 'Proposal', 'Negotiation', 'Closed'])[1 + h(i, 10) % 5]
                   END AS deal_stage,
                   CAST(round(exp(ln(2000) + w * (ln(100000) - ln(2000)))) AS BIGINT) AS deal_amount,
                   CASE WHEN still_open THEN '' ELSE CAST(cycle AS VARCHAR) END AS sales_cycle_days,
                   CASE WHEN still_open THEN 'Open'
                        WHEN h(i, 11) % 1000000 / 1e6 < p_win THEN 'Won' ELSE 'Lost' END AS outcome
            FROM judged ORDER BY i)
            TO '{path}' (HEADER, DELIMITER ',', QUOTE '"')""")
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path)
    parser.add_argument("--deals", type=int, default=1_000_000)
    args = parser.parse_args()
    print(write_export(args.path, args.deals))
