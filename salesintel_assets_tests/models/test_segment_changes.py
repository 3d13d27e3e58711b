"""Segments whose latest closes moved beyond the rest of the business: found
with false discoveries controlled, overlapping findings resolved, applied
to that segment's open deals only, and nothing found on noise, on
business-wide swings or on segments that always differed."""

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from salesintel_assets.domain.common import stats
from salesintel_assets.domain.common.rules import RiskRules, load_rules
from salesintel_assets.domain.models import forecast
from salesintel_assets.domain.models import segment_changes as sc

AS_OF = pd.Timestamp("2026-06-30")
RATES = {"SaaS": 0.35, "FinTech": 0.5, "Health": 0.45, "Retail": 0.55}   # segments that always differed


@pytest.fixture(scope="module")
def cfg():
    return load_rules().risk.forecast.segment_changes


def _closes(n=12000, seed=0, drop=None, recent_rate_all=None, held=None):
    """Deals closed over the last 410 days; ``drop``: (industry, region,
    rate) for closes in the last 45 days; ``recent_rate_all``: every
    segment's recent rate moved alike, but industry ``held``'s."""
    rng = np.random.default_rng(seed)
    closed = AS_OF - pd.to_timedelta(rng.integers(0, 410, n), unit="D")
    frame = pd.DataFrame({
        "created_date": closed - pd.to_timedelta(rng.integers(20, 200, n), unit="D"), "closed_date": closed,
        "industry": rng.choice(list(RATES), n), "region": rng.choice(["Europe", "APAC", "India"], n),
        "product_type": rng.choice(["Core", "Pro"], n), "lead_source": rng.choice(["Inbound", "Partner", "Referral"], n),
    })
    rate = frame["industry"].map(RATES).to_numpy(float)
    recent = (frame["closed_date"] > AS_OF - pd.Timedelta(days=45)).to_numpy()
    if recent_rate_all is not None:
        swung = recent & (frame["industry"] != held).to_numpy()
        rate = np.where(swung, np.clip(rate + recent_rate_all, 0.02, 0.98), rate)
    if drop is not None:
        industry, region, new_rate = drop
        rate = np.where(recent & (frame["industry"] == industry).to_numpy() & (frame["region"] == region).to_numpy(),
                        new_rate, rate)
    return frame.assign(is_won=rng.random(n) < rate)


def _open(n=3000, seed=9):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"industry": rng.choice(list(RATES), n), "region": rng.choice(["Europe", "APAC", "India"], n),
                         "product_type": rng.choice(["Core", "Pro"], n),
                         "lead_source": rng.choice(["Inbound", "Partner", "Referral"], n)})


def test_a_segment_that_started_losing_is_found_once_and_moves_only_its_open_deals(cfg):
    changes = sc.find(_closes(drop=("FinTech", "Europe", 0.15)), AS_OF, cfg)
    # the pair, not also the industry and the region that contain it
    assert [(c.columns, c.values) for c in changes] == [(("industry", "region"), ("FinTech", "Europe"))]
    change = changes[0]
    truth = np.log(0.15 / 0.85) - np.log(0.5 / 0.5)
    assert abs(change.change - truth) < 3 * change.se and change.shift < 0 and abs(change.shift) <= abs(change.change)
    assert change.q_value <= cfg.fdr_alpha and change.recent_deals >= cfg.min_recent_deals

    deals = _open()
    p = np.full(len(deals), 0.4)
    shift, _ = sc.applied(deals, p, changes)
    inside = ((deals["industry"] == "FinTech") & (deals["region"] == "Europe")).to_numpy()
    assert np.all(shift[inside] == change.shift) and np.all(shift[~inside] == 0)
    adjusted, sd = forecast.segment_adjusted(_closes(drop=("FinTech", "Europe", 0.15)), deals, p, AS_OF,
                                             load_rules().risk)
    assert np.all(adjusted[inside] < 0.4) and np.all(adjusted[~inside] == 0.4)
    assert sd == pytest.approx(inside.mean() * change.se)   # equal p: the segment's share of the information
    assert sc.note(changes).startswith("industry=FinTech, region=Europe won ")
    assert f"odds are moved x{np.exp(change.shift):.2f}" in sc.note(changes)
    assert list(sc.changes_table(changes).columns) == sc.CHANGE_COLUMNS


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_noise_and_segments_that_always_differed_are_no_change(cfg, seed):
    assert sc.find(_closes(seed=seed), AS_OF, cfg) == []


