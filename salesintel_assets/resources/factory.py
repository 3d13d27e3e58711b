"""Resource sets: the one the code location uses (from the run-time
contract's environment variables, through ``EnvVar``) and a local one for
tests and the demo."""


import os
from typing import Optional

import dagster as dg

from salesintel_assets.domain.common.storage import DEFAULT_HOME
from salesintel_assets.resources.crm import CRMSource, CsvCRM, SampleCRM
from salesintel_assets.resources.delivery_ledger import DeliveryLedger
from salesintel_assets.resources.feedback import FeedbackInbox
from salesintel_assets.resources.mlflow import MLflowTracking
from salesintel_assets.resources.notifier import EmailNotifier, OutboxNotifier, SlackNotifier, smtp_security
from salesintel_assets.resources.settings import SalesintelSettings
from salesintel_assets.resources.tenancy import TenantCRM
from salesintel_assets.resources.warehouse import SalesintelHome, Warehouse, WarehouseIOManager

SOURCES = ("sample", "csv", "hubspot", "salesforce")


class ConfigurationError(ValueError):
    """The run-time environment is inconsistent (e.g. csv source without a file)."""


def _env(name: str, default=None):
    """``EnvVar`` when the variable is set (the value is resolved at run time
    and never shown), else the contract's default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def environment_resources(home: Optional[str] = None) -> dict:
    """Resources from the run-time contract. Called when Dagster loads the
    definitions, never at import. ``home`` replaces SALESINTEL_HOME."""
    source = os.environ.get("SALESINTEL_SOURCE", "sample").strip().lower() or "sample"
    if source not in SOURCES:
        raise ConfigurationError(f"SALESINTEL_SOURCE={source!r}: expected one of {SOURCES}")
    home = home or _env("SALESINTEL_HOME", DEFAULT_HOME)
    return build_resources(
        home=home,
        crm=crm_from_environment(source),
        as_of=_env("SALESINTEL_AS_OF"),
        rules_path=_env("SALESINTEL_RULES"),
        mlflow_tracking_uri=_env("MLFLOW_TRACKING_URI"),
        **notifier_resources(home),
    )


def crm_from_environment(source: str) -> CRMSource:
    """The CRM source named by SALESINTEL_SOURCE, configured through EnvVar."""
    if source == "csv":
        if not os.environ.get("SALESINTEL_CSV"):
            raise ConfigurationError("SALESINTEL_SOURCE=csv needs SALESINTEL_CSV, the path of a CRM export")
        return CsvCRM(path=dg.EnvVar("SALESINTEL_CSV"), org_path=_env("SALESINTEL_ORG"),
                      date_order=_env("SALESINTEL_DATE_ORDER"), decimal_mark=_env("SALESINTEL_DECIMAL_MARK"))
    if source == "hubspot":
        from salesintel_assets.resources.hubspot import HubSpotCRM

        if not os.environ.get("HUBSPOT_ACCESS_TOKEN"):
            raise ConfigurationError("SALESINTEL_SOURCE=hubspot needs HUBSPOT_ACCESS_TOKEN, a private-app token "
                                     "(README: Connecting your CRM)")
        return HubSpotCRM(access_token=dg.EnvVar("HUBSPOT_ACCESS_TOKEN"),
                          base_url=_env("HUBSPOT_BASE_URL", "https://api.hubapi.com"),
                          rules_path=_env("SALESINTEL_RULES"))
    if source == "salesforce":
        return salesforce_from_environment()
    return SampleCRM()


def salesforce_from_environment() -> CRMSource:
    """The Salesforce source: the instance URL and either an access token or
    username + password + security token, all through ``EnvVar``."""
    from salesintel_assets.resources.salesforce import SalesforceCRM

    if not os.environ.get("SALESFORCE_INSTANCE_URL"):
        raise ConfigurationError("SALESINTEL_SOURCE=salesforce needs SALESFORCE_INSTANCE_URL, e.g. "
                                 "https://yourorg.my.salesforce.com (README: Connecting your CRM)")
    login = ("SALESFORCE_USERNAME", "SALESFORCE_PASSWORD", "SALESFORCE_SECURITY_TOKEN")
    if not os.environ.get("SALESFORCE_ACCESS_TOKEN") and not all(os.environ.get(v) for v in login):
        raise ConfigurationError("SALESINTEL_SOURCE=salesforce needs SALESFORCE_ACCESS_TOKEN, or "
                                 "SALESFORCE_USERNAME, SALESFORCE_PASSWORD and SALESFORCE_SECURITY_TOKEN")
    fields = {field: _env(variable) for field, variable in SalesforceCRM.ENVIRONMENT.items()}
    return SalesforceCRM(**{k: v for k, v in fields.items() if v is not None})


def notifier_resources(home=DEFAULT_HOME) -> dict:
    """Slack when SLACK_BOT_TOKEN is set, email when SALESINTEL_SMTP_HOST is set
    (both through ``EnvVar``: values resolve at run time and are never shown).
    Without either, alerts go to the local outbox. A named tenant's Slack
    token comes from the variable its entry in the tenants file names."""
    found = {}
    if os.environ.get("SLACK_BOT_TOKEN"):
        slack = {"token": dg.EnvVar("SLACK_BOT_TOKEN"), "tenants_home": home}
        base_url = os.environ.get("SLACK_BASE_URL", "").strip()
        if base_url:
            if not base_url.startswith(("https://", "http://")):
                raise ConfigurationError(f"SLACK_BASE_URL={base_url!r}: expected an http(s) URL such as "
                                         "https://slack.com/api/")
            slack["base_url"] = dg.EnvVar("SLACK_BASE_URL")
        found["slack"] = SlackNotifier(**slack)
    if os.environ.get("SALESINTEL_SMTP_HOST"):
        email = {"host": dg.EnvVar("SALESINTEL_SMTP_HOST")}
        for field, variable in [("user", "SALESINTEL_SMTP_USER"), ("password", "SALESINTEL_SMTP_PASSWORD"),
                                ("sender", "SALESINTEL_SMTP_FROM"), ("security", "SALESINTEL_SMTP_SECURITY")]:
            if os.environ.get(variable):
                email[field] = dg.EnvVar(variable)
        port = os.environ.get("SALESINTEL_SMTP_PORT", "").strip()
        if port:
            if not port.isdigit():
                raise ConfigurationError(f"SALESINTEL_SMTP_PORT={port!r}: expected a port number such as 587")
            email["port"] = dg.EnvVar.int("SALESINTEL_SMTP_PORT")
        try:
            smtp_security(os.environ.get("SALESINTEL_SMTP_SECURITY"), int(port) if port else None)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        found["email"] = EmailNotifier(**email)
    return found


def build_resources(home, crm: CRMSource, as_of: Optional[str] = None,
                    rules_path: Optional[str] = None, mlflow_tracking_uri: Optional[str] = None,
                    **extra) -> dict:
    """The full resource dict; ``extra`` adds or replaces resources (tests)."""
    home_resource = SalesintelHome(path=home)
    warehouse = Warehouse(home=home_resource)
    source_date = crm.default_as_of()
    resources = {
        "home": home_resource,
        "warehouse": warehouse,
        "io_manager": WarehouseIOManager(warehouse=warehouse),
        # The run's tenant (its partition key) picks its own source, rules and dates; see resources/tenancy.py.
        "crm": TenantCRM(default=crm, home=home),
        "settings": SalesintelSettings(as_of=as_of, rules_path=rules_path, home=home,
                                       source_as_of=source_date.isoformat() if source_date else None),
        "feedback_inbox": FeedbackInbox(home=home_resource),
        # MLflow store: <home>/mlflow.db unless MLFLOW_TRACKING_URI names another.
        "mlflow": MLflowTracking(home=home_resource, tracking_uri=mlflow_tracking_uri),
        # Notifiers: unconfigured Slack and email, so alerts go to the local outbox.
        "slack": SlackNotifier(tenants_home=home),
        "email": EmailNotifier(),
        "outbox": OutboxNotifier(home=home_resource),
        # The live delivery ledger and the one-delivery-run-per-home lock.
        "delivery_ledger": DeliveryLedger(home=home_resource),
    }
    resources.update(extra)
    return resources
