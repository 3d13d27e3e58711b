"""Salesforce as a CRM source: the SOQL the connector sends and how its
records become the export format, stage history, activities, the org chain
and deletions. Plain Python: the HTTP client lives in the resource
(``resources/salesforce.py``), so everything here is tested on plain dicts.

Records are the JSON of Salesforce's REST query API (``records[]`` with an
``attributes`` object, relationship fields as nested objects, datetimes like
``2026-06-30T12:34:56.000+0000``, dates like ``2026-06-30``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

OPPORTUNITY_REQUIRED = ("Id", "OwnerId", "StageName", "Amount", "CloseDate", "CreatedDate", "IsClosed", "IsWon",
                        "SystemModstamp")
# Without these no pull can be filtered, ordered or keyed.
OPPORTUNITY_KEYS = ("Id", "SystemModstamp")
# The export columns a missing required Opportunity field takes away (the schema gate then blocks).
COLUMNS_OF_FIELD = {"OwnerId": ("sales_rep_id",), "StageName": ("deal_stage",), "Amount": ("deal_amount",),
                    "CloseDate": ("closed_date", "sales_cycle_days"), "CreatedDate": ("created_date",),
                    "IsClosed": ("outcome",), "IsWon": ("outcome",)}
# Read when the org has them: a missing one leaves its column empty.
OPPORTUNITY_OPTIONAL = ("AccountId", "LeadSource", "LastStageChangeDate")
HISTORY_REQUIRED = ("OpportunityId", "StageName", "CreatedDate")
STAGE_REQUIRED = ("ApiName", "IsClosed", "IsWon")
STAGE_OPTIONAL = ("MasterLabel",)
USER_REQUIRED = ("Id", "Name", "ManagerId")
USER_OPTIONAL = ("Email", "Department", "Division")
TASK_REQUIRED = ("Id", "WhatId", "OwnerId", "CreatedDate", "SystemModstamp")
TASK_OPTIONAL = ("TaskSubtype", "Type", "ActivityDate")
EVENT_REQUIRED = ("Id", "WhatId", "OwnerId", "StartDateTime", "SystemModstamp")
# The permission a describe failure points to, per object.
OBJECT_PERMISSIONS = {
    "Opportunity": "Read on Opportunity",
    "OpportunityHistory": "Read on Opportunity (OpportunityHistory follows it)",
    "OpportunityStage": "Read on OpportunityStage",
    "User": "Read on User",
    "Account": "Read on Account",
    "Task": "Read on Task (Activities)",
    "Event": "Read on Event (Activities)",
}
ORG_COLUMNS = ("sales_rep_id", "rep_name", "email", "team", "manager_id", "manager_name", "manager_email",
               "cro_id", "cro_name", "cro_email", "region")
_TASK_KINDS = {"call": "call", "email": "email", "listemail": "email", "meeting": "meeting"}


class SalesforceSchemaError(ValueError):
    """A field the pull needs is missing or hidden from the API user."""


@dataclass(frozen=True)
class FieldPlan:
    """Which fields a query selects: the required ones, the optional ones the
    org has, and custom fields (kept in the raw lake, ignored downstream)."""

    obj: str
    selected: tuple[str, ...]
    custom: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()


def plan_fields(obj: str, available: set[str], required: tuple[str, ...], optional: tuple[str, ...] = (),
                keep_custom: bool = False, hard: tuple[str, ...] | None = None) -> FieldPlan:
    """The SELECT list of ``obj`` given the fields its describe returned.
    A missing ``hard`` field (default: every required one) stops the pull
    with a sentence naming it; other missing required fields are left out
    and listed in ``missing`` (a blocking schema failure downstream)."""
    hard = required if hard is None else hard
    lost = [f for f in hard if f not in available]
    if lost:
        raise SalesforceSchemaError(missing_field_sentence(obj, lost) + "; nothing was pulled.")
    custom = tuple(sorted(f for f in available if f.endswith("__c"))) if keep_custom else ()
    chosen = [f for f in required if f in available] + [f for f in optional if f in available]
    missing = tuple(f for f in required if f not in available)
    return FieldPlan(obj, tuple(dict.fromkeys(chosen + list(custom))), custom, missing)


def missing_field_sentence(obj: str, fields) -> str:
    names = ", ".join(f"{obj}.{f}" for f in fields)
    return (f"Salesforce field {names} is missing or hidden from the API user: grant read access to it "
            "(field-level security) or restore the field")


def soql_datetime(ts: pd.Timestamp) -> str:
    """A SOQL datetime literal (UTC, unquoted)."""
    return pd.Timestamp(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def since_filter(since: pd.Timestamp | None, overlap: pd.Timedelta) -> str:
    """``SystemModstamp > X``, with X a little before the cursor: rows
    committed late with an earlier stamp are caught, and re-reading the
    overlap changes nothing (content hashes drop unchanged rows)."""
    return "" if since is None else f"SystemModstamp > {soql_datetime(since - overlap)}"


def where(*conditions: str) -> str:
    kept = [c for c in conditions if c]
    return f" WHERE {' AND '.join(kept)}" if kept else ""


def opportunity_soql(fields: tuple[str, ...], since_clause: str) -> str:
    return f"SELECT {', '.join(fields)} FROM Opportunity{where(since_clause)} ORDER BY SystemModstamp, Id"


def history_soql(since_clause: str) -> str:
    """The whole stage history of every opportunity changed after the cursor."""
    changed = f" WHERE OpportunityId IN (SELECT Id FROM Opportunity{where(since_clause)})" if since_clause else ""
    return f"SELECT {', '.join(HISTORY_REQUIRED)} FROM OpportunityHistory{changed} ORDER BY OpportunityId, CreatedDate"


def activity_soql(obj: str, fields: tuple[str, ...], since_clause: str) -> str:
    return (f"SELECT {', '.join(fields)} FROM {obj}{where(since_clause, 'What.Type = ' + repr('Opportunity'))} "
            "ORDER BY SystemModstamp, Id")


def deleted_soql(since_clause: str) -> str:
    """Deleted opportunities (queryAll sees the recycle bin)."""
    return f"SELECT Id, SystemModstamp FROM Opportunity{where('IsDeleted = true', since_clause)} ORDER BY SystemModstamp"


def stages_soql(plan: FieldPlan) -> str:
    return f"SELECT {', '.join(plan.selected)} FROM OpportunityStage"


def users_soql(plan: FieldPlan) -> str:
    return f"SELECT {', '.join(plan.selected)} FROM User"


# --- records -> frames ---------------------------------------------------------------------------------

def _utc_naive(values: pd.Series) -> pd.Series:
    """Salesforce datetimes (``...+0000``) or dates as naive UTC timestamps."""
    parsed = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    return parsed.dt.tz_localize(None).astype("datetime64[ns]")


def _text(values: pd.Series) -> pd.Series:
    return values.where(values.notna(), "").astype(str)


def _column(records: list[dict], field: str) -> list:
    """One field of every record; ``Account.Industry`` follows the relationship."""
    if "." not in field:
        return [r.get(field) for r in records]
    parent, child = field.split(".", 1)
    return [(r.get(parent) or {}).get(child) for r in records]


@dataclass(frozen=True)
class DealFields:
    """Where the export's segment columns come from: ``product`` is an
    Opportunity field, ``industry`` and ``region`` are Account fields read
    through the Opportunity's Account relationship. Orgs differ here, so
    each is configurable; a field the org lacks leaves its column empty."""

    product: str = "Type"
    industry: str = "Industry"
    region: str = "BillingCountry"


def opportunity_select(plan: FieldPlan, account_fields: set[str], fields: DealFields) -> tuple[str, ...]:
    """The Opportunity SELECT list, with Account fields the org has."""
    related = tuple(f"Account.{f}" for f in dict.fromkeys((fields.industry, fields.region))
                    if f in account_fields and "AccountId" in plan.selected)
    return plan.selected + related


@dataclass(frozen=True)
class StageMap:
    """How Salesforce stage names become the rules file's stages. Closed
    and won come from OpportunityStage (API names and labels, since history
    rows carry the name as it was); an open name goes through ``canonical``
    (the rules file's stage names) and is kept as is when unmapped, for the
    quality gate to count (``unknown_stage``). A won deal ends in ``closed_stage``; a lost deal
    keeps the stage it was lost in, as the export format has it."""

    closed: frozenset[str]
    won: frozenset[str]
    canonical: Callable[[str], str | None]
    closed_stage: str

    @classmethod
    def from_records(cls, stage_records: list[dict], canonical, closed_stage: str) -> "StageMap":
        closed, won = set(), set()
        for record in stage_records:
            names = {record.get("ApiName"), record.get("MasterLabel")} - {None}
            if record.get("IsClosed"):
                closed |= names
            if record.get("IsWon"):
                won |= names
        return cls(frozenset(closed), frozenset(won), canonical, closed_stage)

    def open_stage(self, name) -> str:
        text = "" if name is None else str(name)
        return self.canonical(text) or text


def history_frame(records: list[dict], stages: StageMap) -> pd.DataFrame:
    """deal_id, stage, entered_date: one row per stage a deal entered, in
    the rules file's stages. OpportunityHistory also logs amount and
    close-date edits and two CRM stages may map to one, so repeated rows of
    the same stage collapse into the first entry; a won close enters the
    closed stage, a lost close adds no stage."""
    stage = []
    for name in _column(records, "StageName"):
        if name in stages.won:
            stage.append(stages.closed_stage)
        elif name in stages.closed or name is None:
            stage.append(None)
        else:
            stage.append(stages.open_stage(name))
    frame = pd.DataFrame({
        "deal_id": pd.Series(_column(records, "OpportunityId"), dtype=object),
        "stage": pd.Series(stage, dtype=object),
        "entered_date": _utc_naive(pd.Series(_column(records, "CreatedDate"), dtype=object)),
    })
    frame = frame.dropna(subset=["deal_id", "stage", "entered_date"])
    frame = frame.sort_values(["deal_id", "entered_date"], kind="stable")
    repeat = (frame["deal_id"] == frame["deal_id"].shift()) & (frame["stage"] == frame["stage"].shift())
    return frame[~repeat].reset_index(drop=True)


def last_open_stages(history: pd.DataFrame, closed_stage: str) -> dict[str, str]:
    """deal_id -> the last open stage it entered (where a lost deal was lost)."""
    open_rows = history[history["stage"] != closed_stage]
    return dict(zip(open_rows["deal_id"], open_rows["stage"]))


def deals_frame(records: list[dict], plan: FieldPlan, fields: DealFields, stages: StageMap,
                lost_at: dict[str, str]) -> pd.DataFrame:
    """Opportunities in the export format, as text, plus the org's custom
    fields under their API names (kept in the raw lake, ignored after). The
    columns of a missing required field are left out for the schema gate.
    ``lost_at``: deal_id -> the stage a lost deal was lost in."""
    n = len(records)

    def column(field: str) -> pd.Series:
        return pd.Series(_column(records, field), dtype=object)

    closed = pd.Series([bool(v) for v in _column(records, "IsClosed")], dtype=bool)
    won = pd.Series([bool(v) for v in _column(records, "IsWon")], dtype=bool)
    created = _utc_naive(column("CreatedDate")).dt.normalize()
    close = pd.to_datetime(column("CloseDate"), errors="coerce", format="%Y-%m-%d").where(closed)
    cycle = (close - created).dt.days
    ids = _text(column("Id"))
    stage = [stages.closed_stage if is_won else lost_at.get(deal_id, stages.closed_stage) if is_closed
             else stages.open_stage(name)
             for deal_id, name, is_closed, is_won in zip(ids, _column(records, "StageName"), closed, won)]
    out = pd.DataFrame({
        "deal_id": ids,
        "created_date": _date_text(created),
        "closed_date": _date_text(close),
        "sales_rep_id": _text(column("OwnerId")),
        "industry": _text(column(f"Account.{fields.industry}")),
        "region": _text(column(f"Account.{fields.region}")),
        "product_type": _text(column(fields.product)),
        "lead_source": _text(column("LeadSource")),
        "deal_stage": pd.Series(stage, dtype=object),
        "deal_amount": _number_text(pd.to_numeric(column("Amount"), errors="coerce")),
        "sales_cycle_days": _number_text(cycle.astype("float64")),
        "outcome": pd.Series(np.where(closed, np.where(won, "Won", "Lost"), "Open"), dtype=object),
        "last_modified": _utc_naive(column("SystemModstamp")).dt.strftime("%Y-%m-%dT%H:%M:%S").fillna(""),
        "stage_entered_date": _date_text(_utc_naive(column("LastStageChangeDate")).dt.normalize()),
    }, index=pd.RangeIndex(n))
    for field in plan.custom:
        out[field] = _text(column(field))
    gone = [c for f in plan.missing for c in COLUMNS_OF_FIELD.get(f, ())]
    return out.drop(columns=gone)


def _number_text(values: pd.Series) -> pd.Series:
    """Numbers as export text: whole numbers without ".0", missing as ""."""
    whole = values.notna() & (values == values.round())
    text = values.astype(object).where(~whole, values.round().astype("Int64").astype(object))
    return text.astype(str).where(values.notna(), "")


def _date_text(values: pd.Series) -> pd.Series:
    return values.dt.strftime("%Y-%m-%d").fillna("")


def activities_frame(tasks: list[dict], events: list[dict]) -> pd.DataFrame:
    """activity_id, deal_id, sales_rep_id, activity_type, activity_date from
    Tasks (calls and emails by TaskSubtype, else Type) and Events (meetings).
    Tasks of other kinds (plain to-dos) are not sales touches and are left out."""
    kind = [(_TASK_KINDS.get(str(r.get("TaskSubtype") or "").lower())
             or _TASK_KINDS.get(str(r.get("Type") or "").lower())) for r in tasks]
    when = [r.get("ActivityDate") or r.get("CreatedDate") for r in tasks]
    frame = pd.DataFrame({
        "activity_id": _column(tasks, "Id") + _column(events, "Id"),
        "deal_id": _column(tasks, "WhatId") + _column(events, "WhatId"),
        "sales_rep_id": _column(tasks, "OwnerId") + _column(events, "OwnerId"),
        "activity_type": kind + ["meeting"] * len(events),
        "activity_date": pd.Series(when + _column(events, "StartDateTime"), dtype=object),
    })
    frame["activity_date"] = _utc_naive(frame["activity_date"]).dt.normalize()
    frame = frame.dropna(subset=["activity_id", "deal_id", "activity_type", "activity_date"])
    return frame.astype({c: str for c in ("activity_id", "deal_id", "sales_rep_id", "activity_type")}
                        ).reset_index(drop=True)


def org_frame(users: list[dict]) -> pd.DataFrame:
    """rep -> manager -> CRO from ``User.ManagerId``: the manager is the
    user's own manager, the CRO the top of the chain above the rep (the
    manager's manager's ... until a user without a manager). A user at the
    top has no chain; a cycle in the data stops the walk."""
    by_id = {u["Id"]: u for u in users if u.get("Id")}

    def top_of(user_id: str | None) -> dict | None:
        seen, current = set(), by_id.get(user_id)
        while current is not None and current.get("ManagerId") in by_id and current["Id"] not in seen:
            seen.add(current["Id"])
            current = by_id[current["ManagerId"]]
        return current

    rows = []
    for user in by_id.values():
        manager = by_id.get(user.get("ManagerId"))
        cro = top_of(manager["Id"]) if manager else None
        rows.append({
            "sales_rep_id": user["Id"], "rep_name": user.get("Name") or user["Id"], "email": user.get("Email") or "",
            "team": user.get("Department") or "", "region": user.get("Division") or "",
            "manager_id": manager["Id"] if manager else "", "manager_name": (manager or {}).get("Name") or "",
            "manager_email": (manager or {}).get("Email") or "",
            "cro_id": cro["Id"] if cro else "", "cro_name": (cro or {}).get("Name") or "",
            "cro_email": (cro or {}).get("Email") or "",
        })
    return pd.DataFrame(rows, columns=list(ORG_COLUMNS)).astype(str)


def deletions_frame(records: list[dict]) -> pd.DataFrame:
    """deal_id, deleted_at for opportunities in the recycle bin."""
    return pd.DataFrame({
        "deal_id": pd.Series(_column(records, "Id"), dtype=object),
        "deleted_at": _utc_naive(pd.Series(_column(records, "SystemModstamp"), dtype=object)),
    })
