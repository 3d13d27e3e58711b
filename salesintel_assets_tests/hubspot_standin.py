"""A local stand-in for HubSpot's CRM v3 API on 127.0.0.1 (ephemeral port),
for tests and benchmarks that drive the real ``hubspot-api-client``.

It speaks the endpoints a pull uses, in HubSpot's wire format: object search
(filters on ``hs_lastmodifieddate``, ascending sort, ``paging.next.after``,
the 10,000-result cap), batch read (with ``propertiesWithHistory``, at most
50 records then), v4 association batch reads, archived deals, deal
pipelines, owners, users and roles; bearer-token auth and scopes with
HubSpot's error bodies, and rate-limit headers on every answer.

The account is the sample CRM at a clock: deals (one company per industry x
region, stages as HubSpot's default pipeline), stage history, engagements
(calls, emails, meetings) and the org (owners in four teams, each with a
Sales Manager, and a Chief Revenue Officer). Tests change it while it runs
(``modify``, ``archive``, ``remove_property``), script faults for matching
requests (``inject``) and run code when the n-th matching request arrives
(``on_request``)."""

from __future__ import annotations

import bisect
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd

from salesintel_assets_tests.loopback import LoopbackServer

TOKEN = "pat-na1-standin"
ALL_SCOPES = frozenset({"crm.objects.deals.read", "crm.objects.companies.read", "crm.objects.owners.read",
                        "crm.objects.contacts.read", "settings.users.read", "settings.users.teams.read"})
SCOPE_OF = {"deals": "crm.objects.deals.read", "companies": "crm.objects.companies.read",
            "calls": "crm.objects.contacts.read", "emails": "crm.objects.contacts.read",
            "meetings": "crm.objects.contacts.read", "notes": "crm.objects.contacts.read",
            "tasks": "crm.objects.contacts.read", "owners": "crm.objects.owners.read",
            "pipelines": "crm.objects.deals.read", "users": "settings.users.read"}
STAGE_IDS = {"Qualified": "qualifiedtobuy", "Demo": "presentationscheduled", "Proposal": "decisionmakerboughtin",
             "Negotiation": "contractsent"}
PIPELINE = {"id": "default", "label": "Sales Pipeline", "displayOrder": 0, "archived": False, "stages": [
    {"id": "appointmentscheduled", "label": "Appointment Scheduled", "displayOrder": 0,
     "metadata": {"isClosed": "false", "probability": "0.2"}},
    {"id": "qualifiedtobuy", "label": "Qualified To Buy", "displayOrder": 1,
     "metadata": {"isClosed": "false", "probability": "0.4"}},
    {"id": "presentationscheduled", "label": "Presentation Scheduled", "displayOrder": 2,
     "metadata": {"isClosed": "false", "probability": "0.6"}},
    {"id": "decisionmakerboughtin", "label": "Decision Maker Bought-In", "displayOrder": 3,
     "metadata": {"isClosed": "false", "probability": "0.8"}},
    {"id": "contractsent", "label": "Contract Sent", "displayOrder": 4,
     "metadata": {"isClosed": "false", "probability": "0.9"}},
    {"id": "closedwon", "label": "Closed Won", "displayOrder": 5, "metadata": {"isClosed": "true", "probability": "1.0"}},
    {"id": "closedlost", "label": "Closed Lost", "displayOrder": 6,
     "metadata": {"isClosed": "true", "probability": "0.0"}},
]}
ROLES = [{"id": "1", "name": "Sales Rep"}, {"id": "2", "name": "Sales Manager"}, {"id": "3", "name": "Chief Revenue Officer"}]
ALWAYS_RETURNED = ("hs_object_id", "createdate", "hs_lastmodifieddate")
SEARCH_CAP = 10_000
ENGAGEMENT_TYPES = {"call": "calls", "email": "emails", "meeting": "meetings"}


