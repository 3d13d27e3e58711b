"""The sample CRM: a deterministic, generated sales world that ships with the
package so every layer can run, be tested and be demonstrated without a real
CRM.

The world is simulated as *truth* first (every deal's whole lifecycle, up to
``SAMPLE_HORIZON_DAYS`` past its end date) and only then *observed*:
``snapshot(world, clock)`` shows what a CRM would show at ``clock``. That split
is what makes an advancing clock produce genuinely new and changed deals, so
incremental pulls by ``last_modified`` have real work to do.

Rates, mixes and cycle lengths are stationary (only volume grows, as a young
company's does), apart from three planted problems that start shortly before
the end date (``PLANTED_EFFECTS``), so a detector has a clean baseline and
something real to find. The CRM "went live" at the start of the history with
the then-open pipeline imported, so close-date metrics carry no warm-up bias.

About one row in a hundred is dirty (``DIRTY_KINDS``), enough to exercise
every data-quality rule but far below the pipeline's circuit breaker. Segment
effects are deliberately modest except where a problem is planted: an honest
analysis finds the planted ones and not much else.

Everything is vectorised numpy (no per-deal Python loops) and drawn from one
``numpy.random.Generator(seed)``, so the same arguments give identical frames
and a million deals take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

SAMPLE_END_DATE = date(2026, 6, 30)
SAMPLE_HORIZON_DAYS = 90
HISTORY_DAYS = 548  # about 18 months of deals created up to the end date
# The CRM went live HISTORY_DAYS before the end date with the then-open
# pipeline imported, so a few deals were created up to this long before it.
MIGRATED_DAYS = 180

EXPORT_COLUMNS = (
    "deal_id", "created_date", "closed_date", "sales_rep_id", "industry", "region",
    "product_type", "lead_source", "deal_stage", "deal_amount", "sales_cycle_days", "outcome",
)
SNAPSHOT_DEAL_COLUMNS = EXPORT_COLUMNS + ("last_modified", "stage_entered_date")
STAGE_HISTORY_COLUMNS = ("deal_id", "stage", "entered_date")
ACTIVITY_COLUMNS = ("activity_id", "deal_id", "sales_rep_id", "activity_type", "activity_date")
REP_COLUMNS = ("sales_rep_id", "rep_name", "email", "team", "manager_id", "manager_name",
               "manager_email", "cro_id", "cro_name", "cro_email", "region")

INDUSTRIES = ("SaaS", "FinTech", "HealthTech", "EdTech", "Ecommerce")
REGIONS = ("North America", "Europe", "APAC", "India")
PRODUCT_TYPES = ("Core", "Pro", "Enterprise")
LEAD_SOURCES = ("Inbound", "Outbound", "Referral", "Partner")
STAGES = ("Qualified", "Demo", "Proposal", "Negotiation", "Closed")
OPEN_STAGES = STAGES[:4]
ACTIVITY_TYPES = ("call", "email", "meeting")

# --- The stationary world -------------------------------------------------
REGION_WEIGHTS = (0.30, 0.27, 0.22, 0.21)
INDUSTRY_WEIGHTS = (0.22, 0.18, 0.20, 0.18, 0.22)
# Europe is the fintech hub: enough volume for a segment problem to be provable.
EUROPE_FINTECH_SHARE = 0.40
PRODUCT_WEIGHTS = (0.36, 0.34, 0.30)
LEAD_SOURCE_WEIGHTS = (0.26, 0.25, 0.24, 0.25)
# The company grows: daily creation volume rises linearly by this fraction
# over the history (2.2x) and keeps rising through the horizon. Compare
# volumes against a recent baseline; rates and mixes do not move.
VOLUME_GROWTH = 1.2
WEEKDAY_VOLUME = (1.0, 1.0, 1.0, 1.0, 0.9, 0.25, 0.15)  # Mon..Sun

# Win probability is logistic in these additive effects (log-odds).
BASE_WIN_LOGIT = -0.21
LEAD_SOURCE_WIN_LOGIT = {"Inbound": 0.05, "Outbound": -0.05, "Referral": 0.45, "Partner": -0.50}
INDUSTRY_WIN_LOGIT = {"SaaS": 0.12, "FinTech": 0.06, "HealthTech": 0.0, "EdTech": -0.15, "Ecommerce": -0.05}
AMOUNT_WIN_LOGIT_PER_LOG = -0.08  # bigger deals are a little harder to win
STRONG_REPS = ("rep_4", "rep_11", "rep_17")
WEAK_REPS = ("rep_8", "rep_15", "rep_22")
REP_SKILL_LOGIT = 0.55          # +/- for strong / weak reps
REP_SKILL_NOISE = 0.12          # everyone else: small seeded differences
TEAM_AFFINITY = 0.7             # share of a region's deals worked by that region's team

AMOUNT_MEDIAN_BY_PRODUCT = {"Core": 8_500.0, "Pro": 14_000.0, "Enterprise": 26_000.0}
AMOUNT_SIGMA = 0.8
AMOUNT_RANGE = (2_000.0, 100_000.0)

CYCLE_RANGE = (5, 180)
WON_CYCLE_MEDIAN_DAYS = 35.0
# Deals lost early are disqualified fast; deals lost late die slowly.
LOST_STAGE_WEIGHTS = (0.10, 0.17, 0.38, 0.35)            # Qualified, Demo, Proposal, Negotiation
LOST_CYCLE_MEDIAN_DAYS = (12.0, 24.0, 85.0, 100.0)
LOST_CYCLE_MAX_DAYS = (28, 55, 180, 180)
CYCLE_SIGMA = 0.6
PRODUCT_CYCLE_FACTOR = {"Core": 0.85, "Pro": 1.0, "Enterprise": 1.5}
STAGE_DWELL_SHAPE = (1.5, 1.5, 3.0, 3.0)  # relative time spent in each open stage
# No naturally moving deal sits longer than this in Qualified or Demo, so
# early-stage stalls are exactly the planted ones.
EARLY_STAGE_MAX_DAYS = 30

ACTIVITY_RATE_PER_DAY = {"Won": 0.30, "Lost": 0.18}
ACTIVITY_TYPE_WEIGHTS = {"Won": (0.35, 0.35, 0.30), "Lost": (0.38, 0.50, 0.12)}
LOST_ACTIVE_SHARE = 0.6  # lost deals go quiet for the last part of their life


# --- Planted problems -----------------------------------------------------
@dataclass(frozen=True)
class SegmentWinDrop:
    """One industry x region segment starts losing: among its deals that
    close from ``window_days`` before the end date on, only ``win_rate`` are
    won (the rest of the world keeps its ~45 %). It persists into the horizon.
    The segment is large (Europe leans FinTech) so the drop is provable:
    typically 40-80 closes in the window at 6,000 deals."""

    industry: str = "FinTech"
    region: str = "Europe"
    window_days: int = 45
    win_rate: float = 0.17
    min_closed_per_6000: int = 40

    def window(self, end_date: date) -> tuple[date, date]:
        """First and last close date (inclusive) of the measured window."""
        return end_date - timedelta(days=self.window_days - 1), end_date


@dataclass(frozen=True)
class StuckEarlyDeals:
    """Open deals that stall in Qualified or Demo for ``min_days_in_stage``+
    days at the end date (natural deals never exceed ``EARLY_STAGE_MAX_DAYS``
    there); a ``large_share`` of them are big Enterprise deals. They go quiet
    (no activities) days after entering the stage and are closed Lost in a
    pipeline clean-up from two weeks after the end date on."""

    stages: tuple[str, ...] = ("Qualified", "Demo")
    deals_per_6000: int = 20
    min_days_in_stage: int = 45
    created_days_before_end: tuple[int, int] = (150, 60)
    large_share: float = 1 / 3
    large_amount_range: tuple[float, float] = (60_000.0, 100_000.0)

    def count(self, n_deals: int) -> int:
        return int(round(self.deals_per_6000 * n_deals / 6000))


@dataclass(frozen=True)
class PartnerLeadBurst:
    """A burst of low-quality partner leads: in the last ``window_days`` up to
    the end date, new Partner deals arrive at ``rate_multiplier`` times their
    usual rate. The extra deals go mostly to weak reps, are small, and rarely
    win. The burst ends on the end date."""

    lead_source: str = "Partner"
    window_days: int = 21
    rate_multiplier: float = 3.0
    weak_rep_share: float = 0.7
    amount_factor: float = 0.45
    win_logit_penalty: float = -0.9
    lost_stage_weights: tuple[float, ...] = (0.6, 0.3, 0.07, 0.03)
    product_weights: tuple[float, ...] = (0.7, 0.25, 0.05)

    def window(self, end_date: date) -> tuple[date, date]:
        """First and last creation date (inclusive) of the burst."""
        return end_date - timedelta(days=self.window_days - 1), end_date


@dataclass(frozen=True)
class QuarterEndPush:
    """Quarter-end seasonality, an option (``generate_world(...,
    quarter_end_seasonality=True)``): reps push the deals they will win to
    close by the end of the quarter, so a ``share`` of the wins due in a
    quarter's first two months close in its last ``last_days`` days instead.
    Quarter-end months then have more closes, longer cycles and a win rate
    near 60 % against near 35 % in the other months (seed 42, 6,000 deals),
    the odds ratio real CRMs show.
    Rates by week of the quarter are the same every quarter: nothing else
    changes, so a detector should raise nothing for it."""

    share: float = 0.45
    last_days: int = 21
    fiscal_start_month: int = 1   # quarters of a fiscal year starting then (2: they end in Jan, Apr, Jul, Oct)


SEGMENT_WIN_DROP = SegmentWinDrop()
STUCK_EARLY_DEALS = StuckEarlyDeals()
QUARTER_END_PUSH = QuarterEndPush()
PARTNER_LEAD_BURST = PartnerLeadBurst()
PLANTED_EFFECTS = {
    "segment_win_drop": SEGMENT_WIN_DROP,
    "stuck_early_stage": STUCK_EARLY_DEALS,
    "partner_burst": PARTNER_LEAD_BURST,
}
PLANTED_LABELS = ("",) + tuple(PLANTED_EFFECTS)  # world.deals["planted"] values

# --- Dirty records ----------------------------------------------------------
# Every quality rule is exercised except "a cell does not parse": the
# snapshot is typed, so a text-level corruption belongs to the exporter.
DIRTY_RATE = 0.01  # share of world deals given one dirty kind (planted deals never)
DIRTY_KINDS = {
    "closed_before_created": "closed deal whose closed_date was re-keyed before its created_date",
    "cycle_mismatch": "closed deal whose sales_cycle_days is off from closed_date - created_date",
    "invalid_outcome": "closed deal whose outcome is not Won/Lost (see INVALID_OUTCOMES)",
    "null_amount": "closed deal with an empty deal_amount",
    "null_created_date": "closed deal with an empty created_date",
    "null_outcome": "closed deal (closed_date set) with an empty outcome",
    "missing_dimension": "deal with an empty sales_rep_id or segment field",
    "duplicate": "a stale earlier version of the deal exported beside the current one "
                 "(same deal_id, earlier last_modified; the later row is the truth)",
}
INVALID_OUTCOMES = ("Pending", "TBD", "Unknown", "Closed", "On Hold")   # neither won nor lost, however read
DIRTY_EDIT_LAG_DAYS = (1, 10)  # a corrupting edit lands this long after the close
_CLOSED_KINDS = tuple(DIRTY_KINDS)[:6]  # need a closed deal to show
_DIRTY_NAMES = ("",) + tuple(DIRTY_KINDS)  # code 0: clean
_CODE = {name: code for code, name in enumerate(_DIRTY_NAMES)}
_BLANKABLE = ("sales_rep_id", "industry", "region", "product_type", "lead_source")

# --- The org (invented people) ------------------------------------------
TEAMS = (("Americas", "North America"), ("EMEA", "Europe"), ("APAC", "APAC"), ("India", "India"))
MANAGER_NAMES = ("Claire Donovan", "Henrik Sorensen", "Yuki Tanaka", "Vikram Iyer")
CRO_NAME = "Miriam Castellano"
REP_NAMES = (
    "Avery Lindqvist", "Marcus Okafor", "Priya Raman", "Daniel Whitcombe", "Sofia Marchetti",
    "Kenji Hayashi", "Leah Brennan", "Tomas Ferreira", "Hannah Kowalski", "Ravi Menon",
    "Chloe Dubois", "Ethan Caldwell", "Mei Zhou", "Oliver Strand", "Aisha Bello",
    "Lucas Moreau", "Nina Petrova", "Samuel Adeyemi", "Grace Whitfield", "Arjun Kapoor",
    "Isabel Navarro", "Jonah Feld", "Freya Holm", "Victor Alvarez", "Zara Qureshi",
)
N_REPS = len(REP_NAMES)

_NEVER = 10_000_000  # day number standing for "not (yet) happened"
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class SampleWorld:
    """The full simulated truth, including the future past ``end_date``.

    ``deals`` has one row per deal with its whole lifecycle: the export
    attributes, ``final_stage``/``outcome``/``closed_date``/``sales_cycle_days``
    as they will end (possibly after ``end_date``), ``entered_<stage>`` dates,
    ``win_probability``, ``planted`` (a ``PLANTED_LABELS`` value) and the dirty
    plan (``dirty_kind``, ``dirty_date``, ``dirty_offset``) that ``snapshot``
    applies once the edit has happened."""

    deals: pd.DataFrame
    reps: pd.DataFrame
    activities: pd.DataFrame
    seed: int
    end_date: date
    leaking_amount: bool = False  # a lost deal shows amount 0 once closed (see generate_world)


@dataclass(frozen=True)
class CRMSnapshot:
    """What the CRM shows at a clock time.

    ``deals`` has ``SNAPSHOT_DEAL_COLUMNS``; ``last_modified`` is the date of
    the latest visible change at an office-hours time of day, so it is always
    before the day after the clock and strictly increases when a deal changes.
    Stale duplicate rows sort just before their deal's current row."""

    deals: pd.DataFrame
    stage_history: pd.DataFrame
    activities: pd.DataFrame
    reps: pd.DataFrame


