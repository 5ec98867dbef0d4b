"""Answers that show a record as it is: the model's fields read from the record's attributes."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def from_record(model: type[M], record: object, **computed: Any) -> M:
    """``model`` filled from ``record``: the ``computed`` fields (times as text, renamed or
    derived values) as given, every other field from the record's attribute of that name.

    For answers that show a record as it is: a field the record lacks is an error, never
    quietly left out.
    """
    same = {f: getattr(record, f) for f in model.model_fields if f not in computed}
    return model(**same, **computed)
