"""Pipeline forecast: simulation with a shared shift, rows that add up,
expected close months, and the backtest against what then closed."""

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest

from salesintel_assets.domain.models import forecast
from salesintel_assets.domain.models import horizons
from salesintel_assets.domain.models import reporting
from salesintel_assets.domain.models import features as rf
from salesintel_assets.domain.models import risk_model as rm
from salesintel_assets.domain.common.rules import load_rules
from salesintel_assets.schemas.models import PipelineForecast
from salesintel_assets_tests.models_support import sample_tables


def _scored(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "deal_id": [f"D{i}" for i in range(n)], "win_probability": rng.uniform(0.02, 0.9, n),
        "deal_amount": rng.uniform(1_000, 50_000, n).round(), "industry": rng.choice(["SaaS", "FinTech"], n),
        "region": rng.choice(["Europe", "APAC", "India"], n), "product_type": rng.choice(["Core", "Pro"], n),
        "lead_source": rng.choice(["Inbound", "Partner"], n),
    })


@pytest.fixture(scope="module")
def rules():
    risk = load_rules().risk
    return risk.model_copy(update={"forecast": risk.forecast.model_copy(update={"simulations": 500})})


def test_without_a_shared_shift_deals_are_independent_coins():
    p = np.random.default_rng(1).uniform(0.05, 0.9, 1500)
    counts, revenue = forecast.simulate(p, np.ones(len(p)), np.zeros(len(p), dtype=np.int64), 1, 0.0, 4000, 3)
    assert counts.mean() == pytest.approx(p.sum(), rel=0.01)
    assert counts.var() == pytest.approx((p * (1 - p)).sum(), rel=0.1)
    np.testing.assert_array_equal(counts, revenue)          # amount 1: revenue is the count


def _draw_alone(p, amount, keys, n_keys, sigma, simulations, seed, chunk):
    """The simulation as it was drawn before readings shared their draws: its own generator per reading."""
    rng = np.random.default_rng(seed)
    counts, revenue = np.zeros((simulations, n_keys)), np.zeros((simulations, n_keys))
    for start in range(0, simulations, chunk):
        size = min(chunk, simulations - start)
        shift = rng.normal(0.0, sigma, size)[:, None]
        won = rng.random((size, len(p))) < 1 / (1 + np.exp(-(forecast._logit(p)[None, :] + shift)))
        sim, deal = np.nonzero(won)
        cell = sim * n_keys + keys[deal]
        counts[start:start + size] = np.bincount(cell, minlength=size * n_keys).reshape(size, n_keys)
        revenue[start:start + size] = np.bincount(cell, weights=amount[deal], minlength=size * n_keys).reshape(
            size, n_keys)
    return counts, revenue


def test_readings_of_one_draw_equal_each_reading_drawn_alone(monkeypatch):
    monkeypatch.setattr(forecast, "SIM_CELLS", 7 * 300)   # several chunks of draws
    rng = np.random.default_rng(5)
    p, amount = rng.uniform(0.01, 0.95, 300), rng.uniform(1, 1000, 300)
    keys, zero = rng.integers(0, 4, 300), np.zeros(300, dtype=np.int64)
    readings = [forecast.Reading(p, 0.2, [(keys, 4), (zero, 1)]), forecast.Reading(p, 0.0, [(keys, 4)], ("counts",)),
                forecast.Reading(p * 0.5, 0.35, [(zero, 1)], ("counts",)),
                forecast.Reading(p * 0.5, 0.35, [(zero, 1)], ("revenue",))]
    drawn = forecast.simulate_readings(readings, amount, 50, 9)
    for reading, sums in zip(readings, drawn):
        for (k, n_keys), (counts, revenue) in zip(reading.groupings, sums):
            alone_counts, alone_revenue = _draw_alone(reading.p, amount, k, n_keys, reading.sigma, 50, 9, 7)
            if "counts" in reading.sums:
                np.testing.assert_array_equal(counts, alone_counts)
            if "revenue" in reading.sums:   # one key: summed as a product, so up to float rounding
                np.testing.assert_allclose(revenue, alone_revenue, rtol=1e-12)


