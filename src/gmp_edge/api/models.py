"""Request and answer bodies shared by the API's routers (strict: unknown fields refused)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    """A request body: unknown fields are an error, never ignored."""

    model_config = ConfigDict(extra="forbid")


class ErrorOut(BaseModel):
    """Why a request was refused."""

    detail: Any


Responses = dict[int | str, dict[str, Any]]


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
