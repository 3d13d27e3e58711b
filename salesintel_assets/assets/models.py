"""Models layer: the deal risk model in MLflow (champion / challenger), risk
scores for open deals, the live drift check, and the pipeline forecast with
its backtest. Refreshed daily.

Order within a run: the drift check judges the current champion on deals
closed since it was deployed *before* a new version is trained; scores come
from whichever version is champion after the training run.
"""

import dagster as dg
import numpy as np
import pandas as pd

from salesintel_assets.constants import MODELS
from salesintel_assets.domain.anomalies import quarter_ends
from salesintel_assets.domain.models import curve_judge
from salesintel_assets.domain.models import drift
from salesintel_assets.domain.models import forecast
from salesintel_assets.domain.models import forecast_trust
from salesintel_assets.domain.models import horizons
from salesintel_assets.domain.models import quarter_place
from salesintel_assets.domain.models import segment_changes
from salesintel_assets.domain.models import features as rf
from salesintel_assets.domain.models import risk_model as rm
from salesintel_assets.domain.models.verdict import AGE_BASELINE
from salesintel_assets.domain.models import risk_scores as rs
from salesintel_assets.domain.common import leakage, reruns
from salesintel_assets.domain.common.rules import RiskRules
from salesintel_assets.domain.common.run_memo import RunMemo
from salesintel_assets.domain.models import reuse
from salesintel_assets.domain.models import reporting
from salesintel_assets.domain.warehouse import recency
from salesintel_assets.metadata import fail_after, figure_markdown, frame_metadata, schema_metadata
from salesintel_assets.resources.mlflow import CHALLENGER, CHAMPION, MLflowTracking
from salesintel_assets.resources.settings import SalesintelSettings
from salesintel_assets.resources.warehouse import Warehouse
from salesintel_assets.schemas import models as schemas

FRESHNESS = fail_after(hours=26)
INPUTS = ["fact_deals", "fact_stage_transitions", "raw_activities"]
DRIFT_NUMBERS = ("won", "expected_won", "live_auc", "live_brier", "live_log_loss", "live_ece", "observed_rate",
                 "predicted_rate", "validation_auc", "calibration_p_value")
MODEL_INTEGERS = ["version", "champion_version", "win_horizon_days", "train_rows", "validation_rows", "validation_deals"]


def _asset(model, kinds=("duckdb",), **kwargs):
    return dg.asset(group_name=MODELS, freshness_policy=FRESHNESS, kinds=set(kinds),
                    metadata=schema_metadata(model), **kwargs)


_RUN_REPLAY: RunMemo[rf.Prepared] = RunMemo()
# The model's replays the curve's judge made on past days (deal_risk_model), for forecast_backtest to take.
_RUN_JUDGED: RunMemo[dict] = RunMemo()


def _prepare(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: SalesintelSettings) -> rf.Prepared:
    """The replayed deals the models steps start from, built once per run:
    their inputs do not change within a run, so deal_risk_drift,
    deal_risk_model, deal_risk_scores and forecast_backtest share one read
    and replay of fact_deals (about 6 s each at 1M deals) instead of each
    building the same one. forecast_backtest, the last of them, lets it go."""
    rules, as_of = settings.rules(), settings.analysis_date()

    def replay() -> rf.Prepared:
        # one string object per repeated text value (the frame .df() gives, 0.35 GB lighter at 1M deals)
        fact = warehouse.read_table("fact_deals", reporting.FACT_COLUMNS)
        with warehouse.connect() as con:
            history, activities = reporting.read_timeline_inputs(con)
        prepared = rf.prepare(fact, history, activities, as_of, rules.risk, rules.stages.order, rules.anomalies,
                              _learning_start(fact, as_of, rules.quality.max_quiet_days))
        # a history too short for the rules' horizon trains a shorter one (short_history_fallback)
        return rm.at_horizon(prepared, rules.risk, rm.fitting_horizon(prepared, rules.risk))[0]

    return _RUN_REPLAY.get(_run_key(context, warehouse, settings), replay)


def _run_key(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: SalesintelSettings) -> tuple:
    rules = settings.rules()
    return context.run_id, str(warehouse.home.database), str(settings.analysis_date()), reruns.rules_digest(rules)


def _judged_replays(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: SalesintelSettings) -> dict:
    """This run's replays of the model on past days, ``(candidate, day)`` to ``forecast.Replayed``: the curve's
    judge adds them, the backtest takes them (a run in several processes has none to take and replays again)."""
    return _RUN_JUDGED.get(_run_key(context, warehouse, settings), dict)


