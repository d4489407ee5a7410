"""Shapes every endpoint shares: the error envelope, list pages and list queries."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from bridge.store.pagination import DEFAULT_LIMIT, MAX_LIMIT

T = TypeVar("T")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    code: str = Field(examples=["validation_error"])
    message: str
    type: str = Field(examples=["invalid_request_error"])
    param: str | None = None
    details: list[dict[str, Any]] | None = None
    request_id: str | None = None
    retry_count: int | None = None
    next_retry: str | None = None


class ErrorEnvelope(BaseModel):
    error: ErrorBody


class ListPage(BaseModel, Generic[T]):
    data: list[T]
    has_more: bool
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; null on the last page."
    )


class ListQuery(Strict):
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(None, min_length=1, max_length=200)