def iso(at) -> str | None:
    if at is None or pd.isna(at):
        return None
    return pd.Timestamp(at).strftime("%Y-%m-%dT%H:%M:%S.") + f"{pd.Timestamp(at).microsecond // 1000:03d}Z"


def iso_array(values) -> list:
    """ISO strings of a datetime column at once (None for missing)."""
    stamps = pd.to_datetime(pd.Series(values)).to_numpy().astype("datetime64[ms]")
    text = np.char.add(np.datetime_as_string(stamps, unit="ms").astype(object), "Z")
    return [None if t.startswith("NaT") else t for t in text]


def now_iso() -> str:
    return iso(pd.Timestamp(datetime.now(timezone.utc).replace(tzinfo=None)))


def _ms(value: str) -> int:
    """A filter value: epoch milliseconds or an ISO time."""
    return int(value) if str(value).lstrip("-").isdigit() else int(pd.Timestamp(value).value // 1_000_000)


def owner_id(rep: str) -> str:
    return str(100 + int(rep.split("_")[1]))


def deal_number(deal_id: str) -> str:
    return str(int(deal_id[1:]))


@dataclass
class Request:
    method: str
    path: str
    body: dict
    status: int = 200
    at: float = field(default_factory=time.monotonic)


class ObjectStore:
    """Records of one type with an index by modification time, so a search
    over 50,000 records answers in milliseconds."""

    def __init__(self):
        self.records: dict[str, dict] = {}
        self._index: list[tuple[int, int]] | None = None

    def put(self, record_id: str, properties: dict) -> None:
        self.records[record_id] = properties
        self._index = None

    def index(self) -> list[tuple[int, int]]:
        if self._index is None:
            self._index = sorted((_ms(p["hs_lastmodifieddate"]), int(i)) for i, p in self.records.items())
        return self._index


class HubSpotStandIn(LoopbackServer):
    def __init__(self, n_deals: int = 600, seed: int = 42, clock=None, with_activities: bool = True,
                 token: str = TOKEN):
        self.token = token
        self.search_cap = SEARCH_CAP
        self._json_cache: dict[tuple, str] = {}
        self.scopes = set(ALL_SCOPES)
        self.requests: list[Request] = []
        self.removed_properties: set[str] = set()
        self.archived: dict[str, dict] = {}
        self._faults: list[tuple[str, list]] = []
        self._hooks: list[tuple[str, int, Callable[[], None]]] = []
        self._lock = threading.RLock()
        self.stores: dict[str, ObjectStore] = {t: ObjectStore() for t in
                                               ("deals", "companies", "calls", "emails", "meetings", "notes", "tasks")}
        self.history: dict[str, list[dict]] = {}
        self.assoc: dict[tuple[str, str], dict[str, list[int]]] = {}
        self._load(n_deals, seed, clock, with_activities)

    # --- the account, from the sample CRM -------------------------------------------
    def _load(self, n_deals: int, seed: int, clock, with_activities: bool) -> None:
        from salesintel_assets.sources import sample_crm

        world = sample_crm.generate_world(n_deals=n_deals, seed=seed, with_activities=with_activities)
        snap = sample_crm.snapshot(world, clock)
        self._load_org(snap.reps)
        deals = snap.deals.drop_duplicates("deal_id", keep="last")   # HubSpot has one record per deal
        companies: dict[tuple, str] = {}
        deal_company = {}
        for row in deals.itertuples(index=False):
            key = (row.industry, row.region)
            if key not in companies:
                companies[key] = str(200_000 + len(companies))
                self.stores["companies"].put(companies[key], {
                    "name": f"{row.industry or 'Unknown'} {row.region or 'Unknown'} Ltd", "industry": row.industry,
                    "region": row.region, "hs_lastmodifieddate": iso(pd.Timestamp("2024-01-01"))})
            deal_company[deal_number(row.deal_id)] = [int(companies[key])]
        self.assoc[("deals", "companies")] = deal_company
        closed = deals["closed_date"].notna()
        stage = np.where(closed & (deals["deal_stage"] == "Closed"), "closedwon",
                         np.where(closed, "closedlost", deals["deal_stage"].map(STAGE_IDS).fillna("qualifiedtobuy")))
        created, closes, modified = (iso_array(deals[c]) for c in ("created_date", "closed_date", "last_modified"))
        for k, row in enumerate(deals.itertuples(index=False)):
            number = deal_number(row.deal_id)
            self.stores["deals"].records[number] = {
                "dealname": f"Deal {number}", "hs_object_id": number, "pipeline": "default", "dealstage": stage[k],
                "createdate": created[k], "closedate": closes[k],
                "amount": None if pd.isna(row.deal_amount) else f"{row.deal_amount:.0f}",
                "hubspot_owner_id": owner_id(row.sales_rep_id) if row.sales_rep_id else None,
                "hs_lastmodifieddate": modified[k], "product_type": row.product_type, "lead_source": row.lead_source}
            if stage[k] == "closedlost":
                self.history[number] = [{"value": "closedlost", "timestamp": closes[k], "sourceType": "CRM_UI"}]
        history = snap.stage_history
        numbers = history["deal_id"].str[1:].astype(int).astype(str).tolist()
        values = history["stage"].map({**STAGE_IDS, "Closed": "closedwon"}).tolist()
        for number, value, at in zip(numbers, values, iso_array(history["entered_date"])):
            self.history.setdefault(number, []).append({"value": value, "timestamp": at, "sourceType": "CRM_UI"})
        for changes in self.history.values():   # HubSpot lists the newest change first
            changes.sort(key=lambda c: c["timestamp"], reverse=True)
        for kind in ENGAGEMENT_TYPES.values():
            self.assoc[(kind, "deals")] = {}
        acts = snap.activities
        ids = (acts["activity_id"].str[1:].astype(int) + 50_000_000).astype(str).tolist()
        deal_ids = acts["deal_id"].str[1:].astype(int).tolist()
        owners = acts["sales_rep_id"].map(lambda r: owner_id(r) if r else None).tolist()
        times = iso_array(acts["activity_date"] + pd.Timedelta(hours=12))
        for number, kind, deal, owner, at in zip(ids, acts["activity_type"].map(ENGAGEMENT_TYPES).tolist(),
                                                 deal_ids, owners, times):
            self.stores[kind].records[number] = {"hs_timestamp": at, "hs_lastmodifieddate": at, "hs_createdate": at,
                                                 "hubspot_owner_id": owner}
            self.assoc[(kind, "deals")][number] = [deal]

    def _load_org(self, reps: pd.DataFrame) -> None:
        from salesintel_assets.sources import sample_crm

        teams = {name: str(i + 1) for i, (name, _) in enumerate(sample_crm.TEAMS)}
        self.owners, self.users = [], []

        def person(owner: str, name: str, email: str, team: str | None, role: str) -> None:
            first, _, last = name.partition(" ")
            user = str(5000 + int(owner))
            self.owners.append({"id": owner, "email": email, "firstName": first, "lastName": last, "userId": int(user),
                                "teams": [{"id": teams[team], "name": team, "primary": True}] if team else [],
                                "archived": False, "createdAt": "2024-01-01T00:00:00.000Z",
                                "updatedAt": "2024-01-01T00:00:00.000Z"})
            self.users.append({"id": user, "email": email, "roleId": role,
                               "primaryTeamId": teams[team] if team else None, "superAdmin": False})

        for row in reps.itertuples(index=False):
            person(owner_id(row.sales_rep_id), row.rep_name, row.email, row.team, "1")
        for row in reps.drop_duplicates("manager_id").itertuples(index=False):
            person(str(900 + int(row.manager_id.split("_")[1])), row.manager_name, row.manager_email, row.team, "2")
        first = reps.iloc[0]
        person("999", first["cro_name"], first["cro_email"], None, "3")

    # --- changes while running --------------------------------------------------------
    def deal(self, number: str) -> dict:
        return self.stores["deals"].records[number]

    def modify(self, number: str, **properties) -> None:
        with self._lock:
            self.stores["deals"].put(number, {**self.deal(number), **properties, "hs_lastmodifieddate": now_iso()})

    def change_share(self, share: float, seed: int = 1) -> int:
        """Edit ``share`` of the deals now (amount + 1), as a day of CRM use would."""
        numbers = sorted(self.stores["deals"].records, key=int)
        picked = np.random.default_rng(seed).choice(len(numbers), size=int(round(share * len(numbers))), replace=False)
        for k in picked:
            amount = self.deal(numbers[k]).get("amount")
            self.modify(numbers[k], amount=str(int(amount) + 1) if amount else "1000")
        return len(picked)

    def archive(self, number: str) -> None:
        with self._lock:
            properties = self.stores["deals"].records.pop(number)
            self.stores["deals"]._index = None
            self.archived[number] = {"id": number, "properties": properties, "archived": True,
                                     "archivedAt": now_iso(), "createdAt": properties["createdate"],
                                     "updatedAt": properties["hs_lastmodifieddate"]}

    def remove_property(self, name: str) -> None:
        self.removed_properties.add(name)

    def inject(self, actions: list, path: str = "") -> None:
        """Answer the next requests whose path contains ``path`` with these
        actions, in order: ``("429", retry_after_or_None)``, ``"500"``,
        ``("stall", seconds)`` (answer late), ``("stall_body", seconds)`` (send
        half the answer, then wait), ``"401"``, ``("403", scope)``."""
        with self._lock:
            self._faults.extend((path, [a]) for a in actions)

    def on_request(self, path: str, nth: int, action: Callable[[], None]) -> None:
        """Run ``action`` when the ``nth`` (1-based) request containing ``path`` arrives."""
        self._hooks.append((path, nth, action))

    def calls(self, path: str) -> list[Request]:
        return [r for r in self.requests if path in r.path]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _make_server(self, address):
        return ThreadingHTTPServer(address, _handler(self))

    # --- the API ----------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict, headers: dict, body: dict) -> tuple[int, dict, dict]:
        with self._lock:
            request = Request(method, path, body)
            self.requests.append(request)
            for hook in [h for h in self._hooks if h[0] in path]:
                if len([r for r in self.requests if hook[0] in r.path]) == hook[1]:
                    hook[2]()
            fault = next((f for f in self._faults if f[0] in path), None)
            if fault:
                self._faults.remove(fault)
        action = fault[1][0] if fault else None
        if isinstance(action, tuple) and action[0] == "stall":
            time.sleep(action[1])
            action = None
        stall_body = action[1] if isinstance(action, tuple) and action[0] == "stall_body" else None
        status, extra, payload = self._answer(None if stall_body else action, method, path, query, headers, body)
        request.status = status
        if stall_body:
            extra = {**extra, "X-Standin-Stall-Body": str(stall_body)}
        return status, extra, payload

    def _error(self, status: int, category: str, message: str, **more) -> tuple[int, dict, dict]:
        return status, {}, {"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
                            "category": category, **more}

    def _answer(self, action, method, path, query, headers, body) -> tuple[int, dict, dict]:
        if isinstance(action, tuple) and action[0] == "429":
            # Without Retry-After, HubSpot's interval header says how long the window is.
            extra = ({"Retry-After": str(action[1])} if action[1] is not None
                     else {"X-HubSpot-RateLimit-Interval-Milliseconds": "100"})
            status, _, payload = self._error(429, "RATE_LIMITS", "You have reached your ten_secondly_rolling limit.",
                                             errorType="RATE_LIMIT", policyName="TEN_SECONDLY_ROLLING")
            return status, {**extra, "X-HubSpot-RateLimit-Remaining": "0"}, payload
        if action == "500":
            return self._error(500, "INTERNAL_ERROR", "internal error")
        if action == "401" or headers.get("authorization") != f"Bearer {self.token}":
            return self._error(401, "INVALID_AUTHENTICATION", "Authentication credentials not found. This API "
                               "supports OAuth 2.0 authentication.")
        parts = [p for p in path.split("/") if p]
        family = self._family(parts)
        needed = SCOPE_OF.get(family)
        if (isinstance(action, tuple) and action[0] == "403") or (needed and needed not in self.scopes):
            scope = action[1] if isinstance(action, tuple) else needed
            return self._error(403, "MISSING_SCOPES", "This app hasn't been granted all required scopes to make "
                               "this call.", errors=[{"message": "One or more of the following scopes are required.",
                                                      "context": {"requiredGranularScopes": [scope]}}])
        with self._lock:
            return self._route(method, parts, query, body)

    @staticmethod
    def _family(parts: list[str]) -> str:
        if parts[:3] == ["crm", "v3", "objects"] or parts[:3] == ["crm", "v4", "associations"]:
            return parts[3]
        if parts[:3] == ["crm", "v3", "owners"]:
            return "owners"
        if parts[:3] == ["crm", "v3", "pipelines"]:
            return "pipelines"
        return "users"

    def _route(self, method, parts, query, body) -> tuple[int, dict, dict]:
        if parts[:3] == ["crm", "v3", "objects"] and parts[-1] == "search":
            return self._search(parts[3], body)
        if parts[:3] == ["crm", "v3", "objects"] and parts[-2:] == ["batch", "read"]:
            return self._batch_read(parts[3], body)
        if parts[:3] == ["crm", "v3", "objects"] and len(parts) == 4 and str(query.get("archived")).lower() == "true":
            return self._list(sorted(self.archived.values(), key=lambda r: int(r["id"])), query, 100)
        if parts[:3] == ["crm", "v4", "associations"] and parts[-2:] == ["batch", "read"]:
            return self._associations(parts[3], parts[4], body)
        if parts == ["crm", "v3", "pipelines", "deals"]:
            return 200, {}, {"results": [PIPELINE]}
        if parts == ["crm", "v3", "owners"]:
            return self._list(self.owners, query, 500)
        if parts == ["settings", "v3", "users", "roles"]:
            return 200, {}, {"results": ROLES}
        if parts == ["settings", "v3", "users"]:
            return self._list(self.users, query, 100)
        return self._error(404, "OBJECT_NOT_FOUND", f"no route for {method} /{'/'.join(parts)}")

    def _properties(self, kind: str, record_id: str, props: dict, wanted: list[str]) -> dict:
        names = [n for n in dict.fromkeys(list(wanted) + list(ALWAYS_RETURNED)) if n not in self.removed_properties]
        out = {n: props.get(n) for n in names if n in props or n in wanted}
        out["hs_object_id"] = record_id
        return out

    def _record(self, kind: str, record_id: str, props: dict, wanted: list[str]) -> dict:
        return {"id": record_id, "properties": self._properties(kind, record_id, props, wanted),
                "createdAt": props.get("createdate") or props.get("hs_createdate"),
                "updatedAt": props.get("hs_lastmodifieddate"), "archived": False}

    def _search(self, kind: str, body: dict) -> tuple[int, dict, dict]:
        store = self.stores[kind]
        low, high = -(2 ** 62), 2 ** 62
        for group in body.get("filterGroups") or []:
            for f in group.get("filters") or []:
                if f.get("propertyName") != "hs_lastmodifieddate":
                    return self._error(400, "VALIDATION_ERROR", "the stand-in filters only on hs_lastmodifieddate")
                value = _ms(f["value"])
                op = f["operator"]
                low = max(low, value if op == "GTE" else value + 1 if op == "GT" else low)
                high = min(high, value if op == "LT" else value + 1 if op == "LTE" else high)
        index = store.index()
        lo, hi = bisect.bisect_left(index, (low, -1)), bisect.bisect_left(index, (high, -1))
        offset = int(body.get("after") or 0)
        limit = min(int(body.get("limit") or 10), 200)
        if offset >= self.search_cap:
            return self._error(400, "VALIDATION_ERROR", f"Search results are limited to {self.search_cap} total. "
                               "Please refine your search.")
        rows = index[lo + offset:min(hi, lo + offset + limit, lo + self.search_cap)]
        wanted = body.get("properties") or []
        results = ",".join(self._record_json(kind, str(i), store.records[str(i)], wanted) for _, i in rows)
        paging = (f', "paging": {{"next": {{"after": "{offset + limit}"}}}}' if offset + limit < hi - lo else "")
        return 200, {}, f'{{"total": {hi - lo}, "results": [{results}]{paging}}}'.encode()

    def _record_json(self, kind: str, record_id: str, props: dict, wanted: list[str]) -> str:
        """A record's JSON, kept until the record or the property set changes
        (a 50,000-deal account is served many times over)."""
        key = (kind, record_id, tuple(wanted), props.get("hs_lastmodifieddate"), len(self.removed_properties))
        found = self._json_cache.get(key)
        if found is None:
            found = self._json_cache[key] = json.dumps(self._record(kind, record_id, props, wanted))
        return found

    def _batch_read(self, kind: str, body: dict) -> tuple[int, dict, dict]:
        inputs = [str(i["id"]) for i in body.get("inputs") or []]
        history = [h for h in body.get("propertiesWithHistory") or [] if h not in self.removed_properties]
        if len(inputs) > (50 if body.get("propertiesWithHistory") else 100):
            return self._error(400, "VALIDATION_ERROR", "Too many inputs for a batch read.")
        store = self.stores[kind]
        results = []
        for record_id in inputs:
            if record_id not in store.records:
                continue
            record = self._record(kind, record_id, store.records[record_id], body.get("properties") or [])
            if history:
                record["propertiesWithHistory"] = {"dealstage": self.history.get(record_id, [])}
            results.append(record)
        return 200, {}, {"status": "COMPLETE", "results": results,
                         "startedAt": now_iso(), "completedAt": now_iso()}

    def _associations(self, from_type: str, to_type: str, body: dict) -> tuple[int, dict, dict]:
        links = self.assoc.get((from_type, to_type), {})
        results = []
        for item in body.get("inputs") or []:
            targets = links.get(str(item["id"]))
            if targets:
                results.append({"from": {"id": str(item["id"])}, "to": [
                    {"toObjectId": t, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 5,
                                                            "label": "Primary"}]} for t in targets]})
        return 200, {}, {"status": "COMPLETE", "results": results}

    def _list(self, items: list[dict], query: dict, max_limit: int) -> tuple[int, dict, dict]:
        offset = int(query.get("after") or 0)
        limit = min(int(query.get("limit") or 10), max_limit)
        payload = {"results": items[offset:offset + limit]}
        if offset + limit < len(items):
            payload["paging"] = {"next": {"after": str(offset + limit), "link": "?after=" + str(offset + limit)}}
        return 200, {}, payload


def _handler(standin: HubSpotStandIn):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"   # keep-alive, as HubSpot

        def setup(self) -> None:
            super().setup()
            # Answers go out at once: no Nagle delay between headers and body on a kept-alive connection.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def _serve(self, method: str) -> None:
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else {}
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, payload = standin.handle(method, url.path, query, headers, body)
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            limits = {"X-HubSpot-RateLimit-Interval-Milliseconds": "10000", "X-HubSpot-RateLimit-Max": "190",
                      "X-HubSpot-RateLimit-Remaining": "189", "X-HubSpot-RateLimit-Secondly": "19",
                      "X-HubSpot-RateLimit-Secondly-Remaining": "18"}
            stall = float(extra.pop("X-Standin-Stall-Body", 0))
            for k, v in {**limits, **extra}.items():
                self.send_header(k, v)
            self.end_headers()
            if stall:   # the connection dies in the middle of the page
                self.wfile.write(data[:len(data) // 2])
                self.wfile.flush()
                time.sleep(stall)
                self.close_connection = True
                return
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

    return Handler