def _release_run_values() -> None:
    _RUN_REPLAY.clear()
    _RUN_JUDGED.clear()


def _learning_start(fact: pd.DataFrame, as_of: pd.Timestamp, max_quiet_days: int) -> pd.Timestamp | None:
    """After a stretch whose closes are missing (what closes_recorded_without_gaps warns of), the day the
    models learn from."""
    gap = recency.missing_closes(fact["created_date"], fact["closed_date"], as_of, max_quiet_days)
    return gap.end if gap else None


def _horizon_note(configured: RiskRules, trained: RiskRules) -> str | None:
    """Why the model answers a shorter horizon than the rules file's, in words (None when it does not)."""
    if trained.win_horizon_days == configured.win_horizon_days:
        return None
    return (f"the history is too short for {configured.win_horizon_days}-day win probabilities: the model answers "
            f"won within {trained.win_horizon_days} days (win_probability is for {trained.win_horizon_days} days "
            f"until the history allows {configured.win_horizon_days})")


def _risk_rules(settings: SalesintelSettings, prepared: rf.Prepared) -> RiskRules:
    """The risk rules with the horizon the models are trained for this run."""
    return rm.with_horizon(settings.rules().risk, prepared.horizon)


def _newest_first(table: pd.DataFrame, **extra) -> dict:
    return frame_metadata(table.iloc[::-1], **extra)


# --- Drift ----------------------------------------------------------------------
DRIFT_KEY = ["as_of_date", "model_version", "horizon_days"]
DRIFT_LOGGED = ("new_deals", "won", "expected_won", "live_auc", "live_brier", "live_log_loss", "live_ece",
                "observed_rate", "predicted_rate", "calibration_p_value")


@_asset(schemas.DealRiskDrift, kinds=("duckdb", "mlflow"), deps=INPUTS)
def deal_risk_drift(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: SalesintelSettings,
                    mlflow: MLflowTracking) -> dg.Output[pd.DataFrame]:
    """The champion judged per horizon on its own matured outcomes: every
    deal it scored whose 30-, 90- or H-day window from that day has ended,
    against "won within the window" -- live AUC and calibration, logged to
    MLflow, with a degradation flag (one row per analysis date, version and
    horizon, kept over time for the data team's quarterly review). While no
    window has ended since the champion was deployed there is nothing to
    judge and no data is read (deal_risk_scores says when the champion's
    features are missing)."""
    rules, as_of = settings.rules().risk, pd.Timestamp(settings.analysis_date())
    previous = warehouse.read_table("deal_risk_drift")
    if previous is not None and "horizon_days" not in previous:
        previous = previous.assign(horizon_days=pd.NA)   # rows from before drift was judged per horizon
    champion = mlflow.version_by_alias(CHAMPION)
    base = {"as_of_date": as_of, "model_version": None, "deployed_as_of": pd.NaT, "horizon_days": None,
            "new_deals": 0, "degraded": False, "mlflow_run_id": None} | {k: float("nan") for k in DRIFT_NUMBERS}
    if champion is None:
        rows = [base | {"status": "no champion", "reason": "no champion model registered yet"}]
    else:
        spec = rf.FeatureSpec.from_tags(champion.tags)
        deployed = pd.Timestamp(champion.tags.get("as_of"))
        base |= {"model_version": champion.version, "deployed_as_of": deployed}
        model = mlflow.load_model(CHAMPION)
        # A champion deployed within its shortest horizon has no matured outcome yet (a same-day re-run):
        # the verdict needs no data, so the replay is not prepared.
        matured = any(drift.window_ended(deployed, as_of, d) for d in drift.judged_horizons(model, champion.tags, rules))
        prepared = _prepare(context, warehouse, settings) if matured else None
        if prepared is not None and not rf.spec_feasible(spec, prepared.spec):
            rows = [base | {"status": "incompatible", "reason": "the champion's features are not in the current data"}]
        else:
            checks = drift.horizon_checks(model, champion.tags, getattr(prepared, "fact", None), as_of, deployed,
                                          getattr(prepared, "timeline", None), spec, rules)
            rows = [base | check for check in checks]
            _log_drift(mlflow, champion, as_of, rows)
    for row in rows:
        if row["degraded"]:
            context.log.warning(f"deal risk model v{row['model_version']} degraded at {row['horizon_days']} days: "
                                f"{row['reason']}")
    table = previous
    for row in rows:
        table = reporting.append_row(table, row, DRIFT_KEY, integers=["model_version", "new_deals", "horizon_days"])
    judged = pd.DataFrame(rows)
    meta = {"status": _worst(judged["status"]), "degraded": bool(judged["degraded"].any()),
            "by_horizon": dg.MetadataValue.md(judged[["horizon_days", "status", "new_deals", "live_auc",
                                                      "observed_rate", "predicted_rate", "reason"]]
                                              .round(4).to_markdown(index=False))}
    return dg.Output(table, metadata=_newest_first(table, **meta))


