"""The README's main command: `salesintel run` materialises every asset and
prints what it found and where to look."""

from salesintel_assets.cli import main
from salesintel_assets_tests.support import light_rules, read_table


def test_run_on_the_shared_export_prints_an_honest_summary(contract_env, home, skygeni_csv, capsys, monkeypatch,
                                                           tmp_path):
    monkeypatch.setenv("SALESINTEL_RULES", str(light_rules(tmp_path)))   # the command is under test, not the model
    code = main(["run", "--csv", str(skygeni_csv), "--as-of", "2024-07-20", "--home", str(home)])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0
    assert "INFO mlflow" not in captured.err and "UserWarning" not in captured.err   # only what needs a reader
    assert "deals                5,000 (5,000 closed, 0 open)" in out
    assert "win rate             45.3% of closed deals" in out
    assert "anomalies            0" in out and "alerts               0" in out
    assert str(home / "warehouse.duckdb") in out
    assert len(read_table(home, "fact_deals")) == 5000
    assert read_table(home, "driver_scores")["significant"].sum() == 0
    _assert_recorded_in_the_project_instance(home / "dagster_home", out)


def _assert_recorded_in_the_project_instance(folder, out):
    """The UI the summary points to (`salesintel ui` on this folder) shows the
    run, its materialisations and its check results."""
    import dagster as dg

    assert f"DAGSTER_HOME={folder})" in out
    instance = dg.DagsterInstance.from_config(str(folder))
    [run] = instance.get_runs()
    assert run.job_name == "salesintel_job" and run.status == dg.DagsterRunStatus.SUCCESS
    for key in ("raw_deals", "fact_deals", "deal_risk_scores", "alerts"):
        event = instance.get_latest_materialization_event(dg.AssetKey(key))
        assert event is not None and event.run_id == run.run_id, key
    checks = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    assert len(checks) >= 20


def test_run_reports_a_broken_export_and_fails(contract_env, home, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("deal_id,amount\nD1,10\n")
    code = main(["run", "--csv", str(bad), "--home", str(home)])
    captured = capsys.readouterr()
    assert code == 2
    assert "has no column(s) created_date, closed_date" in captured.err
    assert "Traceback" not in captured.err + captured.out and "Not executing" not in captured.err


def _check_event(name, passed, severity, description=None):
    import dagster as dg
    from types import SimpleNamespace

    data = SimpleNamespace(check_name=name, passed=passed, severity=getattr(dg.AssetCheckSeverity, severity),
                           description=description)
    return SimpleNamespace(is_step_failure=False, event_type_value="ASSET_CHECK_EVALUATION",
                           event_specific_data=data)


def test_failed_checks_of_every_severity_are_shown_and_errors_fail_the_run():
    from types import SimpleNamespace

    from salesintel_assets.run_outcome import read_outcome

    warning_only = read_outcome(SimpleNamespace(all_events=[
        _check_event("model_beats_baseline", False, "WARN", "no better than deal age"),
        _check_event("fact_deals_schema_valid", True, "ERROR")]))
    assert warning_only.exit_code == 0 and warning_only.lines() == []   # the summary lists warnings itself
    assert warning_only.failed_checks == [("model_beats_baseline", "warning", "no better than deal age")]
    with_error = read_outcome(SimpleNamespace(all_events=[_check_event("fact_deals_schema_valid", False, "ERROR")]))
    assert with_error.exit_code == 1 and any("fact_deals_schema_valid (error)" in line for line in with_error.lines())
    breaker = read_outcome(SimpleNamespace(all_events=[
        _check_event("pull_within_error_budget", False, "ERROR", "The pull from x.csv was not merged: ...")]))
    assert breaker.exit_code == 2 and breaker.blocked.startswith("The pull from x.csv")


def test_ui_opens_dagster_on_the_instance_that_run_records_into(contract_env, home, monkeypatch, capsys):
    import subprocess

    started = {}
    monkeypatch.setattr(subprocess, "call", lambda command, env: started.update(command=command, env=env) or 0)
    assert main(["ui", "--home", str(home), "--port", "3111"]) == 0
    assert started["command"][1:] == ["-m", "dagster", "dev", "-m", "salesintel_assets.definitions",
                                      "--host", "127.0.0.1", "--port", "3111"]
    assert started["env"]["DAGSTER_HOME"] == str(home / "dagster_home")
    assert (home / "dagster_home" / "dagster.yaml").read_text().startswith("# The embedded Dagster instance")
    assert "http://127.0.0.1:3111" in capsys.readouterr().out
