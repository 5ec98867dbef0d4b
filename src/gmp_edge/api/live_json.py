"""The live answers (every tag's newest value) written as JSON text, once per reading.

A box of 10,000 tags answers ``/api/latest`` and ``/api/status/rooms`` with 10,000 values
each time; building and serialising them per request was ~50 ms of one core, and 20
clients asking in turn took the whole core from the collectors (issue 15). A reading is
immutable, and at 1 s polling most tags have the same newest reading from one request to
the next: :class:`ValueFragments` keeps the JSON text of each tag's newest reading and
makes it anew only when the reading is another one. The text is exactly what the declared
model (``ValueOut``) writes (a test compares them).
"""

from __future__ import annotations

import gzip
import json
import math
import threading
import time
from collections.abc import Callable, Iterable
from enum import Enum
from typing import Any, Literal

from gmp_edge.collector.reading import Quality, Reading
from gmp_edge.historian.store import StoredReading
from gmp_edge.timefmt import iso

QualityName = Literal["good", "uncertain", "bad"]
QUALITY_NAMES: tuple[QualityName, QualityName, QualityName] = ("good", "uncertain", "bad")
GZIP_LEVEL = 1  # the fastest: ~10x smaller for this JSON, a few ms for 2 MB


def quality_name(q: Quality | int) -> QualityName:
    """The API's name of a quality code (the one table of them)."""
    return QUALITY_NAMES[int(q)]


def value_dict(r: Reading | StoredReading) -> dict[str, Any]:
    """A reading as the JSON object ``ValueOut`` serialises to, without building a model.

    Numbers as JSON numbers (an int as its float, as ValueOut has it), non-finite ones as
    null, as pydantic writes them."""
    v = r.value
    if type(v) is int:
        v = float(v)
    elif type(v) is float and not math.isfinite(v):
        v = None
    cause = r.cause.value if isinstance(r.cause, Enum) else r.cause
    return {
        "tag": r.tag,
        "ts": iso(r.ts_us),
        "ts_edge": iso(r.ts_edge_us),
        "ts_source": iso(r.ts_source_us),
        "value": v,
        "quality": quality_name(r.quality),
        "message": r.message,
        "cause": cause,
    }


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` header allows gzip (RFC 9110: ``gzip`` or ``*`` with
    a q-value above 0; ``gzip;q=0`` refuses it)."""
    allowed: dict[str, bool] = {}
    for item in accept_encoding.lower().split(","):
        name, _, params = item.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            key, _, value = p.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if name:
            allowed[name.strip()] = q > 0
    return allowed.get("gzip", allowed.get("*", False))


def dumps(body: object) -> str:
    """Compact JSON, non-ASCII kept, NaN refused (the API's one encoding of its answers)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class ValueFragments:
    """The JSON text of each tag's newest reading, remade only when the reading changes.

    Safe from several threads without a lock: two threads that miss at once both make the
    same text, and a dict assignment is atomic. The cache holds the reading it was made
    from, so an identity check cannot be fooled by a reused object id.
    """

    def __init__(self) -> None:
        self._made: dict[str, tuple[Reading | StoredReading, str]] = {}

    def fragment(self, r: Reading | StoredReading) -> str:
        """The JSON object of ``r``, as text."""
        hit = self._made.get(r.tag)
        if hit is not None and hit[0] is r:
            return hit[1]
        text = dumps(value_dict(r))
        self._made[r.tag] = (r, text)
        return text

    def array(self, readings: Iterable[Reading | StoredReading]) -> str:
        """A JSON array of the readings, in the order given."""
        return "[" + ",".join(self.fragment(r) for r in readings) + "]"


class SharedAnswer:
    """The newest text of one live answer, given again to whoever asks within ``max_age_s``.

    Twenty screens asking for every tag's value at once get one answer made once, not
    twenty: each would take the interpreter from collection and evaluation for tens of
    milliseconds (issue 15). When the answer is older, one request makes it anew and the
    others meanwhile get the one before (never older than ``max_age_s`` plus one making)
    instead of waiting for it, each holding a request thread. 0: made every time.
    """

    def __init__(self, max_age_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age_s = max_age_s
        self._clock = clock
        self._making = threading.Lock()
        self._text: str | None = None
        self._gzipped: tuple[str, bytes] | None = None  # (the text it was made of, gzip)
        self._made_at = -math.inf

    def get(self, make: Callable[[], str]) -> str:
        """The shared text, made anew by ``make`` when it is older than ``max_age_s``."""
        if self.max_age_s <= 0:
            return make()
        text = self._text
        if text is not None and self._clock() - self._made_at <= self.max_age_s:
            return text
        # the first answer is waited for; later ones are made by one request at a time
        if text is None:
            self._making.acquire()
        elif not self._making.acquire(blocking=False):
            return text
        try:
            if self._text is None or self._clock() - self._made_at > self.max_age_s:
                self._text = make()
                self._made_at = self._clock()
            return self._text
        finally:
            self._making.release()

    def gzipped(self, text: str) -> bytes:
        """``text`` (an answer :meth:`get` gave) gzipped, compressed once per answer: at
        10,000 tags an answer is ~2 MB of JSON, and sending it to every screen kept the
        event loop in socket writes; gzip makes it a tenth, and zlib works without the
        interpreter lock."""
        held = self._gzipped
        if held is not None and held[0] is text:
            return held[1]
        body = gzip.compress(text.encode(), compresslevel=GZIP_LEVEL, mtime=0)
        if self.max_age_s > 0:
            self._gzipped = (text, body)
        return body