def _worst(statuses: pd.Series) -> str:
    for status in ("degraded", "ok", "not enough data"):
        if (statuses == status).any():
            return status
    return str(statuses.iloc[0])


def _log_drift(mlflow: MLflowTracking, champion, as_of: pd.Timestamp, rows: list[dict]) -> None:
    """One MLflow run per check (metrics per horizon), and the verdict on the version."""
    judged = [r for r in rows if r["new_deals"]]
    if not judged:
        return
    metrics = {f"h{r['horizon_days']}d_{k}": float(r[k]) for r in judged for k in DRIFT_LOGGED}
    metrics |= {f"h{r['horizon_days']}d_degraded": float(r["degraded"]) for r in judged}
    status = _worst(pd.Series([r["status"] for r in rows]))
    run_id = mlflow.log_run(f"drift {as_of:%Y-%m-%d} v{champion.version}", metrics,
                            {"kind": "drift", "model_version": champion.version, "as_of": str(as_of.date()),
                             "status": status, "reason": "; ".join(f"{r['horizon_days']} days: {r['reason']}"
                                                                   for r in rows)})
    for row in rows:
        row["mlflow_run_id"] = run_id
    mlflow.tag_version(champion.version, {"live_status": status, "live_checked_as_of": str(as_of.date())}
                       | {f"live_auc_{r['horizon_days']}d": round(r["live_auc"], 4) for r in judged
                          if r["live_auc"] == r["live_auc"]})


