"""What the models-layer assets store and show beside their tables: history
tables kept one row per run, the SQL that reads their inputs, the figures in
their metadata. Plain Python, no Dagster."""

from __future__ import annotations

import numpy as np
import pandas as pd

from salesintel_assets.domain.common.tables import TABLE_SCHEMA, relation_or_empty
from salesintel_assets.domain.models import drift
from salesintel_assets.domain.models.verdict import AGE_BASELINE, validation_fold

FACT_COLUMNS = ["deal_id", "created_date", "closed_date", "sales_rep_id", "industry", "region", "product_type",
                "lead_source", "deal_stage", "deal_amount", "is_open", "is_won", "needs_review", "age_days",
                "days_in_stage"]
METRIC_KEYS = ("auc", "brier", "log_loss", "ece", "observed_rate", "predicted_rate")


# --- Inputs -------------------------------------------------------------------------
def read_timeline_inputs(con) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(stage history, activities): what the replay reads besides fact_deals."""
    history = con.sql("SELECT deal_id, stage, entered_date FROM " + relation_or_empty(
        con, "fact_stage_transitions", "SELECT NULL::VARCHAR AS deal_id, NULL::VARCHAR AS stage, "
                                       "NULL::TIMESTAMP AS entered_date LIMIT 0")).df()
    activities = con.sql("SELECT deal_id, activity_date FROM " + relation_or_empty(
        con, "raw_activities", "SELECT NULL::VARCHAR AS deal_id, NULL::TIMESTAMP AS activity_date LIMIT 0")).df()
    return history, activities


# Closed deals in a window of close dates (after, up to]: what segment_changes reads.
SEGMENT_CLOSES_SQL = (f"SELECT created_date, closed_date, is_won, industry, region, product_type, lead_source "
                      f"FROM {TABLE_SCHEMA}.fact_deals WHERE NOT is_open AND NOT needs_review "
                      f"AND closed_date > created_date AND closed_date > ? AND closed_date <= ?")
CLOSED_OUTCOMES_SQL = (f"SELECT is_won, closed_date FROM {TABLE_SCHEMA}.fact_deals "
                       f"WHERE NOT is_open AND closed_date IS NOT NULL")


# --- History tables (one row per run, idempotent) -------------------------------------
def append_row(previous, row: dict, key: list[str], integers=()) -> pd.DataFrame:
    """Add one row to a history table, replacing a row with the same key (re-runs are idempotent)."""
    new = pd.DataFrame([row])
    if previous is not None and len(previous):
        same = np.logical_and.reduce([_matches(previous[k], row[k]) for k in key])
        columns = list(dict.fromkeys([*previous.columns, *new.columns]))
        parts = [part.dropna(axis=1, how="all") for part in (previous[~same], new)]   # all-NA parts carry no dtype
        new = pd.concat([part for part in parts if len(part)], ignore_index=True).reindex(columns=columns)
    for col in integers:
        if col in new:
            new[col] = pd.to_numeric(new[col]).astype("Int64")
    for col in new.columns:  # numbers that arrived as objects (None beside floats) become numeric
        values = new[col].dropna()
        if new[col].dtype == object and len(values) and values.map(_is_number).all():
            new[col] = pd.to_numeric(new[col], errors="coerce")
    return new.reset_index(drop=True)


def version_horizon(models: pd.DataFrame | None, version: int, default: int) -> int:
    """The main horizon (days) a model version was trained for, by its latest
    ``deal_risk_model`` row (``default`` without one)."""
    if models is None or "win_horizon_days" not in models or "version" not in models:
        return int(default)
    days = models.loc[_matches(models["version"], version), "win_horizon_days"].dropna()
    return int(days.iloc[-1]) if len(days) else int(default)


def _matches(column: pd.Series, value) -> np.ndarray:
    if value is None or (isinstance(value, float) and value != value) or value is pd.NaT:
        return column.isna().to_numpy()
    return (column == value).fillna(False).to_numpy(dtype=bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))


def metrics(prefix: str, values: dict) -> dict:
    """The comparable metrics of an evaluation, rounded, with a prefix."""
    return {f"{prefix}{k}": round(float(v), 5) for k, v in values.items() if k in METRIC_KEYS and v == v}


# --- Figures ----------------------------------------------------------------------------
def reliability_figure(y, p):
    from matplotlib.figure import Figure

    table = drift.calibration_table(y, p)
    fig = Figure(figsize=(4.2, 4))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    ax.plot(table["predicted"], table["observed"], marker="o", label="model (validation)")
    ax.set_xlabel("predicted win probability")
    ax.set_ylabel("observed rate (won within the horizon)")
    ax.set_title("Calibration on the most recent snapshots")
    ax.legend(loc="upper left")
    return fig


def forecast_figure(table: pd.DataFrame):
    from matplotlib.figure import Figure

    months = table[table["grouping"] == "close_month"]
    fig = Figure(figsize=(6, 3.2))
    ax = fig.subplots()
    x = np.arange(len(months))
    ax.bar(x, months["expected_won_revenue"], color="#4c72b0", label="expected won revenue")
    # the interval is drawn around its own middle: a month resting on a few unlikely big deals has its
    # expected revenue above its 90th percentile (no win in nine draws of ten), where bars around the
    # expectation would need a negative length
    ax.errorbar(x, (months["revenue_p10"] + months["revenue_p90"]) / 2,
                yerr=(months["revenue_p90"] - months["revenue_p10"]) / 2,
                fmt="none", ecolor="black", capsize=4, label="80 % interval")
    ax.set_xticks(x, months["key"])
    ax.set_ylabel("revenue")
    ax.set_title("Open pipeline: expected won revenue by close month")
    ax.legend(loc="upper right")
    return fig


def run_params(rules, training, prepared) -> dict:
    """The MLflow run's parameters: the rules that shaped it and the split."""
    split = training.split.summary()
    return {"as_of": str(prepared.as_of.date()), "snapshot_every_days": rules.snapshot_every_days,
            "max_training_rows": rules.max_training_rows, "max_fit_rows": rules.max_fit_rows,
            "level_trend_quarters": rules.level_trend_quarters,   # 0: the trend_level_<h>d metrics are off, not flat
            "cohort_trend_min_z": rules.cohort_trend_min_z,   # 0: the cohort trend is measured, never served
            "fit_sample": "stratified by snapshot month x outcome, in proportion",
            "backtest_max_fit_rows": rules.forecast.backtest_max_fit_rows, "calibration_share": rules.calibration_share,
            "validation_share": rules.validation_share, "promotion_metric": rules.promotion_metric,
            "calibration_cutoff": split["calibration_cutoff"], "validation_cutoff": split["validation_cutoff"],
            "fit_rows": split["fit"]["rows"], "calibration_rows": split["calibrate"]["rows"],
            "validation_rows": split["validate"]["rows"], "validation_deals": split["validate"]["deals"],
            "baseline_segment": ",".join(rules.baseline_segment)}


