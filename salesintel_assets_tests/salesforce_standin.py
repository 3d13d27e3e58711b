"""A local stand-in for a Salesforce org on 127.0.0.1 (ephemeral port, TLS
with a throw-away self-signed certificate), for tests and benchmarks that
drive the real ``simple-salesforce`` client.

It speaks the REST wire format the connector uses: ``/services/data/vXX.X/
query`` and ``/queryAll`` with SOQL, ``nextRecordsUrl`` paging with ``done``
and ``totalSize``, ``records[].attributes``, relationship fields as nested
objects, ``sobjects/<Object>/describe``, error bodies
``[{"message": ..., "errorCode": ...}]``, the ``Sforce-Limit-Info`` header and
the SOAP ``login`` call. Its SOQL engine understands the query shapes the
connector sends (field lists, ``AND``-ed comparisons, ``IN`` a sub-select,
``What.Type``, ``ORDER BY``), nothing more.

The org's data is the sample CRM's world: users with ``ManagerId`` from the
sample's rep -> manager -> CRO chain, accounts per industry and region,
opportunities with Salesforce's default stage names, OpportunityHistory from
the stage history, Tasks and Events from the activities. Faults are
scripted (``fail``), the org can change between or during pulls (``modify``,
``delete``, ``remove_field``, ``deny``, ``after_page(object, first_row)``
called after each page is served).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import ssl
import tempfile
import threading
import time
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import parse_qs, urlparse

import pandas as pd

from salesintel_assets_tests.loopback import LoopbackServer

API_VERSION = "62.0"
TOKEN = "00DSTANDIN!access.token"
USERNAME, PASSWORD, SECURITY_TOKEN = "ops@example.com", "correct horse", "TOKEN123"
# Salesforce's default opportunity stages for the sample's canonical ones.
STAGE_NAMES = {"Qualified": "Qualification", "Demo": "Needs Analysis", "Proposal": "Proposal/Price Quote",
               "Negotiation": "Negotiation/Review"}
OPPORTUNITY_STAGES = [
    ("Prospecting", False, False), ("Qualification", False, False), ("Needs Analysis", False, False),
    ("Value Proposition", False, False), ("Proposal/Price Quote", False, False),
    ("Negotiation/Review", False, False), ("Closed Won", True, True), ("Closed Lost", True, False)]
FIELDS = {
    "Opportunity": ["Id", "Name", "AccountId", "OwnerId", "StageName", "Amount", "CloseDate", "CreatedDate",
                    "IsClosed", "IsWon", "IsDeleted", "SystemModstamp", "LeadSource", "Type",
                    "LastStageChangeDate", "Competitor__c"],
    "Account": ["Id", "Name", "Industry", "BillingCountry", "IsDeleted", "SystemModstamp"],
    "OpportunityHistory": ["Id", "OpportunityId", "StageName", "Amount", "CreatedDate", "IsDeleted",
                           "SystemModstamp"],
    "OpportunityStage": ["Id", "ApiName", "MasterLabel", "IsClosed", "IsWon", "IsActive", "SortOrder"],
    "User": ["Id", "Name", "Email", "ManagerId", "Department", "Division", "IsActive", "SystemModstamp"],
    "Task": ["Id", "WhatId", "OwnerId", "TaskSubtype", "Type", "ActivityDate", "CreatedDate", "IsDeleted",
             "SystemModstamp"],
    "Event": ["Id", "WhatId", "OwnerId", "StartDateTime", "CreatedDate", "IsDeleted", "SystemModstamp"],
}
PREFIX = {"Opportunity": "006", "Account": "001", "OpportunityHistory": "008", "OpportunityStage": "01J",
          "User": "005", "Task": "00T", "Event": "00U"}


def sf_id(obj: str, n: int) -> str:
    return f"{PREFIX[obj]}{n:012d}AAA"


def sf_datetime(ts) -> str:
    """Salesforce's datetime format; its text order is its time order."""
    return pd.Timestamp(ts).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


# --- the org's data from the sample CRM ---------------------------------------------------------------------

