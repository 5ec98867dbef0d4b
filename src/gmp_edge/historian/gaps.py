"""Pure gap tracking: turns a stream of readings into gap open/close events.

A tag is in a gap from its first Bad reading until its next Good or Uncertain one
(an Uncertain reading still carries a value). The cause comes from the reading.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gmp_edge.collector.reading import Cause, Quality, Reading


@dataclass(frozen=True, slots=True)
class GapOpened:
    """A tag stopped delivering values."""

    tag: str
    start_us: int
    cause: Cause
    message: str


@dataclass(frozen=True, slots=True)
class GapClosed:
    """A tag delivers values again."""

    tag: str
    end_us: int


GapEvent = GapOpened | GapClosed


class GapTracker:
    """Remembers which tags are in a gap; ``observe`` yields the transitions."""

    def __init__(self, open_tags: Iterable[str] = ()):
        self._open: set[str] = set(open_tags)

    @property
    def open_tags(self) -> frozenset[str]:
        """Tags currently in a gap."""
        return frozenset(self._open)

    def observe(self, readings: Iterable[Reading]) -> list[GapEvent]:
        """Feed readings in arrival order; returns the gap transitions they cause."""
        events: list[GapEvent] = []
        for r in readings:
            if r.quality is Quality.BAD:
                if r.tag not in self._open:
                    self._open.add(r.tag)
                    events.append(
                        GapOpened(
                            r.tag,
                            r.ts_edge_us,
                            r.cause or Cause.COLLECTOR,
                            r.message or "bad reading without a message",
                        )
                    )
            elif r.tag in self._open:
                self._open.discard(r.tag)
                events.append(GapClosed(r.tag, r.ts_edge_us))
        return events

    def force_open(self, tag: str) -> None:
        """Mark a tag as in a gap opened outside the reading stream (e.g. service down)."""
        self._open.add(tag)
