"""Generated CRMs with known, planted anomalies (or none) for measuring the
anomaly detector's recall, precision and false alarms.

A world is a stationary sales process (segment and rep effects of modest
size, volume growth, weekday rhythm) built directly as a fact_deals-shaped
frame with numpy: thousands of deals in milliseconds, no sample CRM, no
warehouse. Effects are planted over the last ``window_days`` before the
analysis date:

- ``WinRatePlant``: deals of a segment that close in the window are won at
  ``win_rate`` instead of their usual rate (a dip or a spike);
- ``CyclePlant``: from the onset, the remaining time to close of a segment's
  deals stretches by ``factor`` (a slower cycle; some deals slip past the
  analysis date and stay open).

With ``quarter_push`` > 0 the world is seasonal, as real CRMs are: that share
of the won deals due in the first two months of a (calendar) quarter are
pushed to close in the quarter's last three weeks, so quarter-end months
have more closes, more wins (about 80 % against 50 %) and longer cycles.
Plants then change outcomes on top of the season by ``shift`` points of the
segment's rate in the window (a dip turns wins into losses, a spike losses
into wins) instead of redrawing them. ``year_end_push`` (when given) is the
share pushed in the year's last quarter instead: a stronger year-end push,
as many CRMs show, recurs every year and is no change either.

The truth of each plant is its segment; ``related`` says whether a reported
segment is that segment, inside it or contains it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

INDUSTRIES = ("SaaS", "FinTech", "HealthTech", "EdTech", "Ecommerce")
REGIONS = ("North America", "Europe", "APAC", "India")
PRODUCTS = ("Core", "Pro", "Enterprise")
SOURCES = ("Inbound", "Outbound", "Referral", "Partner")
STAGES = ("Qualified", "Demo", "Proposal", "Negotiation", "Closed")
N_REPS = 25

# Log-odds effects: realistic spreads (segment win rates ~35-55 %).
BASE_LOGIT = -0.2
INDUSTRY_LOGIT = (0.12, 0.05, 0.0, -0.15, -0.05)
REGION_LOGIT = (0.05, 0.0, -0.05, 0.0)
PRODUCT_LOGIT = (0.1, 0.0, -0.15)
SOURCE_LOGIT = (0.05, -0.05, 0.4, -0.45)
PRODUCT_CYCLE = (0.85, 1.0, 1.3)


@dataclass(frozen=True)
class WinRatePlant:
    """Deals of the segment closing in the last ``window_days`` win with
    their usual probability plus ``shift`` (-0.2 = a 20-point dip)."""

    segment: dict
    shift: float
    window_days: int = 30

    kind = "win_rate"


@dataclass(frozen=True)
class CyclePlant:
    """``window_days`` is when the slowdown began (days before the analysis date)."""

    segment: dict
    factor: float
    window_days: int = 90

    kind = "cycle"


@dataclass(frozen=True)
class World:
    fact: pd.DataFrame
    as_of: pd.Timestamp
    plants: tuple = field(default_factory=tuple)


def _segment_mask(frame_cols: dict, segment: dict) -> np.ndarray:
    mask = np.ones(len(next(iter(frame_cols.values()))), dtype=bool)
    for key, value in segment.items():
        mask &= frame_cols[key] == value
    return mask


def _quarter_push(rng, created, closed, won, share: float, year_end_share: float | None = None) -> np.ndarray:
    """Close dates after the quarter-end push (see the module docstring)."""
    months = closed.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    quarter_end = (months - months % 3 + 3).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64) - 1
    shares = np.where(months % 12 >= 9, share if year_end_share is None else year_end_share, share)
    push = won & (months % 3 < 2) & (rng.random(len(closed)) < shares)
    target = quarter_end - rng.integers(0, 21, len(closed))
    return np.where(push, np.maximum(target, closed), closed)


def generate(n_deals: int, seed: int, as_of: str = "2026-06-30", history_days: int = 540,
             growth: float = 0.5, plants: tuple = (), quarter_push: float = 0.0,
             year_end_push: float | None = None) -> World:
    """A fact_deals-shaped frame of about ``n_deals`` deals created over
    ``history_days`` up to ``as_of``, with the plants applied."""
    rng = np.random.default_rng(seed)
    end = pd.Timestamp(as_of)
    end_day = int(np.datetime64(end, "D").astype(np.int64))
    first_day = end_day - history_days
    days = np.arange(first_day, end_day + 1)
    weekday = np.array([1.0, 1.0, 1.0, 1.0, 0.9, 0.25, 0.15])[(days + 3) % 7]  # 1970-01-01 was a Thursday
    weights = weekday * (1 + growth * (days - first_day) / history_days)
    n = int(rng.poisson(n_deals))
    created = rng.choice(days, size=n, p=weights / weights.sum())

    ind = rng.choice(len(INDUSTRIES), n, p=(0.22, 0.18, 0.2, 0.18, 0.22))
    reg = rng.choice(len(REGIONS), n, p=(0.3, 0.27, 0.22, 0.21))
    prod = rng.choice(len(PRODUCTS), n, p=(0.36, 0.34, 0.30))
    src = rng.choice(len(SOURCES), n, p=(0.26, 0.25, 0.24, 0.25))
    rep = rng.integers(0, N_REPS, n)
    rep_skill = rng.normal(0, 0.12, N_REPS)
    logit = (BASE_LOGIT + np.take(INDUSTRY_LOGIT, ind) + np.take(REGION_LOGIT, reg)
             + np.take(PRODUCT_LOGIT, prod) + np.take(SOURCE_LOGIT, src) + rep_skill[rep])
    p_win = 1 / (1 + np.exp(-logit))
    won = rng.random(n) < p_win

    # Won deals take ~35 days; lost ones either die early or drag on.
    late_loss = rng.random(n) < 0.6
    median = np.where(won, 35.0, np.where(late_loss, 80.0, 14.0)) * np.take(PRODUCT_CYCLE, prod)
    cycle = np.clip(np.round(median * np.exp(rng.normal(0, 0.55, n))), 3, 240).astype(np.int64)
    closed = created + cycle
    if quarter_push > 0:
        closed = _quarter_push(rng, created, closed, won, quarter_push, year_end_push)
        cycle = closed - created

    cols = {"industry": np.array(INDUSTRIES, dtype=object)[ind], "region": np.array(REGIONS, dtype=object)[reg],
            "product_type": np.array(PRODUCTS, dtype=object)[prod],
            "lead_source": np.array(SOURCES, dtype=object)[src],
            "sales_rep_id": np.array([f"rep_{i + 1}" for i in range(N_REPS)], dtype=object)[rep]}
    # Slowdowns first: a win-rate change applies to whatever closes in its window.
    for plant in sorted(plants, key=lambda p: p.kind != "cycle"):
        onset = end_day - plant.window_days + 1
        mask = _segment_mask(cols, plant.segment)
        if plant.kind == "win_rate" and quarter_push > 0:  # on top of the season
            hit = mask & (closed >= onset) & (closed <= end_day)
            draw = rng.random(n)
            rate = won[hit].mean() if hit.any() else 0.5  # the season's rate: the change is shift points on it
            if plant.shift < 0:
                won = won & ~(hit & (draw < -plant.shift / max(rate, 1e-9)))
            else:
                won = won | (hit & (draw < plant.shift / max(1 - rate, 1e-9)))
        elif plant.kind == "win_rate":
            hit = mask & (closed >= onset) & (closed <= end_day)
            won = np.where(hit, rng.random(n) < np.clip(p_win + plant.shift, 0.02, 0.98), won)
        else:
            start = np.maximum(created, onset)
            hit = mask & (closed >= onset)
            closed = np.where(hit, start + np.round((closed - start) * plant.factor).astype(np.int64), closed)
            cycle = closed - created
    fact = _fact_frame(rng, created, closed, cycle, won, cols, end, end_day)
    return World(fact, end, tuple(plants))


def _fact_frame(rng, created, closed, cycle, won, cols, end, end_day) -> pd.DataFrame:
    n = len(created)
    is_open = closed > end_day
    elapsed = np.where(is_open, end_day - created, cycle)
    # Open deals sit in the stage matching their progress; lost deals end in
    # the stage they reached; won deals end in Closed.
    open_stage = np.minimum((4 * elapsed / np.maximum(cycle, 1)).astype(np.int64), 3)
    lost_stage = np.minimum((rng.random(n) * 4 * np.clip(cycle / 60, 0.3, 1.0)).astype(np.int64), 3)
    stage_idx = np.where(is_open, open_stage, np.where(won, 4, lost_stage))
    stage_days = np.maximum(cycle / 4, 1)
    days_in_stage = np.where(is_open, np.floor(elapsed - open_stage * stage_days), np.nan)
    to_ts = lambda d: pd.to_datetime(np.asarray(d, dtype=np.int64).astype("datetime64[D]")).astype("datetime64[ns]")
    created_ts = to_ts(created)
    closed_ts = pd.Series(to_ts(np.where(is_open, end_day, closed))).where(~is_open, pd.NaT)
    outcome = np.where(is_open, "Open", np.where(won, "Won", "Lost")).astype(object)
    amount = np.round(np.exp(rng.normal(np.log(12_000), 0.8, n)).clip(2_000, 100_000))
    fact = pd.DataFrame({
        "deal_id": np.char.add("S", np.char.zfill(np.arange(1, n + 1).astype(str), 7)).astype(object),
        "created_date": created_ts,
        "closed_date": closed_ts.to_numpy(),
        **cols,
        "deal_stage": np.array(STAGES, dtype=object)[stage_idx],
        "stage_number": pd.array(stage_idx + 1, dtype="Int64"),
        "deal_amount": amount,
        "sales_cycle_days": np.where(is_open, np.nan, cycle).astype("float64"),
        "outcome": outcome,
        "is_open": is_open,
        "is_won": outcome == "Won",
        "age_days": np.where(is_open, end_day - created, cycle).astype("float64"),
        "stage_entered_date": pd.Series(to_ts(end_day - np.nan_to_num(days_in_stage).astype(np.int64)))
                                .where(is_open, pd.NaT).to_numpy(),
        "days_in_stage": days_in_stage,
        "needs_review": np.zeros(n, dtype=bool),
        "as_of_date": end,
    })
    return fact.sort_values("deal_id").reset_index(drop=True)


def related(segment: str, plant) -> bool:
    """A reported segment is the plant's segment, inside it or contains it."""
    keys = {} if segment == "all" else dict(p.split("=", 1) for p in segment.split("&"))
    shared = set(keys) & set(plant.segment)
    if any(keys[k] != plant.segment[k] for k in shared):
        return False
    return set(keys) <= set(plant.segment) or set(plant.segment) <= set(keys)


