"""Scenario study of the risk model and the forecast on worlds shaped like
real CRMs: per world, how well open deals are ranked (the model against deal
age alone and against the generator's own probabilities), how close the
90-day forecast of wins comes to the truth and whether the 80 % interval
holds it, and whether a leaking column was named and excluded.

Run: ``python -m salesintel_assets_tests.trust_study [--deals 6000] [--seeds 1 2]
[--worlds seasonal_export] [--end-date 2026-05-15]`` (about a minute per world
and seed at 6,000 deals on a busy 2-core machine). The analysis date is the
worlds' end date, by default a quarter's last day.

"Best achievable" is the generator's truth: the probability that a deal
open at age a is won within 90 days, from its win probability at creation
and the generator's cycle-length laws for won, lost and lingering deals
(``best_probability``). It knows the latent win probability, which no CRM
records, but not the stage or activity trail, so a model using them can
exceed it on stage-history worlds; on export-only worlds it is a fair
ceiling (on ``seasonal_export`` and ``fiscal_seasonal_export``, whose wins bunch up at quarter ends, and
``seasonal_spike_export``, whose pushed wins land in a quarter's last three days, only
roughly: the laws leave the push out). ``auc_oracle`` is a looser bound that also knows which deals the
generator made linger.

Forecast columns: ``model_90d`` is the plain sum of the open deals' 90-day
probabilities (``model_error`` against the truth), ``past_lean`` the lean
the backtest measured out of sample (log odds; shown, not removed),
``sigma`` the sd of the shared shift around the forecast (including ``late_sigma``, the level change the latest
30-day windows that have ended show beyond noise, which the 90-day backtest cannot see yet); ``expected_90d``,
``p10_90d``..``p90_90d`` and ``forecast_error`` are what ``pipeline_forecast``
says (``half_width`` the interval's half width relative to it; ``lean_removed_error`` what removing
``past_lean`` would have given); ``best_error`` is the error of the generator's own probabilities (the
luck of one 90-day window: even they miss by several per cent); ``error_30d``/``in_30d`` and ``error_qe``/``in_qe`` the same for wins
within 30 days and by the quarter's end (``error_qe_line`` what a straight line in days between the model's
horizons gave the quarter's end, as earlier versions read it); ``close_month_miss`` the forecast by close
month's absolute misses, summed over the months of the main horizon, as a share of the wins.
``unplanted_*`` judge the same forecast on the deals the sample CRM's planted end-of-history problems
leave alone (no model can foresee those);
``planted_excess`` is what the forecast expected beyond what came on the deals
they touch, as a share of all wins (the part of ``forecast_error`` they cause).
``segment_changes`` lists the segments whose latest closes moved beyond the
rest of the business, with the log-odds shift the forecast applies to their
open deals. ``backtest_coverage`` is the share of the ``backtest_judged`` past dates (those
with at least two earlier dates whose windows had ended) whose 80 % interval
held what closed.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from salesintel_assets.domain.common import leakage
from salesintel_assets.domain.common.rules import load_rules
from salesintel_assets.domain.ingestion import pulls as ingestion
from salesintel_assets.domain.ingestion import quality
from salesintel_assets.domain.models import features as rf
from salesintel_assets.domain.models import forecast
from salesintel_assets.domain.models import forecast_trust
from salesintel_assets.domain.models import horizons
from salesintel_assets.domain.models import risk_model as rm
from salesintel_assets.domain.models import segment_changes
from salesintel_assets.domain.warehouse import upserts as warehouse
from salesintel_assets.sources import sample_crm

FORECAST_DAYS = 90


@dataclass(frozen=True)
class WorldSpec:
    name: str
    never_close_share: float = 0.0
    leaking_amount: bool = False
    export_only: bool = False  # a plain CSV export: no stage history, no activities
    quarter_end_seasonality: bool = False
    push_last_days: int | None = None   # pushed wins land in the quarter's last this many days (default 21)
    fiscal_start_month: int = 1   # the pushes' quarters (2: they end in January, April, July, October)


WORLDS = (
    WorldSpec("sample"),
    WorldSpec("plain_export", export_only=True),   # every deal closes in time, and no stage history
    WorldSpec("never_closing", never_close_share=0.5),
    WorldSpec("never_closing_export", never_close_share=0.5, export_only=True),
    WorldSpec("leaking_amount", never_close_share=0.3, leaking_amount=True, export_only=True),
    WorldSpec("seasonal_export", never_close_share=0.3, export_only=True, quarter_end_seasonality=True),
    # pushed wins crowd the quarter's last three days, the spike many real CRMs show
    WorldSpec("seasonal_spike_export", never_close_share=0.3, export_only=True, quarter_end_seasonality=True,
              push_last_days=3),
    # a fiscal year starting in February: pushes land where the default rules' quarters do not end
    WorldSpec("fiscal_seasonal_export", never_close_share=0.3, export_only=True, quarter_end_seasonality=True,
              fiscal_start_month=2),
)


def generate(spec: WorldSpec, n_deals: int, seed: int, end_date: date) -> sample_crm.SampleWorld:
    """The world's truth, ending on ``end_date``."""
    return sample_crm.generate_world(n_deals, seed, end_date=end_date, never_close_share=spec.never_close_share,
                                     leaking_amount=spec.leaking_amount, with_activities=not spec.export_only,
                                     quarter_end_seasonality=spec.quarter_end_seasonality,
                                     quarter_end_last_days=spec.push_last_days,
                                     fiscal_year_start_month=spec.fiscal_start_month)


