"""Calls to HubSpot through the official client. The client does the HTTP,
authentication and retries (urllib3 ``Retry``: 429 honours ``Retry-After``
or HubSpot's rate-limit interval, 5xx and timeouts back off); this module
only chooses the endpoints and turns a refusal into one clear sentence.

Responses are read as raw JSON (``_preload_content=False``): the generated
models cost more to build than the whole rest of a pull."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

from urllib3.util.retry import Retry

# The private-app scope each family of endpoints needs (named in refusals).
SCOPES = {
    "deals": "crm.objects.deals.read",
    "companies": "crm.objects.companies.read",
    "owners": "crm.objects.owners.read",
    "pipelines": "crm.objects.deals.read",
    "users": "settings.users.read",
    "roles": "settings.users.read",
    "calls": "crm.objects.contacts.read",   # engagements are read with the contacts scope
    "emails": "crm.objects.contacts.read",
    "meetings": "crm.objects.contacts.read",
    "notes": "crm.objects.contacts.read",
    "tasks": "crm.objects.contacts.read",
}
SEARCH_LIMIT = 200        # results per search page (HubSpot's maximum)
SEARCH_CAP = 10_000       # a search never pages past this many results
BATCH_LIMIT = 100         # objects per batch read
HISTORY_BATCH_LIMIT = 50  # objects per batch read that asks for property history
ASSOCIATION_BATCH_LIMIT = 1000


class HubSpotError(RuntimeError):
    """HubSpot refused or failed a call; the message is one sentence for the operator."""


class HubSpotAccessError(HubSpotError):
    """401/403: the token is wrong or lacks a scope. Never retried."""


class HubSpotRetry(Retry):
    """urllib3's Retry, reading HubSpot's rate-limit headers when a 429
    carries no Retry-After (HubSpot states the window it counts in)."""

    def get_retry_after(self, response) -> float | None:
        seconds = super().get_retry_after(response)
        if seconds is None and response.status == 429:
            interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
            if interval and interval.strip().isdigit():
                return min(int(interval) / 1000.0, self.retry_after_max)
        return seconds


def build_retry(attempts: int, backoff_seconds: float) -> HubSpotRetry:
    """Retries for reads: POST is included because search and batch read are
    reads. The last refused response is returned (not raised) so its body
    can be quoted."""
    return HubSpotRetry(total=attempts, connect=attempts, read=attempts, status=attempts,
                        backoff_factor=backoff_seconds, backoff_max=30,
                        status_forcelist=(429, 500, 502, 503, 504), allowed_methods=None,
                        respect_retry_after_header=True, raise_on_status=False)


@dataclass
class HubSpotApi:
    """The endpoints a pull uses, as JSON dicts."""

    client: Any
    timeout_seconds: float
    search_cap: int = SEARCH_CAP
    _endpoints: dict = field(default_factory=dict)

    @classmethod
    def connect(cls, access_token: str, base_url: str, attempts: int, backoff_seconds: float,
                timeout_seconds: float) -> "HubSpotApi":
        from hubspot import HubSpot

        client = HubSpot(access_token=access_token, host=base_url.rstrip("/"),
                         retry=build_retry(attempts, backoff_seconds))
        return cls(client, timeout_seconds)

    def _endpoint(self, path: str, name: str) -> Callable:
        """A client API method; the API object (and its connection pool) is
        built once, where the client's discovery builds one per access."""
        if path not in self._endpoints:
            found = self.client
            for part in path.split("."):
                found = getattr(found, part)
            self._endpoints[path] = found
        return getattr(self._endpoints[path], name)

    def _call(self, family: str, where: str, method: Callable, *args, **kwargs) -> dict:
        try:
            response = method(*args, _preload_content=False, _request_timeout=self.timeout_seconds, **kwargs)
        except Exception as error:  # the client raises a per-package ApiException or urllib3's errors
            raise translate(error, family, where) from None
        try:
            return json.loads(response.data or b"{}")
        except Exception as error:  # the answer broke off after its headers: beyond urllib3's retries
            raise HubSpotError(f"HubSpot's answer from {where} broke off ({type(error).__name__}): the pull stops; "
                               "the cursor did not move, so the next run pulls the same window again.") from None

    # --- objects ------------------------------------------------------------------
    def search(self, object_type: str, body: dict) -> dict:
        return self._call(object_type, f"/crm/v3/objects/{object_type}/search",
                          self._endpoint("crm.objects.search_api", "do_search"), object_type, body)

    def batch_read(self, object_type: str, ids: list[str], properties: list[str],
                   history: list[str] | None = None) -> list[dict]:
        body = {"inputs": [{"id": i} for i in ids], "properties": properties,
                "propertiesWithHistory": history or []}
        found = self._call(object_type, f"/crm/v3/objects/{object_type}/batch/read",
                           self._endpoint("crm.objects.batch_api", "read"), object_type, body, archived=False)
        return found.get("results", [])

    def archived_page(self, object_type: str, after: str | None) -> dict:
        return self._call(object_type, f"/crm/v3/objects/{object_type}?archived=true",
                          self._endpoint("crm.objects.basic_api", "get_page"), object_type, limit=100, archived=True,
                          properties=["hs_lastmodifieddate"], **({"after": after} if after else {}))

    def associations(self, from_type: str, to_type: str, ids: list[str]) -> list[dict]:
        body = {"inputs": [{"id": i} for i in ids]}
        found = self._call(from_type, f"/crm/v4/associations/{from_type}/{to_type}/batch/read",
                           self._endpoint("crm.associations.v4.batch_api", "get_page"), from_type, to_type, body)
        return found.get("results", [])

    # --- settings -----------------------------------------------------------------
    def pipelines(self) -> list[dict]:
        found = self._call("pipelines", "/crm/v3/pipelines/deals",
                           self._endpoint("crm.pipelines.pipelines_api", "get_all"), "deals")
        return found.get("results", [])

    def owners_page(self, after: str | None) -> dict:
        return self._call("owners", "/crm/v3/owners", self._endpoint("crm.owners.owners_api", "get_page"),
                          limit=500, **({"after": after} if after else {}))

    def users_page(self, after: str | None) -> dict:
        return self._call("users", "/settings/v3/users", self._endpoint("settings.users.users_api", "get_page"),
                          limit=100, **({"after": after} if after else {}))

    def roles(self) -> list[dict]:
        return self._call("roles", "/settings/v3/users/roles",
                          self._endpoint("settings.users.roles_api", "get_all")).get("results", [])

    def all_pages(self, page: Callable[[str | None], dict]) -> list[dict]:
        """Every result of a list endpoint, following ``paging.next.after``."""
        results, after = [], None
        while True:
            found = page(after)
            results.extend(found.get("results", []))
            after = (found.get("paging") or {}).get("next", {}).get("after")
            if not after:
                return results


