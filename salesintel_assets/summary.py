"""A short, plain-text summary of what a run found and where to look next.

It leads with "What you must know": what would make a reader distrust the
figures below if they missed it. Each line comes from a *finder*, a small
function ``(con, context) -> list[str]`` in ``MUST_KNOW``; add one there to
say something new (a finder that finds nothing returns no lines)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import duckdb
import pandas as pd

from salesintel_assets.domain.alerts.delivery_plan import message_states
from salesintel_assets.domain.common.storage import (DAGSTER_HOME_DIR, DATABASE_FILE, MLFLOW_DB_FILE, OUTBOX_DIR,
                                                     OUTBOX_FILE)
from salesintel_assets.domain.common.tables import table_columns as _columns, table_exists
from salesintel_assets.domain.models import forecast_trust
from salesintel_assets.domain.warehouse import clean_ups
from salesintel_assets.resources.warehouse import Warehouse

# (check name, severity, description) of every failed asset check of the run.
FailedCheck = tuple[str, str, str]
MustKnowFinder = Callable[[duckdb.DuckDBPyConnection, dict], list[str]]


def _count(con, table: str, where: str = "") -> int | None:
    if not table_exists(con, table):
        return None
    return con.execute(f'SELECT count(*) FROM main."{table}" {where}').fetchall()[0][0]


def _deliveries_line(con) -> str:
    """Messages by what happened to them, not rows planned: a message counts
    as delivered once some channel took it."""
    states = message_states(con.sql("SELECT message_id, recipient_id, channel, status FROM main.alert_deliveries").df())
    by = ", ".join(f"{k.removeprefix('messages_sent_')} {v:,}" for k, v in states.items()
                   if k.startswith("messages_sent_"))
    line = f"{'deliveries':<21}{states['messages_sent']:,} of {states['messages']:,} messages delivered"
    line += f" ({by})" if by else ""
    extra = [f"{states[f'messages_{s}']:,} {label}" for s, label in
             [("failed", "failed on every channel (retried next run)"),
              ("unknown", "unknown (may have reached Slack; not re-sent)"), ("pending", "pending")]
             if states[f"messages_{s}"]]
    return line + ("; " + ", ".join(extra) if extra else "")


# Warning checks whose finding explains the figures below: said first (with these words before the
# check's own), not among the other failed checks.
LEADING_CHECKS = {"deals_reach_the_analysis_date": "the data stops long before the analysis date",
                  "closes_recorded_without_gaps": "closes are missing from the history",
                  "new_deals_reach_the_analysis_date": "the newer deals are missing from the data"}


def data_incomplete(con, context: dict) -> list[str]:
    """The data does not cover the period it claims: it stops long before the
    analysis date (an old export run as of today), its closes of a long
    stretch are missing (a backlog then closes at once), or it leaves out
    the newer deals (none created for long while deals still close)."""
    return [f"{LEADING_CHECKS[name]}: {text}"
            for name, _, text in context.get("failed_checks") or [] if name in LEADING_CHECKS and text]


def excluded_columns(con, context: dict) -> list[str]:
    """Columns kept out of the model and driver analysis (leakage guard rows
    of data_quality_report: action 'exclude', or a rule naming leakage), in
    the report's own sentence when it has one."""
    cols = _columns(con, "data_quality_report")
    if not {"rule", "action"} <= cols:
        return []
    text = next((c for c in ("message", "detail", "details", "description", "reason", "note") if c in cols), None)
    # Each pull screens every stored deal again: the latest pull's rows are the current finding.
    latest = ("AND pull_id = (SELECT arg_max(pull_id, pulled_at) FROM main.data_quality_report)"
              if {"pull_id", "pulled_at"} <= cols else "")
    rows = con.execute(f"""
        SELECT DISTINCT rule, {f'"{text}"' if text else 'NULL'} FROM main.data_quality_report
        WHERE (lower(action) LIKE 'exclu%' OR lower(rule) LIKE '%leak%') {latest} ORDER BY 1""").fetchall()
    return [f"excluded column: {sentence or rule}" for rule, sentence in rows]


