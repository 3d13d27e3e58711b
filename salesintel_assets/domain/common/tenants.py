"""Sales orgs (tenants): who they are and where each keeps its data.

The tenants file ``$SALESINTEL_HOME/tenants.yaml`` lists the sales orgs
beside the default one. Each has its own folder
``$SALESINTEL_HOME/tenants/<name>/`` (warehouse, raw lake, MLflow store,
ledger, outbox), its own CRM export, rules file, registered-model name and
Slack token (the *name* of an environment variable: secrets never sit in the
file). The default tenant is the run-time contract as it always was: the
environment's source and rules, stored in ``$SALESINTEL_HOME`` itself.
Plain Python: the Dagster side is ``resources/tenancy.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

DEFAULT_TENANT = "default"
TENANTS_FILE = "tenants.yaml"
TENANTS_DIR = "tenants"
DEFAULT_MODEL_NAME = "deal_risk"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TenantError(ValueError):
    """A tenant or the tenants file is wrong; the message says how to fix it."""


class TenantConfig(BaseModel):
    """One sales org's entry in the tenants file. Relative paths are read
    from the tenants file's folder."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["sample", "csv"] = "sample"
    csv: Optional[str] = None               # the org's CRM export (source csv)
    org: Optional[str] = None               # optional sales-org CSV (rep -> manager -> CRO)
    as_of: Optional[str] = None             # the analysis date; default as for the default tenant
    rules: Optional[str] = None             # the org's rules file; default the packaged one
    model_name: Optional[str] = None        # MLflow registered model; default deal_risk_<name>
    slack_token_env: Optional[str] = None   # NAME of the variable holding the org's Slack bot token
    n_deals: int = 6000                     # size of a sample world (source sample)
    seed: int = 42

    @field_validator("slack_token_env")
    @classmethod
    def _variable_name(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError(f"{value!r} is not an environment variable name (the token itself never goes "
                             "in the tenants file)")
        return value


@dataclass(frozen=True)
class Tenant:
    """A resolved tenant: its name, folder and configuration (None for the
    default tenant, which is configured by the environment)."""

    name: str
    root: Path
    config: Optional[TenantConfig] = None
    base: Optional[Path] = None  # the folder of the tenants file, for relative paths

    @property
    def is_default(self) -> bool:
        return self.config is None

    @property
    def model_name(self) -> str:
        if self.config is None:
            return DEFAULT_MODEL_NAME
        return self.config.model_name or f"{DEFAULT_MODEL_NAME}_{self.name}"

    def path(self, value: Optional[str]) -> Optional[str]:
        """A path from the tenant's entry, relative ones read from the tenants file's folder."""
        if not value:
            return None
        found = Path(value).expanduser()
        return str(found if found.is_absolute() or self.base is None else (self.base / found).resolve())


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise TenantError(f"tenant name {name!r} is not allowed: use 1-63 lower-case letters, digits, '-' or '_', "
                          "starting with a letter or digit")
    return name


def tenants_file(home: Path | str) -> Path:
    return Path(home).expanduser().resolve() / TENANTS_FILE


def tenant_root(home: Path | str, name: str) -> Path:
    base = Path(home).expanduser().resolve()
    return base if name == DEFAULT_TENANT else base / TENANTS_DIR / check_name(name)


def load_tenants(home: Path | str) -> dict[str, TenantConfig]:
    """The named tenants of the tenants file (none when there is no file)."""
    path = tenants_file(home)
    if not path.exists():
        return {}
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise TenantError(f"{path} is not valid YAML ({str(exc).splitlines()[0]}): fix the file") from None
    entries = raw.get("tenants", {}) if isinstance(raw, dict) else None
    if not isinstance(entries, dict):
        raise TenantError(f"{path} must hold a mapping 'tenants:' of tenant name -> settings")
    found = {}
    for name, entry in entries.items():
        name = check_name(str(name))
        if name == DEFAULT_TENANT:
            raise TenantError(f"{path}: 'default' is the environment's own tenant and cannot be listed; "
                              "choose another name")
        try:
            found[name] = TenantConfig.model_validate(entry or {})
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem["loc"])
            raise TenantError(f"{path}: tenant {name!r}, {where}: {problem['msg']}") from None
        if found[name].source == "csv" and not found[name].csv:
            raise TenantError(f"{path}: tenant {name!r} has source csv but no 'csv' path of its CRM export")
    return found


def tenant_names(home: Path | str) -> list[str]:
    """The default tenant, then the named ones in file order."""
    return [DEFAULT_TENANT, *load_tenants(home)]


def resolve_tenant(home: Path | str, name: Optional[str]) -> Tenant:
    """The tenant a run is for (None or "default": the default tenant)."""
    base = Path(home).expanduser().resolve()
    if not name or name == DEFAULT_TENANT:
        return Tenant(DEFAULT_TENANT, base)
    configs = load_tenants(base)
    if name not in configs:
        raise TenantError(f"tenant {name!r} is not in {tenants_file(base)}: add it with "
                          f"`salesintel tenant add {name} ...` or choose one of {', '.join(tenant_names(base))}")
    return Tenant(name, tenant_root(base, name), configs[name], base)


def add_tenant(home: Path | str, name: str, config: TenantConfig, replace: bool = False) -> Path:
    """Write the tenant into the tenants file (created when missing)."""
    check_name(name)
    if name == DEFAULT_TENANT:
        raise TenantError("'default' is the environment's own tenant: choose another name")
    path = tenants_file(home)
    current = load_tenants(home)
    if name in current and not replace and current[name] != config:
        raise TenantError(f"tenant {name!r} is already in {path} with other settings: edit the file or "
                          "pass --replace")
    current[name] = config
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"tenants": {n: c.model_dump(exclude_defaults=True) for n, c in current.items()}}
    temporary = path.with_suffix(".yaml.tmp")
    temporary.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    temporary.replace(path)
    return path