def label(segment: dict) -> str:
    return "&".join(f"{k}={segment[k]}" for k in sorted(segment)) if segment else "all"


# --- The study: recall, precision, false alarms ------------------------------
# Sizes of the planted effects (the alert examples' kind of change): a lead
# source losing 20 win-rate points, an industry x region pair gaining 30, an
# industry whose deals take 1.5x as long to close since 90 days ago.
DIP, SPIKE, SLOWDOWN = -0.20, 0.30, 1.5
EXPECTED_TYPES = {"dip": {"win_rate_dip"}, "spike": {"win_rate_spike"},
                  "cycle": {"cycle_slowdown", "open_age_increase", "still_open_increase"}}


def planted_world(n_deals: int, seed: int) -> World:
    """Three plants in random segments: a lead-source dip, an industry x
    region spike and a slower industry (another industry than the pair's)."""
    rng = np.random.default_rng(10_000 + seed)
    source = SOURCES[rng.integers(len(SOURCES))]
    industry, region = INDUSTRIES[rng.integers(len(INDUSTRIES))], REGIONS[rng.integers(len(REGIONS))]
    slow = str(rng.choice([i for i in INDUSTRIES if i != industry]))
    plants = (WinRatePlant({"lead_source": source}, DIP), WinRatePlant({"industry": industry, "region": region}, SPIKE),
              CyclePlant({"industry": slow}, SLOWDOWN))
    return generate(n_deals, seed, plants=plants)