def test_a_swing_of_the_whole_business_is_no_segment_change(cfg):
    # every segment's latest closes won 25 points more (a quarter-end bunching, a good month)
    assert sc.find(_closes(seed=4, recent_rate_all=0.25), AS_OF, cfg) == []


def test_a_segment_that_held_while_the_rest_fell_names_the_rests_fall(cfg):
    # Everyone's latest closes won 25 points less, except FinTech x Europe, which kept its 50 %: its own
    # two rates barely differ, so the words must show the fall it is measured against.
    changes = sc.find(_closes(seed=5, recent_rate_all=-0.25, drop=("FinTech", "Europe", 0.5)), AS_OF, cfg)
    assert [(c.values, c.change > 0) for c in changes] == [(("FinTech", "Europe"), True)]
    row = changes[0].row()
    assert abs(row["recent_win_rate"] - row["baseline_win_rate"]) < 0.1
    assert row["rest_baseline_win_rate"] - row["rest_recent_win_rate"] > 0.15
    assert (f"while the rest of the business went from {row['rest_baseline_win_rate']:.0%} to "
            f"{row['rest_recent_win_rate']:.0%}") in sc.note(changes)


def _retail_drops(seed: int) -> pd.DataFrame:
    """Closes where Retail (a quarter of the deals) won 20 % of its last 45
    days' closes against 55 % before; nothing else changed."""
    frame = _closes(seed=seed).drop(columns="is_won")
    recent = (frame["closed_date"] > AS_OF - pd.Timedelta(days=45)).to_numpy()
    rate = frame["industry"].map(RATES).to_numpy(float)
    rate = np.where(recent & (frame["industry"] == "Retail").to_numpy(), 0.2, rate)
    return frame.assign(is_won=np.random.default_rng(seed + 1000).random(len(frame)) < rate)


def test_one_big_change_does_not_lower_the_bar_for_the_rest(cfg):
    # Retail's drop lifts every other segment against a rest that holds Retail: a dozen echoes pass the first
    # Benjamini-Hochberg round. Re-tested without Retail against that round's lenient p-value cutoff, noise
    # got through as a second change in 9 of these 40 worlds; with every segment tested afresh, in none.
    second = 0
    for seed in range(20, 60):
        changes = sc.find(_retail_drops(seed), AS_OF, cfg)
        assert changes[0].values == ("Retail",) and changes[0].shift < 0
        second += len(changes) > 1
    assert second <= 1


def test_two_real_changes_are_both_found(cfg):
    closes = _closes(seed=8, drop=("FinTech", "Europe", 0.15))
    recent = (closes["closed_date"] > AS_OF - pd.Timedelta(days=45)).to_numpy()
    health_india = ((closes["industry"] == "Health") & (closes["region"] == "India")).to_numpy()
    rng = np.random.default_rng(8)
    closes.loc[recent & health_india, "is_won"] = rng.random(int((recent & health_india).sum())) < 0.85
    changes = {c.values: c.shift for c in sc.find(closes, AS_OF, cfg)}
    assert changes.keys() == {("FinTech", "Europe"), ("Health", "India")}
    assert changes[("FinTech", "Europe")] < 0 < changes[("Health", "India")]


def _retail_slides(seed: int) -> pd.DataFrame:
    """2,000 closes where Retail won 25 % of its last 90 days' closes
    against 55 % before: a change in the deals created from a day on,
    reaching the closes over months, too few of them in 45 days to prove."""
    frame = _closes(n=2000, seed=seed).drop(columns="is_won")
    recent = (frame["closed_date"] > AS_OF - pd.Timedelta(days=90)).to_numpy()
    rate = np.where(recent & (frame["industry"] == "Retail").to_numpy(), 0.25, frame["industry"].map(RATES))
    return frame.assign(is_won=np.random.default_rng(seed + 500).random(len(frame)) < rate)


