"""Anomaly detection: segment win-rate dips and spikes, slower cycles, older
open deals, more deals still open at an age (a pipeline that stopped
closing), new-pipeline quality drops, shifts of the deal metrics, and
stalled deals. One row per anomaly; the alert engine turns them into alerts.

How a segment anomaly is decided (thresholds in the rules file):
1. Every segment (whole business, each single dimension, the configured
   pairs) with enough deals is tested in each window: win rates and shares
   with an exact beta-binomial test, cycles, ages and metrics with a
   weighted rank test, always against a baseline re-weighted for each
   segment's creation volume (``anomaly_samples``).
2. Benjamini-Hochberg over ALL tests of the run; a candidate needs
   q <= ``fdr_alpha`` and a change of at least ``min_effect``.
3. Selection (``anomaly_selection``): the best window per segment, the
   hierarchy rule for a segment and one inside it, findings explained by a
   stronger overlapping one, and the step-up re-applied to the distinct
   findings.
4. Each finding gets a root-cause drill-down (rate vs mix by sub-segment),
   the money at stake, a severity and a plain-words explanation.

Money at stake (``amount_at_stake``): win-rate changes: the segment's open
pipeline amount x |rate change| (revenue that would close less, or more, if
the new rate holds); slower cycles, older open deals and metric shifts: the
segment's open pipeline amount; quality drops: the open amount of the
window's new low-quality deals; more deals still open: the open amount of
the segment's deals of those ages x the part of their share still open
beyond the expected (what would have closed by now as usual); stalled
deals: the deal's amount x the drop in its win chance attributable to the
stall (a deal fresh in its stage vs deals that lasted as long; 0 when there
is not enough data, see stalled_deals).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from salesintel_assets.domain.anomalies import explanations as text
from salesintel_assets.domain.anomalies import quarter_ends
from salesintel_assets.domain.anomalies import recurrence
from salesintel_assets.domain.anomalies.samples import (
    NEVER, DealDays, SegmentCurves, align_metrics, baseline_start, closed_comparison, closed_window,
    created_comparison, day_number, entry_quality, metric_values, open_age_comparison, quantile_edges, season_check,
    to_timestamp,
)
from salesintel_assets.domain.anomalies.seasonality import SeasonCheck
from salesintel_assets.domain.anomalies.selection import SEGMENT_COLUMNS, keys_of, run_tests, select_findings
from salesintel_assets.domain.anomalies.significance import Comparison, SegmentCodes, in_segment
from salesintel_assets.domain.anomalies.root_cause import drill_down
from salesintel_assets.domain.common.rules import Rules
from salesintel_assets.domain.anomalies.stalled_deals import stalled_deals
from salesintel_assets.domain.anomalies.still_open import still_open_comparison

ANOMALY_COLUMNS = {
    "anomaly_id": "object", "anomaly_type": "object", "metric": "object", "segment": "object",
    "dimension": "object", "direction": "object", "window_start": "datetime64[ns]",
    "window_end": "datetime64[ns]", "window_days": "Int64", "observed": "float64", "expected": "float64",
    "effect": "float64", "n": "Int64", "baseline_n": "Int64", "p_value": "float64", "q_value": "float64",
    "severity": "object", "explanation": "object", "root_cause": "object", "deal_id": "object",
    "sales_rep_id": "object", "amount_at_stake": "float64", "historical_win_rate": "float64",
    "historical_win_low": "float64", "historical_win_high": "float64", "baseline_win_rate": "float64",
    "as_of_date": "datetime64[ns]",
}
# What the layer reads from the warehouse.
FACT_COLUMNS = ("deal_id", "created_date", "closed_date", "sales_rep_id", "industry", "region", "product_type",
                "lead_source", "deal_stage", "deal_amount", "outcome", "is_open", "needs_review",
                "stage_entered_date", "days_in_stage", "crm_stage")
METRIC_COLUMNS = ("deal_id", "pvs", "smi", "dqs", "lead_source_score", "industry_score", "rep_score")
TRANSITION_COLUMNS = ("deal_id", "stage", "exited_date", "days_in_stage")
SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}
FAMILY_OF_TYPE = {"win_rate_dip": "win_rate", "win_rate_spike": "win_rate", "cycle_slowdown": "cycle",
                  "open_age_increase": "open_age", "still_open_increase": "still_open", "quality_drop": "quality",
                  "metric_shift": "metric_shift"}
FAMILY_KIND = {"win_rate": "rate", "quality": "rate", "still_open": "rate", "cycle": "days", "open_age": "days",
               "metric_shift": "value"}
FAMILY_WHAT = {"win_rate": "win rate", "quality": "acceptable share", "still_open": "share still open",
               "cycle": "mean cycle", "open_age": "mean age", "metric_shift": "mean"}


@dataclass
class AnomalyReport:
    anomalies: pd.DataFrame                # the output contract, one row per anomaly
    tests: pd.DataFrame                    # every segment test made, with its q-value
    notes: list[str] = field(default_factory=list)
    stalled_flagged: int = 0               # stalled deals before the cap


def anomaly_id(anomaly_type: str, metric: str, segment: str, window_days, window_end) -> str:
    """Stable across re-runs: a hash of what the anomaly is about and when."""
    days = "" if window_days is None or pd.isna(window_days) else str(int(window_days))
    key = f"{anomaly_type}|{metric}|{segment}|{days}|{pd.Timestamp(window_end):%Y-%m-%d}"
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def empty_anomalies() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in ANOMALY_COLUMNS.items()})


def build_comparisons(fact: pd.DataFrame, metrics: pd.DataFrame | None, rules: Rules, deals: DealDays,
                      codes: SegmentCodes, only: set[tuple[str, int]] | None = None,
                      seasons: SeasonCheck | None = None) -> tuple[list[Comparison], list[str]]:
    """Every window x measurement the run tests (only these (family, window
    days) pairs when ``only`` is given; an open-age or still-open one stands
    for its family), seasonal or not as ``seasons`` says (judged on the deals
    when not given)."""
    ar = rules.anomalies
    curves = SegmentCurves(deals, codes)
    cycle = (deals.closed - deals.created).astype("float64")
    comps: list[Comparison] = []
    notes: list[str] = []

    families = None if only is None else {family for family, _ in only}
    windows = None if only is None else {w for _, w in only}

    def uses(test, family: str, w: int) -> bool:
        return (only is None or (family, w) in only) and (test.windows_days is None or w in test.windows_days)

    acceptable = known = None
    if families is None or "quality" in families:
        acceptable, known, how = entry_quality(fact, metrics, rules, deals)
        notes.append(how)
    notes.extend(_creation_note(deals, ar.baseline_days))
    seasons = seasons or season_check(deals, rules)
    notes.append(seasons.note)
    metric_cols = {m: metric_values(metrics, m) for m in ar.metric_shift.metrics}
    for m, values in metric_cols.items():
        if values is None:
            notes.append(f"{m}: no deal metrics, its distribution was not tested")
    for w in ar.windows_days:
        if windows is not None and w not in windows:
            continue
        if uses(ar.quality, "quality", w):
            comps.append(created_comparison(deals, rules, w, acceptable, known))
        history = closed_history_days(deals, deals.as_of - w + 1)
        if history < MIN_CLOSED_HISTORY_DAYS:
            notes.append(f"deals closed in the last {w} days: not compared, the {history} days of closes before "
                         f"them are fewer than a quarter's {MIN_CLOSED_HISTORY_DAYS} (too short to tell a change "
                         "from where in the quarter the window falls)")
            continue
        cw = closed_window(deals, curves, rules, w, seasons.seasonal)
        if uses(ar.win_rate, "win_rate", w):
            comps.append(closed_comparison(cw, rules, family="win_rate", metric="win_rate", kind="rate",
                                           alternative="two-sided", values=deals.won.astype("float64"),
                                           test=ar.win_rate))
        if uses(ar.cycle, "cycle", w):
            comps.append(closed_comparison(cw, rules, family="cycle", metric="sales_cycle_days", kind="rank",
                                           alternative="greater", values=cycle, test=ar.cycle,
                                           bins=ar.max_days + 1))
        for m, values in metric_cols.items():
            if values is None or not uses(ar.metric_shift, "metric_shift", w):
                continue
            valid = np.isfinite(values)
            edges = quantile_edges(np.concatenate([values[cw.rows], values[cw.base_rows]]),
                                   ar.metric_shift.value_bins)
            comps.append(closed_comparison(cw, rules, family="metric_shift", metric=m, kind="rank",
                                           alternative="two-sided", values=values, valid=valid,
                                           test=ar.metric_shift, bins=len(edges) + 1, bin_edges=edges))
    open_age = open_age_comparison(deals, curves, rules, seasons.seasonal) \
        if families is None or "open_age" in families else None
    if open_age is None and families is None:
        notes.append("open deals' ages: not enough history before the baseline to compare ages")
    elif open_age is not None:
        comps.append(open_age)
    if families is None or "still_open" in families:
        still, why = still_open_comparison(deals, curves, rules, seasons.seasonal)
        comps.extend([still] if still is not None else [])
        notes.extend([why] if why and families is None else [])
    for comp in comps:
        notes.extend(comp.notes)
    return comps, notes


# A baseline of closes shorter than a quarter holds only some months of the quarter: a window in another
# month differs by the season alone (Maven's sample as of 2017-05-31, its second month of closes: a
# "slower cycle", 68 days against April's 7, where every quarter's second month runs that long).
MIN_CLOSED_HISTORY_DAYS = 91


def closed_history_days(deals: DealDays, before: int) -> int:
    """Days from the first usable close to ``before`` (0 when none closed before it)."""
    closed = deals.closed[deals.usable_closed & (deals.closed < before)]
    return int(before - closed.min()) if len(closed) else 0


def _creation_note(deals: DealDays, baseline_days: int, days: int = 30) -> list[str]:
    """Say so when new deals all but stopped arriving (an export that no
    longer lists new deals looks like this): recent closes are then the long
    deals only, which the exposure weights account for."""
    created = deals.created
    recent = int(((created > deals.as_of - days) & (created <= deals.as_of)).sum())
    usual = ((created > deals.as_of - days - baseline_days) & (created <= deals.as_of - days)).sum()
    usual = usual * days / baseline_days
    if usual >= 20 and recent < 0.25 * usual:
        return [f"only {recent} deals were created in the last {days} days against about {usual:.0f} usually: "
                "the source may have stopped listing new deals; recent closes are compared with what the "
                "deals actually created could have produced"]
    return []


def reported_effect_size(table: pd.DataFrame) -> np.ndarray:
    """``effect_size`` of rows of the anomalies table (rates and cycles; a
    metric shift's rank effect is not kept in the table: NaN)."""
    family = table["anomaly_type"].map(FAMILY_OF_TYPE)
    relative = table["observed"].to_numpy(dtype="float64") / np.maximum(
        table["expected"].to_numpy(dtype="float64"), 1.0) - 1
    sign = np.where(table["direction"] == "up", 1.0, -1.0)
    rate = np.abs(table["effect"].to_numpy(dtype="float64"))
    days = np.where(np.sign(relative) == sign, np.abs(relative), 0.0)
    return np.select([family.isin(["win_rate", "quality", "still_open"]), family.isin(["cycle", "open_age"])],
                     [rate, days], default=np.nan)


def detect_anomalies(fact: pd.DataFrame, deal_metrics: pd.DataFrame | None, transitions: pd.DataFrame | None,
                     rules: Rules, as_of) -> AnomalyReport:
    """The anomalies of one analysis date."""
    as_of = pd.Timestamp(as_of).normalize()
    if fact is None or not len(fact):
        return AnomalyReport(empty_anomalies(), pd.DataFrame(), ["no deals"])
    if not fact.index.equals(pd.RangeIndex(len(fact))):   # positions are row numbers; no copy when they already are
        fact = fact.reset_index(drop=True)
    rules, single_notes = _without_single_valued(fact, rules)
    deals, backlog_notes = DealDays.from_fact(fact, as_of).without_backlog(fact, rules.quality.max_quiet_days)
    # Stalled deals keep the sweeps' closes: a deal left to linger until it was swept out lost is what
    # staleness leads to.
    with_sweeps = deals
    deals, swept_notes = deals.without_clean_ups()
    deal_metrics = align_metrics(fact, deal_metrics)
    codes = SegmentCodes(fact, SEGMENT_COLUMNS)
    seasons, quarter_notes = season_check(deals, rules), []
    if seasons.shown:   # a season's partition does not depend on where quarters end; its names do
        rules, quarter_notes = _on_quarters_of_the_wins(rules, deals)
        seasons = season_check(deals, rules) if quarter_notes else seasons
    comps, notes = build_comparisons(fact, deal_metrics, rules, deals, codes, seasons=seasons)
    notes = single_notes + backlog_notes + swept_notes + quarter_notes + notes
    tests = run_tests(comps, codes, rules)
    rows = []
    if len(tests):
        found = select_findings(tests, comps, codes, rules)
        found, yearly = _without_yearly_patterns(found, fact, deal_metrics, deals, codes, rules, seasons.seasonal)
        notes.extend(yearly)
        rows = [_segment_row(r, comps[int(r["comp_id"])], codes, deals, rules, len(tests))
                for _, r in found.iterrows()]
    stalled = stalled_deals(fact, deal_metrics, transitions, rules, with_sweeps)
    notes.extend(stalled.notes)
    if stalled.flagged > len(stalled.deals):
        notes.append(f"{stalled.flagged} open deals are past a stall threshold; the {len(stalled.deals)} "
                     "with the highest priority (staleness, then money at stake) are reported")
    rows += [_stalled_row(r, as_of, rules) for r in stalled.deals.to_dict("records")]
    table = pd.DataFrame(rows) if rows else empty_anomalies()
    table = _finish(table, as_of)
    return AnomalyReport(table, tests, notes, stalled.flagged)


def _without_yearly_patterns(found: pd.DataFrame, fact: pd.DataFrame, deal_metrics: pd.DataFrame | None,
                             deals: DealDays, codes: SegmentCodes, rules: Rules,
                             seasonal: bool) -> tuple[pd.DataFrame, list[str]]:
    """The findings less those that showed the same way a year earlier
    (``recurrence``), and the note that says which. Last year's tests are
    today's: the same seasonal standardisation, and a full baseline (a
    window whose baseline then lies before the history has nothing to say)."""
    day = recurrence.last_year(to_timestamp(deals.as_of))
    then = deals.earlier(day_number(day))
    known = deals.created[deals.created < NEVER]
    wanted = found[recurrence.replayable(found, known.min() if len(known) else NEVER,
                                         lambda window: baseline_start(rules, then.as_of, window, seasonal))]
    if not len(wanted):
        return found, []
    comps, _ = build_comparisons(fact, deal_metrics, rules, then, codes,
                                 only=set(zip(wanted["family"], wanted["window_days"].astype(int))),
                                 seasons=SeasonCheck(seasonal, ""))
    judged = recurrence.against_last_year(found, run_tests(comps, codes, rules))
    again = judged["recurring"].to_numpy(dtype=bool)
    # one that grew beyond last year's is raised, sized and worded by how far it goes beyond it
    found = found.assign(beyond_last_year=judged["beyond"].to_numpy(), last_year_observed=judged["observed"].to_numpy(),
                         last_year_expected=judged["expected"].to_numpy(),
                         last_year_business=judged["business"].to_numpy(), last_year_day=day)
    return found[~again], [recurrence.note(found[again], day)] if again.any() else []


def _on_quarters_of_the_wins(rules: Rules, deals: DealDays) -> tuple[Rules, list[str]]:
    """The rules with their quarters where past wins bunch, when that
    clearly differs from the fiscal year's (``quarter_ends.following_wins``)."""
    moved, note = quarter_ends.following_wins(rules.anomalies, deals.closed[deals.usable_closed & deals.won])
    return (rules.model_copy(update={"anomalies": moved}), [note]) if note else (rules, [])


def _without_single_valued(fact: pd.DataFrame, rules: Rules) -> tuple[Rules, list[str]]:
    """A dimension with one value in the data (every lead source "Unknown")
    is the whole business under another name: never a segment, never a root
    cause. The rules are narrowed for this run and the note says why."""
    ar = rules.anomalies
    single = {d: fact[d].iloc[0] if len(fact) else None for d in ar.dimensions
              if d in fact.columns and fact[d].nunique(dropna=False) < 2}
    if not single:
        return rules, []
    keep = [d for d in ar.dimensions if d not in single]
    pairs = [p for p in ar.pairs if not set(p) & set(single)]
    narrowed = rules.model_copy(update={"anomalies": ar.model_copy(update={"dimensions": keep, "pairs": pairs})})
    return narrowed, [f"{d} has a single value in the data ({'empty' if pd.isna(v) else v}): it is not a segment "
                      "and never a root cause" for d, v in single.items()]


def _segment_row(r: pd.Series, comp: Comparison, codes: SegmentCodes, deals: DealDays, rules: Rules,
                 n_tests: int) -> dict:
    keys = keys_of(r)
    open_rows = np.flatnonzero(deals.open_now)
    open_in = open_rows[in_segment(codes, open_rows, keys)]
    open_amount = float(deals.amount[open_in].sum())
    # The deals the money is on, and how many of them have an amount (none: not known, never $0).
    family = r["family"]
    if family == "win_rate":
        stake = open_amount * abs(r["effect"])
    elif family == "quality":
        w = comp.window
        open_in = w.rows[(w.value == 0) & deals.open_now[w.rows] & in_segment(codes, w.rows, keys)]
        stake = float(deals.amount[open_in].sum())
    elif family == "still_open":
        # The window's deals still open; the share of their money beyond the usual share still open.
        w = comp.window
        open_in = w.rows[(w.value == 1) & in_segment(codes, w.rows, keys)]
        open_amount = float(deals.amount[open_in].sum())
        stake = open_amount * max(r["effect"], 0.0) / max(r["observed"], 1e-9)
    else:
        stake = open_amount
    cause = drill_down(comp, codes, keys, rules.anomalies.dimensions)
    cause_text = text.root_cause_text(cause, FAMILY_KIND[family], FAMILY_WHAT[family])
    row = {
        "anomaly_type": r["anomaly_type"], "metric": r["metric"], "segment": r["segment"],
        "dimension": r["dimension"], "direction": r["direction"], "window_start": r["window_start"],
        "window_end": r["window_end"], "window_days": int(r["window_days"]), "observed": r["observed"],
        "expected": r["expected"], "effect": r["effect"], "n": int(r["n"]),
        "baseline_n": int(round(r["baseline_n"])), "p_value": r["p_value"], "q_value": r["q_value"],
        "severity": _severity(r, rules), "root_cause": cause_text, "deal_id": None,
        "sales_rep_id": keys.get("sales_rep_id"), "amount_at_stake": stake, "historical_win_rate": np.nan,
    }
    detail = {**row, "k": r["k"], "rank_effect": r["rank_effect"], "open_amount": open_amount,
              "money_deals": len(open_in), "money_priced": int(deals.priced[open_in].sum()),
              "baseline_days": rules.anomalies.baseline_days, "older_left_out": comp.older_left_out,
              "ages": comp.ages, "baseline_words": comp.baseline_words}
    row["explanation"] = text.segment_explanation(detail, keys, n_tests)
    if pd.notna(r.get("beyond_last_year", np.nan)):
        row["explanation"] += " " + text.beyond_last_year(FAMILY_KIND[family], r["last_year_day"],
                                                          r["last_year_observed"], r["last_year_expected"],
                                                          r["beyond_last_year"], bool(r["last_year_business"]))
    return row


def _severity(r: pd.Series, rules: Rules) -> str:
    # A change that also showed a year earlier is as severe as what it adds to last year's.
    beyond = r.get("beyond_last_year", np.nan)
    strength = (r["size"] if pd.isna(beyond) else beyond) / r["min_effect"]
    levels = rules.anomalies.severity
    for name in ("critical", "high", "medium"):
        level = getattr(levels, name)
        if r["q_value"] <= level.max_q and strength >= level.min_strength:
            return name
    return "low"


def _stalled_row(r: dict, as_of: pd.Timestamp, rules: Rules) -> dict:
    by_smi = r["rule"] == "smi"
    start = r["entered"] if r["rule"] == "stage" and pd.notna(r["entered"]) else r["created"]
    cfg = rules.anomalies.stalled
    # Judged by its age (no stage history): the figure is the deal's age, never "days in stage".
    metric = "smi" if by_smi else "stage_duration" if r["rule"] == "stage" else "open_deal_age_days"
    return {
        "anomaly_type": "stalled_deal", "metric": metric,
        "segment": f"deal_id={r['deal_id']}", "dimension": "deal", "direction": "down" if by_smi else "up",
        "window_start": pd.Timestamp(start), "window_end": as_of, "window_days": None,
        "observed": r["observed"], "expected": r["limit"], "effect": r["observed"] - r["limit"],
        "n": int(r["history_n"]) if r["history_n"] else None, "baseline_n": None,
        "p_value": np.nan, "q_value": np.nan, "severity": r["severity"],
        "explanation": text.stalled_explanation(r, cfg.stage_percentile, cfg.age_percentile, cfg.min_history_deals,
                                                rules.risk.win_horizon_days),
        "root_cause": ("Stage Momentum Index below the critical threshold" if by_smi else
                       f"{'days in ' + r['deal_stage'] if r['rule'] == 'stage' else 'age'} past "
                       f"{r['limit']:.0f} days") + (" (SMI also critical)" if r["smi_critical"] and not by_smi else ""),
        "deal_id": r["deal_id"], "sales_rep_id": r["sales_rep_id"], "amount_at_stake": r["stake"],
        "historical_win_rate": r["history_win_rate"], "historical_win_low": r["history_win_low"],
        "historical_win_high": r["history_win_high"], "baseline_win_rate": r["base_win_rate"],
    }


def _finish(table: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    if not len(table):
        return empty_anomalies()
    table = table.copy()
    table["as_of_date"] = as_of
    table["anomaly_id"] = [anomaly_id(t, m, s, w, e) for t, m, s, w, e in
                           zip(table["anomaly_type"], table["metric"], table["segment"], table["window_days"],
                               table["window_end"])]
    table["_rank"] = table["severity"].map(SEVERITY_ORDER)
    # Within a severity (for stalled deals: staleness, gated by money): money
    # at stake (stalled: amount x the drop in win chance), then the stalest.
    table["_stale"] = np.where(table["anomaly_type"].eq("stalled_deal")
                               & table["metric"].isin(["stage_duration", "open_deal_age_days"]),
                               table["observed"] / np.maximum(table["expected"].astype("float64"), 1.0), 0.0)
    table = table.sort_values(["_rank", "amount_at_stake", "_stale", "anomaly_id"],
                              ascending=[True, False, False, True], kind="stable")
    table = table.reindex(columns=list(ANOMALY_COLUMNS)).reset_index(drop=True)
    return table.astype(ANOMALY_COLUMNS)


def report_summary(report: AnomalyReport) -> dict:
    """Plain figures of a run for the asset's metadata: what was found, how
    much was tested, the notes, and the tests that came closest (so "nothing
    found" can be seen to be an answer, not an omission)."""
    table, tests = report.anomalies, report.tests
    segment = table[table["dimension"] != "deal"]
    out = {
        "segment_anomalies": int(len(segment)),
        "stalled_deals": int((table["anomaly_type"] == "stalled_deal").sum()),
        "stalled_deals_past_threshold": int(report.stalled_flagged),
        "segment_tests": int(len(tests)),
        "significant_tests": int(tests["significant"].sum()) if len(tests) else 0,
        "by_type": {str(k): int(v) for k, v in table["anomaly_type"].value_counts().items()},
        "notes": list(report.notes),
    }
    if len(tests):
        cols = ["family", "metric", "segment", "window_days", "n", "baseline_n", "observed", "expected",
                "p_value", "q_value"]
        closest = tests.sort_values("p_value").head(10)[cols].copy()
        closest["baseline_n"] = closest["baseline_n"].round().astype("int64")
        out["closest_tests"] = closest.to_markdown(index=False, floatfmt=".4g")
    else:
        out["closest_tests"] = "_no segment had enough deals to be tested_"
    return out
