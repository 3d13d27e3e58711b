"""Leakage guard: columns that give the outcome away are named and excluded
before any model is trained or any driver is ranked.

Two kinds of column cannot be used to explain or predict a win:

* known only after the close: a deal's final cycle length, its close date,
  anything derived from them (``POST_CLOSE``). An open deal has no value yet.
* encoding the outcome: many CRM exports store the *closed* value as the
  amount, so every lost deal carries 0. Screened on closed deals, a column is
  a leak when one value (0 or empty) marks one outcome almost exclusively, or
  when the column alone separates won from lost almost perfectly (AUC above
  ``MAX_ALONE_AUC``, for a number directly, for a category through its
  levels' win rates). Real drivers never come close: on CRM data a single
  honest factor reaches AUC 0.6-0.75.

* filled in only at close: a column empty (or "Unknown") on most open deals
  and on almost no closed one is written when the deal closes (a lead
  source or reason entered at the end). Deals still open in the replayed
  history carry the empty value, so a model learns "empty = not won" and
  scores every open deal as a loss; nothing about closed deals alone shows it.

The screen is deterministic (same closed deals, same findings), so ingestion,
the risk model and the driver analysis reach the same verdict independently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from salesintel_assets.domain.common.rules import stage_key, stage_keys

# Known only once a deal has closed (or derived from such a column).
POST_CLOSE = {
    "sales_cycle_days": "sales_cycle_days is known only after a deal closes (its final length)",
    "original_sales_cycle_days": "original_sales_cycle_days is known only after a deal closes",
    "closed_date": "closed_date is known only after a deal closes",
    "cycle_bin": "cycle_bin is derived from sales_cycle_days, known only after a deal closes",
}
# Derived columns that share a source column's leak.
DERIVED_FROM = {"amount_tier": "deal_amount"}
MAX_ALONE_AUC = 0.98        # a single column separating won from lost better than this is not a driver
MARKER_SHARE = 0.5          # a marker value on at least this share of one outcome's deals ...
MARKER_OTHER_SHARE = 0.02   # ... and on at most this share of the other outcome's deals
MIN_CLOSED_PER_OUTCOME = 20  # fewer won or lost deals: no verdict (nothing is excluded)
MIN_LEVEL_DEALS = 10        # categories rarer than this are pooled before the level AUC
OPEN_EMPTY_SHARE = 0.5      # empty on at least this share of open deals ...
CLOSED_EMPTY_SHARE = 0.02   # ... and on at most this share of closed deals: filled in at close
MIN_OPEN_DEALS = 20         # fewer open deals: no verdict on filling at close
EMPTY_VALUES = ("", "unknown")  # what a blank optional field reads as, before and after ingestion


@dataclass(frozen=True)
class Finding:
    """One excluded column and why, in one plain sentence."""

    column: str
    kind: str       # "post_close" or "encodes_outcome"
    sentence: str


def screen(closed: pd.DataFrame, won, columns, open_empty: dict[str, tuple[int, int]] | None = None) -> list[Finding]:
    """Screen ``columns`` of closed deals (``won``: one bool per row). Columns
    absent from the frame are skipped; post-close columns are always named.
    ``open_empty``: per column, (open deals, of them empty), to find columns
    filled in only at close."""
    won = np.asarray(won, dtype=bool)
    findings = [Finding(c, "post_close", POST_CLOSE[c]) for c in columns if c in POST_CLOSE]
    for column, (n_open, n_empty) in (open_empty or {}).items():
        if column in POST_CLOSE or column not in closed or column not in columns or n_open < MIN_OPEN_DEALS:
            continue
        open_share, closed_share = n_empty / n_open, float(empty_mask(closed[column]).mean()) if len(closed) else 1.0
        if open_share >= OPEN_EMPTY_SHARE and closed_share <= CLOSED_EMPTY_SHARE:
            findings.append(Finding(column, "post_close", (
                f"{column} looks like it is filled in only when a deal closes: empty on {open_share:.0%} of open "
                f"deals and {closed_share:.0%} of closed ones").replace("%", " %")))
    filled_at_close = {f.column for f in findings}
    enough = won.sum() >= MIN_CLOSED_PER_OUTCOME and (~won).sum() >= MIN_CLOSED_PER_OUTCOME
    if enough:
        for column in columns:
            if column in POST_CLOSE or column not in closed or column in filled_at_close:
                continue
            sentence = _encodes_outcome(column, closed[column], won)
            if sentence:
                findings.append(Finding(column, "encodes_outcome", sentence))
    leaked = {f.column for f in findings}
    for derived, source in DERIVED_FROM.items():
        if derived in columns and source in leaked and derived not in leaked:
            findings.append(Finding(derived, "encodes_outcome", f"{derived} is derived from {source}, "
                                                                  f"which looks like it encodes the outcome"))
    return findings


def screen_deals(fact: pd.DataFrame, columns, closed: pd.DataFrame | None = None) -> list[Finding]:
    """``screen`` on a fact_deals-shaped frame (``is_open``, ``is_won``): its
    closed deals (or ``closed``, e.g. only those closed by the analysis
    date), and its open deals for columns filled in only at close."""
    is_open = fact["is_open"].astype(bool).to_numpy()
    closed = fact[~is_open] if closed is None else closed
    return screen(closed, closed["is_won"].astype(bool).to_numpy(), columns, open_empty_counts(fact[is_open], columns))


def empty_mask(values: pd.Series) -> np.ndarray:
    """Blank, missing or "Unknown" (how ingestion fills a blank optional field)."""
    codes, lower = _lowered_levels(values)
    return np.append(pd.Series(lower, dtype=object).isin(EMPTY_VALUES).to_numpy(), True)[codes]   # code -1: missing


def _lowered_levels(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(code per value, -1 when missing; each distinct value as stripped
    lower-case text). Once per distinct value: a column of a million deals
    holds few of them."""
    codes, levels = pd.factorize(values)
    return codes, pd.Series(levels, dtype=object).astype(str).str.strip().str.lower().to_numpy(dtype=object)


