"""The leakage screen scores a category through its levels' counts: the same
AUC as scoring every deal, ties counted one half."""

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from salesintel_assets.domain.common import leakage


def test_level_auc_equals_the_auc_over_deals():
    rng = np.random.default_rng(3)
    level = rng.integers(0, 30, 5000)
    won = rng.random(5000) < 0.2 + level / 60
    rates = pd.Series(won.astype(float)).groupby(level).transform("mean").to_numpy()
    counts = pd.DataFrame({"level": level, "won": won}).groupby("level")["won"].agg(["sum", "size"])
    by_level = leakage._tied_auc((counts["sum"] / counts["size"]).to_numpy(), counts["sum"].to_numpy(),
                                 (counts["size"] - counts["sum"]).to_numpy())
    assert abs(by_level - roc_auc_score(won, rates)) < 1e-12


def test_a_category_that_encodes_the_outcome_is_named_and_an_honest_one_is_not():
    rng = np.random.default_rng(4)
    won = rng.random(2000) < 0.4
    honest = pd.Series(rng.choice(["SaaS", "FinTech", None], 2000), dtype=object)
    leaky = pd.Series(np.where(won, "signed", "dead"), dtype=object)
    assert leakage._encodes_outcome("industry", honest, won) is None
    assert "encodes the outcome" in leakage._encodes_outcome("status", leaky, won)


def test_empty_mask_reads_each_distinct_value_as_every_row_would():
    odd = [None, np.nan, pd.NA, "", "  ", " Unknown ", "UNKNOWN", "unknown x", "x", 0, 1.5, "Unknown", "", "x"]
    for values in (pd.Series(odd, dtype=object), pd.Series([1.0, np.nan, 0.0]), pd.Series([], dtype=object),
                   pd.Series([None, None], dtype=object)):
        naive = (values.isna() | values.astype(str).str.strip().str.lower().isin(leakage.EMPTY_VALUES)).to_numpy()
        assert leakage.empty_mask(values).tolist() == naive.tolist()
