"""Benchmark of the models layer's domain work.

    python benchmarks/bench_models.py --deals 100000 1000000

``benchmark(fact_deals, stage_history=...)`` times what the models assets do
on a given fact table: replaying closed deals (training states), training and
calibrating both candidates with the baseline, scoring every open deal with
its three reasons and expected close month, the pipeline forecast
simulation, the drift check, the backtest, and (optionally) logging and
registering the model in a throw-away MLflow store. Without a stage history
the model falls back to creation facts and age (as for a CSV export), which
is cheaper and not representative of the sample CRM: pass
``fact_stage_transitions`` (deal_id, stage, entered_date). Run as a script it
builds fact_deals and the stage history from the sample CRM (without
activities) for each size.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import pandas as pd

from sample_tables import sample_inputs


def _timed(figures: dict, key: str, fn, *args, **kwargs):
    began = time.perf_counter()
    out = fn(*args, **kwargs)
    figures[key] = time.perf_counter() - began
    return out


def benchmark(fact_deals: pd.DataFrame, stage_history: pd.DataFrame | None = None,
              activities: pd.DataFrame | None = None, backtest: bool = True,
              mlflow: bool = True) -> dict[str, float]:
    """Seconds of each step of the models layer on ``fact_deals``."""
    from salesintel_assets.domain.models import drift
    from salesintel_assets.domain.models import forecast
    from salesintel_assets.domain.models import horizons
    from salesintel_assets.domain.models import features as rf
    from salesintel_assets.domain.models import risk_model as rm
    from salesintel_assets.domain.models import risk_scores as rs
    from salesintel_assets.domain.common.rules import load_rules

    rules = load_rules()
    risk = rules.risk
    as_of = pd.Timestamp(fact_deals["as_of_date"].iloc[0])
    history = stage_history if stage_history is not None else pd.DataFrame(
        {"deal_id": pd.Series(dtype=object), "stage": pd.Series(dtype=object),
         "entered_date": pd.Series(dtype="datetime64[ns]")})
    acts = activities if activities is not None else pd.DataFrame(
        {"deal_id": pd.Series(dtype=object), "activity_date": pd.Series(dtype="datetime64[ns]")})
    figures: dict[str, float] = {"deals": float(len(fact_deals))}

    prepared = _timed(figures, "replay_states_s", rf.prepare, fact_deals, history[["deal_id", "stage", "entered_date"]],
                      acts, as_of, risk, rules.stages.order)
    training = _timed(figures, "train_s", rm.train, prepared, risk)
    figures["training_total_s"] = figures["replay_states_s"] + figures["train_s"]

    began = time.perf_counter()
    open_frame = rf.open_deals(prepared.fact, as_of)
    features = rf.open_states(open_frame, prepared.timeline, prepared.spec, as_of)
    won = horizons.known_wins(prepared.fact, as_of)
    explainer = rs.Explainer.from_states(prepared.states, prepared.spec)
    figures["score_prepare_s"] = time.perf_counter() - began
    scores = _timed(figures, "score_with_reasons_s", rs.score_open_deals, training.chosen.model, open_frame,
                    features, explainer, risk, 1, as_of, won)
    figures["scoring_total_s"] = figures["score_prepare_s"] + figures["score_with_reasons_s"]
    _timed(figures, "forecast_s", forecast.forecast, scores,
           horizons.month_spread(horizons.scored_horizons(scores, risk.win_horizon_days), as_of,
                                 risk.win_horizon_days, won), 0.15, 0.2, risk)

    began = time.perf_counter()
    deployed = as_of - pd.Timedelta(days=45)
    new_features, won = rm.newly_closed(prepared, deployed, prepared.spec)
    drift.live_check(won, rm.predict(training.chosen.model, new_features), training.chosen.metrics["auc"],
                     risk.drift.min_new_deals, risk.drift.max_auc_drop, risk.drift.max_calibration_gap,
                     risk.drift.alpha)
    figures["drift_s"] = time.perf_counter() - began
    if backtest:
        _timed(figures, "backtest_s", forecast.backtest, prepared.fact, prepared.timeline, prepared.spec, risk,
               prepared.closed_stage, training.chosen.name, as_of)
    if mlflow:
        figures |= _mlflow_figures(training, prepared)

    figures |= {
        "training_states": float(len(prepared.states)), "open_deals_scored": float(len(scores)),
        "validation_auc": training.chosen.metrics["auc"], "validation_ece": training.chosen.metrics["ece"],
        "chosen_is_gradient_boosting": float(training.chosen.name == "gradient_boosting"),
        "with_stage_history": float(prepared.spec.mode == rf.STAGE_HISTORY),
    }
    return figures


def _mlflow_figures(training, prepared) -> dict[str, float]:
    """Store creation, logging + registering, and loading by alias, in a temp home."""
    from salesintel_assets.domain.models import risk_model as rm
    from salesintel_assets.resources.mlflow import CHAMPION, MLflowTracking
    from salesintel_assets.resources.warehouse import SalesintelHome

    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        tracking = MLflowTracking(home=SalesintelHome(path=folder))
        _timed(figures, "mlflow_store_init_s", tracking.experiment_id)
        rows = training.split.validate[prepared.spec.columns]
        version = _timed(figures, "mlflow_log_register_s", tracking.log_model_run, training.chosen.model,
                         rows.head(5), {"candidate": training.chosen.name}, {"val_auc": training.chosen.metrics["auc"]},
                         prepared.spec.to_tags(), rm.SKOPS_TRUSTED_TYPES, "benchmark")
        tracking.set_alias(CHAMPION, version.version)
        model = _timed(figures, "mlflow_load_by_alias_s", tracking.load_model, CHAMPION)
        assert np.allclose(rm.predict(model, rows.head(100)), rm.predict(training.chosen.model, rows.head(100)))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, nargs="+", default=[100_000])
    parser.add_argument("--no-backtest", action="store_true")
    args = parser.parse_args()
    for n in args.deals:
        fact, transitions = sample_inputs(n)
        history = transitions[["deal_id", "stage", "entered_date"]]
        result = benchmark(fact, stage_history=history, backtest=not args.no_backtest)
        print(json.dumps({k: round(v, 3) for k, v in result.items()}), flush=True)


if __name__ == "__main__":
    main()
