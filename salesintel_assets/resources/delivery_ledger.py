"""The delivery ledger as a resource: the live SQLite ledger and the
one-run-at-a-time lock under ``$SALESINTEL_HOME/deliveries``."""

from contextlib import contextmanager
from typing import Callable, Iterator, Optional

import dagster as dg

from salesintel_assets.domain.alerts.ledger_store import DeliveryBusy, LedgerStore, exclusive_delivery
from salesintel_assets.domain.common.storage import DELIVERIES_DIR
from salesintel_assets.resources.warehouse import SalesintelHome


class DeliveryLedger(dg.ConfigurableResource):
    """``lock_wait_seconds``: how long a delivery run waits for another one
    on the same home before it stops with a clear message."""

    home: SalesintelHome
    lock_wait_seconds: float = 120.0

    def folder(self):
        return self.home.subdir(DELIVERIES_DIR)

    @contextmanager
    def exclusive(self, on_wait: Optional[Callable[[str], None]] = None) -> Iterator[LedgerStore]:
        """The ledger, held by this run alone until the block ends."""
        try:
            with exclusive_delivery(self.folder(), self.lock_wait_seconds, on_wait):
                store = LedgerStore(self.folder())
                try:
                    yield store
                finally:
                    store.close()
        except DeliveryBusy as exc:
            raise dg.Failure(str(exc)) from None
