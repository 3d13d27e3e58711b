"""Deal risk model: the calibrated probability that an open deal will be won.

No leakage (the full reasoning is in ``risk_features``): the model learns
from closed deals *replayed* on past dates of their open life - age so far,
the stage they were in then and the days spent in it, activities so far -
labelled with how they finally closed, exactly what an open deal shows on
the analysis date. It never sees a closed deal's final ``sales_cycle_days``,
its stage at close (``Closed`` implies the outcome) or any other
outcome-derived column; without a stage history (a plain CSV export) only
creation facts and age so far are used. How long a deal has been open enters
as time-to-event information ("deals open this long so far").

Time-based split, calibration, choice
-------------------------------------
Labelled deals are split by close date, never at random, oldest to newest:
*fit* | *calibrate* | *validate* (the most recent closed deals). Each
candidate pipeline (a regularised logistic regression and gradient boosting)
is fitted on *fit*; its probabilities are calibrated on *calibrate* (sigmoid,
or isotonic once there are enough independent deals) so that 0.3 means won
three times in ten; the candidates are compared on *validate* by the rules'
promotion metric (log loss by default). The model registered is exactly the
one validated. A segment-win-rate baseline is scored on the same rows, and a
new version must beat the champion on the same rows to replace it.
"""

from __future__ import annotations

import hashlib
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from salesintel_assets.domain.models import drift
from salesintel_assets.domain.common import stats
from salesintel_assets.domain.models.features import (FeatureSpec, Prepared, day_numbers, features_for, spec_feasible,
                                                     states_at)
from salesintel_assets.domain.common.rules import RiskRules

# skops refuses unknown types on load; these are the ones our pipelines hold
# beyond the types skops trusts by default (measured, and tested).
SKOPS_TRUSTED_TYPES = (
    "numpy.dtype",
    "functools.partial",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
)
MIN_LEVEL_ROWS = 20  # rarer categories are pooled as "infrequent" by the logistic model


class NotEnoughData(ValueError):
    """Too few labelled deals (or one class missing) to train honestly."""


