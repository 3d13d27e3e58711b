"""A CRM world built on laws unlike the sample CRM's, to judge a run from
outside through the run-time contract: what ``salesintel run --csv ...
--as-of D`` says on its export, against what happened next.

The sample CRM (``sources/sample_crm``) shaped much of the tuning; this
world shares none of its code or laws:
- deals are created on weekdays only, twice as many at the end of the
  history as at its start, with Salesforce's stage names;
- the chance of a win adds industry, region (from the rep), product, lead
  source, a skill per rep (sd 0.45 in log odds) and the amount (bigger
  deals win less);
- won deals close after a gamma-distributed cycle scaled by product
  (Starter about 35 days, Suite about 110); lost deals are disqualified
  early (45 %, two weeks on average) or lost late (log-normal);
- ``never_share`` of the deals never move: a yearly clean-up closes those
  at least 180 days old lost on 15 January (or they stay open for ever,
  ``--no-cleanup``);
- half of the wins due in a quarter's first 20 days are pulled into the
  last 5 days of the quarter before (``--pull-in 0`` turns it off).

Best achievable: the chance that an open deal of its age is won within 90
days, by simulating the same laws from its creation facts (its latent
chance is known here, as no CRM records it). Stage is left out of it: an
export holds no stage history, so no model can learn what a stage says.

``--reps`` sets how many reps sell (40; with 300, each has about 25 deals).
``--base`` sets the win chance's base log odds (-0.3: about 40 % of the
deals that close are won; -2 makes it about 15 %), ``--drift`` adds log
odds per year since the start (a business slowly winning less, below 0),
``--months`` the history's length (34).
``--plant industry=Banking -1.5 2026-03-01`` makes a real change: deals of
that segment (a column of the world: industry, region, product, source)
created from that day on get that many log odds added. ``plant_found``
lists what the run raised on the segment (a drop is found as a win-rate
dip); every other segment finding is still false.
``--stall 0.3 2026-01-15`` makes another: 30 % of the deals created from
that day on never move (stuck until a clean-up, like the ``never_share``
ones); ``stall_found`` lists what the run raised as "deals are not closing"
(the best achievable does not know of the stall).
``forecast_changes`` lists the segments whose latest closes moved the
forecast: in this world every one but the plant's is false.

Run: ``python -m salesintel_assets_tests.outside_world [--seeds 1 2]
[--dates 2026-01-31 2026-06-30] [--never-share 0.3] [--no-cleanup]
[--pull-in 0.5] [--reps 40] [--base -0.3] [--drift 0] [--months 34]
[--plant industry=Banking -1.5 2026-03-01] [--stall 0.3 2026-01-15]`` (about a minute and a half per date).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from salesintel_assets_tests.export_replay import judged, run_as_of

HORIZON_DAYS = 90
START = pd.Timestamp("2024-01-01")
MONTHS = 34
STAGES = ("Prospecting", "Needs Analysis", "Proposal/Price Quote", "Negotiation/Review")
INDUSTRIES = {"Retail": 0.2, "Banking": -0.3, "Telecom": 0.0, "Health": 0.15, "Energy": -0.1, "Public": -0.4}
INDUSTRY_MIX = (0.25, 0.2, 0.15, 0.15, 0.15, 0.1)
REGIONS = {"EMEA": 0.0, "NA": 0.2, "LATAM": -0.2, "APJ": 0.05}
PRODUCTS = {"Starter": (0.4, 35.0, 8e3), "Growth": (0.0, 60.0, 30e3), "Suite": (-0.4, 110.0, 120e3)}
PRODUCT_MIX = (0.45, 0.35, 0.2)
SOURCES = {"Web": -0.1, "Event": 0.1, "Partner": 0.35, "Cold": -0.45, "Referral": 0.5}
SOURCE_MIX = (0.35, 0.15, 0.15, 0.25, 0.1)
REPS, REP_SKILL_SD = 40, 0.45
BASE_LOG_ODDS = -0.3
EARLY_LOSS_SHARE, EARLY_LOSS_DAYS = 0.45, 14.0
CLEANUP_AGE_DAYS = 180
PULL_IN_DAYS, PULLED_FROM_DAYS = 5, 20
WON, LOST, NEVER = 0, 1, 2
CONTRACT_COLUMNS = {"product": "product_type", "source": "lead_source"}   # the export's names of world columns


def _fates(rng, logit: np.ndarray, won_days: np.ndarray, never_share: float):
    """Per deal: how it ends (WON, LOST, NEVER), days to close (inf for
    NEVER) and how far a lost deal got (its last stage)."""
    n = len(logit)
    never = rng.random(n) < never_share
    won = ~never & (rng.random(n) < 1 / (1 + np.exp(-logit)))
    kind = np.where(never, NEVER, np.where(won, WON, LOST))
    early = rng.random(n) < EARLY_LOSS_SHARE
    lost_days = np.where(early, rng.exponential(EARLY_LOSS_DAYS, n), rng.lognormal(np.log(won_days * 1.4), 0.6, n))
    days = np.where(kind == WON, rng.gamma(3.0, won_days / 2.67, n), np.where(kind == LOST, lost_days, np.inf)) + 1
    reached = np.where(kind == LOST, np.where(early, 0, rng.integers(1, 4, n)), rng.integers(0, 3, n))
    return kind, days, reached


def _closes(rng, created: pd.Series, kind: np.ndarray, days: np.ndarray, pull_in: float, cleanup: bool) -> pd.Series:
    close = created + pd.to_timedelta(np.floor(np.where(np.isfinite(days), days, 0)), unit="D")
    quarter = close.dt.to_period("Q").dt.start_time
    pulled = ((kind == WON) & ((close - quarter).dt.days < PULLED_FROM_DAYS) & (rng.random(len(close)) < pull_in))
    pulled_to = quarter - pd.to_timedelta(rng.integers(1, PULL_IN_DAYS + 1, len(close)), unit="D")
    close = close.where(~pulled, np.maximum(pulled_to, created))
    close = close.where(np.isfinite(days))
    if cleanup:   # the first 15 January on which the deal is CLEANUP_AGE_DAYS old
        ready = created + pd.Timedelta(days=CLEANUP_AGE_DAYS)
        day = pd.to_datetime(ready.dt.year.astype(str) + "-01-15")
        day = day.where(day >= ready, day + pd.DateOffset(years=1))
        close = close.where(kind != NEVER, day)
    return close


def generate(seed: int, deals: int = 8000, never_share: float = 0.3, cleanup: bool = True,
             pull_in: float = 0.5, reps: int = REPS, base: float = BASE_LOG_ODDS, drift: float = 0.0,
             months: int = MONTHS, plant: tuple[str, float, pd.Timestamp] | None = None,
             stall: tuple[float, pd.Timestamp] | None = None) -> pd.DataFrame:
    """Every deal with how it truly ends (``close`` NaT for one that never does);
    ``plant`` (segment ``column=value``, log odds, from) a real change;
    ``stall`` (share, from) another real one: that share of the deals created
    from that day on never move (drawn apart: the rest of the world is the
    same with or without it)."""
    rng = np.random.default_rng(seed)
    span = months * 30.4
    when = span * (np.sqrt(1 + 3 * rng.random(deals)) - 1)   # density rising linearly to twice the start's
    created = pd.Series(START + pd.to_timedelta(np.floor(when), unit="D"))
    created = created[created.dt.dayofweek < 5].reset_index(drop=True)
    n = len(created)
    skill, rep_region = rng.normal(0, REP_SKILL_SD, reps), rng.choice(list(REGIONS), reps)
    rep = rng.integers(0, reps, n)
    industry = rng.choice(list(INDUSTRIES), n, p=INDUSTRY_MIX)
    product = rng.choice(list(PRODUCTS), n, p=PRODUCT_MIX)
    source = rng.choice(list(SOURCES), n, p=SOURCE_MIX)
    amount = np.round(np.exp(rng.normal(np.log([PRODUCTS[p][2] for p in product]), 0.7)), -1)
    years = (created - START).dt.days.to_numpy() / 365.25
    logit = (base + drift * years + np.array([INDUSTRIES[i] for i in industry])
             + np.array([REGIONS[r] for r in rep_region[rep]])
             + np.array([PRODUCTS[p][0] for p in product]) + np.array([SOURCES[s] for s in source]) + skill[rep]
             - 0.25 * (np.log(amount) - np.log(30e3)))
    if plant:
        column, value = plant[0].split("=", 1)
        facts = {"industry": industry, "region": rep_region[rep], "product": product, "source": source}
        logit = logit + plant[1] * ((facts[column] == value) & (created >= plant[2]).to_numpy())
    won_days = np.array([PRODUCTS[p][1] for p in product])
    kind, days, reached = _fates(rng, logit, won_days, never_share)
    if stall:
        stuck = (created >= stall[1]).to_numpy() & (np.random.default_rng(seed + 7919).random(n) < stall[0])
        kind, days = np.where(stuck, NEVER, kind), np.where(stuck, np.inf, days)
    return pd.DataFrame({
        "deal_id": [f"OP{i:06d}" for i in range(n)], "created": created,
        "close": _closes(rng, created, kind, days, pull_in, cleanup), "kind": kind, "days": days, "reached": reached,
        "logit": logit, "won_days": won_days, "rep": [f"u{r:03d}" for r in rep], "industry": industry,
        "region": rep_region[rep], "product": product, "source": source, "amount": amount})


def _stage(world: pd.DataFrame, age: np.ndarray) -> np.ndarray:
    """The stage index each deal is in at ``age``: wins move through all
    four evenly, lost deals up to the one they reached, stuck ones one a month."""
    kind, days, reached = world["kind"].to_numpy(), world["days"].to_numpy(), world["reached"].to_numpy()
    share = np.clip(age / np.where(np.isfinite(days), days, 1.0), 0, 0.999)
    stage = np.where(kind == WON, np.floor(4 * share),
                     np.where(kind == LOST, np.floor((reached + 1) * share), np.minimum(reached, np.floor(age / 30))))
    return stage.astype(int)


def export_on(world: pd.DataFrame, as_of: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The CRM export as the contract reads it on ``as_of`` (text columns),
    and the deals open then."""
    world = world[world["created"] <= as_of]
    closed = (world["close"] <= as_of).to_numpy()
    won = world["kind"].eq(WON).to_numpy()
    stage = np.array(STAGES)[_stage(world, (as_of - world["created"]).dt.days.to_numpy(dtype=float))]
    export = pd.DataFrame({
        "deal_id": world["deal_id"], "created_date": world["created"].dt.strftime("%Y-%m-%d"),
        "closed_date": np.where(closed, world["close"].dt.strftime("%Y-%m-%d"), ""),
        "sales_rep_id": world["rep"], "industry": world["industry"], "region": world["region"],
        "product_type": world["product"], "lead_source": world["source"],
        "deal_stage": np.where(closed, np.where(won, "Closed Won", "Closed Lost"), stage),
        "deal_amount": world["amount"].astype(int).astype(str),
        "sales_cycle_days": np.where(closed, (world["close"] - world["created"]).dt.days.fillna(0).astype(int)
                                     .astype(str), ""),
        "outcome": np.where(closed, np.where(won, "Won", "Lost"), "Open")})
    return export, world[~closed]