def test_a_shared_shift_widens_the_interval():
    p = np.random.default_rng(2).uniform(0.05, 0.9, 1500)
    keys = np.zeros(len(p), dtype=np.int64)
    independent, _ = forecast.simulate(p, np.ones(len(p)), keys, 1, 0.0, 3000, 4)
    shared, _ = forecast.simulate(p, np.ones(len(p)), keys, 1, 0.3, 3000, 4)
    assert shared.std() > 2 * independent.std()
    assert shared.mean() == pytest.approx(p.sum(), rel=0.03)


def test_level_shift_is_what_the_forecast_needed_to_match_the_outcome():
    p = np.random.default_rng(3).uniform(0.05, 0.9, 500)
    amount = np.random.default_rng(4).uniform(1, 10, 500)
    shift = forecast.level_shift(p, 180)
    assert (1 / (1 + np.exp(-(np.log(p / (1 - p)) + shift)))).sum() == pytest.approx(180, abs=1e-6)
    revenue_shift = forecast.level_shift(p, 900, amount)
    assert (amount / (1 + np.exp(-(np.log(p / (1 - p)) + revenue_shift)))).sum() == pytest.approx(900, abs=1e-4)
    info = forecast.level_information(p)
    # shifts no larger than their binomial noise: sigma falls back to the level's standard error
    assert forecast.interval_sigma([0.5 / np.sqrt(info)] * 4, [info] * 4, 0.07) == pytest.approx(0.07)
    # consistently large shifts are real: sigma follows them
    assert forecast.interval_sigma([0.4, -0.4, 0.4, -0.4], [info] * 4, 0.07) == pytest.approx(
        np.sqrt(0.16 - 1 / info), rel=1e-6)


def test_forecast_rows_add_up_and_hold_their_intervals(rules):
    scored = _scored()
    months = np.where(scored["win_probability"] > 0.5, "2026-07", "2026-08")
    table = forecast.forecast(scored, months, 0.2, 0.3, rules)
    assert list(table.columns) == forecast.FORECAST_COLUMNS
    assert set(table["grouping"]) == set(forecast.GROUPINGS)
    total = table[table["grouping"] == "total"].iloc[0]
    assert total["expected_won_deals"] == pytest.approx(scored["win_probability"].sum(), abs=0.01)
    expected_revenue = (scored["win_probability"] * scored["deal_amount"]).sum()
    assert total["expected_won_revenue"] == pytest.approx(expected_revenue, abs=0.01)
    for grouping, rows in table.groupby("grouping"):
        assert rows["open_deals"].sum() == len(scored), grouping
        assert rows["expected_won_revenue"].sum() == pytest.approx(expected_revenue, rel=1e-6)
    assert (table["revenue_p10"] < table["expected_won_revenue"]).all()
    assert (table["expected_won_revenue"] < table["revenue_p90"]).all()
    months_rows = table[table["grouping"] == "close_month"]
    assert list(months_rows["key"]) == ["2026-07", "2026-08"]
    assert forecast.forecast(scored.iloc[:0], [], 0.2, 0.2, rules).columns.tolist() == forecast.FORECAST_COLUMNS


def test_a_month_resting_on_unlikely_big_deals_is_drawn_with_its_interval(rules):
    # deals open for years in a CRM that stopped creating them: nine draws in ten win none of them, so the
    # expected revenue lies above the 90th percentile and bars measured from it would have negative length
    scored = _scored(50).assign(win_probability=0.001)
    scored.loc[0, "deal_amount"] = 2_000_000
    table = forecast.forecast(scored, np.full(len(scored), "2026-07"), 0.2, 0.3, rules)
    month = table[table["grouping"] == "close_month"].iloc[0]
    assert month["revenue_p90"] < month["expected_won_revenue"]
    figure = reporting.forecast_figure(table)
    [interval] = [c for c in figure.axes[0].containers if c.get_label() == "80 % interval"]
    [[(_, low), (_, high)]] = interval.lines[2][0].get_segments()   # the container's vertical bars
    assert (low, high) == pytest.approx((month["revenue_p10"], month["revenue_p90"]))


