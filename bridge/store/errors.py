"""What the store refuses, in terms the API turns into error envelopes."""

from __future__ import annotations


class StoreError(Exception):
    code = "store_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class NotFound(StoreError):
    code = "not_found"

    def __init__(self, kind: str, resource_id: str) -> None:
        super().__init__(f"no {kind} with id {resource_id!r}")
        self.kind = kind
        self.resource_id = resource_id


class Conflict(StoreError):
    def __init__(self, code: str, message: str, *, param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.code = code


class InvalidCursor(StoreError):
    code = "invalid_cursor"

    def __init__(self) -> None:
        super().__init__("cursor is not one this API returned", param="cursor")
