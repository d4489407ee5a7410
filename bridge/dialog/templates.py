"""Rendering reply templates with the conversation's initial_context, e.g. "Hi {customer_name}".

Missing fields never break a reply: "{customer_name}" with no name renders as nothing and the
spacing and punctuation around it are tidied ("Hi {customer_name}, welcome" -> "Hi, welcome").
Only plain field names are substituted; format specs and attribute access are left as text.
"""

from __future__ import annotations

import re
from typing import Any

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def render(template: str, values: dict[str, Any]) -> str:
    def value(match: re.Match[str]) -> str:
        found = values.get(match.group(1))
        return "" if found is None else str(found)

    text = _FIELD.sub(value, template)
    text = re.sub(r"\s+([,.!?;:])", r"\1", text)
    text = re.sub(r"([,;:])(?=[,.!?;:])", "", text)
    return re.sub(r"\s{2,}", " ", text).strip()


def fields(template: str) -> list[str]:
    return _FIELD.findall(template)