def open_empty_counts(open_deals: pd.DataFrame, columns) -> dict[str, tuple[int, int]]:
    """Per column of ``open_deals``: (open deals, of them empty)."""
    return {c: (len(open_deals), int(empty_mask(open_deals[c]).sum())) for c in columns
            if c in open_deals and c not in POST_CLOSE}


def excluded(findings: list[Finding]) -> set[str]:
    return {f.column for f in findings}


def sentences(findings: list[Finding]) -> list[str]:
    return [f.sentence for f in findings]


def _encodes_outcome(column: str, values: pd.Series, won: np.ndarray) -> str | None:
    numeric = pd.to_numeric(values, errors="coerce") if values.dtype != object else _maybe_numeric(values)
    if numeric is not None:
        marker = _marker(column, numeric, won)
        if marker:
            return marker
        present = numeric.notna().to_numpy()
        if present.sum() and won[present].any() and (~won[present]).any():
            auc = _auc(numeric.to_numpy(dtype=float)[present], won[present])
            if max(auc, 1 - auc) > MAX_ALONE_AUC:
                return (f"{column} looks like it encodes the outcome: alone it separates won from lost deals "
                        f"almost perfectly (AUC {max(auc, 1 - auc):.3f} on {present.sum():,} closed deals)")
        return None
    # One score per level (its win rate, rare levels pooled): the AUC follows from the levels' counts.
    codes, levels = pd.factorize(values.astype(object).where(values.notna(), "(empty)").astype(str).to_numpy())
    counts = np.bincount(codes, minlength=len(levels))
    pooled = np.where(counts >= MIN_LEVEL_DEALS, np.arange(len(levels)), len(levels))
    level_won = np.bincount(pooled[codes], weights=won, minlength=len(levels) + 1)
    level_all = np.bincount(pooled[codes], minlength=len(levels) + 1)
    present = level_all > 0
    rate = level_won[present] / level_all[present]
    if len(np.unique(rate)) < 2:
        return None
    auc = _tied_auc(rate, level_won[present], level_all[present] - level_won[present])
    if auc > MAX_ALONE_AUC:
        return (f"{column} looks like it encodes the outcome: its values alone separate won from lost deals "
                f"almost perfectly (AUC {auc:.3f} on {len(won):,} closed deals)")
    return None


def _maybe_numeric(values: pd.Series) -> pd.Series | None:
    # Each distinct value is parsed once (a column of text holds few of them).
    codes, levels = pd.factorize(values)
    parsed = pd.to_numeric(pd.Series(levels, dtype=object), errors="coerce").to_numpy(dtype=float)
    blank = pd.Series(levels, dtype=object).astype(str).str.strip().eq("").to_numpy()
    numeric = pd.Series(np.where(codes >= 0, parsed[codes], np.nan), index=values.index)
    filled = (codes >= 0) & ~blank[codes]
    return numeric if filled.any() and numeric[filled].notna().mean() > 0.95 else None


def _marker(column: str, numeric: pd.Series, won: np.ndarray) -> str | None:
    """A value (0, or empty) carried by most deals of one outcome and almost none of the other."""
    for label, mask in (("0", (numeric == 0).to_numpy()), ("empty", numeric.isna().to_numpy())):
        for outcome, side in (("lost", ~won), ("won", won)):
            share, other = mask[side].mean(), mask[~side].mean()
            if share >= MARKER_SHARE and other <= MARKER_OTHER_SHARE:
                return (f"{column} looks like it encodes the outcome: {label} on {share:.0%} of {outcome} deals "
                        f"and {other:.0%} of the others").replace("%", " %")
    return None


def _auc(score: np.ndarray, won: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(won.astype(int), score))