def levels_note(model, trend_quarters: int) -> str:
    """In words: each horizon's served level, its parts, and what they do to a deal's odds.

    ``trend_quarters`` is ``risk.level_trend_quarters``: 0 means the quarters'
    trend line is off, which the note says instead of a measured-looking x1.00."""
    trend_on = trend_quarters > 0
    lines = [f"- {days} days: odds x{np.exp(level):.2f} (the calibration and validation periods' level "
             f"x{np.exp(part):.2f}, the latest windows' x{np.exp(recent):.2f}"
             + (f", the trend's x{np.exp(trend):.2f}" if trend_on else "")
             + f", the cohort trend's x{np.exp(cohort):.2f})"
             for days, level, part, recent, trend, cohort in sorted(model.level_parts())]
    if getattr(model, "curve_serves", False):
        moved = "\n".join(f"- {days} days: odds x{np.exp(level):.2f}"
                          for days, level in zip(model.horizons, model.curve_levels))
        if getattr(model, "curve_by_clock", False):   # False on a model saved before the clock moved the curve
            how = ("at its own level, moved by the day's place in the quarter as the models read the quarter's "
                   "clock (today against the quarter's average) on the open deals:\n" + moved)
        elif any(model.curve_levels):
            how = "moved to the models' served level on the open deals:\n" + moved
        else:
            how = "unmoved (served_by: age_curve)."
        return (f"The age curve answers every horizon, {how}\nThe models' own levels, kept for the record:\n"
                + "\n".join(lines))
    trend = ("then along the line through the latest quarters' levels to the analysis date where they keep moving "
             "beyond noise" if trend_on else
             "and not along a line through the quarters' levels (off: risk.level_trend_quarters is 0)")
    return ("Each horizon's probabilities are moved to the level of the calibration and validation periods "
            "together, shrunk toward the model's own for noise, then to the level of its validation snapshots "
            f"(the latest finished windows) where it differs beyond noise, {trend}, and on to today's open deals' "
            "creation dates where the win rate moves with them beyond noise (the cohort trend); x1.00 means none "
            "applied (within noise, or too few snapshots):\n" + "\n".join(lines))


