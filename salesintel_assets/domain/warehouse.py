"""The star schema: fact_deals, the dimensions, stage transitions and the
SCD type 2 history of every deal."""

from __future__ import annotations

import numpy as np
import pandas as pd

from salesintel_assets.domain.rules import Rules

FACT_COLUMNS = [
    "deal_id", "created_date", "closed_date", "sales_rep_id", "industry", "region", "product_type",
    "lead_source", "deal_stage", "stage_number", "deal_amount", "sales_cycle_days", "outcome",
    "is_open", "is_won", "age_days", "stage_entered_date", "days_in_stage", "last_modified",
    "activity_count", "last_activity_date", "needs_review", "review_reason", "cycle_corrected",
    "original_sales_cycle_days", "as_of_date",
]
# What a new deal_history version is cut on.
HISTORY_TRACKED = ["deal_stage", "outcome", "deal_amount", "closed_date", "sales_rep_id", "industry",
                   "region", "product_type", "lead_source", "created_date"]
ORG_COLUMNS = ["sales_rep_id", "rep_name", "email", "team", "manager_id", "manager_name", "manager_email",
               "cro_id", "cro_name", "cro_email"]


def build_fact_deals(clean: pd.DataFrame, stage_history: pd.DataFrame, activities: pd.DataFrame,
                     rules: Rules, as_of: pd.Timestamp) -> pd.DataFrame:
    """One typed row per deal with what later layers need."""
    fact = clean.copy()
    fact["stage_number"] = fact["deal_stage"].map(rules.stages._numbers).astype("Int64")
    fact["is_open"] = fact["outcome"].eq("Open")
    fact["is_won"] = fact["outcome"].eq("Won")
    age = (as_of - fact["created_date"]).dt.days.astype("float64")
    fact["age_days"] = np.where(fact["is_open"], age, fact["sales_cycle_days"])

    entered = _current_stage_entry(stage_history)
    from_history = fact["deal_id"].map(entered)
    fact["stage_entered_date"] = fact["stage_entered_date"].fillna(from_history)
    in_stage = (as_of - fact["stage_entered_date"]).dt.days.astype("float64")
    fact["days_in_stage"] = in_stage.where(fact["is_open"])

    counts, last = _activity_summary(activities, as_of)
    fact["activity_count"] = fact["deal_id"].map(counts).fillna(0).astype("int64")
    fact["last_activity_date"] = pd.to_datetime(fact["deal_id"].map(last))
    fact["as_of_date"] = as_of
    return fact[FACT_COLUMNS].sort_values("deal_id", kind="stable").reset_index(drop=True)


def _current_stage_entry(stage_history: pd.DataFrame) -> pd.Series:
    """deal_id -> when it entered its latest recorded stage."""
    if stage_history.empty:
        return pd.Series(dtype="datetime64[ns]")
    return pd.to_datetime(stage_history.groupby("deal_id")["entered_date"].max())


def _activity_summary(activities: pd.DataFrame, as_of: pd.Timestamp) -> tuple[pd.Series, pd.Series]:
    if activities.empty:
        return pd.Series(dtype="int64"), pd.Series(dtype="datetime64[ns]")
    seen = activities[pd.to_datetime(activities["activity_date"]) <= as_of]
    grouped = seen.groupby("deal_id")["activity_date"]
    return grouped.size(), grouped.max()


def build_stage_transitions(stage_history: pd.DataFrame, fact: pd.DataFrame, rules: Rules,
                            as_of: pd.Timestamp) -> pd.DataFrame:
    """One row per stage a deal entered: when, until when, and for how long.
    The exit of the last stage is the close (or still open at ``as_of``)."""
    columns = ["deal_id", "stage", "stage_number", "entered_date", "exited_date", "days_in_stage",
               "is_current", "outcome"]
    known = stage_history[stage_history["deal_id"].isin(fact["deal_id"])]
    if known.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    out = known.sort_values(["deal_id", "entered_date"], kind="stable").reset_index(drop=True)
    out["entered_date"] = pd.to_datetime(out["entered_date"])
    out["stage_number"] = out["stage"].map(rules.stages._numbers).astype("Int64")
    deal = fact.set_index("deal_id")
    next_entry = out.groupby("deal_id")["entered_date"].shift(-1)
    closed = out["deal_id"].map(deal["closed_date"])
    out["is_current"] = next_entry.isna()
    out["exited_date"] = next_entry.fillna(closed)
    end = out["exited_date"].fillna(as_of)
    out["days_in_stage"] = (end - out["entered_date"]).dt.days.astype("float64")
    out["outcome"] = out["deal_id"].map(deal["outcome"])
    return out[columns]