def translate(error: Exception, family: str, where: str) -> HubSpotError:
    """One sentence for a failed call: what, where, what to do."""
    status = getattr(error, "status", None)
    body = _body(error)
    if status == 401:
        return HubSpotAccessError(
            f"HubSpot rejected the access token at {where} (401 {body.get('category', 'INVALID_AUTHENTICATION')}): "
            "set HUBSPOT_ACCESS_TOKEN to a valid private-app token.")
    if status == 403:
        scopes = _required_scopes(body) or [SCOPES.get(family, "the scope for " + family)]
        return HubSpotAccessError(
            f"HubSpot refused {where} (403 {body.get('category', 'MISSING_SCOPES')}): the private app needs the "
            f"scope {' or '.join(scopes)}; add it in HubSpot and update HUBSPOT_ACCESS_TOKEN.")
    if status:
        return HubSpotError(f"HubSpot answered {status} at {where} after every retry "
                            f"({body.get('message', 'no message')}): try again later; the cursor did not move.")
    return HubSpotError(f"HubSpot could not be reached at {where} after every retry "
                        f"({type(error).__name__}): check HUBSPOT_BASE_URL and the network; the cursor did not move.")


def _body(error: Exception) -> dict:
    try:
        found = json.loads(getattr(error, "body", None) or b"{}")
        return found if isinstance(found, dict) else {}
    except (TypeError, ValueError):
        return {}


def _required_scopes(body: dict) -> list[str]:
    for detail in body.get("errors") or []:
        context = detail.get("context") or {}
        for key in ("requiredGranularScopes", "requiredScopes"):
            if context.get(key):
                return list(context[key])
    return []