# --- Training, registry, champion / challenger ------------------------------------
@_asset(schemas.DealRiskModel, kinds=("duckdb", "mlflow", "scikitlearn"), deps=INPUTS + ["deal_risk_drift"])
def deal_risk_model(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: SalesintelSettings,
                    mlflow: MLflowTracking) -> dg.Output[pd.DataFrame]:
    """Train the win-probability model on deals closed by the analysis date
    (time-split, calibrated, chosen on the most recent deals), track it in
    MLflow and register it in ``deal_risk``: it becomes the ``champion`` only
    if it beats the current champion on the same validation rows, otherwise
    the ``challenger``. One row per training run."""
    previous = warehouse.read_table("deal_risk_model")
    champion = mlflow.version_by_alias(CHAMPION)
    reused, kept = _kept_version(warehouse, settings, mlflow, champion)
    if kept and previous is not None and previous["version"].eq(reused.version).any():
        context.log.info(f"deal_risk v{reused.version} {kept}")
        status = kept.split(":")[0]
        row = previous[previous["version"].eq(reused.version)].iloc[-1].to_dict() | {"status": status,
                                                                                     "decision": kept}
        table = reporting.append_row(previous, row, ["as_of_date", "fingerprint"], integers=MODEL_INTEGERS)
        return dg.Output(table, metadata=_newest_first(table, status=status, decision=kept,
                                                       version=int(reused.version)))
    prepared = _prepare(context, warehouse, settings)
    rules = _risk_rules(settings, prepared)
    note = _horizon_note(settings.rules().risk, rules)
    base = {"as_of_date": prepared.as_of, "feature_mode": prepared.spec.mode,
            "champion_version": champion.version if champion else None, "version": None, "run_id": None,
            "win_horizon_days": rules.win_horizon_days, "horizon_note": note,
            "quarter_note": quarter_ends.moved_note(settings.rules().anomalies.seasonality.fiscal_year_start_month,
                                                    prepared.spec.fiscal_start_month)}
    try:
        training = rm.train(prepared, rules)
    except rm.NotEnoughData as exc:
        reason = str(exc) if prepared.learn_from is None else \
            f"{exc}; closes before {prepared.learn_from:%Y-%m-%d} are missing, so the model learns from then on"
        context.log.warning(f"deal risk model not trained: not enough data ({reason})")
        # Every column of the schema, empty: a CRM's first run without a model still has a valid table.
        row = dict.fromkeys(schemas.DealRiskModel.to_schema().columns) | base | {
            "status": "not enough data", "decision": f"not enough data: {reason}", "fingerprint": "none"}
        table = reporting.append_row(previous, row, ["as_of_date", "fingerprint"], integers=MODEL_INTEGERS)
        return dg.Output(table, metadata=_newest_first(table, status="not enough data", reason=reason,
                                                       closed_deals=len(prepared.labelled)))
    training = curve_judge.settled(training, prepared, rules, _judged_replays(context, warehouse, settings))
    training = quarter_place.settled(training, prepared, rules.seed)
    chosen, split, verdict = training.chosen, training.split, training.verdict
    reach, judgement = training.age_reach, training.curve_judgement
    if reach is not None and reach.short:   # a young CRM whose open deals are older than the fit's states
        reading = reach.sentence(rules.win_horizon_days, judgement)
        note = base["horizon_note"] = "; ".join(filter(None, [note, reading]))
    elif judgement is not None and judgement.serves:
        note = base["horizon_note"] = "; ".join(filter(None, [note, judgement.sentence()]))
    if place := quarter_place.sentence(training.place_levels):
        note = base["horizon_note"] = "; ".join(filter(None, [note, place]))
    if cohort := training.cohort_trend.sentence():
        note = base["horizon_note"] = "; ".join(filter(None, [note, cohort]))
    served_by = chosen.name
    if training.model.curve_serves:
        served_by = rm.AGE_CURVE if judgement.own_level else rm.AGE_CURVE_AT_MODEL_LEVEL
    validation_p = rm.predict(rm.judged(training.model), split.validate[prepared.spec.columns])
    level_se = forecast.validation_level_se(validation_p, split.validate)
    existing = mlflow.find_version("fingerprint", training.fingerprint)
    if existing is not None:
        decision = drift.Decision(False, f"unchanged: version {existing.version} was trained on the same data, "
                                         f"features and rules", chosen.metrics[rules.promotion_metric], None)
        challenge, version, status = None, existing, "unchanged"
    else:
        challenge = _challenge(training, prepared, rules, mlflow, champion)
        decision, status = challenge.decision, "trained"
        version = mlflow.log_model_run(
            training.model, split.validate[prepared.spec.columns].head(5),
            params=chosen.params | reporting.run_params(rules, training, prepared),
            metrics=reporting.run_metrics(training, challenge, level_se),
            tags=prepared.spec.to_tags() | {
                "as_of": str(prepared.as_of.date()), "fit_label_cutoff": str(split.validation_cutoff.date()),
                "fingerprint": training.fingerprint, "candidate": chosen.name, "calibration": chosen.calibration,
                "served_by": served_by,
                "validation_auc": round(chosen.metrics["auc"], 5), "level_se": round(level_se, 5),
                "win_horizon_days": rules.win_horizon_days, **({"horizon_note": note} if note else {}),
                **({"learned_from": str(prepared.learn_from.date())} if prepared.learn_from is not None else {}),
                **{f"validation_auc_{days}d": round(m["auc"], 5) for days, m in training.horizon_metrics.items()},
                "decision": decision.reason, "feature_description": prepared.spec.describe(),
                "target": rm.target_name(rules), "model_verdict": verdict.label, "verdict_reason": verdict.reason,
                "excluded_columns": ",".join(sorted(leakage.excluded(prepared.leaks))) or "none"}
            # the rules file's own rules: a same-day re-run compares them before it knows the horizon that fits
            | reuse.training_tags(settings.rules().risk, reruns.code_fingerprint(),
                                  pd.Timestamp.now(tz="UTC").tz_localize(None))
            | ({"no_better_than_deal_age": "true"} if verdict.reason.startswith("no better than deal age") else {}),
            trusted_types=rm.SKOPS_TRUSTED_TYPES, run_name=f"deal_risk {prepared.as_of:%Y-%m-%d}",
            datasets={"training": split.fit, "validation": split.validate})
        mlflow.set_alias(CHAMPION if decision.promote else CHALLENGER, version.version)
        context.log.info(f"deal_risk v{version.version}: {decision.reason}")
    if not verdict.usable:
        context.log.warning(f"deal risk model is weak: {verdict.reason}")
    now_champion = mlflow.version_by_alias(CHAMPION)
    row = base | {
        "status": status, "version": version.version, "run_id": version.run_id, "candidate": chosen.name,
        "served_by": served_by,
        "calibration": chosen.calibration, **{k: chosen.metrics[k] for k in ("auc", "brier", "log_loss", "ece")},
        **{f"baseline_{k}": training.baseline_metrics[k] for k in ("auc", "brier", "log_loss", "ece")},
        "challenger_score": decision.challenger_score, "champion_score": decision.champion_score,
        "promotion_metric": rules.promotion_metric, "decision": decision.reason,
        "model_verdict": verdict.label, "verdict_reason": verdict.reason,
        **{f"age_baseline_{k}": training.baselines[AGE_BASELINE][k] for k in ("auc", "log_loss")},
        "excluded_columns": ",".join(sorted(leakage.excluded(prepared.leaks))) or None,
        "champion_version": now_champion.version if now_champion else None, "level_se": level_se,
        "fingerprint": training.fingerprint, "fit_label_cutoff": split.validation_cutoff,
        "train_rows": len(split.fit), "validation_rows": len(split.validate),
        "validation_deals": int(split.validate["deal_id"].nunique()),
    }
    table = reporting.append_row(previous, row, ["as_of_date", "fingerprint"], integers=MODEL_INTEGERS)
    return dg.Output(table, metadata=_model_metadata(table, row, training, prepared, mlflow, validation_p, rules))