# --- Small helpers ------------------------------------------------------------
def _day(d: date) -> int:
    return (d - _EPOCH).days


def _to_datetime(days: np.ndarray) -> np.ndarray:
    """Day numbers to datetime64[ns]; ``_NEVER`` becomes NaT."""
    days = np.asarray(days, dtype=np.int64)
    never = days >= _NEVER
    out = np.where(never, 0, days).astype("datetime64[D]").astype("datetime64[ns]")
    out[never] = np.datetime64("NaT")
    return out


def _to_days(values: pd.Series) -> np.ndarray:
    """datetime64 column to day numbers; NaT becomes ``_NEVER``."""
    raw = values.to_numpy(dtype="datetime64[ns]")
    days = raw.astype("datetime64[D]").astype(np.int64)
    days[np.isnat(raw)] = _NEVER
    return days


def _format_ids(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded ids without a Python loop (millions of them)."""
    numbers = np.asarray(numbers, dtype=np.int64)
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    buf = np.empty((len(numbers), len(prefix) + width), dtype=np.uint8)
    buf[:, : len(prefix)] = np.frombuffer(prefix.encode(), dtype=np.uint8)
    buf[:, len(prefix):] = (numbers[:, None] // powers) % 10 + ord("0")
    return buf.view(f"S{buf.shape[1]}").ravel().astype(str).astype(object)


def _choose(rng: np.random.Generator, probs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """One categorical draw per element, from row ``rows[i]`` of ``probs``.

    Rows of cumulative probabilities are laid end to end on [0, n_rows) so a
    single searchsorted serves every row."""
    probs = np.asarray(probs, dtype=float)
    probs = probs / probs.sum(axis=1, keepdims=True)
    k = probs.shape[1]
    bounds = (np.arange(len(probs))[:, None] + np.cumsum(probs, axis=1)).ravel()
    rows = np.asarray(rows, dtype=np.int64)
    picked = np.searchsorted(bounds, rows + rng.random(len(rows)), side="right") - rows * k
    return np.clip(picked, 0, k - 1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _codes(values: dict, names: tuple[str, ...]) -> np.ndarray:
    return np.array([values[n] for n in names], dtype=float)


# --- The org ------------------------------------------------------------------
def _email(name: str) -> str:
    return name.lower().replace(" ", ".") + "@example.com"


def build_reps() -> pd.DataFrame:
    """The fixed sales org: 25 reps in four regional teams, one manager each,
    one CRO. Fixed rather than seeded so alert routing is stable across seeds."""
    rep_ids = [f"rep_{i}" for i in range(1, N_REPS + 1)]
    team_idx = [i % len(TEAMS) for i in range(N_REPS)]
    return pd.DataFrame({
        "sales_rep_id": rep_ids,
        "rep_name": list(REP_NAMES),
        "email": [_email(n) for n in REP_NAMES],
        "team": [TEAMS[t][0] for t in team_idx],
        "manager_id": [f"mgr_{t + 1}" for t in team_idx],
        "manager_name": [MANAGER_NAMES[t] for t in team_idx],
        "manager_email": [_email(MANAGER_NAMES[t]) for t in team_idx],
        "cro_id": "cro_1",
        "cro_name": CRO_NAME,
        "cro_email": _email(CRO_NAME),
        "region": [TEAMS[t][1] for t in team_idx],
    })[list(REP_COLUMNS)]


def _rep_model(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-rep win skill (log-odds) and share of volume."""
    skill = rng.normal(0.0, REP_SKILL_NOISE, N_REPS)
    for rep in STRONG_REPS:
        skill[int(rep.split("_")[1]) - 1] = REP_SKILL_LOGIT
    for rep in WEAK_REPS:
        skill[int(rep.split("_")[1]) - 1] = -REP_SKILL_LOGIT
    volume = rng.gamma(20.0, 1 / 20.0, N_REPS)
    return skill, volume


def _rep_probs_by_region(volume: np.ndarray) -> np.ndarray:
    """P(rep | deal region): mostly the region's own team, some cross-cover."""
    team = np.arange(N_REPS) % len(TEAMS)
    every = volume / volume.sum()
    probs = np.empty((len(REGIONS), N_REPS))
    for r, region in enumerate(REGIONS):
        own = np.where(team == [t[1] for t in TEAMS].index(region), volume, 0.0)
        probs[r] = TEAM_AFFINITY * own / own.sum() + (1 - TEAM_AFFINITY) * every
    return probs


# --- Volumes ------------------------------------------------------------------
def _day_weights(first: int, n_days: int, start: int) -> np.ndarray:
    """Creation intensity per day: linear growth times a weekday pattern."""
    days = np.arange(first, first + n_days)
    growth = 1.0 + VOLUME_GROWTH * (days - start) / HISTORY_DAYS
    weekday = np.asarray(WEEKDAY_VOLUME)[(days + 3) % 7]  # 1970-01-01 was a Thursday
    return growth * weekday


@dataclass(frozen=True)
class _Timeline:
    """Day numbers and creation weights: before go-live, history, horizon."""

    start: int  # go-live: first day of the history
    end: int
    pre: np.ndarray
    hist: np.ndarray
    horizon: np.ndarray

    @classmethod
    def of(cls, end_date: date) -> "_Timeline":
        end = _day(end_date)
        start = end - HISTORY_DAYS + 1
        pre = _day_weights(start - MIGRATED_DAYS, MIGRATED_DAYS, start)
        return cls(start, end, pre, _day_weights(start, HISTORY_DAYS, start),
                   _day_weights(end + 1, SAMPLE_HORIZON_DAYS, start))

    def burst_share(self) -> float:
        """Extra partner deals of the burst per history deal."""
        window = self.hist[-PARTNER_LEAD_BURST.window_days:].sum() / self.hist.sum()
        share = LEAD_SOURCE_WEIGHTS[LEAD_SOURCES.index(PARTNER_LEAD_BURST.lead_source)]
        return (PARTNER_LEAD_BURST.rate_multiplier - 1) * share * window


@dataclass(frozen=True)
class _Counts:
    base: int
    future: int
    burst: int
    stuck: int


def _draw_days(rng: np.random.Generator, weights: np.ndarray, first: int, n: int) -> np.ndarray:
    return first + rng.choice(len(weights), size=n, p=weights / weights.sum())


def _migrated_deals(rng: np.random.Generator, t: _Timeline, n_deals: int, n_stuck: int,
                    rep_probs: np.ndarray, rep_skill: np.ndarray) -> tuple[dict, float]:
    """Deals created before go-live that were still open at go-live (the
    imported pipeline), and the rate (deals per unit of day weight) that the
    rest must follow for exactly ``n_deals`` deals by the end date.

    A pool is drawn at an upper-bound rate, its lifecycles simulated, and it
    is thinned to the final rate, so close-date metrics are stationary from
    go-live on instead of starting with a burst of fast (mostly won) closes."""
    hist = t.hist.sum() * (1 + t.burst_share())
    upper = (n_deals - n_stuck) / hist
    pool = _base_deals(rng, t.pre, t.start - MIGRATED_DAYS, int(round(upper * t.pre.sum())), rep_probs)
    _lifecycle(rng, pool, rep_skill)
    alive = pool["closed"] >= t.start
    survival = alive.mean() if len(alive) else 0.0
    rate = (n_deals - n_stuck) / (hist + survival * t.pre.sum())
    keep = alive & (rng.random(len(alive)) < rate / upper)
    return {k: v[keep] for k, v in pool.items()}, rate


def _counts(t: _Timeline, n_deals: int, n_stuck: int, n_migrated: int, rate: float) -> _Counts:
    """Deals of each kind so that exactly ``n_deals`` exist by the end date."""
    burst = int(round(rate * t.hist.sum() * t.burst_share()))
    base = max(n_deals - n_stuck - n_migrated - burst, 0)
    return _Counts(base, int(round(rate * t.horizon.sum())), burst, n_stuck)


# --- Deal attributes ----------------------------------------------------------
def _industry_probs(exclude_target: bool = False) -> np.ndarray:
    """P(industry | region); Europe leans FinTech."""
    probs = np.tile(np.asarray(INDUSTRY_WEIGHTS, dtype=float), (len(REGIONS), 1))
    eu, fin = REGIONS.index("Europe"), INDUSTRIES.index("FinTech")
    others = np.delete(probs[eu], fin)
    probs[eu] = np.insert(others / others.sum() * (1 - EUROPE_FINTECH_SHARE), fin, EUROPE_FINTECH_SHARE)
    if exclude_target:
        probs[REGIONS.index(SEGMENT_WIN_DROP.region), INDUSTRIES.index(SEGMENT_WIN_DROP.industry)] = 0.0
    return probs


def _amounts(rng: np.random.Generator, product: np.ndarray, factor: float = 1.0) -> np.ndarray:
    median = _codes(AMOUNT_MEDIAN_BY_PRODUCT, PRODUCT_TYPES)[product] * factor
    amount = median * np.exp(AMOUNT_SIGMA * rng.standard_normal(len(product)))
    return np.round(np.clip(amount, *AMOUNT_RANGE))


def _attributes(rng: np.random.Generator, n: int, created: np.ndarray, rep_probs: np.ndarray, *,
                lead: int | None = None, product_p: tuple[float, ...] = PRODUCT_WEIGHTS,
                exclude_target: bool = False) -> dict:
    """Segment, product, lead source and rep codes of ``n`` new deals."""
    one_row = np.zeros(n, dtype=np.int64)
    region = _choose(rng, np.atleast_2d(REGION_WEIGHTS), one_row)
    industry = _choose(rng, _industry_probs(exclude_target), region)
    product = _choose(rng, np.atleast_2d(product_p), one_row)
    if lead is None:
        lead = _choose(rng, np.atleast_2d(LEAD_SOURCE_WEIGHTS), one_row)
    rep = _choose(rng, rep_probs, region)
    return {"created": np.asarray(created, dtype=np.int64), "region": region, "industry": industry,
            "product": product, "lead": np.broadcast_to(lead, n).astype(np.int64), "rep": rep,
            "planted": np.zeros(n, dtype=np.int64), "logit_shift": np.zeros(n)}


def _base_deals(rng: np.random.Generator, weights: np.ndarray, first: int, n: int,
                rep_probs: np.ndarray) -> dict:
    deals = _attributes(rng, n, _draw_days(rng, weights, first, n), rep_probs)
    deals["amount"] = _amounts(rng, deals["product"])
    return deals


def _burst_deals(rng: np.random.Generator, t: _Timeline, n: int, rep_probs: np.ndarray) -> dict:
    """Extra partner leads in the burst window, skewed to weak reps and small deals."""
    b = PARTNER_LEAD_BURST
    created = _draw_days(rng, t.hist[-b.window_days:], t.end - b.window_days + 1, n)
    deals = _attributes(rng, n, created, rep_probs, lead=LEAD_SOURCES.index(b.lead_source),
                        product_p=b.product_weights, exclude_target=True)
    weak = np.array([int(r.split("_")[1]) - 1 for r in WEAK_REPS])
    to_weak = rng.random(n) < b.weak_rep_share
    deals["rep"] = np.where(to_weak, weak[rng.integers(0, len(weak), n)], deals["rep"])
    deals["amount"] = _amounts(rng, deals["product"], b.amount_factor)
    deals["planted"][:] = PLANTED_LABELS.index("partner_burst")
    deals["logit_shift"][:] = b.win_logit_penalty
    return deals


def _stuck_deals(rng: np.random.Generator, t: _Timeline, n: int, rep_probs: np.ndarray) -> dict:
    """Deals that will stall; their lifecycle is set by ``_plant_stuck``."""
    s = STUCK_EARLY_DEALS
    oldest, newest = s.created_days_before_end
    created = t.end - rng.integers(newest, oldest + 1, n)
    deals = _attributes(rng, n, created, rep_probs)
    deals["amount"] = _amounts(rng, deals["product"])
    large = np.arange(n) < int(round(s.large_share * n))
    deals["product"] = np.where(large, PRODUCT_TYPES.index("Enterprise"), deals["product"])
    big = np.round(rng.uniform(*s.large_amount_range, n))
    deals["amount"] = np.where(large, big, deals["amount"])
    deals["planted"][:] = PLANTED_LABELS.index("stuck_early_stage")
    return deals


def _concat(parts: list[dict]) -> dict:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


# --- Lifecycle ------------------------------------------------------------------
def _win_probability(deals: dict, rep_skill: np.ndarray) -> np.ndarray:
    logit = (BASE_WIN_LOGIT
             + _codes(LEAD_SOURCE_WIN_LOGIT, LEAD_SOURCES)[deals["lead"]]
             + _codes(INDUSTRY_WIN_LOGIT, INDUSTRIES)[deals["industry"]]
             + rep_skill[deals["rep"]]
             + AMOUNT_WIN_LOGIT_PER_LOG * (np.log(deals["amount"]) - np.log(14_000.0))
             + deals["logit_shift"])
    return _sigmoid(logit)


def _cycles(rng: np.random.Generator, won: np.ndarray, lost_stage: np.ndarray,
            product: np.ndarray) -> np.ndarray:
    """Won deals close fast; a lost deal's cycle depends on where it died.
    Product size stretches everything but early disqualifications."""
    factor = _codes(PRODUCT_CYCLE_FACTOR, PRODUCT_TYPES)[product]
    late = lost_stage >= 2
    median = np.where(won, WON_CYCLE_MEDIAN_DAYS * factor,
                      np.asarray(LOST_CYCLE_MEDIAN_DAYS)[lost_stage] * np.where(late, factor, 1.0))
    upper = np.where(won, CYCLE_RANGE[1], np.asarray(LOST_CYCLE_MAX_DAYS)[lost_stage])
    cycle = np.round(median * np.exp(CYCLE_SIGMA * rng.standard_normal(len(won))))
    return np.clip(cycle, CYCLE_RANGE[0], upper).astype(np.int64)


def _split_cycle(rng: np.random.Generator, cycle: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Days spent in each of the first ``k`` open stages, summing to the cycle,
    at least one day each, early stages capped at ``EARLY_STAGE_MAX_DAYS``."""
    n = len(cycle)
    col = np.arange(4)[None, :]
    used = col < k[:, None]
    w = rng.gamma(np.asarray(STAGE_DWELL_SHAPE), size=(n, 4)) * used
    w /= w.sum(axis=1, keepdims=True)
    seg = (1 + np.floor(w * (cycle - k)[:, None]).astype(np.int64)) * used
    last = k - 1
    seg[np.arange(n), last] = 0
    seg[np.arange(n), last] = cycle - seg.sum(axis=1)
    return _cap_early(seg, cycle, k)


def _cap_early(seg: np.ndarray, cycle: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Keep Qualified and Demo within ``EARLY_STAGE_MAX_DAYS`` (lost-early
    cycles are short enough for that to fit) without changing the cycle."""
    cap = EARLY_STAGE_MAX_DAYS
    long = k >= 3  # excess early time moves into Proposal
    excess = np.maximum(seg[:, :2] - cap, 0) * long[:, None]
    seg[:, :2] -= excess
    seg[:, 2] += excess.sum(axis=1)
    two = k == 2  # cycle <= 2 * cap: balance Qualified and Demo
    first = np.clip(seg[:, 0], cycle - cap, cap)
    seg[:, 0] = np.where(two, first, seg[:, 0])
    seg[:, 1] = np.where(two, cycle - first, seg[:, 1])
    return seg


def _lifecycle(rng: np.random.Generator, deals: dict, rep_skill: np.ndarray) -> None:
    """Outcome, cycle, stage path and stage entry dates for every deal."""
    n = len(deals["created"])
    deals["p_win"] = _win_probability(deals, rep_skill)
    won = rng.random(n) < deals["p_win"]
    burst = deals["planted"] == PLANTED_LABELS.index("partner_burst")
    lost_stage = _choose(rng, np.array([LOST_STAGE_WEIGHTS, PARTNER_LEAD_BURST.lost_stage_weights]),
                         burst.astype(np.int64))
    cycle = _cycles(rng, won, lost_stage, deals["product"])
    k = np.where(won, 4, lost_stage + 1)
    seg = _split_cycle(rng, cycle, k)
    offsets = np.cumsum(seg, axis=1) - seg
    entries = deals["created"][:, None] + offsets
    entries[np.arange(4)[None, :] >= k[:, None]] = _NEVER
    deals.update(won=won, final_stage=np.where(won, 4, lost_stage), cycle=cycle,
                 closed=deals["created"] + cycle, entries=entries)


def _push_to_quarter_end(rng: np.random.Generator, deals: dict, p: QuarterEndPush) -> None:
    """Move pushed wins to the quarter's last days (never past the longest cycle)."""
    closed, n = deals["closed"], len(deals["closed"])
    months = np.minimum(closed, _day(date(9999, 1, 1))).astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    in_quarter = (months - (p.fiscal_start_month - 1)) % 3   # 0 in a quarter's first month
    quarter_end = (months - in_quarter + 3).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64) - 1
    target = np.maximum(quarter_end - rng.integers(0, p.last_days, n), closed)
    push = (deals["won"] & (in_quarter < 2) & (rng.random(n) < p.share)
            & (target - deals["created"] <= CYCLE_RANGE[1]))
    deals["closed"] = np.where(push, target, closed)
    deals["cycle"] = deals["closed"] - deals["created"]


def _plant_segment_drop(rng: np.random.Generator, deals: dict, t: _Timeline) -> None:
    """Flip enough of the segment's wins to losses (keeping their timing, lost
    late to a competitor) that exactly ``win_rate`` of its closes in the
    window are won; the same rate holds for its closes in the horizon."""
    d = SEGMENT_WIN_DROP
    start = t.end - d.window_days + 1
    seg = ((deals["industry"] == INDUSTRIES.index(d.industry))
           & (deals["region"] == REGIONS.index(d.region))
           & (deals["closed"] >= start) & (deals["planted"] == 0))
    keys = rng.random(len(seg))
    late_stage = np.where(rng.random(len(seg)) < 0.3, 2, 3)
    flip = np.zeros(len(seg), dtype=bool)
    for group in (seg & (deals["closed"] <= t.end), seg & (deals["closed"] > t.end)):
        wins = np.flatnonzero(group & deals["won"])
        n_flip = max(0, len(wins) - int(round(d.win_rate * group.sum())))
        flip[wins[np.argsort(keys[wins], kind="stable")[:n_flip]]] = True
    deals["won"] = deals["won"] & ~flip
    deals["final_stage"] = np.where(flip, late_stage, deals["final_stage"])
    deals["entries"][flip & (late_stage == 2), 3] = _NEVER
    deals["planted"][seg] = PLANTED_LABELS.index("segment_win_drop")


def _plant_stuck(rng: np.random.Generator, deals: dict, t: _Timeline) -> None:
    """Stuck deals sit in Qualified or Demo, then are closed Lost in a
    clean-up after the end date (cycle still within ``CYCLE_RANGE``)."""
    rows = np.flatnonzero(deals["planted"] == PLANTED_LABELS.index("stuck_early_stage"))
    created = deals["created"][rows]
    in_demo = rng.random(len(rows)) < 0.5
    demo = np.where(in_demo, created + rng.integers(2, 11, len(rows)), _NEVER)
    lo = np.maximum(150, t.end + 15 - created)
    cycle = np.floor(lo + rng.random(len(rows)) * (CYCLE_RANGE[1] + 1 - lo)).astype(np.int64)
    deals["entries"][rows] = _NEVER
    deals["entries"][rows, 0] = created
    deals["entries"][rows, 1] = demo
    deals["won"][rows] = False
    deals["final_stage"][rows] = in_demo.astype(np.int64)
    deals["cycle"][rows] = cycle
    deals["closed"][rows] = created + cycle


# --- Options shaped like real CRMs ---------------------------------------------
LINGER_NEVER_SHARE = 0.5            # of the lingering deals, these are never closed; the rest ...
LINGER_CLEANUP_DAYS = (90, 360)     # ... are closed Lost this long after they would have been


def _linger(rng: np.random.Generator, deals: dict, share: float) -> None:
    """Real CRMs are full of deals nobody closes: ``share`` of the deals that
    would be lost instead linger in the stage where they died. Half are never
    closed; the others are closed Lost in a clean-up months later. They go
    quiet as lost deals do, so only their age and silence give them away."""
    lingering = (deals["planted"] == 0) & ~deals["won"] & (rng.random(len(deals["won"])) < share)
    never = lingering & (rng.random(len(lingering)) < LINGER_NEVER_SHARE)
    delay = rng.integers(LINGER_CLEANUP_DAYS[0], LINGER_CLEANUP_DAYS[1] + 1, len(lingering))
    deals["closed"] = np.where(never, _NEVER, np.where(lingering, deals["closed"] + delay, deals["closed"]))
    deals["lingering"] = lingering


def _sort_by_creation(rng: np.random.Generator, deals: dict) -> dict:
    """Deal ids follow creation order, as a CRM's sequence would."""
    order = np.lexsort((rng.random(len(deals["created"])), deals["created"]))
    return {k: v[order] for k, v in deals.items()}


# --- Dirty plan -------------------------------------------------------------
def _pick(keys: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    """``n`` random rows among ``mask`` (by ascending random key)."""
    rows = np.flatnonzero(mask)
    return rows[np.argsort(keys[rows], kind="stable")[:n]]


def _plan_dirty(rng: np.random.Generator, deals: dict, world_end: int) -> None:
    """Give ``DIRTY_RATE`` of the unplanted deals one dirty kind each (equal
    shares), the date the corruption shows and a kind-specific offset.

    Closed-deal corruptions land days after the close (a later edit, so it
    moves ``last_modified``); a missing field was never entered; a duplicate
    shows whenever the deal has an older version."""
    n = len(deals["created"])
    per_kind = int(round(DIRTY_RATE * n / len(DIRTY_KINDS)))
    lag = rng.integers(DIRTY_EDIT_LAG_DAYS[0], DIRTY_EDIT_LAG_DAYS[1] + 1, n)
    keys = rng.random((3, n))  # fresh keys per pick so earlier picks do not bias later ones
    clean = deals["planted"] == 0
    kind = np.zeros(n, dtype=np.int64)
    closed_rows = _pick(keys[0], clean & (deals["closed"] + lag <= world_end), per_kind * len(_CLOSED_KINDS))
    kind[closed_rows] = 1 + np.arange(len(closed_rows)) // max(per_kind, 1)
    for i, name in enumerate(("missing_dimension", "duplicate"), start=1):
        kind[_pick(keys[i], clean & (kind == 0), per_kind)] = _CODE[name]
    magnitude = rng.integers(3, 31, n)
    sign = np.where(rng.random(n) < 0.5, -1, 1)
    offset = np.where(kind == _CODE["cycle_mismatch"], sign * magnitude, magnitude)
    dirty_date = np.where(kind == 0, _NEVER, deals["closed"] + lag)
    dirty_date = np.where(kind == _CODE["missing_dimension"], deals["created"], dirty_date)
    dirty_date = np.where(kind == _CODE["duplicate"], _NEVER, dirty_date)
    deals.update(dirty_kind=kind, dirty_date=dirty_date, dirty_offset=offset)


# --- Activities -----------------------------------------------------------
def _activities(rng: np.random.Generator, deals: dict, deal_ids: np.ndarray, rep_ids: np.ndarray,
                world_end: int) -> pd.DataFrame:
    """Calls, emails and meetings over each deal's active life. Won deals see
    more meetings; lost deals go quiet before they are lost; stuck deals go
    quiet days after entering their stage."""
    won = deals["won"]
    stuck = deals["planted"] == PLANTED_LABELS.index("stuck_early_stage")
    active_end = np.where(won, deals["closed"],
                          deals["created"] + np.ceil(LOST_ACTIVE_SHARE * deals["cycle"]).astype(np.int64))
    stage_entry = np.where(deals["entries"][:, 1] < _NEVER, deals["entries"][:, 1], deals["entries"][:, 0])
    quiet = stage_entry + rng.integers(2, 8, len(won))
    active_end = np.minimum(np.where(stuck, quiet, active_end), world_end)
    span = np.maximum(active_end - deals["created"], 0)
    rate = np.where(won, ACTIVITY_RATE_PER_DAY["Won"], ACTIVITY_RATE_PER_DAY["Lost"])
    count = 1 + rng.poisson(rate * span)
    owner = np.repeat(np.arange(len(won)), count)
    day = deals["created"][owner] + np.floor(rng.random(len(owner)) * (span[owner] + 1)).astype(np.int64)
    kind = _choose(rng, np.array([ACTIVITY_TYPE_WEIGHTS["Lost"], ACTIVITY_TYPE_WEIGHTS["Won"]]),
                   won[owner].astype(np.int64))
    order = np.lexsort((owner, day))
    width = max(7, len(str(len(owner))))
    return pd.DataFrame({
        "activity_id": _format_ids("A", np.arange(1, len(owner) + 1), width),
        "deal_id": deal_ids[owner[order]],
        "sales_rep_id": rep_ids[deals["rep"][owner[order]]],
        "activity_type": np.asarray(ACTIVITY_TYPES, dtype=object)[kind[order]],
        "activity_date": _to_datetime(day[order]),
    })


def _empty_activities() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in ACTIVITY_COLUMNS[:-1]})
    return frame.assign(activity_date=pd.Series(dtype="datetime64[ns]"))