def test_a_month_spread_gives_every_month_its_share_of_each_deal(rules):
    scored = _scored()
    p = scored["win_probability"].to_numpy()
    spread = horizons.MonthSpread(["2026-07", "2026-08", "2026-09"], np.column_stack([0.2 * p, 0.5 * p, 0.3 * p]))
    table = forecast.forecast(scored, spread, 0.2, 0.3, rules)
    months = table[table["grouping"] == "close_month"].set_index("key")
    assert list(months.index) == spread.months
    # each month's wins come from every deal's chance in it; its deals are those expected to close in it
    np.testing.assert_allclose(months["expected_won_deals"], [0.2 * p.sum(), 0.5 * p.sum(), 0.3 * p.sum()],
                               atol=0.01)
    assert list(months["open_deals"]) == [0, len(scored), 0]
    assert months["expected_won_deals"].sum() == pytest.approx(p.sum(), abs=0.02)
    assert (months["won_deals_p10"] <= months["expected_won_deals"]).all()
    assert (months["expected_won_deals"] <= months["won_deals_p90"]).all()
    assert (months["won_deals_p90"] < p.sum()).all()   # a month's interval, not the whole pipeline's
    PipelineForecast.validate(table)   # a month may expect more wins than deals expected to close in it
    region = table["grouping"] == "region"
    with pytest.raises(pa.errors.SchemaError, match="intervals_ordered"):   # a segment may not
        PipelineForecast.validate(table.assign(expected_won_deals=table["expected_won_deals"].where(
            ~region, table["open_deals"] + 1.0)))
    others = table[table["grouping"] != "close_month"]
    np.testing.assert_allclose(others.to_numpy()[:, 2:].astype(float),   # the other groupings do not move
                               forecast.forecast(scored, np.full(len(p), "2026-08"), 0.2, 0.3, rules)
                               .query("grouping != 'close_month'").to_numpy()[:, 2:].astype(float))


@pytest.fixture(scope="module")
def backtest():
    tables = sample_tables(4000, 11)
    rules = tables["rules"].risk.model_copy(update={
        "forecast": tables["rules"].risk.forecast.model_copy(update={"backtest_dates": 5, "simulations": 1000})})
    prepared = rf.prepare(tables["fact"], tables["history"], tables["activities"], tables["as_of"], rules,
                          tables["rules"].stages.order)
    return forecast.backtest(prepared.fact, prepared.timeline, prepared.spec, rules, prepared.closed_stage,
                             "logistic", prepared.as_of), prepared, rules


def test_backtest_replays_past_dates_against_what_then_closed(backtest):
    full, prepared, rules = backtest
    assert list(full.columns) == forecast.BACKTEST_COLUMNS
    late = full[full["status"] == forecast.LATE_STATUS]
    assert len(late) == 1 and late["analysis_date"].iloc[0] == prepared.as_of - pd.Timedelta(days=30)
    table = full[full["status"] != forecast.LATE_STATUS]
    assert (table["status"] == "ok").all() and len(table) == 5 and (table["window_days"] == 90).all()
    expected_dates = [prepared.as_of - pd.Timedelta(days=rules.forecast.backtest_horizon_days + k * 30)
                      for k in (4, 3, 2, 1, 0)]
    assert list(table["analysis_date"]) == expected_dates
    for _, row in table.iterrows():
        # the model of each date learned only from deals closed by then
        assert row["train_deals"] == len(rf.labelled_deals(prepared.fact, row["analysis_date"]))
        assert row["error_points"] == pytest.approx(100 * (row["forecast_win_rate"] - row["actual_win_rate"]),
                                                    abs=0.02)
        assert row["resolved_deals"] + row["pending_deals"] == row["open_deals"]
        assert row["won_deals_p10"] <= row["expected_won_deals"] <= row["won_deals_p90"]
    # each date's interval is sized by the misses of the earlier dates whose
    # 90-day windows had ended by then (out of sample and forward in time, as
    # today's forecast is)
    window = pd.Timedelta(days=rules.forecast.backtest_horizon_days)
    for _, row in table.iterrows():
        known = table.loc[table["analysis_date"] + window <= row["analysis_date"], "level_shift"]
        assert row["judged_by_dates"] == len(known)
        # the lean is not removed: the forecast is the model's, moved only by segment changes
        if row["expected_won_deals"] != pytest.approx(row["model_expected_won_deals"], abs=0.01):
            assert row["expected_won_deals"] < row["model_expected_won_deals"]   # the sample CRM's drops
    assert list(table["judged_by_dates"]) == [0, 0, 0, 1, 2]