def won_within(open_deals: pd.DataFrame, as_of: pd.Timestamp, days: int = HORIZON_DAYS) -> pd.Series:
    end = as_of + pd.Timedelta(days=days)
    won = open_deals["kind"].eq(WON) & (open_deals["close"] > as_of) & (open_deals["close"] <= end)
    return pd.Series(won.to_numpy(), index=open_deals["deal_id"].to_numpy())


def best_probability(open_deals: pd.DataFrame, as_of: pd.Timestamp, seed: int, never_share: float, cleanup: bool,
                     pull_in: float, draws: int = 2000) -> np.ndarray:
    """Per open deal: the chance it is won within the horizon given that it
    is still open at its age, by simulating its fate ``draws`` times."""
    rng = np.random.default_rng(seed)
    end = as_of + pd.Timedelta(days=HORIZON_DAYS)
    out = np.zeros(len(open_deals))
    facts = open_deals[["created", "logit", "won_days"]].itertuples(index=False)
    for i, (created, logit, won_days) in enumerate(facts):
        kind, days, _ = _fates(rng, np.full(draws, logit), np.full(draws, won_days), never_share)
        close = _closes(rng, pd.Series(pd.DatetimeIndex([created] * draws)), kind, days, pull_in, cleanup)
        still_open = ~(close <= as_of).to_numpy()
        won = (kind == WON) & (close <= end).to_numpy()
        out[i] = (won & still_open).sum() / max(still_open.sum(), 1)
    return out


