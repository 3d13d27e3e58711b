"""Words that do not mislead: a spike is an opportunity, a dimension with one
value is no segment, a stall the usable risk model expects to win is no crisis."""

import pandas as pd

from salesintel_assets.domain.alerts import candidates as alert_rules
from salesintel_assets.domain.alerts.routing import Router
from salesintel_assets.domain.anomalies.detector import detect_anomalies
from salesintel_assets.domain.common.rules import load_rules
from salesintel_assets_tests import scenarios as S
from salesintel_assets_tests.alert_support import AS_OF, build_alerts, evidence, reps_frame, segment, stalled


def test_a_win_rate_spike_is_an_opportunity_not_revenue_at_risk():
    table, _ = build_alerts([segment("win_rate_spike", "industry=FinTech&region=Europe", observed=0.62,
                                     expected=0.45, direction="up", severity="medium")])
    body = table.iloc[0]["body_text"]
    assert "expected revenue upside if the higher win rate holds (an opportunity, not a risk)" in body
    assert "at risk" not in body
    dip, _ = build_alerts([segment("win_rate_dip", "industry=FinTech&region=Europe")])
    assert "expected revenue at risk" in dip.iloc[0]["body_text"]


def _candidates(verdict: str, probability: float) -> pd.DataFrame:
    rules = load_rules()
    risk = pd.DataFrame({"deal_id": ["D00042"], "win_probability": [probability], "risk_band": ["low"],
                         "model_verdict": [verdict]})
    ctx = alert_rules.Context(evidence(), Router(reps_frame(), rules.alerts), risk, rules, AS_OF)
    out, _ = alert_rules.build_candidates(pd.DataFrame([stalled("D00042", "rep_2", 84_000.0)]), ctx)
    return out


def test_a_stall_the_usable_model_expects_to_win_is_never_a_crisis():
    likely = _candidates("usable", 0.81).iloc[0]
    assert (likely["alert_type"], likely["priority"]) == ("stalled_deal", "P2")
    # A weak model's opinion changes nothing; nor does a usable model that expects a loss.
    assert _candidates("weak", 0.81).iloc[0]["priority"] == "P1"
    assert _candidates("usable", 0.2).iloc[0]["priority"] == "P1"


def test_a_dimension_with_one_value_is_never_a_segment_or_a_root_cause():
    world = S.generate(12_000, 3, plants=(S.WinRatePlant({}, -0.25),))
    fact = world.fact.assign(lead_source="Unknown")
    report = detect_anomalies(fact, None, None, load_rules(), world.as_of)
    found = report.anomalies[report.anomalies["dimension"] != "deal"]
    assert "all" in set(found.loc[found["anomaly_type"] == "win_rate_dip", "segment"])
    assert not found["segment"].str.contains("lead_source").any()
    assert not found["root_cause"].str.contains("lead source|Unknown").any()
    assert any(note.startswith("lead_source has a single value in the data (Unknown)") for note in report.notes)
