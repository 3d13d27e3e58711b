"""The tenants file, how resources pick a run's tenant, the tenant commands
and the sensor that registers new tenants."""

from types import SimpleNamespace

import dagster as dg
import pytest

from salesintel_assets.cli import main
from salesintel_assets.domain.common.tenants import (TenantConfig, TenantError, add_tenant, load_tenants,
                                                     resolve_tenant, tenant_names, tenants_file)
from salesintel_assets.resources.crm import CsvCRM, SampleCRM
from salesintel_assets.resources.mlflow import MLflowTracking
from salesintel_assets.resources.notifier import SlackNotifier
from salesintel_assets.resources.settings import SalesintelSettings
from salesintel_assets.resources.tenancy import TENANTS, TenantCRM
from salesintel_assets.resources.warehouse import SalesintelHome
from salesintel_assets.sensors import tenants_sensor


def _run_for(tenant):
    """What a resource sees of a run for this tenant (its partition tag)."""
    return SimpleNamespace(dagster_run=SimpleNamespace(tags={"dagster/partition": tenant} if tenant else {}))


@pytest.mark.parametrize("text, message", [
    ("tenants:\n  Acme Corp: {}\n", "not allowed"),
    ("tenants:\n  default: {}\n", "cannot be listed"),
    ("tenants:\n  acme: {colour: red}\n", "acme', colour: Extra inputs are not permitted"),
    ("tenants:\n  acme: {slack_token_env: 'xoxb-123-secret'}\n", "not an environment variable name"),
    ("tenants:\n  acme: {source: csv}\n", "no 'csv' path"),
    ("tenants:\n  acme: {source: pipedrive}\n", "source"),
    ("tenants: [acme]\n", "must hold a mapping"),
    ("tenants:\n  acme: {csv: [\n", "not valid YAML"),
])
def test_a_wrong_tenants_file_is_refused_with_one_sentence(tmp_path, text, message):
    tenants_file(tmp_path).write_text(text)
    with pytest.raises(TenantError, match=message):
        load_tenants(tmp_path)


def test_tenants_are_added_resolved_and_unknown_ones_named(tmp_path):
    assert tenant_names(tmp_path) == ["default"] and resolve_tenant(tmp_path, None).root == tmp_path.resolve()
    add_tenant(tmp_path, "acme", TenantConfig(source="csv", csv="exports/acme.csv"))
    add_tenant(tmp_path, "acme", TenantConfig(source="csv", csv="exports/acme.csv"))  # same entry: no-op
    with pytest.raises(TenantError, match="already in .* with other settings"):
        add_tenant(tmp_path, "acme", TenantConfig())
    acme = resolve_tenant(tmp_path, "acme")
    assert acme.root == tmp_path.resolve() / "tenants" / "acme" and acme.model_name == "deal_risk_acme"
    assert acme.path(acme.config.csv) == str(tmp_path.resolve() / "exports" / "acme.csv")  # relative to the file
    with pytest.raises(TenantError, match="tenant 'globex' is not in .*salesintel tenant add globex"):
        resolve_tenant(tmp_path, "globex")


