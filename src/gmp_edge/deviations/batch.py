"""The batch model: the one ``Batch`` type shared by deviations and release review.

A batch occupies rooms and equipment from ``start_us`` until ``end_us`` (None while it is
still in progress). Release review ("what happened during batch X?") reuses this type
rather than defining its own, so that "affected batch" means the same everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gmp_edge.timefmt import iso

# One rule for every way a batch arrives (API, MQTT, the equipment's batch tag): the id
# goes into URL paths (so no "/"), record ids ("<batch>#<n>") and MQTT topics (no "+#").
BATCH_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
BATCH_ID_RULE = "1 to 64 letters, digits or . _ : -, starting with a letter or digit"


def batch_id_problem(batch_id: object) -> str | None:
    """Why ``batch_id`` is not a batch id (None if it is one)."""
    if isinstance(batch_id, str) and BATCH_ID.match(batch_id):
        return None
    return f"batch id {batch_id!r} is not valid: {BATCH_ID_RULE}"


# A batch's times come from an MES or a person: a start or end more than a few minutes
# ahead of the box's clock is a typo or a wrong clock, not a plan. The past has no bound:
# a batch may be registered after the fact (issue 13), and the review shows what is known.
FUTURE_TOLERANCE_US = 5 * 60 * 1_000_000


def batch_time_problem(what: str, at_us: int, now_us: int) -> str | None:
    """Why ``at_us`` is not a plausible batch start or end (``what``) at ``now_us``."""
    if at_us > now_us + FUTURE_TOLERANCE_US:
        return (
            f"batch {what} {iso(at_us)} is more than 5 minutes after the box's clock"
            f" ({iso(now_us)}): a typo, or a clock that is wrong"
        )
    return None


@dataclass(frozen=True, slots=True)
class Batch:
    """A production batch: where it ran (rooms, equipment) and when ([start, end))."""

    id: str
    product: str
    equipment: tuple[str, ...]
    rooms: tuple[str, ...]
    start_us: int
    end_us: int | None = None  # None: still in progress

    def __post_init__(self) -> None:
        if self.end_us is not None and self.end_us < self.start_us:
            raise ValueError(f"batch {self.id}: end before start")

    def in_progress_at(self, t_us: int) -> bool:
        """True if the batch had started and not yet ended at ``t_us``."""
        return self.start_us <= t_us and (self.end_us is None or t_us < self.end_us)

    def overlaps(self, start_us: int, end_us: int | None) -> bool:
        """True if the batch was in progress at some time in ``[start_us, end_us)``.

        ``end_us=None`` means the interval is still open. An instant (``end_us ==
        start_us``) overlaps when the batch was in progress at that instant.
        """
        if end_us is not None and end_us <= start_us:
            return self.in_progress_at(start_us)
        started_before_end = end_us is None or self.start_us < end_us
        ended_after_start = self.end_us is None or self.end_us > start_us
        return started_before_end and ended_after_start

    def uses(self, room: str | None = None, equipment: str | None = None) -> bool:
        """True if the batch ran in ``room`` or on ``equipment`` (either is enough)."""
        return (room is not None and room in self.rooms) or (
            equipment is not None and equipment in self.equipment
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "id": self.id,
            "product": self.product,
            "equipment": list(self.equipment),
            "rooms": list(self.rooms),
            "start_us": self.start_us,
            "end_us": self.end_us,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Batch:
        """Inverse of :meth:`to_dict`."""
        return cls(
            id=data["id"],
            product=data["product"],
            equipment=tuple(data["equipment"]),
            rooms=tuple(data["rooms"]),
            start_us=int(data["start_us"]),
            end_us=None if data["end_us"] is None else int(data["end_us"]),
        )
