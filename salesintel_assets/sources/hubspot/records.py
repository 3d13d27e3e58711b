"""HubSpot objects (JSON dicts) to the export format, stage history,
activities and the sales org. Plain functions, no I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Callable, Iterable

import pandas as pd

ENGAGEMENT_TYPES = {"calls": "call", "emails": "email", "meetings": "meeting", "notes": "note", "tasks": "task"}
PRIMARY_COMPANY_TYPE_ID = 5  # HubSpot's deal -> company "Primary" association


@dataclass(frozen=True)
class PropertyNames:
    """Which HubSpot properties carry the fields HubSpot has no standard
    property for (defaults are custom properties of those names)."""

    product_type: str = "product_type"
    lead_source: str = "lead_source"
    industry: str = "industry"   # on the deal's primary company
    region: str = "region"       # on the deal's primary company

    @property
    def required_deal(self) -> tuple[str, ...]:
        return ("createdate", "closedate", "dealstage", "amount", "hubspot_owner_id", "hs_lastmodifieddate",
                self.product_type, self.lead_source)

    @property
    def company(self) -> tuple[str, ...]:
        return (self.industry, self.region)


@dataclass(frozen=True)
class Stage:
    label: str
    canonical: str | None   # None: a lost close (the deal keeps the stage it was lost in)
    closed: bool
    won: bool


def stage_table(pipelines: list[dict], canonical: Callable[[str], str | None], closed_stage: str) -> dict[str, Stage]:
    """Stage id -> what it means: won and lost from the stage metadata
    (``isClosed``, ``probability``), labels mapped to canonical stages by
    ``canonical`` (the rules file); an unmapped open label is kept as is."""
    table = {}
    for pipeline in pipelines:
        for stage in pipeline.get("stages", []):
            meta = stage.get("metadata") or {}
            closed = str(meta.get("isClosed", "false")).lower() == "true"
            won = closed and float(meta.get("probability") or 0) >= 1.0
            label = stage.get("label") or stage["id"]
            name = closed_stage if won else None if closed else (canonical(label) or label)
            table[stage["id"]] = Stage(label, name, closed, won)
    return table


def _day(iso: str | None) -> str:
    return iso[:10] if iso else ""


def _second(iso: str | None) -> str:
    return iso[:19].replace(" ", "T") if iso else ""


def stage_entries(history: Iterable[dict], stages: dict[str, Stage], until: pd.Timestamp | None) -> list[tuple[str, str]]:
    """(canonical stage, entered at ISO second) oldest first, without lost
    closes and repeats; changes at or after ``until`` belong to the next pull."""
    limit = _second(until.isoformat()) if until is not None else None
    entries = []
    for change in sorted(history, key=lambda h: h.get("timestamp") or ""):
        at = _second(change.get("timestamp"))
        if limit and at >= limit:
            continue
        stage = stages.get(change.get("value") or "")
        name = stage.canonical if stage else change.get("value")
        if name and (not entries or entries[-1][0] != name):
            entries.append((name, at))
    return entries


def deal_frames(deals: list[dict], histories: dict[str, list[dict]], companies: dict[str, dict],
                stages: dict[str, Stage], names: PropertyNames,
                until: pd.Timestamp | None) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(deals in the export format, stage history, required deal properties
    HubSpot did not deliver). A missing property leaves its column out, so
    the schema gate blocks the pull and names it."""
    rows, history_rows = [], []
    delivered: set[str] = set()
    for deal in deals:
        p = deal.get("properties") or {}
        delivered.update(p)
        entries = stage_entries(histories.get(deal["id"], []), stages, until)
        stage = stages.get(p.get("dealstage") or "")
        if stage is None:
            outcome, deal_stage = "Open", p.get("dealstage") or ""
        elif stage.closed:
            outcome = "Won" if stage.won else "Lost"
            deal_stage = stage.canonical or (entries[-1][0] if entries else "")
        else:
            outcome, deal_stage = "Open", stage.canonical
        created, closed = _day(p.get("createdate")), _day(p.get("closedate")) if outcome != "Open" else ""
        cycle = ""
        if created and closed:
            cycle = str((date.fromisoformat(closed) - date.fromisoformat(created)).days)
        entered = next((at for name, at in reversed(entries) if name == deal_stage), "")
        company = companies.get(deal["id"], {})
        rows.append({
            "deal_id": deal["id"], "created_date": created, "closed_date": closed,
            "sales_rep_id": p.get("hubspot_owner_id") or "",
            "industry": company.get(names.industry) or "", "region": company.get(names.region) or "",
            "product_type": p.get(names.product_type) or "", "lead_source": p.get(names.lead_source) or "",
            "deal_stage": deal_stage, "deal_amount": p.get("amount") or "", "sales_cycle_days": cycle,
            "outcome": outcome, "last_modified": _second(p.get("hs_lastmodifieddate")),
            "stage_entered_date": _day(entered),
            # Everything HubSpot sent, known or not: kept in the raw lake, ignored downstream.
            "hubspot_properties": json.dumps(p, sort_keys=True),
        })
        history_rows.extend((deal["id"], name, at) for name, at in entries)
    missing = [name for name in names.required_deal if deals and name not in delivered]
    frame = pd.DataFrame(rows, columns=list(rows[0]) if rows else None, dtype=object)
    column_of = {names.product_type: "product_type", names.lead_source: "lead_source", "createdate": "created_date",
                 "closedate": "closed_date", "dealstage": "deal_stage", "amount": "deal_amount",
                 "hubspot_owner_id": "sales_rep_id", "hs_lastmodifieddate": "last_modified"}
    frame = frame.drop(columns=[column_of[m] for m in missing if column_of.get(m) in frame.columns])
    history = pd.DataFrame(history_rows, columns=["deal_id", "stage", "entered_date"])
    history["entered_date"] = pd.to_datetime(history["entered_date"]).astype("datetime64[ns]")
    return frame, history, missing


