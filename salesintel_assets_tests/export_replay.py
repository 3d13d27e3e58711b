"""Replay a real CRM export as of past dates and judge what ``salesintel
run`` said then against what the export says happened next.

An export taken late holds, for every deal, how it ended (or that it is
still open). As of an earlier date D it looked different: deals created
after D did not exist, and deals closed after D were open (no close date,
no cycle length, no outcome; their stage the one they closed in, as the
export keeps no stage history, or the pipeline's first stage where that
names the outcome: Won, Closed Lost). ``as_of_export`` rebuilds that file;
``salesintel run --csv ... --as-of D`` runs on it through the run-time
contract, in its own home; the verdict compares the 90-day wins forecast
and the open deals' ranking (risk model against deal age alone) with the
deals that were then won within 90 days.

Run: ``python -m salesintel_assets_tests.export_replay EXPORT.csv 2023-09-30
2023-12-31 ...`` (about a minute per date at 5,000 deals). The export must
be in the CSV format of the run-time contract and closed out well past the
dates (a deal still open at its end is a deal that has not closed: it
counts as not won).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from salesintel_assets.domain.common.rules import stage_key, stage_keys

HORIZON_DAYS = 90
REOPENED = {"closed_date": "", "sales_cycle_days": "", "outcome": ""}


def as_of_export(export: pd.DataFrame, as_of: pd.Timestamp, stages) -> pd.DataFrame:
    """The export as it looked on ``as_of`` (all columns as text): deals
    created by then, those closed later open again. ``stages``: the rules'
    ``stages`` (which names mean closed, and the first stage)."""
    created = pd.to_datetime(export["created_date"], errors="coerce")
    closed = pd.to_datetime(export["closed_date"], errors="coerce")
    then = export[created <= as_of].astype(str).replace({"nan": "", "<NA>": ""})
    later = (closed[created <= as_of] > as_of).to_numpy()
    then.loc[later, list(REOPENED)] = list(REOPENED.values())
    outcome_names = {stage_key(n) for n in [*stages.won, *stages.lost, stages.order[-1]]}
    named = later & stage_keys(then["deal_stage"]).isin(outcome_names).to_numpy()
    then.loc[named, "deal_stage"] = stages.order[0]
    return then


def won_within(export: pd.DataFrame, deal_ids, as_of: pd.Timestamp, days: int = HORIZON_DAYS) -> pd.Series:
    """Per deal id: won within ``days`` after ``as_of``, by the export."""
    rows = export.set_index("deal_id").reindex(list(deal_ids))
    closed = pd.to_datetime(rows["closed_date"], errors="coerce")
    won = rows["outcome"].astype(str).str.lower().eq("won") & (closed > as_of) \
        & (closed <= as_of + pd.Timedelta(days=days))
    return pd.Series(won.to_numpy(), index=rows.index)


def run_as_of(csv: Path, as_of: pd.Timestamp, home: Path) -> dict:
    """``salesintel run --csv CSV --as-of D`` in its own home, and what it
    wrote that a judge reads: ``scores`` (deal_id, age_days,
    win_probability_90d), ``forecast`` (expected, p10, p90 of the 90-day
    wins, or None), ``verdict`` and ``candidate`` (what served: the model's kind, or age_curve),
    ``anomalies`` (anomaly_type, metric, segment),
    ``alerts`` (priority) and ``forecast_changes`` (``forecast_changes``);
    only ``exit`` and ``message`` when the input was refused."""
    import duckdb

    run = subprocess.run([sys.executable, "-m", "salesintel_assets.cli", "run", "--csv", str(csv),
                          "--as-of", f"{as_of:%Y-%m-%d}"], env={**_environment(), "SALESINTEL_HOME": str(home)},
                         capture_output=True, text=True)
    refused = {"exit": run.returncode, "message": " ".join((run.stderr or run.stdout).strip().splitlines()[-1:])}
    if not (home / "warehouse.duckdb").exists():   # the input was refused: say why
        return refused
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        tables = {name for (name,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if not {"deal_risk_scores", "pipeline_forecast", "deal_risk_model", "anomalies", "alerts"} <= tables:
            return refused
        forecast = con.sql("SELECT expected_won_deals, won_deals_p10, won_deals_p90 FROM pipeline_forecast "
                           "WHERE grouping = 'horizon' AND key = '90d'").fetchall()
        served = "served_by" if "served_by" in con.table("deal_risk_model").columns else "candidate"
        model = con.sql(f"SELECT model_verdict, coalesce({served}, candidate) FROM deal_risk_model "
                        "ORDER BY as_of_date DESC LIMIT 1").fetchall()
        return {"exit": run.returncode,
                "scores": con.sql("SELECT deal_id, age_days, win_probability_90d FROM deal_risk_scores").df(),
                "forecast": forecast[0] if forecast else None, "verdict": model[0][0] if model else None,
                "candidate": model[0][1] if model else None,
                "anomalies": con.sql("SELECT anomaly_type, metric, segment FROM anomalies").df(),
                "alerts": con.sql("SELECT priority FROM alerts").df(),
                "forecast_changes": forecast_changes(con, as_of)}
    finally:
        con.close()


def forecast_changes(con, as_of: pd.Timestamp) -> str:
    """The segments whose latest closes moved the forecast, found in the
    warehouse as ``pipeline_forecast`` finds them: "segment shift" (log
    odds) each, or "-"."""
    from salesintel_assets.domain.common.rules import load_rules
    from salesintel_assets.domain.models import forecast, reporting, segment_changes

    rules = load_rules().risk
    closes = con.execute(reporting.SEGMENT_CLOSES_SQL, [forecast.segment_window(as_of, rules)[0], as_of]).df()
    changes = segment_changes.find(closes, as_of, rules.forecast.segment_changes)
    return ";".join(f"{c.label} {c.shift:+.2f}" for c in changes) or "-"


def judged(ran: dict, truth: pd.Series) -> dict:
    """The 90-day wins forecast and the open deals' ranking (model against
    deal age) against ``truth``: per open deal id, won within 90 days."""
    from sklearn.metrics import roc_auc_score

    row = {"open_deals": len(truth), "won_90d": int(truth.sum()), "verdict": ran["verdict"],
           "candidate": ran.get("candidate")}
    if ran["forecast"]:
        expected, low, high = ran["forecast"]
        row |= {"expected_90d": round(expected, 1), "p10": low, "p90": high,
                "error": round(expected / max(int(truth.sum()), 1) - 1, 3),
                "in_interval": bool(low <= truth.sum() <= high)}
    scores = ran["scores"]
    if len(scores) and scores["win_probability_90d"].notna().all() and 0 < truth.sum() < len(truth):
        y = truth.reindex(scores["deal_id"]).fillna(False).to_numpy(dtype=int)
        row |= {"auc_model": round(roc_auc_score(y, scores["win_probability_90d"]), 3),
                "auc_age": round(roc_auc_score(y, -scores["age_days"]), 3)}
    return row | {"forecast_changes": ran.get("forecast_changes", "-")}


def replay(export: pd.DataFrame, stages, as_of: pd.Timestamp, home: Path) -> dict:
    """One date: run the pipeline on the export (as text) as of then, and
    judge it. ``stages``: the rules' ``stages``."""
    then = as_of_export(export, as_of, stages)
    csv = home / "export_then.csv"
    then.to_csv(csv, index=False)
    ran = run_as_of(csv, as_of, home)
    row = {"as_of": f"{as_of:%Y-%m-%d}", "exit": ran["exit"]}
    if "message" in ran:
        return row | {"message": ran["message"]}
    open_ids = then.loc[then["closed_date"].eq(""), "deal_id"]
    return row | judged(ran, won_within(export, open_ids, as_of))


def _environment() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("SALESINTEL_")}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", type=Path)
    parser.add_argument("dates", nargs="+", type=pd.Timestamp)
    args = parser.parse_args(argv)
    from salesintel_assets.domain.common.rules import load_rules

    export, stages = pd.read_csv(args.export, dtype=str, keep_default_na=False), load_rules().stages
    rows = []
    for day in args.dates:
        with tempfile.TemporaryDirectory() as home:
            rows.append(replay(export, stages, day, Path(home)))
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
