"""Pipeline forecast: what the open pipeline will bring in, by expected close
month and by segment, with a prediction interval, and a backtest that replays
past analysis dates.

Expected values are sums of the calibrated win probabilities (count) and of
probability x amount (revenue). By close month, each deal's chance is spread
over the months up to the main horizon (``horizons.month_spread``: the
model's 30-, 90- and 180-day answers, placed between where earlier quarters'
wins came), and its *expected close month* is the one by whose end half of
that chance has come.

How the interval is built: deals are not independent coins. A quarter where
the market turns moves every deal at once, and the model's overall level is
itself estimated. So each of ``simulations`` draws first picks one shared
log-odds shift delta ~ N(0, sigma^2) for the whole pipeline, moves every
deal's probability by it, and only then draws each deal's outcome; p10/p90
are the percentiles of the draws (for the default 80 % interval). With
sigma = 0 this would be independent coins, whose interval is far too narrow
(measured in the backtest).

sigma is measured, not assumed: at every backtest date we solve for the
shift that would have made that date's forecast (a model trained on what
was known then) match what closed in its window -- that forecast's miss,
in log odds. sigma is their root mean square around zero less binomial
noise (1 / sum p(1-p)), floored at the standard error of the model's level
on its validation deals, and widened by Student's t for the few windows
that measured it (dates a month apart share two thirds of a 90-day window,
so twelve dates count as four independent windows). The mean of those
misses (the lean) is shown, not removed: on 55 scenario worlds, 24 of them
on seeds never used before, removing it (all dates, the latest dates, or
shrunk) brought the 90-day forecast within 10 % less often than leaving it
(31, 35 and 36 of 55 against 41): a past window's lean is mostly that
window's luck and events, not a lasting bias. The backtest judges each date
with the sigma of the earlier dates whose windows had ended by then, so its
error and coverage are out of sample and forward in time, as today's
forecast is. Without a backtest: sigma from the month-to-month variation
of the historical win rate beyond binomial noise plus that standard error.
Revenue gets its own sigma, measured the same way on won revenue (big deals
miss differently from small ones).
Amounts are taken as recorded. Each month's interval draws its wins like a
horizon's (the shared shift, then each deal's chance in that month): it
carries the uncertainty of winning within the month's timing, not of the
timing itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from salesintel_assets.domain.models import features as rf
from salesintel_assets.domain.models import age_curve, cohort_trend, forecast_trust
from salesintel_assets.domain.models.horizons import MonthSpread
from salesintel_assets.domain.models import risk_model as rm
from salesintel_assets.domain.models import segment_changes
from salesintel_assets.domain.common import stats
from salesintel_assets.domain.common.stats import level_information, level_shift, logit as _logit, shifted
from salesintel_assets.domain.common.rules import RiskRules

FORECAST_COLUMNS = ["grouping", "key", "open_deals", "pipeline_amount", "expected_won_deals",
                    "expected_won_revenue", "revenue_p10", "revenue_p90", "won_deals_p10", "won_deals_p90"]
GROUPINGS = ("close_month", "industry", "region", "product_type", "lead_source", "total")
SIM_CELLS = 4_000_000       # deals x simulations held in memory at once


def empty_forecast() -> pd.DataFrame:
    types = {c: (object if c in ("grouping", "key") else "float64") for c in FORECAST_COLUMNS}
    types["open_deals"] = "int64"
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in types.items()})


# --- Uncertainty of the pipeline's level ------------------------------------------
def known_amounts(deals: pd.DataFrame) -> np.ndarray:
    """Deal amounts, 0 where unknown (an open deal the CRM has no amount for
    yet): revenue figures count only the deals with an amount."""
    return np.nan_to_num(deals["deal_amount"].to_numpy(dtype=float), nan=0.0)


def interval_sigma(shifts, informations, level_se: float) -> float:
    """sd of the shared shift around zero: mean squared past shift less its
    binomial noise, floored at the model level's standard error (the
    reading without Student's t, for fewer than two dates)."""
    d, info = np.asarray(shifts, dtype=float), np.asarray(informations, dtype=float)
    ok = np.isfinite(d) & (info > 0)
    if not ok.any():
        return float(level_se)
    excess = float(np.mean(d[ok] ** 2 - 1 / info[ok]))
    return float(np.sqrt(max(excess, level_se ** 2)))


@dataclass(frozen=True)
class LevelReading:
    """What the backtest says about the model's level: ``lean`` is the mean
    log-odds shift past forecasts needed to match what happened (negative:
    they leaned high; shown, not applied), ``sigma`` the sd of the shift to
    expect around today's forecast."""

    lean: float
    sigma: float
    dates: int


