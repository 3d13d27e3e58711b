"""Data-quality gates for a batch of raw deals.

Each rule has one action, as the design's quality table says:

| rule | action |
|---|---|
| schema: required columns present, columns mostly parse | block the pull |
| malformed_row: a line with more or fewer fields than the header | quarantine |
| unparseable_value: a date or amount that does not parse exactly | quarantine |
| duplicates: deal_id unique | keep the most recent version, record the others |
| critical_nulls: id, created date; amount, closed date and outcome of closed deals | quarantine |
| outcome_values: closed deals only Won / Lost, any case (stage and outcome agree) | quarantine |
| negative_amount: deal_amount below zero | quarantine |
| future_date: created after the analysis date | quarantine |
| expected_close_date: outcome Open with a closed_date, the stage no end (an expected close) | clear the date, record |
| date_logic: closed_date >= created_date | flag for manual review |
| unknown_stage: deal_stage not in the rules file's stages or mapping | keep the name without a stage position, record |
| closed_stage_open_deal: an unknown stage name that says won, lost or closed on a deal without a close | flag for manual review |
| stage_mapping: the CRM's stage names mapped to the canonical stages | auto-correct, record |
| sales_cycle: sales_cycle_days == closed - created | auto-correct, record |
| missing_dimension: empty rep/segment field | fill "Unknown", record |
| missing_amount: an open deal's empty deal_amount | keep it unknown, record |

Nothing is dropped silently: every row ends up clean, flagged, corrected or
quarantined with its rule and reason, and every rule is counted. Only
quarantined and flagged rows count toward the circuit breaker: a blank
optional field or a recomputed cycle is not a broken row. Nor is a stage name
the rules file does not know: a CRM's own pipeline (HubSpot, Salesforce and a
CSV alike) is analysed without stage positions until the names are mapped, and
the run summary says so first, rather than the whole pull being refused; only
a name that reads as an end (won, lost, closed) on a deal without a close is
flagged, because the export may have left its close out. Neither is an open
deal without an amount: many CRMs leave it empty until a price is agreed (a
closed deal's amount is what it was won or lost at, and stays required). It
stays unknown, never 0: revenue figures count only the deals with an amount
and say how many have none.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from salesintel_assets.constants import DIMENSION_COLUMNS, EXPORT_COLUMNS
from salesintel_assets.domain.common.rules import Rules, stage_key, stage_keys
from salesintel_assets.domain.ingestion import values
from salesintel_assets.domain.ingestion.pulls import keep_latest

BLOCK, FLAG, FIX, QUARANTINE, KEEP_LATEST = "block", "flag", "auto_correct", "quarantine", "keep_latest"
RULE_ACTIONS = {
    "schema": BLOCK,
    "malformed_row": QUARANTINE,
    "unparseable_value": QUARANTINE,
    "duplicates": KEEP_LATEST,
    "critical_nulls": QUARANTINE,
    "outcome_values": QUARANTINE,
    "negative_amount": QUARANTINE,
    "future_date": QUARANTINE,
    "expected_close_date": FIX,
    "date_logic": FLAG,
    "unknown_stage": FIX,
    "closed_stage_open_deal": FLAG,
    "stage_mapping": FIX,
    "sales_cycle": FIX,
    "missing_dimension": FIX,
    "missing_amount": FIX,
}
QUARANTINE_RULES = tuple(rule for rule, action in RULE_ACTIONS.items() if action in (QUARANTINE, KEEP_LATEST))
UNKNOWN = "Unknown"
LINE = "_line"        # the row's line in the source file, when it has one
DEFECT = "_defect"    # why the source could not split the line into fields, "" when it could
_DATES = ("created_date", "closed_date")
_BREAKER_EXAMPLES = 3
# Words in a stage name that say the deal ended.
_END_WORDS = r"\b(?:won|lost|closed|dead|disqualified|cancell?ed|churned)\b"


@dataclass
class QualityResult:
    clean: pd.DataFrame          # typed rows kept (flagged and corrected ones included)
    quarantined: pd.DataFrame    # raw rows rejected, with rule and reason
    rule_counts: dict[str, int]  # rows each rule touched
    schema_errors: list[str] = field(default_factory=list)
    batch_rows: int = 0

    @property
    def bad_rows(self) -> int:
        """Rows that were rejected or flagged (superseded versions, fills and
        recomputed cycles are not broken rows)."""
        if self.schema_errors:
            return self.batch_rows
        rejected = int((self.quarantined["rule"] != "duplicates").sum()) if len(self.quarantined) else 0
        flagged = int(self.clean["needs_review"].sum()) if len(self.clean) else 0
        return rejected + flagged

    @property
    def bad_share(self) -> float:
        return self.bad_rows / self.batch_rows if self.batch_rows else 0.0

    def breaker_tripped(self, rules: Rules) -> bool:
        breaker = rules.quality.circuit_breaker
        return self.batch_rows >= breaker.min_rows and self.bad_share > breaker.max_bad_share


def stated_formats(rules: Rules, date_order: str | None = None, decimal_mark: str | None = None) -> values.Formats:
    """Formats the user stated (command line or environment first, then the
    rules file); None leaves the choice to the file's evidence."""
    quality = rules.quality
    return values.Formats(
        date_order or (None if quality.date_order == "auto" else quality.date_order),
        decimal_mark or (None if quality.decimal_mark == "auto" else quality.decimal_mark))


