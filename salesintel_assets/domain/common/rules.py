"""The business rules file: one versioned YAML, validated on load.

A bad rules file must be a clear error at start, never a silent default, so
every section forbids unknown keys and validates its values.
"""

from __future__ import annotations

import re
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SUPPORTED_VERSIONS = (1,)

# A CRM writes one stage many ways: "Closed Won", "closed_won", "Closed-Won",
# "closedwon" (HubSpot's internal ids), "Closed  Won". Names are compared on
# their letters and digits only, lower-cased; STAGE_KEY_SQL does the same in DuckDB.
_NOT_LETTER_OR_DIGIT = re.compile(r"[\W_]+")
STAGE_KEY_SQL = "regexp_replace(lower(coalesce({column}, '')), '[^\\pL\\pN]+', '', 'g')"


def stage_key(name) -> str:
    """A stage name as compared: lower-case letters and digits only."""
    return _NOT_LETTER_OR_DIGIT.sub("", str(name).lower())


def stage_keys(values: pd.Series) -> pd.Series:
    """``stage_key`` of every value ("" for a missing one), computed once per
    distinct value: a column of a million deals holds few of them."""
    codes, names = pd.factorize(values)
    return pd.Series(np.array([stage_key(n) for n in names] + [""], dtype=object)[codes], index=values.index,
                     dtype=object)