def plant_name(plant) -> str:
    if plant.kind == "cycle":
        return "cycle"
    return "dip" if plant.shift < 0 else "spike"


def segment_anomalies(world: World, as_of: pd.Timestamp | None = None, rules=None) -> pd.DataFrame:
    """The detector's segment anomalies (stalled deals left out) on a world,
    as it would have run on ``as_of`` (default: the world's end)."""
    from salesintel_assets.domain.metrics import deal_metrics as metrics
    from salesintel_assets.domain.anomalies.detector import detect_anomalies
    from salesintel_assets.domain.common.rules import load_rules

    rules = rules or load_rules()
    as_of = world.as_of if as_of is None else as_of
    fact = world.fact[world.fact["created_date"] <= as_of].reset_index(drop=True)
    found = detect_anomalies(fact, metrics.deal_metrics(fact, rules, as_of), None, rules, as_of).anomalies
    return found[found["dimension"] != "deal"]


def score_world(world: World, found: pd.DataFrame) -> tuple[dict, int, int]:
    """Per plant: found on its own segment ('exact') or on a parent / child
    of it ('related'), with a type that fits; and how many reported segment
    anomalies are true (related to a plant) and false."""
    hits = {}
    for plant in world.plants:
        name = plant_name(plant)
        fits = found["anomaly_type"].isin(EXPECTED_TYPES[name]).to_numpy()
        exact = fits & (found["segment"] == label(plant.segment)).to_numpy()
        near = fits & np.array([related(s, plant) for s in found["segment"]], dtype=bool)
        hits[name] = {"exact": bool(exact.any()), "related": bool(near.any())}
    true = sum(any(related(s, p) for p in world.plants) for s in found["segment"])
    return hits, true, len(found) - true