# --- World assembly -------------------------------------------------------------
def _deal_frame(deals: dict, deal_ids: np.ndarray, rep_ids: np.ndarray) -> pd.DataFrame:
    pick = lambda names, codes: np.asarray(names, dtype=object)[codes]  # noqa: E731
    frame = pd.DataFrame({
        "deal_id": deal_ids,
        "created_date": _to_datetime(deals["created"]),
        "closed_date": _to_datetime(deals["closed"]),
        "sales_rep_id": rep_ids[deals["rep"]],
        "industry": pick(INDUSTRIES, deals["industry"]),
        "region": pick(REGIONS, deals["region"]),
        "product_type": pick(PRODUCT_TYPES, deals["product"]),
        "lead_source": pick(LEAD_SOURCES, deals["lead"]),
        "final_stage": pick(STAGES, deals["final_stage"]),
        "deal_amount": deals["amount"].astype(float),
        "sales_cycle_days": np.where(deals["closed"] < _NEVER, deals["closed"] - deals["created"], np.nan),
        "outcome": np.where(deals["won"], "Won", np.where(deals["closed"] < _NEVER, "Lost", "Open")).astype(object),
        "win_probability": deals["p_win"],
    })
    for j, stage in enumerate(OPEN_STAGES):
        frame[f"entered_{stage.lower()}"] = _to_datetime(deals["entries"][:, j])
    if "lingering" in deals:  # only worlds with lingering deals carry the marker
        frame["lingering"] = deals["lingering"]
    frame["planted"] = pick(PLANTED_LABELS, deals["planted"])
    frame["dirty_kind"] = pick(_DIRTY_NAMES, deals["dirty_kind"])
    frame["dirty_date"] = _to_datetime(deals["dirty_date"])
    frame["dirty_offset"] = deals["dirty_offset"]
    return frame


