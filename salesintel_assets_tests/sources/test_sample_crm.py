"""The sample CRM is the project's default data source and the ground truth
the analytics layers are tested against, so its promises are checked here:
determinism, the export contract, realistic segment effects, the planted
problems at their stated sizes, the dirty records, and a moving clock."""

from __future__ import annotations

import re
import time
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from salesintel_assets.sources import sample_crm as sc

END = pd.Timestamp(sc.SAMPLE_END_DATE)
N = 6000


@pytest.fixture(scope="module")
def world() -> sc.SampleWorld:
    return sc.generate_world(N, seed=42)


@pytest.fixture(scope="module")
def snap(world) -> sc.CRMSnapshot:
    return sc.snapshot(world)


@pytest.fixture(scope="module")
def dirty(world) -> pd.DataFrame:
    return sc.dirty_records(world)


@pytest.fixture(scope="module")
def latest(snap) -> pd.DataFrame:
    """One row per deal: the most recent version (duplicates resolved)."""
    return snap.deals.drop_duplicates("deal_id", keep="last").reset_index(drop=True)


@pytest.fixture(scope="module")
def clean(latest, dirty) -> pd.DataFrame:
    return latest[~latest["deal_id"].isin(dirty["deal_id"])].reset_index(drop=True)


def win_rate(deals: pd.DataFrame) -> float:
    closed = deals[deals["outcome"].isin(["Won", "Lost"])]
    return float((closed["outcome"] == "Won").mean())


def closed_in(deals: pd.DataFrame, first: pd.Timestamp, last: pd.Timestamp) -> pd.DataFrame:
    closed = deals[deals["outcome"].isin(["Won", "Lost"])]
    return closed[(closed["closed_date"] >= first) & (closed["closed_date"] <= last)]


