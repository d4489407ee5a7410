"""Which conversation languages the bridge can serve, and BCP-47 tag handling."""

from __future__ import annotations

import re

# The recognizer (Moonshine base-en) and the voices are English; any English variant is served.
SUPPORTED: tuple[str, ...] = (
    "en-US",
    "en-GB",
    "en-AU",
    "en-CA",
    "en-IE",
    "en-IN",
    "en-NZ",
    "en-ZA",
)
_BCP47 = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z]{4})?(-([A-Za-z]{2}|[0-9]{3}))?(-[A-Za-z0-9]{5,8})*$")


def canonical(tag: str) -> str:
    """The supported tag `tag` names (case-insensitively), or ValueError saying why not."""
    if not _BCP47.match(tag):
        raise ValueError(f"{tag!r} is not a BCP-47 language tag")
    for supported in SUPPORTED:
        if supported.lower() == tag.lower():
            return supported
    raise ValueError(f"language {tag!r} is not supported; supported: {', '.join(SUPPORTED)}")
