"""What the record-keeping services need of a plant: its store, books and configuration.

The running monitoring engine provides them; so can a command that opens a store while
the service is stopped (``gmp-edge evidence export``), without starting monitoring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gmp_edge.config import PlantConfig
from gmp_edge.historian.store import Store
from gmp_edge.monitoring.engine import Books


class PlantRecords(Protocol):
    """The records of one edge box."""

    @property
    def store(self) -> Store:
        """The readings, gaps and events."""
        ...

    @property
    def books(self) -> Books:
        """Alarms, deviations, batches and limit sets."""
        ...

    @property
    def cfg(self) -> PlantConfig:
        """The plant configuration in force."""
        ...


@dataclass(frozen=True)
class OpenRecords:
    """A store opened outside the running service."""

    store: Store
    books: Books
    cfg: PlantConfig
