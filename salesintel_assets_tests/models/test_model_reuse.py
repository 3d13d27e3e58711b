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


class _Version:
    def __init__(self, version, tags):
        self.version, self.tags = version, tags


def test_the_latest_version_trained_that_day_is_the_one_reused_champion_or_not():
    rules = load_rules().risk
    yesterday = _Version(3, _tags(rules, as_of=AS_OF - pd.Timedelta(days=1)))
    weak = _Version(4, {"as_of": str(AS_OF.date()), "model_verdict": "weak"}
                    | reuse.training_tags(rules, "c1", pd.Timestamp("2026-07-01 10:00")))
    # a weak model is never champion: the day's challenger is the version a re-run keeps
    assert reuse.latest_trained([yesterday, weak], AS_OF) is weak
    assert reuse.latest_trained([None, weak], AS_OF) is weak
    assert reuse.latest_trained([yesterday, None], AS_OF) is None      # a new day always retrains
    earlier = _Version(5, _tags(rules))                               # trained at 09:00 the same day
    assert reuse.latest_trained([earlier, weak], AS_OF) is weak


def test_the_backtest_is_kept_only_when_this_run_kept_the_model_for_the_same_analysis_date():
    rules = load_rules().risk
    kept = reuse.reuse_reason(_tags(rules), AS_OF, rules, "c1", changed=100, total=10_000, degraded=False)
    horizon = rules.forecast.backtest_horizon_days
    stored = pd.DataFrame({"analysis_date": [AS_OF - pd.Timedelta(days=horizon + 30), AS_OF - pd.Timedelta(days=horizon)]})
    models = pd.DataFrame({"as_of_date": [AS_OF], "version": [4], "status": ["kept"], "decision": [kept]})
    assert reuse.kept_backtest(models, stored, AS_OF, horizon).startswith("kept with model version 4")
    trained = models.assign(status="trained", decision="challenger v4 not promoted")
    assert reuse.kept_backtest(trained, stored, AS_OF, horizon) is None          # trained this run: replay again
    fingerprint = models.assign(status="unchanged", decision="unchanged: version 3 was trained on the same data")
    assert reuse.kept_backtest(fingerprint, stored, AS_OF, horizon) is None
    older = stored.assign(analysis_date=stored["analysis_date"] - pd.Timedelta(days=1))
    assert reuse.kept_backtest(models, older, AS_OF, horizon) is None            # computed for another day
    assert reuse.kept_backtest(models, stored.iloc[:0], AS_OF, horizon) is None
    # the latest short windows' row is dated later than the replayed dates
    late = pd.DataFrame({"analysis_date": [AS_OF - pd.Timedelta(days=30)] * 2,
                         "status": ["late window", "late window: not enough data: 12 closed deals"]})
    with_late = pd.concat([stored.assign(status="ok"), late], ignore_index=True)
    assert reuse.kept_backtest(models, with_late, AS_OF, horizon).startswith("kept with model version 4")
