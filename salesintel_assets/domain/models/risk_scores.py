"""Deal risk scores: each open deal's win probability, risk band, revenue at
risk and the three factors behind it, in plain words with their weight."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from salesintel_assets.domain.models.features import (CALENDAR_FEATURES, QUARTER_AGE_FEATURE, UNKNOWN_STAGE,
                                                     FeatureSpec)
from salesintel_assets.domain.models.risk_model import HorizonModel, predict, predict_horizons
from salesintel_assets.domain.models import horizons
from salesintel_assets.domain.common.reruns import digest, rules_digest
from salesintel_assets.domain.common.rules import RiskRules


# --- Reasons ------------------------------------------------------------------
REASON_COUNT = 3
PROBABILITY = "__probability__"
EVIDENCE_BINS = 5
_LABELS = {
    "industry": "{v} industry", "region": "{v} region", "product_type": "{v} product",
    "lead_source": "{v}-sourced", "sales_rep_id": "Owned by {v}", "stage": "In {v}",
    "deal_amount": "Deal size {v:,.0f}", "age_days": "Open {v:.0f} days",
    "days_in_stage": "{v:.0f} days in current stage", "activities_so_far": "{v:.0f} activities logged",
    "activities_last_14d": "{v:.0f} activities in the last 14 days",
    "days_since_activity": "No activity for {v:.0f} days",
    "won_cycle_share": "Open longer than {v:.0%} of its product's wins took",
}

_SCOPES = {  # how a numeric factor's range of closed deals is named
    "deal_amount": "deals of {}", "age_days": "deals open {} days", "days_in_stage": "deals {} days in a stage",
    "activities_so_far": "deals with {} activities", "activities_last_14d": "deals with {} recent activities",
    "days_since_activity": "deals quiet for {} days",
    "won_cycle_share": "such deals ({})",
}
_SHARES = {"won_cycle_share"}  # numeric factors that are shares: their ranges are said in percent
# Columns derived from a factor move with it when it is made typical (a deal
# of typical age also has a typical age at the latest quarter end).
_TIED = {"age_days": (QUARTER_AGE_FEATURE,)}


def _distinct(frame: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Each row's code and the distinct rows (missing values are values too)."""
    if frame.shape[1] == 1:
        codes, values = pd.factorize(frame.iloc[:, 0], use_na_sentinel=False)
        return codes, pd.DataFrame({frame.columns[0]: values})
    codes = frame.groupby(list(frame.columns), sort=False, dropna=False).ngroup().to_numpy()
    return codes, frame.drop_duplicates().reset_index(drop=True)