def _kept_version(warehouse: Warehouse, settings: SalesintelSettings, mlflow: MLflowTracking, champion):
    """(version, why it is kept instead of training) for a same-day re-run
    with few changes -- the latest version trained on this analysis date,
    champion or not (a weak model is never champion) -- or (None, None)."""
    version = reuse.latest_trained([champion, mlflow.version_by_alias(CHALLENGER)], settings.analysis_date())
    if version is None:
        return None, None
    since = pd.Timestamp(version.tags[reuse.TRAINED_AT])
    changed, total = warehouse.query(
        "SELECT (SELECT count(*) FROM raw_deals WHERE _pulled_at > ?) + (SELECT count(*) FROM raw_deal_deletions "
        "WHERE _pulled_at > ?), (SELECT count(*) FROM raw_deals)", [since, since]).iloc[0].tolist()
    drift_rows = warehouse.read_table("deal_risk_drift", ["model_version", "degraded"])
    degraded = drift_rows is not None and bool(
        drift_rows.loc[drift_rows["model_version"].eq(version.version), "degraded"].fillna(False).astype(bool).any())
    reason = reuse.reuse_reason(version.tags, settings.analysis_date(), settings.rules().risk,
                                reruns.code_fingerprint(), int(changed), int(total), degraded)
    return (version, reason) if reason else (None, None)


def _challenge(training, prepared, rules, mlflow: MLflowTracking, champion) -> rm.Challenge:
    if champion is None or not training.verdict.usable:
        return rm.challenge(training, prepared, rules)
    cutoff = champion.tags.get("fit_label_cutoff")
    return rm.challenge(training, prepared, rules, mlflow.load_model(CHAMPION),
                        rf.FeatureSpec.from_tags(champion.tags), pd.Timestamp(cutoff) if cutoff else None,
                        champion.tags.get("target", "won eventually"))


def _model_metadata(table, row, training, prepared, mlflow: MLflowTracking, p: np.ndarray,
                    rules: RiskRules) -> dict:
    compare = pd.DataFrame([{"model": f"{c.name} ({c.calibration})", **reporting.metrics("", c.metrics)}
                            for c in training.candidates]
                           + [{"model": f"baseline: {name}", **reporting.metrics("", m)} for name, m in training.baselines.items()])
    validate = training.split.validate   # p: the model's probabilities on these rows
    extra = {
        "model_verdict": row["model_verdict"], "verdict_reason": row["verdict_reason"],
        "excluded_columns": dg.MetadataValue.md("\n".join(f"- {t}" for t in leakage.sentences(prepared.leaks))
                                                or "none"),
        "status": row["status"], "decision": row["decision"], "version": row["version"],
        "champion_version": row["champion_version"], "promotion_metric": row["promotion_metric"],
        "challenger_score": row["challenger_score"], "champion_score": row["champion_score"],
        "candidate": row["candidate"], "served_by": row["served_by"],
        "feature_mode": prepared.spec.mode,
        "learned_from": str(prepared.learn_from.date()) if prepared.learn_from is not None else None,
        "features": dg.MetadataValue.md(prepared.spec.describe() + ": `" + "`, `".join(prepared.spec.columns) + "`"),
        "validation": dg.MetadataValue.md(compare.to_markdown(index=False)),
        "split": dg.MetadataValue.json(training.split.summary()),
        "served_levels": dg.MetadataValue.md(reporting.levels_note(training.model, rules.level_trend_quarters)),
        "cohort_trend": dg.MetadataValue.md(reporting.cohort_note(training)),
        "calibration_table": dg.MetadataValue.md(drift.calibration_table(validate["won"], p).round(3)
                                                 .to_markdown(index=False)),
        "reliability": figure_markdown(reporting.reliability_figure(validate["won"], p)),
        "mlflow_run_id": row["run_id"],
    }
    if not mlflow.tracking_uri:
        extra["mlflow_ui"] = dg.MetadataValue.md(f"`{mlflow.ui_command()}`")
    return _newest_first(table, **{k: v for k, v in extra.items() if v is not None})