def test_backtest_forecast_is_within_the_design_target(backtest):
    table, _, rules = backtest
    table = table[table["status"] == "ok"]
    assert table["error_points"].abs().max() <= rules.forecast.win_rate_target_points
    assert table["within_target"].all()
    assert table["pending_deals"].sum() < 0.1 * table["open_deals"].sum()


# --- A late change the 90-day backtest cannot see yet --------------------------------------
def test_the_late_window_sees_wins_that_stop_in_its_last_weeks(backtest):
    table, prepared, rules = backtest
    as_of = prepared.as_of
    steady = table[table["status"] == forecast.LATE_STATUS].iloc[0]   # the backtest's own late check
    # the deals that won in the last 30 days lose instead: only the windows
    # after the model's validation period see it, so the level moves there
    late_wins = prepared.fact.loc[prepared.fact["is_won"].fillna(False).astype(bool)
                                  & (prepared.fact["closed_date"] > as_of - pd.Timedelta(days=30)), "deal_id"]
    snapshots = prepared.snapshots.copy()
    snapshots.loc[snapshots["deal_id"].isin(late_wins), "won_by_as_of"] = False
    dropped = forecast.late_check(prepared.fact, snapshots, prepared.spec, rules, "logistic", as_of)
    assert dropped["status"] == steady["status"] == forecast.LATE_STATUS and dropped["window_days"] == 30
    assert dropped["late_baseline_shift"] == pytest.approx(steady["late_baseline_shift"])   # the same level before
    assert dropped["actual_win_rate"] < steady["actual_win_rate"]
    change = dropped["level_shift"] - dropped["late_baseline_shift"]
    assert change < -1.0 and dropped["late_sigma"] > steady["late_sigma"] + 0.5
    assert dropped["late_sigma"] == pytest.approx(forecast.late_sigma(
        change, dropped["level_information"], dropped["late_baseline_information"]))
    # and the trust note says so, in words
    note = forecast.forecast_trust.late_note(pd.DataFrame([dropped]))
    assert "fewer deals were won" in note and "widened" in note


def test_late_sigma_is_the_change_beyond_the_noise_of_both_readings():
    assert forecast.late_sigma(0.05, 400.0, 400.0) == 0.0                    # 0.05^2 < 1/400 + 1/400: noise
    assert forecast.late_sigma(0.3, 400.0, 400.0) == pytest.approx(np.sqrt(0.09 - 0.005))
    assert forecast.late_sigma(-0.3, 400.0, 400.0) == forecast.late_sigma(0.3, 400.0, 400.0)
    assert forecast.late_sigma(float("nan"), 400.0, 400.0) == 0.0
    assert forecast.late_sigma(0.3, 0.0, 400.0) == 0.0                        # nothing measured