def validate_deals(raw: pd.DataFrame, rules: Rules, *, formats: values.Formats | None = None,
                   as_of: pd.Timestamp | None = None, where: str = "the batch") -> QualityResult:
    """Apply every rule to a batch of raw deals: trimmed text as ``conform_raw``
    makes it (plus lineage columns, which are carried through). ``formats``
    are the file-wide choices (decided from this batch when not given);
    ``as_of`` enables the future-date rule."""
    counts = {rule: 0 for rule in RULE_ACTIONS}
    missing = [c for c in EXPORT_COLUMNS if c not in raw.columns]
    if missing:
        counts["schema"] = len(raw)
        return QualityResult(_typed_empty(), _quarantine_frame(raw.iloc[:0], [], []), counts,
                             [f"missing required columns: {', '.join(missing)}"], len(raw))

    raw = raw.reset_index(drop=True)
    batch_rows = len(raw)
    malformed = (raw[DEFECT] != "").to_numpy(bool) if DEFECT in raw.columns else np.zeros(len(raw), bool)
    counts["malformed_row"] = int(malformed.sum())
    rejected = [_quarantine_frame(raw[malformed], ["malformed_row"] * int(malformed.sum()),
                                  _with_lines(raw[malformed], raw.loc[malformed, DEFECT].tolist()))] \
        if malformed.any() else []
    raw = rows_where(raw, ~malformed)

    formats = formats or values.decide_formats(raw, stated_formats(rules), where)
    canonical, value_reasons, bad_cells = values.normalize_frame(raw, formats, rules.quality.max_deal_amount)
    has_id = canonical["deal_id"] != ""
    latest, superseded = keep_latest(rows_where(canonical, has_id))
    if not has_id.all():
        latest = pd.concat([latest, canonical[~has_id]]).sort_index()
    counts["duplicates"] = len(superseded)
    rejected.append(_quarantine_frame(superseded, ["duplicates"] * len(superseded), _with_lines(
        superseded, ["superseded by a more recent version of the same deal_id"] * len(superseded))))

    if not latest.index.equals(canonical.index):
        bad_cells, value_reasons = bad_cells.loc[latest.index], value_reasons.loc[latest.index]
    typed = _parse(latest, bad_cells)
    typed["outcome"] = _canonical_outcomes(typed["outcome"], rules)
    schema_errors = _mostly_unparseable(latest, bad_cells, rules)
    mapped = _apply_stage_names(typed, rules)
    expected_close = _clear_expected_close_dates(typed, rules)
    reasons, hits = _quarantine_reasons(latest, typed, value_reasons, rules, as_of)
    bad = reasons["rule"].notna()
    for rule, n in hits.items():
        counts[rule] += n
    rejected_rows = rows_where(latest, bad.to_numpy())
    rejected.append(_quarantine_frame(rejected_rows, reasons.loc[bad, "rule"].tolist(),
                                      _with_lines(rejected_rows, reasons.loc[bad, "reason"].tolist())))

    keep = ~bad.to_numpy()
    clean = _fix_and_flag(rows_where(typed, keep), rules)
    clean["stage_mapped"] = mapped[keep]
    counts["stage_mapping"] = int(clean.pop("stage_mapped").sum())
    counts["date_logic"] = int(clean["date_logic"].sum())
    counts["unknown_stage"] = int(clean["unknown_stage"].sum())
    counts["closed_stage_open_deal"] = int(clean["closed_stage_open_deal"].sum())
    counts["sales_cycle"] = int(clean["cycle_corrected"].sum())
    counts["missing_dimension"] = int(clean["dimension_filled"].sum())
    counts["missing_amount"] = int(clean["deal_amount"].isna().sum())
    counts["expected_close_date"] = int(expected_close[keep].sum())
    clean = clean.drop(columns=["date_logic", "unknown_stage", "closed_stage_open_deal", LINE, DEFECT],
                       errors="ignore")
    return QualityResult(renumbered(clean), pd.concat(rejected, ignore_index=True), counts, schema_errors,
                         batch_rows)


