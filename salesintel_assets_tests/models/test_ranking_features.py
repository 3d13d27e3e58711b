"""What lets the risk model rank open deals beyond their age on a plain
export: the age against the segment's winning cycles (known at the snapshot
only), the blend of the candidates, and an honest deal-age baseline."""

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from salesintel_assets.domain.common.rules import load_rules
from salesintel_assets.domain.models import features as rf
from salesintel_assets.domain.models import risk_model as rm
from salesintel_assets.domain.models import verdict
from salesintel_assets_tests.models_support import assert_stored_with_trusted_types

NO_HISTORY = pd.DataFrame({"deal_id": pd.Series(dtype=object), "stage": pd.Series(dtype=object),
                           "entered_date": pd.Series(dtype="datetime64[ns]")})
NO_ACTIVITIES = pd.DataFrame({"deal_id": pd.Series(dtype=object), "activity_date": pd.Series(dtype="datetime64[ns]")})
START = pd.Timestamp("2025-01-06")  # a Monday: weeks start on day numbers divisible by 7 plus 4


def _won(cycles: dict[str, list[int]], closed_on: pd.Timestamp) -> pd.DataFrame:
    rows = [(segment, closed_on - pd.Timedelta(days=c), closed_on) for segment, cs in cycles.items() for c in cs]
    return pd.DataFrame(rows, columns=["product_type", "created_date", "closed_date"])


def _share(won: pd.DataFrame, segment: str, on: pd.Timestamp, age: float) -> float:
    cycles = rf.WonCycles(won, "product_type")
    return float(cycles.share_by_age([segment], rf.day_numbers([on]), np.array([age]))[0])


def test_age_is_measured_against_the_segments_winning_cycles():
    won = _won({"Core": [20, 25, 30, 35] * 15, "Enterprise": [90, 110, 130, 150] * 15}, START)
    later = START + pd.Timedelta(days=30)
    core, enterprise = _share(won, "Core", later, 60), _share(won, "Enterprise", later, 60)
    assert core > 0.8 and enterprise < 0.3          # 60 days is late for Core, young for Enterprise
    assert 0.0 < _share(won, "Unseen", later, 60) < 1.0   # an unseen segment gets all segments' share


def test_won_cycle_share_counts_only_wins_closed_before_the_snapshot_week():
    early = _won({"Core": [100] * 40}, START)
    on = START + pd.Timedelta(days=21)
    before = _share(early, "Core", on, 50)
    # Wins that close in the snapshot's week or after it are not known yet: the feature must not move.
    future = pd.concat([early, _won({"Core": [10] * 40}, on), _won({"Core": [10] * 40}, on + pd.Timedelta(days=60))])
    assert _share(future, "Core", on, 50) == before == 0.0
    # A week later the wins closed on ``on`` are history.
    assert _share(future, "Core", on + pd.Timedelta(days=7), 50) > 0.4
    before_any = START - pd.Timedelta(days=7)
    assert np.isnan(_share(early, "Core", before_any, 50))   # no win known yet: missing, not 0


def test_replayed_and_open_states_carry_the_won_cycle_share():
    """On a plain export the feature is there, known at each snapshot, and
    moves when (and only when) earlier wins change."""
    rules = load_rules().risk
    fact = _lingering_fact(rng=np.random.default_rng(5), n=600, signal=1.0)
    as_of = fact["closed_date"].max()
    prepared = rf.prepare(fact, NO_HISTORY, NO_ACTIVITIES, as_of, rules, ["Proposal", "Closed"])
    assert rf.WON_CYCLE_SHARE in prepared.spec.numeric
    states = prepared.snapshots
    known = states[rf.WON_CYCLE_SHARE].dropna()
    assert len(known) > 0.9 * len(states) and known.between(0, 1).all()   # missing only before the first win
    # Stretch the cycles of wins that closed in the last 60 days: snapshots older than that must not move.
    cut = as_of - pd.Timedelta(days=60)
    stretched = fact.copy()
    late = stretched["is_won"] & (stretched["closed_date"] > cut)
    stretched.loc[late, "created_date"] = stretched.loc[late, "created_date"] - pd.Timedelta(days=40)
    again = rf.prepare(stretched, NO_HISTORY, NO_ACTIVITIES, as_of, rules, ["Proposal", "Closed"])
    untouched = ~states["deal_id"].isin(stretched.loc[late, "deal_id"]) & (states["snapshot_date"] < cut - pd.Timedelta(days=7))
    keys = ["deal_id", "snapshot_date"]
    merged = states[untouched].merge(again.snapshots, on=keys, suffixes=("", "_again"))
    assert len(merged) > 1000
    np.testing.assert_array_equal(merged[rf.WON_CYCLE_SHARE], merged[f"{rf.WON_CYCLE_SHARE}_again"])
    recent = states["snapshot_date"] > cut + pd.Timedelta(days=7)
    moved = states[recent].merge(again.snapshots, on=keys, suffixes=("", "_again"))
    assert (moved[rf.WON_CYCLE_SHARE] != moved[f"{rf.WON_CYCLE_SHARE}_again"]).any()


