"""from_record: an answer model filled from a record's attributes, computed fields given."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from pydantic import BaseModel

from gmp_edge.api.records import from_record


@dataclass
class _Rec:
    id: str
    start_us: int
    note: str


class _Out(BaseModel):
    id: str
    start: str
    note: str


def test_same_named_fields_are_read_and_computed_ones_given():
    out = from_record(_Out, _Rec("r1", 5, "n"), start="five")
    assert out == _Out(id="r1", start="five", note="n")


def test_a_computed_field_wins_over_the_records_attribute():
    assert from_record(_Out, _Rec("r1", 5, "n"), start="s", note="shown").note == "shown"


def test_a_field_the_record_lacks_is_an_error():
    with pytest.raises(AttributeError):
        from_record(_Out, _Rec("r1", 5, "n"))