def test_a_change_that_reaches_the_closes_slowly_is_proved_on_the_longer_window(cfg):
    assert cfg.recent_days == [45, 90]
    only_45 = cfg.model_copy(update={"recent_days": [45]})
    worlds = [_retail_slides(seed) for seed in range(20)]
    found = {seed: sc.find(closes, AS_OF, cfg) for seed, closes in enumerate(worlds)}
    found_45 = sum(any(c.values == ("Retail",) for c in sc.find(closes, AS_OF, only_45)) for closes in worlds)
    retail = [c for changes in found.values() for c in changes if c.values == ("Retail",)]
    assert len(retail) >= 13 and found_45 <= 8   # measured: 16 against 5
    assert all(c.shift < 0 for c in retail) and sum(c.recent_days == 90 for c in retail) >= 10
    assert sum(len(changes) - any(c.values == ("Retail",) for c in changes) for changes in found.values()) <= 1
    said = next(c for c in retail if c.recent_days == 90).sentence()
    assert "deals closed in the last 90 days against" in said


def test_a_change_both_windows_prove_is_applied_at_its_latest_level(cfg):
    # FinTech x Europe won 25 % of its closes 46-90 days ago and 15 % of the last 45 (50 % before): the 90-day
    # window proves it more strongly (more closes), the 45-day one reads where it stands now
    frame = _closes(seed=13).drop(columns="is_won")
    age = (AS_OF - frame["closed_date"]).dt.days.to_numpy()
    pair = ((frame["industry"] == "FinTech") & (frame["region"] == "Europe")).to_numpy()
    rate = np.where(pair & (age < 45), 0.15, np.where(pair & (age < 90), 0.25, frame["industry"].map(RATES)))
    closes = frame.assign(is_won=np.random.default_rng(14).random(len(frame)) < rate)
    on_90 = sc.find(closes, AS_OF, cfg.model_copy(update={"recent_days": [90]}))[0]
    on_45 = sc.find(closes, AS_OF, cfg.model_copy(update={"recent_days": [45]}))[0]
    assert abs(on_90.change / on_90.se) > abs(on_45.change / on_45.se)
    change = sc.find(closes, AS_OF, cfg)[0]
    assert (change.values, change.recent_days) == (("FinTech", "Europe"), 45)
    assert change.change == pytest.approx(on_45.change) and change.shift < 0


def test_recent_windows_are_one_or_several_increasing_day_counts():
    assert RiskRules.SegmentChanges(recent_days=60).recent_days == [60]
    for bad in ([90, 45], [7], [45, 45], []):
        with pytest.raises(ValidationError, match="recent_days"):
            RiskRules.SegmentChanges(recent_days=bad)


def test_a_segment_with_too_few_recent_closes_is_not_tested(cfg):
    closes = _closes(n=12000, seed=5, drop=("FinTech", "Europe", 0.0))
    recent = closes["closed_date"] > AS_OF - pd.Timedelta(days=45)
    pair = (closes["industry"] == "FinTech") & (closes["region"] == "Europe")
    # keep 12 of the pair's recent closes: a 0 % win rate on them proves nothing at 20 deals minimum
    thin = closes[~(recent & pair) | (recent & pair).cumsum().le(12)]
    found = sc.find(thin, AS_OF, cfg)
    assert not any(c.values == ("FinTech", "Europe") for c in found)
    assert sc.find(closes, AS_OF, cfg.model_copy(update={"enabled": False})) == []


def test_a_burst_of_new_leads_disqualified_within_days_is_no_change(cfg):
    # 150 Partner leads created in the last weeks and lost within a week: how leads arrive, not how
    # the Partner deals in play end
    closes = _closes(seed=6)
    rng = np.random.default_rng(7)
    closed = AS_OF - pd.to_timedelta(rng.integers(0, 30, 150), unit="D")
    burst = pd.DataFrame({"created_date": closed - pd.to_timedelta(rng.integers(0, 7, 150), unit="D"),
                          "closed_date": closed, "industry": rng.choice(list(RATES), 150),
                          "region": rng.choice(["Europe", "APAC", "India"], 150), "product_type": "Core",
                          "lead_source": "Partner", "is_won": False})
    both = pd.concat([closes, burst], ignore_index=True)
    assert sc.find(both, AS_OF, cfg) == []
    # counted and compared across all ages at close, they look like a drop
    found = sc.find(both, AS_OF, cfg.model_copy(update={"min_age_days": 0, "age_bands_days": []}))
    assert any("lead_source" in c.columns and c.shift < 0 for c in found)