def measure(seed: int, as_of: pd.Timestamp, never_share: float, cleanup: bool, pull_in: float,
            reps: int = REPS, **shape) -> dict:
    """``shape``: ``generate``'s base log odds, drift, months, plant and stall."""
    from sklearn.metrics import roc_auc_score

    world = generate(seed, never_share=never_share, cleanup=cleanup, pull_in=pull_in, reps=reps, **shape)
    export, open_deals = export_on(world, as_of)
    truth = won_within(open_deals, as_of)
    with tempfile.TemporaryDirectory() as home:
        csv = Path(home) / "export.csv"
        export.to_csv(csv, index=False)
        ran = run_as_of(csv, as_of, Path(home))
    row = {"seed": seed, "as_of": f"{as_of:%Y-%m-%d}", "exit": ran["exit"]}
    if "message" in ran:
        return row | {"message": ran["message"]}
    row |= judged(ran, truth)
    best = best_probability(open_deals, as_of, seed + 1000, never_share, cleanup, pull_in)
    row |= {"auc_best": round(roc_auc_score(truth.to_numpy(dtype=int), best), 3),
            "best_error": round(best.sum() / max(int(truth.sum()), 1) - 1, 3),
            "max_p": round(float(ran["scores"]["win_probability_90d"].max()), 3)}
    if "auc_model" in row:
        row |= {"vs_best": round(row["auc_model"] / row["auc_best"], 3),
                "over_age": round(row["auc_model"] - row["auc_age"], 3)}
    # only the plant and the stall change this world: every other segment finding (stalled deals aside) is false
    found = ran["anomalies"]
    segment = found[~found["segment"].astype(str).str.startswith("deal_id")]
    target = _contract_segment(shape["plant"]) if shape.get("plant") else None
    planted = segment["segment"].astype(str).str.split("&").map(lambda parts: target in parts).astype(bool)
    stalled = segment["anomaly_type"].eq("still_open_increase") & bool(shape.get("stall"))
    named = (lambda rows: ";".join(rows["anomaly_type"] + " " + rows["segment"].astype(str)) or "-")
    return row | {"segment_findings": named(segment[~planted & ~stalled])} | (
        {"plant_found": named(segment[planted])} if shape.get("plant") else {}) | (
        {"stall_found": named(segment[stalled])} if shape.get("stall") else {})


