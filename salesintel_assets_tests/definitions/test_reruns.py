"""Re-runs do only what changed: a pull that brings nothing new since the
last complete run skips every step downstream of it (Dagster skips them: the
pull yields no table) while deliveries still run; a changed deal, rules file
or analysis date recomputes, and the tables equal a fresh full run's."""

import shutil

import dagster as dg
import pandas as pd
import pytest
import yaml

from salesintel_assets.cli import _failed_warnings
from salesintel_assets.definitions import build_definitions
from salesintel_assets.domain.common.run_memo import RunMemo
from salesintel_assets.main_run import execute, pull_skipped
from salesintel_assets.resources.warehouse import SalesintelHome, Warehouse
from salesintel_assets_tests.skygeni_like import skygeni_like_export
from salesintel_assets_tests.support import csv_resources, light_rules, read_table, run_selection

N_DEALS = 600
AS_OF = "2024-07-20"
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
ANALYTICS = ["fact_deals", "deal_history", "deal_metrics", "segment_metrics", "driver_scores", "win_rate_attribution",
             "anomalies", "alerts", "deal_risk_model", "forecast_backtest"]
UP_TO_DRIVERS = "group:ingestion or group:warehouse or key:deal_metrics or key:segment_metrics or key:driver_scores"



def run_main(home, csv, rules, as_of=AS_OF):
    resources = csv_resources(home, csv, as_of=as_of, rules_path=str(rules))
    return execute(build_definitions(resources), "salesintel_job", dg.DagsterInstance.ephemeral(), QUIET,
                   Warehouse(home=SalesintelHome(path=str(home))), warnings=_failed_warnings)


def step_status(results) -> dict[str, str]:
    status = {}
    for event in (e for r in results for e in r.all_events):
        if event.step_key and event.event_type_value in ("STEP_SUCCESS", "STEP_SKIPPED", "STEP_FAILURE"):
            status[event.step_key] = event.event_type_value
    return status


@pytest.fixture(scope="module")
def completed(tmp_path_factory):
    """A home after one complete main run on a 600-deal export."""
    folder = tmp_path_factory.mktemp("reruns")
    csv = folder / "export.csv"
    skygeni_like_export().head(N_DEALS).to_csv(csv, index=False)
    rules = light_rules(folder)
    home = folder / "home"
    results = run_main(home, csv, rules)
    assert all(r.success for r in results) and not pull_skipped(results[0])
    return home, csv, rules


@pytest.fixture
def copied(completed, tmp_path):
    home, csv, rules = completed
    shutil.copytree(home, tmp_path / "home")
    return tmp_path / "home", csv, rules


def test_nothing_new_skips_every_step_after_the_pull_and_changes_no_table(copied, monkeypatch):
    home, csv, rules = copied
    before = {name: read_table(home, name) for name in ANALYTICS}

    def unread(*args, **kwargs):
        raise AssertionError("an unchanged export is recognised by its bytes' digest, not read and parsed again")

    monkeypatch.setattr("salesintel_assets.resources.crm.read_export", unread)
    results = run_main(home, csv, rules)
    assert pull_skipped(results[0]) and all(r.success for r in results)
    status = step_status(results)
    for step in ("fact_deals", "deal_metrics", "anomalies", "deal_risk_model", "forecast_backtest", "alerts"):
        assert status[step] == "STEP_SKIPPED", step
    # the feedback loop and the delivery (retries, escalations, snoozes) still ran
    assert [r.job_def.name for r in results] == ["salesintel_job", "alert_delivery_job"]
    assert status["alert_feedback"] == status["alert_deliveries"] == "STEP_SUCCESS"
    for name, table in before.items():
        pd.testing.assert_frame_equal(read_table(home, name), table, obj=name)


def test_a_changed_deal_changes_its_rows_and_equals_a_fresh_full_run(copied, tmp_path):
    home, csv, rules = copied
    export = pd.read_csv(csv, dtype=str, keep_default_na=False)
    deal = export["deal_id"].iloc[3]
    export.loc[export["deal_id"] == deal, "deal_amount"] = "987654"
    changed_csv = tmp_path / "changed.csv"
    export.to_csv(changed_csv, index=False)
    before = read_table(home, "fact_deals").set_index("deal_id")

    run_selection(csv_resources(home, changed_csv, as_of=AS_OF, rules_path=str(rules)), UP_TO_DRIVERS)
    fresh = tmp_path / "fresh"
    run_selection(csv_resources(fresh, changed_csv, as_of=AS_OF, rules_path=str(rules)), UP_TO_DRIVERS)

    after = read_table(home, "fact_deals").set_index("deal_id")
    assert after.loc[deal, "deal_amount"] == 987654.0
    same = before.index.intersection(after.index)
    old, new = before.loc[same].drop(columns=["_row_hash"]), after.loc[same].drop(columns=["_row_hash"])
    differs = ~((old == new) | (old.isna() & new.isna())).all(axis=1)
    assert set(same[differs]) == {deal}   # only that deal's row
    for name in ("fact_deals", "deal_metrics", "segment_metrics", "driver_scores"):
        mine, theirs = read_table(home, name), read_table(fresh, name)
        key = [c for c in ("deal_id", "dimension", "segment", "period_type", "period") if c in mine.columns]
        mine, theirs = (t.sort_values(key).reset_index(drop=True) for t in (mine, theirs))
        pd.testing.assert_frame_equal(mine, theirs, check_exact=False, rtol=1e-9, obj=name)


def test_a_rules_change_recomputes(copied, tmp_path):
    home, csv, rules = copied
    changed = yaml.safe_load(rules.read_text())
    changed["drivers"]["fdr_alpha"] = 0.07
    other = tmp_path / "other_rules.yaml"
    other.write_text(yaml.safe_dump(changed))
    result = run_selection(csv_resources(home, csv, as_of=AS_OF, rules_path=str(other)), "group:ingestion")
    assert not pull_skipped(result)     # the pull hands the tables on: everything downstream recomputes
    result = run_selection(csv_resources(home, csv, as_of=AS_OF, rules_path=str(rules)), "group:ingestion")
    assert not pull_skipped(result)     # back to the completed rules, but the tables are not from them yet


def test_a_new_analysis_date_recomputes_what_depends_on_it(copied):
    home, csv, rules = copied
    before = read_table(home, "fact_deals").set_index("deal_id")
    result = run_selection(csv_resources(home, csv, as_of="2024-07-21", rules_path=str(rules)),
                           "group:ingestion or group:warehouse or key:segment_metrics")
    assert not pull_skipped(result)
    after = read_table(home, "fact_deals").set_index("deal_id")
    assert (after["as_of_date"] == pd.Timestamp("2024-07-21")).all()
    assert (before["as_of_date"] == pd.Timestamp(AS_OF)).all()


def test_a_run_memo_builds_once_per_key_and_keeps_one_value():
    memo, built = RunMemo(), []

    def build(name):
        def make():
            built.append(name)
            return {"value": name}
        return make

    first = memo.get(("run-1", "db"), build("a"))
    assert memo.get(("run-1", "db"), build("b")) is first   # the same run reuses it
    assert memo.get(("run-2", "db"), build("c")) == {"value": "c"}   # another run builds afresh
    assert built == ["a", "c"]
    memo.clear()
    assert memo.get(("run-2", "db"), build("d")) == {"value": "d"}   # released: built again
    assert built == ["a", "c", "d"]
