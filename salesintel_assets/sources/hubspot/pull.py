"""One pull from HubSpot: everything changed in [since, until), consistent.

Search returns at most 10,000 results per query and pages by offset
(``after``), so the walk is split into time windows on
``hs_lastmodifieddate`` (ascending): a window ends at the cap, or when the
result count changes under it (a record was edited or deleted during the
pull, which would shift the offsets), and the next window starts at the last
time seen. Records seen twice are kept once. ``until`` (the pull's start,
less HubSpot's search-index lag) bounds every window, so an edit made during
the pull is left for the next pull instead of moving the cursor past records
not yet read."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Iterator

import pandas as pd

from salesintel_assets.sources.hubspot import records
from salesintel_assets.sources.hubspot.api import (ASSOCIATION_BATCH_LIMIT, BATCH_LIMIT, HISTORY_BATCH_LIMIT,
                                                   SEARCH_LIMIT, HubSpotApi, HubSpotError)

MODIFIED = "hs_lastmodifieddate"


def _ms(at: pd.Timestamp) -> str:
    return str(int(_naive(at).value // 1_000_000))


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def search_windows(api: HubSpotApi, object_type: str, properties: list[str], since: pd.Timestamp | None,
                   until: pd.Timestamp) -> dict[str, dict]:
    """id -> newest record of ``object_type`` modified in [since, until).

    A window pages with ``after`` until the 10,000 cap, then the next window
    starts at the last time seen. When the result count changes between
    pages, a record left the window (edited or deleted during the pull) and
    the offsets shifted under us: the window restarts at the last page known
    complete, so the records that slid back are read, not skipped."""
    found: dict[str, dict] = {}
    start = since
    while True:
        filters = [{"propertyName": MODIFIED, "operator": "LT", "value": _ms(until)}]
        if start is not None:
            filters.append({"propertyName": MODIFIED, "operator": "GTE", "value": _ms(start)})
        body = {"filterGroups": [{"filters": filters}], "properties": properties, "limit": SEARCH_LIMIT,
                "sorts": [{"propertyName": MODIFIED, "direction": "ASCENDING"}]}
        first_total, last_seen, after = None, None, None
        while True:
            page = api.search(object_type, {**body, **({"after": after} if after else {})})
            first_total = page.get("total") if first_total is None else first_total
            if page.get("total") != first_total and _moves_on(last_seen, start):
                start = _naive(last_seen)
                break
            for item in page.get("results", []):
                found[str(item["id"])] = item
                last_seen = (item.get("properties") or {}).get(MODIFIED) or last_seen
            after = ((page.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return found
            if int(after) >= api.search_cap:
                if not _moves_on(last_seen, start):
                    raise HubSpotError(f"more than {api.search_cap:,} HubSpot {object_type} share the modification "
                                       f"time {last_seen}: the search cannot page past them; contact the data team.")
                start = _naive(last_seen)
                break


def _moves_on(last_seen: str | None, start: pd.Timestamp | None) -> bool:
    """Whether a window starting at ``last_seen`` starts later than ``start``."""
    return last_seen is not None and (start is None or _naive(last_seen) > start)


def _naive(at) -> pd.Timestamp:
    """A naive UTC timestamp (the warehouse's convention)."""
    at = pd.Timestamp(at)
    return at.tz_convert("UTC").tz_localize(None) if at.tzinfo else at


@dataclass
class HubSpotPull:
    """Deals, stage history, activities and deletions of one pull."""

    deals: pd.DataFrame
    stage_history: pd.DataFrame
    activities: pd.DataFrame
    deletions: pd.DataFrame
    missing_properties: list[str] = field(default_factory=list)


def pull(api: HubSpotApi, since: pd.Timestamp | None, until: pd.Timestamp, names: records.PropertyNames,
         canonical: Callable[[str], str | None], closed_stage: str, with_activities: bool = True,
         workers: int = 4) -> HubSpotPull:
    """Batch reads run on ``workers`` threads: HubSpot answers a few
    requests at once, and its rate limit (429) is honoured per request."""
    stages = records.stage_table(api.pipelines(), canonical, closed_stage)
    deals = search_windows(api, "deals", list(dict.fromkeys(names.required_deal + ("pipeline",))), since, until)
    ids = sorted(deals, key=int)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        histories: dict[str, list[dict]] = {}
        read_history = partial(api.batch_read, "deals", properties=["dealstage"], history=["dealstage"])
        for found in pool.map(read_history, _chunks(ids, HISTORY_BATCH_LIMIT)):
            histories.update({str(i["id"]): (i.get("propertiesWithHistory") or {}).get("dealstage", []) for i in found})
        company_of = {}
        for found in pool.map(partial(api.associations, "deals", "companies"), _chunks(ids, ASSOCIATION_BATCH_LIMIT)):
            company_of.update(records.primary_companies(found))
        company_props = {}
        read_companies = partial(api.batch_read, "companies", properties=list(names.company))
        for found in pool.map(read_companies, _chunks(sorted(set(company_of.values()), key=int), BATCH_LIMIT)):
            company_props.update({str(i["id"]): i.get("properties") or {} for i in found})
        companies = {deal: company_props.get(company, {}) for deal, company in company_of.items()}
        frame, history, missing = records.deal_frames([deals[i] for i in ids], histories, companies, stages, names,
                                                      _naive(until))
        found_activities = activities(api, since, until, pool) if with_activities else records.activity_frame({}, {})
    return HubSpotPull(frame, history, found_activities, deletions(api, since), missing)


def activities(api: HubSpotApi, since: pd.Timestamp | None, until: pd.Timestamp,
               pool: ThreadPoolExecutor) -> pd.DataFrame:
    """Engagements modified in the window that are associated with a deal
    (one engagement type per thread, then their deal associations)."""
    kinds = list(records.ENGAGEMENT_TYPES)
    search = partial(_search_engagements, api, since=since, until=until)
    engagements = dict(zip(kinds, pool.map(search, kinds)))
    deal_of = {}
    jobs = [(kind, chunk) for kind in kinds for chunk in _chunks(sorted(engagements[kind], key=int),
                                                                  ASSOCIATION_BATCH_LIMIT)]
    for found in pool.map(lambda job: api.associations(job[0], "deals", job[1]), jobs):
        deal_of.update(records.first_deal(found))
    return records.activity_frame({k: list(v.values()) for k, v in engagements.items()}, deal_of)


def _search_engagements(api: HubSpotApi, kind: str, since, until) -> dict[str, dict]:
    return search_windows(api, kind, ["hs_timestamp", "hubspot_owner_id", MODIFIED], since, until)


def deletions(api: HubSpotApi, since: pd.Timestamp | None) -> pd.DataFrame:
    """Archived deals (HubSpot keeps them 90 days), archived at or after ``since``."""
    archived = api.all_pages(lambda after: api.archived_page("deals", after))
    frame = pd.DataFrame({"deal_id": [str(a["id"]) for a in archived],
                          "deleted_at": pd.to_datetime([a.get("archivedAt") for a in archived], utc=True)})
    frame["deleted_at"] = frame["deleted_at"].dt.tz_localize(None)
    if since is not None:
        frame = frame[frame["deleted_at"] >= pd.Timestamp(since)]
    return frame.reset_index(drop=True)


def org(api: HubSpotApi, manager_role: str, cro_role: str) -> pd.DataFrame:
    owners = api.all_pages(api.owners_page)
    users = api.all_pages(api.users_page)
    return records.org_frame(owners, users, api.roles(), manager_role, cro_role)
