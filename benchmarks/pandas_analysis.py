"""The original win-rate analysis as one pandas script, the yardstick of the
benchmark: what an analyst would run on a CRM export by hand.

    .venv/bin/python benchmarks/pandas_analysis.py deals.csv --as-of 2026-06-30

Reads the export, then: win rate and impact per segment of every dimension
(rate gap to the rest x deals), rate/mix attribution of the change between
the last two complete quarters, a random forest of winning on the closed
deals (held-out AUC and feature importances), pivots of win rate by quarter
and segment, and scores of the open deals. Prints a few lines; the
benchmark only times it.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

DIMENSIONS = ["industry", "region", "product_type", "lead_source", "sales_rep_id", "deal_stage"]


def load(path: str) -> pd.DataFrame:
    deals = pd.read_csv(path, parse_dates=["created_date", "closed_date"], dtype={
        "deal_id": "string", "sales_rep_id": "category", "industry": "category", "region": "category",
        "product_type": "category", "lead_source": "category", "deal_stage": "category", "outcome": "category"})
    deals["won"] = deals["outcome"].eq("Won")
    deals["closed"] = deals["outcome"].isin(["Won", "Lost"])
    deals["quarter"] = deals["closed_date"].dt.to_period("Q")
    return deals


def segment_impacts(closed: pd.DataFrame) -> pd.DataFrame:
    overall = closed["won"].mean()
    parts = []
    for dim in DIMENSIONS:
        g = closed.groupby(dim, observed=True)["won"].agg(deals="size", won="sum").reset_index()
        rest_rate = (closed["won"].sum() - g["won"]) / (len(closed) - g["deals"])
        g["win_rate"] = g["won"] / g["deals"]
        g["impact"] = (g["win_rate"] - rest_rate) * g["deals"]
        g["lift"] = g["win_rate"] - overall
        parts.append(g.rename(columns={dim: "segment"}).assign(dimension=dim))
    return pd.concat(parts).sort_values("impact")


def attribution(closed: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    last = (as_of + pd.Timedelta(days=1)).to_period("Q") - 1
    a, b = closed[closed["quarter"] == last - 1], closed[closed["quarter"] == last]
    parts = []
    for dim in DIMENSIONS[:5]:
        sa = a.groupby(dim, observed=True)["won"].agg(n="size", rate="mean")
        sb = b.groupby(dim, observed=True)["won"].agg(n="size", rate="mean")
        t = sa.join(sb, lsuffix="_a", rsuffix="_b", how="outer").fillna({"n_a": 0, "n_b": 0})
        t["rate_a"] = t["rate_a"].fillna(t["rate_b"])
        t["rate_b"] = t["rate_b"].fillna(t["rate_a"])
        t["share_a"], t["share_b"] = t["n_a"] / t["n_a"].sum(), t["n_b"] / t["n_b"].sum()
        t["rate_effect"] = (t["rate_b"] - t["rate_a"]) * (t["share_a"] + t["share_b"]) / 2
        t["mix_effect"] = (t["share_b"] - t["share_a"]) * (t["rate_a"] + t["rate_b"]) / 2
        parts.append(t.reset_index().rename(columns={dim: "segment"}).assign(dimension=dim))
    return pd.concat(parts, ignore_index=True)


def features(frame: pd.DataFrame) -> pd.DataFrame:
    x = pd.get_dummies(frame[["industry", "region", "product_type", "lead_source", "deal_stage"]], dtype="uint8")
    x["deal_amount"] = frame["deal_amount"].to_numpy()
    x["log_amount"] = np.log1p(frame["deal_amount"].to_numpy())
    x["created_month"] = frame["created_date"].dt.month.to_numpy()
    x["rep_win_rate"] = frame["rep_win_rate"].to_numpy()
    return x


def random_forest(deals: pd.DataFrame, closed: pd.DataFrame) -> tuple[float, pd.Series, np.ndarray]:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    rep_rate = closed.groupby("sales_rep_id", observed=True)["won"].mean()
    deals = deals.assign(rep_win_rate=deals["sales_rep_id"].map(rep_rate).astype(float))
    closed = deals[deals["closed"]]
    x, y = features(closed), closed["won"].to_numpy()
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=42)
    forest = RandomForestClassifier(n_estimators=100, max_depth=8, min_samples_leaf=50, max_samples=0.1,
                                    n_jobs=-1, random_state=42)
    forest.fit(x_train, y_train)
    auc = roc_auc_score(y_test, forest.predict_proba(x_test)[:, 1])
    importances = pd.Series(forest.feature_importances_, index=x.columns).sort_values(ascending=False)
    open_deals = deals[~deals["closed"]]
    scores = forest.predict_proba(features(open_deals).reindex(columns=x.columns, fill_value=0))[:, 1]
    return auc, importances, scores


def pivots(closed: pd.DataFrame) -> list[pd.DataFrame]:
    return [closed.pivot_table(index="quarter", columns=dim, values="won", aggfunc="mean", observed=True)
            for dim in DIMENSIONS[:4]] + [
        closed.pivot_table(index="industry", columns="region", values="deal_amount", aggfunc=["sum", "median"],
                           observed=True),
        closed.assign(cycle_band=pd.cut(closed["sales_cycle_days"], [0, 30, 60, 90, 1000])).pivot_table(
            index="cycle_band", columns="lead_source", values="won", aggfunc="mean", observed=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv")
    parser.add_argument("--as-of", required=True)
    args = parser.parse_args()
    deals = load(args.csv)
    closed = deals[deals["closed"]]
    impacts = segment_impacts(closed)
    effects = attribution(closed, pd.Timestamp(args.as_of))
    auc, importances, scores = random_forest(deals, closed)
    tables = pivots(closed)
    print(f"{len(deals):,} deals, {len(closed):,} closed, win rate {closed['won'].mean():.1%}")
    print("most negative segment:", impacts.iloc[0][["dimension", "segment", "impact"]].to_dict())
    top = effects.loc[effects["rate_effect"].abs().idxmax()]
    print(f"largest rate effect: {top['dimension']}={top['segment']} {top['rate_effect']:+.4f}")
    print(f"forest AUC {auc:.3f}; top feature {importances.index[0]}; {len(scores):,} open deals scored, "
          f"{len(tables)} pivots")


if __name__ == "__main__":
    main()
