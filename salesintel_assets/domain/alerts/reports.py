"""Scheduled summaries delivered through the same exactly-once ledger as
alerts: the weekly rep scorecard (Monday) and the monthly executive report
(on the 1st). Both are built from small aggregates the asset queries in SQL.
"""

from __future__ import annotations

import json

import pandas as pd

from salesintel_assets.domain.alerts.wording import amount_text, missing, money, pct, pipeline
from salesintel_assets.domain.alerts.messages import Message, _context, _header, _section, escape, headline
from salesintel_assets.domain.alerts.routing import Contact, Router

REP_STATS_SQL = """
    SELECT sales_rep_id,
           count(*) FILTER (WHERE is_open) AS open_n,
           coalesce(sum(deal_amount) FILTER (WHERE is_open), 0) AS open_amount,
           count(deal_amount) FILTER (WHERE is_open) AS open_priced_n,
           count(*) FILTER (WHERE outcome IN ('Won', 'Lost') AND closed_date > $start AND closed_date <= $as_of) AS closed_n,
           count(*) FILTER (WHERE outcome = 'Won' AND closed_date > $start AND closed_date <= $as_of) AS won_n
    FROM fact_deals GROUP BY sales_rep_id"""
WIN_RATE_SQL = """
    SELECT count(*) FILTER (WHERE closed_date > $mid AND closed_date <= $as_of) AS closed_now,
           count(*) FILTER (WHERE is_won AND closed_date > $mid AND closed_date <= $as_of) AS won_now,
           count(*) FILTER (WHERE closed_date > $start AND closed_date <= $mid) AS closed_before,
           count(*) FILTER (WHERE is_won AND closed_date > $start AND closed_date <= $mid) AS won_before,
           count(*) FILTER (WHERE is_open) AS open_n, coalesce(sum(deal_amount) FILTER (WHERE is_open), 0) AS open_amount,
           count(deal_amount) FILTER (WHERE is_open) AS open_priced_n
    FROM fact_deals WHERE outcome IN ('Won', 'Lost', 'Open')"""
SCORECARD_DAYS = 90
REPORT_DAYS = 30


def rep_stats(con, as_of: pd.Timestamp) -> pd.DataFrame:
    start = (pd.Timestamp(as_of) - pd.Timedelta(days=SCORECARD_DAYS)).to_pydatetime()
    return con.execute(REP_STATS_SQL, {"start": start, "as_of": pd.Timestamp(as_of).to_pydatetime()}).df()


def company_stats(con, as_of: pd.Timestamp) -> dict:
    as_of = pd.Timestamp(as_of)
    params = {"as_of": as_of.to_pydatetime(), "mid": (as_of - pd.Timedelta(days=REPORT_DAYS)).to_pydatetime(),
              "start": (as_of - pd.Timedelta(days=2 * REPORT_DAYS)).to_pydatetime()}
    return con.execute(WIN_RATE_SQL, params).df().iloc[0].to_dict()


def _rate(won, n) -> str:
    return f"{pct(won / n)} of {int(n):,}" if n else "no deals"


def _message(title: str, lines: list[str]) -> Message:
    blocks = [_header(title)] + [_section(escape(line)) for line in lines if line] + \
             [_context("salesintel · scheduled summary")]
    return Message(subject=title, text=title + "\n\n" + "\n".join(lines), blocks=blocks)


def _pipeline(row) -> str:
    """The open pipeline of a stats row (``open_priced_n``: its open deals with an amount)."""
    return pipeline(int(row["open_n"]), float(row["open_amount"]), int(row["open_priced_n"]))


