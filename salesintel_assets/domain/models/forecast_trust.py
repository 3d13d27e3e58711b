"""How far the 90-day wins forecast can be trusted, in words: the width of
its interval relative to the forecast, and how past forecasts -- judged
forward in time by the backtest -- fared against what then closed. Plain
pandas, so the run summary can say it without loading the model stack."""

from __future__ import annotations

import pandas as pd

TRUST_TARGET = 0.10  # relative error a forecast must stay within to be called trustworthy
LATE_STATUS = "late window"  # forecast_backtest's row of the latest short windows that have ended


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def _windows(count: int) -> str:
    return "one independent 90-day window" if count == 1 else f"about {count} independent 90-day windows"


def trust_note(expected: float, low: float, high: float, backtest: pd.DataFrame | None,
               interval: float = 0.8, steps_per_window: int = 3) -> str:
    """In words, how far the 90-day wins forecast can be trusted: the width of
    its interval relative to the forecast, and how past forecasts judged
    forward in time (``judged_by_dates`` >= 2) fared against what closed.
    Backtest dates ``steps_per_window`` apart share most of their window, so
    the note counts the independent windows behind the record; a forecast
    whose past misses averaged more than the target is not trusted to it,
    however narrow its interval."""
    half = (high - low) / 2 / expected if expected > 0 else float("inf")
    share = _pct(interval)
    ok = judged = pd.DataFrame()
    if backtest is not None and len(backtest) and "judged_by_dates" in backtest:
        ok = backtest[backtest["status"] == "ok"]
        judged = ok[pd.to_numeric(ok["judged_by_dates"], errors="coerce").fillna(0) >= 2]
    if not len(judged):
        return (f"not enough data to say how far it can be trusted: {_unjudged(ok)}, so read the {share} interval "
                f"(±{_pct(half)}) as a rough guide{late_note(backtest)}")
    errors = _errors(judged).abs()
    held = int(judged["won_deals_in_interval"].astype(bool).sum())
    windows = max(len(judged) // max(steps_per_window, 1), 1)
    past = (f"past forecasts checked on {len(judged)} dates ({_windows(windows)}) missed by "
            f"{_pct(errors.mean())} on average (worst {_pct(errors.max())}) and their {share} intervals held on "
            f"{held} of {len(judged)}")
    within = round(100 * half) <= round(100 * TRUST_TARGET)   # as printed: "±10 %" is within 10 %
    if within and round(100 * errors.mean()) > round(100 * TRUST_TARGET):
        verdict = (f"it cannot be trusted to within {_pct(TRUST_TARGET)}: its {share} interval spans ±{_pct(half)}, "
                   f"but past forecasts missed by more than {_pct(TRUST_TARGET)} on average")
    elif within:
        # an 80 % interval misses one time in five: say so, not "trust it to"
        verdict = (f"expect it within about ±{_pct(half)} in {share} of cases (its {share} interval; a change not "
                   "yet visible in closed deals is not in it)")
    else:
        verdict = (f"it cannot be trusted to within {_pct(TRUST_TARGET)}: the {share} interval spans ±{_pct(half)} "
                   f"(few deals to win, or a level that moved between past dates)")
    caution = ""
    if len(judged) >= 5 and held / len(judged) < interval - 0.2:
        caution = "; the intervals held less often than they claim, so read them as too narrow"
    return f"{verdict}; {past}{caution}{late_note(backtest)}"


def _errors(rows: pd.DataFrame) -> pd.Series:
    """Past forecasts' relative errors (+ too high) against the wins that came."""
    actual = rows["actual_won_deals"].astype(float)
    return rows["expected_won_deals"].astype(float) / actual.clip(lower=1) - 1


def _unjudged(ok: pd.DataFrame) -> str:
    """What the past forecasts say when none was judged forward in time
    (each had fewer than two earlier dates to size its interval): their
    point errors still are out of sample, and a lean they share is news."""
    if not len(ok) or "actual_won_deals" not in ok:
        return "no past forecast could be checked against what closed"
    errors = _errors(ok)
    lean = ", all too high" if (errors > 0).all() else ", all too low" if (errors < 0).all() else ""
    return (f"past forecasts replayed on {len(ok)} dates, too early in the history to size their intervals as "
            f"today's is sized, missed by {_pct(errors.abs().mean())} on average{lean} (worst "
            f"{_pct(errors.abs().max())})")


def late_row(backtest: pd.DataFrame | None) -> pd.Series | None:
    """forecast_backtest's late-window row (the latest short windows that
    have ended), or None without one."""
    if backtest is None or not len(backtest) or "late_sigma" not in backtest:
        return None
    rows = backtest[backtest["status"] == LATE_STATUS]
    return rows.iloc[-1] if len(rows) else None


def late_change(backtest: pd.DataFrame | None) -> float:
    """``late_sigma`` of the backtest's late-window row (0 without one): the
    level change beyond noise that widens today's interval."""
    row = late_row(backtest)
    value = None if row is None else pd.to_numeric(row["late_sigma"], errors="coerce")
    return 0.0 if pd.isna(value) else float(value)


def late_note(backtest: pd.DataFrame | None) -> str:
    """What the latest short windows that have ended say, when they moved
    beyond noise (the interval is widened for it); empty otherwise."""
    if not late_change(backtest) > 0:
        return ""
    row = late_row(backtest)
    change = float(row["level_shift"]) - float(row["late_baseline_shift"])
    more = "more" if change > 0 else "fewer"
    return (f"; in the latest {int(row['window_days'])}-day windows that have ended, {more} deals were won than the "
            f"model's level just before them expected (by {abs(change):.2f} in log odds, beyond noise), a change the "
            "90-day backtest cannot see yet: the interval is widened for it")
