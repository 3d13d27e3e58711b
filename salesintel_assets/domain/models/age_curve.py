"""Win chances past the ages a model learned.

A "won within H days" snapshot is labelled only once its window is over, so
on a young CRM the states a model is fitted on are young: eight months of
history and a 180-day window leave states at most a couple of months old.
A tree or a regression carries what it learned of its oldest states on to
every older deal, and where old open deals linger and win less, those read
high. On a generated CRM eight months old (seed 573 of the outside world,
as of 2024-08-31) the 180-day model's fit reached 47 days while 59 % of the
open deals were older; its 90-day wins read 568 where 446 came, and it
ranked the open deals below deal age alone (AUC 0.715 against 0.729).

How a deal's chance moves with age needs no finished window: the mixture
(``mixture.Mixture``) reads it from every deal's cycle, open ones counted
as open so far (Kaplan-Meier). Fitted on every deal known on the analysis
date, it knows ages the labelled states never reached. Past the age a
model learned up to (``risk_model.reach_age``) a deal keeps the model's
odds at that age, moved by how much the mixture's odds for the same deal
fall between that age and its own. On seed 573 the 90-day wins then read
491 (the open deals over 90 days old 42 where 44 came, 113 before), and
the open deals ranked 0.753, above deal age; on two more such CRMs (seeds
576 and 577, eight and ten months) the 90-day wins read 1.6 % and 6.2 %
high where they read 15.7 % and 11.5 % high.

It is used where many open deals are past the age the model learned up
to (``risk_model.AgeReach.follows_curve``): on a young CRM, and on a long
history whose old open deals never close, where a model's thin oldest
states, squeezed by its calibration, leave them a floor of a chance. It
only ever lowers a deal's chance (``past_reach_shift``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import clone

from salesintel_assets.domain.common import stats
from salesintel_assets.domain.models.features import trustworthy_deals
from salesintel_assets.domain.models.mixture import ODDS_CLIP, Mixture


def every_deal_by(fact: pd.DataFrame, day: pd.Timestamp, max_deals: int, seed: int) -> pd.DataFrame:
    """Every deal known on ``day`` as it stood then, in the rows a mixture
    fits on (one per deal; a random ``max_deals`` of them when more)."""
    deals = trustworthy_deals(fact, day)
    if len(deals) > max_deals:
        deals = deals.sample(max_deals, random_state=seed)
    return deals.assign(snapshot_date=pd.Timestamp(day), won_by_as_of=deals["is_won"].to_numpy(dtype=bool))


def fitted(mixture: Mixture, fact: pd.DataFrame, day: pd.Timestamp, max_deals: int, seed: int) -> Mixture:
    """``mixture`` (unfitted) fitted on every deal known on ``day``."""
    return clone(mixture).fit(every_deal_by(fact, day, max_deals, seed))


def past_reach_shift(curve: Mixture, features: pd.DataFrame, days: int, reach: int) -> np.ndarray:
    """Per deal: the log-odds change of being won within ``days`` between
    age ``reach`` and its own age, read from ``curve``, never above 0; 0
    for deals no older than ``reach``.

    Never above 0: near its floor a curve's odds are noise, and its rises
    there were news nowhere measured. Allowed to raise them, it read
    Growth deals 310-334 days old on outside world 703 as of 2025-12-31 at
    22-44 % (the model 0.7-1.9 %, the world's own 0): 13.1 wins among the
    deals it raised, where the model said 0.6. On young CRMs too (outside
    worlds 693-706 nine and eleven months old, 19 of 28 dates where the
    curve rose somewhere) the 90-day sums of the open deals' chances read
    10.5 % off the world's own on average against 11.6 %, closer on 14."""
    shift = np.zeros(len(features))
    older = features["age_days"].to_numpy(dtype=float) > reach
    if older.any():
        rows = features[older]
        at_reach = rows.assign(age_days=float(reach))
        shift[older] = (stats.logit(curve.within(rows, days), ODDS_CLIP)
                        - stats.logit(curve.within(at_reach, days), ODDS_CLIP))
    return np.minimum(shift, 0.0)
