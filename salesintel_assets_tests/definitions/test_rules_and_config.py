"""The rules file is validated on load and the run-time contract maps to
resources; bad input is a clear error, never a silent default."""

import dagster as dg
import pandas as pd
import pytest
import yaml

from salesintel_assets.domain.common.rules import RulesError, default_rules_path, load_rules
from salesintel_assets.resources.crm import CsvCRM, SampleCRM
from salesintel_assets.resources.factory import ConfigurationError, environment_resources


def write_rules(tmp_path, mutate) -> str:
    raw = yaml.safe_load(default_rules_path().read_text())
    mutate(raw)
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def test_packaged_rules_load():
    rules = load_rules()
    assert rules.version == 1
    assert rules.stages.order[0] == "Qualified" and rules.stages.number("Closed") == 5
    assert rules.stages.number("Lunch") is None


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r["quality"].update(typo_key=1), "typo_key"),
    (lambda r: r.update(version=99), "unsupported rules version"),
    (lambda r: r["stages"].update(order=["Demo", "Demo"]), "stage names must be unique"),
    (lambda r: r["quality"]["circuit_breaker"].update(max_bad_share=2), "max_bad_share"),
    (lambda r: r.pop("stages"), "stages"),
    (lambda r: r["anomalies"]["seasonality"].update(quarter_ends="calendar"), "quarter_ends"),
    (lambda r: r["risk"].update(level_trend_quarters=2), "a trend needs at least 4 quarters"),
    (lambda r: r["risk"].update(cohort_trend_min_z=-1), "cohort_trend_min_z"),
])
def test_bad_rules_file_is_a_clear_error(tmp_path, mutate, message):
    with pytest.raises(RulesError, match=message):
        load_rules(write_rules(tmp_path, mutate))


def test_unreadable_rules_file_is_a_clear_error(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("version: [1,\n")
    with pytest.raises(RulesError, match="cannot read rules file"):
        load_rules(path)
    with pytest.raises(RulesError, match="cannot read rules file"):
        load_rules(tmp_path / "missing.yaml")


def test_environment_defaults_to_sample_crm(monkeypatch):
    for name in ("SALESINTEL_SOURCE", "SALESINTEL_CSV", "SALESINTEL_HOME", "SALESINTEL_AS_OF"):
        monkeypatch.delenv(name, raising=False)
    resources = environment_resources()
    assert isinstance(resources["crm"].default, SampleCRM)  # the default tenant's source
    assert resources["home"].path == ".salesintel" and resources["settings"].as_of is None


def test_environment_csv_source_uses_env_vars(monkeypatch, tmp_path):
    monkeypatch.setenv("SALESINTEL_SOURCE", "csv")
    monkeypatch.setenv("SALESINTEL_CSV", str(tmp_path / "deals.csv"))
    monkeypatch.setenv("SALESINTEL_AS_OF", "2024-07-20")
    resources = environment_resources()
    assert isinstance(resources["crm"].default, CsvCRM)
    # Values stay EnvVar references (resolved at run time, never shown in the UI).
    assert isinstance(resources["crm"].default.path, dg.EnvVar) and isinstance(resources["settings"].as_of, dg.EnvVar)


@pytest.mark.parametrize("source, csv, message", [
    ("csv", None, "needs SALESINTEL_CSV"),
    ("pipedrive", None, "expected one of"),
    ("salesforce", None, "needs SALESFORCE_INSTANCE_URL"),
])
def test_environment_errors_are_clear(monkeypatch, source, csv, message):
    monkeypatch.setenv("SALESINTEL_SOURCE", source)
    for name in ("SALESINTEL_CSV", "SALESFORCE_INSTANCE_URL", "SALESFORCE_ACCESS_TOKEN", "SALESFORCE_USERNAME"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigurationError, match=message):
        environment_resources()


def test_salesforce_needs_a_token_or_a_username_login(monkeypatch):
    monkeypatch.setenv("SALESINTEL_SOURCE", "salesforce")
    monkeypatch.setenv("SALESFORCE_INSTANCE_URL", "https://example.my.salesforce.com")
    for name in ("SALESFORCE_ACCESS_TOKEN", "SALESFORCE_PASSWORD", "SALESFORCE_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SALESFORCE_USERNAME", "ops@example.com")
    with pytest.raises(ConfigurationError, match="needs SALESFORCE_ACCESS_TOKEN, or SALESFORCE_USERNAME"):
        environment_resources()
    monkeypatch.setenv("SALESFORCE_ACCESS_TOKEN", "00D!token")
    crm = environment_resources()["crm"].default
    # secrets stay EnvVars, resolved only when a run starts
    assert crm.access_token == dg.EnvVar("SALESFORCE_ACCESS_TOKEN") and crm.password is None


def test_code_location_loads_with_every_layer(monkeypatch):
    monkeypatch.delenv("SALESINTEL_SOURCE", raising=False)
    from salesintel_assets.definitions import defs

    loaded = defs()
    groups = {spec.group_name for spec in loaded.resolve_all_asset_specs()}
    assert {"ingestion", "warehouse"} <= groups
    assert loaded.resolve_job_def("salesintel_job") is not None


def test_the_settings_decide_the_analysis_date(monkeypatch):
    from datetime import date

    from salesintel_assets.resources.settings import SalesintelSettings
    from salesintel_assets.sources.sample_crm import SAMPLE_END_DATE

    assert SampleCRM().default_as_of() == SAMPLE_END_DATE and CsvCRM(path="x.csv").default_as_of() is None
    assert SalesintelSettings(source_as_of="2026-06-30").analysis_date() == pd.Timestamp("2026-06-30")
    assert SalesintelSettings(as_of="2024-07-20", source_as_of="2026-06-30").analysis_date() == pd.Timestamp(
        "2024-07-20")
    assert SalesintelSettings().analysis_date() == pd.Timestamp(date.today().isoformat())
    for name in ("SALESINTEL_SOURCE", "SALESINTEL_AS_OF"):
        monkeypatch.delenv(name, raising=False)
    assert environment_resources()["settings"].source_as_of == SAMPLE_END_DATE.isoformat()


def test_rules_are_loaded_and_validated_once_per_run(monkeypatch, home):
    from salesintel_assets.resources import settings as settings_module
    from salesintel_assets_tests.support import read_table, run_job, sample_resources

    calls = []
    real = settings_module.load_rules
    monkeypatch.setattr(settings_module, "load_rules", lambda path=None: calls.append(path) or real(path))
    assert run_job(sample_resources(home, n_deals=300), job="ingestion_job").success
    assert len(calls) == 1  # eight assets and their checks share one validated copy
    # a second pull appends to the report; each materialisation reports the stored table's row
    # count under Dagster's standard key
    result = run_job(sample_resources(home, n_deals=300), job="ingestion_job")
    assert len(calls) == 2
    for event in result.get_asset_materialization_events():
        name = event.asset_key.to_user_string()
        assert event.materialization.metadata["dagster/row_count"].value == len(read_table(home, name)), name


def test_every_asset_names_its_table_and_describes_its_columns(home):
    from salesintel_assets.definitions import build_definitions
    from salesintel_assets_tests.support import sample_resources

    specs = list(build_definitions(sample_resources(home)).resolve_all_asset_specs())
    assert len(specs) >= 29
    for spec in specs:
        name = spec.key.to_user_string()
        assert spec.metadata["dagster/table_name"] == f"warehouse.main.{name}"
        columns = spec.metadata["dagster/column_schema"].columns
        assert columns, name
        assert [c.name for c in columns if not c.description] == [], name
