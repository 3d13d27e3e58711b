"""Builders for the alerts layer's tests: anomaly rows in the anomalies
layer's contract, a small sales org, evidence frames and rules variants."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from salesintel_assets.domain.alerts import candidates as alert_rules
from salesintel_assets.domain.alerts import lifecycle as alert_state
from salesintel_assets.domain.alerts.candidates import Evidence
from salesintel_assets.domain.alerts.routing import Router
from salesintel_assets.domain.common.rules import Rules, default_rules_path, load_rules

AS_OF = pd.Timestamp("2026-06-30")
N_DEALS = 1500  # the small sample warehouse of the asset-level tests


def reps_frame(with_org: bool = True) -> pd.DataFrame:
    rows = [
        ("rep_1", "Avery Lindqvist", "avery.lindqvist@example.com", "mgr_1", "Claire Donovan", "claire.donovan@example.com"),
        ("rep_2", "Marcus Okafor", "marcus.okafor@example.com", "mgr_2", "Henrik Sorensen", "henrik.sorensen@example.com"),
        ("rep_3", "Priya Raman", "priya.raman@example.com", "mgr_2", "Henrik Sorensen", "henrik.sorensen@example.com"),
    ]
    frame = pd.DataFrame(rows, columns=["sales_rep_id", "rep_name", "email", "manager_id", "manager_name",
                                        "manager_email"])
    frame["cro_id"], frame["cro_name"], frame["cro_email"] = "cro_1", "Miriam Castellano", "miriam.castellano@example.com"
    if not with_org:
        for c in ("email", "manager_id", "manager_name", "manager_email", "cro_id", "cro_name", "cro_email"):
            frame[c] = None
    frame["has_org"] = frame["manager_id"].notna()
    return frame


def stalled(deal_id: str, rep: str, amount: float, severity: str = "critical", days: float = 52.0,
            anomaly_id: str | None = None, metric: str = "stage_duration", limit: float = 30.0) -> dict:
    """A stalled deal of this amount: deals that lasted as long won 17.5 %
    (95 % CI 9-32 %) against 60 % fresh in the stage, so its money at stake
    is the amount x that 42.5-point drop."""
    return {
        "anomaly_id": anomaly_id or f"a-{deal_id}", "anomaly_type": "stalled_deal", "metric": metric,
        "segment": f"deal_id={deal_id}", "dimension": "deal", "direction": "up", "window_start": pd.NaT,
        "window_end": AS_OF, "window_days": None, "observed": days, "expected": limit, "effect": days - limit,
        "n": 40, "baseline_n": None, "p_value": None, "q_value": None, "severity": severity,
        "explanation": f"{deal_id} has been in its stage for {days:.0f} days; won deals left it within {limit:.0f}.",
        "root_cause": f"days in Qualified past {limit:.0f} days", "deal_id": deal_id, "sales_rep_id": rep,
        "amount_at_stake": amount * (0.6 - 0.175), "historical_win_rate": 0.175, "historical_win_low": 0.09,
        "historical_win_high": 0.32, "baseline_win_rate": 0.6, "as_of_date": AS_OF,
    }


def segment(anomaly_type: str, segment_key: str, metric: str = "win_rate", severity: str = "high",
            observed: float = 0.17, expected: float = 0.45, n: int = 58, baseline_n: int = 820,
            anomaly_id: str | None = None, root_cause: str | None = None, amount: float | None = None,
            direction: str = "down") -> dict:
    return {
        "anomaly_id": anomaly_id or f"a-{anomaly_type}-{segment_key}", "anomaly_type": anomaly_type,
        "metric": metric, "segment": segment_key, "dimension": "x", "direction": direction,
        "window_start": AS_OF - pd.Timedelta(days=44), "window_end": AS_OF, "window_days": 45,
        "observed": observed, "expected": expected, "effect": observed - expected, "n": n,
        "baseline_n": baseline_n, "p_value": 0.0001, "q_value": 0.002, "severity": severity,
        "explanation": None, "root_cause": root_cause, "deal_id": None, "sales_rep_id": None,
        "amount_at_stake": amount, "historical_win_rate": None, "as_of_date": AS_OF,
    }


def deals_frame() -> pd.DataFrame:
    rows = [
        ("D00042", "rep_2", "FinTech", "Europe", "Enterprise", "Qualified", 84_000.0, 52.0, "2026-05-20", 3),
        ("D00043", "rep_2", "SaaS", "Europe", "Pro", "Demo", 61_000.0, 70.0, None, 0),
        ("D00044", "rep_2", "SaaS", "Europe", "Core", "Qualified", 55_000.0, 48.0, None, 0),
        ("D00045", "rep_2", "EdTech", "Europe", "Core", "Qualified", 52_000.0, 47.0, None, 0),
        ("D00046", "rep_2", "SaaS", "Europe", "Core", "Demo", 51_000.0, 46.0, None, 0),
        ("D00050", "rep_1", "HealthTech", "APAC", "Core", "Demo", 9_000.0, 40.0, None, 0),
    ]
    frame = pd.DataFrame(rows, columns=["deal_id", "sales_rep_id", "industry", "region", "product_type",
                                        "deal_stage", "deal_amount", "days_in_stage", "last_activity_date",
                                        "activity_count"])
    frame["last_activity_date"] = pd.to_datetime(frame["last_activity_date"])
    return frame


def evidence() -> Evidence:
    segments = pd.DataFrame([("all", 400, 9_000_000.0, 400, 2000, 900),
                             ("industry=FinTech&region=Europe", 99, 2_550_000.0, 99, 878, 380),
                             ("lead_source=Partner", 334, 6_000_000.0, 334, 1200, 430)],
                            columns=["segment", "open_n", "open_amount", "open_priced_n", "closed_n", "won_n"])
    return Evidence(deals=deals_frame(), segments=segments)


def rules_with(rules: Rules | None = None, **alerts_updates) -> Rules:
    """The packaged rules with some alerts settings replaced (e.g. rollout=...)."""
    rules = rules or load_rules()
    return rules.model_copy(update={"alerts": rules.alerts.model_copy(update=alerts_updates)})


def write_rules(path: Path, mutate) -> Path:
    """A rules file: the packaged one with ``mutate(raw_dict)`` applied."""
    raw = yaml.safe_load(default_rules_path().read_text())
    mutate(raw)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def build_alerts(anomalies: list[dict], rules: Rules | None = None, previous: pd.DataFrame | None = None,
                 as_of: pd.Timestamp = AS_OF, reps: pd.DataFrame | None = None, floors: dict | None = None):
    rules = rules or load_rules()
    router = Router(reps if reps is not None else reps_frame(), rules.alerts)
    ctx = alert_rules.Context(evidence(), router, None, rules, as_of)
    candidates, skipped = alert_rules.build_candidates(pd.DataFrame(anomalies), ctx, floors)
    return alert_state.update_alerts(previous, candidates, router, rules, as_of), skipped