def test_a_segment_whose_latest_closes_held_no_old_clean_ups_is_no_change(cfg):
    # Deals that linger for months are closed lost in clean-ups; fresh closes win at the usual rates. Lately
    # one segment had no clean-up while the rest did: its closes' win rate rose, its deals' odds did not.
    rng = np.random.default_rng(11)
    closes = _closes(seed=12)
    n = 6000
    closed = AS_OF - pd.to_timedelta(rng.integers(0, 410, n), unit="D")
    old = pd.DataFrame({"created_date": closed - pd.to_timedelta(rng.integers(200, 400, n), unit="D"),
                        "closed_date": closed, "industry": rng.choice(list(RATES), n),
                        "region": rng.choice(["Europe", "APAC", "India"], n), "product_type": "Core",
                        "lead_source": rng.choice(["Inbound", "Partner", "Referral"], n),
                        "is_won": rng.random(n) < 0.05})
    recent = (old["closed_date"] > AS_OF - pd.Timedelta(days=45)).to_numpy()
    old = old[~(recent & (old["industry"] == "Retail").to_numpy() & (old["region"] == "APAC").to_numpy())]
    both = pd.concat([closes, old], ignore_index=True)
    fresh_and_old = cfg.model_copy(update={"age_bands_days": [200]})   # fresh closes are 20-200 days old here
    assert sc.find(both, AS_OF, fresh_and_old) == []
    pooled = sc.find(both, AS_OF, cfg.model_copy(update={"age_bands_days": []}))   # every age in one comparison
    assert [(c.values, c.shift > 0) for c in pooled] == [(("Retail", "APAC"), True)]


def test_age_bands_must_increase():
    with pytest.raises(ValidationError, match="age_bands_days"):
        RiskRules.SegmentChanges(age_bands_days=[90, 45])


def test_a_pair_of_unlisted_dimensions_is_refused():
    with pytest.raises(ValidationError, match="pair"):
        RiskRules.SegmentChanges(dimensions=["industry", "region"], pairs=[("industry", "lead_source")])


def test_a_segment_that_held_while_the_rest_fell_is_not_moved_up(cfg):
    # every industry's latest closes fall 25 points but Retail's: against the rest Retail rose
    changes = sc.find(_closes(seed=6, recent_rate_all=-0.25, held="Retail"), AS_OF, cfg)
    retail = next(c for c in changes if c.values == ("Retail",))
    assert retail.change > 0.8 and stats.shrunk(retail.change, retail.se) > 0.7   # the contrast alone: odds x2+
    # its own rate did not move: its open deals keep the model's odds (at most its own shrunk move)
    assert abs(retail.own_change) < 0.25 and 0 <= retail.shift <= max(retail.own_change, 0.0)
    assert f"and its own, x{np.exp(retail.own_change):.2f}" in sc.note(changes)


def test_the_changes_noise_widens_the_interval_by_the_segments_share():
    deals = _open()
    change = sc.SegmentChange(("region",), ("APAC",), 45, -1.0, -0.9, -0.8, 0.3, 0.001, 40, 6, 200, 90, 800, 360, 4000,
                              1800)
    level = forecast.LevelReading(lean=-0.1, sigma=0.2, dates=8)
    p = np.full(len(deals), 0.3)
    count, revenue, shift = forecast.segment_corrected(level, level, deals, p, [change])
    share = (deals["region"] == "APAC").mean()
    assert count.sigma == pytest.approx(np.hypot(0.2, share * 0.3)) and count.lean == -0.1
    assert revenue == count and set(np.unique(shift)) == {-0.8, 0.0}
    assert forecast.segment_corrected(level, level, deals, p, [])[:2] == (level, level)


CLEAN_UP_DAY = AS_OF - pd.Timedelta(days=10)


