"""Production state and running batches, read from the equipment's own tags (pure).

A room's state comes from a fixed setting or from a state tag (e.g. the press's
PackML state: EXECUTE means in operation). A batch tag (the press's batch id) starts a
batch when a new id appears and ends the previous one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gmp_edge.limits.model import AT_REST, IN_OPERATION


@dataclass
class ProductionTracker:
    """One room's production state and batch, updated from tag values in time order."""

    room: str
    fixed_state: str | None
    state_tag: str | None
    in_operation_values: frozenset[str]
    batch_tag: str | None
    equipment: str | None
    state: str | None = None
    batch_id: str | None = None
    changes: list[tuple[int, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.fixed_state is not None and not self.changes:
            self.state = self.fixed_state
            self.changes.append((0, self.fixed_state))

    def observe_state(self, ts_us: int, value: object) -> str | None:
        """A state-tag value; returns the new production state if it changed."""
        state = IN_OPERATION if str(value) in self.in_operation_values else AT_REST
        if state == self.state:
            return None
        self.state = state
        self.changes.append((ts_us, state))
        return state

    def observe_batch(self, value: object) -> tuple[str | None, str | None] | None:
        """A batch-tag value; returns (ended batch, started batch) when it changed."""
        batch = str(value).strip() if value is not None else ""
        new = batch or None
        if new == self.batch_id:
            return None
        old, self.batch_id = self.batch_id, new
        return old, new

    def to_dict(self) -> dict[str, object]:
        """What must survive a restart."""
        return {"state": self.state, "batch_id": self.batch_id}

    def load(self, d: dict[str, object]) -> None:
        """Restore :meth:`to_dict`."""
        self.state = d.get("state") if self.fixed_state is None else self.fixed_state  # type: ignore[assignment]
        self.batch_id = d.get("batch_id")  # type: ignore[assignment]