# --- determinism --------------------------------------------------------------
def test_same_seed_gives_identical_frames():
    a, b = sc.generate_world(1500, seed=7), sc.generate_world(1500, seed=7)
    for name in ("deals", "reps", "activities"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    sa, sb = sc.snapshot(a), sc.snapshot(b)
    for name in ("deals", "stage_history", "activities", "reps"):
        pd.testing.assert_frame_equal(getattr(sa, name), getattr(sb, name))


def test_other_seed_gives_other_deals():
    a, b = sc.generate_world(1500, seed=7), sc.generate_world(1500, seed=8)
    assert not a.deals["deal_amount"].equals(b.deals["deal_amount"])


def test_skipping_activities_leaves_deals_unchanged():
    full, lean = sc.generate_world(1500, seed=7), sc.generate_world(1500, seed=7, with_activities=False)
    pd.testing.assert_frame_equal(full.deals, lean.deals)
    assert lean.activities.empty and list(lean.activities.columns) == list(sc.ACTIVITY_COLUMNS)
    assert len(full.activities) > 5 * 1500


# --- the export contract ------------------------------------------------------
def test_snapshot_columns_and_types(snap):
    deals = snap.deals
    assert tuple(deals.columns) == sc.EXPORT_COLUMNS + ("last_modified", "stage_entered_date")
    for col in ("created_date", "closed_date", "last_modified", "stage_entered_date"):
        assert deals[col].dtype == "datetime64[ns]", col
    for col in ("created_date", "closed_date", "stage_entered_date"):
        values = deals[col].dropna()
        assert (values == values.dt.normalize()).all(), col
    assert deals["deal_amount"].dtype == float and deals["sales_cycle_days"].dtype == float
    assert list(snap.stage_history.columns) == ["deal_id", "stage", "entered_date"]
    assert list(snap.activities.columns) == list(sc.ACTIVITY_COLUMNS)


def test_categories_match_the_reference_export(clean):
    assert set(clean["industry"]) == {"SaaS", "FinTech", "HealthTech", "EdTech", "Ecommerce"}
    assert set(clean["region"]) == {"North America", "Europe", "APAC", "India"}
    assert set(clean["product_type"]) == {"Core", "Pro", "Enterprise"}
    assert set(clean["lead_source"]) == {"Inbound", "Outbound", "Referral", "Partner"}
    assert set(clean["deal_stage"]) == {"Qualified", "Demo", "Proposal", "Negotiation", "Closed"}
    assert set(clean["outcome"]) == {"Won", "Lost", "Open"}
    assert set(clean["sales_rep_id"]) == {f"rep_{i}" for i in range(1, 26)}


def test_exactly_n_deals_exist_at_the_end_date(world, latest):
    assert latest["deal_id"].is_unique and len(latest) == N
    assert latest["created_date"].max() <= END
    assert all(re.fullmatch(r"D\d{5}", i) for i in latest["deal_id"])
    future = world.deals[world.deals["created_date"] > END]
    assert len(future) > 0.1 * N  # the horizon keeps creating deals
    assert world.deals["deal_id"].is_unique
    assert world.deals["created_date"].is_monotonic_increasing  # ids follow creation
    go_live = END - pd.Timedelta(days=sc.HISTORY_DAYS - 1)
    migrated = latest[latest["created_date"] < go_live]  # the pipeline open at go-live
    assert 0 < len(migrated) < 0.1 * N
    assert (world.deals.set_index("deal_id").loc[migrated["deal_id"], "closed_date"] >= go_live).all()
    assert (go_live - migrated["created_date"]).dt.days.max() <= sc.MIGRATED_DAYS


def test_open_won_and_lost_rows_look_like_a_crm(clean):
    open_ = clean[clean["outcome"] == "Open"]
    assert open_["closed_date"].isna().all() and open_["sales_cycle_days"].isna().all()
    assert set(open_["deal_stage"]) <= set(sc.OPEN_STAGES)
    closed = clean[clean["outcome"] != "Open"]
    assert ((closed["closed_date"] - closed["created_date"]).dt.days == closed["sales_cycle_days"]).all()
    assert closed["sales_cycle_days"].between(5, 180).all()
    assert (clean.loc[clean["outcome"] == "Won", "deal_stage"] == "Closed").all()
    lost_stages = clean.loc[clean["outcome"] == "Lost", "deal_stage"]
    assert "Closed" not in set(lost_stages) and lost_stages.nunique() == 4  # the leakage trap
    assert (clean["stage_entered_date"] <= clean["last_modified"]).all()
    assert (clean["last_modified"] < END + pd.Timedelta(days=1)).all()
    assert (clean["stage_entered_date"] >= clean["created_date"]).all()


# --- realism ----------------------------------------------------------------
def test_segment_effects_are_realistic(clean):
    assert 0.40 <= win_rate(clean) <= 0.50
    by_source = {s: win_rate(clean[clean["lead_source"] == s]) for s in sc.LEAD_SOURCES}
    assert 0.50 <= by_source["Referral"] <= 0.62 and 0.28 <= by_source["Partner"] <= 0.40
    assert by_source["Referral"] == max(by_source.values()) and by_source["Partner"] == min(by_source.values())
    strong = win_rate(clean[clean["sales_rep_id"].isin(sc.STRONG_REPS)])
    weak = win_rate(clean[clean["sales_rep_id"].isin(sc.WEAK_REPS)])
    assert strong - weak > 0.15
    by_industry = [win_rate(clean[clean["industry"] == i]) for i in sc.INDUSTRIES]
    assert 0.02 < max(by_industry) - min(by_industry) < 0.15


def test_won_deals_close_faster_and_amounts_scale_with_product(clean):
    closed = clean[clean["outcome"] != "Open"]
    won = closed.loc[closed["outcome"] == "Won", "sales_cycle_days"].median()
    lost = closed.loc[closed["outcome"] == "Lost", "sales_cycle_days"].median()
    assert 28 <= won <= 42 and 50 <= lost <= 70
    median = clean.groupby("product_type")["deal_amount"].median()
    assert median["Core"] < median["Pro"] < median["Enterprise"]
    assert clean["deal_amount"].between(*sc.AMOUNT_RANGE).all()


def test_open_pipeline_share(latest):
    assert 0.15 <= (latest["outcome"] == "Open").mean() <= 0.25


def test_history_is_stationary_before_the_planted_windows(clean):
    first = END - pd.Timedelta(days=sc.HISTORY_DAYS - 1)  # go-live
    cut = END - pd.Timedelta(days=max(sc.SEGMENT_WIN_DROP.window_days, sc.PARTNER_LEAD_BURST.window_days))
    middle = first + (cut - first) / 2
    a, b = closed_in(clean, first, middle), closed_in(clean, middle, cut)
    assert abs(win_rate(a) - win_rate(b)) < 0.05
    for col in ("lead_source", "industry"):
        share_a = a[col].value_counts(normalize=True)
        share_b = b[col].value_counts(normalize=True)
        assert (share_a - share_b).abs().max() < 0.04, col


# --- planted problems -----------------------------------------------------
def test_segment_win_rate_drop_is_present_and_detectable(clean):
    drop = sc.SEGMENT_WIN_DROP
    first, last = (pd.Timestamp(d) for d in drop.window(sc.SAMPLE_END_DATE))
    in_segment = (clean["industry"] == drop.industry) & (clean["region"] == drop.region)
    recent = closed_in(clean[in_segment], first, last)
    assert len(recent) >= drop.min_closed_per_6000
    assert abs(win_rate(recent) - drop.win_rate) < 0.03
    before = closed_in(clean[in_segment], END - pd.Timedelta(days=400), first - pd.Timedelta(days=1))
    assert win_rate(before) >= 0.38
    others = closed_in(clean[~in_segment], first, last)
    assert win_rate(others) >= 0.33
    # A two-proportion z-test finds it.
    p1, n1, p0, n0 = win_rate(recent), len(recent), win_rate(before), len(before)
    pooled = (p1 * n1 + p0 * n0) / (n1 + n0)
    z = (p0 - p1) / np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    assert z > 3


def test_stuck_early_stage_deals(world, clean, snap):
    stuck_spec = sc.STUCK_EARLY_DEALS
    open_early = clean[(clean["outcome"] == "Open") & clean["deal_stage"].isin(stuck_spec.stages)]
    days = (END - open_early["stage_entered_date"]).dt.days
    stuck = open_early[days >= stuck_spec.min_days_in_stage]
    assert len(stuck) == stuck_spec.count(N) == 20
    assert days[days < stuck_spec.min_days_in_stage].max() <= sc.EARLY_STAGE_MAX_DAYS
    planted = world.deals.loc[world.deals["planted"] == "stuck_early_stage", "deal_id"]
    assert set(stuck["deal_id"]) == set(planted)
    assert (stuck["deal_amount"] >= stuck_spec.large_amount_range[0]).sum() >= 5
    won_days = snap.stage_history.merge(clean.loc[clean["outcome"] == "Won", ["deal_id"]])
    won_days = won_days.assign(next=won_days.groupby("deal_id")["entered_date"].shift(-1))
    early = won_days[won_days["stage"].isin(stuck_spec.stages)]
    assert ((early["next"] - early["entered_date"]).dt.days.quantile(0.95)) < 25
    recent = snap.activities[snap.activities["activity_date"] > END - pd.Timedelta(days=30)]
    assert not recent["deal_id"].isin(stuck["deal_id"]).any()  # they went quiet


def test_partner_lead_burst(clean):
    burst = sc.PARTNER_LEAD_BURST
    first, last = (pd.Timestamp(d) for d in burst.window(sc.SAMPLE_END_DATE))
    partner = clean[clean["lead_source"] == burst.lead_source]
    in_window = partner[partner["created_date"].between(first, last)]
    base_first = first - pd.Timedelta(days=90)
    before = partner[partner["created_date"].between(base_first, first - pd.Timedelta(days=1))]
    ratio = (len(in_window) / burst.window_days) / (len(before) / 90)
    assert 2.4 <= ratio <= 3.8
    weak_share = lambda d: d["sales_rep_id"].isin(sc.WEAK_REPS).mean()  # noqa: E731
    assert weak_share(in_window) > 2 * weak_share(before)
    assert in_window["deal_amount"].median() < 0.7 * before["deal_amount"].median()
    others = clean[clean["lead_source"] != burst.lead_source]
    other_ratio = (others["created_date"].between(first, last).sum() / burst.window_days) / (
        others["created_date"].between(base_first, first - pd.Timedelta(days=1)).sum() / 90)
    assert 0.8 <= other_ratio <= 1.3  # only partner volume jumped


# --- dirty records --------------------------------------------------------
def test_every_dirty_kind_is_present_and_rare(snap, dirty, world):
    assert set(dirty["kind"]) == set(sc.DIRTY_KINDS)
    assert 0.005 <= len(dirty) / len(snap.deals) <= 0.02
    planted = world.deals.loc[world.deals["planted"] != "", "deal_id"]
    assert not dirty["deal_id"].isin(planted).any()


def _rows_of(snap, dirty, kind) -> pd.DataFrame:
    ids = dirty.loc[dirty["kind"] == kind, "deal_id"]
    rows = snap.deals[snap.deals["deal_id"].isin(ids)]
    assert len(rows) > 0, kind
    return rows


def test_dirty_kinds_break_their_rule(snap, dirty):
    rows = _rows_of(snap, dirty, "closed_before_created")
    assert (rows["closed_date"] < rows["created_date"]).all()
    rows = _rows_of(snap, dirty, "cycle_mismatch")
    assert ((rows["closed_date"] - rows["created_date"]).dt.days != rows["sales_cycle_days"]).all()
    rows = _rows_of(snap, dirty, "invalid_outcome")
    assert rows["closed_date"].notna().all() and rows["outcome"].isin(sc.INVALID_OUTCOMES).all()
    rows = _rows_of(snap, dirty, "null_amount")
    assert rows["deal_amount"].isna().all() and rows["closed_date"].notna().all()
    rows = _rows_of(snap, dirty, "null_created_date")
    assert rows["created_date"].isna().all() and rows["closed_date"].notna().all()
    rows = _rows_of(snap, dirty, "null_outcome")
    assert rows["outcome"].isna().all() and rows["closed_date"].notna().all()
    rows = _rows_of(snap, dirty, "missing_dimension")
    assert rows[["sales_rep_id", "industry", "region", "product_type", "lead_source"]].isna().any(axis=1).all()
    clean_rows = snap.deals[~snap.deals["deal_id"].isin(dirty["deal_id"])]
    assert clean_rows.notna()[list(sc.EXPORT_COLUMNS[:10])].drop(columns="closed_date").all().all()
    assert clean_rows["outcome"].isin(["Won", "Lost", "Open"]).all()


def test_duplicates_keep_the_truth_in_the_later_row(snap, dirty, world):
    dups = snap.deals[snap.deals["deal_id"].duplicated(keep=False)]
    assert set(dups["deal_id"]) == set(dirty.loc[dirty["kind"] == "duplicate", "deal_id"])
    assert (dups.groupby("deal_id").size() == 2).all()
    older, newer = dups.groupby("deal_id").nth(0), dups.groupby("deal_id").nth(1)
    assert (older["last_modified"].to_numpy() < newer["last_modified"].to_numpy()).all()
    truth = world.deals.set_index("deal_id").loc[newer["deal_id"]]
    closed = (truth["closed_date"] <= END).to_numpy()
    expected = np.where(closed, truth["outcome"], "Open")
    assert (newer["outcome"].to_numpy() == expected).all()
    differs = (older[["deal_stage", "outcome"]].to_numpy() != newer[["deal_stage", "outcome"]].to_numpy())
    assert differs.any(axis=1).all()  # the stale row is a real older state


# --- the moving clock ---------------------------------------------------------
def test_advancing_the_clock_gives_new_and_changed_deals(world, snap, latest):
    later = sc.snapshot(world, sc.SAMPLE_END_DATE + timedelta(days=30))
    now = later.deals.drop_duplicates("deal_id", keep="last").set_index("deal_id")
    before = latest.set_index("deal_id")
    new = now.index.difference(before.index)
    assert len(new) > 0.05 * N and (now.loc[new, "created_date"].dropna() > END).all()
    common = before.index
    closed_since = (before["outcome"] == "Open") & (now.loc[common, "outcome"] != "Open")
    moved = (before["deal_stage"] != now.loc[common, "deal_stage"]) & (now.loc[common, "outcome"] == "Open")
    assert closed_since.sum() > 0.03 * N and moved.sum() > 0.01 * N
    changed = now.loc[common, "last_modified"] != before["last_modified"]
    assert (now.loc[common][changed]["last_modified"] > before.loc[changed, "last_modified"]).all()
    cursor = snap.deals["last_modified"].max()
    pulled = set(later.deals.loc[later.deals["last_modified"] > cursor, "deal_id"])
    assert pulled == set(new) | set(changed[changed].index)
    edited = set(sc.dirty_records(world, sc.SAMPLE_END_DATE + timedelta(days=30))["deal_id"])
    final = before.index[before["outcome"].isin(["Won", "Lost"]) & ~before.index.isin(edited)]
    assert (now.loc[final, "outcome"] == before.loc[final, "outcome"]).all()  # closes are final


def test_clock_limits_and_default(world, snap):
    pd.testing.assert_frame_equal(sc.snapshot(world, sc.SAMPLE_END_DATE).deals, snap.deals)
    horizon = sc.SAMPLE_END_DATE + timedelta(days=sc.SAMPLE_HORIZON_DAYS)
    assert len(sc.snapshot(world, horizon).deals) > len(snap.deals)
    with pytest.raises(ValueError):
        sc.snapshot(world, horizon + timedelta(days=1))
    empty = sc.snapshot(world, date(2020, 1, 1))
    assert empty.deals.empty and tuple(empty.deals.columns) == tuple(snap.deals.columns)


# --- history, activities, org ---------------------------------------------------
def test_stage_history_agrees_with_deals(snap, clean):
    history = snap.stage_history
    assert set(history["stage"]) == set(sc.STAGES)
    assert (history.groupby("deal_id")["entered_date"].diff().dropna().dt.days > 0).all()
    latest_stage = history.groupby("deal_id").last()
    deals = clean.set_index("deal_id").join(latest_stage)
    assert (deals["deal_stage"] == deals["stage"]).all()
    assert (deals["stage_entered_date"] == deals["entered_date"]).all()
    won = deals[deals["outcome"] == "Won"]
    assert (won["entered_date"] == won["closed_date"]).all()
    assert history["entered_date"].max() <= END


def test_activities_carry_outcome_signal(snap, latest):
    acts = snap.activities
    assert acts["activity_date"].max() <= END and acts["activity_id"].is_unique
    assert set(acts["activity_type"]) == set(sc.ACTIVITY_TYPES)
    reps = latest.set_index("deal_id")["sales_rep_id"]
    known = acts[acts["deal_id"].map(reps).notna()]
    assert (known["sales_rep_id"] == known["deal_id"].map(reps)).all()
    meetings = acts[acts["activity_type"] == "meeting"].groupby("deal_id").size()
    outcome = latest.set_index("deal_id")["outcome"]
    per_deal = meetings.reindex(outcome.index, fill_value=0).groupby(outcome).mean()
    assert per_deal["Won"] > 2 * per_deal["Lost"]


def test_reps_form_an_org(snap):
    reps = snap.reps
    assert list(reps.columns) == list(sc.REP_COLUMNS)
    assert list(reps["sales_rep_id"]) == [f"rep_{i}" for i in range(1, 26)]
    assert reps["team"].nunique() == 4 and reps["manager_id"].nunique() == 4
    assert (reps.groupby("team")["manager_id"].nunique() == 1).all()
    assert reps["cro_id"].nunique() == 1 and reps["rep_name"].is_unique
    emails = pd.concat([reps["email"], reps["manager_email"], reps["cro_email"]])
    assert emails.str.fullmatch(r"[a-z.]+@example\.com").all()
    assert set(reps["region"]) == set(sc.REGIONS)


# --- scale ----------------------------------------------------------------------
def test_scales_to_100k_deals_with_proportional_effects():
    started = time.perf_counter()
    big = sc.generate_world(100_000, seed=1, with_activities=False)
    elapsed = time.perf_counter() - started
    assert elapsed < 10  # about 0.3 s on a laptop; loose for slow CI
    deals = sc.snapshot(big).deals
    latest = deals.drop_duplicates("deal_id", keep="last")
    assert len(latest) == 100_000
    assert big.deals["deal_id"].str.len().eq(7).all()  # D + 6 digits: more than 99,999 ids
    assert (big.deals["planted"] == "stuck_early_stage").sum() == sc.STUCK_EARLY_DEALS.count(100_000)
    drop = sc.SEGMENT_WIN_DROP
    first, last = (pd.Timestamp(d) for d in drop.window(sc.SAMPLE_END_DATE))
    segment = latest[(latest["industry"] == drop.industry) & (latest["region"] == drop.region)]
    assert len(closed_in(segment, first, last)) >= drop.min_closed_per_6000 * 100_000 / 6000 * 0.8
    assert 0.005 <= len(sc.dirty_records(big)) / len(deals) <= 0.02


def test_quarter_end_seasonality_is_an_option_that_bunches_wins_at_quarter_ends():
    plain = sc.generate_world(3000, 7, with_activities=False)
    seasonal = sc.generate_world(3000, 7, with_activities=False, quarter_end_seasonality=True)
    assert len(plain.deals) == len(seasonal.deals)

    def win_rates(world):
        d = world.deals
        closed = d[d["outcome"].isin(["Won", "Lost"]) & (d["closed_date"] <= pd.Timestamp(sc.SAMPLE_END_DATE))]
        quarter_end = pd.to_datetime(closed["closed_date"]).dt.month % 3 == 0
        won = closed["outcome"].eq("Won")
        return won[quarter_end].mean(), won[~quarter_end].mean()

    end, other = win_rates(plain)
    assert abs(end - other) < 0.05  # no season by default
    end, other = win_rates(seasonal)
    assert end - other > 0.2
    cycles = seasonal.deals["sales_cycle_days"].dropna()
    assert cycles.max() <= sc.CYCLE_RANGE[1]


def test_pushed_wins_can_crowd_a_quarters_last_days():
    def last_days_share(world):
        won = pd.to_datetime(world.deals.loc[world.deals["outcome"] == "Won", "closed_date"])
        to_end = (won + pd.offsets.QuarterEnd(0) - won).dt.days   # 0 on a quarter's last day
        return float((to_end < 3).mean())

    seasonal = sc.generate_world(3000, 7, with_activities=False, quarter_end_seasonality=True)
    spike = sc.generate_world(3000, 7, with_activities=False, quarter_end_seasonality=True, quarter_end_last_days=3)
    assert len(spike.deals) == len(seasonal.deals)
    assert last_days_share(spike) > 2 * last_days_share(seasonal) and last_days_share(spike) > 0.25