class RulesError(ValueError):
    """The rules file is missing, unreadable or invalid."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StageRules(Section):
    """``order`` is the canonical pipeline; ``names`` maps the CRM's own
    stage names onto it, and ``won`` / ``lost`` name the CRM stages that mean
    the deal closed that way (matched without regard to case)."""

    order: list[str] = Field(min_length=2)
    # A CRM's own stage names (e.g. HubSpot pipeline labels) -> a stage of ``order``.
    names: dict[str, str] = Field(default_factory=dict)
    won: list[str] = Field(default_factory=list)
    lost: list[str] = Field(default_factory=list)

    @field_validator("order")
    @classmethod
    def _unique(cls, order: list[str]) -> list[str]:
        if len(set(order)) != len(order):
            raise ValueError("stage names must be unique")
        return order

    @model_validator(mode="after")
    def _names_map_to_stages(self) -> "StageRules":
        unknown = sorted({v for v in self.names.values() if v not in self.order})
        if unknown:
            raise ValueError(f"stages.names maps to unknown stages {unknown}; use one of {self.order}")
        return self

    def canonical(self, name: str) -> str | None:
        """The pipeline stage a CRM stage name means (``stage_key``), None when unknown."""
        key = stage_key(name)
        lookup = {stage_key(k): v for k, v in self.names.items()}
        lookup.update({stage_key(s): s for s in self.order})
        return lookup.get(key)

    @model_validator(mode="after")
    def _won_lost_apart(self) -> "StageRules":
        both = sorted({stage_key(n) for n in self.won} & {stage_key(n) for n in self.lost})
        if both:
            raise ValueError(f"stage names {both} are listed under both won and lost")
        meanings: dict[str, set[str]] = {}
        for name, stage in [(s, s) for s in self.order] + list(self.names.items()):
            meanings.setdefault(stage_key(name), set()).add(stage)
        clash = sorted(key for key, stages in meanings.items() if len(stages) > 1)
        if clash:
            raise ValueError(f"stage names {clash} (case, spaces and punctuation ignored) map to different stages")
        return self

    @cached_property
    def lookup(self) -> dict[str, str]:
        """``stage_key`` of a CRM or canonical stage name -> canonical stage."""
        names = {stage_key(stage): stage for stage in self.order}
        names.update({stage_key(name): stage for name, stage in self.names.items()})
        names.update({stage_key(name): self.closed_stage for name in self.won + self.lost})
        return names

    @cached_property
    def won_names(self) -> set[str]:
        return {stage_key(name) for name in self.won}

    @cached_property
    def lost_names(self) -> set[str]:
        return {stage_key(name) for name in self.lost}

    def number(self, stage: str) -> int | None:
        """1-based position of a stage, None for an unknown stage."""
        return self.numbers.get(stage)

    @cached_property
    def numbers(self) -> dict[str, int]:
        """stage -> 1-based position (a dict, so a column maps in one pass)."""
        return {stage: i + 1 for i, stage in enumerate(self.order)}

    @property
    def closed_stage(self) -> str:
        return self.order[-1]


class CircuitBreaker(Section):
    max_bad_share: float = Field(gt=0, le=1)
    min_rows: int = Field(ge=1)


class QualityRules(Section):
    valid_outcomes: list[str] = Field(min_length=1)
    open_outcomes: list[str]
    circuit_breaker: CircuitBreaker
    max_unparseable_share: float = Field(gt=0, le=1)
    # File-wide formats: "auto" decides from the file's own values.
    date_order: Literal["auto", "day_first", "month_first"] = "auto"
    decimal_mark: Literal["auto", ".", ","] = "auto"
    max_deal_amount: float = Field(default=1e12, gt=0)
    max_quiet_days: int = Field(default=30, ge=1)


# --- Sections of the analytics layers (each owned by its layer). ---


# Fact columns a segment can be keyed on; derived bins are named in the metrics layer.
FACT_SEGMENT_COLUMNS = ("industry", "region", "product_type", "lead_source", "sales_rep_id", "deal_stage")
DERIVED_SEGMENT_COLUMNS = ("cycle_bin", "amount_tier")
NUMERIC_FACTORS = ("deal_amount", "sales_cycle_days")


def _members(values: list[str], allowed: tuple[str, ...], what: str) -> list[str]:
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; allowed: {list(allowed)}")
    if len(set(values)) != len(values):
        raise ValueError(f"{what} must not repeat")
    return values


def _increasing(edges: list[float]) -> list[float]:
    if any(e <= 0 for e in edges) or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError("bin edges must be positive and strictly increasing")
    return edges


class SmiBands(Section):
    """Stage Momentum Index (stage number per day) bands: below critical_below
    is 'critical', below slow_below is 'slow', otherwise 'healthy'."""

    critical_below: float = Field(gt=0)
    slow_below: float = Field(gt=0)

    @field_validator("slow_below")
    @classmethod
    def _above_critical(cls, value: float, info) -> float:
        critical = info.data.get("critical_below")
        if critical is not None and value <= critical:
            raise ValueError("slow_below must be above critical_below")
        return value


class DqsWeights(Section):
    """Weight of each Deal Quality Score component's log-odds lift."""

    lead_source: float = Field(ge=0, le=5)
    industry: float = Field(ge=0, le=5)
    progression: float = Field(ge=0, le=5)
    rep: float = Field(ge=0, le=5)

    @field_validator("rep")
    @classmethod
    def _some_weight(cls, value: float, info) -> float:
        if value + sum(v for v in info.data.values() if isinstance(v, (int, float))) <= 0:
            raise ValueError("at least one DQS weight must be positive")
        return value


class DqsRules(Section):
    weights: DqsWeights
    low_quality_below: float = Field(gt=0, lt=1)


class MetricsRules(Section):
    """deal_metrics / segment_metrics thresholds (metrics layer)."""

    win_probability_segment: list[str] = Field(min_length=1)
    smi: SmiBands
    dqs: DqsRules
    min_sample: int = Field(ge=1)
    cycle_bin_edges_days: list[float] = Field(min_length=1)
    amount_tier_edges: list[float] = Field(min_length=1)

    @field_validator("win_probability_segment")
    @classmethod
    def _segment_columns(cls, value: list[str]) -> list[str]:
        return _members(value, FACT_SEGMENT_COLUMNS[:5], "win_probability_segment columns")

    @field_validator("cycle_bin_edges_days", "amount_tier_edges")
    @classmethod
    def _edges(cls, value: list[float]) -> list[float]:
        return _increasing(value)


class AttributionRules(Section):
    """Which two periods win_rate_attribution compares: by default the last
    complete period before the analysis date (b) against the one before (a)."""

    period_type: str
    period_a: str | None = None
    period_b: str | None = None

    @field_validator("period_type")
    @classmethod
    def _known_period(cls, value: str) -> str:
        if value not in ("month", "quarter"):
            raise ValueError("period_type must be 'month' or 'quarter'")
        return value

    @field_validator("period_b")
    @classmethod
    def _both_or_neither(cls, value: str | None, info) -> str | None:
        if (value is None) != (info.data.get("period_a") is None):
            raise ValueError("set both period_a and period_b, or neither")
        return value