def _tied_auc(score: np.ndarray, won: np.ndarray, lost: np.ndarray) -> float:
    """The AUC of groups of deals that share a score (ties count one half),
    from each group's won and lost counts: what ``roc_auc_score`` gives on
    the deals themselves."""
    order = np.argsort(score, kind="stable")
    score, won, lost = score[order], won[order], lost[order]
    _, group = np.unique(score, return_inverse=True)
    won, lost = np.bincount(group, weights=won), np.bincount(group, weights=lost)
    lost_below = np.cumsum(lost) - lost
    return float((won * lost_below).sum() + 0.5 * (won * lost).sum()) / (won.sum() * lost.sum())


# --- On the raw export (ingestion reports what the models layer will exclude) ----
EXPORT_SCREENED = ("industry", "region", "product_type", "lead_source", "sales_rep_id", "deal_amount",
                   "sales_cycle_days")


def export_outcomes(raw: pd.DataFrame, won_stages=(), lost_stages=()) -> pd.Series:
    """"won", "lost" or "" per row of a raw (text) export: the outcome
    column, or when it is empty the stage name the rules say means won or
    lost (an export whose stages are Won and Lost and whose outcome column is
    blank, as many CRMs write it)."""
    won, lost = {"won", *map(stage_key, won_stages)}, {"lost", *map(stage_key, lost_stages)}

    def read(text: pd.Series) -> np.ndarray:   # as ingestion reads an outcome (any case, a won or lost name)
        return np.where(text.isin(won), "won", np.where(text.isin(lost), "lost", ""))

    outcome = _keys(raw, "outcome")
    by_stage = read(_keys(raw, "deal_stage"))
    return pd.Series(np.where(outcome == "", by_stage, read(outcome)), index=raw.index, dtype=object)


def screen_export(raw: pd.DataFrame, won_stages=(), lost_stages=(),
                  open_empty: dict[str, tuple[int, int]] | None = None) -> tuple[list[Finding], int]:
    """``screen`` on the closed deals of a raw (text) export (outcome from
    ``export_outcomes``); returns the findings and how many closed deals
    were screened. ``open_empty``: as ``screen`` takes it; without it, from
    the open rows of ``raw`` (outcome empty or Open, no close date)."""
    outcome = export_outcomes(raw, won_stages, lost_stages)
    closed_rows = outcome.isin(["won", "lost"]).to_numpy()
    closed, won = raw[closed_rows], (outcome[closed_rows] == "won").to_numpy()
    columns = [c for c in EXPORT_SCREENED if c in raw]
    if open_empty is None:
        open_empty = open_empty_counts(raw[~closed_rows & _open_rows(raw)], columns)
    return screen(closed, won, columns, open_empty), len(closed)


def _open_rows(raw: pd.DataFrame) -> np.ndarray:
    return (_lower_text(raw, "outcome").isin(["", "open"]) & _lower_text(raw, "closed_date").eq("")).to_numpy()


def _keys(raw: pd.DataFrame, column: str) -> pd.Series:
    """A raw column compared as stage names are (``stage_key``; "" when absent or missing)."""
    return stage_keys(raw[column]) if column in raw else pd.Series("", index=raw.index, dtype=object)


def _lower_text(raw: pd.DataFrame, column: str) -> pd.Series:
    """A raw column as stripped lower-case text ("" when absent or missing)."""
    if column not in raw:
        return pd.Series("", index=raw.index)
    codes, lower = _lowered_levels(raw[column])
    return pd.Series(np.append(lower, "")[codes], index=raw.index, dtype=object)


def report_rows(findings: list[Finding], screened: int) -> pd.DataFrame:
    """data_quality_report rows: one per excluded column, its sentence as the detail."""
    return pd.DataFrame({
        "rule": [f"leakage:{f.column}" for f in findings], "action": "exclude",
        "rows": screened, "batch_rows": screened, "share": 1.0 if screened else 0.0,
        "detail": [f.sentence for f in findings],
    })


# --- Driver analysis --------------------------------------------------------------
DRIVER_SCREENED = ("industry", "region", "product_type", "lead_source", "sales_rep_id", "deal_amount",
                   "sales_cycle_days", "cycle_bin", "amount_tier")


def driver_rules(rules, fact: pd.DataFrame):
    """The rules with every driver dimension and importance factor the guard
    excludes left out, plus the findings (screened on fact_deals' closed deals)."""
    findings = screen_deals(fact, [c for c in DRIVER_SCREENED if c in fact or c in POST_CLOSE
                                   or c in DERIVED_FROM])
    out = excluded(findings)
    if not out:
        return rules, findings
    d = rules.drivers
    importance = d.importance.model_copy(update={"factors": [f for f in d.importance.factors if f not in out]})
    drivers = d.model_copy(update={"dimensions": [x for x in d.dimensions if x not in out],
                                   "importance": importance})
    return rules.model_copy(update={"drivers": drivers}), findings
