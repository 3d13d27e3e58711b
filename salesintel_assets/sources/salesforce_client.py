"""The ``simple-salesforce`` client the Salesforce source uses, and what its
failures mean in words.

Retries are urllib3's ``Retry`` mounted on the client's requests session:
429 and 5xx answers and timeouts are retried with exponential backoff, a
``Retry-After`` header is honoured (also on a 403 REQUEST_LIMIT_EXCEEDED
that carries one). The client itself follows ``nextRecordsUrl`` from page to
page. Neither needs a hand-written loop here.
"""

from __future__ import annotations

from typing import Optional

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from salesintel_assets.sources.salesforce import OBJECT_PERMISSIONS

RETRY_STATUSES = (429, 500, 502, 503, 504)
_NEXT_RUN = "nothing was stored and the next run resumes from the same cursor"


class SalesforceRetry(Retry):
    """urllib3's Retry, also honouring ``Retry-After`` on a 403: Salesforce
    answers an exhausted request limit with 403 REQUEST_LIMIT_EXCEEDED, and a
    403 without the header (a missing permission) is never retried."""

    RETRY_AFTER_STATUS_CODES = Retry.RETRY_AFTER_STATUS_CODES | frozenset({403})


class _TimeoutAdapter(HTTPAdapter):
    """Every request gets the timeout (the client does not pass one on all calls)."""

    def __init__(self, timeout: float, **kwargs):
        self.timeout = timeout
        super().__init__(**kwargs)

    def send(self, request, **kwargs):
        kwargs["timeout"] = kwargs.get("timeout") or self.timeout
        return super().send(request, **kwargs)


def retrying_session(timeout: float, retries: int, backoff: float, max_retry_after: int) -> requests.Session:
    retry = SalesforceRetry(
        total=retries, connect=retries, read=retries, status=retries, other=0,
        status_forcelist=RETRY_STATUSES, allowed_methods=frozenset({"GET", "POST"}),
        backoff_factor=backoff, backoff_max=60, respect_retry_after_header=True,
        retry_after_max=max_retry_after, raise_on_status=False)
    session = requests.Session()
    adapter = _TimeoutAdapter(timeout, max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def connect(resource):
    """A ``simple_salesforce.Salesforce`` on a retrying session: with an
    access token directly, else by the SOAP login against the instance."""
    from simple_salesforce import Salesforce, SalesforceLogin

    session = retrying_session(resource.timeout_seconds, resource.max_retries, resource.backoff_seconds,
                               resource.max_retry_after_seconds)
    version = resource._version()
    instance_url = resource.instance_url.rstrip("/")
    if resource.access_token:
        return Salesforce(session_id=resource.access_token, instance_url=instance_url, version=version,
                          session=session, object_pairs_hook=dict)
    missing = [name for name, value in [("SALESFORCE_USERNAME", resource.username),
                                        ("SALESFORCE_PASSWORD", resource.password),
                                        ("SALESFORCE_SECURITY_TOKEN", resource.security_token)] if not value]
    if missing:
        raise ValueError(f"Salesforce needs SALESFORCE_ACCESS_TOKEN or {', '.join(missing)}")
    session_id, instance = SalesforceLogin(username=resource.username, password=resource.password,
                                           security_token=resource.security_token, sf_version=version,
                                           session=session, scratch_url=instance_url)
    return Salesforce(session_id=session_id, instance=instance, version=version, session=session,
                      object_pairs_hook=dict)


def clone(client, resource):
    """Another client on the same login with its own connection pool, for
    reading queries side by side."""
    from simple_salesforce import Salesforce

    session = retrying_session(resource.timeout_seconds, resource.max_retries, resource.backoff_seconds,
                               resource.max_retry_after_seconds)
    return Salesforce(session_id=client.session_id, instance=client.sf_instance, version=client.sf_version,
                      session=session, object_pairs_hook=dict)


def _error(exc) -> tuple[str, str]:
    """(errorCode, message) of a Salesforce error body ``[{"message", "errorCode"}]``."""
    content = getattr(exc, "content", None)
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return str(content[0].get("errorCode", "")), str(content[0].get("message", ""))
    return "", str(content or "")


def failure_message(exc: Exception, what: str, resource) -> Optional[str]:
    """One sentence for a failed call (what, where, what to do), or None
    when the error is not the client's (a bug: let it surface)."""
    from simple_salesforce.exceptions import (SalesforceAuthenticationFailed, SalesforceError,
                                              SalesforceExpiredSession, SalesforceGeneralError,
                                              SalesforceMalformedRequest, SalesforceRefusedRequest,
                                              SalesforceResourceNotFound)

    where = resource.instance_url.rstrip("/")
    permission = OBJECT_PERMISSIONS.get(what, f"Read on {what}")
    if isinstance(exc, ValueError) and str(exc).startswith("Salesforce needs"):
        return f"{exc}: set them for the Salesforce source at {where}."
    if isinstance(exc, SalesforceAuthenticationFailed):
        return (f"Salesforce login at {where} failed ({exc.code}: {exc.auth_message}): check SALESFORCE_USERNAME, "
                "SALESFORCE_PASSWORD and SALESFORCE_SECURITY_TOKEN and that the user has the API Enabled permission.")
    if not isinstance(exc, SalesforceError):
        if isinstance(exc, requests.exceptions.RequestException):
            return (f"Salesforce at {where} did not answer while reading {what} ({type(exc).__name__}) after "
                    f"{resource.max_retries} retries: check the network or try later; {_NEXT_RUN}.")
        return None
    code, text = _error(exc)
    if isinstance(exc, SalesforceExpiredSession):
        return (f"Salesforce at {where} refused the session while reading {what} (401 {code or 'INVALID_SESSION_ID'}): "
                "the access token expired or was revoked; set a fresh SALESFORCE_ACCESS_TOKEN (or use the "
                f"username login); {_NEXT_RUN}.")
    if code in ("API_DISABLED_FOR_ORG", "API_CURRENTLY_DISABLED"):
        return (f"Salesforce at {where} refused API access ({exc.status} {code}): give the API user the "
                f"API Enabled permission; {_NEXT_RUN}.")
    if code == "REQUEST_LIMIT_EXCEEDED":
        usage = (getattr(resource, "_client", None) and resource._client.api_usage.get("api-usage")) or "unknown usage"
        return (f"Salesforce at {where} refused {what} because the org's API request limit is used up "
                f"({code}, {usage}): wait for the limit to reset or raise it; {_NEXT_RUN}.")
    if isinstance(exc, (SalesforceRefusedRequest, SalesforceResourceNotFound)) or code == "INVALID_TYPE":
        return (f"Salesforce at {where} does not let the API user read {what} ({exc.status} {code or 'refused'}): "
                f"grant {permission} (or View All Data) in its profile or a permission set; {_NEXT_RUN}.")
    if isinstance(exc, SalesforceMalformedRequest) and code == "INVALID_FIELD":
        return (f"Salesforce at {where} rejected a field of {what} during the pull ({text}): the field was "
                f"removed or hidden; grant read access to it or restore it; {_NEXT_RUN}.")
    if isinstance(exc, SalesforceGeneralError):
        return (f"Salesforce at {where} kept answering HTTP {exc.status} while reading {what} after "
                f"{resource.max_retries} retries ({code or text[:80]}): try again later; {_NEXT_RUN}.")
    return (f"Salesforce at {where} answered {exc.status} {code} while reading {what} ({text[:120]}); "
            f"{_NEXT_RUN}.")
