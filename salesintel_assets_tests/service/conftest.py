"""One small real pipeline run shared by the service tests: the sample CRM
through every layer, ending with the serving snapshot."""

import shutil

import pytest

from salesintel_assets_tests.support import built_once, light_rules, read_table, run_job, sample_resources

N_DEALS = 1500


@pytest.fixture(scope="session")
def served_base(tmp_path_factory):
    """Built once for all the service test files, whichever workers run them."""
    def build(folder):
        home = folder / "home"
        home.mkdir()
        rules = light_rules(folder)  # the views, not the model, are under test
        run_job(sample_resources(home, n_deals=N_DEALS, rules_path=str(rules)))

    return built_once(tmp_path_factory, "served", build) / "home"


@pytest.fixture
def served_home(served_base, tmp_path):
    """A private copy (tokens, audit log and inbox are per test)."""
    home = tmp_path / "home"
    shutil.copytree(served_base, home, ignore=shutil.ignore_patterns("mlartifacts", "lake", "outbox"))
    return home


@pytest.fixture(scope="session")
def org(served_base):
    """The sales org and every deal's rep, from the warehouse the snapshot was built from."""
    reps = read_table(served_base, "dim_sales_reps")
    deals = read_table(served_base, "fact_deals")[["deal_id", "sales_rep_id", "is_open"]]
    return reps, deals