def model_signal(con, context: dict) -> list[str]:
    """No risk model (too little history), or one no better than deal age or
    the segment win rate (the latest training run's verdict, in its own
    words; else the scores')."""
    if {"status", "decision", "as_of_date"} <= _columns(con, "deal_risk_model"):
        latest = con.execute("SELECT status, decision FROM main.deal_risk_model "
                             "ORDER BY as_of_date DESC, status = 'not enough data' LIMIT 1").fetchall()
        if latest and latest[0][0] == "not enough data":
            scored = _count(con, "deal_risk_scores")
            return [f"no risk model was trained ({latest[0][1]}): " + (
                "open deals are scored by the last champion" if scored else
                "open deals are not scored and no forecast is made")]
    if {"model_verdict", "verdict_reason"} <= _columns(con, "deal_risk_model"):
        row = con.execute("SELECT model_verdict, verdict_reason FROM main.deal_risk_model "
                          "WHERE model_verdict IS NOT NULL ORDER BY as_of_date DESC LIMIT 1").fetchall()
        if row:
            if row[0][0] == "usable":
                return []
            return [f"no signal found: the risk model is weak and not promoted ({row[0][1]}), so its win "
                    "probabilities are not quoted in alerts"]
    if "model_verdict" not in _columns(con, "deal_risk_scores"):
        return []
    weak = con.execute("SELECT count(*) FILTER (WHERE model_verdict <> 'usable'), count(*) "
                       "FROM main.deal_risk_scores").fetchall()[0]
    if not weak[0]:
        return []
    return ["no signal found: the risk model is no better than deal age or the segment win rate, so its "
            "win probabilities are not quoted in alerts"]


def short_history_horizon(con, context: dict) -> list[str]:
    """The latest model answers a shorter horizon than the rules file's: the
    history is too short for it (its ``horizon_note``)."""
    if "horizon_note" not in _columns(con, "deal_risk_model"):
        return []
    row = con.execute("SELECT horizon_note FROM main.deal_risk_model WHERE version IS NOT NULL "
                      "ORDER BY as_of_date DESC LIMIT 1").fetchall()
    return [row[0][0]] if row and row[0][0] else []


def quarters_from_wins(con, context: dict) -> list[str]:
    """The latest model counted other quarters than the rules' fiscal year:
    wins bunch at other months' ends (its ``quarter_note``)."""
    if "quarter_note" not in _columns(con, "deal_risk_model"):
        return []
    row = con.execute("SELECT quarter_note FROM main.deal_risk_model WHERE version IS NOT NULL "
                      "ORDER BY as_of_date DESC LIMIT 1").fetchall()
    return [row[0][0]] if row and row[0][0] else []


def forecast_next_90_days(con, context: dict) -> list[str]:
    """Wins expected in the next 90 days, with the 80 % interval and how far
    it can be trusted (from the backtest)."""
    if not {"grouping", "key", "won_deals_p10"} <= _columns(con, "pipeline_forecast"):
        return []
    row = con.execute("SELECT expected_won_deals, won_deals_p10, won_deals_p90 FROM main.pipeline_forecast "
                      "WHERE grouping = 'horizon' AND key = '90d'").fetchall()
    if not row:
        return []
    expected, low, high = row[0]
    backtest = con.sql("SELECT * FROM main.forecast_backtest").df() if table_exists(con, "forecast_backtest") else None
    return [f"wins expected in the next 90 days: {expected:,.0f} (80 % interval {low:,.0f}-{high:,.0f}); "
            + forecast_trust.trust_note(float(expected), float(low), float(high), backtest)]


UNMAPPED_STAGES_SHOWN = 5


