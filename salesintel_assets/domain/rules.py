"""The business rules file: one versioned YAML, validated on load.

A bad rules file must be a clear error at start, never a silent default, so
every section forbids unknown keys and validates its values.
"""

from __future__ import annotations

from functools import cached_property
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

SUPPORTED_VERSIONS = (1,)


class RulesError(ValueError):
    """The rules file is missing, unreadable or invalid."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StageRules(Section):
    order: list[str] = Field(min_length=2)

    @field_validator("order")
    @classmethod
    def _unique(cls, order: list[str]) -> list[str]:
        if len(set(order)) != len(order):
            raise ValueError("stage names must be unique")
        return order

    def number(self, stage: str) -> int | None:
        """1-based position of a stage, None for an unknown stage."""
        return self._numbers.get(stage)

    @cached_property
    def _numbers(self) -> dict[str, int]:
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


# --- Sections of the analytics layers (each owned by its layer). ---


class MetricsRules(Section):
    """deal_metrics / segment_metrics thresholds (metrics layer)."""


class DriverRules(Section):
    """driver_scores / win_rate_attribution / driver_importance settings (drivers layer)."""


class RiskRules(Section):
    """deal_risk_model / deal_risk_scores / pipeline_forecast settings (models layer)."""


class AnomalyRules(Section):
    """anomalies detection settings (anomalies layer)."""


class AlertRules(Section):
    """Alert taxonomy, priorities, throttles, routing, rollout (alerts layer)."""


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