def test_resources_follow_the_runs_tenant(tmp_path, monkeypatch):
    rules = tmp_path / "acme-rules.yaml"
    rules.write_text(_packaged_rules())
    add_tenant(tmp_path, "acme", TenantConfig(source="csv", csv="acme.csv", rules=str(rules), as_of="2024-07-20",
                                              slack_token_env="ACME_SLACK_BOT_TOKEN"))
    add_tenant(tmp_path, "globex", TenantConfig(n_deals=300, seed=9))
    monkeypatch.setenv("ACME_SLACK_BOT_TOKEN", "xoxb-acme")
    home = SalesintelHome(path=str(tmp_path))
    for tenant, root in [(None, tmp_path), ("default", tmp_path), ("acme", tmp_path / "tenants" / "acme")]:
        resource = SalesintelHome(path=str(tmp_path))
        resource.setup_for_execution(_run_for(tenant))
        assert resource.location() == root.resolve()

    mlflow = MLflowTracking(home=home)
    mlflow.setup_for_execution(_run_for("acme"))
    assert (mlflow.registered_name(), mlflow.experiment()) == ("deal_risk_acme", "deal_risk_acme")

    default_slack = "xoxb-default-workspace"
    acme_slack, globex_slack, own_slack = (SlackNotifier(token=default_slack, tenants_home=str(tmp_path))
                                           for _ in range(3))
    acme_slack.setup_for_execution(_run_for("acme"))
    globex_slack.setup_for_execution(_run_for("globex"))
    own_slack.setup_for_execution(_run_for("default"))
    assert acme_slack.active_token() == "xoxb-acme"
    assert not globex_slack.configured()  # no token of its own: never the default workspace's
    assert own_slack.active_token() == default_slack
    monkeypatch.delenv("ACME_SLACK_BOT_TOKEN")
    with pytest.raises(dg.Failure, match="ACME_SLACK_BOT_TOKEN is not set"):
        SlackNotifier(tenants_home=str(tmp_path)).setup_for_execution(_run_for("acme"))

    settings = SalesintelSettings(home=str(tmp_path), as_of="2026-01-01")
    settings.setup_for_execution(_run_for("acme"))
    assert str(settings.analysis_date().date()) == "2024-07-20"
    crm = TenantCRM(default=SampleCRM(), home=str(tmp_path))
    crm.setup_for_execution(_run_for("acme"))
    assert isinstance(crm.source(), CsvCRM) and crm.source().path == str(tmp_path.resolve() / "acme.csv")
    crm.setup_for_execution(_run_for("globex"))
    assert crm.source().n_deals == 300 and crm.default_as_of() is not None
    with pytest.raises(dg.Failure, match="tenant 'nobody' is not in"):
        crm.setup_for_execution(_run_for("nobody"))


def _packaged_rules() -> str:
    from salesintel_assets.domain.common.rules import default_rules_path

    return default_rules_path().read_text()


def test_tenant_commands(tmp_path, capsys):
    export = tmp_path / "acme.csv"
    assert main(["tenant", "add", "acme", "--csv", str(export), "--slack-token-env", "ACME_TOKEN",
                 "--home", str(tmp_path)]) == 0
    assert main(["tenant", "add", "Bad Name", "--home", str(tmp_path)]) == 2
    assert "is not allowed" in capsys.readouterr().err
    assert main(["tenant", "list", "--home", str(tmp_path)]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed == [f"default\t{tmp_path.resolve()}", f"acme\t{tmp_path.resolve() / 'tenants' / 'acme'}"]
    assert load_tenants(tmp_path)["acme"].csv == str(export.resolve())
    assert main(["run", "--tenant", "globex", "--home", str(tmp_path)]) == 2
    assert "tenant 'globex' is not in" in capsys.readouterr().err
    assert main(["backup", "--tenant", "acme", "--to", str(tmp_path / "b"), "--home", str(tmp_path)]) == 2
    assert "no warehouse.duckdb" in capsys.readouterr().err


def test_new_tenants_of_the_file_become_partitions(tmp_path):
    add_tenant(tmp_path, "acme", TenantConfig())
    home = SalesintelHome(path=str(tmp_path))
    with dg.instance_for_test() as instance:
        result = tenants_sensor(dg.build_sensor_context(instance=instance, resources={"home": home}))
        [request] = result.dynamic_partitions_requests
        assert request.partitions_def_name == TENANTS.name and list(request.partition_keys) == ["acme"]
        instance.add_dynamic_partitions(TENANTS.name, ["acme"])
        again = tenants_sensor(dg.build_sensor_context(instance=instance, resources={"home": home}))
        assert "every tenant of the tenants file is registered" in again.skip_message
