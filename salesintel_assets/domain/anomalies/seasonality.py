"""Quarter-end seasonality: compare like with like.

Real closings bunch up at quarter ends: deals are pushed to close by the end
of the quarter, so the last month of a quarter has more closes, more wins and
longer cycles than the first two (win rate around 80 % against 50-55 % in one
real CRM). A recent window compared with a plain baseline would then "spike"
every quarter end and "dip" every quarter start.

Each close date gets a *season*: which month of its (fiscal) quarter it
falls in, and how many whole ``bin_days`` periods (weeks by default) it lies
before that month's end (``season_of``). When the
data are seasonal, baseline deals are re-weighted so that the baseline's
seasons are mixed exactly as the window's are (direct standardisation): the
last week of a quarter is compared with the last weeks of earlier quarters,
a mixed window with the same mix. A change on top of the pattern still
shows; the pattern itself never does. Open deals' ages are compared with
snapshots taken at the same point of earlier quarters.

``mode: auto`` standardises when the history before the windows shows a
season effect (win rate or cycle differing by season, at ``detect_alpha``),
and, as a precaution, when that history is too short to tell (less than
two quarters of closes that show no season, or too few closes per season,
or a quarter end that won a reportable change more or less than the rest
of the quarter without the test proving it): a young CRM's first quarter
end would otherwise be its first alert.
Re-weighting costs effective baseline deals, which a history shown to have
no season need not pay.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

MAX_SEASONS = 3 * 31  # three months of at most 31 one-day periods
QUARTER_DAYS = 91     # closes spanning fewer days cannot show every month of a quarter
# A young CRM's season is judged on its shorter deals only (``samples.season_check``),
# but not on deals shorter than this: a push to the quarter's end lengthens a
# win's cycle by up to two months, and a tighter cap would leave the pushed wins out.
MIN_JUDGED_CYCLE_DAYS = 60


def month_numbers(days: np.ndarray) -> np.ndarray:
    """Months since 1970-01 of each day number."""
    return np.asarray(days, dtype="int64").astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)


def _first_month(days: np.ndarray, fiscal_start_month: int) -> np.ndarray:
    """The first month (since 1970-01) of each day's fiscal quarter."""
    months = month_numbers(days)
    return months - (months - (fiscal_start_month - 1)) % 3


def quarter_start_day(days: np.ndarray, fiscal_start_month: int) -> np.ndarray:
    """Day number of the first day of each day's fiscal quarter."""
    return _first_month(days, fiscal_start_month).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)


def quarter_end_day(days: np.ndarray, fiscal_start_month: int) -> np.ndarray:
    """Day number of the last day of each day's fiscal quarter."""
    first = _first_month(days, fiscal_start_month)
    return (first + 3).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64) - 1