@dataclass
class Explainer:
    """Why a deal scores as it does, against a *typical deal* (the most
    common value of each categorical factor and the median of each numeric
    one over the replayed states). A factor's weight is a change in win
    probability (fraction; -0.12 = 12 points lower), the average of two
    views: what the deal gains or loses when only this factor is made
    typical, and what the typical deal gains or loses when it takes only this
    factor's value. The second view keeps a factor visible when the deal is
    hopeless for several reasons at once (making any single one typical would
    not move a probability of ~0). The words quote history: how often closed
    deals with that value (or in that range) were won."""

    spec: FeatureSpec
    typical: pd.DataFrame   # one row: the typical deal
    evidence: dict          # feature -> DataFrame(level|low/high, deals, rate)
    overall: float

    @classmethod
    def from_states(cls, states: pd.DataFrame, spec: FeatureSpec) -> "Explainer":
        evidence, typical = {}, {}
        deals_won = states.drop_duplicates("deal_id")["won"]
        for col in spec.categorical:
            per = states[["deal_id", col, "won"]].drop_duplicates(["deal_id", col])
            evidence[col] = per.groupby(col)["won"].agg(deals="size", rate="mean")
            common = states[col].mode()
            typical[col] = [common.iloc[0] if len(common) else UNKNOWN_STAGE]
        for col in spec.numeric:
            values = states[col].dropna()
            edges = np.unique(np.nanquantile(values, np.linspace(0, 1, EVIDENCE_BINS + 1))) if len(values) else []
            evidence[col] = _bin_rates(states, col, np.asarray(edges, dtype=float))
            typical[col] = [float(values.median()) if len(values) else 0.0]
        return cls(spec, pd.DataFrame(typical)[spec.columns], evidence,
                   float(deals_won.mean()) if len(deals_won) else float("nan"))

    def to_json(self, key: str) -> str:
        """The explainer as JSON under ``key`` (floats written exactly, so it reads back the same)."""
        return json.dumps({"key": key, "columns": self.spec.columns, "overall": self.overall,
                           "typical": self.typical.iloc[0].tolist(),
                           "evidence": {c: {"name": t.index.name} | t.to_dict("split") for c, t in self.evidence.items()}})

    @classmethod
    def from_json(cls, text: str | None, spec: FeatureSpec, key: str) -> "Explainer | None":
        """The explainer stored under ``key`` for ``spec``'s features, or None."""
        stored = json.loads(text) if text else {}
        if stored.get("key") != key or stored.get("columns") != spec.columns:
            return None
        evidence = {c: pd.DataFrame(t["data"], index=pd.Index(t["index"], name=t["name"]),
                                    columns=t["columns"]) for c, t in stored["evidence"].items()}
        typical = pd.DataFrame([stored["typical"]], columns=spec.columns)
        return cls(spec, typical, evidence, float(stored["overall"]))

    def digest(self) -> str:
        return digest(self.to_json(""))

    def weights(self, model, features: pd.DataFrame, probabilities: np.ndarray | None = None,
                chunk: int = 200_000) -> pd.DataFrame:
        """Signed weight of every factor for every row (probability scale),
        plus ``PROBABILITY``: the deal's own win probability (``probabilities``
        when the caller already has them). Each view predicts only what can
        differ: the typical deal once per distinct value of a factor, and a
        deal with one factor made typical only when its value is not typical
        already (otherwise it is the deal itself)."""
        factors = [c for c in self.spec.columns if c not in CALENDAR_FEATURES]   # the day's context: no reason
        if not len(features):
            return pd.DataFrame({c: np.zeros(0) for c in factors + [PROBABILITY]})
        features = features.reset_index(drop=True)[list(self.spec.columns)]
        parts = {}

        def views():   # made as the batches take them: at most a batch of them is held at once
            yield self.typical
            if probabilities is None:
                yield features
            for col in factors:
                cols = [col] + [c for c in _TIED.get(col, ()) if c in features]
                codes, values = _distinct(features[cols])
                usual = self.typical[cols].iloc[0]
                differs = ~features[cols].eq(usual).all(axis=1).to_numpy(dtype=bool)
                parts[col] = (codes, differs)
                yield self.typical.take(np.zeros(len(values), dtype=np.int64)).assign(
                    **{c: values[c].to_numpy() for c in cols})                 # typical deal, this factor's value
                yield features[differs].assign(**usual.to_dict())              # the deal, this factor made typical

        predicted = iter(_predict_views(model, views(), chunk))
        reference = next(predicted)[0]
        base = next(predicted) if probabilities is None else np.asarray(probabilities, dtype=float)
        frame = {}
        for col, (codes, differs) in parts.items():
            alone = next(predicted)[codes] - reference
            made_typical = base.copy()
            made_typical[differs] = next(predicted)
            frame[col] = 0.5 * ((base - made_typical) + alone)
        return pd.DataFrame(frame).assign(**{PROBABILITY: base})

    def describe(self, feature: str, value) -> str:
        """Plain words: the factor's value and how such deals fared."""
        table = self.evidence.get(feature)
        try:
            label = _LABELS[feature].format(v=value)
        except (ValueError, TypeError):
            label = f"{feature} {value}"
        if table is None or not len(table):
            return label
        if feature in self.spec.categorical:
            if value not in table.index:
                return f"{label}: no closed deals like it yet"
            row = table.loc[value]
            said = f"{label}: wins {row['rate']:.0%}"
        else:
            if value != value:
                return label
            pos = int(np.clip(np.searchsorted(table["high"].to_numpy(), value, side="left"), 0, len(table) - 1))
            row = table.iloc[pos]
            low, high = ((f"{row['low']:.0%}", f"{row['high']:.0%}") if feature in _SHARES
                         else (f"{row['low']:,.0f}", f"{row['high']:,.0f}"))
            if pos == len(table) - 1:
                span = f"{low} or more"
            elif pos == 0:
                span = f"up to {high}"
            else:
                span = f"{low}-{high}"
            said = f"{label}: {_SCOPES[feature].format(span)} win {row['rate']:.0%}"
        return f"{said} vs {self.overall:.0%} overall (n={int(row['deals']):,})".replace("%", " %")

    def top_reasons(self, model, features: pd.DataFrame, count: int = REASON_COUNT,
                    min_weight: float = 0.0, probabilities: np.ndarray | None = None) -> pd.DataFrame:
        """reason_k and reason_k_weight, strongest first, led by the factors
        that say why the deal is where it is: for a deal below the overall
        win rate the most negative weights come first (what puts it at risk),
        for one above it the most positive, then the rest by size. A factor
        that moves the probability by less than ``min_weight`` is no reason:
        its slot stays empty."""
        weights = self.weights(model, features, probabilities)
        direction = np.where(weights.pop(PROBABILITY).to_numpy() < self.overall, -1.0, 1.0)[:, None]
        columns = {}
        if len(features):
            w = weights.to_numpy()
            # same sign as the deviation first (by size), then the others (by size)
            rank = np.where(w * direction > 0, 0.0, 1.0) * 10 - np.abs(w)
            order = np.argsort(rank, axis=1, kind="stable")[:, :count]
        for k in range(count):
            if not len(features) or k >= weights.shape[1]:
                columns[f"reason_{k + 1}"] = pd.Series([None] * len(features), dtype=object)
                columns[f"reason_{k + 1}_weight"] = np.full(len(features), np.nan)
                continue
            names = np.asarray(weights.columns)[order[:, k]]
            picked = weights.to_numpy()[np.arange(len(features)), order[:, k]]
            texts = np.empty(len(features), dtype=object)
            material = np.abs(picked) >= min_weight
            for name in pd.unique(names[material]):
                rows = (names == name) & material
                values = pd.Series(features[name].to_numpy()[rows])
                words = {v: self.describe(name, v) for v in values.drop_duplicates()}
                texts[rows] = values.map(words).fillna(self.describe(name, np.nan)).to_numpy()
            columns[f"reason_{k + 1}"] = texts
            columns[f"reason_{k + 1}_weight"] = np.where(material, np.round(picked, 4), np.nan)
        return pd.DataFrame(columns)