def level_reading(shifts, informations, level_se: float, interval: float,
                  steps_per_window: int = 3) -> LevelReading:
    """Interval width from past out-of-sample shifts (each a past forecast's
    miss in log odds), ordered most recent first: their root mean square
    around zero less binomial noise, floored at the model level's standard
    error, widened by Student's t for the windows that measured it. Dates
    ``steps_per_window`` apart share most of their window (deals and
    outcomes), so they count as ``independent_windows``, not as one
    measurement each: twelve 90-day windows a month apart measure about as
    much as four. One date or none: the plain reading."""
    d, info = _usable(shifts, informations)
    if len(d) < 2:
        return LevelReading(float(d.mean()) if len(d) else 0.0, interval_sigma(d, info, level_se), int(len(d)))
    windows = independent_windows(len(d), steps_per_window)
    misses = max(float(np.mean(d ** 2 - 1 / info)), level_se ** 2)
    return LevelReading(float(d.mean()), _widen(interval, windows - 1) * float(np.sqrt(misses)), int(len(d)))


def independent_windows(dates: int, steps_per_window: int, at_least: float = 2.0) -> float:
    """How many independent measurements ``dates`` backtest dates are when a
    forecast window spans ``steps_per_window`` of them (at least
    ``at_least``: Student's t needs one degree of freedom)."""
    return max(dates / max(steps_per_window, 1), at_least)


def _usable(shifts, informations) -> tuple[np.ndarray, np.ndarray]:
    d, info = np.asarray(shifts, dtype=float), np.asarray(informations, dtype=float)
    ok = np.isfinite(d) & (info > 0)
    return d[ok], info[ok]


def _widen(interval: float, dof: int) -> float:
    """Student's t over the normal quantile of the interval's upper end."""
    from scipy import stats as sps

    q = 1 - (1 - interval) / 2
    return float(sps.t.ppf(q, max(dof, 1)) / sps.norm.ppf(q))


def fallback_sigma(labelled: pd.DataFrame, level_se: float) -> float:
    """Without a backtest: month-to-month variation of the win rate beyond
    binomial noise (log-odds scale) plus the model level's standard error."""
    p = float(labelled["is_won"].mean()) if len(labelled) else 0.5
    monthly = labelled.groupby(labelled["closed_date"].dt.to_period("M"))["is_won"].agg(["sum", "size"])
    strength = stats.beta_prior_strength(monthly["sum"], monthly["size"]) if len(monthly) >= 3 else 1e6
    between = np.sqrt(p * (1 - p) / (strength + 1)) / max(p * (1 - p), 1e-6)
    return float(np.hypot(between, level_se))


