"""A generated CRM export shaped like the public SkyGeni sample: the same 12
columns, 5,000 deals, all closed, 25 reps, deals created from January 2023 to
late March 2024 and closed 7-120 days later, amounts between 2,000 and
100,000, a win rate of 45 % and only a weak signal (lead source and region
move win rate by a point or two, well inside the noise of 1,250 deals).

Deterministic: the same seed gives the same file byte for byte. The tests use
it wherever they need a realistic export with nothing to find in it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from salesintel_assets.constants import EXPORT_COLUMNS

N_DEALS = 5000
N_REPS = 25
WON = 2263  # a 45.26 % win rate, like the public sample
FIRST_CREATED, LAST_CREATED = pd.Timestamp("2023-01-01"), pd.Timestamp("2024-03-26")
INDUSTRIES = ("SaaS", "FinTech", "HealthTech", "EdTech", "Ecommerce")
REGIONS = ("North America", "Europe", "APAC", "India")
PRODUCTS = ("Core", "Pro", "Enterprise")
LEAD_SOURCES = ("Inbound", "Outbound", "Referral", "Partner")
STAGES = ("Qualified", "Demo", "Proposal", "Negotiation", "Closed")
# Weak tilts of the odds of winning (a point or two of win rate): there to be
# found only by a method that ignores sampling noise.
TILTS = {"lead_source": {"Referral": 1.04, "Partner": 0.96}, "region": {"India": 1.03, "APAC": 0.97}}


def skygeni_like_export(seed: int = 7) -> pd.DataFrame:
    """The export as text columns, in the CRM export format."""
    rng = np.random.default_rng(seed)
    days = (LAST_CREATED - FIRST_CREATED).days
    created = FIRST_CREATED + pd.to_timedelta(rng.integers(0, days + 1, N_DEALS), unit="D")
    cycle = rng.integers(7, 121, N_DEALS)
    frame = pd.DataFrame({
        "deal_id": [f"D{i:05d}" for i in range(1, N_DEALS + 1)],
        "created_date": created,
        "closed_date": created + pd.to_timedelta(cycle, unit="D"),
        "sales_rep_id": [f"rep_{r}" for r in rng.integers(1, N_REPS + 1, N_DEALS)],
        "industry": rng.choice(INDUSTRIES, N_DEALS),
        "region": rng.choice(REGIONS, N_DEALS),
        "product_type": rng.choice(PRODUCTS, N_DEALS),
        "lead_source": rng.choice(LEAD_SOURCES, N_DEALS),
        "deal_stage": rng.choice(STAGES, N_DEALS),
        "deal_amount": np.round(np.exp(rng.uniform(np.log(2000), np.log(100_000), N_DEALS))).astype(int),
        "sales_cycle_days": cycle,
    })
    weight = np.ones(N_DEALS)
    for column, tilts in TILTS.items():
        weight *= frame[column].map(tilts).fillna(1.0).to_numpy()
    winners = rng.choice(N_DEALS, size=WON, replace=False, p=weight / weight.sum())
    frame["outcome"] = "Lost"
    frame.loc[winners, "outcome"] = "Won"
    for column in ("created_date", "closed_date"):
        frame[column] = frame[column].dt.strftime("%Y-%m-%d")
    return frame[list(EXPORT_COLUMNS)].astype(str)


def write_skygeni_like_export(path: Path, seed: int = 7) -> Path:
    skygeni_like_export(seed).to_csv(path, index=False)
    return path


if __name__ == "__main__":  # python -m salesintel_assets_tests.skygeni_like deals.csv
    import sys

    print(write_skygeni_like_export(Path(sys.argv[1] if len(sys.argv) > 1 else "skygeni_like.csv")))
