"""Who receives an alert: roles of the rules file resolved against the sales
org (``dim_sales_reps``: rep -> manager -> CRO) and the team directory.

An org role that cannot be resolved (a CSV without an org file, a rep with no
manager) goes to the rules' ``fallback_role`` so nothing is silently dropped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from salesintel_assets.domain.common.rules import AlertRules

# The escalation chain of the sales org, lowest level first.
CHAIN = ("rep", "manager", "cro")
# Roles that sit at a level of the chain (sales leadership is the CRO's level).
LEVEL_OF_ROLE = {"rep": 0, "manager": 1, "cro": 2, "sales_leadership": 2}


@dataclass(frozen=True)
class Contact:
    """One recipient. ``slack_channel`` is known for team channels; people are
    found on Slack by their email at delivery time."""

    id: str
    name: str
    role: str
    email: str | None = None
    slack_channel: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _text(value) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return None
    text = str(value).strip()
    return text or None


class Router:
    """Resolves roles to contacts. Built once per run from ``dim_sales_reps``."""

    def __init__(self, reps: pd.DataFrame | None, rules: AlertRules):
        self.rules = rules
        frame = reps if reps is not None else pd.DataFrame(columns=["sales_rep_id"])
        self._reps = {str(row["sales_rep_id"]): row for row in frame.to_dict("records")}
        cros: dict[str, Contact] = {}
        for row in self._reps.values():
            contact = self._person(row, "cro")
            if contact:
                cros.setdefault(contact.id, contact)
        self._cros = list(cros.values())

    def rep_name(self, rep_id: str | None) -> str | None:
        row = self._reps.get(str(rep_id)) if rep_id else None
        return _text(row.get("rep_name")) if row else None

    @staticmethod
    def _person(row: dict, role: str) -> Contact | None:
        if role == "rep":
            ident, name, email = row.get("sales_rep_id"), row.get("rep_name"), row.get("email")
        else:
            ident, name, email = row.get(f"{role}_id"), row.get(f"{role}_name"), row.get(f"{role}_email")
        ident = _text(ident)
        if not ident:
            return None
        return Contact(id=ident, name=_text(name) or ident, role=role, email=_text(email))

    def directory(self, role: str) -> list[Contact]:
        return [Contact(id=e.id, name=e.name, role=role, email=e.email, slack_channel=e.slack_channel)
                for e in self.rules.directory.get(role, [])]

    def _fallback(self) -> list[Contact]:
        return self.directory(self.rules.fallback_role)

    def role(self, role: str, rep_id: str | None) -> list[Contact]:
        """Contacts for one role of one alert (rep_id may be None for segment alerts)."""
        row = self._reps.get(str(rep_id)) if rep_id else None
        if role in ("rep", "manager"):
            contact = self._person(row, role) if row is not None else None
            return [contact] if contact else self._fallback()
        if role == "cro":
            contact = self._person(row, "cro") if row is not None else None
            found = [contact] if contact else list(self._cros)
            return found or self._fallback()
        if role == "sales_leadership":
            return self.role("cro", rep_id) + self.directory("sales_leadership")
        return self.directory(role) or self._fallback()

    def resolve(self, roles: list[str], rep_id: str | None) -> list[Contact]:
        """Contacts for all roles, each person once (first role wins)."""
        seen: dict[str, Contact] = {}
        for role in roles:
            for contact in self.role(role, rep_id):
                seen.setdefault(contact.id, contact)
        return list(seen.values())

    def escalation(self, roles: list[str], rep_id: str | None, level: int) -> list[Contact]:
        """Contacts ``level`` steps above the highest chain role among ``roles``,
        minus people who already received the alert. Empty at the top."""
        levels = [LEVEL_OF_ROLE[r] for r in roles if r in LEVEL_OF_ROLE]
        if not levels:
            return []
        target = max(levels) + level
        if target >= len(CHAIN):
            return []
        already = {c.id for c in self.resolve(roles, rep_id)}
        return [c for c in self.role(CHAIN[target], rep_id) if c.id not in already]