def _with_stale_closes(closes, won_share: float, n=600, seed=4):
    """``n`` deals untouched for months closed on one day, none of them Retail
    (a segment whose deals never go stale), ``won_share`` of them won."""
    rng = np.random.default_rng(seed)
    stale = pd.DataFrame({
        "created_date": CLEAN_UP_DAY - pd.to_timedelta(rng.integers(200, 500, n), unit="D"),
        "closed_date": np.full(n, CLEAN_UP_DAY), "industry": rng.choice(["SaaS", "FinTech", "Health"], n),
        "region": rng.choice(["Europe", "APAC", "India"], n), "product_type": rng.choice(["Core", "Pro"], n),
        "lead_source": rng.choice(["Inbound", "Partner", "Referral"], n), "is_won": rng.random(n) < won_share})
    return pd.concat([closes, stale], ignore_index=True)


def test_a_clean_up_day_is_left_out_and_said(cfg):
    closes = _with_stale_closes(_closes(seed=1), won_share=0.0)
    cleaned = sc.clean_ups(closes, AS_OF, cfg)
    on_day = closes["closed_date"].eq(CLEAN_UP_DAY)   # the 600 stale deals and that day's ordinary closes
    assert [(c.day, c.closes, c.lost) for c in cleaned] == [(CLEAN_UP_DAY, on_day.sum(),
                                                             (~closes.loc[on_day, "is_won"]).sum())]
    assert sc.find(closes, AS_OF, cfg) == []
    assert sc.note([], cleaned).endswith(
        f"the closes of clean-up days (stale deals closed lost at once) were left out: {cleaned[0].sentence()}")
    # read as closes, the clean-up took everyone but Retail down, and Retail looked as if it started winning
    # against the rest (its own rate did not move: ``test_a_segment_that_held_while_the_rest_fell_...``)
    kept_in = sc.find(closes, AS_OF, cfg, cleaned=[])
    assert [c.values for c in kept_in][:1] == [("Retail",)] and kept_in[0].change > 0


def test_a_day_of_wins_pushed_to_the_quarters_end_is_no_clean_up(cfg):
    assert sc.clean_ups(_with_stale_closes(_closes(seed=1), won_share=0.6), AS_OF, cfg) == []
    assert sc.clean_ups(_closes(seed=1), AS_OF, cfg) == []   # an ordinary day is none either


def test_a_change_picked_for_passing_the_bar_is_corrected_for_the_pick():
    # Among the estimates that pass |z| > 3.06 (one discovery among 23 tested at 5 %), the raw ones
    # overstate the effect (the winner's curse): by 1.2 se where it is 2.5 se, by 3.3 se where there is none.
    rng, bar = np.random.default_rng(0), 3.06
    for effect, raw_off, adjusted_off in ((0.0, 3.2, 1.9), (2.5, 1.1, 0.2), (5.0, 0.15, 0.4)):
        z = effect + rng.standard_normal(200_000)
        picked = z[z > bar][:1500]
        adjusted = np.array([stats.selection_adjusted(v, 1.0, bar) for v in picked])
        assert picked.mean() - effect > raw_off * 0.9 if effect < 5 else abs(picked.mean() - effect) < raw_off
        assert abs(adjusted.mean() - effect) < adjusted_off
        assert np.all((adjusted >= 0) & (adjusted <= picked))
    assert stats.selection_adjusted(-1.2, 0.4, bar) == pytest.approx(-stats.selection_adjusted(1.2, 0.4, bar))
    assert stats.selection_adjusted(1.0, np.inf, bar) == 0.0


def test_a_real_drop_found_near_the_bar_is_not_applied_beyond_its_size(cfg):
    # FinTech x Europe's odds fell by 1.0 in log odds (50 % to 27 % won); found where its noise made it look
    # bigger, it was applied at x0.32 on average (shrunk for noise alone), beyond the truth's x0.37
    truth, shifts = np.log(0.27 / 0.73), []
    for seed in range(100, 160):
        found = [c for c in sc.find(_closes(n=6000, seed=seed, drop=("FinTech", "Europe", 0.27)), AS_OF, cfg)
                 if c.values == ("FinTech", "Europe")]
        shifts += [found[0].shift] if found else []
    assert len(shifts) >= 12 and truth < np.mean(shifts) < truth + 0.35
