"""Turning requests into validated models and models into responses."""

from __future__ import annotations

import json
import math
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from api.errors import ApiError
from api.schemas.common import ListPage
from bridge.store import Page

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


def _no_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity, which are not JSON and would be stored as null.
    raise ValueError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _invalid_json(detail: str) -> ApiError:
    return ApiError(400, "invalid_json", f"body is not valid JSON: {detail}")


async def parse_body(request: web.Request, model: type[M]) -> M:
    if request.content_type != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the body as application/json, not {request.content_type or 'nothing'}",
        )
    raw = await request.read()
    try:
        data = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise _invalid_json(str(exc) or type(exc).__name__) from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "body must be a JSON object")
    try:
        # Strict: JSON types as the document states them, so 1 is not a boolean, "5" is not a
        # rating and 1.0 is not a count.
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        # Pydantic's reader refuses what Python's accepts: lone surrogates, which no store or
        # client can encode, and nesting deeper than 200.
        for err in exc.errors(include_url=False, include_input=False):
            if err["type"] == "json_invalid":
                raise _invalid_json(err["msg"].removeprefix("Invalid JSON: ")) from None
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


def respond_page(items: list[Any], page: Page[Any]) -> web.Response:
    """A list response: `items` are the page's records as the API shows them."""
    return respond(ListPage[Any](data=items, has_more=page.has_more, next_cursor=page.next_cursor))
