"""MQTT topic names (pure): one place that knows the topic tree.

Tree under the prefix (default ``gmp-edge/{site}``)::

    {prefix}/{area}/{room}/{equipment}/{signal}    readings (ISA-95 path minus the site)
    {prefix}/events/alarms/{room}                  alarm transitions, QoS 1
    {prefix}/events/deviations                     deviation lifecycle events, QoS 1
    {prefix}/status/edge                           this box online/offline (birth + LWT), retained
    {prefix}/status/rooms/{room}                   room status, retained
    {prefix}/status/devices/{device}               device status, retained
    {prefix}/commands/batches                      MES batch commands (subscribed)
    {prefix}/commands/rejected                     why a command was refused

Every level must be non-empty and free of the MQTT wildcards ``+`` and ``#`` and of NUL; a
name that is not is refused with :class:`TopicError`, never silently rewritten, because a
rewritten name could collide with another tag's topic.
"""

from __future__ import annotations

from dataclasses import dataclass

from gmp_edge.errors import GmpEdgeError

#: Where alarm events of a tag whose path names no room go (a malformed tag must not block
#: the event stream behind it).
UNASSIGNED_ROOM = "_unassigned"
#: MQTT limits a topic to 65,535 bytes of UTF-8.
MAX_TOPIC_BYTES = 65_535


class TopicError(GmpEdgeError, ValueError):
    """A name cannot be used in an MQTT topic; the message says which and why."""


def check_level(level: str, what: str) -> str:
    """``level`` if it is usable as one topic level, else :class:`TopicError`."""
    if not level:
        raise TopicError(f"{what}: empty topic level")
    for bad, name in (("+", "'+' (wildcard)"), ("#", "'#' (wildcard)"), ("\x00", "NUL")):
        if bad in level:
            raise TopicError(f"{what} {level!r}: contains {name}, not allowed in an MQTT topic")
    if "/" in level:
        raise TopicError(f"{what} {level!r}: contains '/', which would add a topic level")
    return level


def check_topic(topic: str, what: str = "topic") -> str:
    """``topic`` if every level is usable and it fits MQTT's length limit."""
    if topic.startswith("$"):
        raise TopicError(f"{what} {topic!r}: topics starting with '$' are reserved for brokers")
    if len(topic.encode("utf-8")) > MAX_TOPIC_BYTES:
        raise TopicError(f"{what}: longer than {MAX_TOPIC_BYTES} bytes")
    for level in topic.split("/"):
        check_level(level, what)
    return topic


def make_prefix(template: str, site: str) -> str:
    """The topic prefix: ``template`` with ``{site}`` filled in, checked level by level."""
    check_level(site, "site")
    try:
        prefix = template.format(site=site)
    except (KeyError, IndexError, ValueError) as exc:
        raise TopicError(
            f"topic_prefix {template!r}: only the placeholder {{site}} is allowed ({exc})"
        ) from None
    return check_topic(prefix, "topic_prefix")


def split_tag(path: str) -> tuple[str, str, str, str, str]:
    """(site, area, room, equipment, signal) of an ISA-95 tag path, or :class:`TopicError`."""
    parts = path.split("/")
    if len(parts) != 5:
        raise TopicError(
            f"tag {path!r}: expected site/area/room/equipment/signal, got {len(parts)} levels"
        )
    for part, what in zip(parts, ("site", "area", "room", "equipment", "signal"), strict=True):
        check_level(part, f"tag {path!r} {what}")
    return parts[0], parts[1], parts[2], parts[3], parts[4]


def room_of(path: str) -> str:
    """The room a tag path names, or :data:`UNASSIGNED_ROOM` when it names none usable."""
    parts = path.split("/")
    if len(parts) < 3:
        return UNASSIGNED_ROOM
    try:
        return check_level(parts[2], "room")
    except TopicError:
        return UNASSIGNED_ROOM


@dataclass(frozen=True, slots=True)
class Topics:
    """The topic tree of one edge box (one site)."""

    prefix: str
    site: str

    @classmethod
    def for_site(cls, template: str, site: str) -> Topics:
        """The tree for ``site`` with ``template`` (e.g. ``gmp-edge/{site}``) as prefix."""
        return cls(make_prefix(template, site), site)

    def reading(self, tag: str) -> str:
        """Topic of a tag's readings: the prefix, then the tag path without its site.

        The tag must belong to this box's site: publishing another site's tag under this
        prefix would put it in the wrong place of the plant's namespace.
        """
        site, area, room, equipment, signal = split_tag(tag)
        if site != self.site:
            raise TopicError(f"tag {tag!r}: site {site!r} is not this box's site {self.site!r}")
        return f"{self.prefix}/{area}/{room}/{equipment}/{signal}"

    def alarm_events(self, room: str) -> str:
        """Topic of a room's alarm transitions."""
        return f"{self.prefix}/events/alarms/{check_level(room, 'room')}"

    @property
    def alarm_events_all(self) -> str:
        """Subscription filter for every room's alarm transitions."""
        return f"{self.prefix}/events/alarms/+"

    @property
    def deviation_events(self) -> str:
        """Topic of deviation lifecycle events."""
        return f"{self.prefix}/events/deviations"

    @property
    def anchors(self) -> str:
        """Topic of the box's signed anchors (each line of ``<store>.anchors``, verbatim)."""
        return f"{self.prefix}/events/anchors"

    @property
    def edge_status(self) -> str:
        """Retained online/offline status of this edge box (birth and last will)."""
        return f"{self.prefix}/status/edge"

    def room_status(self, room: str) -> str:
        """Retained status of a room."""
        return f"{self.prefix}/status/rooms/{check_level(room, 'room')}"

    def device_status(self, device: str) -> str:
        """Retained status of a device."""
        return f"{self.prefix}/status/devices/{check_level(device, 'device')}"

    @property
    def batch_commands(self) -> str:
        """Where the MES sends batch start/end commands."""
        return f"{self.prefix}/commands/batches"

    @property
    def rejected_commands(self) -> str:
        """Where refused commands are reported, with the reason."""
        return f"{self.prefix}/commands/rejected"
