"""An export of won deals only (a report filtered to wins, with the open
pipeline), or of lost ones only, gets no risk model: one would learn that
every deal ends that way and forecast wins from deals that never close."""

import pytest

from salesintel_assets.domain.models import features as rf
from salesintel_assets.domain.models import risk_model as rm
from salesintel_assets_tests.models.test_ranking_features import NO_ACTIVITIES, NO_HISTORY
from salesintel_assets_tests.models_support import sample_tables


@pytest.fixture(scope="module")
def tables():
    return sample_tables(3000, 42)


def _train(tables, fact):
    rules = tables["rules"]
    prepared = rf.prepare(fact.reset_index(drop=True), NO_HISTORY, NO_ACTIVITIES, tables["as_of"], rules.risk,
                          rules.stages.order)
    return rm.train(prepared, rules.risk)


@pytest.mark.parametrize("left_out, kept", [("Lost", "won"), ("Won", "lost")])
def test_an_export_without_one_outcome_gets_no_model_and_says_why(tables, left_out, kept):
    fact = tables["fact"]
    with pytest.raises(rm.NotEnoughData) as refused:
        _train(tables, fact[fact["outcome"] != left_out])
    missing = left_out.lower()
    said = str(refused.value)
    assert said.startswith(f"no {missing} deals among the ") and int(said.split()[5].replace(",", "")) > 1000
    assert said.endswith(f"closed ones: the export probably leaves its {missing} deals out (a report of {kept} "
                         f"deals?), and a model would learn that every deal is {kept}; export the {missing} deals too")


def test_a_handful_of_losses_among_thousands_of_wins_is_still_a_filtered_export(tables):
    fact = tables["fact"]
    lost = fact.index[fact["outcome"].eq("Lost")]
    with pytest.raises(rm.NotEnoughData, match=r"^only 5 lost deals among the [\d,]+ closed ones"):
        _train(tables, fact.drop(lost[5:]))


def test_a_real_mix_of_outcomes_trains(tables):
    assert _train(tables, tables["fact"]).chosen is not None
