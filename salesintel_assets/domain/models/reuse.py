"""When a re-run may keep the registered champion instead of training.

Training (and the backtest, which retrains at past dates) is the costliest
work of a run. A champion is kept when it was trained on the same analysis
date, with the same risk rules and code, has not drifted, and at most
``risk.retrain_changed_share`` of the deals changed since it was trained;
otherwise a new version is trained as before. A new day always retrains.
"""

from __future__ import annotations

import pandas as pd

from salesintel_assets.domain.common.reruns import rules_digest
from salesintel_assets.domain.common.rules import RiskRules

TRAINED_AT = "trained_at"     # model version tags written at training
RULES_DIGEST = "risk_rules_digest"
CODE = "code_fingerprint"


def training_tags(rules: RiskRules, code: str, trained_at: pd.Timestamp) -> dict:
    return {TRAINED_AT: trained_at.isoformat(), RULES_DIGEST: rules_digest(rules), CODE: code}


def reuse_reason(tags: dict, as_of: pd.Timestamp, rules: RiskRules, code: str, changed: int, total: int,
                 degraded: bool) -> str | None:
    """Why the champion with these tags may be kept ("unchanged: ..." when no
    deal changed, "kept: ..." when few did), or None (train)."""
    if tags.get("as_of") != str(pd.Timestamp(as_of).date()) or TRAINED_AT not in tags:
        return None
    if tags.get(RULES_DIGEST) != rules_digest(rules) or tags.get(CODE) != code or degraded or not total:
        return None
    if changed > rules.retrain_changed_share * total:
        return None
    if not changed:
        return "unchanged: no deal changed since it was trained on this analysis date"
    return (f"kept: {changed:,} of {total:,} deals changed since it was trained on this analysis date "
            f"(retrained above {rules.retrain_changed_share:.0%}, on a new day, new rules or code, or drift)")