def _chunked(model, rows: pd.DataFrame, chunk: int) -> np.ndarray:
    """Predictions in parts of ``chunk`` rows (memory stays flat on large pipelines)."""
    if len(rows) <= chunk:
        return predict(model, rows)
    return np.concatenate([predict(model, rows.iloc[start:start + chunk]) for start in range(0, len(rows), chunk)])


def _predict_views(model, views: Iterable[pd.DataFrame], chunk: int) -> list[np.ndarray]:
    """Each view's predictions, from as few model calls as ``chunk`` rows
    allow: consecutive views are stacked up to ``chunk`` rows a call (a view
    is let go once its batch is predicted). A call
    costs the pipeline's fixed overhead (each horizon's calibrated folds), so
    a few hundred open deals with a dozen factors took 26 calls and seconds."""
    out, batch = [], []

    def flush():
        rows = [v for v in batch if len(v)]   # an empty view adds nothing (and pandas warns about it)
        if rows:
            stacked = _chunked(model, pd.concat(rows, ignore_index=True), chunk)
            out.extend(np.split(stacked, np.cumsum([len(v) for v in batch])[:-1]))
        else:
            out.extend(np.zeros(0) for _ in batch)
        batch.clear()

    for view in views:
        if sum(len(v) for v in batch) + len(view) > chunk:
            flush()
        batch.append(view)
    flush()
    return out