def test_a_late_change_widens_todays_interval_but_not_its_centre():
    info = 400.0
    dates = [pd.Timestamp("2026-03-01") - pd.Timedelta(days=30 * k) for k in range(6)]
    backtest = pd.DataFrame({"analysis_date": dates, "status": "ok", "level_shift": [-0.1, -0.15, -0.05, -0.1, -0.12,
                                                                                   -0.08],
                             "level_information": info, "revenue_shift": -0.1, "revenue_information": info})
    plain, plain_revenue, source = forecast.level_readings(None, backtest, lambda: None, 1, 0.8)
    assert source == "backtest (6 dates)"
    late = {"analysis_date": pd.Timestamp("2026-05-31"), "status": forecast.LATE_STATUS, "window_days": 30,
            "level_shift": -0.4, "level_information": info, "late_baseline_shift": 0.0,
            "late_baseline_information": info, "late_sigma": forecast.late_sigma(-0.4, info, info)}
    level, revenue_level, source = forecast.level_readings(
        None, pd.concat([backtest, pd.DataFrame([late])], ignore_index=True), lambda: None, 1, 0.8)
    assert level.lean == plain.lean and revenue_level.lean == plain_revenue.lean
    assert level.sigma == pytest.approx(np.hypot(plain.sigma, late["late_sigma"]))
    assert revenue_level.sigma == pytest.approx(np.hypot(plain_revenue.sigma, late["late_sigma"]))
    assert "latest short windows" in source
    quiet = dict(late, level_shift=-0.05, late_sigma=forecast.late_sigma(-0.05, info, info))
    level, _, _ = forecast.level_readings(None, pd.concat([backtest, pd.DataFrame([quiet])]), lambda: None, 1, 0.8)
    assert level == plain                                                     # within noise: nothing changes
    assert forecast.forecast_trust.late_note(pd.DataFrame([quiet])) == ""


# --- Interval from past out-of-sample shifts ---------------------------------------------
def test_past_misses_size_the_interval_and_few_dates_widen_it():
    p = np.random.default_rng(5).uniform(0.02, 0.6, 1500)
    info = forecast.level_information(p)
    misses = [-0.25, -0.15, -0.2, -0.3, -0.1]
    # five dates whose windows do not overlap: five independent measurements
    level = forecast.level_reading(misses, [info] * 5, 0.02, 0.8, steps_per_window=1)
    assert level.lean == pytest.approx(-0.2) and level.dates == 5
    widen = 1.533 / 1.2816                          # Student's t (4 df) over the normal 90 % quantile
    expected = widen * np.sqrt(max(np.mean(np.square(misses)) - 1 / info, 0.02 ** 2))
    assert level.sigma == pytest.approx(expected, rel=1e-3)
    # the same misses measured on fewer dates are less certain
    fewer = forecast.level_reading(misses[:2], [info] * 2, 0.02, 0.8, steps_per_window=1)
    assert fewer.sigma > level.sigma
    # the lean is shown, not removed: the horizon rows move only by the shifts passed (a segment's)
    scored = _scored(800, 6)
    half = scored["win_probability"].to_numpy() / 2
    segment = np.where(scored["region"] == "APAC", -1.0, 0.0)
    table = forecast.forecast(scored, np.full(800, "2026-07"), level.sigma, level.sigma, load_rules().risk,
                              {"90d": half}, segment, segment)
    row = table[table["key"] == "90d"].iloc[0]
    assert row["expected_won_deals"] == pytest.approx(forecast.shifted(half, segment).sum(), abs=0.01)
    assert row["expected_won_deals"] < half.sum() - 10
    plain = forecast.forecast(scored, np.full(800, "2026-07"), level.sigma, level.sigma, load_rules().risk,
                              {"90d": half})
    assert plain[plain["key"] == "90d"]["expected_won_deals"].iloc[0] == pytest.approx(half.sum(), abs=0.01)
    total = table[table["grouping"] == "total"].iloc[0]
    assert total["expected_won_deals"] == pytest.approx(scored["win_probability"].sum(), abs=0.01)