def unmapped_stages(con, context: dict) -> list[str]:
    """Stage names the rules file does not map: the deals are analysed, but
    without a stage position, until someone maps them."""
    if not {"deal_stage", "stage_number", "is_open"} <= _columns(con, "fact_deals"):
        return []
    rows = con.execute("SELECT deal_stage, count(*), count(*) FILTER (WHERE is_open) FROM main.fact_deals "
                       "WHERE stage_number IS NULL GROUP BY 1 ORDER BY 2 DESC, 1").fetchall()
    if not rows:
        return []
    named = [f"{'empty (Unknown)' if name == 'Unknown' else name} {n:,} ({n_open:,} open)"
             for name, n, n_open in rows[:UNMAPPED_STAGES_SHOWN]]
    more = f" and {len(rows) - UNMAPPED_STAGES_SHOWN:,} more" if len(rows) > UNMAPPED_STAGES_SHOWN else ""
    deals = sum(n for _, n, _ in rows)
    return [f"{deals:,} deals have a stage the rules file does not know: {', '.join(named)}{more}: they are "
            "analysed without a stage position (stage momentum and stage-based stall checks leave them out); "
            "map the names under stages.names in the rules file (SALESINTEL_RULES)"]


DIMENSIONS = ("industry", "region", "product_type", "lead_source", "sales_rep_id")


BLANK_SHARE_SAID = 0.05   # a dimension blank on at least this share of deals (but not all) is said


def dimension_gaps(con, context: dict) -> list[str]:
    """Dimensions the reader should know are missing, from one scan of the
    deals. One with a single value in the data (an export without lead
    sources: every deal "Unknown") says nothing about win rate: it is never
    a segment or a root cause. One blank on many deals but not all (a lead
    source filled in by some reps only): ingestion fills the blanks as
    "Unknown", which win rates, drivers and alerts then read as a segment of
    its own, the deals without a value."""
    present = [c for c in DIMENSIONS if c in _columns(con, "fact_deals")]
    if not present:
        return []
    profile = ", ".join(f"count(DISTINCT \"{c}\"), any_value(\"{c}\"), count(*) FILTER (WHERE \"{c}\" = 'Unknown')"
                        for c in present)
    total, *counts = con.execute(f"SELECT count(*), {profile} FROM main.fact_deals").fetchall()[0]
    if total < 2:
        return []
    by_column = {column: counts[3 * k:3 * k + 3] for k, column in enumerate(present)}
    one_value, blank = [], []
    for column, (distinct, value, blanks) in by_column.items():
        if distinct == 1:
            said = "empty on every deal (filled as Unknown)" if value == "Unknown" else f"{value} on every deal"
            one_value.append(f"{column} is {said}: it cannot explain win rate and is never named as a segment or cause")
        elif blanks >= BLANK_SHARE_SAID * total:
            blank.append(f"{column} is blank on {blanks:,} of {total:,} deals ({blanks / total:.0%}; filled as "
                         f"Unknown): {column}=Unknown in win rates, drivers and alerts means the deals without one")
    return one_value + blank


def failed_warning_checks(con, context: dict) -> list[str]:
    """Checks that failed without stopping the run (errors stop it and are
    said anyway), except those whose words a line above already says in full
    (a weak model's verdict, in "no signal found")."""
    checks: list[FailedCheck] = context.get("failed_checks") or []
    said = " ".join(model_signal(con, context))
    return [f"failed check {name} ({severity}){': ' + text if text else ''}"
            for name, severity, text in checks
            if severity == "warning" and name not in LEADING_CHECKS and not (text and text in said)]


def quarantine_by_rule(con, context: dict) -> list[str]:
    """Rows kept out of the warehouse, counted by the rule they broke."""
    if "rule" not in _columns(con, "quarantined_deals"):
        return []
    rows = con.execute("SELECT rule, count(*) FROM main.quarantined_deals GROUP BY rule "
                       "ORDER BY count(*) DESC, rule").fetchall()
    if not rows:
        return []
    return ["quarantined rows: " + ", ".join(f"{n:,} {rule}" for rule, n in rows)]


def open_deals_without_amount(con, context: dict) -> list[str]:
    """Open deals the CRM has no amount for yet: kept, but revenue figures cannot count them."""
    if "deal_amount" not in _columns(con, "fact_deals"):
        return []
    unknown, known = con.execute("SELECT count(*) FILTER (WHERE deal_amount IS NULL), count(deal_amount) "
                                 "FROM main.fact_deals WHERE is_open").fetchall()[0]
    if not unknown:
        return []
    counted = f"only the {known:,} open deals that have one" if known else "none of them: no open deal has one"
    return [f"{unknown:,} open deals have no amount (kept as unknown, not 0): pipeline and revenue figures count "
            + counted]


