"""Resource sets: the one the code location uses (from the run-time
contract's environment variables, through ``EnvVar``) and a local one for
tests and the demo."""


import os
from typing import Optional

import dagster as dg

from salesintel_assets.resources.crm import CRMSource, CsvCRM, SampleCRM
from salesintel_assets.resources.settings import SalesintelSettings
from salesintel_assets.resources.warehouse import SalesintelHome, Warehouse, WarehouseIOManager

DEFAULT_HOME = ".salesintel"
SOURCES = ("sample", "csv")


class ConfigurationError(ValueError):
    """The run-time environment is inconsistent (e.g. csv source without a file)."""


def _env(name: str, default=None):
    """``EnvVar`` when the variable is set (the value is resolved at run time
    and never shown), else the contract's default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def environment_resources() -> dict:
    """Resources from the run-time contract. Called when Dagster loads the
    definitions, never at import."""
    source = os.environ.get("SALESINTEL_SOURCE", "sample").strip().lower() or "sample"
    if source not in SOURCES:
        raise ConfigurationError(f"SALESINTEL_SOURCE={source!r}: expected one of {SOURCES}")
    if source == "csv":
        if not os.environ.get("SALESINTEL_CSV"):
            raise ConfigurationError("SALESINTEL_SOURCE=csv needs SALESINTEL_CSV, the path of a CRM export")
        crm: CRMSource = CsvCRM(path=dg.EnvVar("SALESINTEL_CSV"), org_path=_env("SALESINTEL_ORG"))
    else:
        crm = SampleCRM()
    return build_resources(
        home=_env("SALESINTEL_HOME", DEFAULT_HOME),
        crm=crm,
        as_of=_env("SALESINTEL_AS_OF"),
        rules_path=_env("SALESINTEL_RULES"),
    )


def build_resources(home, crm: CRMSource, as_of: Optional[str] = None,
                    rules_path: Optional[str] = None, **extra) -> dict:
    """The full resource dict; ``extra`` adds or replaces resources (tests)."""
    home_resource = SalesintelHome(path=home)
    warehouse = Warehouse(home=home_resource)
    resources = {
        "home": home_resource,
        "warehouse": warehouse,
        "io_manager": WarehouseIOManager(warehouse=warehouse),
        "crm": crm,
        "settings": SalesintelSettings(as_of=as_of, rules_path=rules_path),
    }
    resources.update(extra)
    return resources