# --- Scores ---------------------------------------------------------------------------
@_asset(schemas.DealRiskScores, kinds=("duckdb", "mlflow"), deps=INPUTS + ["deal_risk_model"])
def deal_risk_scores(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: SalesintelSettings,
                     mlflow: MLflowTracking) -> dg.MaterializeResult:
    """Every open deal scored by the champion (``models:/deal_risk@champion``):
    win probability, risk band, revenue at risk, the three factors that move
    its probability most (signed change in win probability) and the month it
    should close if won. The table is written here, not returned: a run keeps
    every returned value in memory until it ends."""
    rules, prepared = settings.rules().risk, _prepare(context, warehouse, settings)
    open_frame = rf.open_deals(prepared.fact, prepared.as_of)
    champion = _scoring_version(warehouse, mlflow)
    note = None
    if len(prepared.labelled) < rules.min_closed_deals:
        note = f"not enough data: {len(prepared.labelled)} closed deals, {rules.min_closed_deals} needed"
    elif champion is None:
        note = "no model registered"
    elif not rf.spec_feasible(rf.FeatureSpec.from_tags(champion.tags), prepared.spec):
        note = "the champion's features are not in the current data"
    elif not len(open_frame):
        note = "no open deals to score"
    if note:
        context.log.info(f"deal_risk_scores empty: {note}")
        warehouse.write_table("deal_risk_scores", rs.empty_scores())
        return dg.MaterializeResult(metadata=frame_metadata(rs.empty_scores(), note=note,
                                                            open_deals=len(open_frame)))
    # the horizon the model answers (shorter than the rules' for a model of a short history)
    spec = rf.FeatureSpec.from_tags(champion.tags)
    rules = rm.with_horizon(rules, int(champion.tags.get("win_horizon_days", rules.win_horizon_days)))
    features = rf.open_states(open_frame, prepared.timeline, spec, prepared.as_of)
    alias = CHAMPION if champion.version == getattr(mlflow.version_by_alias(CHAMPION), "version", None) else CHALLENGER
    verdict = champion.tags.get("model_verdict", "usable")
    scores = rs.score_open_deals(mlflow.load_model(alias), open_frame, features,
                                 _explainer(warehouse, prepared, spec, champion), rules, champion.version,
                                 prepared.as_of, horizons.known_wins(prepared.fact, prepared.as_of), verdict=verdict,
                                 previous=warehouse.read_table("deal_risk_scores"),
                                 context=f"{reruns.code_fingerprint()} {getattr(champion, 'run_id', '')}")
    bands = scores["risk_band"].value_counts()
    auc = float(champion.tags.get("validation_auc", "nan"))
    signal = {"champion_validation_auc": auc, "model_verdict": verdict}
    if verdict != "usable":
        signal["note"] = (f"weak model: {champion.tags.get('verdict_reason', 'no better than its baselines')}; "
                          "its probabilities feed the forecast but are not quoted in alerts")
    elif auc == auc and auc < rules.weak_signal_auc:
        signal["note"] = (f"weak signal: the champion barely tells won from lost deals (validation AUC {auc:.2f}); "
                          "probabilities stay near the base rate and bands mostly reflect it")
    warehouse.write_table("deal_risk_scores", scores)
    return dg.MaterializeResult(metadata=frame_metadata(
        scores.sort_values("revenue_at_risk", ascending=False), model_version=champion.version, **signal,
        open_deals=len(scores), **{f"{b}_risk_deals": int(bands.get(b, 0)) for b in schemas.RISK_BANDS},
        pipeline_amount=round(float(scores["deal_amount"].sum()), 2),
        revenue_at_risk=round(float(scores["revenue_at_risk"].sum()), 2),
        mean_win_probability=round(float(scores["win_probability"].mean()), 4),
        deals_predicted=scores.attrs.get("rescored", len(scores)),
        reason_weights="change in win probability (fraction) when the factor is set to typical values"))


EXPLAINER_STATE = "risk_score_explainer"