class ImportanceRules(Section):
    """driver_importance: a gradient-boosted model on closed deals, judged by
    permutation importance on held-out deals."""

    factors: list[str] = Field(min_length=2)
    min_rows: int = Field(ge=50)
    max_train_rows: int = Field(ge=100)
    max_eval_rows: int = Field(ge=100)
    holdout_share: float = Field(gt=0.05, lt=0.6)
    n_repeats: int = Field(ge=2, le=50)
    interaction_candidates: int = Field(ge=2, le=10)
    seed: int = Field(ge=0)

    @field_validator("factors")
    @classmethod
    def _known_factors(cls, value: list[str]) -> list[str]:
        return _members(value, FACT_SEGMENT_COLUMNS + NUMERIC_FACTORS, "importance factors")


class DriverRules(Section):
    """driver_scores / win_rate_attribution / driver_importance settings (drivers layer)."""

    dimensions: list[str] = Field(min_length=1)
    material_share: float = Field(gt=0, lt=1)
    fdr_alpha: float = Field(gt=0, le=0.5)
    min_rate_gap: float = Field(ge=0, lt=1)
    attribution: AttributionRules
    importance: ImportanceRules

    @field_validator("dimensions")
    @classmethod
    def _known_dimensions(cls, value: list[str]) -> list[str]:
        return _members(value, FACT_SEGMENT_COLUMNS + DERIVED_SEGMENT_COLUMNS, "driver dimensions")