def rep_scorecards(reps: pd.DataFrame, stats: pd.DataFrame, alerts: pd.DataFrame, risk: pd.DataFrame | None,
                   router: Router, as_of: pd.Timestamp, week: str) -> list[tuple[Contact, Message]]:
    """One scorecard per rep with deals: win rate vs the team, pipeline,
    deals at risk (when the risk model has scored them), this week's alerts."""
    as_of = pd.Timestamp(as_of).normalize()
    weak = risk is not None and len(risk) > 0 and "model_verdict" in risk and not (risk["model_verdict"] == "usable").all()
    stats = stats.set_index("sales_rep_id")
    team_won, team_closed = stats["won_n"].sum(), stats["closed_n"].sum()
    week_start = as_of - pd.Timedelta(days=6)
    recent = alerts[(pd.to_datetime(alerts["first_seen"]) >= week_start) & alerts["sales_rep_id"].notna()]
    out = []
    for rep_id in sorted(set(stats.index) & set(reps["sales_rep_id"])):
        contact = next(iter(router.role("rep", rep_id)), None)
        if contact is None or contact.role != "rep":
            continue  # a rep without an address gets no scorecard (their manager still gets alerts)
        s = stats.loc[rep_id]
        lines = [f"Win rate (last {SCORECARD_DAYS} days): {_rate(s['won_n'], s['closed_n'])} closed deals "
                 f"(team {_rate(team_won, team_closed)})",
                 f"Open pipeline: {_pipeline(s)}"]
        if weak:
            lines.append("Deals at risk: the risk model is no better than deal age, so no probabilities are quoted")
        elif risk is not None and len(risk):
            mine = risk[risk["sales_rep_id"].eq(rep_id) & risk["risk_band"].eq("high")]
            mine = mine.sort_values("revenue_at_risk", ascending=False)
            lines.append(f"Deals at risk: {len(mine)} high-risk deals, {money(mine['revenue_at_risk'].sum())} "
                         f"revenue at risk")
            lines += [f"  - {d['deal_id']} ({amount_text(d['deal_amount'])}): {pct(d['win_probability'])} win "
                      "probability"
                      + (f"; {d['reason_1']}" if not missing(d.get("reason_1")) else "")
                      for d in mine.head(3).to_dict("records")]
        else:
            lines.append("Deals at risk: risk scores not available")
        own = recent[recent["sales_rep_id"].eq(rep_id)]
        live = own[own["status"].isin(["open", "updated"])]
        lines.append(f"Alerts this week: {len(live)} open ({int(live['priority'].eq('P1').sum())} P1), "
                     f"{int(own['status'].eq('resolved').sum())} resolved; money at stake "
                     f"{money(live['amount_at_stake'].sum())}")
        lines += [f"  - {headline(json.loads(a['content_json']))}" for a in live.head(5).to_dict("records")]
        out.append((contact, _message(f"Weekly scorecard for {contact.name} · {week}", lines)))
    return out


def executive_report(alerts: pd.DataFrame, precision: pd.DataFrame | None, ledger: pd.DataFrame,
                     company: dict, router: Router, as_of: pd.Timestamp, month: str) -> list[tuple[Contact, Message]]:
    """The month for sales leadership: win rate trend, pipeline, alerts by
    type with their precision, the largest open alerts, delivery health."""
    as_of = pd.Timestamp(as_of).normalize()
    month_start = pd.Timestamp(f"{month}-01")
    seen = alerts[pd.to_datetime(alerts["first_seen"]) >= month_start]
    live = alerts[alerts["status"].isin(["open", "updated"])]
    lines = [f"Win rate: {_rate(company['won_now'], company['closed_now'])} deals closed in the last "
             f"{REPORT_DAYS} days vs {_rate(company['won_before'], company['closed_before'])} in the "
             f"{REPORT_DAYS} days before",
             f"Open pipeline: {_pipeline(company)}",
             f"Alerts since {month_start:%Y-%m-%d}: {len(seen)} "
             f"({', '.join(f'{p} {n}' for p, n in seen['priority'].value_counts().sort_index().items()) or 'none'}); "
             f"{int(seen['status'].eq('resolved').sum())} resolved; {money(live['amount_at_stake'].sum())} "
             f"at stake in open alerts"]
    by_precision = precision.set_index("alert_type") if precision is not None and len(precision) else None
    for alert_type, group in seen.groupby("alert_type"):
        quality = ""
        if by_precision is not None and alert_type in by_precision.index and by_precision.loc[alert_type, "rated"]:
            p = by_precision.loc[alert_type]
            quality = f"; precision {pct(p['precision'])} of {int(p['rated'])} rated"
        lines.append(f"  - {group['alert_name'].iloc[0]}: {len(group)} "
                     f"({int(group['status'].isin(['open', 'updated']).sum())} open){quality}")
    top = live.sort_values("amount_at_stake", ascending=False).head(5)
    if len(top):
        lines.append("Largest open alerts:")
        lines += [f"  {i}. {headline(json.loads(a['content_json']))}" for i, a in enumerate(top.to_dict("records"), 1)]
    if len(ledger):
        delivered = ledger.groupby(["message_id", "recipient_id"])["status"].agg(lambda s: s.eq("sent").any())
        sent = ledger[ledger["status"].eq("sent")]["channel"].value_counts().to_dict()
        lines.append(f"Delivery: {int(delivered.sum())} messages delivered "
                     f"({', '.join(f'{k} {v}' for k, v in sorted(sent.items()))}), "
                     f"{int((~delivered).sum())} waiting for a retry")
    message = _message(f"Monthly executive report · {month}", lines)
    return [(contact, message) for contact in router.role("sales_leadership", None)]
