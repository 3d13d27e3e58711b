import os

import pytest

from salesintel_assets_tests.skygeni_like import write_skygeni_like_export

# Plots are drawn without a display.
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def home(tmp_path):
    """A fresh SALESINTEL_HOME for one test."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def skygeni_csv(tmp_path_factory):
    """A generated export shaped like the public SkyGeni sample (12 columns,
    5,000 closed deals, 25 reps, a weak signal): see ``skygeni_like.py``."""
    return write_skygeni_like_export(tmp_path_factory.mktemp("skygeni") / "skygeni_like.csv")
