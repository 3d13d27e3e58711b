"""Deletions reported by a CRM: one row per deleted (archived) deal and when
it was deleted. They are stored as tombstones, never as removed rows, so the
raw lake and the deal's history stay complete."""

from __future__ import annotations

import pandas as pd

DELETION_COLUMNS = ("deal_id", "deleted_at")


def empty_deletions() -> pd.DataFrame:
    return pd.DataFrame({"deal_id": pd.Series(dtype=object), "deleted_at": pd.Series(dtype="datetime64[ns]")})


def conform_deletions(frame: pd.DataFrame | None) -> pd.DataFrame:
    """deal_id as text and deleted_at as a naive UTC timestamp; one row per
    deal (its latest deletion), blank ids dropped."""
    if frame is None or frame.empty:
        return empty_deletions()
    out = pd.DataFrame({
        "deal_id": frame["deal_id"].astype(str).str.strip(),
        "deleted_at": pd.to_datetime(frame["deleted_at"], utc=True).dt.tz_localize(None).astype("datetime64[ns]"),
    })
    out = out[out["deal_id"] != ""].sort_values(["deal_id", "deleted_at"], kind="stable")
    return out.drop_duplicates("deal_id", keep="last").reset_index(drop=True)
