"""Who sees what. Roles follow the org chain in ``dim_sales_reps``: a rep sees
their own deals, a manager their team's (the reps whose ``manager_id`` is the
token's id), a leader everything, and the data team everything plus the
quality and model views. A scope is the set of visible rep ids, or None for
everyone."""

from __future__ import annotations

import pandas as pd

from salesintel_assets.service.tokens import Principal

EVERYONE_ROLES = ("leader", "data")
Scope = frozenset | None


def visible_reps(who: Principal, reps: pd.DataFrame | None) -> Scope:
    if who.role in EVERYONE_ROLES:
        return None
    if who.role == "rep":
        return frozenset([who.rep_id])
    if reps is None or reps.empty:
        return frozenset()
    team = reps.loc[reps["manager_id"].astype(str).eq(str(who.rep_id)), "sales_rep_id"]
    return frozenset(team.astype(str))


def sees_quality(who: Principal) -> bool:
    return who.role == "data"


def sees_alert(who: Principal, scope: Scope, sales_rep_id, recipients) -> bool:
    """Everyone sees alerts about their deals and alerts addressed to them."""
    if scope is None:
        return True
    addressed = who.rep_id is not None and who.rep_id in str(recipients or "").split(",")
    return addressed or (sales_rep_id is not None and str(sales_rep_id) in scope)
