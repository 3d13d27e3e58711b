"""A same-day re-run keeps the champion only when little changed and
nothing else that shapes the model did."""

import pandas as pd

from salesintel_assets.domain.common.rules import load_rules
from salesintel_assets.domain.models import reuse

AS_OF = pd.Timestamp("2026-07-01")


def _tags(rules, code="c1", as_of=AS_OF):
    return {"as_of": str(as_of.date())} | reuse.training_tags(rules, code, pd.Timestamp("2026-07-01 09:00"))


def test_the_champion_is_kept_only_on_the_same_day_with_few_changes_and_same_rules_and_code():
    rules = load_rules().risk
    tags = _tags(rules)
    assert reuse.reuse_reason(tags, AS_OF, rules, "c1", changed=100, total=10_000, degraded=False).startswith("kept")
    assert reuse.reuse_reason(tags, AS_OF, rules, "c1", changed=0, total=10_000, degraded=False).startswith("unchanged")
    share = rules.retrain_changed_share
    assert reuse.reuse_reason(tags, AS_OF, rules, "c1", int(share * 10_000) + 1, 10_000, False) is None
    assert reuse.reuse_reason(tags, AS_OF + pd.Timedelta(days=1), rules, "c1", 0, 10_000, False) is None
    assert reuse.reuse_reason(tags, AS_OF, rules, "c2", 0, 10_000, False) is None            # code changed
    assert reuse.reuse_reason(tags, AS_OF, rules, "c1", 0, 10_000, True) is None             # drifted
    other = rules.model_copy(update={"logistic_c": rules.logistic_c * 2})
    assert reuse.reuse_reason(tags, AS_OF, other, "c1", 0, 10_000, False) is None            # rules changed
    assert reuse.reuse_reason({"as_of": "2026-07-01"}, AS_OF, rules, "c1", 0, 10_000, False) is None  # untagged
