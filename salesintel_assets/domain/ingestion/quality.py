"""Data-quality gates for a batch of raw deals.

Each rule has one action, as the design's quality table says:

| rule | action |
|---|---|
| schema: required columns present, types parse | block (a cell that does not parse is quarantined) |
| date_logic: closed_date >= created_date | flag for manual review |
| sales_cycle: sales_cycle_days == closed - created | auto-correct, record |
| outcome_values: closed deals only Won / Lost | quarantine |
| duplicates: deal_id unique | keep the most recent version |
| critical_nulls: amount, dates, outcome of closed deals | quarantine |
| missing_dimension: empty rep/segment field | fill "Unknown", record |

Nothing is dropped silently: every row ends up clean, flagged, corrected or
quarantined with its rule and reason, and every rule is counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from salesintel_assets.constants import DIMENSION_COLUMNS, EXPORT_COLUMNS
from salesintel_assets.domain.ingestion.pulls import keep_latest
from salesintel_assets.domain.common.rules import Rules

BLOCK, FLAG, FIX, QUARANTINE, KEEP_LATEST = "block", "flag", "auto_correct", "quarantine", "keep_latest"
RULE_ACTIONS = {
    "schema": BLOCK,
    "duplicates": KEEP_LATEST,
    "critical_nulls": QUARANTINE,
    "outcome_values": QUARANTINE,
    "date_logic": FLAG,
    "sales_cycle": FIX,
    "missing_dimension": FIX,
}
UNKNOWN = "Unknown"
_NUMERIC = ("deal_amount", "sales_cycle_days")
_DATES = ("created_date", "closed_date")


@dataclass
class QualityResult:
    clean: pd.DataFrame          # typed rows kept (flagged and corrected ones included)
    quarantined: pd.DataFrame    # raw rows rejected, with rule and reason
    rule_counts: dict[str, int]  # rows each rule touched
    schema_errors: list[str] = field(default_factory=list)
    batch_rows: int = 0

    @property
    def bad_rows(self) -> int:
        """Rows that broke at least one rule (fixed, flagged or rejected)."""
        if self.schema_errors:
            return self.batch_rows
        touched = len(self.quarantined)
        if not self.clean.empty:
            touched += int((self.clean["needs_review"] | self.clean["cycle_corrected"]
                            | self.clean["dimension_filled"]).sum())
        return touched

    @property
    def bad_share(self) -> float:
        return self.bad_rows / self.batch_rows if self.batch_rows else 0.0

    def breaker_tripped(self, rules: Rules) -> bool:
        breaker = rules.quality.circuit_breaker
        return self.batch_rows >= breaker.min_rows and self.bad_share > breaker.max_bad_share


def validate_deals(raw: pd.DataFrame, rules: Rules) -> QualityResult:
    """Apply every rule to a batch of raw deals: trimmed text as ``conform_raw``
    makes it (plus lineage columns, which are carried through)."""
    counts = {rule: 0 for rule in RULE_ACTIONS}
    missing = [c for c in EXPORT_COLUMNS if c not in raw.columns]
    if missing:
        counts["schema"] = len(raw)
        return QualityResult(_typed_empty(), _quarantine_frame(raw.iloc[:0], [], []), counts,
                             [f"missing required columns: {', '.join(missing)}"], len(raw))

    raw = raw.reset_index(drop=True)
    has_id = raw["deal_id"] != ""
    latest, superseded = keep_latest(raw[has_id] if not has_id.all() else raw)
    if not has_id.all():
        latest = pd.concat([latest, raw[~has_id]]).sort_index()
    counts["duplicates"] = len(superseded)
    rejected = [_quarantine_frame(superseded, ["duplicates"] * len(superseded),
                                  ["superseded by a more recent version of the same deal_id"] * len(superseded))]

    typed, parse_errors, schema_errors = _parse(latest, rules)
    reasons, hits = _quarantine_reasons(latest, typed, parse_errors, rules)
    bad = reasons["rule"].notna()
    for rule, n in hits.items():
        counts[rule] += n
    rejected.append(_quarantine_frame(latest[bad.to_numpy()], reasons.loc[bad, "rule"].tolist(),
                                      reasons.loc[bad, "reason"].tolist()))

    clean = _fix_and_flag(typed[~bad.to_numpy()].copy(), rules)
    counts["date_logic"] = int(clean["needs_review"].sum())
    counts["sales_cycle"] = int(clean["cycle_corrected"].sum())
    counts["missing_dimension"] = int(clean["dimension_filled"].sum())
    return QualityResult(clean.reset_index(drop=True), pd.concat(rejected, ignore_index=True),
                         counts, schema_errors, len(raw))


def _parse(raw: pd.DataFrame, rules: Rules) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Typed copy, a mask of cells that are present but unparseable, and
    schema errors for columns that mostly fail to parse."""
    typed = raw.copy()
    errors = pd.DataFrame(False, index=raw.index, columns=list(_DATES + _NUMERIC))
    schema_errors = []
    for col in _DATES + _NUMERIC + ("stage_entered_date", "last_modified"):
        text = raw[col]
        present = text != ""
        if col in _NUMERIC:
            parsed = _parse_numbers(text.where(present))
        else:
            parsed = _parse_dates(text.where(present))
            if col != "last_modified":
                parsed = parsed.dt.normalize()
        typed[col] = parsed
        if col in errors.columns:
            errors[col] = present & parsed.isna()
            share = errors[col].sum() / max(int(present.sum()), 1)
            if present.sum() and share > rules.quality.max_unparseable_share:
                schema_errors.append(f"{col}: {share:.0%} of values do not parse")
    return typed, errors, schema_errors