def primary_companies(associations: list[dict]) -> dict[str, str]:
    """deal id -> its primary company id (else its first company)."""
    found = {}
    for row in associations:
        targets = row.get("to") or []
        primary = [t for t in targets if any(a.get("typeId") == PRIMARY_COMPANY_TYPE_ID
                                             for a in t.get("associationTypes") or [])]
        chosen = (primary or sorted(targets, key=lambda t: int(t["toObjectId"])))[:1]
        if chosen:
            found[str(row["from"]["id"])] = str(chosen[0]["toObjectId"])
    return found


def activity_frame(engagements: dict[str, list[dict]], deal_of: dict[str, str]) -> pd.DataFrame:
    """activity_id, deal_id, sales_rep_id, activity_type, activity_date for
    engagements associated with a deal (type -> search results)."""
    rows = []
    for kind, results in engagements.items():
        for item in results:
            deal = deal_of.get(item["id"])
            if deal is None:
                continue
            p = item.get("properties") or {}
            rows.append((item["id"], deal, p.get("hubspot_owner_id") or "", ENGAGEMENT_TYPES[kind],
                         _second(p.get("hs_timestamp") or p.get("hs_createdate"))))
    frame = pd.DataFrame(rows, columns=["activity_id", "deal_id", "sales_rep_id", "activity_type", "activity_date"])
    frame["activity_date"] = pd.to_datetime(frame["activity_date"]).astype("datetime64[ns]")
    return frame.drop_duplicates("activity_id", keep="last").reset_index(drop=True)


def first_deal(associations: list[dict]) -> dict[str, str]:
    """engagement id -> the lowest deal id it is associated with."""
    found = {}
    for row in associations:
        deals = sorted((int(t["toObjectId"]) for t in row.get("to") or []))
        if deals:
            found[str(row["from"]["id"])] = str(deals[0])
    return found


def org_frame(owners: list[dict], users: list[dict], roles: list[dict], manager_role: str,
              cro_role: str) -> pd.DataFrame:
    """rep -> manager -> CRO from HubSpot's own org: every owner is a rep of
    their primary team; the team's manager is the team member whose user role
    is ``manager_role``; the CRO is the user whose role is ``cro_role``."""
    role_of_user = {str(u["id"]): {str(r["id"]): r.get("name") for r in roles}.get(str(u.get("roleId")))
                    for u in users}
    people = []
    for owner in owners:
        teams = owner.get("teams") or []
        primary = next((t for t in teams if t.get("primary")), teams[0] if teams else None)
        people.append({"id": str(owner["id"]), "name": " ".join(filter(None, [owner.get("firstName"),
                                                                               owner.get("lastName")])),
                       "email": owner.get("email") or "", "team_id": str(primary["id"]) if primary else None,
                       "team": primary.get("name") if primary else None,
                       "role": role_of_user.get(str(owner.get("userId")))})
    managers = {p["team_id"]: p for p in people if p["role"] == manager_role and p["team_id"]}
    cro = next((p for p in people if p["role"] == cro_role), None)
    rows = []
    for p in people:
        manager = managers.get(p["team_id"]) if p["role"] != manager_role else None
        boss = manager or (cro if p["role"] == manager_role else None)
        rows.append({
            "sales_rep_id": p["id"], "rep_name": p["name"] or p["email"] or p["id"], "email": p["email"],
            "team": p["team"], "manager_id": boss["id"] if boss else None,
            "manager_name": boss["name"] if boss else None, "manager_email": boss["email"] if boss else None,
            "cro_id": cro["id"] if cro else None, "cro_name": cro["name"] if cro else None,
            "cro_email": cro["email"] if cro else None,
        })
    return pd.DataFrame(rows, columns=["sales_rep_id", "rep_name", "email", "team", "manager_id", "manager_name",
                                       "manager_email", "cro_id", "cro_name", "cro_email"])