def test_level_reading_without_enough_measured_dates_is_the_plain_reading():
    # one usable date (the others NaN or without information)
    single = forecast.level_reading([-0.4, np.nan, 0.3], [50.0, 50.0, 0.0], 0.05, 0.8)
    assert single.dates == 1 and single.sigma == pytest.approx(np.sqrt(0.16 - 1 / 50))
    none = forecast.level_reading([], [], 0.05, 0.8)
    assert (none.lean, none.sigma, none.dates) == (0.0, 0.05, 0)
    no_backtest, _, source = forecast.level_readings(
        None, None, lambda: pd.DataFrame({"is_won": [True, False] * 200,
                                          "closed_date": pd.date_range("2025-01-01", periods=400, freq="D")}),
        1, 0.8)
    assert no_backtest.lean == 0.0 and no_backtest.sigma > 0 and source.startswith("historical")


def test_one_replayed_date_and_a_late_change_widen_the_interval_without_a_backtest_to_centre_on():
    closed = lambda: pd.DataFrame({"is_won": [True, False] * 200,                          # noqa: E731
                                   "closed_date": pd.date_range("2025-01-01", periods=400, freq="D")})
    plain, _, _ = forecast.level_readings(None, None, closed, 1, 0.8)
    info = 400.0
    one = pd.DataFrame({"analysis_date": [pd.Timestamp("2026-03-01")], "status": ["ok"], "level_shift": [2.0],
                        "level_information": [info], "revenue_shift": [1.5], "revenue_information": [info]})
    level, revenue_level, source = forecast.level_readings(None, one, closed, 1, 0.8)
    # a past forecast that missed by 2 log odds: today's can be as far off; its lean is not applied
    assert level.lean == 0.0 and level.sigma == pytest.approx(np.sqrt(4.0 - 1 / info)) and level.sigma > plain.sigma
    assert revenue_level.sigma == pytest.approx(np.sqrt(2.25 - 1 / info))
    assert "one backtest date" in source
    small = one.assign(level_shift=0.0, revenue_shift=0.0)
    assert forecast.level_readings(None, small, closed, 1, 0.8)[0].sigma == pytest.approx(plain.sigma)
    late = pd.DataFrame([{"analysis_date": pd.Timestamp("2026-05-31"), "status": forecast.LATE_STATUS,
                          "window_days": 30, "level_shift": -1.0, "level_information": info,
                          "late_baseline_shift": 0.5, "late_baseline_information": info,
                          "late_sigma": forecast.late_sigma(-1.5, info, info)}])
    widened, _, source = forecast.level_readings(None, late, closed, 1, 0.8)
    assert widened.sigma == pytest.approx(np.hypot(plain.sigma, late["late_sigma"].iloc[0]))
    assert source.startswith("historical") and "latest short windows" in source
    note = forecast.forecast_trust.trust_note(100, 20, 180, late)
    assert note.startswith("not enough data to say how far it can be trusted")
    assert "in the latest 30-day windows that have ended, fewer deals were won" in note


def test_intervals_sized_by_past_misses_cover_about_as_often_as_they_say():
    """Periods whose true level moves by 0.15 log odds (sd) between periods
    around a small lean: forecasts sized by the six periods before each hold
    the truth about 80 % of the time; independent coins (no shared shift)
    hold it far less often."""
    rng = np.random.default_rng(8)
    p = rng.uniform(0.02, 0.5, 900)
    info = forecast.level_information(p)
    shifts, sized, coins = [], [], []
    for k in range(66):
        won = (rng.random(len(p)) < forecast.shifted(p, -0.05 + rng.normal(0, 0.15))).sum()
        if k >= 6:
            level = forecast.level_reading(shifts[-6:][::-1], [info] * 6, 0.03, 0.8, steps_per_window=1)
            for sigma, held in ((level.sigma, sized), (0.0, coins)):
                sims, _ = forecast.simulate(p, np.ones(len(p)), np.zeros(len(p), dtype=np.int64), 1, sigma, 400, k)
                held.append(np.quantile(sims, 0.1) <= won <= np.quantile(sims, 0.9))
        shifts.append(forecast.level_shift(p, won))
    assert 0.7 <= np.mean(sized) <= 0.95
    assert np.mean(coins) < np.mean(sized) - 0.2


