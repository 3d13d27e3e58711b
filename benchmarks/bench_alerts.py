"""Benchmark of the alerts layer's domain work.

    python benchmarks/bench_alerts.py --deals 100000 1000000

``benchmark(fact_deals)`` times the alert engine on a given fact table with a
realistic, large set of anomalies (the 50 longest-stalled open deals, a
win-rate dip in every industry x region pair, a quality drop per lead source,
a metric shift per region): the SQL evidence queries, candidate building,
the lifecycle update (first run and re-run), message planning, and delivery
to the local outbox with one committed DuckDB ledger write per message (the
exactly-once path). Run as a script it builds fact_deals and the stage
transitions from the sample CRM for each size.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd


def _timed(figures: dict, key: str, fn, *args):
    began = time.perf_counter()
    out = fn(*args)
    figures[key] = time.perf_counter() - began
    return out


def synthetic_anomalies(fact: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Anomaly rows in the anomalies layer's contract, many more than a real
    day produces, so the figures are an upper bound."""
    open_deals = fact[fact["is_open"] & fact["days_in_stage"].notna()].nlargest(50, "days_in_stage")
    rows = [{"anomaly_id": f"s{i}", "anomaly_type": "stalled_deal", "metric": "stage_duration",
             "segment": f"deal_id={d['deal_id']}", "deal_id": d["deal_id"], "sales_rep_id": d["sales_rep_id"],
             "observed": d["days_in_stage"], "expected": 30.0, "effect": d["days_in_stage"] - 30.0,
             "severity": "critical" if i % 2 else "high", "amount_at_stake": d["deal_amount"],
             "historical_win_rate": 0.2, "explanation": "stalled", "window_end": as_of}
            for i, d in enumerate(open_deals.to_dict("records"))]
    window = {"window_start": as_of - pd.Timedelta(days=44), "window_end": as_of, "window_days": 45, "n": 60,
              "baseline_n": 900, "p_value": 0.001, "q_value": 0.01, "direction": "down"}
    for industry in sorted(fact["industry"].dropna().unique()):
        for region in sorted(fact["region"].dropna().unique()):
            rows.append({"anomaly_id": f"w-{industry}-{region}", "anomaly_type": "win_rate_dip", "metric": "win_rate",
                         "segment": f"industry={industry}&region={region}", "observed": 0.3, "expected": 0.45,
                         "effect": -0.15, "severity": "medium", **window})
    for source in sorted(fact["lead_source"].dropna().unique()):
        rows.append({"anomaly_id": f"q-{source}", "anomaly_type": "quality_drop", "metric": "dqs",
                     "segment": f"lead_source={source}", "observed": 0.4, "expected": 0.6, "effect": -0.2,
                     "severity": "medium", **window})
    for region in sorted(fact["region"].dropna().unique()):
        rows.append({"anomaly_id": f"m-{region}", "anomaly_type": "metric_shift", "metric": "pvs",
                     "segment": f"region={region}", "observed": 0.8, "expected": 1.0, "effect": -0.2,
                     "severity": "low", **window})
    return pd.DataFrame(rows)


def benchmark(fact_deals: pd.DataFrame, transitions: pd.DataFrame | None = None,
              reps: pd.DataFrame | None = None) -> dict[str, float]:
    """Seconds of each step of the alerts layer on ``fact_deals``."""
    import duckdb

    from salesintel_assets.assets.alerts import LedgerWriter
    from salesintel_assets.domain.alerts import candidates as alert_rules
    from salesintel_assets.domain.alerts import delivery_plan
    from salesintel_assets.domain.alerts import lifecycle as alert_state
    from salesintel_assets.sources import sample_crm
    from salesintel_assets.domain.alerts.delivery import deliver
    from salesintel_assets.domain.alerts.routing import Router
    from salesintel_assets.domain.common.rules import load_rules
    from salesintel_assets.resources.notifier import EmailNotifier, OutboxNotifier, SlackNotifier, build_channels
    from salesintel_assets.resources.warehouse import SalesintelHome, Warehouse

    rules = load_rules()
    as_of = pd.Timestamp(fact_deals["as_of_date"].iloc[0])
    reps = reps if reps is not None else sample_crm.build_reps()
    anomalies = synthetic_anomalies(fact_deals, as_of)
    fig: dict[str, float] = {"deals": float(len(fact_deals)), "anomalies": float(len(anomalies))}
    con = duckdb.connect()  # native tables, as the asset reads the warehouse
    con.register("_fact", fact_deals)
    con.execute("CREATE TABLE fact_deals AS SELECT * FROM _fact")
    if transitions is not None:
        con.register("_transitions", transitions)
        con.execute("CREATE TABLE fact_stage_transitions AS SELECT * FROM _transitions")
    evidence = _timed(fig, "evidence_sql_s", alert_rules.load_evidence, con, anomalies, as_of)
    con.close()
    router = Router(reps, rules.alerts)
    ctx = alert_rules.Context(evidence, router, None, rules, as_of)
    candidates, _ = _timed(fig, "candidates_s", alert_rules.build_candidates, anomalies, ctx, None)
    table = _timed(fig, "lifecycle_first_run_s", alert_state.update_alerts, None, candidates, router, rules, as_of)
    _timed(fig, "lifecycle_rerun_s", alert_state.update_alerts, table, candidates, router, rules, as_of)
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    plan = _timed(fig, "plan_messages_s", delivery_plan.plan_messages, table, None, set(), router, rules, as_of, now,
                  ["daily", "weekly"], [])
    with tempfile.TemporaryDirectory() as tmp:
        home = SalesintelHome(path=tmp)
        warehouse = Warehouse(home=home)
        warehouse.write_table("alert_deliveries", plan)
        channels, configured = build_channels(SlackNotifier(), EmailNotifier(), OutboxNotifier(home=home))
        _, report = _timed(fig, "deliver_outbox_s", deliver, plan, channels, configured, LedgerWriter(warehouse),
                           lambda: pd.Timestamp.now(tz="UTC").tz_localize(None))
    fig["alerts"] = float(len(table))
    fig["messages"] = float(report.sent)
    fig["deliver_per_message_ms"] = 1000 * fig["deliver_outbox_s"] / max(report.sent, 1)
    fig["total_s"] = sum(v for k, v in fig.items() if k.endswith("_s"))
    return fig


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from sample_tables import sample_inputs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, nargs="+", default=[100_000])
    args = parser.parse_args()
    for n in args.deals:
        fact, transitions = sample_inputs(n)
        result = benchmark(fact, transitions=transitions)
        print(json.dumps({k: round(v, 4) for k, v in result.items()}))


if __name__ == "__main__":
    main()
