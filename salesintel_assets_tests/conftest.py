import gc
import os
import shutil
import tempfile

import pytest
from threadpoolctl import threadpool_limits

from salesintel_assets_tests.models_support import seed_mlflow_store
from salesintel_assets_tests.skygeni_like import write_skygeni_like_export

# Plots are drawn without a display.
os.environ.setdefault("MPLBACKEND", "Agg")

MEMORY_TEMP_ROOT = "/dev/shm"
MEMORY_TEMP_NEEDED = 4 * 2**30  # a whole session writes ~0.6 GB; leave room for everything else


def pytest_configure(config):
    _threads_shared_among_workers(config)
    _temporary_folders_in_memory(config)


def _threads_shared_among_workers(config):
    """Each pytest-xdist worker gets its share of the cores for OpenMP and BLAS
    (the gradient boosting's threads), here and in the processes it starts.
    Left to their default, every worker's pools take every core: with two
    workers on two cores a training test took 56 s instead of 35 s."""
    workers = getattr(config, "workerinput", {}).get("workercount")
    if not workers:
        return
    threads = max(1, (os.cpu_count() or 1) // int(workers))
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    threadpool_limits(threads)   # the pools of libraries this process loaded already


def _temporary_folders_in_memory(config):
    """Temporary folders in memory when the machine has room there and nobody
    chose a place (``--basetemp``, TMPDIR). Every warehouse, Dagster event log,
    MLflow store and PostgreSQL here lives in a test's temporary folder, and on a
    disk their per-commit fsyncs are about half of each run's time; no test
    asserts anything about durability across a power cut."""
    if config.option.basetemp or os.environ.get("TMPDIR"):
        return
    if os.path.isdir(MEMORY_TEMP_ROOT) and os.access(MEMORY_TEMP_ROOT, os.W_OK) \
            and shutil.disk_usage(MEMORY_TEMP_ROOT).free >= MEMORY_TEMP_NEEDED:
        tempfile.tempdir = MEMORY_TEMP_ROOT


# The test files that take 25 s or more, longest first (measured with `--durations=0`).
# pytest-xdist hands each file to one worker in collection order (`--no-loadscope-reorder`;
# its default puts files with many tests first, so these few-test files started last and one
# worker ran on alone while the other had nothing left).
LONGEST_FIRST = tuple(f"salesintel_assets_tests/{name}" for name in (
    "models/test_models_assets.py", "deploy/test_daemon.py", "anomalies/test_anomaly_scenarios.py",
    "ingestion/test_ingestion_assets.py", "models/test_risk_model.py", "models/test_quarter_position.py",
    "definitions/test_reruns.py",
    "alerts/test_delivery_faults.py", "ingestion/test_bad_input.py", "definitions/test_hubspot_run.py",
    "ingestion/test_open_deals_without_amount.py", "definitions/test_cli.py", "definitions/test_salesforce_run.py",
    "tenants/test_recovery.py", "alerts/test_delivery.py", "models/test_trust.py", "service/test_slack.py",
    "tenants/test_isolation.py", "models/test_ranking_features.py", "sources/test_hubspot.py",
    "models/test_verdict.py", "anomalies/test_anomalies.py",
))


def pytest_collection_modifyitems(config, items):
    rank = {path: place for place, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))  # stable: the rest keep their order


@pytest.fixture(autouse=True, scope="module")
def _earlier_objects_frozen():
    """Python's full collections (and the product's own, after a large pull)
    walk every live object, and this test process holds the whole session's
    imports, definitions and fixtures: ~0.4 s a collection. Moving what
    exists when a module starts out of the collector's reach (``gc.freeze``)
    leaves each collection only the module's own objects."""
    gc.freeze()
    yield


@pytest.fixture
def home(tmp_path):
    """A fresh SALESINTEL_HOME for one test, its MLflow store already
    migrated (an empty copy; MLflow's own migrations take 2-6 s a home)."""
    path = tmp_path / "home"
    seed_mlflow_store(path)
    return path


@pytest.fixture
def contract_env(monkeypatch):
    """The CLI writes the run-time contract's variables; monkeypatch restores them."""
    for name in ("SALESINTEL_HOME", "SALESINTEL_SOURCE", "SALESINTEL_CSV", "SALESINTEL_AS_OF", "DAGSTER_HOME"):
        monkeypatch.setenv(name, "")


@pytest.fixture(scope="session")
def skygeni_csv(tmp_path_factory):
    """A generated export shaped like the public SkyGeni sample (12 columns,
    5,000 closed deals, 25 reps, a weak signal): see ``skygeni_like.py``."""
    return write_skygeni_like_export(tmp_path_factory.mktemp("skygeni") / "skygeni_like.csv")