def build_dim_sales_reps(fact: pd.DataFrame, org: pd.DataFrame | None) -> pd.DataFrame:
    """Every rep seen in the deals with their routing chain (rep -> manager
    -> CRO); without an org the chain is empty and alerts go to the
    leadership default."""
    reps = pd.DataFrame({"sales_rep_id": sorted(fact["sales_rep_id"].unique())})
    if org is not None and not org.empty:
        org = org.reindex(columns=ORG_COLUMNS).drop_duplicates("sales_rep_id", keep="last")
        reps = reps.merge(org, on="sales_rep_id", how="outer")
    else:
        reps = reps.reindex(columns=ORG_COLUMNS)
    reps["rep_name"] = reps["rep_name"].fillna(reps["sales_rep_id"])
    stats = fact.groupby("sales_rep_id").agg(deals=("deal_id", "size"), open_deals=("is_open", "sum"))
    reps = reps.merge(stats, left_on="sales_rep_id", right_index=True, how="left")
    reps[["deals", "open_deals"]] = reps[["deals", "open_deals"]].fillna(0).astype("int64")
    reps["has_org"] = reps["manager_id"].notna()
    return reps.sort_values("sales_rep_id", kind="stable").reset_index(drop=True)


def build_dimension(fact: pd.DataFrame, column: str) -> pd.DataFrame:
    """A small segment dimension (industry, product type) with its volume."""
    closed = fact[~fact["is_open"]]
    out = fact.groupby(column).agg(deals=("deal_id", "size"), open_deals=("is_open", "sum"),
                                   first_created=("created_date", "min"))
    won = closed.groupby(column)["is_won"].agg(["sum", "size"])
    out["closed_deals"] = won["size"].reindex(out.index).fillna(0).astype("int64")
    out["won_deals"] = won["sum"].reindex(out.index).fillna(0).astype("int64")
    out["open_deals"] = out["open_deals"].astype("int64")
    return out.reset_index().sort_values(column, kind="stable").reset_index(drop=True)


def update_deal_history(previous: pd.DataFrame | None, fact: pd.DataFrame,
                        observed_at: pd.Timestamp) -> pd.DataFrame:
    """SCD type 2: a new version when a deal's tracked attributes change.
    ``valid_from`` is the CRM's last_modified when known, else when we saw it."""
    current = fact[["deal_id"] + HISTORY_TRACKED + ["last_modified"]].copy()
    current["version_hash"] = pd.util.hash_pandas_object(current[HISTORY_TRACKED], index=False).astype("uint64")
    current["valid_from"] = current["last_modified"].fillna(observed_at)
    current = current.drop(columns="last_modified")
    if previous is None or previous.empty:
        new = current.assign(version=1)
        history = new.iloc[:0].assign(valid_to=pd.Series(dtype="datetime64[ns]"), is_current=pd.Series(dtype=bool))
    else:
        history = previous.copy()
        live = history.loc[history["is_current"], ["deal_id", "version_hash", "version"]]
        probe = current[["deal_id", "version_hash"]].merge(live, on=["deal_id", "version_hash"], how="left",
                                                            indicator=True)
        new = current[(probe["_merge"] == "left_only").to_numpy()].copy()
        last_version = new["deal_id"].map(live.set_index("deal_id")["version"])
        new["version"] = last_version.fillna(0).astype("int64") + 1
        closing = history["is_current"] & history["deal_id"].isin(new["deal_id"])
        valid_to = history.loc[closing, "deal_id"].map(new.set_index("deal_id")["valid_from"])
        history.loc[closing, "valid_to"] = valid_to.to_numpy()
        history.loc[closing, "is_current"] = False
    new = new.assign(valid_to=pd.NaT, is_current=True)
    out = pd.concat([history, new], ignore_index=True) if not history.empty else new
    out["valid_to"] = pd.to_datetime(out["valid_to"])
    columns = ["deal_id", "version", "valid_from", "valid_to", "is_current"] + HISTORY_TRACKED + ["version_hash"]
    return out[columns].sort_values(["deal_id", "version"], kind="stable").reset_index(drop=True)
