"""Driver importance: which deal factors a model actually uses to tell won
from lost, measured on held-out deals.

A histogram gradient-boosting classifier (native categorical support) is fit
on closed deals of the history and judged on a held-out share of them:

- main importance of a factor = the drop of held-out ROC AUC when that
  factor's column is shuffled (scikit-learn's ``permutation_importance``;
  impurity importance would overstate numeric and many-valued factors such
  as the rep);
- interaction of two factors = how much more the AUC drops when both are
  shuffled together (with one permutation for both) than the two single
  drops add up to; tested for pairs of the top ``interaction_candidates``
  factors.

Figures are means over ``n_repeats`` shuffles with their standard deviation
(shuffle noise only). A factor is ``meaningful`` only when its drop exceeds
twice that deviation and the model itself beats chance: its AUC interval
(Hanley-McNeil) must lie above 0.5. Otherwise the verdict says it is noise.

For speed at a million deals the model trains on at most ``max_train_rows``
random history deals and is scored on at most ``max_eval_rows`` held-out
ones (rules ``drivers.importance``); the sizes used are reported.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from salesintel_assets.domain.metrics.deal_metrics import empty_frame, history_mask
from salesintel_assets.domain.common.rules import NUMERIC_FACTORS, Rules
from salesintel_assets.domain.common.stats import Z95

IMPORTANCE_COLUMNS = {
    "factor": "object", "kind": "object", "importance": "float64", "importance_std": "float64",
    "rank": "int64", "meaningful": "bool", "verdict": "object",
}
MAX_CATEGORIES = 250  # the model bins at most 255 categories; rarer ones share "other"


def auc_interval(auc: float, positives: int, negatives: int) -> tuple[float, float]:
    """95 % interval of a ROC AUC from the Hanley-McNeil standard error."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)) / (
        positives * negatives)
    se = float(np.sqrt(max(var, 0.0)))
    return max(auc - Z95 * se, 0.0), min(auc + Z95 * se, 1.0)