def _bin_rates(states: pd.DataFrame, col: str, edges: np.ndarray) -> pd.DataFrame:
    """Per quantile bin of a numeric factor: the deals that were ever in it
    and how many of them were won."""
    if len(edges) < 2:
        return pd.DataFrame(columns=["low", "high", "deals", "rate"])
    which = np.clip(np.searchsorted(edges, states[col].to_numpy(), side="left") - 1, 0, len(edges) - 2)
    per = pd.DataFrame({"deal_id": states["deal_id"].to_numpy(), "bin": which, "won": states["won"].to_numpy()})
    per = per[states[col].notna().to_numpy()].drop_duplicates(["deal_id", "bin"])
    table = per.groupby("bin")["won"].agg(deals="size", rate="mean").reindex(range(len(edges) - 1))
    table["low"], table["high"] = edges[:-1], edges[1:]
    return table.dropna(subset=["deals"]).reset_index(drop=True)[["low", "high", "deals", "rate"]]


# --- Scoring open deals ---------------------------------------------------------
SCORE_COLUMNS = [
    "deal_id", "sales_rep_id", "industry", "region", "product_type", "lead_source", "deal_stage", "deal_amount",
    "age_days", "days_in_stage", "win_probability", "win_probability_30d", "win_probability_90d", "model_verdict",
    "risk_band", "revenue_at_risk",
    "reason_1", "reason_1_weight", "reason_2", "reason_2_weight", "reason_3", "reason_3_weight",
    "model_version", "as_of_date", "expected_close_month", "scored_inputs",
]
_SCORE_FLOATS = ("deal_amount", "age_days", "days_in_stage", "win_probability", "win_probability_30d",
                 "win_probability_90d", "revenue_at_risk",
                 "reason_1_weight", "reason_2_weight", "reason_3_weight")


def empty_scores() -> pd.DataFrame:
    dtypes = {c: ("float64" if c in _SCORE_FLOATS else object) for c in SCORE_COLUMNS}
    dtypes.update(model_version="int64", as_of_date="datetime64[ns]")
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in dtypes.items()})


def risk_band(win_probability, high_below: float, medium_below: float) -> np.ndarray:
    p = np.asarray(win_probability, dtype=float)
    return np.where(p < high_below, "high", np.where(p < medium_below, "medium", "low")).astype(object)


SCORED_INPUTS = "scored_inputs"
MODEL_OUTPUTS = ["win_probability", "win_probability_30d", "win_probability_90d", "reason_1", "reason_1_weight",
                 "reason_2", "reason_2_weight", "reason_3", "reason_3_weight"]


def input_keys(features: pd.DataFrame, context: str) -> np.ndarray:
    """Per row, what its model outputs depend on: ``context`` (model version,
    analysis date, explainer, rules, code) and the row's own features."""
    rows = pd.util.hash_pandas_object(features, index=False).to_numpy()
    return np.array([f"{context}:{h:016x}" for h in rows], dtype=object)


