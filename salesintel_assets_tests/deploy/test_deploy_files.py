"""The files of ``deploy/`` agree with each other and with the code
location: one image and one code location name everywhere, secrets only
from the environment, the instance on PostgreSQL with one run at a time.
(Docker itself is not run by the tests; ``test_daemon.py`` runs the same
processes and the same instance file on this machine.)"""

import configparser
import re
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
LOCATION = "salesintel"
MODULE = "salesintel_assets.definitions"


def _yaml(name):
    return yaml.safe_load((DEPLOY / name).read_text())


def _env_names(node) -> set[str]:
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return {node["env"]}
        return set().union(*(_env_names(v) for v in node.values())) if node else set()
    return set()


def test_instance_is_on_postgres_with_every_value_from_the_environment():
    instance = _yaml("dagster.yaml")
    database = instance["storage"]["postgres"]["postgres_db"]
    assert all(isinstance(database[k], dict) for k in ("hostname", "port", "username", "password", "db_name"))
    assert instance["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert instance["run_coordinator"]["config"]["max_concurrent_runs"] == 1  # one DuckDB writer
    example = {line.split("=", 1)[0] for line in (DEPLOY / ".env.example").read_text().splitlines()
               if re.match(r"^[A-Z_]+=", line)}
    assert _env_names(instance) <= example


def test_compose_runs_every_service_from_one_image_with_secrets_from_the_env_file():
    compose = _yaml("docker-compose.yml")
    services = compose["services"]
    assert set(services) == {"postgres", "code", "webserver", "daemon", "serve"}
    code = services["code"]["command"]
    assert code[:3] == ["dagster", "code-server", "start"] and MODULE in code and LOCATION in code
    for name in ("webserver", "daemon"):
        assert "/opt/dagster/home/workspace.yaml" in services[name]["command"]
    for name in ("code", "webserver", "daemon", "serve"):
        assert services[name]["env_file"] == ".env" and services[name]["image"] == "salesintel:latest"
    assert "salesintel_home:/var/lib/salesintel" in services["code"]["volumes"]
    assert "salesintel_home:/var/lib/salesintel" in services["serve"]["volumes"]
    text = (DEPLOY / "docker-compose.yml").read_text()
    written = re.findall(r"^\s*\w*(?:PASSWORD|TOKEN|SECRET)\w*:\s*(?!\$\{)\S.*$", text, flags=re.MULTILINE)
    assert not written, f"secrets written into the compose file: {written}"
    assert "POSTGRES_PASSWORD: ${DAGSTER_POSTGRES_PASSWORD:?" in text


def test_workspaces_point_at_the_code_location_process():
    for name, host in [("workspace.yaml", "code"), ("systemd/workspace.yaml", "127.0.0.1")]:
        [entry] = _yaml(name)["load_from"]
        assert entry["grpc_server"] == {"host": host, "port": 4000, "location_name": LOCATION}


def test_systemd_units_start_the_same_processes_from_the_environment_file():
    commands = {}
    for unit in sorted((DEPLOY / "systemd").glob("salesintel-*.service")):
        parsed = configparser.ConfigParser(strict=False, interpolation=None)
        parsed.read(unit)
        assert parsed["Service"]["EnvironmentFile"] == "/etc/salesintel/salesintel.env"
        commands[unit.stem] = parsed["Service"]["ExecStart"]
    assert set(commands) == {"salesintel-code", "salesintel-daemon", "salesintel-webserver", "salesintel-serve"}
    assert "code-server start" in commands["salesintel-code"] and MODULE in commands["salesintel-code"]
    assert "dagster-daemon run" in commands["salesintel-daemon"]
    assert "salesintel serve" in commands["salesintel-serve"]
