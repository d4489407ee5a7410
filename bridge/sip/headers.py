"""Header fields as an ordered multi-map: names looked up without case, compact forms read as
their long names (RFC 3261 §7.3.3 and the extensions that define one), rows kept in order with
their raw values, and list-valued headers split into elements on commas that are not inside a
quoted string or angle brackets (§7.3.1).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from bridge.sip.grammar import is_token, split_top_level

COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact",  # RFC 3841
    "b": "Referred-By",  # RFC 3892
    "c": "Content-Type",
    "d": "Request-Disposition",  # RFC 3841
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",  # RFC 3841
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",  # RFC 4474
    "o": "Event",  # RFC 6665
    "r": "Refer-To",  # RFC 3515
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",  # RFC 6665
    "v": "Via",
    "x": "Session-Expires",  # RFC 4028
    "y": "Identity",  # RFC 8224
}

# Headers whose grammar is a comma-separated list of elements that cannot themselves hold a
# bare comma. Every other header (Date, WWW-Authenticate, Authorization, unknown ones…) is one
# value per row, whatever commas it contains.
LIST_HEADERS = frozenset(
    {
        "Accept",
        "Accept-Contact",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Call-Info",
        "Contact",
        "Content-Encoding",
        "Content-Language",
        "Error-Info",
        "In-Reply-To",
        "P-Asserted-Identity",
        "P-Preferred-Identity",
        "Path",
        "Proxy-Require",
        "Reason",
        "Record-Route",
        "Reject-Contact",
        "Request-Disposition",
        "Require",
        "Route",
        "Service-Route",
        "Supported",
        "Unsupported",
        "Via",
        "Warning",
    }
)

_KNOWN = LIST_HEADERS | {
    "Authentication-Info",
    "Authorization",
    "CSeq",
    "Call-ID",
    "Content-Disposition",
    "Content-Length",
    "Content-Type",
    "Date",
    "Event",
    "Expires",
    "From",
    "Identity",
    "Identity-Info",
    "MIME-Version",
    "Max-Forwards",
    "Min-Expires",
    "Min-SE",
    "Organization",
    "Priority",
    "Privacy",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "RAck",
    "RSeq",
    "Refer-Sub",
    "Refer-To",
    "Referred-By",
    "Replaces",
    "Reply-To",
    "Retry-After",
    "Server",
    "Session-Expires",
    "Subject",
    "Subscription-State",
    "Timestamp",
    "To",
    "User-Agent",
    "WWW-Authenticate",
}
_CANONICAL = {name.lower(): name for name in _KNOWN} | COMPACT_FORMS
_LIST_KEYS = frozenset(name.lower() for name in LIST_HEADERS)


def canonical_name(name: str) -> str:
    """The long, conventionally capitalized name of a known header (compact forms included);
    any other name as written."""
    return _CANONICAL.get(name.lower(), name)


def _key(name: str) -> str:
    return canonical_name(name).lower()


def elements(name: str, value: str) -> list[str]:
    """One row's elements: split on top-level commas when `name` is a list header."""
    return split_top_level(value) if _key(name) in _LIST_KEYS else [value]


class Headers:
    """Header rows in message order: (canonical name, raw value) pairs.

    Values are raw text: one row of a list header may hold several elements (see `values`).
    """

    __slots__ = ("_keys", "_rows")

    def __init__(self, rows: Iterable[tuple[str, str]] = ()) -> None:
        self._rows: list[tuple[str, str]] = []
        # The lower-case canonical name of each row, so lookups need not recompute it.
        self._keys: list[str] = []
        for name, value in rows:
            self.add(name, value)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _key(name) in self._keys

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._rows == other._rows

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self._rows!r})"

    def get(self, name: str) -> str | None:
        """The raw value of the first row named `name`."""
        key = _key(name)
        for row_key, (_, value) in zip(self._keys, self._rows, strict=True):
            if row_key == key:
                return value
        return None

    def get_all(self, name: str) -> list[str]:
        """The raw value of every row named `name`, in order."""
        key = _key(name)
        return [
            value
            for row_key, (_, value) in zip(self._keys, self._rows, strict=True)
            if row_key == key
        ]

    def count(self, name: str) -> int:
        return self._keys.count(_key(name))

    def values(self, name: str) -> list[str]:
        """Every element of header `name`: rows of a list header split on top-level commas
        (empty elements kept, for the element parsers to refuse), other headers row by row."""
        return [element for row in self.get_all(name) for element in elements(name, row)]

    def add(self, name: str, value: str) -> None:
        if not is_token(name):
            raise ValueError(f"bad header name {name!r}")
        if "\r" in value or "\n" in value:
            raise ValueError(f"line break in the value of {name}")
        canonical = canonical_name(name)
        self._rows.append((canonical, value))
        self._keys.append(canonical.lower())

    def set(self, name: str, value: str) -> None:
        """Replace every row named `name` by one, where the first was (else at the end)."""
        key = _key(name)
        index = self._keys.index(key) if key in self._keys else len(self._keys)
        self.remove(name)
        self.add(name, value)
        self._rows.insert(index, self._rows.pop())
        self._keys.insert(index, self._keys.pop())

    def replace_first(self, name: str, value: str) -> None:
        """Replace the value of the first row named `name`, keeping the others."""
        if not is_token(name) or "\r" in value or "\n" in value:
            raise ValueError(f"bad header {name!r}")
        index = self._keys.index(_key(name))
        self._rows[index] = (self._rows[index][0], value)

    def remove(self, name: str) -> None:
        key = _key(name)
        kept = [(k, row) for k, row in zip(self._keys, self._rows, strict=True) if k != key]
        self._keys = [k for k, _ in kept]
        self._rows = [row for _, row in kept]

    def copy(self) -> Headers:
        copied = Headers()
        copied._rows = list(self._rows)
        copied._keys = list(self._keys)
        return copied
