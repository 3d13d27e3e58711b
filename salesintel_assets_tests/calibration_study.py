"""Where the 90-day forecast's level comes from: per world, the sum of
today's open deals' 90-day win probabilities four ways, each against the
sum of the world's own probabilities (a target without the luck of one
90-day window, so a level error shows on few worlds):

- ``served``: as ``deal_risk_model`` trains and serves them (each member
  calibrated on the calibration period, the served levels applied:
  ``risk_model.deployed_levels`` and ``trend_level``, shown as ``trend``);
- ``untrended``: served without its ``trend_level`` (``level_trend``);
- ``recalibrated``: the members calibrated again on the calibration and
  validation periods together (more and newer rows);
- ``uncalibrated``: the members' own probabilities, as fitted on the fit
  period.

Beside them the served level's four parts (log odds): ``calibration``
(``calibration_level``), ``recent`` (``recent_level``), ``trend`` and
``cohort`` (``cohort_level``: the win rate's trend by creation date).
``--learn-from DATE`` replays the snapshots from that day on only (the fit
period then starts there).

Worlds: the outside world (``outside_world``; ``--outside SEED DATE``, with
its shape options) and the scenario study's (``trust_study``; ``--scenario
SEED``: all of its worlds at their end date). The models are trained in
process on the fact table the warehouse would hold, as ``trust_study`` does.
On the scenario worlds whose wins bunch at quarter ends the world's own
probabilities leave the push out: judge those against ``won_90d`` too.

Run: ``python -m salesintel_assets_tests.calibration_study --outside 92
2026-03-31 --outside 93 2026-01-31 --scenario 701`` (about a minute per
world; the shape options, e.g. ``--no-cleanup`` or ``--drift -0.4``, apply
to every outside world of the run; ``--cohort-trend-min-z 0`` turns the
cohort trend off, to compare).
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd

from salesintel_assets.domain.common import stats
from salesintel_assets.domain.common.rules import load_rules
from salesintel_assets.domain.ingestion import pulls as ingestion
from salesintel_assets.domain.ingestion import quality
from salesintel_assets.domain.models import features as rf
from salesintel_assets.domain.models import risk_model as rm
from salesintel_assets.domain.warehouse import upserts as warehouse
from salesintel_assets_tests import outside_world, trust_study

DAYS = 90
WAYS = ("served", "untrended", "recalibrated", "uncalibrated")
NO_HISTORY = pd.DataFrame({"deal_id": pd.Series(dtype=str), "stage": pd.Series(dtype=str),
                           "entered_date": pd.Series(dtype="datetime64[ns]")})
NO_ACTIVITIES = pd.DataFrame({"deal_id": pd.Series(dtype=str), "activity_date": pd.Series(dtype="datetime64[ns]")})


def members(model) -> list:
    return model.models if isinstance(model, rm.Blend) else [model]


def level_sums(fact: pd.DataFrame, history: pd.DataFrame, activities: pd.DataFrame, as_of: pd.Timestamp,
               rules, learn_from: pd.Timestamp | None = None) -> dict:
    """Train as ``deal_risk_model`` does; the open deals' ids and their 90-day
    probabilities served, recalibrated and uncalibrated (``members``)."""
    from sklearn.calibration import CalibratedClassifierCV

    prepared = rf.prepare(fact, history, activities, as_of, rules.risk, rules.stages.order, rules.anomalies,
                          learn_from)
    prepared, risk = rm.at_horizon(prepared, rules.risk, rm.fitting_horizon(prepared, rules.risk))
    training = rm.train(prepared, risk)
    open_frame = rf.open_deals(prepared.fact, as_of)
    features = rf.open_states(open_frame, prepared.timeline, prepared.spec, as_of)
    columns = prepared.spec.columns
    model = training.model.models[training.model.horizons.index(DAYS)]
    part = rm.time_split(prepared.rows_for(DAYS), prepared.labelled, risk)
    later = pd.concat([part.calibrate, part.validate])
    fitted = [m.calibrated_classifiers_[0].estimator for m in members(model)]   # frozen, before calibration
    served = rm.predict_horizons(training.model, features)[DAYS]
    _, _, calibration, recent, trend, cohort = next(parts for parts in training.model.level_parts() if parts[0] == DAYS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = [CalibratedClassifierCV(f, method=m.method).fit(later[columns], later["won"])
                 for f, m in zip(fitted, members(model))]
        return {"deal_id": open_frame["deal_id"].to_numpy(), "age_days": open_frame["age_days"].to_numpy(float),
                "candidate": training.chosen.name,
                "served": served, "untrended": stats.shifted(served, -trend),
                "calibration": round(calibration, 3), "recent": round(recent, 3), "trend": round(trend, 3),
                "cohort": round(cohort, 3),
                "recalibrated": np.mean([m.predict_proba(features[columns])[:, 1] for m in again], axis=0),
                "uncalibrated": np.mean([f.predict_proba(features[columns])[:, 1] for f in fitted], axis=0)}


def judged(sums: dict, best: np.ndarray, won: np.ndarray) -> dict:
    row = {"candidate": sums["candidate"], "won_90d": int(won.sum()), "best_90d": round(float(best.sum()), 1)}
    row |= {part: sums[part] for part in ("calibration", "recent", "trend", "cohort")}
    for way in WAYS:
        row[way] = round(float(sums[way].sum()) / max(float(best.sum()), 1e-9) - 1, 3)
    return row


def outside(seed: int, as_of: pd.Timestamp, never_share: float, cleanup: bool, pull_in: float,
            learn_from: pd.Timestamp | None = None, cohort_min_z: float | None = None, **shape) -> dict:
    world = outside_world.generate(seed, never_share=never_share, cleanup=cleanup, pull_in=pull_in, **shape)
    export, open_deals = outside_world.export_on(world, as_of)
    rules = load_rules()
    if cohort_min_z is not None:   # the cohort trend's bar (0: off), to compare with the shipped one
        rules = rules.model_copy(update={"risk": rules.risk.model_copy(update={"cohort_trend_min_z": cohort_min_z})})
    clean = quality.validate_deals(ingestion.conform_raw(export), rules, as_of=as_of).clean
    fact = warehouse.build_fact_deals(clean, NO_HISTORY, NO_ACTIVITIES, rules, as_of)
    sums = level_sums(fact, NO_HISTORY, NO_ACTIVITIES, as_of, rules, learn_from)
    open_deals = open_deals.set_index("deal_id").reindex(sums["deal_id"]).reset_index()
    best = outside_world.best_probability(open_deals, as_of, seed + 1000, never_share, cleanup, pull_in)
    won = outside_world.won_within(open_deals, as_of).to_numpy(dtype=bool)
    return {"world": "outside", "seed": seed, "as_of": f"{as_of:%Y-%m-%d}"} | judged(sums, best, won)


def scenario(spec: trust_study.WorldSpec, seed: int) -> dict:
    t = trust_study.world_tables(spec, 6000, seed)
    as_of = t["as_of"]
    sums = level_sums(t["fact"], t["history"], t["activities"], as_of, t["rules"])
    truth = t["world"].deals.set_index("deal_id").reindex(sums["deal_id"])
    best = trust_study.best_probability(truth, sums["age_days"], DAYS, spec.never_close_share)
    won = ((truth["outcome"] == "Won") & (truth["closed_date"] <= as_of + pd.Timedelta(days=DAYS))).to_numpy()
    return {"world": spec.name, "seed": seed, "as_of": f"{as_of:%Y-%m-%d}"} | judged(sums, best, won)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outside", nargs=2, action="append", default=[], metavar=("SEED", "DATE"))
    parser.add_argument("--scenario", type=int, nargs="*", default=[], metavar="SEED")
    parser.add_argument("--never-share", type=float, default=0.3)
    parser.add_argument("--no-cleanup", action="store_true")
    parser.add_argument("--pull-in", type=float, default=0.5)
    parser.add_argument("--base", type=float, default=outside_world.BASE_LOG_ODDS)
    parser.add_argument("--drift", type=float, default=0.0)
    parser.add_argument("--learn-from", type=pd.Timestamp, default=None, metavar="DATE")
    parser.add_argument("--cohort-trend-min-z", type=float, default=None, metavar="Z",
                        help="risk.cohort_trend_min_z for the outside worlds (0: off; default: the shipped rules')")
    args = parser.parse_args(argv)
    rows = [outside(int(seed), pd.Timestamp(day), args.never_share, not args.no_cleanup, args.pull_in,
                    args.learn_from, args.cohort_trend_min_z, base=args.base, drift=args.drift)
            for seed, day in args.outside]
    rows += [scenario(spec, seed) for seed in args.scenario for spec in trust_study.WORLDS]
    frame = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(frame.to_string(index=False))
        print("mean absolute error against the world's own sum:",
              frame[list(WAYS)].abs().mean().round(3).to_dict())


if __name__ == "__main__":
    main()