def test_age_baseline_ranks_by_age_without_artificial_ties():
    age = np.arange(400, dtype=float)
    rows = pd.DataFrame({"age_days": np.repeat(age, 5),
                         "won": (np.random.default_rng(1).random(2000) < np.repeat(np.exp(-age / 80), 5)).astype(int)})
    baseline = verdict.AgeBaseline.fit(rows)
    inside = pd.DataFrame({"age_days": np.linspace(baseline.ages.min(), baseline.ages.max(), 200)})
    assert len(np.unique(baseline.predict(inside))) > 150     # ten deciles would give ten values
    assert roc_auc_score(rows["won"], baseline.predict(rows)) >= roc_auc_score(rows["won"], -rows["age_days"]) - 0.005


def _lingering_fact(rng, n: int, signal: float) -> pd.DataFrame:
    """A plain export: deals won within 10-120 days with a chance set by lead
    source (``signal`` = its log-odds spread; 0 = nothing but age), the rest
    lost within 5-150 days or left open for good."""
    created = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 640, n), unit="D")
    lead = rng.choice(["Inbound", "Referral", "Partner"], n)
    logit = -0.3 + signal * pd.Series(lead).map({"Inbound": 0.0, "Referral": 1.0, "Partner": -1.0}).to_numpy()
    won = rng.random(n) < 1 / (1 + np.exp(-logit))
    cycle = np.where(won, rng.integers(10, 121, n), rng.integers(5, 151, n))
    closed = created + pd.to_timedelta(cycle, unit="D")
    as_of = pd.Timestamp("2025-12-31")
    never = ~won & (rng.random(n) < 0.4)
    is_open = never | (closed > as_of)
    fact = pd.DataFrame({
        "deal_id": [f"L{i:05d}" for i in range(n)], "created_date": created,
        "closed_date": pd.Series(closed).where(~is_open), "sales_rep_id": rng.choice(["rep_1", "rep_2"], n),
        "industry": "SaaS", "region": "Europe", "product_type": rng.choice(["Core", "Pro"], n), "lead_source": lead,
        "deal_stage": np.where(is_open, "Proposal", "Closed"), "deal_amount": rng.lognormal(9.5, 0.5, n).round(),
        "outcome": np.where(is_open, "Open", np.where(won, "Won", "Lost")),
        "is_open": is_open, "is_won": won & ~is_open, "needs_review": False,
    })
    age = (fact["closed_date"].fillna(as_of) - fact["created_date"]).dt.days.astype(float)
    return fact.assign(age_days=age, sales_cycle_days=age.where(~is_open), days_in_stage=np.nan)


def test_a_world_with_nothing_beyond_age_is_called_no_better_than_deal_age():
    rules = load_rules().risk
    fact = _lingering_fact(np.random.default_rng(11), 1200, signal=0.0)
    prepared = rf.prepare(fact, NO_HISTORY, NO_ACTIVITIES, pd.Timestamp("2025-12-31"), rules, ["Proposal", "Closed"])
    training = rm.train(prepared, rules)
    assert {c.name for c in training.candidates} == {rm.STACKED, "gradient_boosting", rm.MIXTURE, rm.BLEND}
    assert not training.verdict.usable
    assert training.verdict.reason.startswith("no better than deal age"), training.verdict.reason


def test_every_candidate_of_a_plain_export_is_stored_with_trusted_types_only():
    """The mixture (a plain export's candidate) must be covered like the others."""
    rules = load_rules().risk
    fact = _lingering_fact(np.random.default_rng(12), 1200, signal=1.0)
    prepared = rf.prepare(fact, NO_HISTORY, NO_ACTIVITIES, pd.Timestamp("2025-12-31"), rules, ["Proposal", "Closed"])
    training = rm.train(prepared, rules)
    assert rm.MIXTURE in {c.name for c in training.candidates}
    assert_stored_with_trusted_types(training, prepared.states[prepared.spec.columns].head(50))