def model_matrix(fact: pd.DataFrame, rows: np.ndarray, factors: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The factors of the chosen rows as a float matrix (text as category
    codes, at most ``MAX_CATEGORIES`` per factor, rarer ones sharing a code;
    a cycle flagged for review is unknown, not negative) and the mask of
    categorical columns. Encoded once, so shuffling and scoring are cheap."""
    frame = fact.iloc[rows]
    columns, categorical = [], []
    for factor in factors:
        values = frame[factor]
        if factor in NUMERIC_FACTORS:
            values = values.astype("float64")
            if factor == "sales_cycle_days":
                values = values.where(~frame["needs_review"].astype(bool) & (values >= 0))
            columns.append(values.to_numpy())
            categorical.append(False)
        else:
            codes, uniques = pd.factorize(values.astype("object").fillna("unknown"))
            if len(uniques) > MAX_CATEGORIES:
                rank = np.argsort(np.argsort(-np.bincount(codes), kind="stable"), kind="stable")
                codes = np.minimum(rank[codes], MAX_CATEGORIES)
            columns.append(codes.astype("float64"))
            categorical.append(True)
    return np.column_stack(columns), np.array(categorical)


def _split(n: int, rules: Rules) -> tuple[np.ndarray, np.ndarray]:
    """Random held-out split, each side capped for speed."""
    r = rules.drivers.importance
    order = np.random.default_rng(r.seed).permutation(n)
    cut = int(round(n * r.holdout_share))
    return order[cut:][: r.max_train_rows], order[:cut][: r.max_eval_rows]


def _auc(model, x: np.ndarray, y: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, model.predict_proba(x)[:, 1]))


def _shuffled(x: np.ndarray, columns: list[int], perm: np.ndarray) -> np.ndarray:
    out = x.copy()
    out[:, columns] = x[perm][:, columns]
    return out


def driver_importance(fact: pd.DataFrame, rules: Rules, as_of: pd.Timestamp) -> tuple[pd.DataFrame, dict]:
    """Main and interaction importances, plus what the model is worth."""
    r = rules.drivers.importance
    history = np.flatnonzero(history_mask(fact, as_of)) if len(fact) else np.array([], dtype=int)
    y_all = fact["is_won"].to_numpy(dtype=bool)[history] if len(history) else np.array([], dtype=bool)
    info: dict = {"history_rows": int(len(history))}
    if len(history) < r.min_rows or len(np.unique(y_all)) < 2:
        info["verdict"] = (f"not enough data: {len(history)} closed deals (at least {r.min_rows} "
                           "with both outcomes needed); no model fitted")
        return empty_frame(IMPORTANCE_COLUMNS), info
    train, held = _split(len(history), rules)
    # One matrix for both sides, so a category has the same code in each.
    both, categorical = model_matrix(fact, history[np.concatenate([train, held])], r.factors)
    x_train, y_train = both[: len(train)], y_all[train]
    x_eval, y_eval = both[len(train):], y_all[held]
    if len(np.unique(y_eval)) < 2 or len(np.unique(y_train)) < 2:
        info["verdict"] = "not enough data: the held-out deals have a single outcome"
        return empty_frame(IMPORTANCE_COLUMNS), info
    # One OpenMP thread: the many small predictions below are dominated by
    # thread start-up, and spinning threads stall badly on a busy machine.
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    model = HistGradientBoostingClassifier(
        categorical_features=categorical, learning_rate=0.2, max_iter=100, max_leaf_nodes=15,
        min_samples_leaf=40, l2_regularization=1.0, early_stopping=True, validation_fraction=0.15,
        n_iter_no_change=5, random_state=r.seed)
    with threadpool_limits(limits=1):
        rows = _fit_and_measure(model, x_train, y_train, x_eval, y_eval, rules, info)
    info.update({"train_rows": int(len(train)), "eval_rows": int(len(held)),
                 "subsampled": bool(len(train) + len(held) < len(history))})
    table = pd.DataFrame(rows).assign(_kind=lambda t: t["kind"].map({"main": 0, "interaction": 1}))
    table = table.sort_values(["_kind", "importance"], ascending=[True, False], kind="stable")
    table["rank"] = table.groupby("kind").cumcount() + 1
    info["verdict"] = _model_verdict(info, table)
    return table[list(IMPORTANCE_COLUMNS)].astype(IMPORTANCE_COLUMNS).reset_index(drop=True), info


def _fit_and_measure(model, x_train, y_train, x_eval, y_eval, rules: Rules, info: dict) -> list[dict]:
    """Fit, score the held-out deals, then shuffle factors (and pairs)."""
    r = rules.drivers.importance
    model.fit(x_train, y_train)
    base = _auc(model, x_eval, y_eval)
    low, high = auc_interval(base, int(y_eval.sum()), int((~y_eval).sum()))
    better = low > 0.5
    info.update({"auc": round(base, 4), "auc_ci": [round(low, 4), round(high, 4)],
                 "better_than_chance": bool(better), "boosting_rounds": int(model.n_iter_)})
    from sklearn.inspection import permutation_importance

    drops = permutation_importance(model, x_eval, y_eval, scoring="roc_auc", n_repeats=r.n_repeats,
                                   random_state=r.seed + 1).importances
    single = dict(zip(r.factors, drops))
    rng = np.random.default_rng(r.seed + 1)
    perms = [rng.permutation(len(x_eval)) for _ in range(r.n_repeats)]
    index = {f: i for i, f in enumerate(r.factors)}
    rows = [_row(f, "main", drops, better) for f, drops in single.items()]
    top = sorted(r.factors, key=lambda f: -single[f].mean())[: r.interaction_candidates]
    for a, b in combinations(top, 2):
        pair = np.array([base - _auc(model, _shuffled(x_eval, [index[a], index[b]], p), y_eval)
                         for p in perms])
        rows.append(_row(f"{a} x {b}", "interaction", pair - single[a] - single[b], better))
    return rows


def _row(factor: str, kind: str, drops: np.ndarray, model_better: bool) -> dict:
    mean, std = float(drops.mean()), float(drops.std(ddof=1))
    clear = mean > 0 and mean > 2 * std
    overlap = mean < 0 and -mean > 2 * std
    if not model_better:
        text = "model no better than chance: this figure is noise"
    elif clear and kind == "main":
        text = f"held-out AUC drops {mean:.3f} (+/- {std:.3f}) without it"
    elif clear:
        text = f"together they matter {mean:.3f} AUC more than apart (+/- {std:.3f})"
    elif overlap and kind == "interaction":
        text = f"no interaction; they overlap (carry partly the same information, {mean:+.3f} AUC)"
    else:
        text = f"no measurable effect ({mean:+.3f} +/- {std:.3f} AUC)"
    return {"factor": factor, "kind": kind, "importance": mean, "importance_std": std,
            "meaningful": bool(model_better and clear), "verdict": text}


def _model_verdict(info: dict, table: pd.DataFrame) -> str:
    auc = f"held-out AUC {info['auc']:.3f} (95 % {info['auc_ci'][0]:.3f}-{info['auc_ci'][1]:.3f})"
    if not info["better_than_chance"]:
        return (f"{auc}: the model is no better than chance, so no factor can be said to drive "
                "win rate; the importances below are noise.")
    main = table[(table["kind"] == "main") & table["meaningful"]]
    names = ", ".join(main["factor"]) or "none"
    return f"{auc}: factors that matter: {names}."