def _parse_numbers(text: pd.Series) -> pd.Series:
    """Plain numbers fast; "$4,253" or "4 253 EUR" on a second pass that drops
    currency signs, codes and thousands separators."""
    parsed = pd.to_numeric(text, errors="coerce")
    retry = parsed.isna() & text.notna()
    if retry.any():
        cleaned = text[retry].str.replace(r"[^0-9.\-]", "", regex=True)
        parsed[retry] = pd.to_numeric(cleaned.where(cleaned != ""), errors="coerce")
    return parsed


def _parse_dates(text: pd.Series) -> pd.Series:
    """ISO dates fast; anything else a second, slower pass on the few rows left."""
    parsed = pd.to_datetime(text, errors="coerce", format="ISO8601")
    retry = parsed.isna() & text.notna()
    if retry.any():
        parsed[retry] = pd.to_datetime(text[retry], errors="coerce", format="mixed")
    return parsed


def _is_open(typed: pd.DataFrame, rules: Rules) -> pd.Series:
    return typed["closed_date"].isna() & typed["outcome"].isin(rules.quality.open_outcomes)


def _quarantine_reasons(raw: pd.DataFrame, typed: pd.DataFrame, parse_errors: pd.DataFrame,
                        rules: Rules) -> tuple[pd.DataFrame, dict[str, int]]:
    """The first rule each row breaks (None when it passes), all reasons, and
    how many rows broke each rule."""
    is_open = _is_open(typed, rules)
    outcome_given = typed["outcome"] != ""
    checks: list[tuple[str, pd.Series, object]] = []
    for col, kind in zip(parse_errors.columns, ("date",) * 2 + ("number",) * 2):
        checks.append(("schema", parse_errors[col],
                       lambda i, c=col, k=kind: f"{c} {raw.at[i, c]!r} is not a {k}"))
    checks += [
        ("critical_nulls", typed["deal_id"] == "", "deal_id is empty"),
        ("critical_nulls", typed["deal_amount"].isna() & ~parse_errors["deal_amount"], "deal_amount is empty"),
        ("critical_nulls", typed["created_date"].isna() & ~parse_errors["created_date"], "created_date is empty"),
        ("critical_nulls", ~is_open & typed["closed_date"].isna() & ~parse_errors["closed_date"]
         & outcome_given, "closed deal without closed_date"),
        ("critical_nulls", typed["closed_date"].notna() & ~outcome_given, "closed deal without outcome"),
        ("outcome_values", ~is_open & outcome_given & ~typed["outcome"].isin(rules.quality.valid_outcomes),
         lambda i: f"outcome {raw.at[i, 'outcome']!r} is not one of {rules.quality.valid_outcomes}"),
    ]
    rule = pd.Series(None, index=raw.index, dtype=object)
    reason = pd.Series("", index=raw.index, dtype=object)
    per_rule: dict[str, np.ndarray] = {}
    for name, mask, text in checks:
        hit = mask.fillna(False).to_numpy(bool)
        per_rule[name] = per_rule.get(name, np.zeros(len(raw), dtype=bool)) | hit
        if not hit.any():
            continue
        idx = raw.index[hit]
        rule.loc[idx] = rule.loc[idx].fillna(name)
        words = [text(i) for i in idx] if callable(text) else [text] * len(idx)
        reason.loc[idx] = [f"{r}; {w}" if r else w for r, w in zip(reason.loc[idx], words)]
    hits = {name: int(mask.sum()) for name, mask in per_rule.items()}
    return pd.DataFrame({"rule": rule, "reason": reason}), hits