# A sweep older than a quarter no longer colours the recent win rates a reader sees.
RECENT_SWEEP_DAYS = 90


def recent_clean_ups(con, context: dict) -> list[str]:
    """Days of the last quarter whose closes were a sweep of stale deals closed
    lost (``warehouse.clean_ups``): the win rate of those weeks fell by
    housekeeping, which the anomaly tests and the forecast leave out."""
    if not {"closed_date", "is_open", "is_won", "as_of_date"} <= _columns(con, "fact_deals"):
        return []
    as_of = con.execute("SELECT max(as_of_date) FROM main.fact_deals").fetchone()[0]
    if as_of is None:
        return []
    # the closes around each recent day: half a year either side of it, as the rule reads them
    around = pd.Timestamp(as_of) - pd.Timedelta(days=RECENT_SWEEP_DAYS + clean_ups.HALF_YEAR_DAYS)
    since = pd.Timestamp(as_of) - pd.Timedelta(days=RECENT_SWEEP_DAYS)
    swept = [c for c in clean_ups.clean_ups_in(con, "main.fact_deals", as_of, after=around) if c.day > since]
    if not swept:
        return []
    return ["clean-up days (stale deals closed lost in one sweep): " + ", ".join(c.sentence() for c in swept)
            + "; housekeeping, not a fall in selling: the anomaly tests and the forecast's segment changes leave "
              "them out"]


def undelivered_messages(con, context: dict) -> list[str]:
    """Alert messages no channel delivered, or that may have arrived but cannot be confirmed."""
    if not table_exists(con, "alert_deliveries"):
        return []
    states = message_states(con.sql("SELECT message_id, recipient_id, channel, status FROM main.alert_deliveries").df())
    lines = []
    if states["messages_failed"]:
        lines.append(f"{states['messages_failed']:,} alert messages failed on every channel (retried on the next run; "
                     "see alert_deliveries.error)")
    if states["messages_unknown"]:
        lines.append(f"{states['messages_unknown']:,} alert messages may have reached Slack but cannot be confirmed "
                     "(not re-sent; give the Slack app the history scopes)")
    return lines


MUST_KNOW: list[MustKnowFinder] = [data_incomplete, excluded_columns, model_signal, short_history_horizon,
                                   quarters_from_wins, failed_warning_checks,
                                   quarantine_by_rule, unmapped_stages, open_deals_without_amount, recent_clean_ups,
                                   dimension_gaps,
                                   undelivered_messages, forecast_next_90_days]


def must_know(con, failed_checks: list[FailedCheck] | None = None) -> list[str]:
    """The "What you must know" lines, in ``MUST_KNOW`` order."""
    context = {"failed_checks": failed_checks or []}
    return [line for finder in MUST_KNOW for line in finder(con, context)]


# The alerts' own priority order: priority, severity (stalled deals: staleness
# gated by money), then money at stake (stalled: amount x the drop in win chance).
_TOP_ALERTS = """
    SELECT priority, title FROM main.alerts
    WHERE status <> 'resolved'
    ORDER BY priority, list_position(['critical', 'high', 'medium', 'low'], severity) NULLS LAST,
             amount_at_stake DESC NULLS LAST, alert_id LIMIT 5"""


_WEAK_BANDS = " (bands of a model with no signal, see above: not a risk judgement)"
_NOT_SCORED = " (no open deal was scored: no risk model, see above)"


def _scored_by_weak_model(con) -> bool:
    """Were the open deals scored by a model whose verdict is not usable?"""
    if "model_verdict" not in _columns(con, "deal_risk_scores"):
        return False
    return bool(con.execute("SELECT count(*) FILTER (WHERE model_verdict <> 'usable') FROM main.deal_risk_scores")
                .fetchall()[0][0])


def _risk_note(con) -> str:
    """What the high-risk count means: nothing when no deal was scored while
    some are open, no risk judgement when a weak model scored them."""
    if not _count(con, "deal_risk_scores") and "is_open" in _columns(con, "fact_deals") \
            and _count(con, "fact_deals", "WHERE is_open"):
        return _NOT_SCORED
    return _WEAK_BANDS if _scored_by_weak_model(con) else ""