def rows_where(frame: pd.DataFrame, mask) -> pd.DataFrame:
    """``frame[mask]``, without copying a million rows when the mask keeps
    them all (the usual clean batch) or drops them all."""
    mask = np.asarray(mask, dtype=bool)
    if mask.all():
        return frame
    return frame.iloc[:0] if not mask.any() else frame[mask]


def renumbered(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows numbered 0..n-1 (a frame that is so already is not copied)."""
    if isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0 and frame.index.step == 1:
        return frame
    return frame.reset_index(drop=True)


def _with_lines(rows: pd.DataFrame, reasons: list[str]) -> list[str]:
    """Reasons prefixed with the row's line in the file, when it has one."""
    if LINE not in rows.columns:
        return list(reasons)
    return [f"line {line}: {reason}" if str(line) not in ("", "nan", "None") else reason
            for line, reason in zip(rows[LINE].tolist(), reasons)]


def _parse(raw: pd.DataFrame, bad_cells: pd.DataFrame) -> pd.DataFrame:
    """Typed copy of canonical text; cells that did not parse become missing."""
    typed = raw.copy()
    for col, fmt in [("created_date", "%Y-%m-%d"), ("closed_date", "%Y-%m-%d"),
                     ("stage_entered_date", "%Y-%m-%d"), ("last_modified", "%Y-%m-%dT%H:%M:%S")]:
        typed[col] = pd.to_datetime(raw[col].where(raw[col] != ""), format=fmt, errors="coerce")
    typed["deal_amount"] = pd.to_numeric(raw["deal_amount"].where(raw["deal_amount"] != ""), errors="coerce")
    cycle = pd.to_numeric(raw["sales_cycle_days"].where(raw["sales_cycle_days"] != ""), errors="coerce")
    typed["sales_cycle_days"] = cycle.where(np.isfinite(cycle.astype("float64")))
    for col in bad_cells.columns:
        if bad_cells[col].any():
            typed[col] = typed[col].where(~bad_cells[col])
    return typed


def _mostly_unparseable(raw: pd.DataFrame, bad_cells: pd.DataFrame, rules: Rules) -> list[str]:
    """A column whose values mostly fail to parse is a schema error, not bad rows."""
    errors = []
    for col in bad_cells.columns:
        present = int((raw[col] != "").sum())
        share = int(bad_cells[col].sum()) / max(present, 1)
        if present and share > rules.quality.max_unparseable_share:
            example = raw.loc[bad_cells[col], col].iloc[0]
            errors.append(f"{col}: {share:.0%} of values do not parse (e.g. {example!r})")
    return errors


def _canonical_outcomes(outcome: pd.Series, rules: Rules) -> pd.Series:
    """Outcomes as the rules file spells them, compared like stage names
    (``stage_key``): "won", "WON" or a won stage name such as "Closed Won"
    is Won, "lost" and the lost names Lost, "open" Open. Anything else stays
    as written, for the outcome rules to judge."""
    spelled = {stage_key(v): v for v in rules.quality.valid_outcomes + rules.quality.open_outcomes}
    spelled |= {key: "Won" for key in rules.stages.won_names} | {key: "Lost" for key in rules.stages.lost_names}
    return stage_keys(outcome).map(spelled).fillna(outcome).astype(object)


def _apply_stage_names(typed: pd.DataFrame, rules: Rules) -> np.ndarray:
    """Map the CRM's stage names to the canonical stages in place (a name that
    means won or lost also sets an empty outcome); True where a name changed."""
    stages = rules.stages
    key = stage_keys(typed["deal_stage"])
    canonical = key.map(stages.lookup)
    implied = pd.Series(np.where(key.isin(stages.won_names), "Won",
                                 np.where(key.isin(stages.lost_names), "Lost", "")), index=typed.index)
    typed["implied_outcome"] = implied
    open_outcome = typed["outcome"].isin(rules.quality.open_outcomes)
    typed["outcome"] = typed["outcome"].where(~((implied != "") & open_outcome), implied)
    new_stage = canonical.where(canonical.notna(), typed["deal_stage"])
    mapped = (new_stage != typed["deal_stage"]).to_numpy(bool)
    # What the CRM calls the stage, for the words its users read (the analysis uses the canonical stage).
    typed["crm_stage"] = typed["deal_stage"]
    typed["deal_stage"] = new_stage
    return mapped


def _clear_expected_close_dates(typed: pd.DataFrame, rules: Rules) -> np.ndarray:
    """An outcome that says Open (not an empty one) with a close date, in a
    stage that does not say the deal ended: the CRM's expected close date,
    which Salesforce and many reports fill in for every open opportunity,
    past or ahead. The deal is open; the date is cleared in place (the raw
    row keeps it). Quarantined, a whole open pipeline would trip the circuit
    breaker. A closing stage (the last one, or a name reading as an end)
    with Open contradicts itself and stays an outcome error. True where
    cleared."""
    cleared = (typed["closed_date"].notna() & (typed["outcome"] != "")
               & typed["outcome"].isin(rules.quality.open_outcomes)).to_numpy(bool)
    if cleared.any():   # the stage names only of the rows that need them: a million strings is not free
        stage = typed.loc[cleared, "deal_stage"]
        ended = (stage_keys(stage) == stage_key(rules.stages.order[-1])).to_numpy(bool) | _reads_as_end(stage)
        cleared[cleared] = ~ended
        typed.loc[cleared, "closed_date"] = pd.NaT
    return cleared


def _reads_as_end(stages: pd.Series) -> np.ndarray:
    """Per row: its stage name has a word that says the deal ended (``_END_WORDS``), each name read once."""
    codes, names = pd.factorize(stages, use_na_sentinel=False)   # few names, many deals
    return np.asarray(pd.Index(names).astype(str).str.lower().str.contains(_END_WORDS), bool)[codes]


def _is_open(typed: pd.DataFrame, rules: Rules) -> pd.Series:
    return typed["closed_date"].isna() & typed["outcome"].isin(rules.quality.open_outcomes)


def _quarantine_reasons(raw: pd.DataFrame, typed: pd.DataFrame, value_reasons: pd.Series, rules: Rules,
                        as_of: pd.Timestamp | None) -> tuple[pd.DataFrame, dict[str, int]]:
    """The first rule each row breaks (None when it passes), all reasons, and
    how many rows broke each rule."""
    is_open = _is_open(typed, rules)
    outcome_given = typed["outcome"] != ""
    unparsed = value_reasons != ""
    implied = typed["implied_outcome"]
    checks: list[tuple[str, pd.Series, object]] = [
        ("unparseable_value", unparsed, lambda i: value_reasons[i]),
        ("critical_nulls", typed["deal_id"] == "", "deal_id is empty"),
        ("critical_nulls", ~is_open & (raw["deal_amount"] == ""), "closed deal without deal_amount"),
        ("critical_nulls", raw["created_date"] == "", "created_date is empty"),
        ("critical_nulls", ~is_open & (raw["closed_date"] == "") & outcome_given,
         "closed deal without closed_date"),
        ("critical_nulls", typed["closed_date"].notna() & ~outcome_given, "closed deal without outcome"),
        ("outcome_values", (implied != "") & (typed["outcome"] != implied),
         lambda i: f"deal_stage {raw.at[i, 'deal_stage']!r} means {implied[i]} but outcome is "
                   f"{raw.at[i, 'outcome']!r}"),
        ("outcome_values", ~is_open & outcome_given & ~typed["outcome"].isin(rules.quality.valid_outcomes),
         lambda i: f"outcome {raw.at[i, 'outcome']!r} is not one of {rules.quality.valid_outcomes}"),
        ("negative_amount", typed["deal_amount"] < 0,
         lambda i: f"deal_amount {raw.at[i, 'deal_amount']} is negative"),
    ]
    if as_of is not None:
        day = pd.Timestamp(as_of).normalize()
        for col in _DATES:
            checks.append(("future_date", typed[col] > day,
                           lambda i, c=col: f"{c} {raw.at[i, c]} is after the analysis date {day.date()}"))
    rule = pd.Series(None, index=raw.index, dtype=object)
    reason = pd.Series("", index=raw.index, dtype=object)
    per_rule: dict[str, np.ndarray] = {}
    for name, mask, text in checks:
        hit = mask.fillna(False).to_numpy(bool)
        if name != "unparseable_value":
            hit &= ~unparsed.to_numpy(bool)   # a value that did not parse is no evidence of anything else
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
    """Flag date-logic breaks and open deals whose unknown stage name says
    they ended, mark unknown stages, recompute sales cycles, fill empty
    dimensions."""
    deals = deals.drop(columns=["implied_outcome"])
    is_open = _is_open(deals, rules)
    deals["outcome"] = deals["outcome"].where(~is_open, "Open")
    review = (deals["closed_date"] < deals["created_date"]).to_numpy(bool)
    deals["date_logic"] = review
    deals["review_reason"] = np.where(review, "closed_date is before created_date", None)

    expected = (deals["closed_date"] - deals["created_date"]).dt.days.astype("float64")
    given = deals["sales_cycle_days"].astype("float64")
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
    deals["unknown_stage"] = unknown_stage.to_numpy(bool)
    ends = (unknown_stage & is_open).to_numpy(bool)
    if ends.any():
        ends[ends] = _reads_as_end(deals.loc[ends, "deal_stage"])
    deals["closed_stage_open_deal"] = ends
    if ends.any():   # the words only for the rows that need them: a million strings is not free
        stage_reason = ("deal_stage " + deals.loc[ends, "deal_stage"].astype(str)
                        + " reads as closed but the deal has no closed_date or outcome")
        deals.loc[ends, "review_reason"] = (
            (deals.loc[ends, "review_reason"].fillna("") + "; ").str.lstrip("; ") + stage_reason)
    deals["needs_review"] = review | ends
    return deals


def _quarantine_frame(raw: pd.DataFrame, rules_hit: list[str], reasons: list[str]) -> pd.DataFrame:
    out = raw.drop(columns=[LINE, DEFECT], errors="ignore").reset_index(drop=True)
    out.insert(0, "rule", pd.Series(rules_hit, dtype=object))
    out.insert(1, "reason", pd.Series(reasons, dtype=object))
    return out


def _typed_empty() -> pd.DataFrame:
    return pd.DataFrame(columns=list(EXPORT_COLUMNS) + ["needs_review", "review_reason", "cycle_corrected",
                                                        "original_sales_cycle_days", "dimension_filled"])


def with_superseded(result: QualityResult, superseded: pd.DataFrame) -> QualityResult:
    """Add the older versions of deals (dropped before change detection) as
    recorded duplicates."""
    if superseded.empty:
        return result
    frame = _quarantine_frame(superseded, ["duplicates"] * len(superseded), _with_lines(
        superseded, ["superseded by a more recent version of the same deal_id"] * len(superseded)))
    counts = {**result.rule_counts, "duplicates": result.rule_counts.get("duplicates", 0) + len(superseded)}
    return QualityResult(result.clean, pd.concat([result.quarantined, frame], ignore_index=True), counts,
                         result.schema_errors, result.batch_rows + len(superseded))


def report_rows(result: QualityResult, rules: Rules, detail: str = "") -> pd.DataFrame:
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
    report["detail"] = detail or ("; ".join(result.schema_errors) if result.schema_errors else "")
    return report


def breaker_sentence(result: QualityResult, rules: Rules, where: str) -> str:
    """Why the breaker tripped, in one sentence: the rules, their counts and a
    few example rows."""
    limit = rules.quality.circuit_breaker.max_bad_share
    parts = []
    flagged = result.clean[result.clean["needs_review"]] if len(result.clean) else result.clean
    for rule, action in RULE_ACTIONS.items():
        if action == QUARANTINE:
            rows = result.quarantined[result.quarantined["rule"] == rule]
            examples = [f"{r['deal_id'] or 'no id'}: {r['reason']}" for _, r in rows.head(2).iterrows()]
        elif action == FLAG:
            needle = "closed_date is before" if rule == "date_logic" else "reads as closed"
            rows = flagged[flagged["review_reason"].fillna("").str.contains(needle)]
            examples = [f"{r['deal_id']}: {r['review_reason']}" for _, r in rows.head(2).iterrows()]
        else:
            continue
        if len(rows):
            parts.append(f"{rule} {len(rows):,} (e.g. {' | '.join(examples)})")
    return (f"The pull from {where} was not merged: {result.bad_rows:,} of its {result.batch_rows:,} new or changed rows "
            f"({result.bad_share:.1%}, limit {limit:.0%}) broke rules - {'; '.join(parts)}; fix these rows in "
            "the export (or map stage names, state formats or raise quality.circuit_breaker.max_bad_share "
            "in the rules file) and run again.")