def org_from_sample(n_deals: int, seed: int = 42, clock: Optional[dt.date] = None,
                    with_activities: bool = True) -> dict[str, list[dict]]:
    """Records per object of a Salesforce org holding the sample CRM's world."""
    from salesintel_assets.sources import sample_crm

    world = sample_crm.generate_world(n_deals=n_deals, seed=seed, with_activities=with_activities)
    snap = sample_crm.snapshot(world, clock or sample_crm.SAMPLE_END_DATE)
    deals = snap.deals.sort_values("last_modified", kind="stable").drop_duplicates("deal_id", keep="last")
    deals = deals.sort_values("deal_id").reset_index(drop=True)
    for col in ("industry", "region", "product_type", "lead_source", "sales_rep_id"):
        deals[col] = deals[col].fillna("")

    users, user_ids = [], {}
    reps = snap.reps
    people = pd.concat([
        reps[["cro_id", "cro_name", "cro_email"]].set_axis(["id", "name", "email"], axis=1).assign(
            manager=None, team="Sales Leadership", region=""),
        reps[["manager_id", "manager_name", "manager_email", "cro_id", "team", "region"]].set_axis(
            ["id", "name", "email", "manager", "team", "region"], axis=1),
        reps[["sales_rep_id", "rep_name", "email", "manager_id", "team", "region"]].set_axis(
            ["id", "name", "email", "manager", "team", "region"], axis=1),
    ]).drop_duplicates("id")
    for i, person in enumerate(people.itertuples(index=False), start=1):
        user_ids[person.id] = sf_id("User", i)
    for person in people.itertuples(index=False):
        users.append({"Id": user_ids[person.id], "Name": person.name, "Email": person.email,
                      "ManagerId": user_ids.get(person.manager), "Department": person.team,
                      "Division": person.region, "IsActive": True, "SystemModstamp": "2024-01-01T00:00:00.000+0000"})

    accounts, account_ids = [], {}
    for i, (industry, region) in enumerate(sorted(set(zip(deals["industry"], deals["region"]))), start=1):
        account_ids[(industry, region)] = sf_id("Account", i)
        accounts.append({"Id": sf_id("Account", i), "Name": f"{industry or 'Misc'} {region or 'Global'} Ltd",
                         "Industry": industry or None, "BillingCountry": region or None, "IsDeleted": False,
                         "SystemModstamp": "2024-01-01T00:00:00.000+0000"})

    opp_ids = {d: sf_id("Opportunity", i) for i, d in enumerate(deals["deal_id"], start=1)}
    outcome = deals["outcome"].fillna("").str.strip().str.lower()
    closed = deals["closed_date"].notna() | outcome.isin(["won", "lost", "closed won"])
    won = outcome.isin(["won", "closed won"])
    created = deals["created_date"].fillna(deals["closed_date"]).fillna(deals["last_modified"].dt.normalize())
    close = deals["closed_date"].where(closed, created + pd.Timedelta(days=90)).fillna(deals["last_modified"])
    opportunities = []
    for i, d in enumerate(deals.itertuples(index=False)):
        stage = ("Closed Won" if won.iloc[i] else "Closed Lost") if closed.iloc[i] else STAGE_NAMES[d.deal_stage]
        opportunities.append({
            "Id": opp_ids[d.deal_id], "Name": d.deal_id, "AccountId": account_ids[(d.industry, d.region)],
            "OwnerId": user_ids.get(d.sales_rep_id), "StageName": stage,
            "Amount": None if pd.isna(d.deal_amount) else float(d.deal_amount),
            "CloseDate": close.iloc[i].strftime("%Y-%m-%d"),
            "CreatedDate": sf_datetime(created.iloc[i] + pd.Timedelta(hours=9)),
            "IsClosed": bool(closed.iloc[i]), "IsWon": bool(won.iloc[i]), "IsDeleted": False,
            "SystemModstamp": sf_datetime(d.last_modified), "LeadSource": d.lead_source or None,
            "Type": d.product_type or None,
            "LastStageChangeDate": None if pd.isna(d.stage_entered_date) else sf_datetime(d.stage_entered_date),
            "Competitor__c": "Acme" if i % 7 == 0 else None,
        })

    outcome_by_deal = dict(zip(deals["deal_id"], won))
    history = []
    for i, h in enumerate(snap.stage_history.itertuples(index=False), start=1):
        if h.deal_id not in opp_ids:
            continue
        name = ("Closed Won" if outcome_by_deal[h.deal_id] else "Closed Lost") if h.stage == "Closed" \
            else STAGE_NAMES[h.stage]
        at = sf_datetime(h.entered_date + pd.Timedelta(hours=10))
        history.append({"Id": sf_id("OpportunityHistory", i), "OpportunityId": opp_ids[h.deal_id],
                        "StageName": name, "Amount": None, "CreatedDate": at, "IsDeleted": False,
                        "SystemModstamp": at})

    tasks, events = [], []
    for i, a in enumerate(snap.activities.itertuples(index=False), start=1):
        if a.deal_id not in opp_ids:
            continue
        at = sf_datetime(a.activity_date + pd.Timedelta(hours=15))
        common = {"WhatId": opp_ids[a.deal_id], "OwnerId": user_ids.get(a.sales_rep_id), "CreatedDate": at,
                  "IsDeleted": False, "SystemModstamp": at}
        if a.activity_type == "meeting":
            events.append({"Id": sf_id("Event", i), "StartDateTime": at, **common})
        else:
            tasks.append({"Id": sf_id("Task", i), "TaskSubtype": a.activity_type.capitalize(), "Type": None,
                          "ActivityDate": a.activity_date.strftime("%Y-%m-%d"), **common})

    stages = [{"Id": sf_id("OpportunityStage", i), "ApiName": name, "MasterLabel": name, "IsClosed": is_closed,
               "IsWon": is_won, "IsActive": True, "SortOrder": i}
              for i, (name, is_closed, is_won) in enumerate(OPPORTUNITY_STAGES, start=1)]
    return {"Opportunity": opportunities, "Account": accounts, "OpportunityHistory": history,
            "OpportunityStage": stages, "User": users, "Task": tasks, "Event": events}