def _contract_segment(plant) -> str:
    """The planted segment as the contract's anomalies name it."""
    column, value = plant[0].split("=", 1)
    return f"{CONTRACT_COLUMNS.get(column, column)}={value}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    parser.add_argument("--dates", nargs="+", type=pd.Timestamp,
                        default=[pd.Timestamp("2026-01-31"), pd.Timestamp("2026-06-30")])
    parser.add_argument("--never-share", type=float, default=0.3)
    parser.add_argument("--no-cleanup", action="store_true")
    parser.add_argument("--pull-in", type=float, default=0.5)
    parser.add_argument("--reps", type=int, default=REPS)
    parser.add_argument("--base", type=float, default=BASE_LOG_ODDS)
    parser.add_argument("--drift", type=float, default=0.0)
    parser.add_argument("--months", type=int, default=MONTHS)
    parser.add_argument("--plant", nargs=3, metavar=("COLUMN=VALUE", "LOG_ODDS", "FROM"))
    parser.add_argument("--stall", nargs=2, metavar=("SHARE", "FROM"))
    args = parser.parse_args(argv)
    shape = {"base": args.base, "drift": args.drift, "months": args.months}
    if args.plant:
        shape["plant"] = (args.plant[0], float(args.plant[1]), pd.Timestamp(args.plant[2]))
    if args.stall:
        shape["stall"] = (float(args.stall[0]), pd.Timestamp(args.stall[1]))
    rows = [measure(seed, day, args.never_share, not args.no_cleanup, args.pull_in, args.reps, **shape)
            for seed in args.seeds for day in args.dates]
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.max_colwidth", 60):
        print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