# --- Simulation -------------------------------------------------------------------
def simulate(p: np.ndarray, amount: np.ndarray, keys: np.ndarray, n_keys: int, sigma: float,
             simulations: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Won deals and won revenue per key and draw: two (simulations x n_keys) arrays."""
    (counts, revenue), = simulate_groupings(p, amount, [(keys, n_keys)], sigma, simulations, seed)
    return counts, revenue


def simulate_groupings(p: np.ndarray, amount: np.ndarray, groupings: list[tuple[np.ndarray, int]], sigma: float,
                       simulations: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """One set of draws (shared shift, then each deal's outcome) summed for
    several groupings at once: per grouping, won deals and won revenue as
    (simulations x keys) arrays."""
    (out,) = simulate_readings([Reading(p, sigma, groupings)], amount, simulations, seed)
    return out


@dataclass
class Reading:
    """One reading of the shared draws: deals won with probabilities ``p``
    under a pipeline-wide shift of sd ``sigma``, summed per grouping (keys,
    number of keys); ``sums`` says which of "counts" and "revenue" are wanted
    (the other comes back as zeros)."""

    p: np.ndarray
    sigma: float
    groupings: list
    sums: tuple = ("counts", "revenue")


def simulate_readings(readings: list[Reading], amount: np.ndarray, simulations: int,
                      seed: int) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Several readings of one stream of draws, drawn once: per chunk of
    draws a standard normal per draw and a uniform per deal and draw; each
    reading's shift is its sigma times that normal. Each reading's result is
    what ``simulate_groupings`` with the same seed gives it alone (numpy
    draws a normal of sd s as s times a standard normal; a one-key revenue
    sum, taken as a product with the amounts, equal up to float rounding),
    so readings that used to re-draw the same seed cost one draw of the uniforms."""
    rng = np.random.default_rng(seed)
    n = len(amount)
    logits = [_logit(r.p) for r in readings]
    out = [[(np.zeros((simulations, k)), np.zeros((simulations, k))) for _, k in r.groupings] for r in readings]
    chunk = max(1, SIM_CELLS // max(n, 1))
    for start in range(0, simulations, chunk):
        size = min(chunk, simulations - start)
        normal = rng.standard_normal(size)
        uniform = rng.random((size, n))
        # u < 1 / (1 + exp(-(logit + shift)))  <=>  log(u / (1 - u)) - logit < shift: the uniforms' log odds
        # once per chunk, then one subtraction per reading instead of an exp (equal up to float rounding)
        odds = np.log1p(-uniform)
        with np.errstate(divide="ignore"):   # a uniform of exactly 0 is -inf log odds: always won, as before
            np.log(uniform, out=uniform)
        np.subtract(uniform, odds, out=odds)
        gap = uniform   # reused as each reading's workspace
        for reading, logit, sums in zip(readings, logits, out):
            shift = (0.0 + reading.sigma * normal)[:, None]
            np.subtract(odds, logit[None, :], out=gap)
            won = gap < shift
            if all(n_keys == 1 for _, n_keys in reading.groupings):   # one key: per draw, without listing the wins
                for counts, revenue in sums:
                    if "counts" in reading.sums:
                        counts[start:start + size, 0] = np.count_nonzero(won, axis=1)
                    if "revenue" in reading.sums:
                        revenue[start:start + size, 0] = won.astype(np.float64) @ amount
                continue
            sim, deal = np.divmod(np.flatnonzero(won), n)   # np.nonzero(won), faster on 2-d arrays
            for (keys, n_keys), (counts, revenue) in zip(reading.groupings, sums):
                cell = sim * n_keys + keys[deal]
                if "counts" in reading.sums:
                    counts[start:start + size] = np.bincount(cell, minlength=size * n_keys).reshape(size, n_keys)
                if "revenue" in reading.sums:
                    revenue[start:start + size] = np.bincount(cell, weights=amount[deal],
                                                              minlength=size * n_keys).reshape(size, n_keys)
    return out


def forecast(scored: pd.DataFrame, close_month, sigma: float, revenue_sigma: float,
             rules: RiskRules, horizons: dict[str, np.ndarray] | None = None, shift=0.0,
             revenue_shift=0.0) -> pd.DataFrame:
    """pipeline_forecast rows for every grouping. ``scored``: one row per open
    deal with win_probability, deal_amount and the segment columns; the
    shared shift's sd is ``sigma`` for deal counts, ``revenue_sigma`` for
    revenue. ``close_month``: a ``MonthSpread`` (each deal's chance spread
    over the months, as ``deal_risk_scores`` reads it; a month's row then
    counts the deals expected to close in it and the wins and revenue
    expected in it from every deal), or each deal's month (its whole chance
    in it). ``horizons`` (key -> each deal's probability of being won within
    it) adds grouping ``horizon``: wins and revenue expected within 30 days,
    90 days and by the quarter's end. ``shift`` and ``revenue_shift`` (log
    odds: one for all deals or one per deal, e.g. ``segment_corrected``'s)
    move the horizon rows' probabilities before they are summed or
    simulated. The other groupings stay sums of the scores (they add up to
    ``deal_risk_scores``)."""
    if not len(scored):
        return empty_forecast()
    cfg = rules.forecast
    low_q, high_q = (1 - cfg.interval) / 2, 1 - (1 - cfg.interval) / 2
    spread = close_month if isinstance(close_month, MonthSpread) else None
    months = spread.close_months() if spread is not None else close_month
    frame = scored.reset_index(drop=True).assign(close_month=np.asarray(months, dtype=object), total="all")
    p = frame["win_probability"].to_numpy(dtype=float)
    amount = known_amounts(frame)
    coded = {g: pd.factorize(frame[g].astype(str), sort=True) for g in GROUPINGS}
    # with a spread the months' draws are their own readings, so the close-month grouping is not drawn here
    drawn = [g for g in GROUPINGS if spread is None or g != "close_month"]
    groupings = [(coded[g][0], len(coded[g][1])) for g in drawn]
    zero = [(np.zeros(len(p), dtype=np.int64), 1)]
    readings = [Reading(p, sigma, groupings, ("counts",)), Reading(p, revenue_sigma, groupings, ("revenue",))]
    for ph in (horizons or {}).values():   # every reading shares one draw of the uniforms (same seed as before)
        ph = np.asarray(ph, dtype=float)
        readings += [Reading(shifted(ph, shift), sigma, zero, ("counts",)),
                     Reading(shifted(ph, revenue_shift), revenue_sigma, zero, ("revenue",))]
    for pm in (spread.p.T if spread is not None else ()):   # each month's wins, drawn like a horizon's
        readings += [Reading(pm, sigma, zero, ("counts",)), Reading(pm, revenue_sigma, zero, ("revenue",))]
    by_count, by_revenue, *by_horizon = simulate_readings(readings, amount, cfg.simulations, cfg.seed)
    by_month = by_horizon[2 * len(horizons or {}):]
    parts = []
    if spread is not None:
        parts.append(_spread_months(*coded["close_month"], spread, amount, by_month, low_q, high_q))
    for grouping, (counts, _), (_, revenue) in zip(drawn, by_count, by_revenue):
        codes, labels = coded[grouping]
        parts.append(pd.DataFrame({
            "grouping": grouping, "key": labels.astype(object),
            "open_deals": np.bincount(codes, minlength=len(labels)).astype("int64"),
            "pipeline_amount": np.bincount(codes, amount, len(labels)),
            "expected_won_deals": np.bincount(codes, p, len(labels)),
            "expected_won_revenue": np.bincount(codes, p * amount, len(labels)),
            "revenue_p10": np.quantile(revenue, low_q, axis=0), "revenue_p90": np.quantile(revenue, high_q, axis=0),
            "won_deals_p10": np.quantile(counts, low_q, axis=0), "won_deals_p90": np.quantile(counts, high_q, axis=0),
        }))
    for k, key in enumerate(horizons or {}):
        (counts, _), = by_horizon[2 * k]
        (_, revenue), = by_horizon[2 * k + 1]
        parts.append(_horizon_row(key, readings[2 + 2 * k].p, readings[3 + 2 * k].p, amount, counts, revenue,
                                  low_q, high_q))
    out = pd.concat(parts, ignore_index=True)
    money = ["pipeline_amount", "expected_won_revenue", "revenue_p10", "revenue_p90"]
    out[money] = out[money].round(2)
    out["expected_won_deals"] = out["expected_won_deals"].round(2)
    return out[FORECAST_COLUMNS]


def _spread_months(codes, labels, spread: MonthSpread, amount, by_month, low_q, high_q) -> pd.DataFrame:
    """The close-month rows with each month's wins and revenue from every
    deal's chance in it; its deals and pipeline amount are those expected to
    close in it (``codes`` into ``labels``: each deal's expected month)."""
    parts = []
    for j, month in enumerate(spread.months):
        (counts, _), = by_month[2 * j]
        (_, revenue), = by_month[2 * j + 1]
        parts.append(_horizon_row(month, spread.p[:, j], spread.p[:, j], amount, counts, revenue, low_q, high_q))
    out = pd.concat(parts, ignore_index=True).assign(grouping="close_month")
    own = pd.DataFrame({"open_deals": np.bincount(codes, minlength=len(labels)),
                        "pipeline_amount": np.bincount(codes, amount, len(labels))}, index=labels)
    out["open_deals"] = own["open_deals"].reindex(out["key"]).fillna(0).astype("int64").to_numpy()
    out["pipeline_amount"] = own["pipeline_amount"].reindex(out["key"]).fillna(0.0).to_numpy()
    return out


def _horizon_row(key, p, p_revenue, amount, counts, revenue, low_q, high_q) -> pd.DataFrame:
    return pd.DataFrame({
        "grouping": ["horizon"], "key": [key], "open_deals": [len(p)], "pipeline_amount": [amount.sum()],
        "expected_won_deals": [p.sum()], "expected_won_revenue": [(p_revenue * amount).sum()],
        "revenue_p10": [np.quantile(revenue, low_q)], "revenue_p90": [np.quantile(revenue, high_q)],
        "won_deals_p10": [np.quantile(counts, low_q)], "won_deals_p90": [np.quantile(counts, high_q)],
    })


# --- Backtest ---------------------------------------------------------------------
BACKTEST_COLUMNS = [
    "analysis_date", "status", "model", "train_deals", "open_deals", "resolved_deals", "pending_deals",
    "forecast_win_rate", "actual_win_rate", "error_points", "within_target",
    "expected_won_deals", "actual_won_deals", "won_deals_p10", "won_deals_p90", "won_deals_in_interval",
    "expected_won_revenue", "actual_won_revenue", "revenue_p10", "revenue_p90", "revenue_in_interval",
    "level_shift", "level_information", "revenue_shift", "revenue_information", "level_se",
    "interval_sigma", "revenue_sigma", "model_expected_won_deals",
    "judged_by_dates", "window_days", "late_baseline_shift", "late_baseline_information", "late_sigma",
]
LATE_STATUS = forecast_trust.LATE_STATUS   # the row of the latest short windows that have ended (``late_check``)
late_change = forecast_trust.late_change   # that row's late_sigma (0 without one)


def empty_backtest() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in BACKTEST_COLUMNS})


def backtest(fact: pd.DataFrame, timeline: rf.Timeline, spec: rf.FeatureSpec, rules: RiskRules,
             closed_stage: str, candidate: str, as_of: pd.Timestamp,
             snapshots: pd.DataFrame | None = None, curve_serves: bool = False,
             replays: dict | None = None) -> pd.DataFrame:
    """Replay past analysis dates T (the latest ``backtest_horizon_days``
    before the analysis date): train the same kind of model on what was
    known at T, forecast wins within ``backtest_horizon_days`` for *every*
    deal open at T (including those that never closed), and compare with
    what happened in that window -- fully known today, so nothing is
    pending. Each date's forecast moves the segments whose closes had moved
    by then (``segment_adjusted``) and its interval is sized by the earlier
    dates whose windows had ended by then (``level_reading``), exactly as
    today's forecast is by all of them: its error and coverage are out of
    sample and forward in time (``judged_by_dates`` of them; with fewer than
    two, the plain reading, as today's forecast would be).

    Every date reads its training rows from the same replayed states
    (``snapshots``, from ``rf.replayed_snapshots``; built here when not
    given) and fits on a stratified sample of at most
    ``backtest_max_fit_rows`` of them, so a date costs a fraction of the
    main fit. Where the age curve serves today (``curve_serves``), each date
    replays the curve fitted on every deal known then. ``replays``: the
    model replays this run already made (``(candidate, day)`` to
    ``Replayed``, the curve's judge fills it), used instead of retraining
    on those days: the same inputs give the same replay."""
    cfg = rules.forecast
    if snapshots is None:
        snapshots = rf.replayed_snapshots(fact, timeline, spec, as_of, rules, closed_stage)
    runs = []
    for day in backtest_days(as_of, cfg):
        made = None if curve_serves else (replays or {}).get((candidate, day))
        runs.append(_replay(fact, snapshots, timeline, spec, rules, candidate, day, curve_serves, made))
    window = pd.Timedelta(days=cfg.backtest_horizon_days)
    rows = []
    for run in runs:
        data = run.pop("_data", None)
        if data is not None:
            known = [r for r in runs if r.get("status") == "ok" and r["analysis_date"] + window <= run["analysis_date"]]
            level = readings_from(known, run["level_se"], cfg.interval, steps_per_window(cfg))
            run.update(_judge(*data, *level, rules), judged_by_dates=level[0].dates)
        rows.append(run | {"window_days": cfg.backtest_horizon_days})
    rows.append(late_check(fact, snapshots, spec, rules, candidate, as_of))
    out = pd.DataFrame(rows).reindex(columns=BACKTEST_COLUMNS)
    return out.sort_values("analysis_date").reset_index(drop=True)


def backtest_days(as_of: pd.Timestamp, cfg, count: int | None = None) -> list[pd.Timestamp]:
    """The past analysis dates the backtest replays, newest first (the first
    ``count`` of them): the curve's judge replays the same days, and the
    backtest takes its replays by day."""
    dates = cfg.backtest_dates if count is None else min(cfg.backtest_dates, count)
    return [pd.Timestamp(as_of) - pd.Timedelta(days=cfg.backtest_horizon_days + k * cfg.backtest_step_days)
            for k in range(dates)]


@dataclass
class Replayed:
    """What a replay served on a past day: the deals open then (as known
    then), its probabilities for them, and the standard error of its level.
    Kept for later in a run (``kept``), without the deals and their states:
    the day's open deals are read again for a fraction of a replay's cost."""
    deals: pd.DataFrame | None
    states: pd.DataFrame | None
    p: np.ndarray
    level_se: float

    def kept(self) -> "Replayed":
        return replace(self, deals=None, states=None)


def replayed(fact, snapshots, timeline, spec, rules, candidate: str, day, curve_serves: bool = False) -> Replayed:
    """The served kind of model as it would have been on ``day``, on every
    deal open then: ``candidate`` trained on the states labelled by then
    (its served levels and, past its reach, the age curve applied as
    ``HorizonModel`` applies them), or, where the age curve serves
    (``curve_serves``), the curve fitted on every deal known then.
    Raises ``rm.NotEnoughData``."""
    horizon = rules.forecast.backtest_horizon_days
    deals = rf.open_at(fact, day)   # open at T, as known at T; outcomes as known today
    # Their outcomes only (an export of one outcome gets no replay either), not a copy of every column.
    labelled_then = fact.loc[rf.labelled_mask(fact, day), ["is_won"]]
    # The curve too only where the model could be fitted: fitted earlier still, on a few months of the
    # fastest closes, it read a generated CRM's wins at half the truth (139 where 271 came, +1.35 in log
    # odds), and that one miss sized every later interval (on three of five CRMs eight to ten months old,
    # today's interval was wider than the forecast itself).
    split = rm.time_split(rf.label(snapshots, horizon, day), labelled_then, rules)
    if curve_serves:
        return curve_replayed(fact, deals, timeline, spec, rules, day)
    split = rm.sampled_for_fit(split, rules.forecast.backtest_max_fit_rows, rules.seed)
    spec = without_columns(spec, rm.columns_without_values(split.fit, spec.columns))
    model, _ = rm.fit_calibrated(candidate, split.fit, split.calibrate, spec, rules, horizon)
    states = rf.open_states(deals, timeline, spec, day)
    model_p = rm.predict(model, states)
    validate_p = rm.predict(model, split.validate[spec.columns])
    # as today's model serves deals older than its fit reached (``HorizonModel``), so does the replay
    reach = rm.age_reach(fact, day, split.fit)
    curve = rm.curve_past_reach(reach, fact, day, spec, rules, horizon)
    past_reach = 0.0 if curve is None else \
        age_curve.past_reach_shift(curve, states, horizon, reach.reach_age)
    cohort = cohort_trend.measure(fact, day, spec.categorical, rules.cohort_trend_min_z, rules.seed)
    at = rm.calibration_day(model, split, spec) if cohort.served_per_year else None
    level = sum(rm.deployed_levels(model, split, spec, rules.snapshot_every_days, validate_p, cohort.served_per_year,
                                   at))
    level += rm.cohort_level(model, spec, cohort, states, deals["created_date"], level, at)
    model_p = shifted(model_p, level + past_reach)
    return Replayed(deals, states, model_p, validation_level_se(validate_p, split.validate))


def curve_replayed(fact, deals: pd.DataFrame, timeline, spec, rules, day) -> Replayed:
    """The age curve fitted on every deal known on ``day``, on ``deals``
    (those open then, on a day ``replayed`` accepts)."""
    if not len(deals):
        raise rm.NotEnoughData("no deal was open then")
    horizon = rules.forecast.backtest_horizon_days
    states = rf.open_states(deals, timeline, spec, day)
    curve = age_curve.fitted(rm.mixture_for(spec, rules, horizon), fact, day, rules.max_fit_rows, rules.seed)
    p = curve.within(states, horizon)
    return Replayed(deals, states, p, validation_level_se(p, deals))


def won_within(deals: pd.DataFrame, day: pd.Timestamp, days: int) -> np.ndarray:
    """Which of ``deals`` (open on ``day``) were won within ``days`` after it, as known today."""
    end = day + pd.Timedelta(days=days)
    return deals["is_won"].fillna(False).to_numpy(dtype=bool) & (deals["closed_date"] <= end).to_numpy(dtype=bool)


def _replay(fact, snapshots, timeline, spec, rules, candidate, day, curve_serves, made: Replayed | None) -> dict:
    row = {"analysis_date": day, "model": rm.AGE_CURVE if curve_serves else candidate}
    closed_then = int(rf.labelled_mask(fact, day).sum())
    try:
        served = replace(made, deals=rf.open_at(fact, day)) if made is not None else \
            replayed(fact, snapshots, timeline, spec, rules, candidate, day, curve_serves)
    except rm.NotEnoughData as exc:
        return row | {"status": f"not enough data: {exc}", "train_deals": closed_then}
    deals, model_p = served.deals, served.p
    p, segment_sd = segment_adjusted(closes_known(fact, day, rules), deals, model_p, day, rules)
    won = won_within(deals, day, rules.forecast.backtest_horizon_days)
    amount = known_amounts(deals)
    return row | {
        "status": "ok", "train_deals": closed_then, "open_deals": len(deals), "resolved_deals": int(len(p)),
        "pending_deals": 0, "level_shift": level_shift(p, won.sum()),
        "level_information": level_information(p), "level_se": served.level_se,
        "revenue_shift": level_shift(p, amount[won].sum(), amount),
        "revenue_information": level_information(p, amount),
        "_data": (model_p, p, won, amount, segment_sd),
    }


def steps_per_window(cfg) -> int:
    """Backtest dates one forecast window spans (a date's outcome is known
    this many dates later)."""
    return int(np.ceil(cfg.backtest_horizon_days / max(cfg.backtest_step_days, 1)))


def without_columns(spec: rf.FeatureSpec, columns) -> rf.FeatureSpec:
    """The spec without ``columns``: an early backtest date's model cannot use
    a feature no deal had a value for yet (a tree model cannot even bin it)."""
    drop = set(columns)
    return replace(spec, categorical=tuple(c for c in spec.categorical if c not in drop),
                   numeric=tuple(c for c in spec.numeric if c not in drop)) if drop else spec


def readings_from(replays: list[dict], level_se: float, interval: float,
                  steps: int = 3) -> tuple[LevelReading, LevelReading]:
    """(level reading for deal counts, for revenue) from backtest replays
    (any order: they are taken most recent first)."""
    replays = sorted(replays, key=lambda r: pd.Timestamp(r["analysis_date"]), reverse=True)

    def pick(shift, info):
        return level_reading([r.get(shift, np.nan) for r in replays], [r.get(info, 0.0) for r in replays],
                             level_se, interval, steps)
    return pick("level_shift", "level_information"), pick("revenue_shift", "revenue_information")


# --- A late change the 90-day backtest cannot see yet ------------------------------
def late_check(fact, snapshots, spec, rules: RiskRules, candidate: str, as_of: pd.Timestamp) -> dict:
    """The latest short windows that have ended, against the level just before.

    The 90-day backtest's latest window starts 90 days back, so a change in
    the last weeks (a segment that starts losing, deals that stall) weighs
    little in it. Here a model of "won within ``late_window_days``" (L) is
    trained on what was known L days ago; its level (the log-odds shift that
    matches what closed) is measured on its own validation snapshots (out of
    sample, the level it had just before) and on the snapshots of the L
    days after them, whose windows closed by the analysis date (never seen
    by it). The difference beyond binomial noise is ``late_sigma``: the size
    of a level change the backtest has not measured, which widens today's
    interval (``widened``). Both sets are cut to a stratified sample
    of ``backtest_max_fit_rows`` (the level needs no more)."""
    cfg = rules.forecast
    days = cfg.late_window_days
    day = pd.Timestamp(as_of) - pd.Timedelta(days=days)
    row = {"analysis_date": day, "status": LATE_STATUS, "model": candidate, "window_days": days}
    labelled_then = fact.loc[rf.labelled_mask(fact, day), ["is_won"]]
    closed_then = len(labelled_then)
    try:
        split = rm.time_split(rf.label(snapshots, days, day), labelled_then, rules)
    except rm.NotEnoughData as exc:
        return row | {"status": f"{LATE_STATUS}: not enough data: {exc}", "train_deals": closed_then}
    recent = rf.label(snapshots, days, as_of)
    recent = recent[recent["snapshot_date"] > split.validate["snapshot_date"].max()]
    if not len(recent):
        return row | {"status": f"{LATE_STATUS}: not enough data: no snapshot after the validation period",
                      "train_deals": closed_then}
    split = rm.sampled_for_fit(split, cfg.backtest_max_fit_rows, rules.seed)
    spec = without_columns(spec, rm.columns_without_values(split.fit, spec.columns))
    model, _ = rm.fit_calibrated(candidate, split.fit, split.calibrate, spec, rules, days)
    before, after = (_level_of(model, rm.stratified_sample(rows, cfg.backtest_max_fit_rows, rules.seed), spec)
                     for rows in (split.validate, recent))
    return row | {
        "train_deals": closed_then, "open_deals": int(recent["deal_id"].nunique()), "resolved_deals": len(recent),
        "pending_deals": 0, "forecast_win_rate": round(after["rate"], 4), "actual_win_rate": round(after["actual"], 4),
        "level_shift": after["shift"], "level_information": after["information"],
        "late_baseline_shift": before["shift"], "late_baseline_information": before["information"],
        "late_sigma": late_sigma(after["shift"] - before["shift"], after["information"], before["information"]),
    }


def _level_of(model, rows: pd.DataFrame, spec: rf.FeatureSpec) -> dict:
    """A model's level on labelled snapshots: the shift that matches their
    wins and its information (rows of one deal are not independent)."""
    p = rm.predict(model, rows[spec.columns])
    shift, information = rm.level_of(p, rows)
    return {"shift": shift, "information": information, "rate": float(p.mean()), "actual": float(rows["won"].mean())}


def late_sigma(change: float, information_after: float, information_before: float) -> float:
    """The size of a level change beyond the binomial noise of both readings
    (0 when the change is within it, or unmeasured)."""
    if not np.isfinite(change) or information_after <= 0 or information_before <= 0:
        return 0.0
    return float(np.sqrt(max(change ** 2 - 1 / information_after - 1 / information_before, 0.0)))


def widened(level: LevelReading, sd: float) -> LevelReading:
    """The level reading with its sd widened by ``sd`` (added in
    quadrature: an independent source of error the backtest did not see, a
    late change or the segment changes' own noise)."""
    return replace(level, sigma=float(np.hypot(level.sigma, sd))) if sd > 0 else level



# --- Segments that moved lately ---------------------------------------------------------
def segment_window(as_of: pd.Timestamp, rules: RiskRules) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The close dates (after, up to) ``segment_changes`` reads."""
    return segment_changes.window_start(as_of, rules.forecast.segment_changes), pd.Timestamp(as_of)


def closes_known(fact: pd.DataFrame, day: pd.Timestamp, rules: RiskRules) -> pd.DataFrame:
    """The closes ``segment_changes`` reads, as known on ``day`` (what
    ``reporting.SEGMENT_CLOSES_SQL`` reads from the warehouse)."""
    after, _ = segment_window(day, rules)
    keep = rf.labelled_mask(fact, day) & (fact["closed_date"] > after).to_numpy(dtype=bool)
    return fact.loc[keep, [c for c in segment_changes.READ_COLUMNS if c in fact]]


def segment_adjusted(closed: pd.DataFrame, deals: pd.DataFrame, p: np.ndarray, as_of: pd.Timestamp,
                     rules: RiskRules) -> tuple[np.ndarray, float]:
    """``p`` with the segment changes the closes up to ``as_of`` show
    applied to ``deals`` (``segment_changes.find``), and the pipeline-wide sd
    their own noise adds."""
    changes = segment_changes.find(closed, as_of, rules.forecast.segment_changes)
    if not changes:
        return p, 0.0
    shift, sd = segment_changes.applied(deals, p, changes)
    return shifted(p, shift), sd


def segment_corrected(level: LevelReading, revenue_level: LevelReading, deals: pd.DataFrame, p: np.ndarray,
                      changes: list) -> tuple[LevelReading, LevelReading, np.ndarray]:
    """Today's level readings widened by the segment changes' noise, and
    each open deal's segment shift (what the horizon rows apply)."""
    shift, sd = segment_changes.applied(deals, p, changes)
    return widened(level, sd), widened(revenue_level, sd), shift


def validation_level_se(p: np.ndarray, validate: pd.DataFrame) -> float:
    """Standard error of the model's level on its validation deals (rows of
    one deal are not independent: information is scaled to deals)."""
    rows_per_deal = len(validate) / max(validate["deal_id"].nunique(), 1)
    return float(1 / np.sqrt(max(level_information(p, rows_per_deal=rows_per_deal), 1e-9)))


def _judge(model_p, p, won, amount, segment_sd, level: LevelReading, revenue_level: LevelReading,
           rules) -> dict:
    """A past date's forecast (``p``: the model's ``model_p`` with that
    date's segment changes) against what closed in its window."""
    cfg = rules.forecast
    level, revenue_level = widened(level, segment_sd), widened(revenue_level, segment_sd)
    keys = np.zeros(len(p), dtype=np.int64)
    ((counts, _),), ((_, revenue),) = simulate_readings(
        [Reading(p, level.sigma, [(keys, 1)], ("counts",)), Reading(p, revenue_level.sigma, [(keys, 1)],
                                                                    ("revenue",))], amount, cfg.simulations, cfg.seed)
    lo, hi = (1 - cfg.interval) / 2, 1 - (1 - cfg.interval) / 2
    n = len(p)
    forecast_rate = float(p.mean()) if n else float("nan")
    actual_rate = float(won.sum() / n) if n else float("nan")
    error = (forecast_rate - actual_rate) * 100
    bounds = {"won_deals_p10": float(np.quantile(counts, lo)), "won_deals_p90": float(np.quantile(counts, hi)),
              "revenue_p10": float(np.quantile(revenue, lo)), "revenue_p90": float(np.quantile(revenue, hi))}
    actual_revenue = float(amount[won].sum())
    return bounds | {
        "forecast_win_rate": round(forecast_rate, 4), "actual_win_rate": round(actual_rate, 4),
        "error_points": round(error, 2), "within_target": bool(abs(error) <= cfg.win_rate_target_points),
        "expected_won_deals": round(float(p.sum()), 2), "actual_won_deals": int(won.sum()),
        "won_deals_in_interval": bool(bounds["won_deals_p10"] <= won.sum() <= bounds["won_deals_p90"]),
        "expected_won_revenue": round(float((p * amount).sum()), 2), "actual_won_revenue": actual_revenue,
        "revenue_in_interval": bool(bounds["revenue_p10"] <= actual_revenue <= bounds["revenue_p90"]),
        "interval_sigma": round(level.sigma, 4), "revenue_sigma": round(revenue_level.sigma, 4),
        "model_expected_won_deals": round(float(model_p.sum()), 2),
    }


def level_readings(models: pd.DataFrame | None, backtest: pd.DataFrame | None, closed_outcomes,
                      version: int, interval: float, steps: int = 3) -> tuple[LevelReading, LevelReading, str]:
    """The past lean and the sd of the pipeline-wide log-odds shift (deals
    and revenue) and where they came from: the backtest when it replayed at
    least two dates, else the month-to-month variation of past win rates
    (``closed_outcomes`` is called only then), no narrower than the miss of
    a single replayed date. A change in the latest short windows widens
    either."""
    level_se = 0.0
    if models is not None and "level_se" in models:
        rows = models[(models["version"] == version) & models["level_se"].notna()]
        level_se = float(rows["level_se"].iloc[-1]) if len(rows) else 0.0
    ok = backtest[backtest["status"] == "ok"] if backtest is not None else None
    if ok is not None and len(ok) >= 2:
        level, revenue_level = readings_from(ok.to_dict("records"), level_se, interval, steps)
        source = f"backtest ({len(ok)} dates)"
    else:
        sigma = fallback_sigma(closed_outcomes(), level_se)
        level = revenue_level = LevelReading(0.0, sigma, 0)
        source = "historical month-to-month variation (no backtest)"
        if ok is not None and len(ok) == 1:
            # One replayed date is too few to centre on, but how far it missed is evidence of how far today's
            # forecast can be off (a CRM whose early history behaves unlike today's: a miss of several log odds).
            one, one_revenue = readings_from(ok.to_dict("records"), level_se, interval, steps)
            level, revenue_level = (LevelReading(0.0, max(sigma, r.sigma), 0) for r in (one, one_revenue))
            source = "historical month-to-month variation, no narrower than the one backtest date's miss"
    late = late_change(backtest)
    if late > 0:
        return (widened(level, late), widened(revenue_level, late),
                f"{source}, widened by a change in the latest short windows ({late:.3f})")
    return level, revenue_level, source