# --- TLS -------------------------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def certificate() -> tuple[str, str]:
    """(certificate path, key path) of a self-signed certificate for
    127.0.0.1, made once a day in the temporary folder so a stand-in in
    another process serves the one its clients trust (via its path)."""
    folder = Path(tempfile.gettempdir()) / f"salesforce-standin-{dt.date.today():%Y%m%d}"
    if (folder / "key.pem").exists():
        return str(folder / "cert.pem"), str(folder / "key.pem")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "salesforce stand-in")])
    now = dt.datetime.now(dt.timezone.utc)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(key, hashes.SHA256()))
    staging = Path(tempfile.mkdtemp(prefix="salesforce-standin-"))
    (staging / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (staging / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                        serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    try:
        staging.rename(folder)   # atomic: a concurrent maker's pair wins and is used whole
    except OSError:
        pass
    return str(folder / "cert.pem"), str(folder / "key.pem")


# --- SOQL ------------------------------------------------------------------------------------------------------

def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside parentheses."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        c = text[i]
        depth += c == "("
        depth -= c == ")"
        if depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i])
            i += len(sep)
            start = i
            continue
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


_SELECT = re.compile(r"^SELECT (?P<fields>[^()]+?) FROM (?P<obj>\w+)(?P<rest>.*)$", re.S)
_COMPARE = re.compile(r"^(?P<field>[\w.]+) (?P<op>>=|<=|!=|=|>|<) (?P<value>.+)$")
_IN = re.compile(r"^(?P<field>\w+) IN \((?P<sub>SELECT .+)\)$", re.S)


class SoqlError(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _literal(text: str):
    text = text.strip()
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1]
    if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text):
        return text[:-1] + ".000+0000"
    raise SoqlError("MALFORMED_QUERY", f"unexpected literal {text}")


# --- the server ----------------------------------------------------------------------------------------------