def _alerts_line(con) -> str:
    """Open alerts: how many are P1 (and of those, stalled-deal crises) and
    how many wait in digests, so a flood of P1s is visible at a glance."""
    total, p1, crises, stalled = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE priority = 'P1'), "
        "count(*) FILTER (WHERE alert_type = 'deal_velocity_crisis'), "
        "count(*) FILTER (WHERE alert_type = 'stalled_deal') FROM main.alerts WHERE status <> 'resolved'"
    ).fetchall()[0]
    return (f"{'alerts':<21}{total:,} open: {p1:,} P1 ({crises:,} stalled-deal crises), "
            f"{total - p1:,} P2/P3 for digests ({stalled:,} stalled deals)")


def run_summary(warehouse: Warehouse, failed_checks: list[FailedCheck] | None = None,
                instance_home: Path | None = None) -> str:
    """Headline figures from the warehouse of a finished run, after what the
    reader must know first."""
    home = warehouse.home.location()
    database = home / DATABASE_FILE
    if not warehouse.exists():
        return f"No warehouse at {database}: the run did not get as far as storing data."
    with warehouse.connect(read_only=True) as con:
        lines = ["", "salesintel run summary", "======================", "", "What you must know:"]
        lines += [f"  - {line}" for line in must_know(con, failed_checks)] or ["  - nothing that changes the figures below"]
        lines.append("")
        deals = _count(con, "fact_deals")
        if deals is not None:
            row = con.execute(
                "SELECT count(*) FILTER (WHERE is_open), count(*) FILTER (WHERE NOT is_open), "
                "avg(CASE WHEN is_won THEN 1.0 ELSE 0.0 END) FILTER (WHERE NOT is_open), "
                "sum(deal_amount) FILTER (WHERE is_open), max(as_of_date) FROM fact_deals").fetchall()[0]
            open_deals, closed, win_rate, pipeline, as_of = row
            lines.append(f"analysis date        {as_of:%Y-%m-%d}" if as_of else "analysis date        -")
            lines.append(f"deals                {deals:,} ({closed:,} closed, {open_deals:,} open)")
            if win_rate is not None:
                lines.append(f"win rate             {win_rate:.1%} of closed deals")
            if pipeline:
                lines.append(f"open pipeline        ${pipeline:,.0f}")
        quarantined = _count(con, "quarantined_deals")
        flagged = _count(con, "fact_deals", "WHERE needs_review")
        if quarantined is not None:
            lines.append(f"data quality         {quarantined:,} rows quarantined, {flagged or 0:,} flagged for review")
        for table, label in [("driver_scores", "significant drivers"), ("deal_risk_scores", "high-risk open deals"),
                             ("anomalies", "anomalies")]:
            where = {"driver_scores": "WHERE significant", "deal_risk_scores": "WHERE risk_band = 'high'"}.get(table, "")
            n = _count(con, table, where)
            if n is not None:
                lines.append(f"{label:<21}{n:,}" + (_risk_note(con) if table == "deal_risk_scores" else ""))
        if _count(con, "alerts") is not None:
            lines.append(_alerts_line(con))
        if _count(con, "alert_deliveries") is not None:
            lines.append(_deliveries_line(con))
        if _count(con, "alerts"):
            lines += ["", "Top alerts:"]
            top = con.execute(_TOP_ALERTS).fetchall()
            lines += [f"  [{priority}] {title}" for priority, title in top]
        lines += [
            "",
            "Where to look next:",
            f"  warehouse            duckdb -readonly {database}   (close it before the next run)",
            "  quality report       SELECT * FROM data_quality_report   (quarantine: quarantined_deals)",
            f"  alert outbox         {home / OUTBOX_DIR / OUTBOX_FILE}",
            f"  runs and checks      salesintel ui   (http://127.0.0.1:3000; DAGSTER_HOME="
            f"{instance_home or home / DAGSTER_HOME_DIR})",
            f"  model runs           mlflow ui --backend-store-uri sqlite:///{home / MLFLOW_DB_FILE} --workers 1",
        ]
        return "\n".join(lines)
