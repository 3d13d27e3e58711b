"""The vocabulary of alert texts: how metrics, money, rates, counts and
segments are written, one way everywhere."""

from __future__ import annotations

import numpy as np
import pandas as pd

from salesintel_assets.domain.common.segment_keys import parse_segment

METRIC_LABELS = {
    "win_rate": "win rate",
    "sales_cycle_days": "sales cycle",          # closed deals only: created to close
    "open_deal_age_days": "age of open deals",  # never a "cycle": these deals have not closed
    "still_open_share": "share of deals still open at their age",
    "deal_quality": "deal quality score",
    "dqs": "deal quality score (DQS)",
    "pvs": "pipeline velocity score (PVS)",
    "smi": "stage momentum index (SMI)",
    "stage_duration": "days in stage",
}
DAY_METRICS = {"sales_cycle_days", "open_deal_age_days", "stage_duration"}
RATE_METRICS = {"win_rate", "still_open_share"}


def missing(value) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and np.isnan(value))


def money(amount) -> str:
    if missing(amount):
        return "n/a"
    amount = float(amount)
    if abs(amount) >= 1_000_000:
        return f"${amount / 1_000_000:,.2f}M"
    return f"${amount:,.0f}"


def amount_text(amount) -> str:
    """A deal's amount; "no amount" when the CRM has none (unknown, never $0)."""
    return "no amount" if missing(amount) else money(amount)


def pipeline(open_n: int, open_amount: float, priced_n: int) -> str:
    """'43 deals, $1.2M': open deals and their amount, saying when some or
    all of them have none (their money is unknown, not $0)."""
    if open_n and not priced_n:
        return f"{open_n:,} deals, no amounts recorded"
    if priced_n < open_n:
        return f"{open_n:,} deals, {money(open_amount)} on the {priced_n:,} with an amount"
    return f"{open_n:,} deals, {money(open_amount)}"


def pct(rate, digits: int = 0) -> str:
    if missing(rate):
        return "n/a"
    shown = f"{float(rate) * 100:.{digits}f}"
    if float(rate) > 0 and float(shown) == 0:
        return f"<{10 ** -digits:g} %"  # never round a small chance down to a flat zero
    return f"{shown} %"


def metric_value(metric: str, value) -> str:
    if missing(value):
        return "n/a"
    if metric in RATE_METRICS:
        return pct(value)
    if metric in DAY_METRICS:
        return f"{float(value):.0f} days"
    return f"{float(value):.2f}"


def metric_label(metric) -> str:
    return METRIC_LABELS.get(str(metric), str(metric).replace("_", " "))


SEGMENT_WORDS = {"lead_source": "{} leads", "product_type": "{} product", "sales_rep_id": "rep {}"}


def segment_label(segment, router=None) -> str:
    """'industry=FinTech&region=Europe' -> 'FinTech · Europe'; lead sources,
    products and reps are named as such ('Partner leads · Core product')."""
    parts = parse_segment(segment)
    if router is not None and "sales_rep_id" in parts:
        parts["sales_rep_id"] = router.rep_name(parts["sales_rep_id"]) or parts["sales_rep_id"]
    words = [SEGMENT_WORDS.get(col, "{}").format(value) for col, value in parts.items()]
    return " · ".join(words) if words else "all deals"


def sentence(text) -> str:
    """A capitalised sentence with a full stop."""
    text = str(text).strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def count(n) -> str:
    return "n/a" if missing(n) else f"{int(n):,}"
