"""How far the states a model was fitted on reach into today's open deals'
ages: a young CRM whose deals linger is told its probabilities rest on
younger deals; a long history whose oldest open deals never close is not."""

import numpy as np
import pandas as pd

from salesintel_assets.domain.models import risk_model as rm

AS_OF = pd.Timestamp("2024-08-31")


def _fact(days: int, never_share: float, cycle_days: tuple[int, int], seed: int = 4) -> pd.DataFrame:
    """A deal a day for ``days`` days up to ``AS_OF``; ``never_share`` never
    close, the rest are won (one in two) or lost after ``cycle_days``."""
    rng = np.random.default_rng(seed)
    created = AS_OF - pd.to_timedelta(np.arange(days)[::-1], unit="D")
    closed = created + pd.to_timedelta(rng.integers(*cycle_days, days), unit="D")
    closed = pd.Series(closed).where((rng.random(days) >= never_share) & (closed <= AS_OF))
    return pd.DataFrame({"created_date": created, "closed_date": closed, "is_open": closed.isna(),
                         "is_won": closed.notna() & (rng.random(days) < 0.5), "needs_review": False})


def _fitted_on(oldest_days: int) -> pd.DataFrame:
    return pd.DataFrame({"age_days": np.arange(oldest_days + 1)})


def test_a_young_crm_whose_open_deals_are_older_than_the_fit_is_told_so():
    fact = _fact(240, never_share=0.3, cycle_days=(10, 200))        # eight months, wins up to 200 days in
    reach = rm.age_reach(fact, AS_OF, _fitted_on(47))
    assert reach.short and reach.oldest_state == 47
    assert reach.older_open > 0.5 and reach.wins_past > 0.3
    assert reach.sentence(180).startswith(
        f"the history is short for the open deals' ages: {reach.older_open:.0%} of them are older than any deal "
        f"the 180-day model learned from (47 days), while {reach.wins_past:.0%} of the wins so far came at older ages")


def test_open_deals_older_than_the_fit_that_never_close_are_no_finding():
    # three years without a clean-up: the oldest open deals never close, and every win came within 120 days
    fact = _fact(1100, never_share=0.3, cycle_days=(10, 120))
    reach = rm.age_reach(fact, AS_OF, _fitted_on(500))
    assert reach.older_open > rm.MAX_OLDER_OPEN_SHARE and reach.wins_past == 0 and not reach.short
    # ... though the deals past the age the fit learned up to (nine in ten of its states are younger) still
    # follow the age curve
    assert reach.reach_age == 450 and reach.past_reach_open > reach.older_open and reach.follows_curve


def test_few_open_deals_older_than_the_fit_are_no_finding():
    fact = _fact(240, never_share=0.0, cycle_days=(10, 200))         # wins late, but little lingers
    reach = rm.age_reach(fact, AS_OF, _fitted_on(150))
    assert reach.wins_past > rm.MIN_WINS_PAST_SHARE and reach.older_open <= rm.MAX_OLDER_OPEN_SHARE
    assert not reach.short


def test_no_fitted_state_is_no_reading():
    assert rm.age_reach(_fact(240, 0.3, (10, 200)), AS_OF, _fitted_on(0).iloc[:0]) is None
