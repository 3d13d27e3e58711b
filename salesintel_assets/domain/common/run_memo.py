"""A value the steps of one in-process run share instead of each building it
again: their inputs do not change within a run (one replay of the deals for
the models steps, one leakage screen for the drivers steps).

It holds at most one run's value: a different key (another run, warehouse,
analysis date or rules) builds afresh and lets the old value go, so a
long-lived process never keeps a stale or second copy."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class RunMemo(Generic[T]):
    def __init__(self) -> None:
        self._key: Hashable | None = None
        self._value: T | None = None

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        """The value for ``key``, built once (the previous one released first)."""
        if self._key != key or self._value is None:
            self.clear()   # never two values at once: the old one goes before the new one is built
            self._value = build()
            self._key = key
        return self._value

    def clear(self) -> None:
        self._key = self._value = None