class SalesforceStandIn(LoopbackServer):
    """``fail(action, on=...)`` queues a fault for the next request of a kind
    (``any``, ``query`` = a first page, ``more`` = a ``nextRecordsUrl`` page,
    ``login``). Actions: ``("429", retry_after)``, ``("500",)``,
    ``("delay", seconds)`` (answers late: a client timeout),
    ``("401",)``, ``("403", errorCode, retry_after|None)``."""

    def __init__(self, n_deals: int = 300, seed: int = 42, page_size: int = 2000, org: dict | None = None,
                 with_activities: bool = True):
        self.data = org if org is not None else org_from_sample(n_deals, seed, with_activities=with_activities)
        self.by_id = {obj: {r["Id"]: r for r in rows} for obj, rows in self.data.items()}
        self.page_size = page_size
        self.removed: dict[str, set[str]] = {}
        self.denied: set[str] = set()
        self.faults: list[tuple[str, tuple]] = []
        self.outage = False   # every query answers 500
        self.after_page: Optional[Callable[[int], None]] = None
        self.requests: list[tuple[str, str]] = []   # (kind, path)
        self.times: list[float] = []
        self.sessions = {TOKEN}
        self._cursors: dict[str, list[dict]] = {}
        self._objects: dict[str, str] = {}
        self._lock = threading.RLock()
        self._clock = max(r["SystemModstamp"] for r in self.data["Opportunity"])

    def _make_server(self, address):
        server = ThreadingHTTPServer(address, _handler(self))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*certificate())
        server.socket = context.wrap_socket(server.socket, server_side=True)
        return server

    @property
    def instance_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    base_url = instance_url

    @staticmethod
    def ca_bundle() -> str:
        return certificate()[0]

    # --- changing the org ------------------------------------------------------------------------------------
    def now(self) -> str:
        """The org's clock: one second after the last change."""
        with self._lock:
            self._clock = sf_datetime(pd.Timestamp(self._clock[:19]) + pd.Timedelta(seconds=1))
            return self._clock

    def modify(self, ids, **changes) -> None:
        for opp_id in ids:
            record = self.by_id["Opportunity"][opp_id]
            record.update(changes, SystemModstamp=self.now())

    def change_share(self, share: float, seed: int = 1) -> int:
        """Edit ``share`` of the opportunities now (amount + 1), as a day of CRM use would."""
        import numpy as np

        live = [r for r in self.data["Opportunity"] if not r["IsDeleted"]]
        picked = np.random.default_rng(seed).choice(len(live), size=int(round(share * len(live))), replace=False)
        for k in picked:
            self.modify([live[k]["Id"]], Amount=(live[k]["Amount"] or 0) + 1)
        return len(picked)

    def delete(self, opp_id: str) -> None:
        self.by_id["Opportunity"][opp_id].update(IsDeleted=True, SystemModstamp=self.now())

    def remove_field(self, obj: str, field: str) -> None:
        self.removed.setdefault(obj, set()).add(field)

    def deny(self, obj: str) -> None:
        self.denied.add(obj)

    def fail(self, action: tuple, on: str = "any") -> None:
        self.faults.append((on, action))

    def count(self, kind: str) -> int:
        return sum(k == kind for k, _ in self.requests)

    # --- the API --------------------------------------------------------------------------------------------
    def _fault(self, kind: str):
        with self._lock:
            for i, (on, action) in enumerate(self.faults):
                if on in ("any", kind):
                    return self.faults.pop(i)[1]
        return None

    def handle(self, method: str, path: str, query: dict, headers: dict, body: bytes):
        """(status, headers, body bytes)."""
        url = urlparse(path).path
        kind = ("login" if "/Soap/u/" in url else "more" if re.search(r"/query(All)?/[^/]+$", url)
                else "query" if re.search(r"/query(All)?/?$", url) else "describe" if url.endswith("/describe")
                else "other")
        with self._lock:
            self.requests.append((kind, path))
            self.times.append(time.monotonic())
        fault = ("500",) if self.outage and kind in ("query", "more") else self._fault(kind)
        if fault is not None:
            if fault[0] == "429":
                return 429, {"Retry-After": str(fault[1])}, _errors("REQUEST_LIMIT_EXCEEDED", "Too many requests")
            if fault[0] == "500":
                return 500, {}, _errors("UNKNOWN_EXCEPTION", "An unexpected error occurred")
            if fault[0] == "delay":
                time.sleep(fault[1])
            if fault[0] == "401":
                return 401, {}, _errors("INVALID_SESSION_ID", "Session expired or invalid")
            if fault[0] == "403":
                extra = {"Retry-After": str(fault[2])} if len(fault) > 2 and fault[2] is not None else {}
                return 403, extra, _errors(fault[1], f"{fault[1]}: refused")
        if kind == "login":
            return self._login(body)
        if headers.get("authorization", "").removeprefix("Bearer ") not in self.sessions:
            return 401, {}, _errors("INVALID_SESSION_ID", "Session expired or invalid")
        try:
            if kind == "describe":
                return self._describe(url.split("/")[-2])
            if kind == "query":
                soql = query.get("q", "")
                return self._first_page(soql, include_deleted="/queryAll" in url,
                                        batch=_batch_size(headers.get("sforce-query-options", "")))
            if kind == "more":
                return self._page(url.rsplit("/", 1)[1])
        except SoqlError as exc:
            return 400, {}, _errors(exc.code, str(exc))
        return 404, {}, _errors("NOT_FOUND", "The requested resource does not exist")

    def _login(self, body: bytes):
        text = body.decode()
        user = re.search(r"<n1:username>(.*?)</n1:username>", text)
        password = re.search(r"<n1:password>(.*?)</n1:password>", text)
        if not user or user.group(1) != USERNAME or not password or password.group(1) != PASSWORD + SECURITY_TOKEN:
            fault = ('<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.'
                     'xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com"><soapenv:Body>'
                     '<soapenv:Fault><faultcode>INVALID_LOGIN</faultcode><faultstring>INVALID_LOGIN: Invalid '
                     'username, password, security token; or user locked out.</faultstring><detail><sf:'
                     'LoginFault><sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode><sf:exceptionMessage>Invalid '
                     'username, password, security token; or user locked out.</sf:exceptionMessage></sf:'
                     'LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>')
            return 500, {"Content-Type": "text/xml"}, fault.encode()
        session = f"00DSTANDIN!login.{len(self.sessions)}"
        self.sessions.add(session)
        server = f"{self.instance_url}/services/Soap/u/{API_VERSION}/00DSTANDIN"
        ok = ('<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/'
              'soap/envelope/" xmlns="urn:partner.soap.sforce.com"><soapenv:Body><loginResponse><result>'
              f'<passwordExpired>false</passwordExpired><serverUrl>{server}</serverUrl>'
              f'<sessionId>{session}</sessionId><userId>{sf_id("User", 1)}</userId></result></loginResponse>'
              '</soapenv:Body></soapenv:Envelope>')
        return 200, {"Content-Type": "text/xml"}, ok.encode()

    def _fields(self, obj: str) -> list[str]:
        return [f for f in FIELDS[obj] if f not in self.removed.get(obj, set())]

    def _describe(self, obj: str):
        if obj not in FIELDS or obj in self.denied:
            return 404, {}, _errors("NOT_FOUND", "The requested resource does not exist")
        return 200, {}, json.dumps({"name": obj, "fields": [{"name": f} for f in self._fields(obj)]}).encode()

    def _run(self, soql: str, include_deleted: bool) -> tuple[str, list[dict], list[str]]:
        """(object, matching records in order, selected fields)."""
        match = _SELECT.match(soql.strip())
        if not match:
            raise SoqlError("MALFORMED_QUERY", f"cannot parse {soql!r}")
        obj, rest = match["obj"], match["rest"].strip()
        if obj not in FIELDS or obj in self.denied:
            raise SoqlError("INVALID_TYPE", f"sObject type '{obj}' is not supported.")
        fields = [f.strip() for f in match["fields"].split(",")]
        for field in fields:
            head = field.split(".")[0]
            known = self._fields(obj) + (["Account"] if obj == "Opportunity" else [])
            if head not in known:
                raise SoqlError("INVALID_FIELD", f"No such column '{field}' on entity '{obj}'.")
        order = []
        if " ORDER BY " in f" {rest}":
            rest, order_text = _split_top(f" {rest}", " ORDER BY ")[0], _split_top(f" {rest}", " ORDER BY ")[1]
            order = [o.split()[0] for o in order_text.split(",")]
        conditions = _split_top(rest.strip().removeprefix("WHERE").strip(), " AND ") if rest.strip() else []
        tests = [self._condition(obj, c) for c in conditions]
        rows = [r for r in self.data[obj] if (include_deleted or not r.get("IsDeleted"))
                and all(t(r) for t in tests)]
        if order:
            rows.sort(key=lambda r: tuple((r.get(f) is not None, r.get(f) or "") for f in order))
        return obj, rows, fields

    def _condition(self, obj: str, text: str) -> Callable[[dict], bool]:
        if match := _IN.match(text):
            _, rows, _ = self._run(match["sub"], include_deleted=False)
            ids = {r["Id"] for r in rows}
            return lambda r, f=match["field"]: r.get(f) in ids
        match = _COMPARE.match(text)
        if not match:
            raise SoqlError("MALFORMED_QUERY", f"unexpected condition {text!r}")
        field, op, value = match["field"], match["op"], _literal(match["value"])
        if field == "What.Type":
            return lambda r: str(r.get("WhatId") or "").startswith(PREFIX.get(value, "?"))
        compare = {">": lambda a, b: a is not None and a > b, "<": lambda a, b: a is not None and a < b,
                   ">=": lambda a, b: a is not None and a >= b, "<=": lambda a, b: a is not None and a <= b,
                   "=": lambda a, b: a == b, "!=": lambda a, b: a != b}[op]
        return lambda r: compare(r.get(field), value)

    def _project(self, obj: str, record: dict, fields: list[str]) -> dict:
        out = {"attributes": {"type": obj, "url": f"/services/data/v{API_VERSION}/sobjects/{obj}/{record['Id']}"}}
        for field in fields:
            if "." in field:
                rel, child = field.split(".", 1)
                parent = self.by_id["Account"].get(record.get(f"{rel}Id"))
                if parent is None:
                    out[rel] = None
                    continue
                nested = out.get(rel) or {"attributes": {"type": rel, "url": f"/services/data/v{API_VERSION}/"
                                                                          f"sobjects/{rel}/{parent['Id']}"}}
                nested[child] = parent.get(child)
                out[rel] = nested
            else:
                out[field] = record.get(field)
        return out

    def _first_page(self, soql: str, include_deleted: bool, batch: int):
        with self._lock:
            obj, rows, fields = self._run(soql, include_deleted)
            result = [self._project(obj, r, fields) for r in rows]
            locator = f"01gSTANDIN{len(self._cursors):07d}"
            self._cursors[locator] = result
            self._objects[locator] = obj
        return self._page(f"{locator}-0", batch=batch, total=len(result))

    def _page(self, token: str, batch: int | None = None, total: int | None = None):
        locator, _, offset = token.rpartition("-")
        rows = self._cursors.get(locator)
        if rows is None:
            return 400, {}, _errors("INVALID_QUERY_LOCATOR", "invalid query locator")
        start = int(offset)
        size = min(batch or self.page_size, self.page_size)
        end = min(start + size, len(rows))
        page = {"totalSize": len(rows), "done": end >= len(rows), "records": rows[start:end]}
        if end < len(rows):
            page["nextRecordsUrl"] = f"/services/data/v{API_VERSION}/query/{locator}-{end}"
        body = json.dumps(page).encode()
        if self.after_page is not None:
            self.after_page(self._objects[locator], start)
        return 200, {}, body


def _batch_size(options: str) -> int | None:
    match = re.search(r"batchSize=(\d+)", options)
    return int(match.group(1)) if match else None


def _errors(code: str, message: str) -> bytes:
    return json.dumps([{"message": message, "errorCode": code}]).encode()


def _handler(standin: SalesforceStandIn):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            query = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, payload = standin.handle(method, self.path, query, headers, body)
            try:
                self.send_response(status)
                self.send_header("Content-Type", extra.pop("Content-Type", "application/json;charset=UTF-8"))
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Sforce-Limit-Info", f"api-usage={len(standin.requests)}/15000")
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                pass  # the client gave up (timeout) before the answer

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

    return Handler