@contextmanager
def one_thread():
    """Fit and predict on one OpenMP thread: on a busy 2-core machine two
    spinning threads made gradient boosting 5-20x slower (measured)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        yield


# --- Time-based split ---------------------------------------------------------
@dataclass
class Split:
    fit: pd.DataFrame
    calibrate: pd.DataFrame
    validate: pd.DataFrame
    calibration_cutoff: pd.Timestamp  # fit deals closed on or before this
    validation_cutoff: pd.Timestamp   # validation deals closed after this

    def summary(self) -> dict:
        def part(rows):
            return {"rows": len(rows), "deals": int(rows["deal_id"].nunique()),
                    "won_share": round(float(rows["won"].mean()), 4) if len(rows) else None}
        return {"fit": part(self.fit), "calibrate": part(self.calibrate), "validate": part(self.validate),
                "calibration_cutoff": str(self.calibration_cutoff.date()),
                "validation_cutoff": str(self.validation_cutoff.date())}


def time_split(states: pd.DataFrame, labelled: pd.DataFrame, rules: RiskRules) -> Split:
    """Split by the deal's close date (never at random): validation is the most
    recent ``validation_share`` of closed deals, calibration the share before.
    All deals closing on one day fall on the same side."""
    if len(labelled) < rules.min_closed_deals:
        raise NotEnoughData(f"{len(labelled)} closed deals; at least {rules.min_closed_deals} are needed")
    closed = np.sort(labelled["closed_date"].to_numpy())
    n = len(closed)
    validation_cutoff = pd.Timestamp(closed[int(n * (1 - rules.validation_share)) - 1])
    calibration_cutoff = pd.Timestamp(closed[int(n * (1 - rules.validation_share - rules.calibration_share)) - 1])
    when = states["closed_date"]
    split = Split(fit=states[when <= calibration_cutoff],
                  calibrate=states[(when > calibration_cutoff) & (when <= validation_cutoff)],
                  validate=states[when > validation_cutoff],
                  calibration_cutoff=calibration_cutoff, validation_cutoff=validation_cutoff)
    for name in ("fit", "calibrate", "validate"):
        rows = getattr(split, name)
        if len(rows) == 0 or rows["won"].nunique() < 2:
            raise NotEnoughData(f"the {name} period has no rows or only one outcome")
    return split


# --- Candidate pipelines --------------------------------------------------------
def build_pipeline(name: str, spec: FeatureSpec, rules: RiskRules):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import KBinsDiscretizer, OneHotEncoder, OrdinalEncoder, StandardScaler

    categorical, numeric = list(spec.categorical), list(spec.numeric)
    if name == "logistic":
        prep = ColumnTransformer([
            ("levels", OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=MIN_LEVEL_ROWS),
             categorical),
            # quantile bins let the log-odds bend (age, amount are far from linear)
            ("bins", make_pipeline(SimpleImputer(strategy="median"),
                                   KBinsDiscretizer(n_bins=6, strategy="quantile", random_state=rules.seed)),
             numeric),
            ("linear", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        ])
        clf = LogisticRegression(C=rules.logistic_c, max_iter=2000)
    elif name == "gradient_boosting":
        prep = ColumnTransformer([
            ("levels", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                      encoded_missing_value=np.nan), categorical),
            ("raw", "passthrough", numeric),
        ])
        # no early stopping: its random hold-out would mix states of one deal
        clf = HistGradientBoostingClassifier(
            categorical_features=list(range(len(categorical))), max_iter=200, learning_rate=0.05,
            max_leaf_nodes=15, min_samples_leaf=50, l2_regularization=1.0, early_stopping=False,
            random_state=rules.seed)
    else:
        raise ValueError(f"unknown candidate {name!r}")
    return Pipeline([("features", prep), ("classifier", clf)])


@dataclass
class Candidate:
    name: str
    model: object            # a fitted CalibratedClassifierCV around the frozen pipeline
    calibration: str
    metrics: dict            # on the validation rows
    params: dict = field(default_factory=dict)


def fit_calibrated(name: str, fit_rows: pd.DataFrame, calibration_rows: pd.DataFrame, spec: FeatureSpec,
                   rules: RiskRules):
    """Fit on the older deals, calibrate on the next ones; returns (model, method)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    pipeline = build_pipeline(name, spec, rules)
    method = rules.calibration
    if method == "auto":
        deals = calibration_rows["deal_id"].nunique() if "deal_id" in calibration_rows else len(calibration_rows)
        method = "isotonic" if deals >= rules.isotonic_min_deals else "sigmoid"
    with warnings.catch_warnings(), one_thread():
        warnings.simplefilter("ignore")  # e.g. a constant column gives KBinsDiscretizer one bin
        pipeline.fit(fit_rows[spec.columns], fit_rows["won"])
        model = CalibratedClassifierCV(FrozenEstimator(pipeline), method=method)
        model.fit(calibration_rows[spec.columns], calibration_rows["won"])
    return model, method


# Isotonic calibration maps whole score ranges to exactly 0 or 1; no deal is
# certain, and a "0 % chance" would also make log loss infinite.
PROBABILITY_FLOOR = 0.001


def predict(model, features: pd.DataFrame) -> np.ndarray:
    if not len(features):
        return np.zeros(0)
    with one_thread():
        return np.clip(model.predict_proba(features)[:, 1], PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)


def train_candidates(split: Split, spec: FeatureSpec, rules: RiskRules) -> list[Candidate]:
    out = []
    for name in rules.candidates:
        model, method = fit_calibrated(name, split.fit, split.calibrate, spec, rules)
        metrics = drift.evaluate(split.validate["won"], predict(model, split.validate[spec.columns]))
        params = {"candidate": name, "calibration": method, "logistic_c": rules.logistic_c,
                  "features": ",".join(spec.columns), "feature_mode": spec.mode}
        out.append(Candidate(name, model, method, metrics, params))
    return out


def choose(candidates: list[Candidate], metric: str) -> Candidate:
    """The best candidate on the validation rows by the promotion metric."""
    return min(candidates, key=lambda c: drift.loss(c.metrics, metric))


# --- Baseline -----------------------------------------------------------------
@dataclass
class SegmentBaseline:
    """Each deal gets its segment's historical win rate, shrunk to the overall
    rate so small segments do not swing (empirical Bayes)."""

    columns: list[str]
    rates: pd.Series
    overall: float

    @classmethod
    def fit(cls, rows: pd.DataFrame, columns: list[str]) -> "SegmentBaseline":
        deals = rows.drop_duplicates("deal_id")
        table = deals.groupby(columns, observed=True)["won"].agg(["sum", "size"])
        overall = float(deals["won"].mean())
        strength = stats.beta_prior_strength(table["sum"], table["size"])
        rates = pd.Series(stats.shrunk_rate(table["sum"], table["size"], overall, strength), index=table.index)
        return cls(list(columns), rates, overall)

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        if not len(rows):
            return np.zeros(0)
        keys = pd.MultiIndex.from_frame(rows[self.columns]) if len(self.columns) > 1 else rows[self.columns[0]]
        return pd.Series(self.rates.reindex(keys).to_numpy()).fillna(self.overall).to_numpy()


