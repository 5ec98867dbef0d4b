"""Request and answer bodies shared by the API's routers (strict: unknown fields refused)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    """A request body: unknown fields are an error, never ignored."""

    model_config = ConfigDict(extra="forbid")


class ErrorOut(BaseModel):
    """Why a request was refused."""

    detail: Any


Responses = dict[int | str, dict[str, Any]]
M = TypeVar("M", bound=BaseModel)


def from_record(model: type[M], record: object, **computed: Any) -> M:
    """``model`` filled from ``record``: the ``computed`` fields (times as text, renamed or
    derived values) as given, every other field from the record's attribute of that name.

    For answers that show a record as it is: a field the record lacks is an error, never
    quietly left out.
    """
    same = {f: getattr(record, f) for f in model.model_fields if f not in computed}
    return model(**same, **computed)


AUTH: Responses = {
    401: {"model": ErrorOut, "description": "not signed in, session expired, unknown token"},
    403: {"model": ErrorOut, "description": "signed in, but the role does not allow this"},
}
NOT_FOUND: Responses = {404: {"model": ErrorOut, "description": "no such record"}}
CONFLICT: Responses = {409: {"model": ErrorOut, "description": "the record changed meanwhile"}}
BAD_REQUEST: Responses = {400: {"model": ErrorOut, "description": "refused; the detail says why"}}

UserId = Field(min_length=2, max_length=32, pattern=r"^[a-z][a-z0-9._-]{1,31}$")
Password = Field(min_length=1, max_length=256)
Reason = Field(min_length=1, max_length=2000, description="why (recorded in the audit trail)")
