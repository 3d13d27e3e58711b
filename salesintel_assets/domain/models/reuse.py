"""When a re-run may keep the latest model version instead of training.

Training (and the backtest, which retrains at past dates) is the costliest
work of a run. The latest version trained on the same analysis date --
the champion, or a challenger that was not promoted (a weak model is never
champion, so a CRM whose model is weak would otherwise retrain on every
re-run) -- is kept when it was trained with the same risk rules and code,
has not drifted, and at most ``risk.retrain_changed_share`` of the deals
changed since it was trained; otherwise a new version is trained as before.
A new day always retrains. The backtest is kept with it only when it was
computed for the same analysis date.
"""

from __future__ import annotations

import pandas as pd

from salesintel_assets.domain.common.reruns import rules_digest
from salesintel_assets.domain.common.rules import RiskRules
from salesintel_assets.domain.models.forecast_trust import LATE_STATUS

KEPT, UNCHANGED = "kept", "unchanged"   # the model table's status of a kept version
NO_CHANGE = "no deal changed since it was trained on this analysis date"
TRAINED_AT = "trained_at"     # model version tags written at training
RULES_DIGEST = "risk_rules_digest"
CODE = "code_fingerprint"


def training_tags(rules: RiskRules, code: str, trained_at: pd.Timestamp) -> dict:
    return {TRAINED_AT: trained_at.isoformat(), RULES_DIGEST: rules_digest(rules), CODE: code}


def reuse_reason(tags: dict, as_of: pd.Timestamp, rules: RiskRules, code: str, changed: int, total: int,
                 degraded: bool) -> str | None:
    """Why the version with these tags may be kept ("unchanged: ..." when no
    deal changed, "kept: ..." when few did), or None (train)."""
    if tags.get("as_of") != str(pd.Timestamp(as_of).date()) or TRAINED_AT not in tags:
        return None
    if tags.get(RULES_DIGEST) != rules_digest(rules) or tags.get(CODE) != code or degraded or not total:
        return None
    if changed > rules.retrain_changed_share * total:
        return None
    if not changed:
        return f"{UNCHANGED}: {NO_CHANGE}"
    return (f"{KEPT}: {changed:,} of {total:,} deals changed since it was trained on this analysis date "
            f"(retrained above {rules.retrain_changed_share:.0%}, on a new day, new rules or code, or drift)")



def latest_trained(versions, as_of: pd.Timestamp):
    """Of ``versions`` (objects with ``tags``: the champion, the challenger),
    the one trained last for this analysis date, or None."""
    day = str(pd.Timestamp(as_of).date())
    today = [v for v in versions if v is not None and v.tags.get("as_of") == day and TRAINED_AT in v.tags]
    return max(today, key=lambda v: pd.Timestamp(v.tags[TRAINED_AT]), default=None)


def was_reused(decision) -> bool:
    """Whether a model-table decision says a version was kept by this rule
    (not trained, nor found unchanged by its training fingerprint)."""
    text = str(decision or "")
    return text.startswith(f"{KEPT}: ") or text == f"{UNCHANGED}: {NO_CHANGE}"


def kept_backtest(models: pd.DataFrame | None, stored: pd.DataFrame | None, as_of: pd.Timestamp,
                  horizon_days: int) -> str | None:
    """Why the stored backtest still holds (this run kept the model version
    and the backtest was computed for this analysis date), or None."""
    if models is None or not len(models) or stored is None or not len(stored):
        return None
    last = models.iloc[-1]
    if pd.Timestamp(last["as_of_date"]) != pd.Timestamp(as_of) or not was_reused(last.get("decision")):
        return None
    replayed = stored[~stored["status"].astype(str).str.startswith(LATE_STATUS)] if "status" in stored else stored
    latest = pd.to_datetime(replayed["analysis_date"]).max()
    if latest != pd.Timestamp(as_of) - pd.Timedelta(days=horizon_days):
        return None
    return f"kept with model version {last['version']}: {last['decision']}"
