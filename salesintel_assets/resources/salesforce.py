"""Salesforce as a CRM source, through the maintained ``simple-salesforce``
client: SOQL over the REST query API, paged by the client along
``nextRecordsUrl``, with retries done by urllib3's ``Retry`` on the client's
requests session (429 and 5xx with backoff, ``Retry-After`` honoured,
timeouts retried). What the records mean lives in ``sources/salesforce.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Optional

import dagster as dg
import pandas as pd
from pydantic import PrivateAttr

from salesintel_assets.resources.crm import WindowedCRMSource
from salesintel_assets.sources import salesforce as sf

DEFAULT_API_VERSION = "62.0"


@dataclass(frozen=True)
class _Pull:
    deals: pd.DataFrame
    stage_history: pd.DataFrame
    activities: pd.DataFrame
    deletions: pd.DataFrame
    missing: tuple[str, ...]


class SalesforceCRM(WindowedCRMSource):
    """An org reached at ``instance_url`` (``https://yourorg.my.salesforce.com``)
    with either an OAuth ``access_token`` or ``username`` + ``password`` +
    ``security_token`` (SOAP login against the same instance). ``product_field``
    (Opportunity), ``industry_field`` and ``region_field`` (Account) say where
    the segment columns come from. ``overlap_seconds`` re-reads a little
    before the cursor; unchanged rows are dropped by their content hash.
    ``parallel_queries`` independent queries of a pull run side by side.
    ``rules_path`` is the rules file whose stage names map Salesforce's."""

    instance_url: str
    api_version: str = DEFAULT_API_VERSION
    access_token: Optional[str] = None
    username: Optional[str] = None
    password: Optional[str] = None
    security_token: Optional[str] = None
    product_field: str = "Type"
    industry_field: str = "Industry"
    region_field: str = "BillingCountry"
    batch_size: int = 2000
    timeout_seconds: float = 60.0
    max_retries: int = 6
    backoff_seconds: float = 1.0
    max_retry_after_seconds: int = 300
    overlap_seconds: int = 300
    parallel_queries: int = 6
    rules_path: Optional[str] = None

    # Resource field -> the run-time contract's variable that sets it.
    ENVIRONMENT: ClassVar[dict[str, str]] = {
        "instance_url": "SALESFORCE_INSTANCE_URL", "api_version": "SALESFORCE_API_VERSION",
        "access_token": "SALESFORCE_ACCESS_TOKEN", "username": "SALESFORCE_USERNAME",
        "password": "SALESFORCE_PASSWORD", "security_token": "SALESFORCE_SECURITY_TOKEN",
        "product_field": "SALESFORCE_PRODUCT_FIELD", "industry_field": "SALESFORCE_INDUSTRY_FIELD",
        "region_field": "SALESFORCE_REGION_FIELD", "rules_path": "SALESINTEL_RULES"}

    _client: Any = PrivateAttr(default=None)
    _fields: dict = PrivateAttr(default_factory=dict)

    # --- the CRMSource interface -------------------------------------------------------------------------
    def describe(self) -> str:
        return f"salesforce:{self.instance_url.rstrip('/')} v{self._version()}"

    def fetch_org(self) -> Optional[pd.DataFrame]:
        users = self._plan("User", sf.USER_REQUIRED, sf.USER_OPTIONAL)
        return sf.org_frame(list(self._records(sf.users_soql(users), "User")))

    def missing_fields(self, since: Optional[pd.Timestamp]) -> list[str]:
        missing = self._pull(since).missing
        return [sf.missing_field_sentence("Opportunity", missing)] if missing else []

    def _read_window(self, since: Optional[pd.Timestamp]) -> "_Pull":
        """Everything of one window, read once and side by side (the queries
        are independent; their pages interleave): deals, their stage
        history (which also says where a lost deal was lost), tasks, events
        and deletions."""
        from salesintel_assets.domain.common.rules import load_rules

        rules = load_rules(self.rules_path).stages
        fields = sf.DealFields(self.product_field, self.industry_field, self.region_field)
        plan = self._plan("Opportunity", sf.OPPORTUNITY_REQUIRED, sf.OPPORTUNITY_OPTIONAL + (fields.product,),
                          keep_custom=True, hard=sf.OPPORTUNITY_KEYS)
        stage_plan = self._plan("OpportunityStage", sf.STAGE_REQUIRED, sf.STAGE_OPTIONAL)
        self._plan("OpportunityHistory", sf.HISTORY_REQUIRED)
        tasks = self._plan("Task", sf.TASK_REQUIRED, sf.TASK_OPTIONAL)
        events = self._plan("Event", sf.EVENT_REQUIRED)
        window = self._since(since)
        read = self._read_side_by_side({
            "stages": (sf.stages_soql(stage_plan), "OpportunityStage", False),
            "history": (sf.history_soql(window), "OpportunityHistory", False),
            "deals": (sf.opportunity_soql(sf.opportunity_select(plan, self._available("Account"), fields),
                                          window), "Opportunity", False),
            "tasks": (sf.activity_soql("Task", tasks.selected, window), "Task", False),
            "events": (sf.activity_soql("Event", events.selected, window), "Event", False),
            "deletions": (sf.deleted_soql(window), "Opportunity", True),
        })
        stages = sf.StageMap.from_records(read["stages"], rules.canonical, rules.closed_stage)
        history = sf.history_frame(read["history"], stages)
        deals = sf.deals_frame(read["deals"], plan, fields, stages,
                               sf.last_open_stages(history, rules.closed_stage))
        return _Pull(deals, history, sf.activities_frame(read["tasks"], read["events"]),
                     sf.deletions_frame(read["deletions"]), plan.missing)

    def _read_side_by_side(self, queries: dict[str, tuple[str, str, bool]]) -> dict[str, list[dict]]:
        """Each query's records, the queries run on parallel connections; the
        first failure fails the read."""
        from concurrent.futures import ThreadPoolExecutor

        from salesintel_assets.sources.salesforce_client import clone

        base = self._connect()
        pool = ThreadPoolExecutor(max_workers=max(self.parallel_queries, 1), thread_name_prefix="salesforce")
        try:
            futures = {name: pool.submit(lambda q=query: list(self._records(q[0], q[1], q[2], clone(base, self))))
                       for name, query in queries.items()}
            return {name: future.result() for name, future in futures.items()}
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    # --- the client ---------------------------------------------------------------------------------------
    def _version(self) -> str:
        return self.api_version.strip().lstrip("vV") or DEFAULT_API_VERSION

    def _since(self, since: Optional[pd.Timestamp]) -> str:
        return sf.since_filter(since, pd.Timedelta(seconds=self.overlap_seconds))

    def _connect(self):
        """One logged-in client per resource instance (one run)."""
        if self._client is None:
            from salesintel_assets.sources.salesforce_client import connect

            self._client = self._guarded("login", lambda: connect(self))
        return self._client

    def _records(self, soql: str, obj: str, include_deleted: bool = False, client=None) -> Iterator[dict]:
        """Every record of a query, page after page; the client follows
        ``nextRecordsUrl`` and the session's Retry handles rate limits."""
        client = client or self._connect()
        pages = client.query_all_iter(soql, include_deleted=include_deleted,
                                      headers={"Sforce-Query-Options": f"batchSize={self.batch_size}"})
        iterator = iter(pages)
        while True:
            record = self._guarded(obj, lambda: next(iterator, None))
            if record is None:
                return
            yield record

    def _available(self, obj: str) -> set[str]:
        """Field names of ``obj`` the API user can read (one describe per run)."""
        if obj not in self._fields:
            client = self._connect()
            described = self._guarded(obj, lambda: client.restful(f"sobjects/{obj}/describe"))
            self._fields[obj] = {f["name"] for f in described.get("fields", [])}
        return self._fields[obj]

    def _plan(self, obj: str, required: tuple[str, ...], optional: tuple[str, ...] = (),
              keep_custom: bool = False, hard: Optional[tuple[str, ...]] = None) -> sf.FieldPlan:
        try:
            return sf.plan_fields(obj, self._available(obj), required, optional, keep_custom, hard)
        except sf.SalesforceSchemaError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None

    def _guarded(self, what: str, call):
        """Run a client call; a refusal or an exhausted retry becomes one
        clear sentence and a failed run (nothing is stored, the cursor stays)."""
        from salesintel_assets.sources.salesforce_client import failure_message

        try:
            return call()
        except Exception as exc:  # the client raises requests and simple-salesforce errors
            message = failure_message(exc, what, self)
            if message is None:
                raise
            raise dg.Failure(description=message, allow_retries=False) from None