def recall_precision(n_deals: int, seeds: range) -> dict:
    """Recall per plant (exact and related) and precision over many worlds."""
    from salesintel_assets.domain.common.rules import load_rules

    rules = load_rules()
    hits = {name: {"exact": 0, "related": 0} for name in EXPECTED_TYPES}
    true = false = 0
    for seed in seeds:
        world = planted_world(n_deals, seed)
        world_hits, t, f = score_world(world, segment_anomalies(world, rules=rules))
        true, false = true + t, false + f
        for name, hit in world_hits.items():
            for kind in ("exact", "related"):
                hits[name][kind] += hit[kind]
    worlds = len(seeds)
    return {"worlds": worlds, "deals": n_deals,
            "recall": {n: {k: v / worlds for k, v in h.items()} for n, h in hits.items()},
            "precision": true / max(true + false, 1), "reported": true + false, "false": false}


def false_alarms_in_a_month(n_deals: int, seed: int, days: int = 30) -> set:
    """Distinct segment anomalies raised by daily runs over the last month
    of a world with nothing planted (each is a false alarm)."""
    from salesintel_assets.domain.common.rules import load_rules

    world, rules = generate(n_deals, seed), load_rules()
    raised = set()
    for back in range(days):
        found = segment_anomalies(world, world.as_of - pd.Timedelta(days=back), rules)
        raised |= set(zip(found["anomaly_type"], found["metric"], found["segment"]))
    return raised


if __name__ == "__main__":  # the fuller study quoted in the docs: python -m salesintel_assets_tests.scenarios
    import json
    import sys

    deals = int(sys.argv[1]) if len(sys.argv) > 1 else 24_000
    worlds = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    print(json.dumps(recall_precision(deals, range(worlds)), indent=1))
    months = [false_alarms_in_a_month(deals, 500 + s) for s in range(worlds // 10)]
    print(json.dumps({"null_months": len(months), "false_alarms_per_month": sum(map(len, months)) / len(months),
                      "alarms": [sorted(m) for m in months]}, indent=1, default=str))