def cohort_note(training) -> str:
    """In words: the win rate's trend by creation date and whether it moved the levels."""
    trend = getattr(training, "cohort_trend", None)   # None on a training made before cohort trends
    return "The win rate by creation date was not measured." if trend is None else trend.note()


def run_metrics(training, challenge, level_se: float) -> dict:
    """The MLflow run's metrics: the chosen model, every candidate and
    baseline on the validation snapshots, the model and deal age on those of
    deals the fit never saw (``unseen_``, what the verdict reads), each
    horizon, its four served levels and its move for today's place in the
    quarter, the cohort trend behind one of them, the age curve's judgement
    on replayed days (``curve_judge``) and the challenge."""
    out = metrics("val_", training.chosen.metrics) | metrics("baseline_", training.baseline_metrics)
    out |= metrics("age_baseline_", training.baselines[AGE_BASELINE])
    unseen = validation_fold(training.folds)
    if unseen is not None:
        out |= metrics("unseen_val_", unseen.evaluate())
        out |= metrics("unseen_age_baseline_", unseen.evaluate(AGE_BASELINE))
        out["unseen_validation_rows"] = len(unseen.rows)
    out["model_usable"] = float(training.verdict.usable)
    out["no_better_than_deal_age"] = float(training.verdict.reason.startswith("no better than deal age"))
    for days, values in training.horizon_metrics.items():
        out |= metrics(f"h{days}d_val_", values)
    if training.model is not None:   # the four levels the deployed horizons carry (0: none applied)
        for days, _, part, recent, trend, cohort in training.model.level_parts():
            out |= {f"calibration_level_{days}d": part, f"recent_level_{days}d": recent, f"trend_level_{days}d": trend,
                    f"cohort_level_{days}d": cohort}
    cohort_trend = getattr(training, "cohort_trend", None)
    if cohort_trend is not None and np.isfinite(cohort_trend.se):   # measured: its slope, noise and what served
        out |= {"cohort_trend_per_year": cohort_trend.per_year, "cohort_trend_se": cohort_trend.se,
                "cohort_trend_served_per_year": cohort_trend.served_per_year, "cohort_trend_deals": cohort_trend.deals}
    for level in training.place_levels:   # today's place in the quarter (``quarter_place``)
        out |= {f"place_level_{level.days}d": level.shift, f"place_change_{level.days}d": level.change,
                f"place_quarters_{level.days}d": level.quarters}
    for candidate in training.candidates:
        out |= metrics(f"{candidate.name}_val_", candidate.metrics)
    judgement = training.curve_judgement
    if judgement is not None and judgement.days:   # the age curve alone against the model on past days' open deals
        out |= {"replayed_curve_auc": judgement.curve_auc, "replayed_model_auc": judgement.model_auc,
                "replayed_age_auc": judgement.age_auc, "replayed_days": judgement.days,
                "replayed_auc_gap_se": judgement.gap_se, "replayed_age_auc_gap_se": judgement.age_gap_se,
                "age_curve_serves": float(judgement.serves)}
    if challenge is not None:
        out |= metrics("challenger_", challenge.challenger)
        if challenge.champion is not None:
            out |= metrics("champion_", challenge.champion)
        out["comparison_rows"] = challenge.rows
    return out | {"level_se": level_se}
