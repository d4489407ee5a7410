"""Turning requests into validated models and models into responses."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from api.errors import ApiError

M = TypeVar("M", bound=BaseModel)


def _field(loc: tuple[int | str, ...]) -> str:
    # Drop pydantic's internal type tags ("function-after[...]", "constrained-str") from paths.
    parts = [
        str(p)
        for p in loc
        if not (isinstance(p, str) and ("[" in p or p.startswith("constrained")))
    ]
    return ".".join(parts) or "body"


def validation_error(exc: ValidationError, where: str) -> ApiError:
    details = [
        {
            "field": _field(err["loc"]),
            "message": err["msg"].removeprefix("Value error, "),
            "type": err["type"],
        }
        for err in exc.errors(include_url=False, include_input=False)
    ]
    first = details[0]
    return ApiError(
        422,
        "validation_error",
        f"{where} field {first['field']!r}: {first['message']}",
        param=first["field"],
        details=details,
    )


async def parse_body(request: web.Request, model: type[M]) -> M:
    if request.content_type != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the body as application/json, not {request.content_type or 'nothing'}",
        )
    raw = await request.read()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, "body") from None


def parse_query(request: web.Request, model: type[M]) -> M:
    data: dict[str, Any] = {}
    for name in request.query:
        values = request.query.getall(name)
        if len(values) > 1:
            raise ApiError(422, "validation_error", f"query field {name!r} given twice", param=name)
        data[name] = values[0]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, "query") from None


def respond(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(
        text=model.model_dump_json(), status=status, content_type="application/json"
    )


def respond_json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)