def world_tables(spec: WorldSpec, n_deals: int, seed: int, end_date: date = sample_crm.SAMPLE_END_DATE) -> dict:
    """The world's truth, and fact_deals / stage history / activities as the
    warehouse would hold them on the world's end date (the analysis date)."""
    rules = load_rules()
    world = generate(spec, n_deals, seed, end_date)
    snap = sample_crm.snapshot(world)
    clean = quality.validate_deals(ingestion.conform_raw(ingestion.as_export_text(snap.deals)), rules).clean
    as_of = pd.Timestamp(world.end_date)
    history = snap.stage_history.iloc[:0] if spec.export_only else snap.stage_history
    fact = warehouse.build_fact_deals(clean, history, snap.activities, rules, as_of)
    return {"world": world, "fact": fact, "history": history, "activities": snap.activities, "rules": rules,
            "as_of": as_of}


def _survival(days, median, sigma, upper) -> np.ndarray:
    """P(cycle > days) for the generator's clipped log-normal cycle law."""
    from scipy.stats import norm

    days = np.asarray(days, dtype=float)
    sf = norm.sf((np.log(np.maximum(days, 1e-9)) - np.log(median)) / sigma)
    return np.where(days >= upper, 0.0, sf)


def best_probability(truth: pd.DataFrame, age: np.ndarray, days: int, linger_share: float = 0.0) -> np.ndarray:
    """P(won within ``days`` | open at ``age``) under the generator's laws:
    a would-be-lost deal lingers with ``linger_share`` (never closed, or
    closed 90-360 days late)."""
    g = sample_crm
    factor = truth["product_type"].map(g.PRODUCT_CYCLE_FACTOR).to_numpy(float)
    p = truth["win_probability"].to_numpy(float)
    won_now = _survival(age, g.WON_CYCLE_MEDIAN_DAYS * factor, g.CYCLE_SIGMA, g.CYCLE_RANGE[1])
    won_later = _survival(age + days, g.WON_CYCLE_MEDIAN_DAYS * factor, g.CYCLE_SIGMA, g.CYCLE_RANGE[1])

    def lost_survival(a):
        out = np.zeros(len(p))
        for stage, weight in enumerate(g.LOST_STAGE_WEIGHTS):
            median = g.LOST_CYCLE_MEDIAN_DAYS[stage] * (factor if stage >= 2 else 1.0)
            out += weight * _survival(a, median, g.CYCLE_SIGMA, g.LOST_CYCLE_MAX_DAYS[stage])
        return out

    delays = np.linspace(*g.LINGER_CLEANUP_DAYS, 28)
    late = np.mean([lost_survival(np.maximum(age - d, 0.0)) * (age > d) + (age <= d) for d in delays], axis=0)
    lingering = g.LINGER_NEVER_SHARE + (1 - g.LINGER_NEVER_SHARE) * late
    lost_now = (1 - linger_share) * lost_survival(age) + linger_share * lingering
    still_open = p * won_now + (1 - p) * lost_now
    return np.where(still_open > 0, p * (won_now - won_later) / np.maximum(still_open, 1e-12), 0.0)


def close_month_miss(by_horizon, as_of, main: int, won_known, truth) -> float:
    """How far the forecast by close month is from the wins each month
    brought (within the main horizon): the sum of the months' absolute
    misses as a share of the wins."""
    spread = horizons.month_spread(by_horizon, as_of, main, won_known)
    closed = pd.to_datetime(truth["closed_date"])
    won = ((truth["outcome"] == "Won") & (closed <= pd.Timestamp(as_of) + pd.Timedelta(days=main))).to_numpy()
    actual = pd.Series(won.astype(float)).groupby(closed.dt.strftime("%Y-%m").to_numpy()).sum()
    actual = actual.reindex(spread.months).fillna(0.0).to_numpy()
    return round(float(np.abs(spread.p.sum(axis=0) - actual).sum() / max(actual.sum(), 1)), 3)