class RiskRules(Section):
    """deal_risk_model / deal_risk_scores / pipeline_forecast settings (models layer)."""

    class Bands(Section):
        """Risk band by win probability: below high_below is 'high', below
        medium_below is 'medium', otherwise 'low'."""

        high_below: float = Field(gt=0, lt=1)
        medium_below: float = Field(gt=0, lt=1)

        @model_validator(mode="after")
        def _ordered(self):
            if self.medium_below <= self.high_below:
                raise ValueError("medium_below must be above high_below")
            return self

    class SegmentChanges(Section):
        """Segments whose latest closes moved beyond the rest of the business
        (``segment_changes``): their open deals' odds move by the change against the rest."""

        enabled: bool = True
        recent_days: list[int] = Field(default=[45, 90])   # each a window of latest closes, tested alike
        baseline_days: int = Field(default=365, ge=60, le=1095)
        fdr_alpha: float = Field(default=0.05, gt=0, le=0.2)
        min_change: float = Field(default=0.5, ge=0, le=5)
        min_age_days: int = Field(default=14, ge=0, le=365)
        min_recent_deals: int = Field(default=20, ge=10)
        min_baseline_deals: int = Field(default=40, ge=20)
        age_bands_days: list[int] = Field(default=[90])
        dimensions: list[Literal["industry", "region", "product_type", "lead_source"]] = Field(
            default=["industry", "region", "product_type", "lead_source"])
        pairs: list[tuple[str, str]] = Field(default=[
            ("industry", "region"), ("industry", "product_type"), ("industry", "lead_source"),
            ("region", "lead_source"), ("region", "product_type"), ("product_type", "lead_source")])

        @field_validator("recent_days", mode="before")
        @classmethod
        def _one_window_or_several(cls, value):
            return [value] if isinstance(value, int) else value

        @field_validator("recent_days")
        @classmethod
        def _increasing_windows(cls, days):
            if not days or days != sorted(set(days)) or not all(14 <= d <= 180 for d in days):
                raise ValueError("recent_days must be increasing day counts from 14 to 180")
            return days

        @model_validator(mode="after")
        def _pairs_of_dimensions(self):
            if self.age_bands_days != sorted(set(self.age_bands_days)) or any(d <= 0 for d in self.age_bands_days):
                raise ValueError("age_bands_days must be increasing positive day counts")
            for pair in self.pairs:
                if pair[0] == pair[1] or not set(pair) <= set(self.dimensions):
                    raise ValueError(f"pair {list(pair)} must name two different dimensions listed above")
            return self

    class Forecast(Section):
        """pipeline_forecast and its backtest."""

        simulations: int = Field(ge=200, le=100_000)
        interval: float = Field(gt=0.5, lt=1)
        backtest_dates: int = Field(ge=1, le=24)
        backtest_step_days: int = Field(ge=7, le=365)
        backtest_horizon_days: int = Field(ge=30, le=730)
        win_rate_target_points: float = Field(gt=0, le=50)
        backtest_max_fit_rows: int = Field(default=40_000, ge=1000)
        late_window_days: int = Field(default=30, ge=30, le=180)
        segment_changes: "RiskRules.SegmentChanges" = Field(default_factory=lambda: RiskRules.SegmentChanges())
        seed: int = Field(ge=0)

    class Drift(Section):
        """Live check of the champion on deals closed since it was trained."""

        min_new_deals: int = Field(ge=20)
        max_auc_drop: float = Field(gt=0, lt=0.5)
        max_calibration_gap: float = Field(gt=0, lt=0.5)
        alpha: float = Field(gt=0, le=0.2)

    min_closed_deals: int = Field(ge=50)
    win_horizon_days: int = Field(ge=30, le=730)
    short_history_fallback: bool = True
    min_auc_gain: float = Field(ge=0, lt=0.2)
    implausible_auc: float = Field(gt=0.9, le=1)
    snapshot_every_days: int = Field(ge=1, le=90)
    max_training_rows: int = Field(ge=1000)
    max_fit_rows: int = Field(default=100_000, ge=1000)
    quarter_position_alpha: float = Field(default=1e-4, gt=0, lt=0.5)
    level_trend_quarters: int = Field(default=0, ge=0, le=20)
    cohort_trend_min_z: float = Field(default=3.0, ge=0)
    retrain_changed_share: float = Field(default=0.05, ge=0, le=1)
    calibration_share: float = Field(gt=0.05, lt=0.4)
    validation_share: float = Field(gt=0.05, lt=0.4)
    min_history_coverage: float = Field(gt=0, le=1)
    candidates: list[Literal["logistic", "mixture_logistic", "gradient_boosting", "mixture", "blend"]] = Field(
        min_length=1)
    logistic_c: float = Field(gt=0, le=100)
    calibration: Literal["auto", "sigmoid", "isotonic"]
    isotonic_min_deals: int = Field(ge=500)
    promotion_metric: Literal["log_loss", "brier", "auc"]
    min_improvement: float = Field(ge=0, lt=0.1)
    baseline_segment: list[Literal["industry", "region", "product_type", "lead_source", "sales_rep_id"]] = Field(
        min_length=1)
    min_reason_weight: float = Field(ge=0, lt=0.5)
    weak_signal_auc: float = Field(ge=0.5, lt=1)
    bands: Bands
    forecast: Forecast
    drift: Drift
    seed: int = Field(ge=0)

    @field_validator("candidates", "baseline_segment")
    @classmethod
    def _no_repeats(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("entries must not repeat")
        return value

    @field_validator("level_trend_quarters")
    @classmethod
    def _enough_quarters_for_a_line(cls, value: int) -> int:
        if 0 < value < 4:
            raise ValueError("a trend needs at least 4 quarters (0 turns it off)")
        return value


class AnomalyRules(Section):
    """anomalies detection settings (anomalies layer). Windows end on the
    analysis date; every segment test of a run shares one Benjamini-Hochberg
    false-discovery budget."""

    class SegmentTest(Section):
        """Minimum evidence before a segment is tested, and the smallest
        change worth reporting (rate tests: absolute rate change; rank tests:
        probability of superiority minus 1/2)."""

        min_window_deals: int = Field(ge=5)
        min_baseline_deals: int = Field(ge=10)
        min_effect: float = Field(gt=0, lt=0.5)
        with_pairs: bool
        # Which of the run's windows this test uses (default: all of them).
        windows_days: list[int] | None = None
        # Which of those windows also test the pairs and the reps (default: all of them).
        pairs_and_reps_windows_days: list[int] | None = None

    class OpenAgeTest(SegmentTest):
        window_days: int = Field(ge=7, le=365)
        snapshot_every_days: int = Field(ge=1, le=60)

    class StillOpenTest(SegmentTest):
        """Share of deals ``ages_days`` old still open, against deals as old
        on the same day a year earlier, or on baseline dates before a window
        of ``window_days`` in a younger history (domain/anomalies/still_open.py)."""

        min_window_deals: int = Field(default=50, ge=5)
        min_baseline_deals: int = Field(default=100, ge=10)
        min_effect: float = Field(default=0.08, gt=0, lt=0.5)
        with_pairs: bool = False
        pairs_and_reps_windows_days: list[int] | None = Field(default_factory=list)
        ages_days: tuple[int, int] = (30, 120)
        window_days: int = Field(default=30, ge=7, le=365)
        snapshot_every_days: int = Field(default=14, ge=1, le=60)

        @model_validator(mode="after")
        def _ages(self) -> "AnomalyRules.StillOpenTest":
            if not 0 <= self.ages_days[0] < self.ages_days[1] <= 730:
                raise ValueError("still_open.ages_days must be two ages from 0 to 730 days, youngest first")
            return self

    class QualityTest(SegmentTest):
        # deal_metrics score columns fixed when a deal enters the pipeline
        # (progression is left out: it depends on the deal's age).
        entry_components: list[Literal["lead_source", "industry", "rep"]] = Field(min_length=1)

    class MetricShiftTest(SegmentTest):
        metrics: list[Literal["pvs", "smi", "dqs"]]
        value_bins: int = Field(ge=20, le=2000)

    class Hierarchy(Section):
        # A parent's change is "explained" by a child when the parent without
        # the child shows no change at this (unadjusted) level.
        complement_alpha: float = Field(gt=0, lt=1)

    class SeverityLevel(Section):
        max_q: float = Field(gt=0, le=1)
        min_strength: float = Field(ge=1)   # |effect| / min_effect

    class Severity(Section):
        critical: "AnomalyRules.SeverityLevel"
        high: "AnomalyRules.SeverityLevel"
        medium: "AnomalyRules.SeverityLevel"

    class StalenessLevel(Section):
        """A stalled deal reaches a level when its time is beyond this share
        of won deals' durations AND this many times its stall limit."""

        won_percentile: float = Field(gt=0.5, lt=1)
        overdue_ratio: float = Field(ge=1)

    class Stalled(Section):
        stage_percentile: float = Field(ge=0.5, lt=1)
        min_won_stage_deals: int = Field(ge=10)
        age_percentile: float = Field(ge=0.5, lt=1)
        min_history_deals: int = Field(ge=5)
        max_deals: int = Field(ge=1, le=500)
        high: "AnomalyRules.StalenessLevel"
        critical: "AnomalyRules.StalenessLevel"
        small_stake_quantile: float = Field(gt=0, lt=1)
        # A crisis puts at stake at least this quantile of what open deals are
        # expected to bring (amount x a new deal's win chance).
        crisis_stake_quantile: float = Field(default=0.9, gt=0, lt=1)
        # A handful: at most this many crises per run, most money at stake first.
        max_crises: int = Field(default=5, ge=0, le=100)
        # Won deals' durations are read only from deals that started at least
        # this many times the limit before the analysis date (their wins are all in).
        follow_up_factor: float = Field(default=2.0, ge=1, le=10)

        @model_validator(mode="after")
        def _ordered(self) -> "AnomalyRules.Stalled":
            if self.critical.won_percentile < self.high.won_percentile or \
                    self.critical.overdue_ratio < self.high.overdue_ratio:
                raise ValueError("stalled critical level must be at least as strict as high")
            if self.crisis_stake_quantile <= self.small_stake_quantile:
                raise ValueError("stalled crisis_stake_quantile must be above small_stake_quantile")
            return self

    class Seasonality(Section):
        """Quarter-end seasonality of closings (see domain/anomalies/seasonality.py)."""

        mode: Literal["auto", "on", "off"] = "auto"
        fiscal_year_start_month: int = Field(default=1, ge=1, le=12)
        # auto: quarters end where past wins bunch when that clearly differs
        # from the fiscal year's (domain/anomalies/quarter_ends.py)
        quarter_ends: Literal["auto", "fiscal_year"] = "auto"
        bin_days: int = Field(default=7, ge=1, le=31)
        # Baseline length when standardising (at least baseline_days): only
        # the same weeks of earlier quarters count, so it spans more quarters.
        baseline_days: int = Field(default=364, ge=28, le=1095)
        detect_alpha: float = Field(default=0.01, gt=0, lt=0.5)
        # The season is judged on the closes before the last held_out_days.
        held_out_days: int = Field(default=30, ge=0, le=365)

    windows_days: list[int] = Field(min_length=1)
    baseline_days: int = Field(ge=28, le=1095)
    seasonality: Seasonality = Seasonality()
    fdr_alpha: float = Field(gt=0, le=0.2)
    dimensions: list[str] = Field(min_length=1)
    pairs: list[tuple[str, str]]
    max_days: int = Field(ge=60, le=3650)
    win_rate: SegmentTest
    cycle: SegmentTest
    open_age: OpenAgeTest
    still_open: StillOpenTest = StillOpenTest()
    quality: QualityTest
    metric_shift: MetricShiftTest
    hierarchy: Hierarchy
    severity: Severity
    stalled: Stalled

    @field_validator("windows_days")
    @classmethod
    def _windows(cls, value: list[int]) -> list[int]:
        if any(w < 1 or w > 365 for w in value) or len(set(value)) != len(value):
            raise ValueError("windows_days must be distinct whole days between 1 and 365")
        return sorted(value)

    @field_validator("dimensions")
    @classmethod
    def _dimensions(cls, value: list[str]) -> list[str]:
        return _members(value, FACT_SEGMENT_COLUMNS[:5], "anomaly dimensions")

    @model_validator(mode="after")
    def _consistent(self) -> "AnomalyRules":
        for pair in self.pairs:
            if pair[0] == pair[1] or not set(pair) <= set(self.dimensions):
                raise ValueError(f"pair {list(pair)} must name two different anomaly dimensions")
        if len({frozenset(p) for p in self.pairs}) != len(self.pairs):
            raise ValueError("pairs must not repeat")
        for name in ("win_rate", "cycle", "quality", "metric_shift"):
            chosen = getattr(self, name).windows_days
            if chosen is not None and (not chosen or not set(chosen) <= set(self.windows_days)):
                raise ValueError(f"{name}.windows_days must be a non-empty subset of windows_days")
            narrow = getattr(self, name).pairs_and_reps_windows_days
            if narrow is not None and not set(narrow) <= set(chosen or self.windows_days):
                raise ValueError(f"{name}.pairs_and_reps_windows_days must be a subset of the windows the test uses")
        if self.baseline_days < 2 * max(self.windows_days + [self.open_age.window_days]):
            raise ValueError("baseline_days must be at least twice the longest window")
        if self.severity.high.max_q > self.severity.medium.max_q or \
                self.severity.critical.max_q > self.severity.high.max_q:
            raise ValueError("severity max_q must not grow from medium to critical")
        return self


SEVERITIES = ("low", "medium", "high", "critical")
ORG_ROLES = ("rep", "manager", "cro")  # resolved from dim_sales_reps (rep -> manager -> CRO)
ANOMALY_TYPES = ("win_rate_dip", "win_rate_spike", "cycle_slowdown", "open_age_increase", "still_open_increase",
                 "quality_drop", "metric_shift", "stalled_deal")


class AlertTypeRule(Section):
    """One alert type of the taxonomy."""

    name: str = Field(min_length=1)
    priority: Literal["P1", "P2", "P3"]
    cadence: Literal["immediate", "daily", "weekly"]
    recipients: list[str] = Field(min_length=1)
    dedup_window_days: int = Field(ge=0, le=365)
    # Recommended actions: "default" plus optional per-industry lists.
    playbooks: dict[str, list[str]]

    @field_validator("playbooks")
    @classmethod
    def _has_default(cls, playbooks: dict[str, list[str]]) -> dict[str, list[str]]:
        if not playbooks.get("default"):
            raise ValueError("playbooks need a non-empty 'default' list")
        return playbooks


class AlertMapping(Section):
    """Anomaly -> alert type. All given conditions must hold; first match wins."""

    alert_type: str
    anomaly_types: list[Literal[ANOMALY_TYPES]] = Field(min_length=1)  # type: ignore[valid-type]
    min_severity: Literal[SEVERITIES] | None = None  # type: ignore[valid-type]
    min_amount: float | None = Field(default=None, ge=0)
    metrics: list[str] | None = None
    segments: list[str] | None = None


class DirectoryEntry(Section):
    """A team recipient that is not in the sales org (RevOps, data team, ...)."""

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    email: str | None = None
    slack_channel: str | None = None  # Slack channel ID (C...), not a #name


class ThrottleRules(Section):
    max_p1_per_rep: int = Field(ge=1)
    window_days: int = Field(ge=1)
    throttled_cadence: Literal["daily", "weekly"]


class EscalationRules(Section):
    p1_ack_hours: float = Field(gt=0)
    max_levels: int = Field(ge=0, le=2)


class RolloutRules(Section):
    mode: Literal["shadow", "alpha", "beta", "production"]
    alpha_reps: list[str]


class EvidenceRules(Section):
    min_history_deals: int = Field(ge=5)
    # A stalled deal the usable risk model gives at least this chance to win
    # is never a P1 crisis (it stays a digest item).
    likely_win_probability: float = Field(default=0.5, gt=0, lt=1)


class FeedbackRules(Section):
    target_precision: float = Field(gt=0, le=1)
    min_rated: int = Field(ge=1)


class DeliveryRules(Section):
    slack_rate_limit_retries: int = Field(ge=0, le=10)
    digest_max_items: int = Field(ge=1, le=45)


class AlertRules(Section):
    """Alert taxonomy, priorities, throttles, routing, rollout (alerts layer)."""

    rollout: RolloutRules
    types: dict[str, AlertTypeRule] = Field(min_length=1)
    mapping: list[AlertMapping] = Field(min_length=1)
    throttle: ThrottleRules
    escalation: EscalationRules
    fallback_role: str
    directory: dict[str, list[DirectoryEntry]]
    evidence: EvidenceRules
    feedback: FeedbackRules
    delivery: DeliveryRules

    @model_validator(mode="after")
    def _consistent(self) -> "AlertRules":
        for i, rule in enumerate(self.mapping):
            if rule.alert_type not in self.types:
                raise ValueError(f"mapping[{i}] names unknown alert type {rule.alert_type!r}")
        known_roles = set(ORG_ROLES) | set(self.directory) | {"sales_leadership"}
        for key, rule in self.types.items():
            unknown = set(rule.recipients) - known_roles
            if unknown:
                raise ValueError(f"alert type {key!r}: unknown recipient roles {sorted(unknown)}; "
                                 f"use {list(ORG_ROLES)} or a directory role")
        if self.fallback_role not in self.directory or not self.directory[self.fallback_role]:
            raise ValueError(f"fallback_role {self.fallback_role!r} needs a non-empty directory entry")
        return self


class Rules(BaseModel):
    """The whole rules file. Each layer owns one section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int
    stages: StageRules
    quality: QualityRules
    metrics: MetricsRules
    drivers: DriverRules
    risk: RiskRules
    anomalies: AnomalyRules
    alerts: AlertRules

    @field_validator("version")
    @classmethod
    def _supported(cls, version: int) -> int:
        if version not in SUPPORTED_VERSIONS:
            raise ValueError(f"unsupported rules version {version}; supported: {SUPPORTED_VERSIONS}")
        return version


def default_rules_path() -> Path:
    return Path(str(resources.files("salesintel_assets") / "rules.yaml"))


def load_rules(path: str | Path | None = None) -> Rules:
    """Read and validate a rules file (the packaged one by default)."""
    path = Path(path) if path else default_rules_path()
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise RulesError(f"cannot read rules file {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise RulesError(f"rules file {path} must be a mapping of sections")
    try:
        return Rules.model_validate(raw)
    except ValidationError as exc:
        raise RulesError(f"invalid rules file {path}:\n{exc}") from exc