def generate_world(n_deals: int = 6000, seed: int = 42, end_date: date = SAMPLE_END_DATE,
                   with_activities: bool = True, quarter_end_seasonality: bool = False,
                   never_close_share: float = 0.0, leaking_amount: bool = False,
                   quarter_end_last_days: int | None = None, fiscal_year_start_month: int = 1) -> SampleWorld:
    """Simulate the sample CRM's truth: ``n_deals`` deals created in the
    ~18 months up to ``end_date``, plus the deals created during the horizon.
    Deals are identical whether or not activities are generated.

    Options shaped like real CRMs (off by default; the default world does not
    change): ``quarter_end_seasonality``: wins bunch up at quarter ends
    (``QuarterEndPush``; ``quarter_end_last_days`` narrows where pushed wins
    land, e.g. 3: the quarter's last three days, the spike many real CRMs
    show; ``fiscal_year_start_month`` moves the quarters, 2 for a fiscal
    year starting in February); ``never_close_share`` of the would-be-lost deals
    linger open for months or forever (outcome "Open" in the truth when never
    closed); ``leaking_amount`` exports a lost deal's amount as 0, as CRMs
    that store the closed value do."""
    if not 0 <= never_close_share < 1:
        raise ValueError("never_close_share must be in [0, 1)")
    if n_deals < 1:
        raise ValueError("n_deals must be at least 1")
    rng = np.random.default_rng(seed)
    t = _Timeline.of(end_date)
    rep_skill, rep_volume = _rep_model(rng)
    rep_probs = _rep_probs_by_region(rep_volume)
    n_stuck = min(STUCK_EARLY_DEALS.count(n_deals), n_deals // 10)
    migrated, rate = _migrated_deals(rng, t, n_deals, n_stuck, rep_probs, rep_skill)
    n = _counts(t, n_deals, n_stuck, len(migrated["created"]), rate)
    deals = _concat([_base_deals(rng, t.hist, t.start, n.base, rep_probs),
                     _base_deals(rng, t.horizon, t.end + 1, n.future, rep_probs),
                     _burst_deals(rng, t, n.burst, rep_probs), _stuck_deals(rng, t, n.stuck, rep_probs)])
    _lifecycle(rng, deals, rep_skill)
    deals = _concat([migrated, deals])
    if quarter_end_seasonality:
        push = QUARTER_END_PUSH
        _push_to_quarter_end(rng, deals, replace(push, last_days=quarter_end_last_days or push.last_days,
                                                 fiscal_start_month=fiscal_year_start_month))
    _plant_segment_drop(rng, deals, t)
    _plant_stuck(rng, deals, t)
    if never_close_share:
        _linger(np.random.default_rng([seed, 1]), deals, never_close_share)  # own stream: the rest stays as is
    deals = _sort_by_creation(rng, deals)
    world_end = t.end + SAMPLE_HORIZON_DAYS
    _plan_dirty(rng, deals, world_end)

    n = len(deals["created"])
    deal_ids = _format_ids("D", np.arange(1, n + 1), max(5, len(str(n))))
    reps = build_reps()
    rep_ids = reps["sales_rep_id"].to_numpy(dtype=object)
    activities = (_activities(rng, deals, deal_ids, rep_ids, world_end) if with_activities
                  else _empty_activities())
    return SampleWorld(deals=_deal_frame(deals, deal_ids, rep_ids), reps=reps,
                       activities=activities, seed=seed, end_date=end_date, leaking_amount=leaking_amount)


# --- Observation: the CRM at a clock ------------------------------------------
def _world_arrays(world: SampleWorld) -> dict:
    d = world.deals
    entries = np.column_stack([_to_days(d[f"entered_{s.lower()}"]) for s in OPEN_STAGES])
    return {
        "created": _to_days(d["created_date"]),
        "closed": _to_days(d["closed_date"]),
        "entries": entries,
        "won": (d["outcome"] == "Won").to_numpy(),
        "final_stage": pd.Categorical(d["final_stage"], categories=STAGES).codes.astype(np.int64),
        "dirty_kind": pd.Categorical(d["dirty_kind"], categories=_DIRTY_NAMES).codes.astype(np.int64),
        "dirty_date": _to_days(d["dirty_date"]),
        "dirty_offset": d["dirty_offset"].to_numpy(),
    }


def _state_at(a: dict, rows: np.ndarray, clock: np.ndarray) -> dict:
    """The clean CRM state of ``rows`` at per-row ``clock`` day numbers."""
    entries = a["entries"][rows]
    closed_day = a["closed"][rows]
    is_closed = closed_day <= clock
    current = (entries <= clock[:, None]).sum(axis=1) - 1
    final = a["final_stage"][rows]
    won = a["won"][rows]
    stage = np.where(is_closed, final, current)
    entered_open = entries[np.arange(len(rows)), np.minimum(stage, 3)]
    entered = np.where(is_closed & won, closed_day, entered_open)
    created = a["created"][rows]
    return {
        "created": created,
        "closed": np.where(is_closed, closed_day, _NEVER),
        "stage": stage,
        "amount_nan": np.zeros(len(rows), dtype=bool),
        "cycle": np.where(is_closed, closed_day - created, np.nan),
        "outcome": np.where(is_closed, np.where(won, "Won", "Lost"), "Open").astype(object),
        "modified": np.where(is_closed, closed_day, entered_open),
        "entered": entered,
        "blank": np.full(len(rows), -1),
    }


def _corrupt(state: dict, a: dict, rows: np.ndarray, clock: int) -> np.ndarray:
    """Apply the dirty edits that have happened by ``clock``; returns the mask."""
    kind = a["dirty_kind"][rows]
    offset = a["dirty_offset"][rows]
    needs_close = (kind >= 1) & (kind <= len(_CLOSED_KINDS))
    hit = (kind >= 1) & (a["dirty_date"][rows] <= clock) & (~needs_close | (state["closed"] < _NEVER))
    is_kind = lambda name: hit & (kind == _CODE[name])  # noqa: E731
    early = is_kind("closed_before_created")
    state["closed"] = np.where(early, state["created"] - offset, state["closed"])
    state["cycle"] = np.where(early, -offset, state["cycle"])
    state["cycle"] = np.where(is_kind("cycle_mismatch"), state["cycle"] + offset, state["cycle"])
    bad = is_kind("invalid_outcome")
    state["outcome"][bad] = np.asarray(INVALID_OUTCOMES, dtype=object)[offset[bad] % len(INVALID_OUTCOMES)]
    state["outcome"][is_kind("null_outcome")] = None
    state["amount_nan"] = is_kind("null_amount")
    state["created"] = np.where(is_kind("null_created_date"), _NEVER, state["created"])
    blank = is_kind("missing_dimension")
    state["blank"] = np.where(blank, offset % len(_BLANKABLE), -1)
    state["modified"] = np.where(hit, np.maximum(state["modified"], a["dirty_date"][rows]), state["modified"])
    return hit


def _stale_copies(a: dict, rows: np.ndarray, state: dict) -> tuple[np.ndarray, dict]:
    """For duplicate-kind deals that have changed since creation: their state
    the day before their latest change (an older export row)."""
    dup = (a["dirty_kind"][rows] == _CODE["duplicate"]) & (state["modified"] > a["created"][rows])
    dup_rows = rows[dup]
    return dup_rows, _state_at(a, dup_rows, state["modified"][dup] - 1)


def _time_of_day(row: np.ndarray, day: np.ndarray) -> np.ndarray:
    """A deterministic office-hours time for a change (seconds after midnight)."""
    mixed = (row.astype(np.int64) * 7919 + day.astype(np.int64) * 104_729) % 32_400
    return 8 * 3600 + mixed


def _snapshot_frame(world: SampleWorld, rows: np.ndarray, state: dict) -> pd.DataFrame:
    d = world.deals
    amount = d["deal_amount"].to_numpy()[rows].copy()
    amount[state["amount_nan"]] = np.nan
    if world.leaking_amount:
        amount[state["outcome"] == "Lost"] = 0.0
    modified = (_to_datetime(state["modified"])
                + _time_of_day(rows, state["modified"]).astype("timedelta64[s]"))
    frame = pd.DataFrame({
        "deal_id": d["deal_id"].to_numpy()[rows],
        "created_date": _to_datetime(state["created"]),
        "closed_date": _to_datetime(state["closed"]),
        "sales_rep_id": d["sales_rep_id"].to_numpy()[rows],
        "industry": d["industry"].to_numpy()[rows],
        "region": d["region"].to_numpy()[rows],
        "product_type": d["product_type"].to_numpy()[rows],
        "lead_source": d["lead_source"].to_numpy()[rows],
        "deal_stage": np.asarray(STAGES, dtype=object)[state["stage"]],
        "deal_amount": amount,
        "sales_cycle_days": state["cycle"].astype(float),
        "outcome": state["outcome"],
        "last_modified": modified.astype("datetime64[ns]"),
        "stage_entered_date": _to_datetime(state["entered"]),
    })
    for j, col in enumerate(_BLANKABLE):
        frame.loc[state["blank"] == j, col] = None
    return frame


def _stage_history(world: SampleWorld, a: dict, rows: np.ndarray, clock: int) -> pd.DataFrame:
    """Every stage entered by ``clock``; a won deal's close enters Closed."""
    entered = np.column_stack([a["entries"][rows], np.where(a["won"][rows], a["closed"][rows], _NEVER)])
    hit, stage = np.nonzero(entered <= clock)  # row-major: by deal, then stage
    return pd.DataFrame({
        "deal_id": world.deals["deal_id"].to_numpy()[rows[hit]],
        "stage": np.asarray(STAGES, dtype=object)[stage],
        "entered_date": _to_datetime(entered[hit, stage]),
    })


def _check_clock(world: SampleWorld, clock: date | None) -> date:
    clock = world.end_date if clock is None else clock
    if not isinstance(clock, date) or isinstance(clock, datetime):
        clock = pd.Timestamp(clock).date()
    limit = world.end_date + timedelta(days=SAMPLE_HORIZON_DAYS)
    if clock > limit:
        raise ValueError(f"clock {clock} is past the simulated horizon ({limit})")
    return clock


@dataclass(frozen=True)
class _Observation:
    clock: int
    arrays: dict
    rows: np.ndarray      # world rows of the deals created by the clock
    state: dict           # their state, dirty edits applied
    dirty: np.ndarray     # which of them show a dirty edit
    dup_rows: np.ndarray  # world rows that also show a stale older version
    stale: dict           # the state of those older versions


def _observe(world: SampleWorld, clock: date | None) -> _Observation:
    c = _day(_check_clock(world, clock))
    a = _world_arrays(world)
    rows = np.flatnonzero(a["created"] <= c)
    state = _state_at(a, rows, np.full(len(rows), c))
    dup_rows, stale = _stale_copies(a, rows, state)
    dirty = _corrupt(state, a, rows, c)
    return _Observation(c, a, rows, state, dirty, dup_rows, stale)


def snapshot(world: SampleWorld, clock: date | None = None) -> CRMSnapshot:
    """What the CRM shows at ``clock`` (default: the world's end date): deals
    created by then in their state as of then, dirty rows included (a stale
    duplicate sorts before its current row), plus the stage history,
    activities and the org."""
    o = _observe(world, clock)
    deals = pd.concat([_snapshot_frame(world, o.rows, o.state), _snapshot_frame(world, o.dup_rows, o.stale)],
                      ignore_index=True)
    position = np.concatenate([o.rows, o.dup_rows])
    deals = deals.iloc[np.lexsort((deals["last_modified"].to_numpy(), position))].reset_index(drop=True)
    activities = world.activities
    activities = activities[activities["activity_date"] <= pd.Timestamp(_EPOCH + timedelta(days=o.clock))]
    return CRMSnapshot(deals=deals[list(SNAPSHOT_DEAL_COLUMNS)],
                       stage_history=_stage_history(world, o.arrays, o.rows, o.clock),
                       activities=activities.reset_index(drop=True), reps=world.reps.copy())


def dirty_records(world: SampleWorld, clock: date | None = None) -> pd.DataFrame:
    """deal_id and dirty kind of every deal that shows a dirty row in
    ``snapshot(world, clock)``: the answer key for data-quality tests."""
    o = _observe(world, clock)
    found = np.concatenate([o.rows[o.dirty], o.dup_rows])
    codes = np.concatenate([o.arrays["dirty_kind"][o.rows[o.dirty]],
                            np.full(len(o.dup_rows), _CODE["duplicate"])])
    order = np.argsort(found, kind="stable")
    return pd.DataFrame({"deal_id": world.deals["deal_id"].to_numpy()[found[order]],
                         "kind": np.asarray(_DIRTY_NAMES, dtype=object)[codes[order]]})
