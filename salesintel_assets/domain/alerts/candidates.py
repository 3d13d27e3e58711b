"""From anomalies to alert candidates: which alert type an anomaly becomes
(the rules file's mapping), and what the alert says: the facts, why it
matters (evidence computed from history, with sample sizes and intervals),
the root cause where there is one, the playbook's numbered actions and the
money at stake.

One candidate per ``dedup_key`` (alert type + subject): several anomalies on
the same subject become one alert whose most severe finding leads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from salesintel_assets.domain.common import stats
from salesintel_assets.domain.common.rules import SEVERITIES, AlertMapping, Rules
from salesintel_assets.domain.alerts.routing import Router
from salesintel_assets.domain.common.segment_keys import parse_segment
from salesintel_assets.domain.alerts.wording import (amount_text, count, metric_label, metric_value, missing,
                                                    money, pct, pipeline, segment_label, sentence)

SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}
ANOMALY_COLUMNS = [
    "anomaly_id", "anomaly_type", "metric", "segment", "dimension", "direction", "window_start", "window_end",
    "window_days", "observed", "expected", "effect", "n", "baseline_n", "p_value", "q_value", "severity",
    "explanation", "root_cause", "deal_id", "sales_rep_id", "amount_at_stake", "historical_win_rate",
    "historical_win_low", "historical_win_high", "baseline_win_rate", "as_of_date",
]
CANDIDATE_COLUMNS = [
    "dedup_key", "alert_type", "alert_name", "priority", "cadence", "subject", "segment", "deal_id",
    "sales_rep_id", "industry", "severity", "title", "content", "amount_at_stake", "anomaly_id", "anomaly_ids",
]
SENTENCE_END = re.compile(r"(?<=[.])\s+(?=[A-Z])")   # between two sentences of a finding's words
# --- mapping ------------------------------------------------------------------
def _matches(rule: AlertMapping, row: dict, amount: float) -> bool:
    severity = SEVERITY_RANK.get(str(row.get("severity")), -1)
    if row.get("anomaly_type") not in rule.anomaly_types:
        return False
    if rule.min_severity and severity < SEVERITY_RANK[rule.min_severity]:
        return False
    if rule.min_amount is not None and not (amount >= rule.min_amount):
        return False
    if rule.metrics and row.get("metric") not in rule.metrics:
        return False
    if rule.segments and str(row.get("segment")) not in rule.segments:
        return False
    return True


def classify(row: dict, rules: Rules, amount: float, below_p1: bool = False) -> str | None:
    """The alert type of one anomaly: the first mapping rule that matches
    (``below_p1``: the first whose alert type is not a P1)."""
    for rule in rules.alerts.mapping:
        if below_p1 and rules.alerts.types[rule.alert_type].priority == "P1":
            continue
        if _matches(rule, row, amount):
            return rule.alert_type
    return None


def likely_to_win(ctx: "Context", deal_id) -> bool:
    """The risk model, when its verdict is usable, gives the deal at least
    ``likely_win_probability``: a stall then is no crisis."""
    risk = ctx.risk_of(deal_id)
    return (str(risk.get("model_verdict")) == "usable" and not missing(risk.get("win_probability"))
            and float(risk["win_probability"]) >= ctx.rules.alerts.evidence.likely_win_probability)


# --- evidence from history ----------------------------------------------------
@dataclass
class Evidence:
    """What the alert text needs from the warehouse, aggregated in SQL so a
    million deals never become Python objects."""

    deals: pd.DataFrame      # fact_deals rows of the deals named by the anomalies
    segments: pd.DataFrame   # segment, open_n, open_amount, open_priced_n, closed_n, won_n
    # Does the CRM log activities at all? A plain export has none on any deal, so a deal without one says
    # nothing about the deal.
    activities_logged: bool = True


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str] | None:
    try:
        return list(con.sql(f"SELECT * FROM {table} LIMIT 0").columns)
    except duckdb.Error:
        return None


def load_evidence(con: duckdb.DuckDBPyConnection, anomalies: pd.DataFrame, as_of: pd.Timestamp) -> Evidence:
    """Query ``fact_deals`` (a table or a registered frame of that name) for
    the deals and segments the anomalies name. How stalled deals usually end
    comes with the anomaly itself (every deal that lasted as long counts)."""
    as_of = pd.Timestamp(as_of).to_pydatetime()
    fact_columns = _columns(con, "fact_deals") or []
    frame = anomalies if anomalies is not None else pd.DataFrame(columns=ANOMALY_COLUMNS)
    deal_ids = sorted({str(d) for d in frame.get("deal_id", pd.Series(dtype=object)).dropna()})
    if fact_columns and deal_ids:
        deals = con.execute("SELECT * FROM fact_deals WHERE deal_id IN (SELECT unnest(?::VARCHAR[]))",
                            [deal_ids]).df()
    else:
        deals = pd.DataFrame(columns=["deal_id"])
    segments = {str(seg) for seg in frame.get("segment", pd.Series(dtype=object)).dropna()
                if not str(seg).startswith("deal_id=")} | {"all"}
    # A dimension the warehouse does not have gets no pipeline figures (no guessing).
    usable = [seg for seg in sorted(segments) if fact_columns and all(c in fact_columns for c in parse_segment(seg))]
    logged = "activity_count" in fact_columns and con.execute(
        "SELECT EXISTS (SELECT 1 FROM fact_deals WHERE activity_count > 0)").fetchone()[0]
    return Evidence(deals=deals, segments=_segment_stats(con, usable, as_of), activities_logged=bool(logged))


def _segment_stats(con: duckdb.DuckDBPyConnection, segments: list[str], as_of) -> pd.DataFrame:
    """Open pipeline and closed history of the segments: one GROUP BY per set
    of dimensions (a handful of hash aggregates, whatever the number of segments)."""
    columns = ["segment", "open_n", "open_amount", "open_priced_n", "closed_n", "won_n"]
    by_dims: dict[tuple, list[str]] = {}
    for segment in segments:
        by_dims.setdefault(tuple(parse_segment(segment)), []).append(segment)
    rows = []
    for dims, members in by_dims.items():
        keys = ", ".join(f'CAST("{c}" AS VARCHAR) AS "{c}"' for c in dims)
        table = con.execute(f"""
            SELECT {keys + ',' if dims else ''}
                   count(*) FILTER (WHERE is_open) AS open_n,
                   coalesce(sum(deal_amount) FILTER (WHERE is_open), 0) AS open_amount,
                   count(deal_amount) FILTER (WHERE is_open) AS open_priced_n,
                   count(*) FILTER (WHERE outcome IN ('Won', 'Lost') AND closed_date <= $as_of) AS closed_n,
                   count(*) FILTER (WHERE outcome = 'Won' AND closed_date <= $as_of) AS won_n
            FROM fact_deals {'GROUP BY ALL' if dims else ''}""", {"as_of": as_of}).df()
        found = {tuple(r[list(dims)]) if dims else (): r for _, r in table.iterrows()}
        for segment in members:
            r = found.get(tuple(parse_segment(segment).values()))
            rows.append({"segment": segment, "open_n": int(r["open_n"]) if r is not None else 0,
                         "open_amount": float(r["open_amount"]) if r is not None else 0.0,
                         "open_priced_n": int(r["open_priced_n"]) if r is not None else 0,
                         "closed_n": int(r["closed_n"]) if r is not None else 0,
                         "won_n": int(r["won_n"]) if r is not None else 0})
    return pd.DataFrame(rows, columns=columns)


def _interval(won: int, n: int) -> str:
    low, high = stats.wilson_interval(np.array([won]), np.array([n]))
    return f"95 % CI {low[0] * 100:.0f}–{high[0] * 100:.0f} %"


def quotable_risk(risk: pd.DataFrame | None) -> pd.DataFrame | None:
    """Risk scores whose probabilities may be quoted: none when the model
    that scored them is weak (no better than deal age or the segment rate)."""
    if risk is None or "model_verdict" not in risk.columns:
        return risk
    return risk if len(risk) and (risk["model_verdict"] == "usable").all() else None


def _verdict(risk: pd.DataFrame | None) -> str | None:
    """'usable', 'weak' or None (no risk scores)."""
    if risk is None or not len(risk):
        return None
    if "model_verdict" not in risk.columns:
        return "usable"
    return "usable" if (risk["model_verdict"] == "usable").all() else "weak"


class Context:
    """Everything the alert text needs beyond the anomaly itself."""

    def __init__(self, evidence: Evidence, router: Router, risk: pd.DataFrame | None, rules: Rules,
                 as_of: pd.Timestamp, risk_horizon_days: int | None = None):
        self.rules = rules
        # the days the risk model's win_probability speaks of: the rules' horizon, or a shorter one for a
        # model of a short history (deal_risk_model.win_horizon_days)
        self.risk_horizon_days = int(risk_horizon_days or rules.risk.win_horizon_days)
        self.as_of = pd.Timestamp(as_of)
        self.router = router
        deals = evidence.deals
        self.deals = deals.drop_duplicates("deal_id", keep="last").set_index("deal_id", drop=False) if len(deals) else None
        self.segments = evidence.segments.set_index("segment")
        self.activities_logged = evidence.activities_logged
        self.model_verdict = _verdict(risk)
        risk = quotable_risk(risk)
        usable = risk is not None and len(risk) and "deal_id" in risk.columns
        self.risk = risk.drop_duplicates("deal_id", keep="last").set_index("deal_id") if usable else None

    def deal(self, deal_id) -> dict:
        if self.deals is None or missing(deal_id) or deal_id not in self.deals.index:
            return {}
        return self.deals.loc[deal_id].to_dict()

    def risk_of(self, deal_id) -> dict:
        if self.risk is None or missing(deal_id) or deal_id not in self.risk.index:
            return {}
        return self.risk.loc[deal_id].to_dict()

    def _segment(self, segment) -> dict:
        key = "all" if missing(segment) or not parse_segment(segment) else str(segment)
        return self.segments.loc[key].to_dict() if key in self.segments.index else {}

    def open_pipeline(self, segment) -> tuple[int, float, int]:
        """Open deals, their amount and how many of them have one."""
        found = self._segment(segment)
        return int(found.get("open_n", 0)), float(found.get("open_amount", 0.0)), int(found.get("open_priced_n", 0))

    def history_win_rate(self, segment) -> tuple[int, int]:
        found = self._segment(segment)
        return int(found.get("won_n", 0)), int(found.get("closed_n", 0))


# --- content per alert family ---------------------------------------------------
def _stage_facts(deal: dict) -> tuple[str | None, float]:
    stage = deal.get("deal_stage")
    days = deal.get("days_in_stage")  # unknown without stage history: never guessed from the deal's age
    return (None if missing(stage) else str(stage)), (np.nan if missing(days) else float(days))


def _stall_evidence(a: dict, stage: str | None, min_n: int, horizon: int) -> str:
    """How deals that lasted as long ended: the estimated share won within
    the horizon from then on (still-open deals censored, not counted as
    lost), with the sample and its interval; below the minimum sample,
    "not enough data"."""
    n = a.get("n")
    where = f"in {stage}" if stage else "open"
    if missing(a.get("historical_win_rate")) or missing(n) or int(n) < min_n:
        if missing(n):
            seen = ""
        elif int(n) < min_n:
            seen = f" (only {int(n):,} deal{'' if int(n) == 1 else 's'} lasted as long; {min_n} needed)"
        else:   # enough deals, too few of them followed (``StallHistory.chance``)
            seen = (f" (too few of the {int(n):,} deals that lasted as long were followed to an outcome or for "
                    f"{horizon} days: the history is too short)")
        return f"Not enough data to say how deals stalled this long {where} end{seen}."
    n, rate = int(n), float(a["historical_win_rate"])
    interval = ("" if missing(a.get("historical_win_low")) else
                f" (95 % CI {pct(a['historical_win_low'])}–{pct(a['historical_win_high'])})")
    return (f"Of the {n:,} deals that stayed this long {where}, an estimated {pct(rate)} were won within "
            f"{horizon} days from then on{interval}; deals still open count while observed, never as lost.")


def _stall_money(a: dict, deal_amount: float, risk: dict, ctx: Context, stage: str | None) -> tuple[float, str]:
    """Money at stake of a stalled deal = its amount x the drop in win chance
    attributable to the stall: a deal fresh in the stage (or a new deal)
    against the deal now, which is the usable risk model's probability, or,
    when the model is weak or absent, how deals that stale ended."""
    base = a.get("baseline_win_rate")
    fresh = f"a deal fresh in {stage}" if stage else "a new deal"
    history_stake = 0.0 if missing(a.get("amount_at_stake")) else float(a["amount_at_stake"])
    # the fresh deal's chance is over the rules' horizon: a model of a shorter one is not set against it
    same_horizon = ctx.risk_horizon_days == ctx.rules.risk.win_horizon_days
    scored = bool(risk) and not missing(risk.get("win_probability"))
    if np.isnan(deal_amount):
        # Many CRMs have no amount until a price is agreed: the money is unknown, never $0.
        return 0.0, _unpriced_stall(a, base, fresh, risk if scored and same_horizon else None)
    if not missing(base) and scored and same_horizon:
        now = float(risk["win_probability"])
        drop = max(float(base) - now, 0.0)
        return deal_amount * drop, (f"{money(deal_amount * drop)} ({money(deal_amount)} deal amount x the "
                                    f"{drop * 100:.0f}-point drop in win chance: {pct(base)} for {fresh}, "
                                    f"{pct(now)} per the risk model)")
    reason = {"weak": "the risk model is weak", None: "there are no risk model scores"}.get(
        ctx.model_verdict, "" if scored else "the risk model has no score for this deal")
    if scored and not same_horizon:
        reason = f"the risk model answers {ctx.risk_horizon_days} days, not {ctx.rules.risk.win_horizon_days}"
    said = f"{reason + ', so ' if reason else ''}priority comes from staleness and amount"
    if missing(base) or (history_stake <= 0 and missing(a.get("historical_win_rate"))):
        return 0.0, (f"not known ({money(deal_amount)} deal amount): not enough data for the drop in win chance; "
                     f"{said}")
    if deal_amount > 0:
        now = float(base) - history_stake / deal_amount
    else:
        now = float(base) if missing(a.get("historical_win_rate")) else min(float(a["historical_win_rate"]), float(base))
    alike = ("deals that lasted as long" if not missing(a.get("historical_win_rate"))
             else "the longest stays with enough deals (too few lasted as long)")
    return history_stake, (f"{money(history_stake)} ({money(deal_amount)} deal amount x the "
                           f"{(float(base) - now) * 100:.0f}-point drop in win chance: {pct(base)} for {fresh}, "
                           f"{pct(now)} for {alike}; {said})")


def _unpriced_stall(a: dict, base, fresh: str, risk: dict | None) -> str:
    """The money line of a stalled deal with no amount: not known, with the
    drop in win chance it would be priced at when there is one."""
    if risk is not None:
        now, source = float(risk["win_probability"]), "per the risk model"
    elif not missing(a.get("historical_win_rate")):
        now, source = float(a["historical_win_rate"]), "for deals that lasted as long"
    else:
        now, source = None, ""
    chance = ("" if missing(base) or now is None else
              f" (its win chance: {pct(base)} for {fresh}, {pct(now)} {source})")
    return f"not known: the deal has no amount{chance}; priority comes from staleness"


def _deal_alert(a: dict, ctx: Context, type_key: str) -> dict:
    deal = ctx.deal(a.get("deal_id"))
    risk = ctx.risk_of(a.get("deal_id"))
    deal_id = str(a.get("deal_id"))
    rep_id = a.get("sales_rep_id") if not missing(a.get("sales_rep_id")) else deal.get("sales_rep_id")
    rep_name = ctx.router.rep_name(rep_id) or (str(rep_id) if not missing(rep_id) else "unassigned")
    stage, days = _stage_facts(deal)
    amount = np.nan if missing(deal.get("deal_amount")) else float(deal["deal_amount"])
    # Only a stay in the stage is compared with stays in that stage; age and SMI with deals as old.
    compared_in = stage if a.get("metric") == "stage_duration" else None
    stake, money_text = _stall_money(a, amount, risk, ctx, compared_in)
    age = deal.get("age_days")
    stage_text = f"{stage} for {days:.0f} days" if stage and not np.isnan(days) else (stage or "unknown")
    if not stage:
        title = f"{deal_id} has stalled"
    elif np.isnan(days):
        # No stage history (a file export): the deal's age is the evidence, and the stage has the export's name.
        opened = f"open {float(age):.0f} days" if not missing(age) else "open"
        named = stage if missing(deal.get("crm_stage")) else str(deal["crm_stage"])
        title = f"{deal_id} {opened}, still in {named}"
        stage_text = f"{named} ({opened}; time in stage not recorded)"
    elif type_key == "deal_velocity_crisis":
        title = f"{deal_id} stalled {days:.0f} days in {stage}"
    else:
        title = f"{deal_id} has been in {stage} for {days:.0f} days"
    if type_key == "deal_velocity_crisis" and stage and not np.isnan(amount):
        title += f" ({money(amount)})"

    described = " · ".join(str(deal[c]) for c in ("industry", "region", "product_type")
                           if not missing(deal.get(c)))
    facts = [("Deal", f"{deal_id}" + (f" · {described}" if described else "") + f" · {amount_text(amount)}"),
             ("Rep", f"{rep_name} ({rep_id})" if not missing(rep_id) else rep_name),
             ("Stage", stage_text)]
    metric = a.get("metric")
    if not missing(a.get("observed")):
        facts.append(("Metric", f"{metric_label(metric)} {metric_value(metric, a.get('observed'))}, "
                                f"threshold {metric_value(metric, a.get('expected'))} ({a.get('severity')})"))

    why = [_stall_evidence(a, compared_in, ctx.rules.anomalies.stalled.min_history_deals,
                           ctx.rules.risk.win_horizon_days)]
    if risk and not missing(risk.get("win_probability")):
        why.append(f"The risk model gives it a {pct(risk['win_probability'])} chance to win within "
                   f"{ctx.risk_horizon_days} days "
                   f"({risk.get('risk_band', 'n/a')} risk).")

    causes = []
    if not missing(a.get("root_cause")) and str(a.get("root_cause")).strip():
        causes.append(sentence(a["root_cause"]))
    if risk:
        reasons = [str(risk[f"reason_{i}"]) for i in (1, 2, 3) if not missing(risk.get(f"reason_{i}"))]
        if reasons:
            causes.append("Risk model's top reasons: " + "; ".join(reasons) + ".")
    last_activity = deal.get("last_activity_date")
    if not missing(last_activity):
        quiet = (ctx.as_of - pd.Timestamp(last_activity)).days
        causes.append(f"Last logged activity {pd.Timestamp(last_activity):%Y-%m-%d} ({quiet} days ago).")
    elif deal and deal.get("activity_count", None) == 0 and ctx.activities_logged:
        causes.append("No activity logged on this deal.")

    return {"title": title, "facts": facts, "why": why, "root_cause": causes, "amount_at_stake": stake,
            "money": money_text,
            "sales_rep_id": None if missing(rep_id) else str(rep_id), "rep_name": rep_name,
            "industry": deal.get("industry"), "placeholders": {"deal_id": deal_id, "rep_name": rep_name}}


def _shift_text(a: dict) -> str:
    metric = a.get("metric")
    verb = "rose" if a.get("direction") == "up" else "fell"
    return f"{metric_label(metric)} {verb} to {metric_value(metric, a.get('observed'))} " \
           f"(baseline {metric_value(metric, a.get('expected'))})"


def _window_text(a: dict) -> str:
    days = a.get("window_days")
    end = a.get("window_end")
    if a.get("metric") == "still_open_share":   # deals of an age on one date, not deals of a window
        return "deals of the ages compared" + (f" on {pd.Timestamp(end):%Y-%m-%d}" if not missing(end) else "")
    span = f"the last {int(days)} days" if not missing(days) else "the recent window"
    return span + (f" to {pd.Timestamp(end):%Y-%m-%d}" if not missing(end) else "")


def _significance(a: dict) -> str:
    if not missing(a.get("q_value")):
        return f"q = {float(a['q_value']):.3g} after correcting for every segment tested"
    if not missing(a.get("p_value")):
        return f"p = {float(a['p_value']):.3g}"
    return "significance not computed"


def _segment_alert(a: dict, ctx: Context, type_key: str) -> dict:
    segment = a.get("segment")
    label = segment_label(segment, ctx.router)
    metric = a.get("metric")
    open_n, open_amount, priced_n = ctx.open_pipeline(segment)
    shift = _shift_text(a)
    title = f"{label}: {shift}"
    if type_key == "win_rate_degradation":
        title = f"Win rate in {label} fell to {pct(a.get('observed'))} (baseline {pct(a.get('expected'))})"
    if metric == "still_open_share":
        where = "" if not parse_segment(segment) else f" in {label}"
        title = (f"Deals are not closing{where}: {pct(a.get('observed'))} still open at their age "
                 f"(baseline {pct(a.get('expected'))})")
    facts = [("Segment", label),
             ("Metric", f"{metric_label(metric)} {metric_value(metric, a.get('observed'))} vs baseline "
                        f"{metric_value(metric, a.get('expected'))} ({a.get('severity')})"),
             ("Window", f"{_window_text(a)}, n = {count(a.get('n'))} vs {count(a.get('baseline_n'))} before"),
             ("Open pipeline", pipeline(open_n, open_amount, priced_n))]

    why = []
    if metric == "still_open_share" and not missing(a.get("explanation")):
        # Which deals (created when, how old) only the detector's words say: its first sentence.
        lead = SENTENCE_END.split(str(a["explanation"]), maxsplit=1)[0].rstrip(".")
        why.append(f"{lead}; {_significance(a)}.")
    elif metric == "win_rate" and not missing(a.get("n")) and int(a["n"]) > 0 and not missing(a.get("observed")):
        n = int(a["n"])
        won = int(round(float(a["observed"]) * n))
        why.append(f"{label} won {pct(a['observed'])} of {n:,} deals closed in {_window_text(a)} "
                   f"({_interval(won, n)}) vs {pct(a.get('expected'))} over {count(a.get('baseline_n'))} "
                   f"earlier deals; {_significance(a)}.")
    else:
        label_text = metric_label(metric)
        why.append(f"{label_text[:1].upper() + label_text[1:]} was {metric_value(metric, a.get('observed'))} over "
                   f"{_window_text(a)} (n = {count(a.get('n'))}) vs {metric_value(metric, a.get('expected'))} "
                   f"before (n = {count(a.get('baseline_n'))}); {_significance(a)}.")
    if metric != "win_rate" and parse_segment(segment):
        won, closed = ctx.history_win_rate(segment)
        all_won, all_closed = ctx.history_win_rate("all")
        if closed >= ctx.rules.alerts.evidence.min_history_deals and all_closed:
            why.append(f"Historically, deals in this segment win {pct(won / closed)} ({_interval(won, closed)}, "
                       f"n = {closed:,}) vs {pct(all_won / all_closed)} overall.")

    amount = a.get("amount_at_stake")
    spike = metric == "win_rate" and a.get("direction") == "up"
    what = ("expected revenue upside if the higher win rate holds (an opportunity, not a risk)" if spike
            else "expected revenue at risk" if metric == "win_rate"
            else "in deals still open that would have closed (won or lost) by now at the usual pace"
            if metric == "still_open_share" else "at stake")
    if open_n and not priced_n:
        # no open deal here has an amount (many CRMs have none until a price is agreed): unknown, not $0
        amount, money_text = 0.0, f"not known: none of the {open_n:,} open deals in {label} has an amount"
    elif not missing(amount) and float(amount) > 0:
        amount = float(amount)
        money_text = f"{money(amount)} {what} ({open_n:,} open deals worth {money(open_amount)} in {label})"
    elif metric == "win_rate" and not missing(a.get("expected")) and not missing(a.get("observed")):
        gap = abs(float(a["expected"]) - float(a["observed"]))
        amount = open_amount * gap
        money_text = (f"{money(amount)} {what} ({money(open_amount)} open pipeline in "
                      f"{open_n:,} deals × the {gap * 100:.0f}-point win-rate change)")
    else:
        amount = open_amount
        money_text = f"{money(open_amount)} open pipeline ({open_n:,} open deals in {label})"
    if 0 < priced_n < open_n:
        money_text += f"; {open_n - priced_n:,} of the open deals have no amount and are not in these figures"
    causes = [sentence(a["root_cause"])] if not missing(a.get("root_cause")) and str(a["root_cause"]).strip() else []
    industry = parse_segment(segment).get("industry")
    return {"title": title, "facts": facts, "why": why, "root_cause": causes, "amount_at_stake": amount,
            "money": money_text, "sales_rep_id": None if missing(a.get("sales_rep_id")) else str(a["sales_rep_id"]),
            "rep_name": None, "industry": industry,
            "placeholders": {"segment_label": label, "metric_label": metric_label(metric),
                             "window_days": int(a["window_days"]) if not missing(a.get("window_days")) else "recent"}}


def _actions(type_key: str, industry, placeholders: dict, rules: Rules) -> list[str]:
    playbooks = rules.alerts.types[type_key].playbooks
    steps = playbooks.get(str(industry)) if not missing(industry) else None
    steps = steps or playbooks["default"]
    safe = _Defaults(placeholders)
    return [step.format_map(safe) for step in steps]


class _Defaults(dict):
    """str.format_map that leaves unknown placeholders readable."""

    def __missing__(self, key):
        return f"{{{key}}}"


# --- candidates -----------------------------------------------------------------
def _subject(a: dict) -> str:
    if not missing(a.get("deal_id")) and a.get("anomaly_type") == "stalled_deal":
        return f"deal_id={a['deal_id']}"
    return str(a.get("segment")) if not missing(a.get("segment")) else "all"


def build_candidates(anomalies: pd.DataFrame, ctx: Context,
                     severity_floors: dict[str, str] | None = None) -> tuple[pd.DataFrame, dict]:
    """One alert candidate per dedup key, plus counts of what was left out.
    ``severity_floors`` (alert type -> minimum severity) come from feedback."""
    rules = ctx.rules
    floors = severity_floors or {}
    frame = anomalies.reindex(columns=ANOMALY_COLUMNS) if anomalies is not None else pd.DataFrame(columns=ANOMALY_COLUMNS)
    skipped = {"unmapped": 0, "below_feedback_floor": 0}
    rows = []
    for a in frame.to_dict("records"):
        deal = ctx.deal(a.get("deal_id"))
        amount = a.get("amount_at_stake")
        amount = float(deal.get("deal_amount", np.nan)) if missing(amount) or float(amount) <= 0 else float(amount)
        type_key = classify(a, rules, amount)
        if type_key is not None and rules.alerts.types[type_key].priority == "P1" \
                and a.get("anomaly_type") == "stalled_deal" and likely_to_win(ctx, a.get("deal_id")):
            type_key = classify(a, rules, amount, below_p1=True)
        if type_key is None:
            skipped["unmapped"] += 1
            continue
        floor = floors.get(type_key)
        if floor and SEVERITY_RANK.get(str(a.get("severity")), -1) < SEVERITY_RANK[floor]:
            skipped["below_feedback_floor"] += 1
            continue
        rows.append((type_key, a))
    candidates = {}
    for type_key, a in sorted(rows, key=lambda r: (-SEVERITY_RANK.get(str(r[1].get("severity")), -1),
                                                   -abs(float(r[1]["effect"])) if not missing(r[1].get("effect")) else 0,
                                                   str(r[1].get("anomaly_id")))):
        key = f"{type_key}:{_subject(a)}"
        if key in candidates:
            lead = candidates[key]
            lead["anomaly_ids"].append(str(a.get("anomaly_id")))
            lead["content"]["also"].append(_shift_text(a) + f" over {_window_text(a)} ({a.get('severity')})")
            continue
        candidates[key] = _candidate(key, type_key, a, ctx)
    out = pd.DataFrame(list(candidates.values()), columns=CANDIDATE_COLUMNS)
    out["anomaly_ids"] = out["anomaly_ids"].map(lambda ids: ",".join(ids))
    return out.sort_values("dedup_key", kind="stable").reset_index(drop=True), skipped


def _candidate(key: str, type_key: str, a: dict, ctx: Context) -> dict:
    spec = ctx.rules.alerts.types[type_key]
    is_deal = a.get("anomaly_type") == "stalled_deal" and not missing(a.get("deal_id"))
    body = _deal_alert(a, ctx, type_key) if is_deal else _segment_alert(a, ctx, type_key)
    explanation = a.get("explanation")
    content = {
        "type_name": spec.name, "priority": spec.priority, "title": body["title"],
        "facts": [list(f) for f in body["facts"]],
        "finding": None if missing(explanation) else str(explanation),
        "why": body["why"], "root_cause": body["root_cause"],
        "actions": _actions(type_key, body["industry"], body["placeholders"], ctx.rules),
        "money": body["money"], "also": [],
    }
    return {
        "dedup_key": key, "alert_type": type_key, "alert_name": spec.name, "priority": spec.priority,
        "cadence": spec.cadence, "subject": _subject(a),
        "segment": None if missing(a.get("segment")) else str(a.get("segment")),
        "deal_id": None if missing(a.get("deal_id")) else str(a.get("deal_id")),
        "sales_rep_id": body["sales_rep_id"], "industry": None if missing(body["industry"]) else str(body["industry"]),
        "severity": str(a.get("severity")), "title": body["title"], "content": content,
        "amount_at_stake": float(body["amount_at_stake"]) if not missing(body["amount_at_stake"]) else 0.0,
        "anomaly_id": str(a.get("anomaly_id")), "anomaly_ids": [str(a.get("anomaly_id"))],
    }