def _explainer(warehouse: Warehouse, prepared: rf.Prepared, spec: rf.FeatureSpec, version_run) -> rs.Explainer:
    """The reasons' reference (typical deal, history of each value) belongs to
    the model version on its analysis date, like the model: computed by the
    first scoring with that version that day and read back by later ones, so
    a same-day re-run that keeps the version keeps the scores of unchanged deals."""
    key = f"v{version_run.version} {getattr(version_run, 'run_id', '')} {prepared.as_of.date()}"
    with warehouse.connect() as con:
        explainer = rs.Explainer.from_json(reruns.read_state(con).get(EXPLAINER_STATE), spec, key)
    if explainer is None:
        explainer = rs.Explainer.from_states(prepared.states, spec)
        with warehouse.connect() as con:
            reruns.write_state(con, **{EXPLAINER_STATE: explainer.to_json(key)})
    return explainer


def _scoring_version(warehouse: Warehouse, mlflow: MLflowTracking):
    """The champion; without one, the latest trained version when it was not
    promoted because it is weak (its scores then say so in model_verdict)."""
    champion = mlflow.version_by_alias(CHAMPION)
    if champion is not None:
        return champion
    challenger = mlflow.version_by_alias(CHALLENGER)
    return challenger if challenger is not None and challenger.tags.get("model_verdict") == "weak" else None


def _lean_note(level: forecast.LevelReading) -> str:
    if not level.dates:
        return "no backtest to measure the model's level against what happened"
    lean = "high" if level.lean < 0 else "low"
    return (f"past 90-day forecasts leaned {lean} by {abs(level.lean):.3f} in log odds on average over "
            f"{level.dates} backtest dates; not removed (a past window's lean is mostly its own luck: removing "
            "it forecast worse on fresh scenario worlds), the interval is sized by those misses")


# --- Backtest and forecast ----------------------------------------------------------------
@_asset(schemas.ForecastBacktest, kinds=("duckdb", "scikitlearn"), deps=INPUTS + ["deal_risk_model"])
def forecast_backtest(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: SalesintelSettings,
                      mlflow: MLflowTracking) -> dg.Output[pd.DataFrame]:
    """The 90-day forecast replayed at past analysis dates (a model retrained
    on what was known then) for every deal open then -- those that never
    closed included -- against what they did in the next 90 days: win-rate
    error in points (design target +/- 5) and whether the 80 % intervals held,
    each date sized by what the earlier dates measured; ``mean_level_shift``
    is the past lean (negative: high; shown, not removed).
    Kept as it is when this run kept the model version (a same-day re-run with few changes)."""
    models = warehouse.read_table("deal_risk_model")
    stored = warehouse.read_table("forecast_backtest")
    kept = reuse.kept_backtest(models, stored, settings.analysis_date(),
                               settings.rules().risk.forecast.backtest_horizon_days)
    if kept:
        _release_run_values()
        return dg.Output(stored, metadata=frame_metadata(stored, kept=kept))
    prepared = _prepare(context, warehouse, settings)
    rules = _risk_rules(settings, prepared)
    candidate, served_by = rules.candidates[0], None
    if models is not None and "candidate" in models and models["candidate"].notna().any():
        latest = models[models["candidate"].notna()].iloc[-1]
        candidate, served_by = str(latest["candidate"]), latest.get("served_by")
    table = forecast.backtest(prepared.fact, prepared.timeline, prepared.spec, rules, prepared.closed_stage,
                              candidate, prepared.as_of, snapshots=prepared.snapshots,
                              curve_serves=served_by == rm.AGE_CURVE,
                              replays=_judged_replays(context, warehouse, settings))
    del prepared
    _release_run_values()   # deal_risk_scores ran before (steps that are ready together run in name order)
    ok = table[table["status"] == "ok"]
    meta = {"model": rm.AGE_CURVE if served_by == rm.AGE_CURVE else candidate,
            "target_points": rules.forecast.win_rate_target_points, "dates_ok": len(ok)}
    if len(ok):
        meta |= {"mean_abs_error_points": round(float(ok["error_points"].abs().mean()), 2),
                 "within_target_share": round(float(ok["within_target"].astype(bool).mean()), 3),
                 "mean_level_shift": round(float(ok["level_shift"].mean()), 4),
                 "won_deals_interval_coverage": round(float(ok["won_deals_in_interval"].astype(bool).mean()), 3),
                 "revenue_interval_coverage": round(float(ok["revenue_in_interval"].astype(bool).mean()), 3)}
    else:
        meta["note"] = "not enough data at any backtest date"
    meta["late_window_sigma"] = round(forecast.late_change(table), 4)
    return dg.Output(table, metadata=frame_metadata(table, **meta))


