"""CRM sources. Each returns deals in the export format, page by page, and
only what changed since a cursor when the CRM can say so.

HubSpot and Salesforce will be further subclasses: their APIs are paged and
filter on a last-modified time, which is exactly ``fetch_deal_pages(since)``.
"""


from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Optional

import dagster as dg
import pandas as pd
from pydantic import PrivateAttr

from salesintel_assets.domain.ingestion.blocked import BlockedInput
from salesintel_assets.domain.ingestion.pulls import as_export_text
from salesintel_assets.domain.ingestion.quality import DEFECT, LINE
from salesintel_assets.domain.ingestion.values import DATE_ORDERS, DECIMAL_MARKS
from salesintel_assets.sources.csv_export import read_export, stage_export


class CRMSource(dg.ConfigurableResource):
    """What every CRM source offers. Subclasses override the fetch methods."""

    page_size: int = 100_000

    def describe(self) -> str:
        """Where the data comes from, recorded with every raw pull."""
        raise NotImplementedError

    def fetch_deal_pages(self, since: Optional[pd.Timestamp]) -> Iterator[pd.DataFrame]:
        """Deals as text in the export format (plus ``last_modified`` and
        ``stage_entered_date`` when the CRM knows them), changed after ``since``
        when the CRM supports it, otherwise everything."""
        raise NotImplementedError

    def fetch_stage_history(self, since: Optional[pd.Timestamp]) -> pd.DataFrame:
        """deal_id, stage, entered_date: the whole stage history of every deal
        changed after ``since``; empty when the CRM has no history."""
        return pd.DataFrame({"deal_id": pd.Series(dtype=str), "stage": pd.Series(dtype=str),
                             "entered_date": pd.Series(dtype="datetime64[ns]")})

    def fetch_activities(self, since: Optional[pd.Timestamp]) -> pd.DataFrame:
        """activity_id, deal_id, sales_rep_id, activity_type, activity_date:
        activities logged on or after the day of ``since``."""
        return pd.DataFrame({c: pd.Series(dtype=str) for c in
                             ("activity_id", "deal_id", "sales_rep_id", "activity_type")}
                            ).assign(activity_date=pd.Series(dtype="datetime64[ns]"))

    def fetch_deletions(self, since: Optional[pd.Timestamp]) -> pd.DataFrame:
        """deal_id, deleted_at: deals deleted (archived) in the CRM after
        ``since`` (all known deletions when None). They become tombstones:
        the deal leaves fact_deals and keeps its history. Empty when the CRM
        cannot say (a file export)."""
        from salesintel_assets.domain.ingestion.deletions import empty_deletions

        return empty_deletions()

    def fetch_org(self) -> Optional[pd.DataFrame]:
        """The sales org (rep -> manager -> CRO) or None when the CRM has none."""
        return None

    def missing_fields(self, since: Optional[pd.Timestamp]) -> list[str]:
        """Required fields the CRM did not deliver, in the CRM's own words
        (e.g. "HubSpot deal property product_type"): a blocking schema
        failure. A file export's missing columns are found by the schema gate."""
        return []

    def snapshot_fingerprint(self) -> Optional[str]:
        """A digest that changes whenever the source's content may have
        changed, read without pulling (a file's bytes); None when only a pull
        can tell. Equal to the last complete run's, the pull is not read."""
        return None

    def default_as_of(self) -> Optional[date]:
        """The source's own analysis date, offered to the settings when
        SALESINTEL_AS_OF is not set (None: the settings use today)."""
        return None

    def stated_formats(self) -> tuple[Optional[str], Optional[str]]:
        """(date order, decimal mark) the user stated for this source; None
        leaves the choice to the data's evidence."""
        return None, None

    def change_marker(self) -> Optional[str]:
        """A cheap fingerprint of the CRM's state that differs after a change
        (the CRM-change sensor compares it with the last one it acted on);
        None when the source cannot tell without a pull (the schedules pull it)."""
        return None

    def stage_deals(self, con, table: str) -> Optional[list[str]]:
        """Split the deals into the temp table ``table`` of the DuckDB
        connection ``con`` without loading them into Python (text columns
        c0, c1, ... and ``_line``) and return their header; None when the
        source cannot (then ``fetch_deal_pages`` is read)."""
        return None