def _periods_per_month(bin_days: int) -> int:
    return -(-31 // bin_days)


def season_of(days: np.ndarray, fiscal_start_month: int, bin_days: int) -> np.ndarray:
    """Each day's season: the months after its own in its quarter (0 in the
    quarter's last month), then the whole ``bin_days`` periods between it and
    its month's end (0 = the month's last period; 0 in all = the quarter's
    last period). Days must be real dates.

    Pushes follow the calendar's months (the last days of each month, of the
    quarter's last month most), so periods are counted back from each
    month's end. Counted back from the quarter's end, one season took in a
    second month's last days and a third month's first (30 days before a
    90-day quarter's end is its third month's 1st, before a 92-day one's its
    second month's 31st): on Maven's public sample, the first days of
    quarter-end months (82-92 % won) then stood for the last days of the
    months before them (51 %), and a 7-day window ending on 30 November was
    a win-rate dip."""
    days = np.asarray(days, dtype="int64")
    if not len(days):
        return np.zeros(0, dtype=np.int64)
    months = month_numbers(days)
    month_end = (months + 1).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64) - 1
    per_month = _periods_per_month(bin_days)
    later_months = 2 - (months - (fiscal_start_month - 1)) % 3
    return (later_months * per_month + np.minimum((month_end - days) // bin_days, per_month - 1)).astype(np.int64)


def season_runs(lo: int, hi: int, fiscal_start_month: int, bin_days: int) -> tuple[np.ndarray, ...]:
    """The days [lo, hi] cut into runs of one season: (season, first day,
    last day) per run. A season recurs once a quarter, so a year-long
    baseline holds about four runs of each."""
    days = np.arange(lo, hi + 1, dtype=np.int64)
    if not len(days):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    season = season_of(days, fiscal_start_month, bin_days)
    starts = np.r_[0, np.flatnonzero(np.diff(season) != 0) + 1]
    ends = np.r_[starts[1:] - 1, len(days) - 1]
    return season[starts], days[starts], days[ends]


def _season_name(season: int, bin_days: int) -> str:
    later_months, period = divmod(season, _periods_per_month(bin_days))
    days = f"{period * bin_days}-{min((period + 1) * bin_days - 1, 30)} days before"
    return f"{days} quarter end" if not later_months else \
        f"{days} the end of the quarter's {('second', 'first')[later_months - 1]} month"


@dataclass
class SeasonCheck:
    seasonal: bool                   # compare like with like (found, forced, or a precaution)
    note: str
    p_rate: float = float("nan")     # win rate by season (chi-square), when tested
    rate_gap: float = float("nan")   # highest less lowest season's win rate
    shown: bool = False              # past closes show a season (or the rules force one); not a precaution


def _too_little(why: str, p_rate: float = float("nan"), rate_gap: float = float("nan")) -> SeasonCheck:
    return SeasonCheck(True, f"quarter-end seasonality: {why}, too little to tell whether closings bunch at "
                             "quarter ends; as a precaution each window is compared with the same point of "
                             "earlier quarters (closes at a point no earlier quarter holds are not compared)",
                       p_rate, rate_gap)


def detect(close_days: np.ndarray, won: np.ndarray, cycles: np.ndarray, cfg, min_rate_gap: float,
           min_cycle_gap: float, min_per_season: int = 30) -> SeasonCheck:
    """Is there a season effect in these closed deals? Win rate by season
    (chi-square) or median cycle by season (Kruskal-Wallis), significant at
    ``detect_alpha`` AND at least half the smallest reportable change (a
    season effect smaller than that cannot raise an alert on its own, and
    at a million deals everything is significant). ``cfg`` is the rules'
    ``anomalies.seasonality``."""
    if cfg.mode == "off":
        return SeasonCheck(False, "quarter-end seasonality: off in the rules; baselines are not standardised")
    if cfg.mode == "on":
        return SeasonCheck(True, "quarter-end seasonality: on in the rules; each window is compared with "
                                 "the same point of earlier quarters", shown=True)
    span = int(np.ptp(close_days)) + 1 if len(close_days) else 0
    if span < QUARTER_DAYS:
        return _too_little(f"the closes it can judge span {span} day{'' if span == 1 else 's'}, less than a quarter")
    season = season_of(close_days, cfg.fiscal_year_start_month, cfg.bin_days)
    counts = np.bincount(season, minlength=MAX_SEASONS)
    present = np.flatnonzero(counts >= min_per_season)
    if len(present) < 2:
        return _too_little(f"no two points of the quarter hold {min_per_season} of the closes it can judge")
    keep = np.isin(season, present)
    wins = np.bincount(season[keep], weights=won[keep].astype("float64"), minlength=MAX_SEASONS)[present]
    rates = wins / counts[present]
    table = np.array([wins, counts[present] - wins])
    p_rate = float(sps.chi2_contingency(table)[1]) if (table.sum(axis=1) > 0).all() else 1.0
    groups = [cycles[keep & (season == s)] for s in present]
    p_cycle = float(sps.kruskal(*groups).pvalue) if all(np.ptp(g) > 0 for g in groups) else 1.0
    medians = np.array([np.median(g) for g in groups])
    rate_gap = float(np.ptp(rates))
    cycle_gap = float(medians.max() / max(medians.min(), 1.0) - 1)
    low, high = int(present[np.argmin(rates)]), int(present[np.argmax(rates)])
    shown = (f"from {100 * rates.min():.0f} % {_season_name(low, cfg.bin_days)} to {100 * rates.max():.0f} % "
             f"{_season_name(high, cfg.bin_days)}")
    rate_seasonal = p_rate < cfg.detect_alpha and rate_gap >= min_rate_gap / 2
    cycle_seasonal = p_cycle < cfg.detect_alpha and cycle_gap >= min_cycle_gap / 2
    if rate_seasonal or cycle_seasonal:
        return SeasonCheck(True, f"quarter-end seasonality found in past closes (win rate {shown}; "
                                 f"p = {p_rate:.2g}; median cycles differ by {100 * cycle_gap:.0f} %, "
                                 f"p = {p_cycle:.2g}): each window is compared with the same point of earlier quarters",
                           p_rate, rate_gap, shown=True)
    if span < 2 * QUARTER_DAYS:   # one quarter end, one of each month: a season may not show yet
        return _too_little(f"past closes spanning {span} days, less than two quarters, show no season (win rate "
                           f"{shown}; p = {p_rate:.2g})", p_rate, rate_gap)
    unproven = _unproven_quarter_end(season, won, cfg.bin_days, min_rate_gap)
    if unproven:
        return _too_little(f"past closes show no season at p < {cfg.detect_alpha:g} (win rate {shown}; "
                           f"p = {p_rate:.2g}), but {unproven}, as large as a reportable change", p_rate, rate_gap)
    return SeasonCheck(False, f"no quarter-end seasonality worth standardising in past closes (win rate {shown}; "
                              f"p = {p_rate:.2g}; median cycles differ by {100 * cycle_gap:.0f} %, p = {p_cycle:.2g})",
                       p_rate, rate_gap)


def _unproven_quarter_end(season: np.ndarray, won: np.ndarray, bin_days: int, min_rate_gap: float) -> str:
    """The quarter's end in words when its win rate differs from the rest
    of the quarter's by at least ``min_rate_gap`` (empty when it does not).

    Not finding a season is not finding none. The chi-square over every
    week of the quarter is weak on a young history (a nine-month-old CRM
    holds two quarter-end weeks): one whose last weeks won 63 % against
    44 % passed as showing none (p = 0.036) and its next quarter end was a
    win-rate spike. A gap this large in the quarter's last period or month,
    where pushed closes land, would alone raise an alert: as long as the
    history cannot show it is noise, windows are compared like with like."""
    period = _periods_per_month(bin_days)
    for at_end, what in ((season == 0, f"the quarter's last {bin_days} days"),
                         (season < period, "the quarter's last month")):
        if at_end.all() or not at_end.any():
            continue
        inside, rest = float(won[at_end].mean()), float(won[~at_end].mean())
        if abs(inside - rest) >= min_rate_gap:
            return (f"{what} won {100 * inside:.0f} % of {int(at_end.sum())} closes against {100 * rest:.0f} % "
                    "in the rest of the quarter")
    return ""


def standardising_factors(window_season: np.ndarray, base_season: np.ndarray, base_weight: np.ndarray) -> np.ndarray:
    """Per baseline deal: the factor that gives the weighted baseline the
    window's season mix. Seasons the baseline lacks are left out of the
    mix (their window deals have nothing like them to be compared with)."""
    base_mass = np.bincount(base_season, weights=base_weight, minlength=MAX_SEASONS)
    window_n = np.bincount(window_season, minlength=MAX_SEASONS).astype("float64")
    window_n[base_mass <= 0] = 0.0
    if window_n.sum() <= 0 or base_mass.sum() <= 0:
        return np.ones(len(base_season))
    target = window_n / window_n.sum()
    per_season = np.where(base_mass > 0, target * base_mass.sum() / np.maximum(base_mass, 1e-12), 0.0)
    return per_season[base_season]


def same_point_in_earlier_quarters(as_of: int, lo: int, hi: int, fiscal_start_month: int,
                                   spread_days: tuple[int, ...] = (-7, 0, 7)) -> np.ndarray:
    """Days in [lo, hi] as many days before their quarter's end as ``as_of``
    is before its own (and a week either side): snapshot dates for open ages."""
    to_end = int(quarter_end_day(np.array([as_of]), fiscal_start_month)[0]) - as_of
    ends = np.unique(quarter_end_day(np.arange(lo, hi + 120, 28), fiscal_start_month))
    days = (ends[:, None] - to_end + np.asarray(spread_days)[None, :]).ravel()
    return np.unique(days[(days >= lo) & (days <= hi)])[::-1]
