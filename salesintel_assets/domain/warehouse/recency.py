"""Does the data reach the analysis date? A live CRM creates or closes
deals every week. When nothing happened for longer than the rules allow
before the analysis date, the usual cause is an old export run as of today
(the CSV source's default date): every recent window is then empty, open
deals only age, and the figures describe a pipeline frozen long ago."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Quiet:
    newest: pd.Timestamp | None   # the last day a deal was created or closed (None: no deals)
    as_of: pd.Timestamp
    days: int                     # from ``newest`` to the analysis date

    def too_long(self, max_days: int) -> bool:
        return self.newest is not None and self.days > max_days

    def sentence(self) -> str:
        return (f"no deal was created or closed in the {self.days:,} days before the analysis date "
                f"{self.as_of:%Y-%m-%d} (the newest on {self.newest:%Y-%m-%d}): recent windows are empty and "
                "open deals only age; if the export is that old, run it as of its own date "
                "(--as-of, SALESINTEL_AS_OF)")


def quiet_before(latest_dates, as_of) -> Quiet:
    """How long before ``as_of`` the last deal was created or closed, from
    each kind's latest date (None or NaT when there is none; dates after the
    analysis date are not known then and do not count)."""
    as_of = pd.Timestamp(as_of).normalize()
    known = [pd.Timestamp(d).normalize() for d in latest_dates if d is not None and not pd.isna(d)]
    known = [d for d in known if d <= as_of]
    if not known:
        return Quiet(None, as_of, 0)
    newest = max(known)
    return Quiet(newest, as_of, int((as_of - newest).days))