class WindowedCRMSource(CRMSource):
    """A CRM read through its API once per pull window: deals, stage
    history, activities and deletions come from the same view, cached per
    cursor. Subclasses read a window in ``_read_window`` and return an object
    with those four frames."""

    _pulls: dict = PrivateAttr(default_factory=dict)

    def _read_window(self, since: Optional[pd.Timestamp]):
        raise NotImplementedError

    def _pull(self, since: Optional[pd.Timestamp]):
        key = None if since is None else pd.Timestamp(since)
        if key not in self._pulls:
            self._pulls = {key: self._read_window(key)}
        return self._pulls[key]

    def fetch_deal_pages(self, since: Optional[pd.Timestamp]) -> Iterator[pd.DataFrame]:
        # An empty pull still yields one page, so the schema gate sees the
        # columns the CRM delivered (a removed field shows even with no changes).
        deals = self._pull(since).deals
        for start in range(0, max(len(deals), 1), self.page_size):
            yield deals.iloc[start:start + self.page_size]

    def fetch_stage_history(self, since: Optional[pd.Timestamp]) -> pd.DataFrame:
        return self._pull(since).stage_history

    def fetch_activities(self, since: Optional[pd.Timestamp]) -> pd.DataFrame:
        return self._pull(since).activities

    def fetch_deletions(self, since: Optional[pd.Timestamp]) -> pd.DataFrame:
        return self._pull(since).deletions



@lru_cache(maxsize=4)
def _world(n_deals: int, seed: int, with_activities: bool = True, quarter_end_seasonality: bool = False,
           never_close_share: float = 0.0, leaking_amount: bool = False):
    """One generated world per process and size: pulls at several clocks share it."""
    from salesintel_assets.sources import sample_crm

    return sample_crm.generate_world(n_deals=n_deals, seed=seed, with_activities=with_activities,
                                     quarter_end_seasonality=quarter_end_seasonality,
                                     never_close_share=never_close_share, leaking_amount=leaking_amount)


@lru_cache(maxsize=4)
def _snapshot_at(n_deals: int, seed: int, clock: date, with_activities: bool = True,
                 quarter_end_seasonality: bool = False, never_close_share: float = 0.0, leaking_amount: bool = False):
    """What the CRM shows at a clock; one pull asks for deals, history,
    activities and the org, all from the same view."""
    from salesintel_assets.sources import sample_crm

    return sample_crm.snapshot(_world(n_deals, seed, with_activities, quarter_end_seasonality, never_close_share,
                                      leaking_amount), clock)


class SampleCRM(CRMSource):
    """The generated CRM shipped with the package: deterministic by seed.
    ``clock`` (YYYY-MM-DD, default the sample's end date) is the CRM's "now";
    advancing it produces new and changed deals. ``deleted_deal_ids`` are
    deals deleted on the clock's day (late in the day, after any edit): they
    vanish from the deals and are reported as deletions."""

    n_deals: int = 6000
    seed: int = 42
    clock: Optional[str] = None
    with_activities: bool = True
    quarter_end_seasonality: bool = False  # wins bunch up at quarter ends, as in real CRMs
    deleted_deal_ids: list[str] = []
    never_close_share: float = 0.0   # share of would-be-lost deals that linger open (real CRMs have many)
    leaking_amount: bool = False     # lost deals show amount 0, as exports of the closed value do

    def _clock(self) -> date:
        from salesintel_assets.sources.sample_crm import SAMPLE_END_DATE

        return date.fromisoformat(self.clock) if self.clock else SAMPLE_END_DATE

    def _snapshot(self):
        return _snapshot_at(self.n_deals, self.seed, self._clock(), self.with_activities,
                            self.quarter_end_seasonality, self.never_close_share, self.leaking_amount)

    def describe(self) -> str:
        return f"sample:n_deals={self.n_deals},seed={self.seed},clock={self._clock().isoformat()}"

    def change_marker(self) -> Optional[str]:
        return self.describe()  # the generated CRM changes only when its clock or deletions do

    def fetch_deal_pages(self, since: Optional[pd.Timestamp]) -> Iterator[pd.DataFrame]:
        deals = self._snapshot().deals
        deals = deals[~deals["deal_id"].isin(self.deleted_deal_ids)]
        if since is not None:
            deals = deals[deals["last_modified"] > since]
        for start in range(0, len(deals), self.page_size):
            yield as_export_text(deals.iloc[start : start + self.page_size])

    def fetch_stage_history(self, since: Optional[pd.Timestamp]) -> pd.DataFrame:
        snap = self._snapshot()
        history = snap.stage_history[~snap.stage_history["deal_id"].isin(self.deleted_deal_ids)]
        if since is not None:
            changed = snap.deals.loc[snap.deals["last_modified"] > since, "deal_id"]
            history = history[history["deal_id"].isin(changed)]
        return history.reset_index(drop=True)

    def fetch_deletions(self, since: Optional[pd.Timestamp]) -> pd.DataFrame:
        at = pd.Timestamp(self._clock()) + pd.Timedelta(hours=23, minutes=59)
        return pd.DataFrame({"deal_id": pd.Series(list(self.deleted_deal_ids), dtype=object),
                             "deleted_at": pd.Series(at, index=range(len(self.deleted_deal_ids)),
                                                     dtype="datetime64[ns]")})

    def fetch_activities(self, since: Optional[pd.Timestamp]) -> pd.DataFrame:
        activities = self._snapshot().activities
        if since is None:
            return activities
        return activities[activities["activity_date"] >= since.normalize()].reset_index(drop=True)

    def fetch_org(self) -> Optional[pd.DataFrame]:
        return self._snapshot().reps

    def default_as_of(self) -> date:
        return self._clock()

    def snapshot_fingerprint(self) -> Optional[str]:
        from salesintel_assets.domain.common.reruns import digest

        # Deterministic by its settings: the same settings are the same CRM content.
        return digest(self.__class__.__name__, sorted(self.model_dump().items()), self._clock())