def model_outputs(model, features: pd.DataFrame, explainer: Explainer, rules: RiskRules) -> pd.DataFrame:
    """The model's part of a score (probabilities and reasons), row by row:
    a row's outputs depend only on its own features."""
    if not len(features):
        return pd.DataFrame({c: pd.Series(dtype=float if c in _SCORE_FLOATS else object) for c in MODEL_OUTPUTS})
    features = features.reset_index(drop=True)
    horizons = predict_horizons(model, features)
    # A horizon model's main probability is one of its horizons: not predicted a second time.
    raw = horizons[model.main] if isinstance(model, HorizonModel) else predict(model, features)
    p = np.round(raw, 4)  # stored rounded; money and bands follow the stored value
    out = pd.DataFrame({"win_probability": p})
    for days in (30, 90):
        out[f"win_probability_{days}d"] = np.round(np.minimum(horizons[days], p), 4) if days in horizons else np.nan
    reasons = explainer.top_reasons(model, features, min_weight=rules.min_reason_weight, probabilities=raw)
    return pd.concat([out, reasons], axis=1)[MODEL_OUTPUTS]


def score_open_deals(model, open_frame: pd.DataFrame, features: pd.DataFrame, explainer: Explainer,
                     rules: RiskRules, model_version: int, as_of: pd.Timestamp,
                     won: pd.DataFrame | None = None, verdict: str = "usable",
                     previous: pd.DataFrame | None = None, context: str = "") -> pd.DataFrame:
    """One row per open deal: win probability (within the main horizon, 30
    and 90 days), the model's verdict, risk band, revenue at risk, the top
    three reasons (weights on the probability scale) and the month it is
    expected to close if won (``horizons.month_spread``: its chance placed
    between the horizons where the earlier quarters' wins among ``won``
    came; a straight line in days without them).

    ``previous`` (the last stored scores): a deal whose ``scored_inputs``
    there equal its inputs now (same model version, analysis date,
    explainer, rules, ``context`` and the deal's own features) keeps its
    probabilities and reasons instead of being predicted again; every other
    column is derived afresh. The result equals scoring every deal."""
    if not len(open_frame):
        return empty_scores()
    features = features.reset_index(drop=True)
    keys = input_keys(features, digest(context, model_version, pd.Timestamp(as_of).date(), explainer.digest(),
                                       rules_digest(rules), ",".join(features.columns)))
    carried = np.zeros(len(keys), dtype=bool)
    if previous is not None and SCORED_INPUTS in previous and len(previous):
        stored = previous.drop_duplicates("deal_id").set_index("deal_id")
        position = stored.index.get_indexer(open_frame["deal_id"].to_numpy(dtype=object))
        found = position >= 0
        carried[found] = stored[SCORED_INPUTS].to_numpy(dtype=object)[position[found]] == keys[found]
    fresh = model_outputs(model, features[~carried], explainer, rules)
    outputs = {}
    for col in MODEL_OUTPUTS:
        values = np.full(len(keys), np.nan) if col in _SCORE_FLOATS else np.full(len(keys), None, dtype=object)
        if carried.any():
            values[carried] = stored[col].to_numpy()[position[carried]]
        values[~carried] = fresh[col].to_numpy()
        outputs[col] = values
    out = open_frame[["deal_id", "sales_rep_id", "industry", "region", "product_type", "lead_source",
                      "deal_stage", "deal_amount", "age_days", "days_in_stage"]].reset_index(drop=True).copy()
    out = out.assign(**outputs)
    p = out["win_probability"].to_numpy(dtype=float)
    out["model_verdict"] = verdict
    out["risk_band"] = risk_band(p, rules.bands.high_below, rules.bands.medium_below)
    out["revenue_at_risk"] = np.round(out["deal_amount"] * (1 - p), 2)
    out["model_version"] = int(model_version)
    out["as_of_date"] = pd.Timestamp(as_of)
    out["expected_close_month"] = horizons.month_spread(horizons.scored_horizons(out, rules.win_horizon_days), as_of,
                                                        rules.win_horizon_days, won).close_months()
    out[SCORED_INPUTS] = keys
    out = out[SCORE_COLUMNS].astype({c: "float64" for c in _SCORE_FLOATS})
    out.attrs["rescored"] = int((~carried).sum())   # how many deals the model scored this time
    return out