def test_dates_whose_windows_overlap_count_as_fewer_independent_windows():
    """Twelve 90-day windows a month apart share most of their deals and
    outcomes: they measure the level about as well as four windows, so the
    interval is wider than twelve independent periods with the same misses
    would give."""
    info = forecast.level_information(np.random.default_rng(11).uniform(0.02, 0.6, 1500))
    shifts = [-0.05, -0.2, 0.1, -0.15, 0.05, -0.25, 0.0, -0.1, 0.15, -0.3, -0.05, -0.2]
    overlapping = forecast.level_reading(shifts, [info] * 12, 0.02, 0.8, steps_per_window=3)
    independent = forecast.level_reading(shifts, [info] * 12, 0.02, 0.8, steps_per_window=1)
    assert overlapping.lean == independent.lean == pytest.approx(np.mean(shifts))
    assert forecast.independent_windows(12, 3) == 4 and forecast.independent_windows(12, 1) == 12
    assert forecast.independent_windows(3, 3) == 2          # Student's t needs one degree of freedom
    widen = 1.638 / 1.2816                                  # Student's t (3 df) over the normal 90 % quantile
    misses = max(np.mean(np.square(shifts)) - 1 / info, 0.02 ** 2)
    assert overlapping.sigma == pytest.approx(widen * np.sqrt(misses), rel=1e-3)
    assert overlapping.sigma > 1.1 * independent.sigma


def test_bigger_past_misses_of_either_sign_give_a_wider_interval():
    info = forecast.level_information(np.random.default_rng(9).uniform(0.02, 0.6, 2000))
    steady = forecast.level_reading([-0.12, -0.1, -0.14, -0.11, -0.13, -0.1, -0.12, -0.11], [info] * 8, 0.02, 0.8)
    split = forecast.level_reading([0.25, -0.25, 0.2, -0.2, 0.25, -0.25, 0.2, -0.2], [info] * 8, 0.02, 0.8)
    assert steady.lean == pytest.approx(-0.1163, abs=1e-3) and split.lean == pytest.approx(0.0, abs=1e-9)
    assert split.sigma > 1.8 * steady.sigma


def test_backtest_order_does_not_matter_to_the_reading():
    replays = [{"analysis_date": pd.Timestamp("2026-01-01") + pd.Timedelta(days=30 * k), "level_shift": s,
                "level_information": 400.0, "revenue_shift": s, "revenue_information": 200.0}
               for k, s in enumerate([0.3, 0.2, 0.1, 0.0, -0.1, -0.2, -0.3])]
    forward, _ = forecast.readings_from(replays, 0.02, 0.8)
    backward, _ = forecast.readings_from(replays[::-1], 0.02, 0.8)
    assert forward == backward
    newest_first = forecast.level_reading([-0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3], [400.0] * 7, 0.02, 0.8)
    assert forward == newest_first


def test_a_feature_nobody_had_yet_is_left_out_of_an_early_backtest_date():
    rows = pd.DataFrame({"age_days": [3.0, 40.0], "won_cycle_share": [np.nan, np.nan], "stage": ["a", None]})
    assert rm.columns_without_values(rows, ["age_days", "won_cycle_share", "stage"]) == ["won_cycle_share"]
    assert rm.columns_without_values(rows.iloc[:0], ["age_days"]) == ["age_days"]
    assert rm.columns_without_values(rows, ["age_days", "stage"]) == []
    spec = rf.FeatureSpec("creation_only", ("industry",), ("age_days", "won_cycle_share"))
    assert forecast.without_columns(spec, ["won_cycle_share"]).columns == ["industry", "age_days"]
    assert forecast.without_columns(spec, []) is spec