def _auc(y, score) -> float:
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y, dtype=int)
    return float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else float("nan")


def measure(spec: WorldSpec, n_deals: int, seed: int, end_date: date = sample_crm.SAMPLE_END_DATE) -> dict:
    t = world_tables(spec, n_deals, seed, end_date)
    rules, as_of, world = t["rules"], t["as_of"], t["world"]
    prepared = rf.prepare(t["fact"], t["history"], t["activities"], as_of, rules.risk, rules.stages.order,
                          rules.anomalies)
    training = rm.train(prepared, rules.risk)
    open_frame = rf.open_deals(prepared.fact, as_of)
    features = rf.open_states(open_frame, prepared.timeline, prepared.spec, as_of)
    by_horizon = rm.predict_horizons(training.model, features)

    truth = world.deals.set_index("deal_id").reindex(open_frame["deal_id"])
    end = as_of + timedelta(days=FORECAST_DAYS)
    won_90 = ((truth["outcome"] == "Won") & (truth["closed_date"] <= end)).to_numpy()
    lingering = truth["lingering"].fillna(False).to_numpy(bool) if "lingering" in truth else np.zeros(len(truth), bool)
    age = open_frame["age_days"].to_numpy(float)
    best = best_probability(truth, age, FORECAST_DAYS, spec.never_close_share)
    oracle = np.where(lingering, 0.0, best_probability(truth, age, FORECAST_DAYS))

    backtest = forecast.backtest(prepared.fact, prepared.timeline, prepared.spec, rules.risk, prepared.closed_stage,
                                 training.chosen.name, as_of)
    ok = backtest[backtest["status"] == "ok"]
    judged = ok[ok["judged_by_dates"] >= 2]   # judged forward in time, as today's forecast is
    judged_p = rm.predict(rm.judged(training.model), training.split.validate[prepared.spec.columns])
    level_se = forecast.validation_level_se(judged_p, training.split.validate)
    level, revenue_level = forecast.readings_from(ok.to_dict("records"), level_se, rules.risk.forecast.interval,
                                                  forecast.steps_per_window(rules.risk.forecast))
    late = forecast.late_change(backtest)   # widens the interval as pipeline_forecast does
    level, revenue_level = forecast.widened(level, late), forecast.widened(revenue_level, late)
    scored = open_frame.assign(win_probability=by_horizon[rules.risk.win_horizon_days])
    changes = segment_changes.find(forecast.closes_known(prepared.fact, as_of, rules.risk), as_of,
                                   rules.risk.forecast.segment_changes)   # as pipeline_forecast reads them
    p90 = horizons.within_days(by_horizon, FORECAST_DAYS)
    level, revenue_level, segment_shift = forecast.segment_corrected(level, revenue_level, open_frame, p90, changes)

    won_known = horizons.known_wins(prepared.fact, as_of)   # what pipeline_forecast reads for the timing of wins

    def horizon_rows(frame, probabilities, shift):
        keyed, _ = horizons.horizon_probabilities(probabilities, as_of, won=won_known)
        table = forecast.forecast(frame, np.full(len(frame), "-"), level.sigma, revenue_level.sigma, rules.risk,
                                  keyed, shift, shift)
        return table[table["grouping"] == "horizon"].set_index("key")

    rows = horizon_rows(scored, by_horizon, segment_shift)
    row90 = rows.loc["90d"]
    other_horizons = {}
    for key, last_day in (("30d", as_of + timedelta(days=30)), ("qe", horizons.quarter_end(as_of))):
        row = rows.loc["quarter_end" if key == "qe" else key]
        won = int(((truth["outcome"] == "Won") & (truth["closed_date"] <= last_day)).sum())
        other_horizons |= {f"error_{key}": round(float(row["expected_won_deals"]) / max(won, 1) - 1, 3),
                           f"in_{key}": bool(row["won_deals_p10"] <= won <= row["won_deals_p90"])}
    # what a straight line in days between the model's horizons gave the quarter's end (earlier versions)
    line = horizons.within_days(by_horizon, (horizons.quarter_end(as_of) - pd.Timestamp(as_of)).days)
    other_horizons["error_qe_line"] = round(float(forecast.shifted(line, segment_shift).sum()) / max(won, 1) - 1, 3)
    other_horizons["close_month_miss"] = close_month_miss(by_horizon, as_of, rules.risk.win_horizon_days, won_known,
                                                          truth)
    actual = int(won_90.sum())
    # The sample CRM plants problems that start near its end date (a segment's
    # win rate drops, a burst of poor partner leads): no model can foresee
    # them, so the forecast is also judged on the deals they leave alone.
    plain = (truth["planted"].fillna("") == "").to_numpy()
    plain_row = horizon_rows(scored[plain], {h: p[plain] for h, p in by_horizon.items()},
                             segment_shift[plain]).loc["90d"]
    plain_actual = int(won_90[plain].sum())
    findings = prepared.leaks or []
    return {
        "world": spec.name, "seed": seed, "open_deals": len(open_frame), "verdict": training.verdict.label,
        "auc_model_90d": _auc(won_90, by_horizon[90]),
        "auc_model_main": _auc(won_90, by_horizon[rules.risk.win_horizon_days]),
        "auc_age": _auc(won_90, -open_frame["age_days"].to_numpy(float)),
        "auc_best": _auc(won_90, best), "auc_oracle": _auc(won_90, oracle),
        "won_90d": actual, "model_90d": round(float(by_horizon[FORECAST_DAYS].sum()), 1),
        "past_lean": round(level.lean, 3), "sigma": round(level.sigma, 3), "late_sigma": round(late, 3),
        "expected_90d": round(float(row90["expected_won_deals"]), 1),
        "p10_90d": float(row90["won_deals_p10"]), "p90_90d": float(row90["won_deals_p90"]),
        "model_error": round(float(by_horizon[FORECAST_DAYS].sum()) / max(actual, 1) - 1, 3),
        "best_error": round(float(best.sum()) / max(actual, 1) - 1, 3),
        "forecast_error": round(float(row90["expected_won_deals"]) / max(actual, 1) - 1, 3),
        # what removing the past lean (as earlier versions did) would have given
        "lean_removed_error": round(float(forecast.shifted(p90, level.lean + segment_shift).sum()) / max(actual, 1)
                                    - 1, 3),
        "in_interval": bool(row90["won_deals_p10"] <= actual <= row90["won_deals_p90"]),
        "unplanted_error": round(float(plain_row["expected_won_deals"]) / max(plain_actual, 1) - 1, 3),
        "unplanted_in_interval": bool(plain_row["won_deals_p10"] <= plain_actual <= plain_row["won_deals_p90"]),
        "planted_excess": round((float(row90["expected_won_deals"]) - float(plain_row["expected_won_deals"])
                                 - (actual - plain_actual)) / max(actual, 1), 3),
        "half_width": round((float(row90["won_deals_p90"]) - float(row90["won_deals_p10"])) / 2
                            / max(float(row90["expected_won_deals"]), 1e-9), 3),
        "backtest_coverage": round(float(judged["won_deals_in_interval"].astype(bool).mean()), 2) if len(judged) else None,
        "backtest_judged": len(judged),
        "trust_note": forecast_trust.trust_note(float(row90["expected_won_deals"]), float(row90["won_deals_p10"]),
                                                float(row90["won_deals_p90"]), backtest, rules.risk.forecast.interval,
                                                forecast.steps_per_window(rules.risk.forecast)),
        **other_horizons,
        "segment_changes": "; ".join(f"{c.label} {c.shift:+.2f}" for c in changes) or "-",
        "leaks_named": ",".join(sorted(leakage.excluded(findings))) or "-",
        "amount_excluded": "deal_amount" not in prepared.spec.columns,
        "max_open_probability": round(float(by_horizon[rules.risk.win_horizon_days].max()), 3),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=6000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--worlds", nargs="+", default=[w.name for w in WORLDS])
    parser.add_argument("--end-date", type=date.fromisoformat, default=sample_crm.SAMPLE_END_DATE,
                        help="the analysis date (default the sample CRM's, a quarter's last day)")
    args = parser.parse_args(argv)
    rows = [measure(spec, args.deals, seed, args.end_date) for seed in args.seeds for spec in WORLDS
            if spec.name in args.worlds]
    frame = pd.DataFrame(rows)
    frame["vs_best"] = (frame["auc_model_90d"] / frame["auc_best"]).round(3)
    frame["over_age"] = (frame["auc_model_90d"] - frame["auc_age"]).round(3)
    with pd.option_context("display.width", 250, "display.max_columns", 40):
        print(frame.drop(columns="trust_note").round(3).to_string(index=False))
    for _, row in frame.iterrows():   # what the run says about the 90-day forecast
        print(f"{row['world']} seed {row['seed']}: {row['trust_note']}")


if __name__ == "__main__":
    main()