def _fix_and_flag(deals: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """Flag date-logic breaks, recompute sales cycles, fill empty dimensions."""
    is_open = _is_open(deals, rules)
    deals["outcome"] = deals["outcome"].where(~is_open, "Open")
    review = deals["closed_date"] < deals["created_date"]
    deals["needs_review"] = review.to_numpy(bool)
    deals["review_reason"] = np.where(review, "closed_date is before created_date", None)

    expected = (deals["closed_date"] - deals["created_date"]).dt.days.astype("float64")
    given = deals["sales_cycle_days"]
    differs = ~((given == expected) | (given.isna() & expected.isna()))
    deals["cycle_corrected"] = differs.to_numpy(bool)
    deals["original_sales_cycle_days"] = given.where(differs)
    deals["sales_cycle_days"] = expected

    filled = np.zeros(len(deals), dtype=bool)
    for col in ("sales_rep_id", "deal_stage") + DIMENSION_COLUMNS:
        empty = (deals[col] == "").to_numpy()
        deals.loc[empty, col] = UNKNOWN
        filled |= empty
    deals["dimension_filled"] = filled
    unknown_stage = ~deals["deal_stage"].isin(rules.stages.order)
    deals.loc[unknown_stage, "needs_review"] = True
    deals.loc[unknown_stage, "review_reason"] = deals.loc[unknown_stage, "review_reason"].fillna(
        "deal_stage is not in the rules file's stage order")
    return deals


def _quarantine_frame(raw: pd.DataFrame, rules_hit: list[str], reasons: list[str]) -> pd.DataFrame:
    out = raw.copy().reset_index(drop=True)
    out.insert(0, "rule", pd.Series(rules_hit, dtype=object))
    out.insert(1, "reason", pd.Series(reasons, dtype=object))
    return out


def _typed_empty() -> pd.DataFrame:
    return pd.DataFrame(columns=list(EXPORT_COLUMNS) + ["needs_review", "review_reason", "cycle_corrected",
                                                        "original_sales_cycle_days", "dimension_filled"])


def report_rows(result: QualityResult, rules: Rules) -> pd.DataFrame:
    """One row per rule for this batch: how many rows it touched and what was done."""
    rows = [
        {"rule": rule, "action": RULE_ACTIONS[rule], "rows": result.rule_counts.get(rule, 0)}
        for rule in RULE_ACTIONS
    ]
    report = pd.DataFrame(rows)
    report["batch_rows"] = result.batch_rows
    report["share"] = report["rows"] / result.batch_rows if result.batch_rows else 0.0
    report["bad_rows"] = result.bad_rows
    report["bad_share"] = result.bad_share
    report["breaker_tripped"] = result.breaker_tripped(rules)
    report["detail"] = "; ".join(result.schema_errors) if result.schema_errors else ""
    return report
