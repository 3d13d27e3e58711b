import os

import pytest

from salesintel_assets_tests.support import SHARED_CSV

# Plots are drawn without a display.
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def home(tmp_path):
    """A fresh SALESINTEL_HOME for one test."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def skygeni_csv():
    """The shared public CRM export; tests that need it skip when it is absent."""
    if not SHARED_CSV.exists():
        pytest.skip("shared SkyGeni export not present beside the checkout")
    return SHARED_CSV