@_asset(schemas.PipelineForecast, deps=["deal_risk_scores", "forecast_backtest", "deal_risk_model", "fact_deals"])
def pipeline_forecast(warehouse: Warehouse, settings: SalesintelSettings) -> dg.Output[pd.DataFrame]:
    """Expected won deals and revenue of the open pipeline by close month
    (every deal's chance spread over the months where earlier quarters' wins
    came), by segment and by horizon, with an 80 % interval from simulations that share
    one pipeline-wide log-odds shift per draw (its sd measured in the
    backtest), so deals do not count as independent coins."""
    _release_run_values()   # no models step after this one replays deals
    rules = settings.rules().risk
    scores = warehouse.read_table("deal_risk_scores")
    if scores is None or not len(scores):
        empty = forecast.empty_forecast()
        return dg.Output(empty, metadata=frame_metadata(empty, note="no scored open deals"))
    backtest, models = warehouse.read_table("forecast_backtest"), warehouse.read_table("deal_risk_model")
    version = int(scores["model_version"].iloc[0])
    rules = rm.with_horizon(rules, reporting.version_horizon(models, version, rules.win_horizon_days))
    level, revenue_level, source = forecast.level_readings(
        models, backtest, lambda: warehouse.query(reporting.CLOSED_OUTCOMES_SQL), version,
        rules.forecast.interval, forecast.steps_per_window(rules.forecast))
    as_of = pd.Timestamp(scores["as_of_date"].iloc[0])
    by_horizon = horizons.scored_horizons(scores, rules.win_horizon_days)
    # one read of the closes both windows need: the wins' timing and the segments that moved lately
    timing_after, segment_after = horizons.timing_window(as_of)[0], forecast.segment_window(as_of, rules)[0]
    closes = warehouse.query(reporting.SEGMENT_CLOSES_SQL, [min(timing_after, segment_after), as_of])
    won = closes.loc[closes["is_won"].astype(bool) & (closes["closed_date"] > timing_after),
                     ["created_date", "closed_date"]]
    keyed, timing = horizons.horizon_probabilities(by_horizon, as_of,
                                                   settings.rules().anomalies.seasonality.fiscal_year_start_month, won)
    segment_closes = closes[closes["closed_date"] > segment_after].reset_index(drop=True)
    cleaned = segment_changes.clean_ups(segment_closes, as_of, rules.forecast.segment_changes)
    changes = segment_changes.find(segment_closes, as_of, rules.forecast.segment_changes, cleaned)
    reach = "90d" if "90d" in keyed else "30d"   # a rules file's 30-day horizon on a short history: 30 days only
    level, revenue_level, segment_shift = forecast.segment_corrected(level, revenue_level, scores, keyed[reach],
                                                                     changes)
    table = forecast.forecast(scores, horizons.month_spread(by_horizon, as_of, rules.win_horizon_days, won),
                              level.sigma, revenue_level.sigma, rules, keyed, segment_shift, segment_shift)
    total = table[table["grouping"] == "total"].iloc[0]
    by_key = table[table["grouping"] == "horizon"].set_index("key")
    horizon_meta = {f"won_deals_{k}": [round(float(r["won_deals_p10"]), 1), round(float(r["expected_won_deals"]), 1),
                                       round(float(r["won_deals_p90"]), 1)] for k, r in by_key.iterrows()}
    return dg.Output(table, metadata=frame_metadata(
        table, **horizon_meta, open_deals=int(total["open_deals"]),
        expected_won_deals=float(total["expected_won_deals"]),
        expected_won_revenue=float(total["expected_won_revenue"]),
        revenue_interval=[float(total["revenue_p10"]), float(total["revenue_p90"])],
        interval=rules.forecast.interval, sigma=round(level.sigma, 4), revenue_sigma=round(revenue_level.sigma, 4),
        past_lean=round(level.lean, 4), past_lean_note=_lean_note(level),
        **{f"model_expected_won_deals_{reach}": round(float(keyed[reach].sum()), 1)},
        trust_note=forecast_trust.trust_note(*(float(by_key.loc[reach, c]) for c in
                                         ("expected_won_deals", "won_deals_p10", "won_deals_p90")),
                                       backtest, rules.forecast.interval, forecast.steps_per_window(rules.forecast))
        if reach == "90d" else "the model answers 30 days only: no 90-day forecast to judge",
        sigma_source=source, quarter_end_timing=horizons.timing_note(timing),
        segment_changes=segment_changes.note(changes, cleaned),
        segment_changes_table=dg.MetadataValue.md(segment_changes.changes_table(changes).to_markdown(index=False)),
        by_month=figure_markdown(reporting.forecast_figure(table))))