class CsvCRM(CRMSource):
    """A CRM export file in the contract's CSV format. A file cannot say what
    changed, so every pull reads it whole and ingestion keeps the rows whose
    content changed. ``org_path`` optionally names a CSV of the sales org;
    ``date_order`` (day_first | month_first) and ``decimal_mark`` (. or ,)
    state formats the file's own values cannot settle."""

    path: str
    org_path: Optional[str] = None
    date_order: Optional[str] = None
    decimal_mark: Optional[str] = None

    def describe(self) -> str:
        return f"csv:{Path(self.path).resolve()}"

    def change_marker(self) -> Optional[str]:
        """Size and modification time of the export (and of the org file):
        a new or rewritten export changes them, reading it is not needed."""
        marks = []
        for path in filter(None, (self.path, self.org_path)):
            try:
                stat = Path(path).stat()
            except OSError:
                marks.append(f"{path}:missing")  # the run that follows says what is wrong
                continue
            marks.append(f"{path}:{stat.st_size}:{stat.st_mtime_ns}")
        return "|".join(marks)

    def stated_formats(self) -> tuple[Optional[str], Optional[str]]:
        return _checked_formats(self.date_order, self.decimal_mark)

    def stage_deals(self, con, table: str) -> Optional[list[str]]:
        return stage_export(con, self.path, table)

    def fetch_deal_pages(self, since: Optional[pd.Timestamp]) -> Iterator[pd.DataFrame]:
        yield read_export(self.path).frame   # a file is read whole: one page, no copies of its slices

    def snapshot_fingerprint(self) -> Optional[str]:
        from salesintel_assets.domain.common.reruns import digest, file_digest

        try:
            return digest(self.describe(), file_digest(self.path), self.org_path, file_digest(self.org_path),
                          self.date_order, self.decimal_mark)
        except OSError:  # a missing or unreadable file: the pull says so in one sentence
            return None

    def fetch_org(self) -> Optional[pd.DataFrame]:
        if not self.org_path:
            return None
        org = read_export(self.org_path, required=("sales_rep_id",), what="sales org file").frame
        return org.drop(columns=[LINE, DEFECT])


def _checked_formats(date_order: Optional[str], decimal_mark: Optional[str]) -> tuple[Optional[str], Optional[str]]:
    """Stated formats, or ``BlockedInput`` naming the allowed values."""
    order = (date_order or "").strip().lower().replace("-", "_") or None
    mark = (decimal_mark or "").strip() or None
    if order not in (None, *DATE_ORDERS):
        raise BlockedInput(f"SALESINTEL_DATE_ORDER={date_order!r} is not one of {', '.join(DATE_ORDERS)}: "
                           "set it to the order the export's dates use.")
    if mark not in (None, *DECIMAL_MARKS):
        raise BlockedInput(f"SALESINTEL_DECIMAL_MARK={decimal_mark!r} is not '.' or ',': set it to the "
                           "export's decimal mark.")
    return order, mark