# --- Training and the champion / challenger comparison --------------------------
@dataclass
class Training:
    split: Split
    candidates: list[Candidate]
    chosen: Candidate
    baseline_metrics: dict
    fingerprint: str


def train(prepared: Prepared, rules: RiskRules) -> Training:
    """Split by time, fit and calibrate every candidate, choose on validation,
    and score the segment baseline on the same validation rows."""
    split = time_split(prepared.states, prepared.labelled, rules)
    candidates = train_candidates(split, prepared.spec, rules)
    baseline = SegmentBaseline.fit(pd.concat([split.fit, split.calibrate]), rules.baseline_segment)
    baseline_metrics = drift.evaluate(split.validate["won"], baseline.predict(split.validate))
    return Training(split, candidates, choose(candidates, rules.promotion_metric), baseline_metrics,
                    fingerprint(split, prepared.spec, rules))


@dataclass
class Challenge:
    decision: drift.Decision
    challenger: dict            # metrics on the shared rows
    champion: dict | None
    rows: int


def challenge(training: Training, prepared: Prepared, rules: RiskRules, champion_model=None,
              champion_spec: FeatureSpec | None = None, champion_cutoff: pd.Timestamp | None = None) -> Challenge:
    """Score the new model and the champion on the same validation rows: those
    of deals closed after both models' training labels (a champion trained on
    later data than these rows would be judged on what it has seen)."""
    rows = training.split.validate
    metric = rules.promotion_metric
    new = training.chosen
    if champion_model is None:
        metrics = new.metrics
        return Challenge(drift.champion_decision(metrics, None, metric, rules.min_improvement), metrics, None,
                         len(rows))
    if champion_spec is None or not spec_feasible(champion_spec, prepared.spec):
        metrics = new.metrics
        decision = drift.Decision(True, "promoted: the champion's features are not available in the current data",
                                  metrics[metric], None)
        return Challenge(decision, metrics, None, len(rows))
    if champion_cutoff is not None:
        rows = rows[rows["closed_date"] > champion_cutoff]
    challenger = drift.evaluate(rows["won"], predict(new.model, rows[prepared.spec.columns]))
    if len(rows) == 0 or rows["won"].nunique() < 2:
        decision = drift.Decision(False, "champion kept: no validation deals closed after its training data "
                                  "to compare on fairly", challenger[metric], None)
        return Challenge(decision, challenger, None, len(rows))
    champion = drift.evaluate(rows["won"], predict(champion_model, features_for(rows, prepared.timeline,
                                                                                 champion_spec)))
    return Challenge(drift.champion_decision(challenger, champion, metric, rules.min_improvement), challenger,
                     champion, len(rows))


def newly_closed(prepared: Prepared, deployed: pd.Timestamp, spec: FeatureSpec) -> tuple[pd.DataFrame, np.ndarray]:
    """Deals closed after the champion was deployed, each as it looked when
    the champion first scored it (the deployment day, or creation if later):
    one independent prediction per deal. Returns (features, won)."""
    deals = prepared.labelled[prepared.labelled["closed_date"] > pd.Timestamp(deployed)].reset_index(drop=True)
    day = np.maximum(day_numbers(deals["created_date"]), day_numbers([deployed])[0])
    return states_at(deals, day, prepared.timeline, spec), deals["is_won"].to_numpy(dtype=int)


# --- Fingerprint (skip re-registering an identical model) ---------------------
def fingerprint(split: Split, spec: FeatureSpec, rules: RiskRules) -> str:
    """Changes when the training data, the features or the risk rules change."""
    digest = hashlib.sha256()
    for rows in (split.fit, split.calibrate, split.validate):
        digest.update(pd.util.hash_pandas_object(rows[["deal_id", "snapshot_date", "won"] + spec.columns],
                                                 index=False).to_numpy().tobytes())
    digest.update(rules.model_dump_json(exclude={"bands", "forecast", "drift"}).encode())
    digest.update(spec.mode.encode())
    return digest.hexdigest()[:20]
