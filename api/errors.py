"""The one error envelope: {"error": {"code", "message", "type", ...}} for every failure."""

from __future__ import annotations

from typing import Any

from aiohttp import web

INVALID_REQUEST = "invalid_request_error"
AUTHENTICATION = "authentication_error"
NOT_FOUND = "not_found_error"
CONFLICT = "conflict_error"
API_ERROR = "api_error"
UNAVAILABLE = "service_unavailable_error"


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        error_type: str = INVALID_REQUEST,
        param: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.error_type = error_type
        self.param = param
        self.details = details
        self.headers = headers or {}

    def body(self, request_id: str | None) -> dict[str, Any]:
        error: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "type": self.error_type,
        }
        if self.param is not None:
            error["param"] = self.param
        if self.details is not None:
            error["details"] = self.details
        if request_id is not None:
            error["request_id"] = request_id
        return {"error": error}

    def response(self, request_id: str | None) -> web.Response:
        return web.json_response(self.body(request_id), status=self.status, headers=self.headers)


def not_found(kind: str, resource_id: str) -> ApiError:
    return ApiError(
        404, f"{kind}_not_found", f"no {kind} with id {resource_id!r}", error_type=NOT_FOUND
    )


def unauthorized(message: str) -> ApiError:
    return ApiError(
        401,
        "invalid_api_key",
        message,
        error_type=AUTHENTICATION,
        headers={"WWW-Authenticate": 'Bearer realm="voicebridge"'},
    )


_HTTP_CODES = {
    400: ("bad_request", INVALID_REQUEST),
    404: ("route_not_found", NOT_FOUND),
    405: ("method_not_allowed", INVALID_REQUEST),
    413: ("body_too_large", INVALID_REQUEST),
    415: ("unsupported_media_type", INVALID_REQUEST),
}


def from_http_exception(exc: web.HTTPException) -> ApiError:
    code, error_type = _HTTP_CODES.get(exc.status, ("http_error", INVALID_REQUEST))
    message = exc.reason
    if exc.status == 404:
        message = "no such route"
    elif exc.status == 405 and isinstance(exc, web.HTTPMethodNotAllowed):
        message = (
            f"method {exc.method} not allowed; allowed: {', '.join(sorted(exc.allowed_methods))}"
        )
    elif exc.status == 413:
        message = "request body is larger than the limit"
    headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
    return ApiError(exc.status, code, message, error_type=error_type, headers=headers)
