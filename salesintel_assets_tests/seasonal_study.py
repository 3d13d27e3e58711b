"""Seasonal worlds: false segment alarms when nothing but the season changes,
and recall of real changes planted on top of the season.

    python -m salesintel_assets_tests.seasonal_study [deals] [worlds] [mode] [first_null_seed]
    python -m salesintel_assets_tests.seasonal_study young [first_seed] [seeds] [history days ...]
    python -m salesintel_assets_tests.seasonal_study yearly [deals] [first_seed] [seeds]

``mode`` (auto, on, off: the rules' ``anomalies.seasonality.mode``) shows
what standardising baselines for the season buys; "off" is the detector
before it. A null month is 30 daily runs on a seasonal world with nothing
planted, ending on a month end that cycles through the three months of a
quarter; every distinct segment anomaly raised in it is a false alarm.
Per run: the alarms one daily run raises (what a user sees in one summary).
Null months use seeds from ``first_null_seed`` (700; other seeds give worlds
the rules were not chosen on).

``young``: CRMs that went live ``history`` days before the analysis date
(15 deals a day, nothing imported), seasonal and not, at the three month
ends of a quarter and a week into the next (a seed's world is the same on
each date, shifted in time: only where in the quarter it ends changes):
false segment alarms per run with nothing planted, and recall of the three
plants (a lead-source dip, an industry x region spike, a slower industry).

``yearly``: worlds with 2.5 years of history whose year-end push is stronger
than the other quarter ends (``YEAR_END_PUSH``), runs every third day over
November and December, with and without the yearly-pattern check
(``domain/anomalies/recurrence.py``): false segment alarms per run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from salesintel_assets_tests.scenarios import (
    DIP, INDUSTRIES, REGIONS, SLOWDOWN, SOURCES, SPIKE, CyclePlant, WinRatePlant, generate, score_world,
    segment_anomalies,
)

QUARTER_PUSH = 0.45  # quarter-end months win ~80 %, the others ~50 % (as in a real CRM)
YEAR_END_PUSH = 0.8  # ... and the year's last quarter pushes far more
MONTH_ENDS = ("2026-04-30", "2026-05-31", "2026-06-30")  # first, second, third month of a quarter


def rules_with(mode: str):
    from salesintel_assets.domain.common.rules import load_rules

    rules = load_rules()
    season = rules.anomalies.seasonality.model_copy(update={"mode": mode})
    return rules.model_copy(update={"anomalies": rules.anomalies.model_copy(update={"seasonality": season})})


def seasonal_world(n_deals: int, seed: int, as_of: str, plants: tuple = ()):
    return generate(n_deals, seed, as_of=as_of, plants=plants, quarter_push=QUARTER_PUSH)


def null_month(n_deals: int, seed: int, rules, days: int = 30) -> tuple[set, list[int]]:
    """Distinct segment anomalies of daily runs over the last month of a
    seasonal world without a real change, and how many each run raised."""
    world = seasonal_world(n_deals, seed, MONTH_ENDS[seed % 3])
    raised, per_run = set(), []
    for back in range(days):
        found = segment_anomalies(world, world.as_of - pd.Timedelta(days=back), rules)
        raised |= set(zip(found["anomaly_type"], found["metric"], found["segment"]))
        per_run.append(len(found))
    return raised, per_run


def three_plants(seed: int) -> tuple:
    """The scenario study's three plants (a lead-source dip, an industry x
    region spike, a slower industry) in segments drawn from the seed."""
    rng = np.random.default_rng(20_000 + seed)
    source = SOURCES[rng.integers(len(SOURCES))]
    industry, region = INDUSTRIES[rng.integers(len(INDUSTRIES))], REGIONS[rng.integers(len(REGIONS))]
    slow = str(rng.choice([i for i in INDUSTRIES if i != industry]))
    return (WinRatePlant({"lead_source": source}, DIP), WinRatePlant({"industry": industry, "region": region}, SPIKE),
            CyclePlant({"industry": slow}, SLOWDOWN))


def planted_seasonal_world(n_deals: int, seed: int, as_of: str):
    """The three plants on top of the season."""
    return seasonal_world(n_deals, seed, as_of, three_plants(seed))


def recall(n_deals: int, seeds: range, rules) -> dict:
    hits = {"dip": 0, "spike": 0, "cycle": 0}
    true = false = 0
    for seed in seeds:
        world = planted_seasonal_world(n_deals, seed, MONTH_ENDS[seed % 3])
        world_hits, t, f = score_world(world, segment_anomalies(world, rules=rules))
        true, false = true + t, false + f
        for name, hit in world_hits.items():
            hits[name] += hit["related"]
    return {"worlds": len(seeds), "recall_related": {k: v / len(seeds) for k, v in hits.items()},
            "precision": true / max(true + false, 1), "reported": true + false, "false": false}


def study(n_deals: int, worlds: int, mode: str, first_null_seed: int = 700) -> dict:
    rules = rules_with(mode)
    months, runs = zip(*(null_month(n_deals, first_null_seed + s, rules) for s in range(max(worlds // 4, 3))))
    runs = [count for month in runs for count in month]
    return {"deals": n_deals, "mode": mode, "null_months": len(months),
            "runs": len(runs), "false_alarms_per_run": sum(runs) / len(runs), "worst_run": max(runs),
            "runs_above_one": sum(count > 1 for count in runs),
            "false_alarms_per_month": sum(map(len, months)) / len(months),
            "worst_month": max(map(len, months)), "months_above_one": sum(len(m) > 1 for m in months),
            "alarms": [sorted(m) for m in months],
            "planted": recall(n_deals, range(worlds), rules)}


def young(seeds: range, histories: tuple[int, ...], per_day: int = 15) -> list[dict]:
    """Per history length and season (pushed or not): false segment alarms
    per run with nothing planted, and the share of plants found, over the
    seeds and the dates of ``MONTH_ENDS`` and a week into the next quarter."""
    rules, rows = rules_with("auto"), []
    dates = MONTH_ENDS + ("2026-07-07",)
    for history in histories:
        for push in (QUARTER_PUSH, 0.0):
            alarms, hits = [], {"dip": 0, "spike": 0, "cycle": 0}
            for seed in seeds:
                for as_of in dates:
                    null = generate(per_day * history, seed, as_of=as_of, history_days=history, quarter_push=push)
                    alarms.append(len(segment_anomalies(null, rules=rules)))
                    planted = generate(per_day * history, seed, as_of=as_of, history_days=history, quarter_push=push,
                                       plants=three_plants(seed))
                    for name, hit in score_world(planted, segment_anomalies(planted, rules=rules))[0].items():
                        hits[name] += hit["related"]
            runs = len(alarms)
            rows.append({"history_days": history, "seasonal": push > 0, "runs": runs,
                         "false_alarms_per_run": round(sum(alarms) / runs, 3), "worst_run": max(alarms),
                         "recall": {k: round(v / runs, 2) for k, v in hits.items()}})
    return rows


def yearly_check_off():
    """A context in which no finding counts as a yearly pattern (the
    detector as it was before the check), for comparisons."""
    from unittest import mock

    from salesintel_assets.domain.anomalies import recurrence

    judged = recurrence.against_last_year
    return mock.patch.object(recurrence, "against_last_year",
                             lambda found, past: judged(found, past).assign(recurring=False))


def yearly_null(n_deals: int, seeds: range, with_check: bool) -> dict:
    """False segment alarms per run on year-end-push worlds, every third day
    over November and December."""
    from contextlib import nullcontext

    rules = rules_with("auto")
    runs = []
    with nullcontext() if with_check else yearly_check_off():
        for seed in seeds:
            for month_end in ("2026-11-30", "2026-12-31"):
                world = generate(n_deals, seed, as_of=month_end, history_days=900, quarter_push=QUARTER_PUSH,
                                 year_end_push=YEAR_END_PUSH)
                runs += [len(segment_anomalies(world, world.as_of - pd.Timedelta(days=back), rules))
                         for back in range(0, 30, 3)]
    return {"with_check": with_check, "runs": len(runs), "false_alarms_per_run": sum(runs) / len(runs),
            "worst_run": max(runs)}


if __name__ == "__main__":
    import json
    import sys

    if sys.argv[1:2] == ["yearly"]:
        given = [int(a) for a in sys.argv[2:5]]
        deals, first, count = given + [12_000, 1400, 3][len(given):]
        for check in (True, False):
            print(json.dumps(yearly_null(deals, range(first, first + count), check)))
        sys.exit(0)

    if sys.argv[1:2] == ["young"]:
        first, count = [int(a) for a in sys.argv[2:4]] + [1500, 3][len(sys.argv[2:4]):]
        histories = tuple(int(a) for a in sys.argv[4:]) or (130, 160, 200, 250, 300)
        for row in young(range(first, first + count), histories):
            print(json.dumps(row))
        sys.exit(0)

    deals = int(sys.argv[1]) if len(sys.argv) > 1 else 12_000
    worlds = int(sys.argv[2]) if len(sys.argv) > 2 else 24
    mode = sys.argv[3] if len(sys.argv) > 3 else "auto"
    first = int(sys.argv[4]) if len(sys.argv) > 4 else 700
    print(json.dumps(study(deals, worlds, mode, first), indent=1, default=str))
